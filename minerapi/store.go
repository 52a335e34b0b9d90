package minerapi

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/sealing"
)

// dealStore keeps the hand-off records of Sealer (table minerapi_deals).
// All of the package's SQL is here.
type dealStore struct {
	db  *sql.DB
	now func() time.Time
}

// handoff is a deal handed to the remote sealer.
type handoff struct {
	UUID      uuid.UUID
	DealID    abi.DealID
	PieceCID  cid.Cid
	Size      abi.PaddedPieceSize
	Placed    bool // Placement is known
	Placement sealing.Placement
	Attempts  int
}

const handoffCols = `deal_uuid, deal_id, piece_cid, piece_size, sector, sector_offset, attempts`

func scanHandoff(sc interface{ Scan(...any) error }) (handoff, error) {
	var h handoff
	var id, pc string
	var dealID, size int64
	var sector, off sql.NullInt64
	if err := sc.Scan(&id, &dealID, &pc, &size, &sector, &off, &h.Attempts); err != nil {
		return h, err
	}
	var err error
	if h.UUID, err = uuid.Parse(id); err != nil {
		return h, fmt.Errorf("deal UUID %q: %w", id, err)
	}
	if h.PieceCID, err = cid.Decode(pc); err != nil {
		return h, fmt.Errorf("piece CID %q: %w", pc, err)
	}
	h.DealID, h.Size = abi.DealID(dealID), abi.PaddedPieceSize(size)
	if sector.Valid && off.Valid {
		h.Placed = true
		h.Placement = sealing.Placement{Sector: abi.SectorNumber(sector.Int64), Offset: abi.PaddedPieceSize(off.Int64), Size: h.Size}
	}
	return h, nil
}

// get returns the record of a deal, if any.
func (s *dealStore) get(ctx context.Context, id uuid.UUID) (handoff, bool, error) {
	h, err := scanHandoff(s.db.QueryRowContext(ctx, `SELECT `+handoffCols+` FROM minerapi_deals WHERE deal_uuid = ?`, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return handoff{}, false, nil
	}
	if err != nil {
		return handoff{}, false, fmt.Errorf("reading the hand-off record of deal %s: %w", id, err)
	}
	return h, true, nil
}

// begin records that deal d is about to be handed over (once more).
func (s *dealStore) begin(ctx context.Context, d sealing.Deal) error {
	now := s.now().UnixNano()
	publish := "" // a direct piece has none
	if d.PublishCid.Defined() {
		publish = d.PublishCid.String()
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO minerapi_deals (deal_uuid, deal_id, publish_cid, piece_cid, piece_size, attempts, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, 1, ?, ?)
		ON CONFLICT (deal_uuid) DO UPDATE SET attempts = minerapi_deals.attempts + 1, updated_at = excluded.updated_at`,
		d.UUID.String(), int64(d.DealID), publish, d.PieceCID().String(), int64(d.PieceSize()), now, now)
	if err != nil {
		return fmt.Errorf("recording the hand-off of deal %s: %w", d.UUID, err)
	}
	return nil
}

// placed records where the piece of deal id is.
func (s *dealStore) placed(ctx context.Context, id uuid.UUID, pl sealing.Placement) error {
	_, err := s.db.ExecContext(ctx, `UPDATE minerapi_deals SET sector = ?, sector_offset = ?, updated_at = ? WHERE deal_uuid = ?`,
		int64(pl.Sector), int64(pl.Offset), s.now().UnixNano(), id.String())
	if err != nil {
		return fmt.Errorf("recording the placement of deal %s: %w", id, err)
	}
	return nil
}

// placedPiece returns the placed records of a piece, oldest first.
func (s *dealStore) placedPiece(ctx context.Context, pieceCid cid.Cid) ([]handoff, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+handoffCols+` FROM minerapi_deals
		WHERE piece_cid = ? AND sector IS NOT NULL ORDER BY created_at`, pieceCid.String())
	if err != nil {
		return nil, fmt.Errorf("looking up piece %s: %w", pieceCid, err)
	}
	defer rows.Close()
	var out []handoff
	for rows.Next() {
		h, err := scanHandoff(rows)
		if err != nil {
			return nil, fmt.Errorf("looking up piece %s: %w", pieceCid, err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up piece %s: %w", pieceCid, err)
	}
	return out, nil
}
