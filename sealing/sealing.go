package sealing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	miner13 "github.com/filecoin-project/go-state-types/builtin/v13/miner"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
)

// Deal is a deal whose piece is to be placed in a sector, Lotus'
// PieceDealInfo: either a published storage market deal (Proposal set,
// with DealID and PublishCid) or a piece onboarded directly (FIP-0076:
// PieceActivationManifest set), exactly one of the two.
type Deal struct {
	// UUID is the deal's identity in the market (DealParams.DealUUID, or
	// the direct deal's UUID).
	UUID uuid.UUID
	// PublishCid is the CID of the PublishStorageDeals message of a market
	// deal.
	PublishCid cid.Cid
	// DealID is a market deal's chain deal ID from the publish receipt.
	DealID abi.DealID
	// Proposal is a market deal's proposal as published.
	Proposal *market.DealProposal
	// DealSchedule is when a direct piece must be sealed by and how long
	// its sector must keep it (the start epoch given at import, and start
	// + the allocation's TermMin); a market deal's are its proposal's, and
	// DealSchedule may be left zero.
	DealSchedule DealSchedule
	// PieceActivationManifest is a direct piece as ProveCommitSectors3
	// activates it: its CID (v1) and padded size, the verified allocation
	// it claims, and whom to notify.
	PieceActivationManifest *miner13.PieceActivationManifest
	// KeepUnsealed asks to keep the unsealed copy once the sector is proven.
	KeepUnsealed bool
	// DataCRC32C, when set, is the CRC-32C (Castagnoli) of the piece's
	// payload as the market received it and checked it against the piece
	// CID. AddPiece then checks the bytes it writes against this checksum
	// instead of computing their piece commitment a second time; a
	// mismatch is ErrCommPMismatch, as a commitment's would be.
	DataCRC32C *uint32
}

// DealSchedule is when a deal's piece must be in a proven sector
// (StartEpoch) and until when the sector must keep it (EndEpoch), Lotus'
// DealSchedule.
type DealSchedule struct {
	StartEpoch abi.ChainEpoch
	EndEpoch   abi.ChainEpoch
}

// IsDirect reports whether the deal is a direct piece (no market deal).
func (d *Deal) IsDirect() bool { return d.PieceActivationManifest != nil }

// PieceCID is the piece's CID (v1).
func (d *Deal) PieceCID() cid.Cid {
	if d.IsDirect() {
		return d.PieceActivationManifest.CID
	}
	if d.Proposal != nil {
		return d.Proposal.PieceCID
	}
	return cid.Undef
}

// PieceSize is the piece's padded size.
func (d *Deal) PieceSize() abi.PaddedPieceSize {
	if d.IsDirect() {
		return d.PieceActivationManifest.Size
	}
	if d.Proposal != nil {
		return d.Proposal.PieceSize
	}
	return 0
}

// Schedule is the deal's start and end epochs: a market deal's proposal's,
// a direct piece's DealSchedule.
func (d *Deal) Schedule() DealSchedule {
	if !d.IsDirect() && d.Proposal != nil {
		return DealSchedule{StartEpoch: d.Proposal.StartEpoch, EndEpoch: d.Proposal.EndEpoch}
	}
	return d.DealSchedule
}

// validate checks that the deal is one of the two kinds, whole: a market
// deal with its proposal (and no other schedule than the proposal's), or a
// direct piece with its manifest and schedule (0 < start < end).
func (d *Deal) validate() error {
	switch {
	case d.UUID == uuid.Nil:
		return errors.New("the deal UUID is not set")
	case (d.Proposal == nil) == (d.PieceActivationManifest == nil):
		return errors.New("a deal is either a market deal (a proposal) or a direct piece (a piece activation manifest), exactly one")
	case !d.IsDirect() && d.DealSchedule != (DealSchedule{}) && d.DealSchedule != d.Schedule():
		return fmt.Errorf("the deal schedule %+v is not its proposal's %+v", d.DealSchedule, d.Schedule())
	case d.IsDirect() && (d.DealID != 0 || d.PublishCid.Defined()):
		return errors.New("a direct piece has no chain deal ID or publish message")
	}
	if sch := d.Schedule(); sch.StartEpoch <= 0 || sch.EndEpoch <= sch.StartEpoch {
		return fmt.Errorf("the deal schedule %d to %d is not 0 < start < end", sch.StartEpoch, sch.EndEpoch)
	}
	if !d.PieceCID().Defined() {
		return errors.New("the deal has no piece CID")
	}
	return nil
}

// Placement says where a piece sits: its sector and padded offset and size.
type Placement struct {
	Sector abi.SectorNumber
	Offset abi.PaddedPieceSize
	Size   abi.PaddedPieceSize
}

// Errors callers may test for with errors.Is.
var (
	// ErrStartEpochTooSoon: the deal starts sooner than the sealing buffer
	// allows; it cannot be sealed in time.
	ErrStartEpochTooSoon = errors.New("deal start epoch is too close to seal the sector in time")
	// ErrCommPMismatch: the data's piece commitment is not the deal's
	// PieceCID (or its CRC-32C is not Deal.DataCRC32C). Nothing of it was
	// kept.
	ErrCommPMismatch = errors.New("piece data does not match the deal's piece CID")
	// ErrNoUnsealedCopy: no unsealed copy of the piece is kept.
	ErrNoUnsealedCopy = errors.New("no unsealed copy of the piece")
	// ErrUnknownDeal: the deal was never given to AddPieceToAny.
	ErrUnknownDeal = errors.New("deal not known to the sealing subsystem")
	// ErrUnknownSector: no such sector.
	ErrUnknownSector = errors.New("unknown sector")
	// ErrCannotSeal: no sector this miner can commit satisfies the deal
	// (its end and its allocation's TermMax leave no expiration).
	ErrCannotSeal = errors.New("the deal's terms fit no sector expiration")
)

// Sealing places deal pieces into sectors and seals them. Create it with New
// and run its state machine with Run.
type Sealing struct {
	cfg     Config
	proof   abi.RegisteredSealProof
	st      *store
	node    Chain
	sender  MessageSender
	maddr   address.Address
	miner   abi.ActorID
	sealer  Sealer
	storage StorageMeta

	openFile openFunc   // opens unsealed files; tests inject failures here
	bufs     bufferPool // the aligned buffers of AddPiece's direct writes, for the next piece

	sem     chan struct{}  // bounds concurrent AddPiece writes
	wake    chan struct{}  // nudges Run
	waiters sync.WaitGroup // goroutines waiting for chain messages, ended with Run

	mu       sync.Mutex                     // guards placement decisions, write turns and the fields below
	changed  chan struct{}                  // closed when sectors or turns change, then replaced
	inflight map[uuid.UUID]chan struct{}    // deals with an AddPieceToAny running here
	held     map[abi.SectorNumber]int       // AddPieceToAny calls holding a reservation, per sector
	writer   map[abi.SectorNumber]uuid.UUID // the deal whose piece is being written, per sector
	failed   map[abi.SectorNumber]error     // last AddPiece failure per sector, until its calls end
	awaited  map[uuid.UUID]bool             // message ids a goroutine waits for
}

// ElsewhereError: the deal's piece is placed, and not yet written, in a
// sector of another node of the cluster, which adds it (its files are
// there).
type ElsewhereError struct {
	Node   string
	Sector abi.SectorNumber
}

func (e *ElsewhereError) Error() string {
	return fmt.Sprintf("its piece is placed in sector %d on node %s, which writes it", e.Sector, e.Node)
}

// UnsealedElsewhere lists the other nodes of the cluster holding an
// unsealed copy of pieceCid (ReadPiece reads this node's only).
func (s *Sealing) UnsealedElsewhere(ctx context.Context, pieceCid cid.Cid) ([]string, error) {
	return s.st.unsealedNodes(ctx, pieceCid)
}

// New returns a Sealing for miner maddr that keeps its sectors in the Lotus
// storage path cfg.Dir (moving files of Ferry's first layout to Lotus'
// names) and its state in sqldb (migrated by db.Open). It reads the chain
// through node, sends pre-commits and prove-commits through sender, and
// seals through sealer.
func New(cfg Config, sqldb *sql.DB, node Chain, sender MessageSender, maddr address.Address, sealer Sealer) (*Sealing, error) {
	cfg = cfg.withDefaults()
	proof, err := SealProofFor(cfg.SectorSize)
	if err != nil {
		return nil, fmt.Errorf("sealing config: %w", err)
	}
	if cfg.Dir == "" {
		return nil, errors.New("sealing config: Dir (the storage path for sectors) is not set")
	}
	id, err := address.IDFromAddress(maddr)
	if err != nil {
		return nil, fmt.Errorf("sealing for miner %s: not an ID address: %w", maddr, err)
	}
	meta, err := openStorage(cfg.Dir, abi.ActorID(id))
	if err != nil {
		return nil, fmt.Errorf("opening the sector storage: %w", err)
	}
	st := &store{db: sqldb, now: time.Now, node: cfg.NodeID}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := st.adopt(ctx); err != nil {
		return nil, err
	}
	return &Sealing{
		cfg:      cfg,
		proof:    proof,
		st:       st,
		node:     node,
		sender:   sender,
		maddr:    maddr,
		miner:    abi.ActorID(id),
		sealer:   sealer,
		storage:  meta,
		openFile: osOpen,
		sem:      make(chan struct{}, cfg.AddPieceConcurrency),
		wake:     make(chan struct{}, 1),
		changed:  make(chan struct{}),
		inflight: make(map[uuid.UUID]chan struct{}),
		held:     make(map[abi.SectorNumber]int),
		writer:   make(map[abi.SectorNumber]uuid.UUID),
		failed:   make(map[abi.SectorNumber]error),
		awaited:  make(map[uuid.UUID]bool),
	}, nil
}

// Storage returns the storage path holding the sector files and its
// sectorstore.json.
func (s *Sealing) Storage() (path string, meta StorageMeta) { return s.cfg.Dir, s.storage }

// unsealedPath is where sector n's unsealed file lives.
func (s *Sealing) unsealedPath(n abi.SectorNumber) string {
	return filepath.Join(s.cfg.Dir, dirUnsealed, sectorName(s.miner, n))
}

// nudge wakes Run without blocking.
func (s *Sealing) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// broadcastLocked wakes AddPieceToAny calls waiting for room or for their
// turn. Call with s.mu.
func (s *Sealing) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}
