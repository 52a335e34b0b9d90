package minerapi

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v13/miner"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/sealing"
)

// PieceDealInfo says which deal a piece belongs to and when it must be
// sealed: Lotus' piece.PieceDealInfo. A builtin-market deal sets PublishCid,
// DealID and DealProposal; a direct (DDO) piece sets PieceActivationManifest
// instead. Exactly one of the two forms is set.
type PieceDealInfo struct {
	PublishCid   *cid.Cid
	DealID       abi.DealID
	DealProposal *market.DealProposal

	DealSchedule DealSchedule

	PieceActivationManifest *miner.PieceActivationManifest

	// KeepUnsealed asks the sealer to keep an unsealed copy.
	KeepUnsealed bool
}

// DealSchedule is the epoch range of a deal: its sector must be proven
// before StartEpoch.
type DealSchedule struct {
	StartEpoch abi.ChainEpoch
	EndEpoch   abi.ChainEpoch
}

// Validate checks what Lotus' PieceDealInfo.Valid checks before a piece is
// accepted: exactly one of the deal forms, and 0 < StartEpoch < EndEpoch.
// It also requires what a builtin-market deal needs to be placed: a
// proposal whose epochs match the schedule. Unlike Lotus, which takes deal
// ID 0 for "no deal", it accepts a builtin-market deal with ID 0: the
// first deal of a devnet has it.
func (d *PieceDealInfo) Validate() error {
	legacy := d.PublishCid != nil && d.DealProposal != nil
	direct := d.PieceActivationManifest != nil
	switch {
	case legacy && direct:
		return fmt.Errorf("piece deal info has both a builtin-market deal and a piece activation manifest")
	case !legacy && !direct:
		return fmt.Errorf("piece deal info has neither a builtin-market deal (PublishCid, DealID, DealProposal) nor a piece activation manifest")
	}
	if d.DealSchedule.StartEpoch <= 0 {
		return fmt.Errorf("invalid deal start epoch %d", d.DealSchedule.StartEpoch)
	}
	if d.DealSchedule.EndEpoch <= d.DealSchedule.StartEpoch {
		return fmt.Errorf("invalid deal end epoch %d (start %d)", d.DealSchedule.EndEpoch, d.DealSchedule.StartEpoch)
	}
	if legacy {
		if !d.PublishCid.Defined() {
			return fmt.Errorf("piece deal info has an empty PublishCid")
		}
		if !d.DealProposal.PieceCID.Defined() {
			return fmt.Errorf("deal %d: the proposal has no piece CID", d.DealID)
		}
		if d.DealProposal.StartEpoch != d.DealSchedule.StartEpoch || d.DealProposal.EndEpoch != d.DealSchedule.EndEpoch {
			return fmt.Errorf("deal %d: schedule %d-%d does not match the proposal's %d-%d", d.DealID,
				d.DealSchedule.StartEpoch, d.DealSchedule.EndEpoch, d.DealProposal.StartEpoch, d.DealProposal.EndEpoch)
		}
	}
	return nil
}

// SectorOffset is where SectorAddPieceToAny placed a piece: its sector and
// padded offset in it.
type SectorOffset struct {
	Sector abi.SectorNumber
	Offset abi.PaddedPieceSize
}

// SectorState is a sector state by Lotus' name: sealing's type. Package
// sealing declares the states ferryd's sealing uses (sealing.StateWaitDeals,
// sealing.StateProving, …); these are the other states lotus-miner has
// (storage/pipeline/sector_state.go), which a remote miner may report.
type SectorState = sealing.SectorState

// Lotus' sector states that ferryd's sealing does not use.
const (
	StateGetTicket             SectorState = "GetTicket"
	StatePreCommitting         SectorState = "PreCommitting"
	StatePreCommitWait         SectorState = "PreCommitWait"
	StateCommitFinalize        SectorState = "CommitFinalize"
	StateSubmitCommitAggregate SectorState = "SubmitCommitAggregate"
	StateCommitAggregateWait   SectorState = "CommitAggregateWait"
	StateAvailable             SectorState = "Available"

	StateSnapDealsWaitDeals    SectorState = "SnapDealsWaitDeals"
	StateSnapDealsAddPiece     SectorState = "SnapDealsAddPiece"
	StateSnapDealsPacking      SectorState = "SnapDealsPacking"
	StateUpdateReplica         SectorState = "UpdateReplica"
	StateProveReplicaUpdate    SectorState = "ProveReplicaUpdate"
	StateSubmitReplicaUpdate   SectorState = "SubmitReplicaUpdate"
	StateWaitMutable           SectorState = "WaitMutable"
	StateReplicaUpdateWait     SectorState = "ReplicaUpdateWait"
	StateFinalizeReplicaUpdate SectorState = "FinalizeReplicaUpdate"
	StateUpdateActivating      SectorState = "UpdateActivating"
	StateReleaseSectorKey      SectorState = "ReleaseSectorKey"

	StateSealPreCommit2Failed        SectorState = "SealPreCommit2Failed"
	StateRemoteCommitFailed          SectorState = "RemoteCommitFailed"
	StateCommitFinalizeFailed        SectorState = "CommitFinalizeFailed"
	StatePackingFailed               SectorState = "PackingFailed"
	StateFinalizeFailed              SectorState = "FinalizeFailed"
	StateRecoverDealIDs              SectorState = "RecoverDealIDs"
	StateSnapDealsAddPieceFailed     SectorState = "SnapDealsAddPieceFailed"
	StateSnapDealsRecoverDealIDs     SectorState = "SnapDealsRecoverDealIDs"
	StateAbortUpgrade                SectorState = "AbortUpgrade"
	StateReplicaUpdateFailed         SectorState = "ReplicaUpdateFailed"
	StateReleaseSectorKeyFailed      SectorState = "ReleaseSectorKeyFailed"
	StateFinalizeReplicaUpdateFailed SectorState = "FinalizeReplicaUpdateFailed"
)

// placedStates are the states of a sector that holds added pieces which are
// not yet active on chain: from WaitDeals to FinalizeSector, the SnapDeals
// path up to its activation, and the failure states those paths retry
// from. The dedupe lookup (see the package doc) searches these sectors;
// deals in sectors past them are active on chain and found there.
var placedStates = []SectorState{
	sealing.StateWaitDeals, sealing.StateAddPiece, sealing.StatePacking, StateGetTicket,
	sealing.StatePreCommit1, sealing.StatePreCommit2, StatePreCommitting, StatePreCommitWait,
	sealing.StateSubmitPreCommitBatch, sealing.StatePreCommitBatchWait, sealing.StateWaitSeed,
	sealing.StateCommitting, StateCommitFinalize, sealing.StateSubmitCommit, sealing.StateCommitWait,
	StateSubmitCommitAggregate, StateCommitAggregateWait, sealing.StateFinalizeSector,
	StateSnapDealsWaitDeals, StateSnapDealsAddPiece, StateSnapDealsPacking, StateUpdateReplica,
	StateProveReplicaUpdate, StateSubmitReplicaUpdate, StateWaitMutable, StateReplicaUpdateWait,
	StateFinalizeReplicaUpdate,
	sealing.StateAddPieceFailed, sealing.StateSealPreCommit1Failed, StateSealPreCommit2Failed,
	sealing.StatePreCommitFailed, sealing.StateComputeProofFailed, StateRemoteCommitFailed,
	sealing.StateCommitFailed, StateCommitFinalizeFailed, StatePackingFailed, StateFinalizeFailed,
	StateRecoverDealIDs, StateSnapDealsAddPieceFailed, StateSnapDealsRecoverDealIDs, StateAbortUpgrade,
	StateReplicaUpdateFailed, StateReleaseSectorKeyFailed, StateFinalizeReplicaUpdateFailed,
}

// proven reports whether a sector in state s at a miner has been proven on
// chain, so its deals can be active: Proving and Available, and the last
// SnapDeals steps after the replica update landed.
func proven(s SectorState) bool {
	switch s {
	case sealing.StateProving, StateAvailable, StateUpdateActivating, StateReleaseSectorKey:
		return true
	}
	return false
}

// SectorInfo is what SectorsStatus returns: Lotus' api.SectorInfo. The big
// integers are always set (zero when unknown): Lotus' client cannot parse
// a null one.
type SectorInfo struct {
	SectorID             abi.SectorNumber
	State                SectorState
	CommD                *cid.Cid
	CommR                *cid.Cid
	Proof                []byte
	Deals                []abi.DealID // one per piece, 0 for pieces of no builtin-market deal
	Pieces               []SectorPiece
	Ticket               SealTicket
	Seed                 SealSeed
	PreCommitMsg         *cid.Cid
	CommitMsg            *cid.Cid
	Retries              uint64
	ToUpgrade            bool
	ReplicaUpdateMessage *cid.Cid

	LastErr string

	Log []SectorLog

	SealProof          abi.RegisteredSealProof
	Activation         abi.ChainEpoch
	Expiration         abi.ChainEpoch
	DealWeight         abi.DealWeight
	VerifiedDealWeight abi.DealWeight
	InitialPledge      abi.TokenAmount
	OnTime             abi.ChainEpoch
	Early              abi.ChainEpoch
}

// SectorPiece is one piece of a sector, in order: Lotus' api.SectorPiece.
// DealInfo is nil for filler pieces.
type SectorPiece struct {
	Piece    abi.PieceInfo
	DealInfo *PieceDealInfo
}

// SealTicket is a sector's sealing ticket.
type SealTicket struct {
	Value abi.SealRandomness
	Epoch abi.ChainEpoch
}

// SealSeed is a sector's interactive seal randomness.
type SealSeed struct {
	Value abi.InteractiveSealRandomness
	Epoch abi.ChainEpoch
}

// SectorLog is one event of a sector's history.
type SectorLog struct {
	Kind      string
	Timestamp uint64
	Trace     string
	Message   string
}

// SectorFileType is a bit set of sector file kinds: Lotus'
// storiface.SectorFileType.
type SectorFileType int

// The sector file kinds.
const (
	FTUnsealed SectorFileType = 1 << iota
	FTSealed
	FTCache
	FTUpdate
	FTUpdateCache
	FTPiece
)

// Has reports whether t includes every kind in k.
func (t SectorFileType) Has(k SectorFileType) bool { return t&k == k }

// String names a single kind as Lotus does ("unsealed", "update-cache"),
// the path element of its files; a set of kinds joins the names with "|".
func (t SectorFileType) String() string {
	names := []string{"unsealed", "sealed", "cache", "update", "update-cache", "piece"}
	var out []string
	for i, n := range names {
		if t&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	if rest := t &^ (1<<len(names) - 1); rest != 0 {
		out = append(out, fmt.Sprintf("<unknown %d>", int(rest)))
	}
	return strings.Join(out, "|")
}

// StorageID is a storage path's UUID (the ID of its sectorstore.json):
// Lotus' storiface.ID.
type StorageID string

// SectorStorageInfo is one storage path holding a sector file, as
// StorageFindSector returns it: Lotus' storiface.SectorStorageInfo. URLs
// are the file's HTTP addresses (…/remote/unsealed/s-t01000-5).
type SectorStorageInfo struct {
	ID       StorageID
	URLs     []string
	BaseURLs []string
	Weight   uint64

	CanSeal  bool
	CanStore bool

	Primary bool

	AllowTypes  []string
	DenyTypes   []string
	AllowMiners []string
	DenyMiners  []string
}

// StorageInfo describes a storage path: Lotus' storiface.StorageInfo.
type StorageInfo struct {
	ID         StorageID
	URLs       []string // base URLs of its /remote endpoint
	Weight     uint64
	MaxStorage uint64

	CanSeal  bool
	CanStore bool

	Groups  []string
	AllowTo []string

	AllowTypes  []string
	DenyTypes   []string
	AllowMiners []string
	DenyMiners  []string
}

// Decl says a storage path holds a sector's files of the given kinds, as
// StorageList returns it: Lotus' storiface.Decl.
type Decl struct {
	abi.SectorID
	SectorFileType
}

// SectorRef names a sector and its seal proof: Lotus' storiface.SectorRef.
type SectorRef struct {
	ID        abi.SectorID
	ProofType abi.RegisteredSealProof
}

// UnpaddedByteIndex is an unpadded byte offset in a sector.
type UnpaddedByteIndex uint64

// SectorName is Lotus' file name of a sector: s-t0<miner>-<number>.
func SectorName(id abi.SectorID) string {
	return fmt.Sprintf("s-t0%d-%d", id.Miner, id.Number)
}

// ParseSectorName reads a name SectorName wrote.
func ParseSectorName(name string) (abi.SectorID, error) {
	rest, ok := strings.CutPrefix(name, "s-t0")
	if !ok {
		return abi.SectorID{}, fmt.Errorf("sector file name %q does not start with s-t0", name)
	}
	m, n, ok := strings.Cut(rest, "-")
	if !ok {
		return abi.SectorID{}, fmt.Errorf("sector file name %q has no sector number", name)
	}
	miner, err := strconv.ParseUint(m, 10, 64)
	if err != nil {
		return abi.SectorID{}, fmt.Errorf("sector file name %q: miner ID: %w", name, err)
	}
	num, err := strconv.ParseUint(n, 10, 64)
	if err != nil {
		return abi.SectorID{}, fmt.Errorf("sector file name %q: sector number: %w", name, err)
	}
	if SectorName(abi.SectorID{Miner: abi.ActorID(miner), Number: abi.SectorNumber(num)}) != name {
		return abi.SectorID{}, fmt.Errorf("sector file name %q is not in canonical form", name)
	}
	return abi.SectorID{Miner: abi.ActorID(miner), Number: abi.SectorNumber(num)}, nil
}
