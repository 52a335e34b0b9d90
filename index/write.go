package index

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"

	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/internal/iocount"
	"github.com/ferry-fil/ferry/piece"
)

// readBuf is the read-ahead used on CAR streams: large reads keep system
// calls and sealing reads few.
const readBuf = 1 << 20

// rowsPerInsert is how many block rows one INSERT statement carries.
const rowsPerInsert = 200

// maxHeader bounds a CAR header: a few roots need far less.
const maxHeader = 1 << 20

// IndexPiece indexes the payload of pieceCid read from r, size bytes long
// (the unpadded piece size, or just the deal's CAR: bytes past size count as
// zeros). When the piece ends with an FRC-0058 data segment index, each valid
// segment's commitment is checked and its CAR indexed; otherwise the payload
// is read as one CARv1 or CARv2 (zero padding after it is fine). Indexing a
// piece again replaces its earlier rows.
func (s *Service) IndexPiece(ctx context.Context, pieceCid cid.Cid, r io.ReaderAt, size int64) (Result, error) {
	if _, err := piece.ParseCID(pieceCid); err != nil {
		return Result{}, fmt.Errorf("indexing: %w", err)
	}
	prog, done := s.track(pieceCid, size)
	defer done()
	r = iocount.ReaderAt{R: r, N: &prog.read}
	segs, err := ReadSegmentIndex(r, size)
	if err != nil {
		return Result{}, fmt.Errorf("indexing piece %s: %w", pieceCid, err)
	}
	w, err := s.begin(ctx, pieceCid)
	if err != nil {
		return Result{}, err
	}
	defer w.close()
	var res Result
	if len(segs) == 0 {
		blocks, roots, err := w.scanCAR(ctx, newChunkReader(r, 0, size, nil), 0)
		if err != nil {
			return res, w.fail(ctx, fmt.Errorf("indexing piece %s: %w", pieceCid, err))
		}
		res.Blocks, res.Roots = blocks, roots
	} else {
		for _, seg := range segs {
			si, roots, err := w.scanSegment(ctx, r, size, seg)
			if err != nil {
				return res, w.fail(ctx, fmt.Errorf("indexing piece %s: %w", pieceCid, err))
			}
			si.PieceCID = pieceCid
			res.Segments = append(res.Segments, si)
			res.Blocks += si.Blocks
			res.Roots = append(res.Roots, roots...)
		}
	}
	if err := w.finish(ctx, res); err != nil {
		return res, w.fail(ctx, fmt.Errorf("indexing piece %s: %w", pieceCid, err))
	}
	return res, nil
}

// IndexCAR indexes a CAR stream (CARv1 or CARv2, zero padding after it
// allowed) as the whole payload of pieceCid, without looking for an
// aggregate's data segment index. Indexing a piece again replaces its
// earlier rows.
func (s *Service) IndexCAR(ctx context.Context, pieceCid cid.Cid, r io.Reader) (Result, error) {
	if _, err := piece.ParseCID(pieceCid); err != nil {
		return Result{}, fmt.Errorf("indexing: %w", err)
	}
	prog, done := s.track(pieceCid, 0)
	defer done()
	r = iocount.Reader{R: r, N: &prog.read}
	w, err := s.begin(ctx, pieceCid)
	if err != nil {
		return Result{}, err
	}
	defer w.close()
	blocks, roots, err := w.scanCAR(ctx, r, 0)
	if err != nil {
		return Result{}, w.fail(ctx, fmt.Errorf("indexing piece %s: %w", pieceCid, err))
	}
	res := Result{Blocks: blocks, Roots: roots}
	if err := w.finish(ctx, res); err != nil {
		return res, w.fail(ctx, fmt.Errorf("indexing piece %s: %w", pieceCid, err))
	}
	return res, nil
}

type blockRow struct {
	mh        []byte
	off, size uint64
}

// run is one indexing of one piece, on its own connection so that its
// larger page cache does not leak to the rest of the pool.
type run struct {
	s       *Service
	conn    *sql.Conn
	pieceID int64
	rows    []blockRow
	insert  string // the full-size INSERT statement
	sqlite  bool   // the database is SQLite, whose page cache is set per connection
}

func (s *Service) begin(ctx context.Context, pieceCid cid.Cid) (*run, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("indexing piece %s: taking a connection: %w", pieceCid, err)
	}
	w := &run{s: s, conn: conn, rows: make([]blockRow, 0, min(s.batch, 1<<16)), sqlite: db.DialectOf(s.db) == db.SQLite}
	if w.sqlite {
		// 64 MiB of page cache while the batches go in.
		if _, err := conn.ExecContext(ctx, `PRAGMA cache_size = -65536`); err != nil {
			conn.Close()
			return nil, fmt.Errorf("indexing piece %s: %w", pieceCid, err)
		}
	}
	err = w.inTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `INSERT INTO index_pieces (piece_cid, state) VALUES (?, ?)
			ON CONFLICT (piece_cid) DO UPDATE SET state = excluded.state, blocks = 0, aggregate = 0, error = ''
			RETURNING id`, pieceCid.String(), stateIndexing).Scan(&w.pieceID); err != nil {
			return err
		}
		return clearPiece(ctx, tx, w.pieceID)
	})
	if err != nil {
		w.close()
		return nil, fmt.Errorf("indexing piece %s: recording the start: %w", pieceCid, err)
	}
	w.insert = w.insertBlocks(rowsPerInsert)
	return w, nil
}

// insertBlocks returns the statement inserting n block rows of the piece
// (a block already there, twice in one CAR, is kept once).
func (w *run) insertBlocks(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO index_blocks (mh, piece_id, section_offset, size) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "(?,%d,?,?)", w.pieceID)
	}
	b.WriteString(` ON CONFLICT (mh, piece_id) DO NOTHING`)
	return b.String()
}

func (w *run) close() {
	if w.sqlite {
		w.conn.ExecContext(context.Background(), `PRAGMA cache_size = -2000`)
	}
	w.conn.Close()
}

func (w *run) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := w.conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (w *run) add(ctx context.Context, mh []byte, off, size uint64) error {
	w.rows = append(w.rows, blockRow{mh: mh, off: off, size: size})
	if len(w.rows) >= w.s.batch {
		return w.flush(ctx)
	}
	return nil
}

// flush writes the pending rows in one transaction, sorted by multihash so
// that the B-tree pages they land in are visited in order.
func (w *run) flush(ctx context.Context) error {
	if len(w.rows) == 0 {
		return nil
	}
	slices.SortFunc(w.rows, func(a, b blockRow) int { return bytes.Compare(a.mh, b.mh) })
	err := w.inTx(ctx, func(tx *sql.Tx) error {
		rows := w.rows
		args := make([]any, 0, 3*rowsPerInsert)
		if len(rows) >= rowsPerInsert {
			stmt, err := tx.PrepareContext(ctx, w.insert)
			if err != nil {
				return err
			}
			defer stmt.Close()
			for len(rows) >= rowsPerInsert {
				args = args[:0]
				for _, r := range rows[:rowsPerInsert] {
					args = append(args, r.mh, int64(r.off), int64(r.size))
				}
				if _, err := stmt.ExecContext(ctx, args...); err != nil {
					return err
				}
				rows = rows[rowsPerInsert:]
			}
		}
		if len(rows) > 0 {
			args = args[:0]
			for _, r := range rows {
				args = append(args, r.mh, int64(r.off), int64(r.size))
			}
			if _, err := tx.ExecContext(ctx, w.insertBlocks(len(rows)), args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing %d block rows: %w", len(w.rows), err)
	}
	w.rows = w.rows[:0]
	return nil
}

// scanCAR reads the CAR in r, recording each block at base plus its
// section's offset in r.
func (w *run) scanCAR(ctx context.Context, r io.Reader, base uint64) (int64, []cid.Cid, error) {
	if _, ok := r.(*chunkReader); !ok {
		r = bufio.NewReaderSize(r, readBuf)
	}
	br, err := car.NewBlockReader(r,
		car.ZeroLengthSectionAsEOF(true), car.MaxAllowedHeaderSize(maxHeader))
	if err != nil {
		return 0, nil, fmt.Errorf("reading CAR header: %w", err)
	}
	var n int64
	for {
		if n%8192 == 0 {
			if err := ctx.Err(); err != nil {
				return n, nil, err
			}
		}
		md, err := br.SkipNext()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, nil, fmt.Errorf("reading CAR block %d: %w", n, err)
		}
		if err := w.add(ctx, md.Cid.Hash(), base+md.SourceOffset, md.Size); err != nil {
			return n, nil, err
		}
		n++
	}
	return n, br.Roots, nil
}

// scanSegment checks the commitment of one data segment of an aggregate
// while indexing its CAR. A segment whose CAR cannot be read or whose
// commitment does not match is recorded with its error and without blocks:
// one bad sub-piece must not hide the others.
func (w *run) scanSegment(ctx context.Context, r io.ReaderAt, size int64, seg Segment) (SegmentInfo, []cid.Cid, error) {
	si := SegmentInfo{SubPieceCID: seg.PieceCID(), Offset: seg.UnpaddedOffset(), Size: seg.UnpaddedSize()}
	end := min(int64(si.Offset+si.Size), size)
	calc := piece.NewCalc()
	cr := newChunkReader(r, int64(si.Offset), end-int64(si.Offset), calc)
	blocks, roots, carErr := w.scanCAR(ctx, cr, si.Offset)
	if ctx.Err() != nil {
		return si, nil, ctx.Err()
	}
	if err := cr.drain(); err != nil {
		return si, nil, fmt.Errorf("reading data segment %s: %w", si.SubPieceCID, err)
	}
	comm, err := calc.SumAs(seg.PaddedPieceSize())
	switch {
	case err != nil:
		si.Error = fmt.Sprintf("computing the commitment: %v", err)
	case comm.Root != seg.CommDs:
		si.Error = fmt.Sprintf("commitment mismatch: the data hashes to %s", piece.CIDv1(comm.Root))
	case carErr != nil:
		si.Error = carErr.Error()
	}
	if si.Error == "" {
		si.Blocks = blocks
		return si, roots, nil
	}
	if err := w.flush(ctx); err != nil {
		return si, nil, err
	}
	if _, err := w.conn.ExecContext(ctx, `DELETE FROM index_blocks WHERE piece_id = ? AND section_offset >= ? AND section_offset < ?`,
		w.pieceID, int64(si.Offset), int64(si.Offset+si.Size)); err != nil {
		return si, nil, fmt.Errorf("dropping the blocks of bad data segment %s: %w", si.SubPieceCID, err)
	}
	return si, nil, nil
}

// finish writes the remaining rows, the roots and segments, and marks the
// piece indexed.
func (w *run) finish(ctx context.Context, res Result) error {
	if err := w.flush(ctx); err != nil {
		return err
	}
	return w.inTx(ctx, func(tx *sql.Tx) error {
		for _, r := range res.Roots {
			if _, err := tx.ExecContext(ctx, `INSERT INTO index_roots (root, piece_id) VALUES (?, ?) ON CONFLICT (root, piece_id) DO NOTHING`, r.Bytes(), w.pieceID); err != nil {
				return fmt.Errorf("recording root %s: %w", r, err)
			}
		}
		for _, sg := range res.Segments {
			if _, err := tx.ExecContext(ctx, `INSERT INTO index_segments (sub_piece_cid, piece_id, segment_offset, size, blocks, error)
				VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (sub_piece_cid, piece_id) DO UPDATE SET segment_offset = excluded.segment_offset,
				size = excluded.size, blocks = excluded.blocks, error = excluded.error`, sg.SubPieceCID.String(), w.pieceID, int64(sg.Offset), int64(sg.Size), sg.Blocks, sg.Error); err != nil {
				return fmt.Errorf("recording data segment %s: %w", sg.SubPieceCID, err)
			}
		}
		_, err := tx.ExecContext(ctx, `UPDATE index_pieces SET state = ?, blocks = ?, aggregate = ?, indexed_at = ?, error = '' WHERE id = ?`,
			stateIndexed, res.Blocks, len(res.Segments) > 0, time.Now().Unix(), w.pieceID)
		return err
	})
}

// fail drops what was written for the piece, records why, and returns cause.
func (w *run) fail(ctx context.Context, cause error) error {
	// The caller's context may be what failed: clean up regardless.
	bg := context.WithoutCancel(ctx)
	err := w.inTx(bg, func(tx *sql.Tx) error {
		if err := clearPiece(bg, tx, w.pieceID); err != nil {
			return err
		}
		_, err := tx.ExecContext(bg, `UPDATE index_pieces SET state = ?, blocks = 0, error = ? WHERE id = ?`, stateFailed, cause.Error(), w.pieceID)
		return err
	})
	if err != nil {
		return fmt.Errorf("%w (and recording the failure: %v)", cause, err)
	}
	return cause
}
