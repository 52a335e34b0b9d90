package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/ipni"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/sealing"
)

// pieceSource reads pieces from the unsealed sectors for the index and
// retrievals.
func pieceSource(s *sealing.Sealing) index.PieceSource {
	return index.PieceSourceFunc(func(ctx context.Context, pieceCid cid.Cid) (index.PieceReader, error) {
		r, err := s.ReadPiece(ctx, pieceCid)
		if errors.Is(err, sealing.ErrNoUnsealedCopy) {
			return nil, fmt.Errorf("%w: %w", index.ErrNoUnsealedCopy, err)
		}
		if err != nil {
			return nil, err
		}
		return r, nil
	})
}

// indexer is the deal pipeline's IndexedAndAnnounced step: index the
// piece's blocks from the unsealed copy, then advertise them to IPNI unless
// the client asked not to.
type indexer struct {
	idx *index.Service
	ann *ipni.Announcer // nil when IPNI is off
}

func (i indexer) IndexAndAnnounce(ctx context.Context, d market.IndexRequest) error {
	if _, err := i.idx.Rebuild(ctx, d.PieceCID); err != nil {
		return fmt.Errorf("indexing piece %s: %w", d.PieceCID, err)
	}
	if i.ann == nil || d.SkipIPNIAnnounce {
		return nil
	}
	if _, err := i.ann.AnnouncePiece(ctx, d.PieceCID); err != nil {
		return fmt.Errorf("announcing piece %s to IPNI: %w", d.PieceCID, err)
	}
	return nil
}
