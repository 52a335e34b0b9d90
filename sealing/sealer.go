package sealing

import (
	"context"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"
)

// SectorRef names a sector and where its unsealed file is.
type SectorRef struct {
	Miner        abi.ActorID
	Number       abi.SectorNumber
	ProofType    abi.RegisteredSealProof
	UnsealedPath string
}

// SectorCids are a sector's unsealed (CommD) and sealed (CommR) commitments.
type SectorCids struct {
	Unsealed cid.Cid
	Sealed   cid.Cid
}

// Sealer is the back end that does a packed sector's sealing computations;
// the state machine around it sends the chain messages. Each method must be
// idempotent: after a restart it may be called again for the same sector.
type Sealer interface {
	// PreCommit computes the sector's commitments from its unsealed file
	// (which holds pieces, fillers included, covering the whole sector) and
	// the ticket. The returned CommD must equal the CommD of pieces.
	PreCommit(ctx context.Context, s SectorRef, ticket abi.SealRandomness, pieces []abi.PieceInfo) (SectorCids, error)
	// Commit returns the proof of replication for the interactive seed.
	Commit(ctx context.Context, s SectorRef, ticket abi.SealRandomness, seed abi.InteractiveSealRandomness, pieces []abi.PieceInfo, cids SectorCids) ([]byte, error)
}
