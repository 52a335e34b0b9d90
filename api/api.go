// Package api is ferryd's operator API: the methods behind `ferryd deal`,
// `ferryd sectors`, `ferryd ask`, `ferryd index` and `ferryd info`, served
// over JSON-RPC (namespace "Ferry", path /rpc/v0) as lotus-miner serves its
// own. The running daemon writes its address to <repo>/api and an admin
// token to <repo>/token; Dial reads both.
package api

import (
	"context"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/cluster"
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

	// ClusterList lists the nodes sharing the database, with their roles,
	// heartbeats, storage paths and the leases they hold.
	ClusterList(ctx context.Context) ([]cluster.NodeInfo, error)
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
	ChainHead    abi.ChainEpoch `json:"chainHead"`
	MarketEscrow big.Int        `json:"marketEscrow"`
	MarketLocked big.Int        `json:"marketLocked"`
	WorkerFunds  big.Int        `json:"workerFunds"`
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
