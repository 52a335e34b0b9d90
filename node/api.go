package node

import (
	"context"
	"errors"
	"fmt"
	"slices"

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
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/wire"
)

// nodeAPI serves the operator API from the node's parts.
type nodeAPI struct {
	n      *Node
	secret []byte // signs the API's tokens
}

var _ api.Ferry = (*nodeAPI)(nil)

// market fails for a ferryd that runs no market.
func (a *nodeAPI) market() error {
	if a.n.Provider == nil {
		return errors.New("this ferryd runs no market (Subsystems.EnableMarkets = false): deals, the ask and the piece index are its market's")
	}
	return nil
}

func (a *nodeAPI) Info(ctx context.Context) (api.Info, error) {
	n := a.n
	info := api.Info{
		Version:    build.Version,
		Miner:      n.Miner.String(),
		Worker:     n.Worker.String(),
		ChainMode:  n.Config.Chain.Mode,
		Subsystems: []string{},
		MinerAPI:   n.minerAPIAddr,
	}
	if n.Devnet != nil {
		var err error
		if info.ChainAPI, err = APIMultiaddr(n.Config.Chain.DevnetListen); err != nil {
			return info, fmt.Errorf("reading Chain.DevnetListen: %w", err)
		}
	}
	if n.Config.Subsystems.EnableMarkets {
		info.Subsystems = append(info.Subsystems, "markets")
		info.PeerID, info.RetrievalURL, info.SealingBackend = n.Host.ID().String(), n.RetrievalURL(), n.Config.Sealing.Backend
		for _, m := range n.announceAddrs() {
			info.Addresses = append(info.Addresses, m.String()+"/p2p/"+peer.ID(n.Host.ID()).String())
		}
		if n.MinerAPI != nil {
			info.SealerAPI = n.MinerAPI.URL()
		}
	}
	if n.Config.Subsystems.EnableSealing {
		info.Subsystems = append(info.Subsystems, "sealing")
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
	if err := a.market(); err != nil {
		return nil, err
	}
	return a.n.Provider.Deals(ctx, f)
}

func (a *nodeAPI) DealShow(ctx context.Context, id uuid.UUID) (*market.DealDetail, error) {
	if err := a.market(); err != nil {
		return nil, err
	}
	return a.n.Provider.Deal(ctx, id)
}

func (a *nodeAPI) DealRetry(ctx context.Context, id uuid.UUID) error {
	if err := a.market(); err != nil {
		return err
	}
	return a.n.Provider.Retry(ctx, id)
}

func (a *nodeAPI) DealFail(ctx context.Context, id uuid.UUID) error {
	if err := a.market(); err != nil {
		return err
	}
	return a.n.Provider.Fail(ctx, id)
}

func (a *nodeAPI) DealCancel(ctx context.Context, id uuid.UUID) error {
	if err := a.market(); err != nil {
		return err
	}
	return a.n.Provider.Cancel(ctx, id)
}

func (a *nodeAPI) DealImportData(ctx context.Context, id uuid.UUID, path string) error {
	if err := a.market(); err != nil {
		return err
	}
	return a.n.Provider.ImportData(ctx, id, path)
}

func (a *nodeAPI) PublishNow(ctx context.Context) error {
	if err := a.market(); err != nil {
		return err
	}
	return a.n.Provider.PublishNow(ctx)
}

func (a *nodeAPI) AskGet(ctx context.Context) (*wire.SignedStorageAsk, error) {
	if err := a.market(); err != nil {
		return nil, err
	}
	return a.n.Provider.Ask(ctx)
}

func (a *nodeAPI) AskSet(ctx context.Context, ask market.AskParams) (*wire.SignedStorageAsk, error) {
	if err := a.market(); err != nil {
		return nil, err
	}
	return a.n.Provider.SetAsk(ctx, ask)
}

// SectorsList lists ferryd's sectors, or lotus-miner's when the market
// hands its pieces there.
func (a *nodeAPI) SectorsList(ctx context.Context) ([]sealing.SectorInfo, error) {
	if a.n.Sealing != nil {
		return a.n.Sealing.Sectors(ctx)
	}
	nums, err := a.n.MinerAPI.SectorsList(ctx)
	if err != nil {
		return nil, err
	}
	slices.Sort(nums)
	out := make([]sealing.SectorInfo, 0, len(nums))
	for _, num := range nums {
		si, err := a.n.MinerAPI.SectorsStatus(ctx, num, false)
		if err != nil {
			return nil, err
		}
		out = append(out, sectorInfo(si, a.n.sectorSize))
	}
	return out, nil
}

func (a *nodeAPI) SectorsStatus(ctx context.Context, num abi.SectorNumber) (sealing.SectorInfo, error) {
	if a.n.Sealing != nil {
		return a.n.Sealing.Sector(ctx, num)
	}
	si, err := a.n.MinerAPI.SectorsStatus(ctx, num, false)
	if err != nil {
		return sealing.SectorInfo{}, err
	}
	return sectorInfo(si, a.n.sectorSize), nil
}

func (a *nodeAPI) IndexList(ctx context.Context) ([]api.PieceIndexInfo, error) {
	if err := a.market(); err != nil {
		return nil, err
	}
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

func (a *nodeAPI) IndexStatus(ctx context.Context, piece cid.Cid) (api.PieceIndexInfo, error) {
	if err := a.market(); err != nil {
		return api.PieceIndexInfo{}, err
	}
	p, err := a.n.Index.Piece(ctx, piece)
	if err != nil {
		return api.PieceIndexInfo{}, err
	}
	return a.pieceIndexInfo(ctx, p)
}

func (a *nodeAPI) pieceIndexInfo(ctx context.Context, p index.PieceInfo) (api.PieceIndexInfo, error) {
	pi := api.PieceIndexInfo{PieceCID: p.PieceCID.String(), State: p.State, Blocks: p.Blocks, Aggregate: p.Aggregate, Error: p.Error,
		BytesRead: p.BytesRead, BytesTotal: p.BytesTotal}
	if a.n.IPNI != nil {
		var err error
		if pi.Announced, err = a.n.IPNI.IsAnnounced(ctx, p.PieceCID); err != nil {
			return api.PieceIndexInfo{}, err
		}
	}
	return pi, nil
}

func (a *nodeAPI) IndexRebuild(ctx context.Context, piece cid.Cid) (int64, error) {
	if err := a.market(); err != nil {
		return 0, err
	}
	res, err := a.n.Index.Rebuild(ctx, piece)
	return res.Blocks, err
}

func (a *nodeAPI) IndexAnnounce(ctx context.Context, piece cid.Cid) (cid.Cid, error) {
	if a.n.IPNI == nil {
		return cid.Undef, fmt.Errorf("IPNI is off (IPNI.Enable in config.toml)")
	}
	return a.n.IPNI.AnnouncePiece(ctx, piece)
}

func (a *nodeAPI) MinerAuthNew(ctx context.Context, perms []auth.Permission) (string, error) {
	if len(perms) == 0 {
		return "", fmt.Errorf("no permissions given for the token")
	}
	return a.n.minerAuthNew(perms)
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
