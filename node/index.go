package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/ipni"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/minerapi"
	"github.com/ferry-fil/ferry/sealing"
)

// pieceReaders opens pieces from unsealed copies: ferryd's sealing
// (*sealing.Sealing), or lotus-miner's over /remote (*minerapi.Sealer).
type pieceReaders interface {
	ReadPiece(ctx context.Context, pieceCid cid.Cid) (sealing.PieceReader, error)
}

// pieceSource reads pieces from the unsealed sectors for the index and
// retrievals: no unsealed copy is index.ErrNoUnsealedCopy (410 for a
// retrieval), one lotus-miner is making index.ErrUnsealing (503), and a
// lotus-miner that cannot be reached market.ErrSealerUnavailable, so that
// indexing waits for it.
func pieceSource(s pieceReaders) index.PieceSource {
	return index.PieceSourceFunc(func(ctx context.Context, pieceCid cid.Cid) (index.PieceReader, error) {
		r, err := s.ReadPiece(ctx, pieceCid)
		switch {
		case errors.Is(err, sealing.ErrNoUnsealedCopy):
			return nil, fmt.Errorf("%w: %w", index.ErrNoUnsealedCopy, err)
		case errors.Is(err, minerapi.ErrUnsealing):
			return nil, fmt.Errorf("%w: %w", index.ErrUnsealing, err)
		case err != nil:
			return nil, sealerError(err)
		}
		return r, nil
	})
}

// indexer is the deal pipeline's IndexedAndAnnounced step: index the
// piece's blocks (unless they are indexed already) from the deal's data
// file when the market hands it over, from the unsealed copy otherwise,
// then advertise them to IPNI unless the client asked not to.
type indexer struct {
	idx *index.Service
	ann *ipni.Announcer // nil when IPNI is off
}

func (i indexer) IndexAndAnnounce(ctx context.Context, d market.IndexRequest) error {
	// A piece indexed already (by another deal, or by this step before its
	// announcement failed) is not read again.
	indexed, err := i.idx.IsIndexed(ctx, d.PieceCID)
	switch {
	case err != nil:
	case indexed:
	case d.Data != nil:
		_, err = i.idx.IndexPiece(ctx, d.PieceCID, d.Data, d.Data.Size())
	default:
		_, err = i.idx.Rebuild(ctx, d.PieceCID)
	}
	if err != nil {
		return fmt.Errorf("indexing piece %s: %w", d.PieceCID, err)
	}
	if d.PayloadSize > 0 {
		if err := i.idx.SetPieceSizes(ctx, d.PieceCID, d.PieceSize, d.PayloadSize); err != nil {
			return err
		}
	}
	if i.ann == nil || d.SkipIPNIAnnounce {
		return nil
	}
	if _, err := i.ann.AnnouncePiece(ctx, d.PieceCID); err != nil {
		return fmt.Errorf("announcing piece %s to IPNI: %w", d.PieceCID, err)
	}
	return nil
}

var _ market.PieceRemover = indexer{}

// RemovePiece is the pipeline's step after a deal ended on chain: withdraw
// the piece's IPNI advertisement unless another active deal still wants it
// announced, and drop the piece from the index once no active deal holds
// it. A piece that was never announced (the deal skipped IPNI, or another
// deal's end removed it already) has nothing to withdraw.
func (i indexer) RemovePiece(ctx context.Context, r market.RemoveRequest) error {
	if i.ann != nil && !r.KeepAnnounced {
		if _, err := i.ann.RemovePiece(ctx, r.PieceCID); err != nil && !errors.Is(err, ipni.ErrNotAnnounced) {
			return fmt.Errorf("withdrawing piece %s from IPNI: %w", r.PieceCID, err)
		}
	}
	if r.KeepIndex {
		return nil
	}
	if err := i.idx.RemovePiece(ctx, r.PieceCID); err != nil {
		return fmt.Errorf("removing piece %s from the index: %w", r.PieceCID, err)
	}
	return nil
}
