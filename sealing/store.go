package sealing

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"

	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/piece"
)

// Sector states. The deal path runs top to bottom; failures loop back.
const (
	StateWaitDeals       = "WaitDeals"
	StateAddPiece        = "AddPiece"
	StateAddPieceFailed  = "AddPieceFailed"
	StatePacking         = "Packing"
	StatePreCommit1      = "PreCommit1"
	StatePreCommit2      = "PreCommit2"
	StateSubmitPreCommit = "SubmitPreCommit"
	StateWaitSeed        = "WaitSeed"
	StateCommitting      = "Committing"
	StateSubmitCommit    = "SubmitCommit"
	StateFinalizeSector  = "FinalizeSector"
	StateProving         = "Proving"
	StateSealFailed      = "SealPreCommit1Failed"
	StatePreCommitFailed = "PreCommitFailed"
	StateCommitFailed    = "CommitFailed"
	// StateFailedUnrecoverable is where a sector stops after MaxRetries.
	StateFailedUnrecoverable = "FailedUnrecoverable"
)

const (
	kindDeal      = "deal"
	kindFiller    = "filler"
	statusWriting = "writing"
	statusDone    = "done"
)

// openStates are the states of a sector that takes new pieces.
const openStatesSQL = `('WaitDeals','AddPiece','AddPieceFailed')`

// errNoRoom: no open sector has room and no new one may be started now.
var errNoRoom = errors.New("no open sector has room and the sector limits forbid a new one")

// lookupDeal finds the placement recorded for a deal, by UUID or chain deal ID.
func (s *Sealing) lookupDeal(ctx context.Context, d Deal) (pl Placement, status string, found bool, err error) {
	row := s.db.QueryRowContext(ctx, `SELECT sector, offset, size, status FROM sealing_pieces
		WHERE kind = 'deal' AND (deal_uuid = ? OR (? > 0 AND deal_id = ?)) LIMIT 1`,
		d.UUID.String(), int64(d.DealID), int64(d.DealID))
	var n, off, size int64
	err = row.Scan(&n, &off, &size, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return Placement{}, "", false, nil
	}
	if err != nil {
		return Placement{}, "", false, fmt.Errorf("looking up deal %s: %w", d.UUID, err)
	}
	return Placement{Sector: abi.SectorNumber(n), Offset: abi.PaddedPieceSize(off), Size: abi.PaddedPieceSize(size)}, status, true, nil
}

// tryPlace records the placement intent of a deal's piece: into the best
// open sector, or a new one when the limits allow. Call with s.mu held.
func (s *Sealing) tryPlace(ctx context.Context, d Deal, size abi.PaddedPieceSize) (Placement, error) {
	var pl Placement
	var prop bytes.Buffer
	if err := d.Proposal.MarshalCBOR(&prop); err != nil {
		return pl, fmt.Errorf("encoding deal proposal: %w", err)
	}
	err := db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		open, err := openSectors(ctx, tx)
		if err != nil {
			return err
		}
		// A sector takes one piece at a time: its offset is then final
		// when recorded, and a failed piece is always the last one.
		var free []openSector
		for _, o := range open {
			if !o.Busy && s.writing[o.Number] == 0 {
				free = append(free, o)
			}
		}
		i := choosePlacement(free, s.cfg.SectorSize, size)
		var sec openSector
		if i >= 0 {
			sec = free[i]
		} else {
			n, err := s.newSectorTx(ctx, tx, len(open))
			if err != nil {
				return err
			}
			sec = openSector{Number: n}
		}
		fillers := fillersBefore(sec.Used, size)
		for _, f := range fillers {
			if _, err := tx.ExecContext(ctx, `INSERT INTO sealing_pieces (sector, offset, size, kind, status, piece_cid)
				VALUES (?, ?, ?, 'filler', 'writing', ?)`, int64(sec.Number), int64(f.Offset), int64(f.Size),
				piece.CIDv1(piece.ZeroCommitment(f.Size)).String()); err != nil {
				return fmt.Errorf("recording filler piece in sector %d: %w", sec.Number, err)
			}
		}
		pl = Placement{Sector: sec.Number, Offset: sec.Used + sumSpans(fillers), Size: size}
		var dealID any
		if d.DealID > 0 {
			dealID = int64(d.DealID)
		}
		publish := ""
		if d.PublishCid.Defined() {
			publish = d.PublishCid.String()
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sealing_pieces (sector, offset, size, kind, status, piece_cid,
			deal_uuid, deal_id, publish_cid, start_epoch, end_epoch, keep_unsealed, proposal)
			VALUES (?, ?, ?, 'deal', 'writing', ?, ?, ?, ?, ?, ?, ?, ?)`,
			int64(pl.Sector), int64(pl.Offset), int64(pl.Size), d.Proposal.PieceCID.String(),
			d.UUID.String(), dealID, publish, int64(d.Proposal.StartEpoch), int64(d.Proposal.EndEpoch),
			d.KeepUnsealed, prop.Bytes()); err != nil {
			return fmt.Errorf("recording placement of deal %s in sector %d: %w", d.UUID, pl.Sector, err)
		}
		return nil
	})
	return pl, err
}

// openSectors lists the sectors taking pieces with their used space.
func openSectors(ctx context.Context, tx *sql.Tx) ([]openSector, error) {
	rows, err := tx.QueryContext(ctx, `SELECT s.number, COALESCE(MAX(p.offset + p.size), 0),
		COUNT(CASE WHEN p.kind = 'deal' THEN 1 END), COUNT(CASE WHEN p.status = 'writing' THEN 1 END)
		FROM sealing_sectors s LEFT JOIN sealing_pieces p ON p.sector = s.number
		WHERE s.state IN `+openStatesSQL+` GROUP BY s.number ORDER BY s.number`)
	if err != nil {
		return nil, fmt.Errorf("listing open sectors: %w", err)
	}
	defer rows.Close()
	var out []openSector
	for rows.Next() {
		var n, used int64
		var deals, writing int
		if err := rows.Scan(&n, &used, &deals, &writing); err != nil {
			return nil, fmt.Errorf("listing open sectors: %w", err)
		}
		out = append(out, openSector{Number: abi.SectorNumber(n), Used: abi.PaddedPieceSize(used), Deals: deals, Busy: writing > 0})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing open sectors: %w", err)
	}
	return out, nil
}

// newSectorTx starts a new sector for deals if MaxWaitDealsSectors and
// MaxSealingSectorsForDeals allow it.
func (s *Sealing) newSectorTx(ctx context.Context, tx *sql.Tx, open int) (abi.SectorNumber, error) {
	if open >= s.cfg.MaxWaitDealsSectors {
		return 0, errNoRoom
	}
	if s.cfg.MaxSealingSectorsForDeals > 0 {
		var sealing int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sealing_sectors WHERE state NOT IN (?, ?)`,
			StateProving, StateFailedUnrecoverable).Scan(&sealing); err != nil {
			return 0, fmt.Errorf("counting sealing sectors: %w", err)
		}
		if sealing >= s.cfg.MaxSealingSectorsForDeals {
			return 0, errNoRoom
		}
	}
	var next int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(number), 0) + 1 FROM sealing_sectors`).Scan(&next); err != nil {
		return 0, fmt.Errorf("choosing a sector number: %w", err)
	}
	now := s.now().UnixNano()
	if _, err := tx.ExecContext(ctx, `INSERT INTO sealing_sectors (number, state, seal_proof, opened_at, updated_at)
		VALUES (?, ?, ?, ?, ?)`, next, StateWaitDeals, int64(s.proof), now, now); err != nil {
		return 0, fmt.Errorf("creating sector %d: %w", next, err)
	}
	return abi.SectorNumber(next), nil
}

func sumSpans(s []span) abi.PaddedPieceSize {
	var t abi.PaddedPieceSize
	for _, x := range s {
		t += x.Size
	}
	return t
}

// pieceSpans lists the spans of a sector's pieces with the given status
// ("" for all), by kind.
func (s *Sealing) pieceSpans(ctx context.Context, n abi.SectorNumber, kind, status string) ([]span, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT offset, size FROM sealing_pieces
		WHERE sector = ? AND (? = '' OR kind = ?) AND (? = '' OR status = ?) ORDER BY offset`,
		int64(n), kind, kind, status, status)
	if err != nil {
		return nil, fmt.Errorf("listing pieces of sector %d: %w", n, err)
	}
	defer rows.Close()
	var out []span
	for rows.Next() {
		var off, size int64
		if err := rows.Scan(&off, &size); err != nil {
			return nil, fmt.Errorf("listing pieces of sector %d: %w", n, err)
		}
		out = append(out, span{Offset: abi.PaddedPieceSize(off), Size: abi.PaddedPieceSize(size)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing pieces of sector %d: %w", n, err)
	}
	return out, nil
}

// markDone records a written piece and the fillers before it as done.
func (s *Sealing) markDone(ctx context.Context, pl Placement) error {
	_, err := s.db.ExecContext(ctx, `UPDATE sealing_pieces SET status = 'done', error = ''
		WHERE sector = ? AND status = 'writing' AND (offset = ? OR (kind = 'filler' AND offset < ?))`,
		int64(pl.Sector), int64(pl.Offset), int64(pl.Offset))
	if err != nil {
		return fmt.Errorf("recording piece at sector %d offset %d as written: %w", pl.Sector, pl.Offset, err)
	}
	return nil
}

// abandonPiece forgets a piece that failed to be written, and the fillers
// placed for it. A sector takes one piece at a time, so the failed piece is
// the last one and the sector goes back to exactly where it was: the pieces
// stay in order with alignment fillers only, as CommD computed from the
// deals alone assumes. Call after the range was zeroed or never written.
func (s *Sealing) abandonPiece(ctx context.Context, pl Placement) error {
	return db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		var after int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM sealing_pieces WHERE sector = ? AND offset > ?`,
			int64(pl.Sector), int64(pl.Offset)).Scan(&after); err != nil {
			return fmt.Errorf("abandoning piece in sector %d: %w", pl.Sector, err)
		}
		if after > 0 {
			return fmt.Errorf("abandoning piece in sector %d at %d: %d pieces follow it", pl.Sector, pl.Offset, after)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sealing_pieces WHERE sector = ? AND status = 'writing'
			AND (offset = ? OR (kind = 'filler' AND offset < ?))`, int64(pl.Sector), int64(pl.Offset), int64(pl.Offset)); err != nil {
			return fmt.Errorf("abandoning piece in sector %d: %w", pl.Sector, err)
		}
		return nil
	})
}

// setState moves sector n to state to if it is in one of from (any when
// from is empty), recording errMsg. It reports whether the row changed.
func (s *Sealing) setState(ctx context.Context, n abi.SectorNumber, to, errMsg string, from ...string) (bool, error) {
	q := `UPDATE sealing_sectors SET state = ?, last_error = ?, updated_at = ? WHERE number = ?`
	args := []any{to, errMsg, s.now().UnixNano(), int64(n)}
	if len(from) > 0 {
		q += ` AND state IN (?` + repeat(",?", len(from)-1) + `)`
		for _, f := range from {
			args = append(args, f)
		}
	}
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("moving sector %d to %s: %w", n, to, err)
	}
	c, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("moving sector %d to %s: %w", n, to, err)
	}
	return c > 0, nil
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

// dealUUIDs is used by tests and status output.
func parseUUID(s sql.NullString) *uuid.UUID {
	if !s.Valid {
		return nil
	}
	u, err := uuid.Parse(s.String)
	if err != nil {
		return nil
	}
	return &u
}
