package market

import (
	"context"
	"errors"
	"io"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/transfer"
)

// This file holds every interface the market needs from outside, and what
// they are told. node adapts the other parts to them.

// Chain is what the market reads from the chain, and the worker's
// signature of the storage ask. chain.Node (Lotus, the devnet) has it.
type Chain interface {
	// Version reports the node's block delay.
	Version(ctx context.Context) (chain.APIVersion, error)
	// ChainHead returns the heaviest tipset.
	ChainHead(ctx context.Context) (*chain.TipSet, error)
	// StateMinerInfo returns the miner's worker (among others).
	StateMinerInfo(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) (chain.MinerInfo, error)
	// StateAccountKey resolves a client address to its key address.
	StateAccountKey(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (address.Address, error)
	// StateMarketBalance returns an address's escrow and locked funds in
	// the market actor.
	StateMarketBalance(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (chain.MarketBalance, error)
	// StateDealProviderCollateralBounds returns the provider collateral
	// bounds of a deal of the given size.
	StateDealProviderCollateralBounds(ctx context.Context, size abi.PaddedPieceSize, verified bool, tsk chain.TipSetKey) (chain.DealCollateralBounds, error)
	// StateVerifiedClientStatus returns a client's DataCap, nil for none.
	StateVerifiedClientStatus(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (*abi.StoragePower, error)
	// StateMarketStorageDeal returns a published deal and its state.
	StateMarketStorageDeal(ctx context.Context, id abi.DealID, tsk chain.TipSetKey) (*chain.MarketDeal, error)
	// StateLookupID resolves a direct deal's client to its ID address.
	StateLookupID(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (address.Address, error)
	// StateGetAllocation returns a client's verified allocation, nil when
	// there is none (a direct deal's, checked at import).
	StateGetAllocation(ctx context.Context, client address.Address, id chain.AllocationID, tsk chain.TipSetKey) (*chain.Allocation, error)
	// StateGetClaim returns the provider's claim of an allocation, nil
	// when there is none (a direct deal is Complete once its claim is on
	// chain).
	StateGetClaim(ctx context.Context, provider address.Address, id chain.ClaimID, tsk chain.TipSetKey) (*chain.Claim, error)
	// StateWaitMsg waits for a message to execute (publish messages signed
	// before the MessageSender sent them).
	StateWaitMsg(ctx context.Context, msg cid.Cid, confidence uint64, limit abi.ChainEpoch, allowReplaced bool) (*chain.MsgLookup, error)
	// WalletBalance returns an address's balance (the worker's, for
	// publish fees).
	WalletBalance(ctx context.Context, addr address.Address) (big.Int, error)
	// WalletSign signs data with an address's key (the worker's, for the
	// ask).
	WalletSign(ctx context.Context, addr address.Address, data []byte) (*crypto.Signature, error)
}

// MessageSender sends chain messages from one address with nonces it
// assigns, once per id (chain/sender.Sender).
type MessageSender interface {
	// Send signs and pushes msg (From, To, Value, Method, Params set;
	// nonce and gas filled in by the sender, the fee bounded by
	// spec.MaxFee) as the message named id. Calling it again with the
	// same id — after a crash, say — never sends a second message: it
	// returns the CID of the one already sent (pushing it again if the
	// pool lost it).
	Send(ctx context.Context, id uuid.UUID, msg *chain.Message, spec *chain.MessageSendSpec) (cid.Cid, error)
	// Wait waits until the message sent as id has executed with
	// confidence epochs on top and returns its lookup (Message is the
	// CID that executed, should it have been replaced).
	Wait(ctx context.Context, id uuid.UUID, confidence uint64) (*chain.MsgLookup, error)
}

// Sealer is what the market needs from the sealing subsystem
// (sealing.Sealing, or lotus-miner through its API). An error wrapping
// ErrSealerUnavailable makes the step wait and try again, for as long as
// it takes, without counting towards MaxAutoRetries.
type Sealer interface {
	// AddPieceToAny places and writes a deal's piece; idempotent per deal.
	AddPieceToAny(ctx context.Context, size abi.UnpaddedPieceSize, data io.Reader, d sealing.Deal) (sealing.Placement, error)
	// SectorStatus returns the deal's sector, its state and whether it is
	// proven.
	SectorStatus(ctx context.Context, dealUUID uuid.UUID) (sealing.DealSectorStatus, error)
}

// ErrSealerUnavailable is what a Sealer (or the PieceIndexer reading from
// it) wraps when the sealer cannot be reached at all: a lotus-miner that
// is down or restarting. The deal is not at fault, so the step is retried
// every RetryBackoff until the sealer answers again, never handed to an
// operator or failed for it.
var ErrSealerUnavailable = errors.New("the sealer cannot be reached")

// Downloader fetches deal data into a staging file, resuming from what the
// file holds and replaying that prefix into tee first (transfer.Downloader).
type Downloader interface {
	Download(ctx context.Context, req transfer.Request, path string, tee io.Writer, progress func(received uint64)) error
}

// IndexRequest is what the indexer is told about a deal whose piece is in a
// sector.
type IndexRequest struct {
	DealUUID         uuid.UUID           // the deal
	PieceCID         cid.Cid             // its piece (v1 CID)
	PieceSize        abi.PaddedPieceSize // padded piece size
	PayloadSize      uint64              // the payload's bytes (the raw size of piece CID v2)
	ChainDealID      abi.DealID          // chain deal ID (a market deal's)
	DataRoot         cid.Cid             // root CID of the payload (CAR root)
	Sector           abi.SectorNumber    // where the piece was placed
	Offset           abi.PaddedPieceSize // padded offset in the sector
	SkipIPNIAnnounce bool                // index but do not announce
	KeepUnsealed     bool                // the client asked to keep an unsealed copy
	// Data, when set, reads the piece's unpadded bytes from the deal's
	// data file, zeros after its end: what the sector holds, cheaper to
	// read. Nil: read the piece from its sector. Valid during the call.
	Data PieceData
}

// PieceData reads a piece's unpadded bytes; Size is the unpadded piece
// size.
type PieceData interface {
	io.ReaderAt
	Size() int64
}

// PieceIndexer indexes a piece's blocks and announces it to IPNI; it must
// be idempotent.
type PieceIndexer interface {
	IndexAndAnnounce(ctx context.Context, d IndexRequest) error
}

// RemoveRequest is what a PieceRemover is told when a Complete deal ended
// on chain.
type RemoveRequest struct {
	IndexRequest
	// EndReason is why the deal ended: EndExpired, EndSlashed or EndRemoved,
	// or EndFailed for a deal failed after its piece reached a sector.
	EndReason string
	// KeepIndex: another deal of this provider that has not ended holds the
	// same piece in a sector, so the piece stays in the index.
	KeepIndex bool
	// KeepAnnounced: such a deal also asked for an IPNI announcement, so the
	// piece's advertisement stays.
	KeepAnnounced bool
}

// PieceRemover is implemented by a PieceIndexer that also takes pieces out
// of the index and IPNI when their deal ends. It is called once per ended
// deal (again after a crash during the call), so it must be idempotent.
type PieceRemover interface {
	RemovePiece(ctx context.Context, r RemoveRequest) error
}

// Leases are the leases of a cluster (cluster.Member).
type Leases interface {
	// Acquire takes the lease of name for this node, or renews it; false
	// when another live node holds it.
	Acquire(ctx context.Context, name string) (bool, error)
	// Release gives the lease of name up, if this node holds it.
	Release(ctx context.Context, name string) error
	// FreeSQL is a condition over a row, with its arguments, that holds
	// when no live node holds the lease named by the SQL expression
	// nameExpr.
	FreeSQL(nameExpr string) (string, []any)
}

// Files reads the files other nodes of a cluster hold (node's HTTP
// endpoint, as Lotus' /remote).
type Files interface {
	// OpenStaging streams the staging file at path on node; the error
	// wraps ErrNodeDown when node is not running.
	OpenStaging(ctx context.Context, node, path string) (io.ReadCloser, error)
}

// ErrNodeDown: the node of the cluster holding a file is not running. The
// deal waits for it (no attempt is counted) rather than fail.
var ErrNodeDown = errors.New("the node holding the file is down")
