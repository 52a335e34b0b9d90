package api

// Code below forwards each Ferry method to its Methods field; keep it in
// step with Methods.

import (
	"context"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/cluster"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/wire"
)

// Info calls the daemon.
func (s *Struct) Info(ctx context.Context) (Info, error) {
	return s.Internal.Info(ctx)
}

// DealList calls the daemon.
func (s *Struct) DealList(ctx context.Context, f market.DealFilter) ([]market.DealInfo, error) {
	return s.Internal.DealList(ctx, f)
}

// DealShow calls the daemon.
func (s *Struct) DealShow(ctx context.Context, id uuid.UUID) (*market.DealDetail, error) {
	return s.Internal.DealShow(ctx, id)
}

// DealRetry calls the daemon.
func (s *Struct) DealRetry(ctx context.Context, id uuid.UUID) error {
	return s.Internal.DealRetry(ctx, id)
}

// DealFail calls the daemon.
func (s *Struct) DealFail(ctx context.Context, id uuid.UUID) error {
	return s.Internal.DealFail(ctx, id)
}

// DealCancel calls the daemon.
func (s *Struct) DealCancel(ctx context.Context, id uuid.UUID) error {
	return s.Internal.DealCancel(ctx, id)
}

// DealImportData calls the daemon.
func (s *Struct) DealImportData(ctx context.Context, id uuid.UUID, path string) error {
	return s.Internal.DealImportData(ctx, id, path)
}

// DealImportDirect calls the daemon.
func (s *Struct) DealImportDirect(ctx context.Context, dd market.DirectDeal) (*market.DealInfo, error) {
	return s.Internal.DealImportDirect(ctx, dd)
}

// PublishNow calls the daemon.
func (s *Struct) PublishNow(ctx context.Context) error {
	return s.Internal.PublishNow(ctx)
}

// AskGet calls the daemon.
func (s *Struct) AskGet(ctx context.Context) (*wire.SignedStorageAsk, error) {
	return s.Internal.AskGet(ctx)
}

// AskSet calls the daemon.
func (s *Struct) AskSet(ctx context.Context, ask market.AskParams) (*wire.SignedStorageAsk, error) {
	return s.Internal.AskSet(ctx, ask)
}

// SectorsList calls the daemon.
func (s *Struct) SectorsList(ctx context.Context) ([]sealing.SectorInfo, error) {
	return s.Internal.SectorsList(ctx)
}

// SectorsStatus calls the daemon.
func (s *Struct) SectorsStatus(ctx context.Context, n abi.SectorNumber) (sealing.SectorInfo, error) {
	return s.Internal.SectorsStatus(ctx, n)
}

// IndexList calls the daemon.
func (s *Struct) IndexList(ctx context.Context) ([]PieceIndexInfo, error) {
	return s.Internal.IndexList(ctx)
}

// IndexStatus calls the daemon.
func (s *Struct) IndexStatus(ctx context.Context, piece cid.Cid) (PieceIndexInfo, error) {
	return s.Internal.IndexStatus(ctx, piece)
}

// IndexRebuild calls the daemon.
func (s *Struct) IndexRebuild(ctx context.Context, piece cid.Cid) (int64, error) {
	return s.Internal.IndexRebuild(ctx, piece)
}

// IndexAnnounce calls the daemon.
func (s *Struct) IndexAnnounce(ctx context.Context, piece cid.Cid) (cid.Cid, error) {
	return s.Internal.IndexAnnounce(ctx, piece)
}

// ClusterList calls the daemon.
func (s *Struct) ClusterList(ctx context.Context) ([]cluster.NodeInfo, error) {
	return s.Internal.ClusterList(ctx)
}

// AuthNew calls the daemon.
func (s *Struct) AuthNew(ctx context.Context, perms []auth.Permission) (string, error) {
	return s.Internal.AuthNew(ctx, perms)
}

// ChainAuthNew calls the daemon.
func (s *Struct) ChainAuthNew(ctx context.Context, perms []auth.Permission) (string, error) {
	return s.Internal.ChainAuthNew(ctx, perms)
}

// Overview calls the daemon.
func (s *Struct) Overview(ctx context.Context) (Overview, error) {
	return s.Internal.Overview(ctx)
}

// Transfers calls the daemon.
func (s *Struct) Transfers(ctx context.Context) ([]Transfer, error) {
	return s.Internal.Transfers(ctx)
}

// PieceShow calls the daemon.
func (s *Struct) PieceShow(ctx context.Context, piece cid.Cid) (PieceDetail, error) {
	return s.Internal.PieceShow(ctx, piece)
}

// PieceCheckRetrieval calls the daemon.
func (s *Struct) PieceCheckRetrieval(ctx context.Context, piece cid.Cid) (RetrievalCheck, error) {
	return s.Internal.PieceCheckRetrieval(ctx, piece)
}

// ConfigShow calls the daemon.
func (s *Struct) ConfigShow(ctx context.Context) (string, error) {
	return s.Internal.ConfigShow(ctx)
}
