package sealing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/db"
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
	rows, err := s.db.QueryContext(ctx, `SELECT p.sector, p.offset, p.size FROM sealing_pieces p
		JOIN sealing_sectors s ON s.number = p.sector
		WHERE p.piece_cid = ? AND p.kind = 'deal' AND p.status = 'done' AND s.unsealed_removed = 0
		ORDER BY p.sector, p.offset`, pieceCid.String())
	if err != nil {
		return nil, fmt.Errorf("looking up piece %s: %w", pieceCid, err)
	}
	var cands []Placement
	for rows.Next() {
		var n, off, size int64
		if err := rows.Scan(&n, &off, &size); err != nil {
			rows.Close()
			return nil, fmt.Errorf("looking up piece %s: %w", pieceCid, err)
		}
		cands = append(cands, Placement{Sector: abi.SectorNumber(n), Offset: abi.PaddedPieceSize(off), Size: abi.PaddedPieceSize(size)})
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("looking up piece %s: %w", pieceCid, err)
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

// DealSectorState returns the sector a deal's piece was placed in and that
// sector's state, for the deal status protocol's SealingStatus.
func (s *Sealing) DealSectorState(ctx context.Context, dealUUID uuid.UUID) (abi.SectorNumber, string, error) {
	var n int64
	var state string
	err := s.db.QueryRowContext(ctx, `SELECT s.number, s.state FROM sealing_pieces p
		JOIN sealing_sectors s ON s.number = p.sector WHERE p.deal_uuid = ?`, dealUUID.String()).Scan(&n, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", fmt.Errorf("deal %s: %w", dealUUID, ErrUnknownDeal)
	}
	if err != nil {
		return 0, "", fmt.Errorf("reading sector state of deal %s: %w", dealUUID, err)
	}
	return abi.SectorNumber(n), state, nil
}

// SectorInfo describes a sector for `ferryd sectors list|status`. It
// marshals to plain JSON (CIDs as {"/": "…"}).
type SectorInfo struct {
	Number         abi.SectorNumber        `json:"number"`
	State          string                  `json:"state"`
	SealProof      abi.RegisteredSealProof `json:"sealProof"`
	SectorSize     abi.SectorSize          `json:"sectorSize"`
	Used           abi.PaddedPieceSize     `json:"used"` // padded bytes taken by pieces and fillers
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
	Written      bool                `json:"written"` // false while the write is in progress or was interrupted
	DealUUID     *uuid.UUID          `json:"dealUuid,omitempty"`
	DealID       abi.DealID          `json:"dealId,omitempty"`
	StartEpoch   abi.ChainEpoch      `json:"startEpoch"`
	EndEpoch     abi.ChainEpoch      `json:"endEpoch"`
	KeepUnsealed bool                `json:"keepUnsealed"`
	Error        string              `json:"error,omitempty"`
}

const sectorCols = `number, state, seal_proof, opened_at, updated_at, pack_reason, ticket_epoch, seed_epoch,
	comm_d, comm_r, precommit_msg, precommit_epoch, commit_msg, retries, last_error, unsealed_removed`

func scanSector(sc interface{ Scan(...any) error }, ss abi.SectorSize) (SectorInfo, error) {
	var si SectorInfo
	var n, proof, opened, updated, ticket, seed, pcEpoch int64
	var commD, commR, pcMsg, cMsg string
	var removed bool
	if err := sc.Scan(&n, &si.State, &proof, &opened, &updated, &si.PackReason, &ticket, &seed,
		&commD, &commR, &pcMsg, &pcEpoch, &cMsg, &si.Retries, &si.LastError, &removed); err != nil {
		return si, err
	}
	si.Number = abi.SectorNumber(n)
	si.SealProof = abi.RegisteredSealProof(proof)
	si.SectorSize = ss
	si.OpenedAt = time.Unix(0, opened)
	si.UpdatedAt = time.Unix(0, updated)
	si.TicketEpoch = abi.ChainEpoch(ticket)
	si.SeedEpoch = abi.ChainEpoch(seed)
	si.PreCommitEpoch = abi.ChainEpoch(pcEpoch)
	si.CommD = optCid(commD)
	si.CommR = optCid(commR)
	si.PreCommitMsg = optCid(pcMsg)
	si.CommitMsg = optCid(cMsg)
	si.Unsealed = !removed
	return si, nil
}

func optCid(s string) *cid.Cid {
	if s == "" {
		return nil
	}
	c, err := cid.Decode(s)
	if err != nil {
		return nil
	}
	return &c
}

// Sectors lists every sector with its pieces, in number order.
func (s *Sealing) Sectors(ctx context.Context) ([]SectorInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+sectorCols+` FROM sealing_sectors ORDER BY number`)
	if err != nil {
		return nil, fmt.Errorf("listing sectors: %w", err)
	}
	var out []SectorInfo
	for rows.Next() {
		si, err := scanSector(rows, s.cfg.SectorSize)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("listing sectors: %w", err)
		}
		out = append(out, si)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("listing sectors: %w", err)
	}
	for i := range out {
		if err := s.fillPieces(ctx, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Sector returns one sector with its pieces, or ErrUnknownSector.
func (s *Sealing) Sector(ctx context.Context, n abi.SectorNumber) (SectorInfo, error) {
	si, err := scanSector(s.db.QueryRowContext(ctx, `SELECT `+sectorCols+` FROM sealing_sectors WHERE number = ?`, int64(n)), s.cfg.SectorSize)
	if errors.Is(err, sql.ErrNoRows) {
		return SectorInfo{}, fmt.Errorf("sector %d: %w", n, ErrUnknownSector)
	}
	if err != nil {
		return SectorInfo{}, fmt.Errorf("reading sector %d: %w", n, err)
	}
	if err := s.fillPieces(ctx, &si); err != nil {
		return SectorInfo{}, err
	}
	return si, nil
}

func (s *Sealing) fillPieces(ctx context.Context, si *SectorInfo) error {
	rows, err := s.db.QueryContext(ctx, `SELECT offset, size, kind, status, piece_cid, deal_uuid, COALESCE(deal_id, 0),
		start_epoch, end_epoch, keep_unsealed, error FROM sealing_pieces WHERE sector = ? ORDER BY offset`, int64(si.Number))
	if err != nil {
		return fmt.Errorf("listing pieces of sector %d: %w", si.Number, err)
	}
	defer rows.Close()
	si.Pieces = si.Pieces[:0]
	for rows.Next() {
		var p SectorPiece
		var off, size, dealID, start, end int64
		var kind, status, pc string
		var du sql.NullString
		if err := rows.Scan(&off, &size, &kind, &status, &pc, &du, &dealID, &start, &end, &p.KeepUnsealed, &p.Error); err != nil {
			return fmt.Errorf("listing pieces of sector %d: %w", si.Number, err)
		}
		p.Offset, p.Size = abi.PaddedPieceSize(off), abi.PaddedPieceSize(size)
		p.Filler = kind == kindFiller
		p.Written = status == statusDone
		if c, err := cid.Decode(pc); err == nil {
			p.PieceCID = c
		}
		p.DealUUID = parseUUID(du)
		p.DealID = abi.DealID(dealID)
		p.StartEpoch, p.EndEpoch = abi.ChainEpoch(start), abi.ChainEpoch(end)
		if !p.Filler {
			si.Deals++
		}
		if end := p.Offset + p.Size; end > si.Used {
			si.Used = end
		}
		si.Pieces = append(si.Pieces, p)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing pieces of sector %d: %w", si.Number, err)
	}
	return nil
}

// SectorCounts counts the sectors in each state, for metrics.
func (s *Sealing) SectorCounts(ctx context.Context) (map[string]int64, error) {
	counts, err := db.CountBy(ctx, s.db, `SELECT state, count(*) FROM sealing_sectors GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("counting sectors: %w", err)
	}
	return counts, nil
}
