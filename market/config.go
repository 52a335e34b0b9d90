// Package market is the storage provider: the Boost-compatible deal
// protocol handlers, proposal validation, atomic admission (deal row, funds
// and staging space in one transaction), and the deal pipeline that takes
// each deal from Accepted to Complete through persisted checkpoints, with
// the batched publisher that never sends a publish message twice.
//
// The database is the truth: every step reads the deal row, does idempotent
// work and writes the next checkpoint, so a process killed at any point
// resumes where it stopped.
package market

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multiaddr"

	"github.com/ferry-fil/ferry/chain"
)

// Reference defaults (Boost's), used for zero Config fields.
const (
	DefaultExpectedSealDuration    = 24 * time.Hour
	DefaultMaxDealStartDelay       = 14 * 24 * time.Hour
	DefaultStartEpochSealingBuffer = abi.ChainEpoch(480)
	DefaultPublishMsgPeriod        = time.Hour
	DefaultMaxDealsPerPublishMsg   = 8
	DefaultFilterTimeout           = 10 * time.Second
	DefaultStreamTimeout           = 10 * time.Second
	DefaultBlockDelay              = 30 * time.Second
	DefaultMaxAutoRetries          = 5
	DefaultRetryBackoff            = 30 * time.Second
	DefaultPublishConfidence       = 5
	DefaultMinPieceSize            = abi.PaddedPieceSize(256)
	DefaultMaxPieceSize            = abi.PaddedPieceSize(32 << 30)
	// MaxLabelSize is the longest deal label accepted, in bytes.
	MaxLabelSize = 256
	// MinDealDuration and MaxDealDuration are the market actor's bounds.
	MinDealDuration = abi.ChainEpoch(180 * 2880)
	MaxDealDuration = abi.ChainEpoch(1278 * 2880)
	// MaxSectorExpirationExtension bounds how far past the current epoch a
	// deal may end.
	MaxSectorExpirationExtension = abi.ChainEpoch(1278 * 2880)
)

// DefaultMaxPublishDealsFee is 0.05 FIL.
func DefaultMaxPublishDealsFee() abi.TokenAmount { return big.NewInt(50_000_000_000_000_000) }

// DefaultAskPrice is 50,000,000 attoFIL/GiB/epoch.
func DefaultAskPrice() abi.TokenAmount { return big.NewInt(50_000_000) }

// DefaultVerifiedAskPrice is 5,000,000 attoFIL/GiB/epoch.
func DefaultVerifiedAskPrice() abi.TokenAmount { return big.NewInt(5_000_000) }

// Config is the provider's configuration. Zero fields take the Default*
// values above.
type Config struct {
	// Miner is the provider's miner actor (ID address).
	Miner address.Address
	// StagingDir holds incoming deal data until it is in a sector.
	StagingDir string
	// StagingCapacity bounds the bytes tagged for staging; 0 is unlimited.
	StagingCapacity uint64

	// RejectOnline, RejectOffline, RejectVerified and RejectUnverified turn
	// away those kinds of deals (Boost's Consider* = false).
	RejectOnline, RejectOffline, RejectVerified, RejectUnverified bool
	// PieceCIDBlocklist lists piece CIDs never accepted.
	PieceCIDBlocklist []cid.Cid
	// MinPieceSize and MaxPieceSize bound accepted pieces on top of the ask
	// (0: no extra bound).
	MinPieceSize, MaxPieceSize abi.PaddedPieceSize
	// ExpectedSealDuration is how long sealing takes: a deal must start at
	// least that far ahead.
	ExpectedSealDuration time.Duration
	// MaxDealStartDelay is how far ahead a deal may start.
	MaxDealStartDelay time.Duration
	// StartEpochSealingBuffer: a deal whose start is closer than this when
	// its piece is added cannot be sealed in time.
	StartEpochSealingBuffer abi.ChainEpoch
	// FilterCommand, when set, is run for every proposal that passed the
	// built-in checks with the deal as JSON on stdin; exit 0 accepts,
	// anything else rejects with its output as the reason.
	FilterCommand []string
	// FilterTimeout bounds one run of FilterCommand.
	FilterTimeout time.Duration

	// PublishMsgPeriod is the longest a deal waits for its publish batch.
	PublishMsgPeriod time.Duration
	// MaxDealsPerPublishMsg publishes a batch as soon as it has this many.
	MaxDealsPerPublishMsg int
	// MaxPublishDealsFee bounds the fee of one publish message; each deal
	// reserves it from the worker's balance until its publish lands.
	MaxPublishDealsFee abi.TokenAmount
	// PublishConfidence is the number of epochs a publish message waits on
	// top of its execution.
	PublishConfidence uint64

	// BlockDelay converts durations to epochs; 0 asks the node.
	BlockDelay time.Duration
	// PollInterval is how often sealing and chain state are checked while
	// a deal waits for its sector; 0 is BlockDelay.
	PollInterval time.Duration
	// DealEndCheckInterval is how often Complete deals are looked up on
	// chain to notice a slashed or removed deal; 0 is 10×PollInterval.
	// Expiry (the head passing a deal's end epoch) is noticed every
	// PollInterval from the chain head alone.
	DealEndCheckInterval time.Duration
	// EndChecksPerPass bounds the deals looked up on chain each
	// DealEndCheckInterval, the ones checked longest ago first, so a
	// provider with many deals spreads the lookups over several passes
	// instead of asking the node for every deal at once; 0 is
	// DefaultEndChecksPerPass.
	EndChecksPerPass int
	// MaxAutoRetries is how many times a failing step is retried
	// automatically before it waits for an operator.
	MaxAutoRetries int
	// RetryBackoff is the first wait before an automatic retry; it doubles.
	RetryBackoff time.Duration

	// ReadTimeout and WriteTimeout are the protocol stream deadlines.
	ReadTimeout, WriteTimeout time.Duration
	// RetrievalAddrs are served on the transports protocol as the "http"
	// transport (e.g. /ip4/127.0.0.1/tcp/7777/http).
	RetrievalAddrs []multiaddr.Multiaddr
}

// Sealer is what the market needs from the sealing subsystem.
type Sealer interface {
	// AddPieceToAny places and writes a deal's piece; idempotent per deal.
	AddPieceToAny(ctx context.Context, size abi.UnpaddedPieceSize, data io.Reader, d SealingDeal) (Placement, error)
	// DealSectorState returns the deal's sector and its state.
	DealSectorState(ctx context.Context, dealUUID uuid.UUID) (abi.SectorNumber, string, error)
}

// SealingDeal is what AddPieceToAny is told about a deal (the same fields
// as sealing.Deal; node adapts one to the other).
type SealingDeal struct {
	UUID         uuid.UUID           // the deal's UUID
	DealID       abi.DealID          // chain deal ID
	PublishCid   cid.Cid             // the PublishStorageDeals message
	Proposal     market.DealProposal // as published
	KeepUnsealed bool                // keep an unsealed copy after proving
}

// Placement is where a piece went (sealing.Placement).
type Placement struct {
	Sector abi.SectorNumber    // the sector holding the piece
	Offset abi.PaddedPieceSize // padded offset in the sector
	Size   abi.PaddedPieceSize // padded piece size
}

// ProvingState is the sector state in which a deal's sector is proven.
const ProvingState = "Proving"

// TransferRequest names what to download (transfer.Request).
type TransferRequest struct {
	URL     string            // absolute http(s) URL
	Headers map[string]string // sent with every request
	Size    uint64            // bytes to download, never more
}

// Downloader fetches deal data into a staging file, resuming from what the
// file holds and replaying that prefix into tee first (transfer.Downloader).
type Downloader interface {
	Download(ctx context.Context, req TransferRequest, path string, tee io.Writer, progress func(received uint64)) error
}

// IndexRequest is what the indexer is told about a deal whose piece is in a
// sector.
type IndexRequest struct {
	DealUUID         uuid.UUID           // the deal
	PieceCID         cid.Cid             // its piece (v1 CID)
	PieceSize        abi.PaddedPieceSize // padded piece size
	ChainDealID      abi.DealID          // chain deal ID
	DataRoot         cid.Cid             // root CID of the payload (CAR root)
	Sector           abi.SectorNumber    // where the piece was placed
	Offset           abi.PaddedPieceSize // padded offset in the sector
	SkipIPNIAnnounce bool                // index but do not announce
	KeepUnsealed     bool                // the client asked to keep an unsealed copy
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

// Reasons a Complete deal ended, as DealInfo.Ended reports them.
const (
	EndExpired = "expired" // the chain head passed the deal's end epoch
	EndSlashed = "slashed" // the chain shows a slash epoch
	EndRemoved = "removed" // the chain dropped the deal before its end epoch
)

// EndFailed is the RemoveRequest.EndReason of a deal that failed (an
// operator's fail, activation that never came) after its piece was added
// to a sector and maybe indexed and announced: it no longer holds the
// piece. Such a deal did not end on chain, so DealInfo.Ended stays empty.
const EndFailed = "failed"

// MessageSigner signs a chain message with its From key and returns the
// signed message and its CID. NodeSigner is the usual one.
type MessageSigner func(ctx context.Context, msg *chain.Message) (*chain.SignedMessage, cid.Cid, error)

// NodeSigner signs messages with the node's wallet (WalletSign) the way
// Lotus does (chain.SignMessage).
func NodeSigner(node chain.Node) MessageSigner {
	return func(ctx context.Context, msg *chain.Message) (*chain.SignedMessage, cid.Cid, error) {
		sm, err := chain.SignMessage(msg, func(data []byte) (*crypto.Signature, error) {
			return node.WalletSign(ctx, msg.From, data)
		})
		if err != nil {
			return nil, cid.Undef, err
		}
		c, err := sm.Cid()
		if err != nil {
			return nil, cid.Undef, fmt.Errorf("signed message CID: %w", err)
		}
		return sm, c, nil
	}
}

// DefaultEndChecksPerPass is the default EndChecksPerPass: at the default
// interval (ten 30-second epochs), 100,000 deals are each looked up about
// every eight hours, at about 3 lookups a second.
const DefaultEndChecksPerPass = 1000

func (c *Config) setDefaults() {
	if c.EndChecksPerPass <= 0 {
		c.EndChecksPerPass = DefaultEndChecksPerPass
	}
	if c.ExpectedSealDuration == 0 {
		c.ExpectedSealDuration = DefaultExpectedSealDuration
	}
	if c.MaxDealStartDelay == 0 {
		c.MaxDealStartDelay = DefaultMaxDealStartDelay
	}
	if c.StartEpochSealingBuffer == 0 {
		c.StartEpochSealingBuffer = DefaultStartEpochSealingBuffer
	}
	if c.FilterTimeout == 0 {
		c.FilterTimeout = DefaultFilterTimeout
	}
	if c.PublishMsgPeriod == 0 {
		c.PublishMsgPeriod = DefaultPublishMsgPeriod
	}
	if c.MaxDealsPerPublishMsg <= 0 {
		c.MaxDealsPerPublishMsg = DefaultMaxDealsPerPublishMsg
	}
	if c.MaxPublishDealsFee.Int == nil {
		c.MaxPublishDealsFee = DefaultMaxPublishDealsFee()
	}
	if c.PublishConfidence == 0 {
		c.PublishConfidence = DefaultPublishConfidence
	}
	if c.MaxAutoRetries == 0 {
		c.MaxAutoRetries = DefaultMaxAutoRetries
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultStreamTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultStreamTimeout
	}
}
