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
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/cluster"
	"github.com/ferry-fil/ferry/ipni"
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
	// DealImportDirect takes a direct data onboarding deal (FIP-0076): a
	// client's allocation claimed with a piece whose data is a file on the
	// daemon's machine (or a download), after Boost's import-direct checks.
	DealImportDirect(ctx context.Context, dd market.DirectDeal) (*market.DealInfo, error)
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
	// an indexing run under way. Pieces are named by CID v1 or v2 here and
	// below.
	IndexStatus(ctx context.Context, piece cid.Cid) (PieceIndexInfo, error)
	// IndexRebuild re-indexes a piece from its unsealed copy.
	IndexRebuild(ctx context.Context, piece cid.Cid) (int64, error)
	// IndexAnnounce (re)announces a piece to IPNI.
	IndexAnnounce(ctx context.Context, piece cid.Cid) (cid.Cid, error)

	// ClusterList lists the nodes sharing the database, with their roles,
	// heartbeats, storage paths and the leases they hold.
	ClusterList(ctx context.Context) ([]cluster.NodeInfo, error)
	// AuthNew mints a token for this API granting perms.
	AuthNew(ctx context.Context, perms []auth.Permission) (string, error)
	// ChainAuthNew mints a token for the devnet's chain API (Info.ChainAPI)
	// granting perms; it fails on the real network, whose chain is a Lotus
	// node with its own tokens.
	ChainAuthNew(ctx context.Context, perms []auth.Permission) (string, error)
	// Overview is the provider at a glance: deals by state, ingest
	// history, transfers, funds, staging, sectors, index, IPNI, chain.
	Overview(ctx context.Context) (Overview, error)
	// Transfers lists the deal data downloads and imports under way.
	Transfers(ctx context.Context) ([]Transfer, error)
	// PieceShow describes one piece (CID v1 or v2): its deals, where it
	// is in sectors, its unsealed copy, index and IPNI advertisement.
	PieceShow(ctx context.Context, piece cid.Cid) (PieceDetail, error)
	// PieceCheckRetrieval fetches the start of the piece through the
	// retrieval server's /piece and its payload root block through /ipfs,
	// as a client would, and reports what came back.
	PieceCheckRetrieval(ctx context.Context, piece cid.Cid) (RetrievalCheck, error)
	// ConfigShow returns config.toml as the daemon loaded it, secrets
	// replaced by "<redacted>".
	ConfigShow(ctx context.Context) (string, error)
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
	// ChainHeadTime is the head's timestamp and BlockDelayMillis the
	// time between epochs, to place epochs in time.
	ChainHeadTime    time.Time `json:"chainHeadTime"`
	BlockDelayMillis int64     `json:"blockDelayMillis"`
	MarketEscrow     big.Int   `json:"marketEscrow"`
	MarketLocked     big.Int   `json:"marketLocked"`
	WorkerFunds      big.Int   `json:"workerFunds"`
}

// PieceIndexInfo is one indexed piece: its CID v1, and once its sizes are
// known its padded size, its payload's and its CID v2 (FRC-0069).
type PieceIndexInfo struct {
	PieceCID   string `json:"pieceCid"`
	PieceCIDv2 string `json:"pieceCidV2,omitempty"`
	PieceSize  uint64 `json:"pieceSize,omitempty"`
	RawSize    uint64 `json:"rawSize,omitempty"`
	State      string `json:"state"` // "indexing", "indexed" or "failed"
	Blocks     int64  `json:"blocks"`
	Aggregate  bool   `json:"aggregate"` // an FRC-0058 aggregate whose sub-pieces are indexed too
	Announced  bool   `json:"announced"` // advertised to IPNI
	Error      string `json:"error,omitempty"`
	// BytesRead of BytesTotal: how far an indexing run under way has read
	// (BytesTotal is 0 when unknown).
	BytesRead  int64 `json:"bytesRead,omitempty"`
	BytesTotal int64 `json:"bytesTotal,omitempty"`
}

// Overview is the provider at a glance, for the operator's dashboard.
type Overview struct {
	Info Info `json:"info"`
	// ChainLag is how far the head's timestamp is behind the wall clock,
	// in seconds and in epochs.
	ChainLagSeconds int64 `json:"chainLagSeconds"`
	ChainLagEpochs  int64 `json:"chainLagEpochs"`
	// Deals counts the deals by state and checkpoint.
	Deals []market.DealCount `json:"deals"`
	// IngestHourly covers the last 24 hours, IngestDaily the last 30 days,
	// oldest first.
	IngestHourly []market.IngestBucket `json:"ingestHourly"`
	IngestDaily  []market.IngestBucket `json:"ingestDaily"`
	// Transfers are the downloads and imports under way.
	Transfers []Transfer `json:"transfers"`
	// Reserved is what the market's tags hold (staging bytes, collateral,
	// publish fees); StagingUsed the bytes of the staging files on disk.
	Reserved    market.Reserved `json:"reserved"`
	StagingUsed uint64          `json:"stagingUsed"`
	// Sectors and IndexPieces count sectors and indexed pieces by state.
	Sectors     map[string]int64 `json:"sectors"`
	IndexPieces map[string]int64 `json:"indexPieces"`
	IPNI        IPNIStatus       `json:"ipni"`
	// Errors name the parts whose figures could not be read this time
	// (the rest of the overview is still filled in).
	Errors []string `json:"errors,omitempty"`
}

// IPNIStatus is the state of the IPNI announcer.
type IPNIStatus struct {
	Enabled bool   `json:"enabled"`
	Head    string `json:"head,omitempty"` // the latest advertisement
	// Indexers are where announcements are sent, and whether each has
	// taken the head.
	Indexers []ipni.IndexerState `json:"indexers"`
}

// Transfer is a deal's data arriving: downloaded over HTTP or imported.
type Transfer struct {
	DealUUID       string  `json:"dealUuid"`
	Client         string  `json:"client"`
	PieceCID       string  `json:"pieceCid"`
	IsOffline      bool    `json:"isOffline"` // an import-data under way
	Size           uint64  `json:"size"`      // bytes expected (0: unknown)
	Received       uint64  `json:"received"`
	Retry          string  `json:"retry,omitempty"`
	Error          string  `json:"error,omitempty"`
	BytesPerSecond float64 `json:"bytesPerSecond"` // over the last seconds; 0 until measured
	// ETASeconds is the time left at that rate (0: unknown).
	ETASeconds int64 `json:"etaSeconds"`
}

// PieceDetail is everything about one piece.
type PieceDetail struct {
	PieceCID   string `json:"pieceCid"`             // v1
	PieceCIDv2 string `json:"pieceCidV2,omitempty"` // when the payload size is known
	PieceSize  uint64 `json:"pieceSize"`            // padded
	// Deals hold the piece, newest first.
	Deals []market.DealInfo `json:"deals"`
	// Sectors are the piece's places in sectors.
	Sectors []PiecePlacement `json:"sectors"`
	// Unsealed says whether an unsealed copy can be read now.
	Unsealed bool `json:"unsealed"`
	// Index is the piece's index entry; nil when not indexed.
	Index *PieceIndexInfo `json:"index,omitempty"`
	// IPNI is the piece's latest advertisement; nil when never announced.
	IPNI *PieceAd `json:"ipni,omitempty"`
}

// PiecePlacement is one copy of a piece in a sector.
type PiecePlacement struct {
	Sector   abi.SectorNumber `json:"sector"`
	Offset   uint64           `json:"offset"` // padded bytes
	Size     uint64           `json:"size"`   // padded bytes
	State    string           `json:"state"`  // the sector's state
	Written  bool             `json:"written"`
	Unsealed bool             `json:"unsealed"` // the sector keeps an unsealed copy
	DealUUID string           `json:"dealUuid,omitempty"`
}

// PieceAd is the latest IPNI advertisement of a piece.
type PieceAd struct {
	AdCID     string              `json:"adCid"`
	Seq       int64               `json:"seq"`
	Removal   bool                `json:"removal"`   // the ad withdraws the piece
	Announced bool                `json:"announced"` // the piece is advertised now
	Entries   int64               `json:"entries"`
	CreatedAt time.Time           `json:"createdAt"`
	Indexers  []ipni.IndexerState `json:"indexers"` // where the chain's head is announced, and whether each took it
}

// RetrievalCheck is what a client got back from the retrieval server.
type RetrievalCheck struct {
	Piece RetrievalProbe `json:"piece"` // a range of /piece/{cid}
	Block RetrievalProbe `json:"block"` // the payload root through /ipfs/{cid}
}

// RetrievalProbe is one request of a RetrievalCheck.
type RetrievalProbe struct {
	URL    string `json:"url"`
	Status int    `json:"status"` // HTTP status; 0 when no answer came
	Bytes  int64  `json:"bytes"`  // body bytes received
	// OK says the answer was what a client needs (the range's bytes, a
	// CAR holding the block); Error says why not.
	OK         bool   `json:"ok"`
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"durationMs"`
}
