package httpdeal

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/httpdeal/mk20"
)

// mk20Store keeps mk20 deals and uploads (migration 0060_mk20.sql). All
// of httpdeal's SQL is here.
type mk20Store struct {
	db  *sql.DB
	now func() time.Time
}

// dealRow is one mk20_deals row.
type dealRow struct {
	ID        ulid.ULID
	Client    string
	Deal      *mk20.Deal
	Source    mk20.SourceName
	Piece     mk20.PieceInfo
	State     mk20.State
	Error     string
	HandedOff bool
}

// uploadRow is one mk20_uploads row.
type uploadRow struct {
	Chunked   bool
	ChunkSize int64
	Path      string
	CommP     string
	Finalized bool
	Node      string // the cluster node receiving it ("" on a single node)
}

var errNotFound = errors.New("not found")

func (s *mk20Store) stamp() int64 { return s.now().UnixNano() }

// insertDeal stores a new deal. It returns false when the ID is taken.
func (s *mk20Store) insertDeal(ctx context.Context, d *dealRow) (bool, error) {
	b, err := json.Marshal(d.Deal)
	if err != nil {
		return false, fmt.Errorf("encoding deal %s: %w", d.ID, err)
	}
	now := s.stamp()
	res, err := s.db.ExecContext(ctx, `INSERT INTO mk20_deals (id, client, deal, source, piece_cid, piece_size, raw_size, state, handed_off, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		d.ID.String(), d.Client, string(b), string(d.Source), d.Piece.PieceCID.String(), int64(d.Piece.Size), int64(d.Piece.RawSize), string(d.State), false, now, now)
	if err != nil {
		return false, fmt.Errorf("storing deal %s: %w", d.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("storing deal %s: %w", d.ID, err)
	}
	return n == 1, nil
}

// deal reads a deal; errNotFound when there is none.
func (s *mk20Store) deal(ctx context.Context, id ulid.ULID) (*dealRow, error) {
	var d dealRow
	var js, source, state, pc string
	var size, raw int64
	err := s.db.QueryRowContext(ctx, `SELECT client, deal, source, piece_cid, piece_size, raw_size, state, error, handed_off FROM mk20_deals WHERE id = ?`, id.String()).
		Scan(&d.Client, &js, &source, &pc, &size, &raw, &state, &d.Error, &d.HandedOff)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading deal %s: %w", id, err)
	}
	if d.Deal, err = mk20.DecodeDeal([]byte(js)); err != nil {
		return nil, fmt.Errorf("reading deal %s: %w", id, err)
	}
	if d.Deal.Data != nil {
		if d.Piece, err = mk20.ParsePieceCID(d.Deal.Data.PieceCID); err != nil {
			return nil, fmt.Errorf("reading deal %s: %w", id, err)
		}
	}
	d.ID, d.Source, d.State = id, mk20.SourceName(source), mk20.State(state)
	return &d, nil
}

// owner returns the client of a deal; errNotFound when there is none.
func (s *mk20Store) owner(ctx context.Context, id string) (string, error) {
	var c string
	err := s.db.QueryRowContext(ctx, `SELECT client FROM mk20_deals WHERE id = ?`, id).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errNotFound
	}
	if err != nil {
		return "", fmt.Errorf("reading the client of deal %s: %w", id, err)
	}
	return c, nil
}

// updateDeal stores the deal's JSON after /update filled it in.
func (s *mk20Store) updateDeal(ctx context.Context, id ulid.ULID, d *mk20.Deal) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encoding deal %s: %w", id, err)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE mk20_deals SET deal = ?, updated_at = ? WHERE id = ?`, string(b), s.stamp(), id.String()); err != nil {
		return fmt.Errorf("updating deal %s: %w", id, err)
	}
	return nil
}

// setState moves a deal to state with errMsg.
func (s *mk20Store) setState(ctx context.Context, id ulid.ULID, state mk20.State, errMsg string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE mk20_deals SET state = ?, error = ?, updated_at = ? WHERE id = ?`, string(state), errMsg, s.stamp(), id.String()); err != nil {
		return fmt.Errorf("setting deal %s to %s: %w", id, state, err)
	}
	return nil
}

// setHandedOff records that the market has the deal.
func (s *mk20Store) setHandedOff(ctx context.Context, id ulid.ULID) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE mk20_deals SET handed_off = ?, updated_at = ? WHERE id = ?`, true, s.stamp(), id.String()); err != nil {
		return fmt.Errorf("recording the hand-off of deal %s: %w", id, err)
	}
	return nil
}

// pending lists the deals not handed off nor failed: those whose data is
// not an upload, or whose upload is finalized, are to be handed off again
// after a restart.
func (s *mk20Store) pending(ctx context.Context) ([]ulid.ULID, error) {
	return s.ids(ctx, `SELECT d.id FROM mk20_deals d LEFT JOIN mk20_uploads u ON u.id = d.id
		WHERE d.handed_off = ? AND d.state <> ? AND (d.source <> ? OR u.finalized = ?) ORDER BY d.id`,
		false, string(mk20.StateFailed), string(mk20.SourcePut), true)
}

// uploading lists the deals whose upload is not finalized.
func (s *mk20Store) uploading(ctx context.Context) ([]ulid.ULID, error) {
	return s.ids(ctx, `SELECT id FROM mk20_deals WHERE state = ? AND handed_off = ? ORDER BY id`, string(mk20.StateUploading), false)
}

// ids runs a query of deal IDs.
func (s *mk20Store) ids(ctx context.Context, query string, args ...any) ([]ulid.ULID, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing mk20 deals: %w", err)
	}
	defer rows.Close()
	var out []ulid.ULID
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("listing mk20 deals: %w", err)
		}
		id, err := ulid.ParseStrict(s)
		if err != nil {
			return nil, fmt.Errorf("listing mk20 deals: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// upload reads a deal's upload; errNotFound when none was started.
func (s *mk20Store) upload(ctx context.Context, id ulid.ULID) (*uploadRow, error) {
	var u uploadRow
	err := s.db.QueryRowContext(ctx, `SELECT chunked, chunk_size, path, commp, finalized, node FROM mk20_uploads WHERE id = ?`, id.String()).
		Scan(&u.Chunked, &u.ChunkSize, &u.Path, &u.CommP, &u.Finalized, &u.Node)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading the upload of deal %s: %w", id, err)
	}
	return &u, nil
}

// startUpload records an upload and, for a chunked one, its chunks (all
// missing) in one transaction. It returns false when one was started.
func (s *mk20Store) startUpload(ctx context.Context, id ulid.ULID, u *uploadRow, rawSize uint64) (bool, error) {
	started := true
	err := db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO mk20_uploads (id, chunked, chunk_size, path, finalized, node) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			id.String(), u.Chunked, u.ChunkSize, u.Path, false, u.Node)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			started = false
			return err
		}
		if !u.Chunked {
			return nil
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO mk20_upload_chunks (id, chunk, size, complete) VALUES (?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		n := chunkCount(rawSize, u.ChunkSize)
		for i := 1; i <= n; i++ {
			size := u.ChunkSize
			if i == n {
				size = int64(rawSize) - int64(n-1)*u.ChunkSize
			}
			if _, err := stmt.ExecContext(ctx, id.String(), i, size, false); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("starting the upload of deal %s: %w", id, err)
	}
	return started, nil
}

// chunkCount is how many chunks of size chunk make raw bytes.
func chunkCount(raw uint64, chunk int64) int {
	return int((raw + uint64(chunk) - 1) / uint64(chunk))
}

// chunk reads a chunk's size and whether it is complete; errNotFound when
// there is no such chunk.
func (s *mk20Store) chunk(ctx context.Context, id ulid.ULID, n int) (size int64, complete bool, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT size, complete FROM mk20_upload_chunks WHERE id = ? AND chunk = ?`, id.String(), n).Scan(&size, &complete)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, errNotFound
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading chunk %d of deal %s: %w", n, id, err)
	}
	return size, complete, nil
}

// completeChunk marks a chunk complete.
func (s *mk20Store) completeChunk(ctx context.Context, id ulid.ULID, n int) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE mk20_upload_chunks SET complete = ? WHERE id = ? AND chunk = ?`, true, id.String(), n); err != nil {
		return fmt.Errorf("recording chunk %d of deal %s: %w", n, id, err)
	}
	return nil
}

// chunks returns the chunk numbers of an upload, complete and missing,
// in order.
func (s *mk20Store) chunks(ctx context.Context, id ulid.ULID) (complete, missing []int, err error) {
	rows, err := s.db.QueryContext(ctx, `SELECT chunk, complete FROM mk20_upload_chunks WHERE id = ? ORDER BY chunk`, id.String())
	if err != nil {
		return nil, nil, fmt.Errorf("reading the chunks of deal %s: %w", id, err)
	}
	defer rows.Close()
	complete, missing = []int{}, []int{}
	for rows.Next() {
		var n int
		var done bool
		if err := rows.Scan(&n, &done); err != nil {
			return nil, nil, fmt.Errorf("reading the chunks of deal %s: %w", id, err)
		}
		if done {
			complete = append(complete, n)
		} else {
			missing = append(missing, n)
		}
	}
	return complete, missing, rows.Err()
}

// setCommP records the piece CID v1 and raw size of what was uploaded
// (pieceAndSize).
func (s *mk20Store) setCommP(ctx context.Context, id ulid.ULID, commp string) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE mk20_uploads SET commp = ? WHERE id = ?`, commp, id.String()); err != nil {
		return fmt.Errorf("recording the CommP of deal %s: %w", id, err)
	}
	return nil
}

// finalize marks an upload finalized and the deal processing, storing the
// deal as finalize filled it in (nil: unchanged).
func (s *mk20Store) finalize(ctx context.Context, id ulid.ULID, d *mk20.Deal) error {
	return db.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE mk20_uploads SET finalized = ? WHERE id = ?`, true, id.String()); err != nil {
			return fmt.Errorf("finalizing the upload of deal %s: %w", id, err)
		}
		if d != nil {
			b, err := json.Marshal(d)
			if err != nil {
				return fmt.Errorf("encoding deal %s: %w", id, err)
			}
			if _, err := tx.ExecContext(ctx, `UPDATE mk20_deals SET deal = ? WHERE id = ?`, string(b), id.String()); err != nil {
				return fmt.Errorf("updating deal %s: %w", id, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mk20_deals SET state = ?, updated_at = ? WHERE id = ?`, string(mk20.StateProcessing), s.stamp(), id.String()); err != nil {
			return fmt.Errorf("finalizing deal %s: %w", id, err)
		}
		return nil
	})
}
