// Package api is ferryd's operator API: the methods behind `ferryd deal`,
// `ferryd sectors`, `ferryd ask`, `ferryd index`, `ferryd auth` and `ferryd
// info`, served over JSON-RPC (namespace "Ferry", path /rpc/v0) as
// lotus-miner serves its own.
//
// Every method needs a token (package auth): the read methods a token with
// read, the others admin, as the perm tags of Methods say; a request
// without a token is refused before any method runs. The running daemon
// writes its address to <repo>/api and an admin token to <repo>/token (mode
// 0600); Dial reads both, or FERRY_API_INFO ("<token>:<multiaddr>", as
// `ferryd auth api-info` prints it) when that is set.
package api

import (
	"context"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/wire"
)

// Ferry is what the operator API offers.
type Ferry interface {
	// Info describes the provider: miner, peer, addresses, chain head.
	Info(ctx context.Context) (Info, error)

	// DealList lists the deals the filter selects, newest first.
	DealList(ctx context.Context, f market.DealFilter) ([]market.DealInfo, error)
	// DealShow returns one deal with its log.
	DealShow(ctx context.Context, id uuid.UUID) (*market.DealDetail, error)
	// DealRetry resumes a deal waiting for an operator.
	DealRetry(ctx context.Context, id uuid.UUID) error
	// DealFail fails a deal for good, releasing its funds and space.
	DealFail(ctx context.Context, id uuid.UUID) error
	// DealCancel stops a deal that is still transferring.
	DealCancel(ctx context.Context, id uuid.UUID) error
	// DealImportData gives an offline deal its data from a file on the
	// daemon's machine.
	DealImportData(ctx context.Context, id uuid.UUID, path string) error
	// PublishNow publishes the deals waiting for a batch at once.
	PublishNow(ctx context.Context) error

	// AskGet returns the signed storage ask.
	AskGet(ctx context.Context) (*wire.SignedStorageAsk, error)
	// AskSet replaces the storage ask.
	AskSet(ctx context.Context, ask market.AskParams) (*wire.SignedStorageAsk, error)

	// SectorsList lists the sectors.
	SectorsList(ctx context.Context) ([]sealing.SectorInfo, error)
	// SectorsStatus returns one sector with its pieces.
	SectorsStatus(ctx context.Context, n abi.SectorNumber) (sealing.SectorInfo, error)

	// IndexList lists the indexed pieces.
	IndexList(ctx context.Context) ([]PieceIndexInfo, error)
	// IndexStatus describes one piece of the index, with the progress of
	// an indexing run under way.
	IndexStatus(ctx context.Context, piece cid.Cid) (PieceIndexInfo, error)
	// IndexRebuild re-indexes a piece from its unsealed copy.
	IndexRebuild(ctx context.Context, piece cid.Cid) (int64, error)
	// IndexAnnounce (re)announces a piece to IPNI.
	IndexAnnounce(ctx context.Context, piece cid.Cid) (cid.Cid, error)

	// AuthNew mints a token for this API granting perms.
	AuthNew(ctx context.Context, perms []auth.Permission) (string, error)
	// ChainAuthNew mints a token for the devnet's chain API (Info.ChainAPI)
	// granting perms; it fails on the real network, whose chain is a Lotus
	// node with its own tokens.
	ChainAuthNew(ctx context.Context, perms []auth.Permission) (string, error)
	// MinerAuthNew mints a token for the lotus-miner API this ferryd's
	// sealing serves (Info.MinerAPI) granting perms; it fails when it
	// serves none.
	MinerAuthNew(ctx context.Context, perms []auth.Permission) (string, error)
}

// Info describes a running ferryd.
type Info struct {
	Version      string         `json:"version"`
	Miner        string         `json:"miner"`
	Worker       string         `json:"worker"`
	SectorSize   abi.SectorSize `json:"sectorSize"`
	PeerID       string         `json:"peerId"`
	Addresses    []string       `json:"addresses"` // libp2p multiaddrs with /p2p/
	RetrievalURL string         `json:"retrievalUrl"`
	ChainMode    string         `json:"chainMode"` // "devnet" or "lotus"
	ChainAPI     string         `json:"chainApi"`  // the devnet's Lotus API as a multiaddr (/ip4/…/tcp/…/http); empty on the real network
	ChainHead    abi.ChainEpoch `json:"chainHead"`
	MarketEscrow big.Int        `json:"marketEscrow"`
	MarketLocked big.Int        `json:"marketLocked"`
	WorkerFunds  big.Int        `json:"workerFunds"`

	// Subsystems are the parts this ferryd runs: "markets", "sealing".
	Subsystems []string `json:"subsystems"`
	// SealingBackend is where the market's pieces go, "own" or
	// "lotus-miner" (empty without a market), and SealerAPI the URL of
	// that lotus-miner's API.
	SealingBackend string `json:"sealingBackend,omitempty"`
	SealerAPI      string `json:"sealerApi,omitempty"`
	// MinerAPI is the lotus-miner API this ferryd's sealing serves, as a
	// multiaddr (/ip4/…/tcp/2345/http); empty when it serves none.
	MinerAPI string `json:"minerApi,omitempty"`
}

// PieceIndexInfo is one indexed piece.
type PieceIndexInfo struct {
	PieceCID  string `json:"pieceCid"`
	State     string `json:"state"` // "indexing", "indexed" or "failed"
	Blocks    int64  `json:"blocks"`
	Aggregate bool   `json:"aggregate"` // an FRC-0058 aggregate whose sub-pieces are indexed too
	Announced bool   `json:"announced"` // advertised to IPNI
	Error     string `json:"error,omitempty"`
	// BytesRead of BytesTotal: how far an indexing run under way has read
	// (BytesTotal is 0 when unknown).
	BytesRead  int64 `json:"bytesRead,omitempty"`
	BytesTotal int64 `json:"bytesTotal,omitempty"`
}
