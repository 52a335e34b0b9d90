package sealing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	miner13 "github.com/filecoin-project/go-state-types/builtin/v13/miner"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/piece"
)

// PieceReader reads a piece's unpadded bytes from an unsealed copy.
type PieceReader interface {
	io.ReaderAt
	io.Closer
	// Size is the unpadded piece size.
	Size() int64
}

// ReadPiece opens a piece for reading from an unsealed sector file. It
// returns ErrNoUnsealedCopy when no written, kept copy of the piece exists.
func (s *Sealing) ReadPiece(ctx context.Context, pieceCid cid.Cid) (PieceReader, error) {
	cands, err := s.st.unsealedCopies(ctx, pieceCid)
	if err != nil {
		return nil, err
	}
	for _, pl := range cands {
		f, err := os.Open(s.unsealedPath(pl.Sector))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("opening unsealed copy of piece %s in sector %d: %w", pieceCid, pl.Sector, err)
		}
		return &pieceReader{f: f, off: pl.Offset, size: int64(pl.Size.Unpadded())}, nil
	}
	return nil, fmt.Errorf("piece %s: %w", pieceCid, ErrNoUnsealedCopy)
}

type pieceReader struct {
	f    *os.File
	off  abi.PaddedPieceSize
	size int64
}

func (r *pieceReader) Size() int64  { return r.size }
func (r *pieceReader) Close() error { return r.f.Close() }

// ReadAt reads unpadded piece bytes, unpadding only the quads it needs.
func (r *pieceReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("reading piece at negative offset %d", off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.size-off)
	got, err := io.ReadFull(piece.UnpadRange(r.f, r.off, uint64(off), uint64(n)), p[:n])
	if err != nil {
		return got, fmt.Errorf("reading piece bytes: %w", err)
	}
	if n < int64(len(p)) {
		return got, io.EOF
	}
	return got, nil
}

// DealSectorStatus is where a deal's piece is and how far its sector got.
type DealSectorStatus struct {
	Sector abi.SectorNumber
	State  SectorState // Lotus' state name, for display
	Proven bool        // the sector is proving: the deal can be active
}

// SectorStatus returns the sector a deal's piece was placed in and how far
// that sector got, or ErrUnknownDeal.
func (s *Sealing) SectorStatus(ctx context.Context, dealUUID uuid.UUID) (DealSectorStatus, error) {
	n, state, err := s.st.dealSector(ctx, dealUUID)
	if err != nil {
		return DealSectorStatus{}, err
	}
	row, _ := lookupState(state)
	return DealSectorStatus{Sector: n, State: state, Proven: row.proving}, nil
}

// SectorInfo describes a sector for `ferryd sectors list|status`. It
// marshals to plain JSON (CIDs as {"/": "…"}).
type SectorInfo struct {
	Number         abi.SectorNumber        `json:"number"`
	State          SectorState             `json:"state"`
	SealProof      abi.RegisteredSealProof `json:"sealProof"`
	SectorSize     abi.SectorSize          `json:"sectorSize"`
	Used           abi.PaddedPieceSize     `json:"used"` // padded bytes taken by pieces, reservations and their fillers
	Deals          int                     `json:"deals"`
	Pieces         []SectorPiece           `json:"pieces"`
	OpenedAt       time.Time               `json:"openedAt"`
	UpdatedAt      time.Time               `json:"updatedAt"`
	PackReason     string                  `json:"packReason,omitempty"`
	TicketEpoch    abi.ChainEpoch          `json:"ticketEpoch"`
	SeedEpoch      abi.ChainEpoch          `json:"seedEpoch"`
	CommD          *cid.Cid                `json:"commD,omitempty"`
	CommR          *cid.Cid                `json:"commR,omitempty"`
	PreCommitMsg   *cid.Cid                `json:"preCommitMsg,omitempty"`
	PreCommitEpoch abi.ChainEpoch          `json:"preCommitEpoch"`
	CommitMsg      *cid.Cid                `json:"commitMsg,omitempty"`
	Retries        int                     `json:"retries"`
	LastError      string                  `json:"lastError,omitempty"`
	Unsealed       bool                    `json:"unsealed"` // an unsealed copy is kept
}

// SectorPiece is one piece (a deal's or a zero filler) in a sector.
type SectorPiece struct {
	Offset       abi.PaddedPieceSize `json:"offset"`
	Size         abi.PaddedPieceSize `json:"size"`
	PieceCID     cid.Cid             `json:"pieceCid"`
	Filler       bool                `json:"filler"`
	Written      bool                `json:"written"` // false while reserved: waiting for its turn, being written, or interrupted
	DealUUID     *uuid.UUID          `json:"dealUuid,omitempty"`
	DealID       abi.DealID          `json:"dealId,omitempty"`
	StartEpoch   abi.ChainEpoch      `json:"startEpoch"`
	EndEpoch     abi.ChainEpoch      `json:"endEpoch"`
	KeepUnsealed bool                `json:"keepUnsealed"`
	Error        string              `json:"error,omitempty"`
	// Direct: a piece onboarded directly (FIP-0076), activated by its
	// manifest; AllocationID is the verified allocation the piece claims.
	Direct       bool               `json:"direct,omitempty"`
	AllocationID chain.AllocationID `json:"allocationId,omitempty"`
	// Manifest is a direct piece's manifest, as its sector is proven with
	// it (lotus-miner's API lists it with the piece).
	Manifest *miner13.PieceActivationManifest `json:"-"`

	proposal *market.DealProposal // a market deal's proposal
	claim    pieceClaim           // the allocation it claims, with its TermMax
}

// Sectors lists every sector with its pieces, in number order.
func (s *Sealing) Sectors(ctx context.Context) ([]SectorInfo, error) {
	return s.st.sectors(ctx, s.cfg.SectorSize)
}

// Sector returns one sector with its pieces, or ErrUnknownSector.
func (s *Sealing) Sector(ctx context.Context, n abi.SectorNumber) (SectorInfo, error) {
	return s.st.sector(ctx, n, s.cfg.SectorSize)
}

// SectorCounts counts the sectors in each state, for metrics: every state of
// the state table (zero where none is), and any other state found.
func (s *Sealing) SectorCounts(ctx context.Context) (map[SectorState]int64, error) {
	counts, err := s.st.countByState(ctx)
	if err != nil {
		return nil, err
	}
	for _, st := range sectorStates() {
		if _, ok := counts[st.state]; !ok {
			counts[st.state] = 0
		}
	}
	return counts, nil
}
