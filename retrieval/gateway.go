package retrieval

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/exchange/offline"
	"github.com/ipfs/boxo/gateway"
	"github.com/ipfs/boxo/path"
)

// backend is boxo's blocks backend over the Blockstore, with one fast
// path of ours: CARs of a whole DAG without duplicates, which stream the
// root's piece in order (dagCAR) instead of walking the DAG with
// ipld-prime selectors block by block.
type backend struct {
	*gateway.BlocksBackend
	bs        *Blockstore
	fastWhole bool
}

func newBackend(bs *Blockstore, fastWhole bool) (*backend, error) {
	bsvc := blockservice.New(bs, offline.Exchange(bs))
	bb, err := gateway.NewBlocksBackend(bsvc)
	if err != nil {
		return nil, fmt.Errorf("creating the gateway backend: %w", err)
	}
	return &backend{BlocksBackend: bb, bs: bs, fastWhole: fastWhole}, nil
}

// GetCAR serves CAR requests: dag-scope=all on a bare CID (with or
// without entity-bytes, which a whole DAG ignores) and without duplicates
// through dagCAR, everything else through boxo.
func (b *backend) GetCAR(ctx context.Context, p path.ImmutablePath, params gateway.CarParams) (gateway.ContentPathMetadata, io.ReadCloser, error) {
	// boxo answers a root it does not have with an empty CAR; a root that
	// is stored nowhere here is a 404, as for a raw block.
	root := p.RootCid()
	if has, err := b.bs.Has(ctx, root); err != nil || !has {
		if err == nil {
			err = gateway.NewErrorStatusCode(fmt.Errorf("%s is not stored here", root), http.StatusNotFound)
		}
		return gateway.ContentPathMetadata{}, nil, err
	}
	if !b.fastWhole || params.Scope != gateway.DagScopeAll || params.Duplicates.Bool() || len(p.Segments()) != 2 {
		return b.BlocksBackend.GetCAR(ctx, p, params)
	}
	md, err := b.ResolvePath(ctx, p)
	if err != nil {
		return b.BlocksBackend.GetCAR(ctx, p, params)
	}
	return md, newDAGCAR(ctx, b.bs, root), nil
}
