package sealing

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
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
	cfg    Config
	proof  abi.RegisteredSealProof
	db     *sql.DB
	node   chain.Node
	maddr  address.Address
	sealer Sealer

	openFile openFunc // opens unsealed files; tests inject failures here
	now      func() time.Time

	sem  chan struct{} // bounds concurrent AddPiece writes
	wake chan struct{} // nudges Run

	mu       sync.Mutex                       // guards placement decisions and the fields below
	changed  chan struct{}                    // closed when sectors change, then replaced
	inflight map[uuid.UUID]chan struct{}      // deals with an AddPieceToAny running here
	writing  map[abi.SectorNumber]int         // AddPiece writes placed and not finished, per sector
	locks    map[abi.SectorNumber]*sync.Mutex // serialise writes into one sector file
	failed   map[abi.SectorNumber]error       // last AddPiece failure per sector, until Run handles it
}

// New returns a Sealing that keeps its sectors in cfg.Dir and its state in
// sqldb (migrated by db.Open), sealing for miner maddr through sealer.
func New(cfg Config, sqldb *sql.DB, node chain.Node, maddr address.Address, sealer Sealer) (*Sealing, error) {
	cfg = cfg.withDefaults()
	proof, err := SealProofFor(cfg.SectorSize)
	if err != nil {
		return nil, fmt.Errorf("sealing config: %w", err)
	}
	if cfg.Dir == "" {
		return nil, errors.New("sealing config: Dir (the sectors directory) is not set")
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "unsealed"), 0o755); err != nil {
		return nil, fmt.Errorf("creating sectors directory: %w", err)
	}
	return &Sealing{
		cfg:      cfg,
		proof:    proof,
		db:       sqldb,
		node:     node,
		maddr:    maddr,
		sealer:   sealer,
		openFile: osOpen,
		now:      time.Now,
		sem:      make(chan struct{}, cfg.AddPieceConcurrency),
		wake:     make(chan struct{}, 1),
		changed:  make(chan struct{}),
		inflight: make(map[uuid.UUID]chan struct{}),
		writing:  make(map[abi.SectorNumber]int),
		locks:    make(map[abi.SectorNumber]*sync.Mutex),
		failed:   make(map[abi.SectorNumber]error),
	}, nil
}

// unsealedPath is where sector n's unsealed file lives.
func (s *Sealing) unsealedPath(n abi.SectorNumber) string {
	return filepath.Join(s.cfg.Dir, "unsealed", fmt.Sprint(uint64(n)))
}

// nudge wakes Run without blocking.
func (s *Sealing) nudge() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// broadcastLocked wakes AddPieceToAny calls waiting for room. Call with s.mu.
func (s *Sealing) broadcastLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// sectorLock returns the mutex serialising writes into sector n.
func (s *Sealing) sectorLock(n abi.SectorNumber) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.locks[n]
	if l == nil {
		l = new(sync.Mutex)
		s.locks[n] = l
	}
	return l
}
