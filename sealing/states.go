package sealing

import "context"

// SectorState is a sector's state, named as lotus-miner names it
// (storage/pipeline/sector_state.go), so operators, Boost and Lotus' tools
// read the same words.
type SectorState string

// The sector states Ferry uses, in the order of the deal path; failures loop
// back (see sectorStates for what each does).
const (
	StateWaitDeals            SectorState = "WaitDeals"
	StateAddPiece             SectorState = "AddPiece"
	StateAddPieceFailed       SectorState = "AddPieceFailed"
	StatePacking              SectorState = "Packing"
	StatePreCommit1           SectorState = "PreCommit1"
	StatePreCommit2           SectorState = "PreCommit2"
	StateSubmitPreCommitBatch SectorState = "SubmitPreCommitBatch"
	StatePreCommitBatchWait   SectorState = "PreCommitBatchWait"
	StateWaitSeed             SectorState = "WaitSeed"
	StateCommitting           SectorState = "Committing"
	StateSubmitCommit         SectorState = "SubmitCommit"
	StateCommitWait           SectorState = "CommitWait"
	StateFinalizeSector       SectorState = "FinalizeSector"
	StateProving              SectorState = "Proving"
	StateSealPreCommit1Failed SectorState = "SealPreCommit1Failed"
	StatePreCommitFailed      SectorState = "PreCommitFailed"
	StateComputeProofFailed   SectorState = "ComputeProofFailed"
	StateCommitFailed         SectorState = "CommitFailed"
	// StateFailedUnrecoverable is where a sector stops after MaxRetries.
	StateFailedUnrecoverable SectorState = "FailedUnrecoverable"
)

// stateStep is one row of the state table.
type stateStep struct {
	state SectorState
	// open: the sector takes new pieces.
	open bool
	// proving: the sector is proven, its deals can be active.
	proving bool
	// handle does the state's work and records the next state; nil for
	// the states Run leaves alone.
	handle func(s *Sealing, ctx context.Context, r *sectorRow) error
}

// sectorStates is the state table: every state a sector can be in, the deal
// path first. Run's dispatch, the open-sector query, the sealing count and
// the metrics all read it.
func sectorStates() []stateStep {
	return []stateStep{
		{state: StateWaitDeals, open: true, handle: (*Sealing).handleOpen},
		{state: StateAddPiece, open: true, handle: (*Sealing).handleOpen},
		{state: StateAddPieceFailed, open: true, handle: (*Sealing).handleOpen},
		{state: StatePacking, handle: (*Sealing).handlePacking},
		{state: StatePreCommit1, handle: (*Sealing).handlePreCommit1},
		{state: StatePreCommit2, handle: (*Sealing).handlePreCommit2},
		{state: StateSubmitPreCommitBatch, handle: (*Sealing).handleSubmitPreCommit},
		{state: StatePreCommitBatchWait, handle: (*Sealing).handlePreCommitWait},
		{state: StateWaitSeed, handle: (*Sealing).handleWaitSeed},
		{state: StateCommitting, handle: (*Sealing).handleCommitting},
		{state: StateSubmitCommit, handle: (*Sealing).handleSubmitCommit},
		{state: StateCommitWait, handle: (*Sealing).handleCommitWait},
		{state: StateFinalizeSector, handle: (*Sealing).handleFinalize},
		{state: StateProving, proving: true},
		{state: StateSealPreCommit1Failed, handle: retryFrom(StatePreCommit1)},
		{state: StatePreCommitFailed, handle: (*Sealing).handlePreCommitFailed},
		{state: StateComputeProofFailed, handle: retryFrom(StateCommitting)},
		{state: StateCommitFailed, handle: (*Sealing).handleCommitFailed},
		{state: StateFailedUnrecoverable},
	}
}

// lookupState returns the table row of st.
func lookupState(st SectorState) (stateStep, bool) {
	for _, s := range sectorStates() {
		if s.state == st {
			return s, true
		}
	}
	return stateStep{}, false
}

// statesWhere lists the states whose row satisfies keep.
func statesWhere(keep func(stateStep) bool) []SectorState {
	var out []SectorState
	for _, s := range sectorStates() {
		if keep(s) {
			out = append(out, s.state)
		}
	}
	return out
}

// openStates are the states of a sector that takes new pieces.
func openStates() []SectorState { return statesWhere(func(s stateStep) bool { return s.open }) }

// restingStates are the states Run leaves alone: proven, or given up.
func restingStates() []SectorState {
	return statesWhere(func(s stateStep) bool { return s.handle == nil })
}
