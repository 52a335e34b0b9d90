package node

import (
	"context"
	"fmt"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/build"
	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/wire"
)

// nodeAPI serves the operator API from the node's parts.
type nodeAPI struct {
	n      *Node
	secret []byte // signs the API's tokens
}

var _ api.Ferry = (*nodeAPI)(nil)

func (a *nodeAPI) Info(ctx context.Context) (api.Info, error) {
	n := a.n
	info := api.Info{
		Version:      build.Version,
		Miner:        n.Miner.String(),
		Worker:       n.Worker.String(),
		PeerID:       n.Host.ID().String(),
		RetrievalURL: n.RetrievalURL(),
		ChainMode:    n.Config.Chain.Mode,
	}
	if n.Devnet != nil {
		var err error
		if info.ChainAPI, err = APIMultiaddr(n.Config.Chain.DevnetListen); err != nil {
			return info, fmt.Errorf("reading Chain.DevnetListen: %w", err)
		}
	}
	for _, m := range n.announceAddrs() {
		info.Addresses = append(info.Addresses, m.String()+"/p2p/"+peer.ID(n.Host.ID()).String())
	}
	head, err := n.Chain.ChainHead(ctx)
	if err != nil {
		return info, fmt.Errorf("reading the chain head: %w", err)
	}
	info.ChainHead = head.Height()
	mi, err := n.Chain.StateMinerInfo(ctx, n.Miner, chain.EmptyTSK)
	if err != nil {
		return info, fmt.Errorf("reading miner %s: %w", n.Miner, err)
	}
	info.SectorSize = mi.SectorSize
	bal, err := n.Chain.StateMarketBalance(ctx, n.Miner, chain.EmptyTSK)
	if err != nil {
		return info, fmt.Errorf("reading the market balance: %w", err)
	}
	info.MarketEscrow, info.MarketLocked = bal.Escrow, bal.Locked
	if info.WorkerFunds, err = n.Chain.WalletBalance(ctx, n.Worker); err != nil {
		return info, fmt.Errorf("reading the worker balance: %w", err)
	}
	return info, nil
}

func (a *nodeAPI) DealList(ctx context.Context, f market.DealFilter) ([]market.DealInfo, error) {
	return a.n.Provider.Deals(ctx, f)
}

func (a *nodeAPI) DealShow(ctx context.Context, id uuid.UUID) (*market.DealDetail, error) {
	return a.n.Provider.Deal(ctx, id)
}

func (a *nodeAPI) DealRetry(ctx context.Context, id uuid.UUID) error {
	return a.n.Provider.Retry(ctx, id)
}

func (a *nodeAPI) DealFail(ctx context.Context, id uuid.UUID) error {
	return a.n.Provider.Fail(ctx, id)
}

func (a *nodeAPI) DealCancel(ctx context.Context, id uuid.UUID) error {
	return a.n.Provider.Cancel(ctx, id)
}

func (a *nodeAPI) DealImportData(ctx context.Context, id uuid.UUID, path string) error {
	return a.n.Provider.ImportData(ctx, id, path)
}

func (a *nodeAPI) DealImportDirect(ctx context.Context, dd market.DirectDeal) (*market.DealInfo, error) {
	return a.n.Provider.ImportDirect(ctx, dd)
}

func (a *nodeAPI) PublishNow(ctx context.Context) error {
	return a.n.Provider.PublishNow(ctx)
}

func (a *nodeAPI) AskGet(ctx context.Context) (*wire.SignedStorageAsk, error) {
	return a.n.Provider.Ask(ctx)
}

func (a *nodeAPI) AskSet(ctx context.Context, ask market.AskParams) (*wire.SignedStorageAsk, error) {
	return a.n.Provider.SetAsk(ctx, ask)
}

func (a *nodeAPI) SectorsList(ctx context.Context) ([]sealing.SectorInfo, error) {
	return a.n.Sealing.Sectors(ctx)
}

func (a *nodeAPI) SectorsStatus(ctx context.Context, num abi.SectorNumber) (sealing.SectorInfo, error) {
	return a.n.Sealing.Sector(ctx, num)
}

func (a *nodeAPI) IndexList(ctx context.Context) ([]api.PieceIndexInfo, error) {
	pieces, err := a.n.Index.Pieces(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.PieceIndexInfo, 0, len(pieces))
	for _, p := range pieces {
		pi, err := a.pieceIndexInfo(ctx, p)
		if err != nil {
			return nil, err
		}
		out = append(out, pi)
	}
	return out, nil
}

// pieceV1 is the CID v1 the index knows a piece by, given either version.
func pieceV1(c cid.Cid) (cid.Cid, error) {
	v1, _, _, err := piece.ParseAnyCID(c)
	return v1, err
}

func (a *nodeAPI) IndexStatus(ctx context.Context, pc cid.Cid) (api.PieceIndexInfo, error) {
	v1, err := pieceV1(pc)
	if err != nil {
		return api.PieceIndexInfo{}, err
	}
	p, err := a.n.Index.Piece(ctx, v1)
	if err != nil {
		return api.PieceIndexInfo{}, err
	}
	return a.pieceIndexInfo(ctx, p)
}

func (a *nodeAPI) pieceIndexInfo(ctx context.Context, p index.PieceInfo) (api.PieceIndexInfo, error) {
	pi := api.PieceIndexInfo{PieceCID: p.PieceCID.String(), State: p.State, Blocks: p.Blocks, Aggregate: p.Aggregate, Error: p.Error,
		BytesRead: p.BytesRead, BytesTotal: p.BytesTotal, PieceSize: uint64(p.PieceSize), RawSize: p.RawSize}
	if p.PieceCIDv2.Defined() {
		pi.PieceCIDv2 = p.PieceCIDv2.String()
	}
	if a.n.IPNI != nil {
		var err error
		if pi.Announced, err = a.n.IPNI.IsAnnounced(ctx, p.PieceCID); err != nil {
			return api.PieceIndexInfo{}, err
		}
	}
	return pi, nil
}

func (a *nodeAPI) IndexRebuild(ctx context.Context, pc cid.Cid) (int64, error) {
	v1, err := pieceV1(pc)
	if err != nil {
		return 0, err
	}
	res, err := a.n.Index.Rebuild(ctx, v1)
	return res.Blocks, err
}

func (a *nodeAPI) IndexAnnounce(ctx context.Context, pc cid.Cid) (cid.Cid, error) {
	v1, err := pieceV1(pc)
	if err != nil {
		return cid.Undef, err
	}
	if a.n.IPNI == nil {
		return cid.Undef, fmt.Errorf("IPNI is off (IPNI.Enable in config.toml)")
	}
	return a.n.IPNI.AnnouncePiece(ctx, v1)
}

func (a *nodeAPI) AuthNew(ctx context.Context, perms []auth.Permission) (string, error) {
	if len(perms) == 0 {
		return "", fmt.Errorf("no permissions given for the token")
	}
	return auth.Mint(a.secret, perms...)
}

func (a *nodeAPI) ChainAuthNew(ctx context.Context, perms []auth.Permission) (string, error) {
	if len(perms) == 0 {
		return "", fmt.Errorf("no permissions given for the token")
	}
	if a.n.Devnet == nil {
		return "", fmt.Errorf("the chain is a Lotus node: make its tokens with `lotus auth create-token`")
	}
	return a.n.Devnet.Token(perms...)
}
