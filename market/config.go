package market

import (
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v16/verifreg"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multiaddr"
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
	// MinAllocationSize is the smallest verified allocation, and so the
	// smallest piece of a verified deal: 1 MiB.
	MinAllocationSize = abi.PaddedPieceSize(verifreg.MinimumVerifiedAllocationSize)
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
	// NodeID is this node's ID in a cluster (cluster.Member), recorded with
	// the staging files it holds; "" on a single node.
	NodeID string
	// StagingCapacity bounds the bytes tagged for staging; 0 is unlimited.
	StagingCapacity uint64

	// AllowPrivateAddresses accepts transfer URLs that lead to loopback,
	// private or link-local addresses (the devnet's, where everything is
	// on one machine). Keep it false on the network: a proposal whose URL
	// leads there is rejected (the host is resolved when it arrives) and a
	// download is refused when it dials one (transfer.Config's setting of
	// the same name must agree).
	AllowPrivateAddresses bool

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
