package node

import (
	"context"
	"io"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"

	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/transfer"
)

// sealerAdapter gives the market the sealing subsystem in the market's
// terms.
type sealerAdapter struct{ s *sealing.Sealing }

func (a sealerAdapter) AddPieceToAny(ctx context.Context, size abi.UnpaddedPieceSize, data io.Reader, d market.SealingDeal) (market.Placement, error) {
	p, err := a.s.AddPieceToAny(ctx, size, data, sealing.Deal{
		UUID: d.UUID, DealID: d.DealID, PublishCid: d.PublishCid, Proposal: d.Proposal, KeepUnsealed: d.KeepUnsealed,
	})
	return market.Placement{Sector: p.Sector, Offset: p.Offset, Size: p.Size}, err
}

func (a sealerAdapter) DealSectorState(ctx context.Context, id uuid.UUID) (abi.SectorNumber, string, error) {
	st, err := a.s.SectorStatus(ctx, id)
	return st.Sector, string(st.State), err
}

// downloaderAdapter gives the market the HTTP downloader.
type downloaderAdapter struct{ d *transfer.Downloader }

func (a downloaderAdapter) Download(ctx context.Context, req market.TransferRequest, path string, tee io.Writer, progress func(uint64)) error {
	return a.d.Download(ctx, transfer.Request{URL: req.URL, Headers: req.Headers, Size: req.Size}, path, tee, progress)
}
