package sealing

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
)

// Deal is a published deal whose piece is to be placed in a sector.
type Deal struct {
	// UUID is the deal's identity in the market (DealParams.DealUUID).
	UUID uuid.UUID
	// DealID is the chain deal ID from the publish receipt.
	DealID abi.DealID
	// PublishCid is the CID of the PublishStorageDeals message.
	PublishCid cid.Cid
	// Proposal is the deal proposal as published.
	Proposal market.DealProposal
	// KeepUnsealed asks to keep the unsealed copy once the sector is proven.
	KeepUnsealed bool
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
	// PieceCID. Nothing of it was kept.
	ErrCommPMismatch = errors.New("piece data does not match the deal's piece CID")
	// ErrNoUnsealedCopy: no unsealed copy of the piece is kept.
	ErrNoUnsealedCopy = errors.New("no unsealed copy of the piece")
	// ErrUnknownDeal: the deal was never given to AddPieceToAny.
	ErrUnknownDeal = errors.New("deal not known to the sealing subsystem")
	// ErrUnknownSector: no such sector.
	ErrUnknownSector = errors.New("unknown sector")
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
	return &Sealing{
		cfg:      cfg,
		proof:    proof,
		st:       &store{db: sqldb, now: time.Now},
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
