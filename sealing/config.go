package sealing

import (
	"fmt"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
)

// Config tunes the sealing subsystem. Zero values take the defaults noted on
// each field (Lotus' defaults where Lotus has one).
type Config struct {
	// Dir is the storage path of the sectors, in Lotus' layout:
	// Dir/sectorstore.json, and each sector's unsealed file in
	// Dir/unsealed/s-t0<miner>-<number> (sealed/ and cache/ beside it).
	Dir string
	// NodeID is the cluster node this storage path is on (the sectors it
	// creates are recorded as this node's, and it places pieces in and
	// drives only those); "" on a single node.
	NodeID string
	// SectorSize is the sector size: 2 KiB, 8 MiB, 512 MiB, 32 GiB or 64 GiB.
	SectorSize abi.SectorSize
	// MaxWaitDealsSectors bounds the sectors open for deals at once (default 2).
	MaxWaitDealsSectors int
	// MaxSealingSectorsForDeals bounds the sectors being sealed, open ones
	// included (0: unlimited).
	MaxSealingSectorsForDeals int
	// WaitDealsDelay is how long a sector stays open for more deals before
	// it is packed (default 6h).
	WaitDealsDelay time.Duration
	// StartEpochSealingBuffer is how many epochs before a deal's start epoch
	// its sector must start sealing; AddPieceToAny refuses deals that start
	// sooner than this (default 480).
	StartEpochSealingBuffer abi.ChainEpoch
	// AddPieceConcurrency bounds the AddPiece writes running at once, across
	// sectors (default 4). Writes into one sector take turns, in offset
	// order.
	AddPieceConcurrency int
	// MaxProveCommitDuration is how long after its pre-commit a sector may
	// still be proven (default 30 days + 150 epochs, the network's value).
	MaxProveCommitDuration abi.ChainEpoch
	// MinSectorExpiration is the shortest sector lifetime the miner actor
	// accepts, counted from the latest possible activation (default 180
	// days).
	MinSectorExpiration abi.ChainEpoch
	// PreCommitChallengeDelay is the number of epochs between a pre-commit's
	// inclusion and its interactive seed (default 150, the network's value;
	// the devnet uses fewer).
	PreCommitChallengeDelay abi.ChainEpoch
	// PollInterval is how often the sector state machine looks at the chain
	// and the timers (default 1s; tests use milliseconds).
	PollInterval time.Duration
	// MessageConfidence is how many epochs on top of its execution a
	// pre-commit or prove-commit is waited for (default 5, Lotus'
	// build.MessageConfidence).
	MessageConfidence uint64
	// RetryDelay is how long a failed step waits before it is retried
	// (default 1 minute).
	RetryDelay time.Duration
	// MaxRetries is how many times a failed pre-commit or commit is retried
	// before the sector is left in its failure state (default 5).
	MaxRetries int
}

// Defaults for Config fields left at zero.
const (
	DefaultMaxWaitDealsSectors     = 2
	DefaultWaitDealsDelay          = 6 * time.Hour
	DefaultStartEpochSealingBuffer = abi.ChainEpoch(480)
	DefaultAddPieceConcurrency     = 4
	DefaultPreCommitChallengeDelay = abi.ChainEpoch(150)
	DefaultPollInterval            = time.Second
	DefaultMessageConfidence       = 5
	DefaultRetryDelay              = time.Minute
	DefaultMaxRetries              = 5
)

func (c Config) withDefaults() Config {
	if c.MaxWaitDealsSectors <= 0 {
		c.MaxWaitDealsSectors = DefaultMaxWaitDealsSectors
	}
	if c.WaitDealsDelay <= 0 {
		c.WaitDealsDelay = DefaultWaitDealsDelay
	}
	if c.StartEpochSealingBuffer <= 0 {
		c.StartEpochSealingBuffer = DefaultStartEpochSealingBuffer
	}
	if c.AddPieceConcurrency <= 0 {
		c.AddPieceConcurrency = DefaultAddPieceConcurrency
	}
	if c.PreCommitChallengeDelay <= 0 {
		c.PreCommitChallengeDelay = DefaultPreCommitChallengeDelay
	}
	if c.MaxProveCommitDuration <= 0 {
		c.MaxProveCommitDuration = 30*2880 + 150
	}
	if c.MinSectorExpiration <= 0 {
		c.MinSectorExpiration = 180 * 2880
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.MessageConfidence == 0 {
		c.MessageConfidence = DefaultMessageConfidence
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.MaxRetries <= 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	return c
}

// SealProofFor returns the StackedDrg V1_1 seal proof type for a sector size.
func SealProofFor(ss abi.SectorSize) (abi.RegisteredSealProof, error) {
	switch ss {
	case 2 << 10:
		return abi.RegisteredSealProof_StackedDrg2KiBV1_1, nil
	case 8 << 20:
		return abi.RegisteredSealProof_StackedDrg8MiBV1_1, nil
	case 512 << 20:
		return abi.RegisteredSealProof_StackedDrg512MiBV1_1, nil
	case 32 << 30:
		return abi.RegisteredSealProof_StackedDrg32GiBV1_1, nil
	case 64 << 30:
		return abi.RegisteredSealProof_StackedDrg64GiBV1_1, nil
	}
	return 0, fmt.Errorf("sector size %d is not one of 2 KiB, 8 MiB, 512 MiB, 32 GiB, 64 GiB", ss)
}

// maxDealsPerSector is Lotus' per-sector deal limit (getDealPerSectorLimit):
// 256, or 512 for 64 GiB sectors.
func maxDealsPerSector(ss abi.SectorSize) int {
	if ss < 64<<30 {
		return 256
	}
	return 512
}
