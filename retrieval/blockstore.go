package retrieval

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/gateway"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	format "github.com/ipfs/go-ipld-format"

	"github.com/ferry-fil/ferry/index"
)

// Blockstore is a read-only boxo blockstore over the piece directory: a
// block is read from the unsealed copy of the first indexed piece that
// holds it, at the offset the index recorded, and checked against its CID
// before it is returned. Identity CIDs are answered from the CID itself.
//
// A block in no indexed piece is format.ErrNotFound; one whose pieces
// have no unsealed copy left is an error wrapping index.ErrNoUnsealedCopy
// that the gateway answers with 410 Gone.
type Blockstore struct {
	dir Directory
	src index.PieceSource
}

var _ blockstore.Blockstore = (*Blockstore)(nil)

// NewBlockstore returns the blockstore over dir, reading pieces from src.
func NewBlockstore(dir Directory, src index.PieceSource) *Blockstore {
	return &Blockstore{dir: dir, src: src}
}

// errReadOnly is what Blockstore and loaderDAG answer to writes.
var errReadOnly = errors.New("retrieval: the blockstore is read-only")

// Get returns block c.
func (b *Blockstore) Get(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	data, _, err := b.load(ctx, c, nil)
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

// GetSize returns the size of block c's data, as the index recorded it.
func (b *Blockstore) GetSize(ctx context.Context, c cid.Cid) (int, error) {
	if isIdentity(c) {
		data, err := identityData(c)
		return len(data), err
	}
	locs, err := b.locate(ctx, c)
	if err != nil {
		return 0, err
	}
	return int(locs[0].Size), nil
}

// Has reports whether an indexed piece holds block c.
func (b *Blockstore) Has(ctx context.Context, c cid.Cid) (bool, error) {
	if isIdentity(c) {
		return true, nil
	}
	_, err := b.locate(ctx, c)
	if format.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// Put refuses: the blockstore is read-only.
func (b *Blockstore) Put(context.Context, blocks.Block) error { return errReadOnly }

// PutMany refuses: the blockstore is read-only.
func (b *Blockstore) PutMany(context.Context, []blocks.Block) error { return errReadOnly }

// DeleteBlock refuses: the blockstore is read-only.
func (b *Blockstore) DeleteBlock(context.Context, cid.Cid) error { return errReadOnly }

// AllKeysChan refuses: the directory is not listed through the blockstore.
func (b *Blockstore) AllKeysChan(context.Context) (<-chan cid.Cid, error) {
	return nil, errors.New("retrieval: the blockstore does not list its blocks")
}

// locate returns the places the index has block c.
func (b *Blockstore) locate(ctx context.Context, c cid.Cid) ([]index.Location, error) {
	locs, err := b.dir.PiecesContaining(ctx, c.Hash())
	if err != nil {
		return nil, fmt.Errorf("looking up block %s: %w", c, err)
	}
	if len(locs) == 0 {
		return nil, fmt.Errorf("%w: %w", ErrBlockNotFound, format.ErrNotFound{Cid: c})
	}
	return locs, nil
}

// openPieces keeps the pieces a request opened, to read its next blocks
// from; nil opens and closes a piece for each block.
type openPieces map[cid.Cid]index.PieceReader

func (o openPieces) close() {
	for _, pr := range o {
		pr.Close()
	}
}

// load returns the data of block c from the first piece that serves it,
// and where it was read; pieces opened stay in open.
func (b *Blockstore) load(ctx context.Context, c cid.Cid, open openPieces) ([]byte, index.Location, error) {
	if isIdentity(c) {
		data, err := identityData(c)
		return data, index.Location{}, err
	}
	locs, err := b.locate(ctx, c)
	if err != nil {
		return nil, index.Location{}, err
	}
	var errs []error
	for _, loc := range locs {
		data, err := b.readAt(ctx, loc, c, open)
		if err == nil {
			return data, loc, nil
		}
		errs = append(errs, fmt.Errorf("piece %s: %w", loc.PieceCID, err))
	}
	err = fmt.Errorf("reading block %s: %w", c, errors.Join(errs...))
	switch {
	case errors.Is(err, index.ErrNoUnsealedCopy):
		err = gateway.NewErrorStatusCode(err, http.StatusGone)
	case errors.Is(err, index.ErrUnsealing):
		err = gateway.NewErrorRetryAfter(gateway.NewErrorStatusCode(err, http.StatusServiceUnavailable), retryUnsealing)
	}
	return nil, index.Location{}, err
}

// readAt reads block c from the section at loc.
func (b *Blockstore) readAt(ctx context.Context, loc index.Location, c cid.Cid, open openPieces) ([]byte, error) {
	pr, ok := open[loc.PieceCID]
	if !ok {
		var err error
		if pr, err = b.src.ReadPiece(ctx, loc.PieceCID); err != nil {
			return nil, fmt.Errorf("opening the piece: %w", err)
		}
		if open != nil {
			open[loc.PieceCID] = pr
		} else {
			defer pr.Close()
		}
	}
	return readSection(pr, loc, c)
}
