// Package index is Ferry's piece directory: for every block of every CAR
// stored in a piece, where the block is (piece CID, offset of its CAR section
// in the piece payload, size of its data). It answers "which pieces hold this
// multihash" for retrieval, lists a piece's multihashes for IPNI
// advertisements, and recognises FRC-0058 aggregates, whose sub-pieces' CARs
// it indexes too.
//
// The directory lives in the SQLite database opened by package db (tables
// index_*). Indexing streams the CAR once and writes rows in large sorted
// batches, one transaction per batch, so a piece of a million blocks indexes
// in seconds with flat memory.
package index

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/piece"
)

// ErrNotFound is returned by lookups when the piece or block is not in the
// directory.
var ErrNotFound = errors.New("not found in the piece directory")

// ErrNoUnsealedCopy is what a PieceSource wraps when the piece exists but no
// unsealed copy can be read (the node maps sealing.ErrNoUnsealedCopy to it).
var ErrNoUnsealedCopy = errors.New("no unsealed copy of the piece")

// PieceReader reads the payload of a piece (fr32 padding removed): Size is
// the unpadded piece size.
type PieceReader interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// PieceSource opens pieces for reading; the node adapts the sealing
// subsystem to it.
type PieceSource interface {
	ReadPiece(ctx context.Context, pieceCid cid.Cid) (PieceReader, error)
}

// PieceSourceFunc adapts a function to PieceSource.
type PieceSourceFunc func(ctx context.Context, pieceCid cid.Cid) (PieceReader, error)

// ReadPiece calls f.
func (f PieceSourceFunc) ReadPiece(ctx context.Context, pieceCid cid.Cid) (PieceReader, error) {
	return f(ctx, pieceCid)
}

// Location is where a block is: the piece, the offset of the block's CAR
// section (the varint length prefix) in the piece payload, and the size of
// the block data.
type Location struct {
	PieceCID cid.Cid
	Offset   uint64
	Size     uint64
}

// PieceInfo describes an indexed piece: its CID v1, and once its sizes are
// recorded (SetPieceSizes) its padded size, its payload's size and its CID
// v2 (cid.Undef until then).
type PieceInfo struct {
	PieceCID   cid.Cid
	PieceSize  abi.PaddedPieceSize
	RawSize    uint64
	PieceCIDv2 cid.Cid
	State      string // "indexing", "indexed" or "failed"
	Blocks     int64
	Aggregate  bool
	IndexedAt  time.Time
	Error      string
	// BytesRead and BytesTotal show an indexing run of this Service under
	// way: the payload bytes read so far and those to read (0 when the
	// length of a stream is unknown).
	BytesRead, BytesTotal int64
}

// SegmentInfo is a data segment of an aggregate piece: the sub-piece CID and
// the segment's place in the aggregate's payload (unpadded bytes).
type SegmentInfo struct {
	SubPieceCID cid.Cid
	PieceCID    cid.Cid
	Offset      uint64
	Size        uint64
	Blocks      int64
	Error       string // why the segment's CAR could not be indexed, if so
}

// Result summarises one indexing run.
type Result struct {
	Blocks   int64
	Roots    []cid.Cid
	Segments []SegmentInfo // empty unless the piece is an FRC-0058 aggregate
}

// Service is the piece directory.
type Service struct {
	db  *sql.DB
	src PieceSource
	// BatchSize is how many rows are sorted and written per transaction.
	batch int

	mu      sync.Mutex
	running map[cid.Cid]*progress // the indexing runs under way
}

// progress is how far an indexing run has read.
type progress struct {
	read  atomic.Int64
	total int64
}

// track records an indexing run of pieceCid over total bytes; the returned
// function ends it.
func (s *Service) track(pieceCid cid.Cid, total int64) (*progress, func()) {
	p := &progress{total: total}
	s.mu.Lock()
	s.running[pieceCid] = p
	s.mu.Unlock()
	return p, func() {
		s.mu.Lock()
		if s.running[pieceCid] == p {
			delete(s.running, pieceCid)
		}
		s.mu.Unlock()
	}
}

// withProgress adds the progress of a run under way to pi.
func (s *Service) withProgress(pi PieceInfo) PieceInfo {
	if pi.State != stateIndexing {
		return pi
	}
	s.mu.Lock()
	p := s.running[pi.PieceCID]
	s.mu.Unlock()
	if p != nil {
		pi.BytesRead, pi.BytesTotal = p.read.Load(), p.total
	}
	return pi
}

// Option configures a Service.
type Option func(*Service)

// WithBatchSize sets how many block rows are written per transaction
// (default 100,000).
func WithBatchSize(n int) Option {
	return func(s *Service) {
		if n > 0 {
			s.batch = n
		}
	}
}

// New returns the piece directory kept in sqldb (opened with db.Open). src
// is used by Rebuild; it may be nil when Rebuild is not needed.
func New(sqldb *sql.DB, src PieceSource, opts ...Option) *Service {
	s := &Service{db: sqldb, src: src, batch: 100_000, running: map[cid.Cid]*progress{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

const (
	stateIndexing = "indexing"
	stateIndexed  = "indexed"
	stateFailed   = "failed"
)

// IsIndexed reports whether pieceCid has been indexed completely.
func (s *Service) IsIndexed(ctx context.Context, pieceCid cid.Cid) (bool, error) {
	var state string
	err := s.db.QueryRowContext(ctx, `SELECT state FROM index_pieces WHERE piece_cid = ?`, pieceCid.String()).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("looking up piece %s: %w", pieceCid, err)
	}
	return state == stateIndexed, nil
}

// Piece returns what the directory knows of pieceCid.
func (s *Service) Piece(ctx context.Context, pieceCid cid.Cid) (PieceInfo, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+pieceColumns+` FROM index_pieces WHERE piece_cid = ?`, pieceCid.String())
	pi, err := scanPiece(row)
	if errors.Is(err, sql.ErrNoRows) {
		return PieceInfo{}, fmt.Errorf("piece %s: %w", pieceCid, ErrNotFound)
	}
	if err != nil {
		return PieceInfo{}, fmt.Errorf("looking up piece %s: %w", pieceCid, err)
	}
	return s.withProgress(pi), nil
}

// Pieces lists every piece in the directory.
func (s *Service) Pieces(ctx context.Context) ([]PieceInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+pieceColumns+` FROM index_pieces ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("listing pieces: %w", err)
	}
	defer rows.Close()
	var out []PieceInfo
	for rows.Next() {
		pi, err := scanPiece(rows)
		if err != nil {
			return nil, fmt.Errorf("listing pieces: %w", err)
		}
		out = append(out, s.withProgress(pi))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing pieces: %w", err)
	}
	return out, nil
}

type scanner interface{ Scan(...any) error }

const pieceColumns = `piece_cid, state, blocks, aggregate, indexed_at, error, piece_size, raw_size`

func scanPiece(sc scanner) (PieceInfo, error) {
	var (
		pi         PieceInfo
		pc         string
		agg        bool
		when       int64
		size, sraw int64
	)
	if err := sc.Scan(&pc, &pi.State, &pi.Blocks, &agg, &when, &pi.Error, &size, &sraw); err != nil {
		return pi, err
	}
	c, err := cid.Decode(pc)
	if err != nil {
		return pi, fmt.Errorf("stored piece CID %q: %w", pc, err)
	}
	pi.PieceCID, pi.Aggregate = c, agg
	if size > 0 {
		pi.PieceSize, pi.RawSize = abi.PaddedPieceSize(size), uint64(sraw)
		if pi.PieceCIDv2, err = piece.V1ToV2(c, pi.RawSize, pi.PieceSize); err != nil {
			return pi, fmt.Errorf("stored piece %s of %d bytes with a %d-byte payload: %w", c, size, sraw, err)
		}
	}
	if when != 0 {
		pi.IndexedAt = time.Unix(when, 0)
	}
	return pi, nil
}

// PiecesContaining returns every location of the block with multihash mh in
// completely indexed pieces.
func (s *Service) PiecesContaining(ctx context.Context, mh multihash.Multihash) ([]Location, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT p.piece_cid, b.section_offset, b.size FROM index_blocks b
		JOIN index_pieces p ON p.id = b.piece_id WHERE b.mh = ? AND p.state = ?`, []byte(mh), stateIndexed)
	if err != nil {
		return nil, fmt.Errorf("looking up block %s: %w", mh.B58String(), err)
	}
	defer rows.Close()
	var out []Location
	for rows.Next() {
		var (
			l  Location
			pc string
		)
		if err := rows.Scan(&pc, &l.Offset, &l.Size); err != nil {
			return nil, fmt.Errorf("looking up block %s: %w", mh.B58String(), err)
		}
		if l.PieceCID, err = cid.Decode(pc); err != nil {
			return nil, fmt.Errorf("stored piece CID %q: %w", pc, err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up block %s: %w", mh.B58String(), err)
	}
	return out, nil
}

// BlockLocation returns where the block mh is in pieceCid.
func (s *Service) BlockLocation(ctx context.Context, pieceCid cid.Cid, mh multihash.Multihash) (Location, error) {
	l := Location{PieceCID: pieceCid}
	err := s.db.QueryRowContext(ctx, `SELECT b.section_offset, b.size FROM index_blocks b JOIN index_pieces p ON p.id = b.piece_id
		WHERE p.piece_cid = ? AND b.mh = ?`, pieceCid.String(), []byte(mh)).Scan(&l.Offset, &l.Size)
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("block %s in piece %s: %w", mh.B58String(), pieceCid, ErrNotFound)
	}
	if err != nil {
		return l, fmt.Errorf("looking up block %s in piece %s: %w", mh.B58String(), pieceCid, err)
	}
	return l, nil
}

// PieceBlocks yields the multihashes of every block of pieceCid, in
// multihash order, streaming from the database. It yields one ErrNotFound
// error if the piece is not indexed.
func (s *Service) PieceBlocks(ctx context.Context, pieceCid cid.Cid) iter.Seq2[multihash.Multihash, error] {
	return func(yield func(multihash.Multihash, error) bool) {
		var id int64
		err := s.db.QueryRowContext(ctx, `SELECT id FROM index_pieces WHERE piece_cid = ? AND state = ?`, pieceCid.String(), stateIndexed).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			yield(nil, fmt.Errorf("piece %s: %w", pieceCid, ErrNotFound))
			return
		}
		if err != nil {
			yield(nil, fmt.Errorf("looking up piece %s: %w", pieceCid, err))
			return
		}
		// SQLite would walk the primary key for the order; its index by
		// piece and a sort read only this piece's rows.
		hint := ""
		if db.DialectOf(s.db) == db.SQLite {
			hint = " INDEXED BY index_blocks_piece"
		}
		rows, err := s.db.QueryContext(ctx, `SELECT mh FROM index_blocks`+hint+` WHERE piece_id = ? ORDER BY mh`, id)
		if err != nil {
			yield(nil, fmt.Errorf("listing blocks of piece %s: %w", pieceCid, err))
			return
		}
		defer rows.Close()
		for rows.Next() {
			var mh []byte
			if err := rows.Scan(&mh); err != nil {
				yield(nil, fmt.Errorf("listing blocks of piece %s: %w", pieceCid, err))
				return
			}
			if !yield(multihash.Multihash(mh), nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(nil, fmt.Errorf("listing blocks of piece %s: %w", pieceCid, err))
		}
	}
}

// PiecesWithRoot returns the pieces whose CAR (or a sub-piece's CAR) names
// root among its roots.
func (s *Service) PiecesWithRoot(ctx context.Context, root cid.Cid) ([]cid.Cid, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT p.piece_cid FROM index_roots r JOIN index_pieces p ON p.id = r.piece_id
		WHERE r.root = ? AND p.state = ? ORDER BY p.id`, root.Bytes(), stateIndexed)
	if err != nil {
		return nil, fmt.Errorf("looking up root %s: %w", root, err)
	}
	defer rows.Close()
	var out []cid.Cid
	for rows.Next() {
		var pc string
		if err := rows.Scan(&pc); err != nil {
			return nil, fmt.Errorf("looking up root %s: %w", root, err)
		}
		c, err := cid.Decode(pc)
		if err != nil {
			return nil, fmt.Errorf("stored piece CID %q: %w", pc, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up root %s: %w", root, err)
	}
	return out, nil
}

// Segments returns the data segments recorded for the aggregate pieceCid.
func (s *Service) Segments(ctx context.Context, pieceCid cid.Cid) ([]SegmentInfo, error) {
	return s.segments(ctx, `p.piece_cid = ? ORDER BY g.segment_offset`, pieceCid.String())
}

// FindSegment returns the aggregates holding sub-piece subPieceCid as a
// data segment whose commitment was verified.
func (s *Service) FindSegment(ctx context.Context, subPieceCid cid.Cid) ([]SegmentInfo, error) {
	return s.segments(ctx, `g.sub_piece_cid = ? AND g.error = ? AND p.state = ?`, subPieceCid.String(), "", stateIndexed)
}

func (s *Service) segments(ctx context.Context, where string, args ...any) ([]SegmentInfo, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT g.sub_piece_cid, p.piece_cid, g.segment_offset, g.size, g.blocks, g.error
		FROM index_segments g JOIN index_pieces p ON p.id = g.piece_id WHERE `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("listing data segments: %w", err)
	}
	defer rows.Close()
	var out []SegmentInfo
	for rows.Next() {
		var (
			si     SegmentInfo
			sp, pc string
		)
		if err := rows.Scan(&sp, &pc, &si.Offset, &si.Size, &si.Blocks, &si.Error); err != nil {
			return nil, fmt.Errorf("listing data segments: %w", err)
		}
		if si.SubPieceCID, err = cid.Decode(sp); err != nil {
			return nil, fmt.Errorf("stored sub-piece CID %q: %w", sp, err)
		}
		if si.PieceCID, err = cid.Decode(pc); err != nil {
			return nil, fmt.Errorf("stored piece CID %q: %w", pc, err)
		}
		out = append(out, si)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing data segments: %w", err)
	}
	return out, nil
}

// SetPieceSizes records the padded size of pieceCid and its payload's
// size, from which its CID v2 is made, once the piece is indexed (Rebuild
// or IndexPiece made its entry). It checks that they make a v2.
func (s *Service) SetPieceSizes(ctx context.Context, pieceCid cid.Cid, size abi.PaddedPieceSize, raw uint64) error {
	if _, err := piece.V1ToV2(pieceCid, raw, size); err != nil {
		return fmt.Errorf("recording the sizes of piece %s: %w", pieceCid, err)
	}
	res, err := s.db.ExecContext(ctx, `UPDATE index_pieces SET piece_size = ?, raw_size = ? WHERE piece_cid = ?`,
		int64(size), int64(raw), pieceCid.String())
	if err != nil {
		return fmt.Errorf("recording the sizes of piece %s: %w", pieceCid, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("recording the sizes of piece %s: %w", pieceCid, errors.Join(err, ErrNotFound))
	}
	return nil
}

// RemovePiece deletes pieceCid and its blocks from the directory. Removing a
// piece that is not there is not an error.
func (s *Service) RemovePiece(ctx context.Context, pieceCid cid.Cid) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("removing piece %s: %w", pieceCid, err)
	}
	defer tx.Rollback()
	var id int64
	err = tx.QueryRowContext(ctx, `SELECT id FROM index_pieces WHERE piece_cid = ?`, pieceCid.String()).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("removing piece %s: %w", pieceCid, err)
	}
	if err := clearPiece(ctx, tx, id); err != nil {
		return fmt.Errorf("removing piece %s: %w", pieceCid, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM index_pieces WHERE id = ?`, id); err != nil {
		return fmt.Errorf("removing piece %s: %w", pieceCid, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("removing piece %s: %w", pieceCid, err)
	}
	return nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func clearPiece(ctx context.Context, tx execer, id int64) error {
	for _, q := range []string{
		`DELETE FROM index_blocks WHERE piece_id = ?`,
		`DELETE FROM index_roots WHERE piece_id = ?`,
		`DELETE FROM index_segments WHERE piece_id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return err
		}
	}
	return nil
}

// Rebuild indexes pieceCid again from the copy the PieceSource reads (the
// unsealed sector).
func (s *Service) Rebuild(ctx context.Context, pieceCid cid.Cid) (Result, error) {
	if s.src == nil {
		return Result{}, errors.New("rebuilding the index: no piece source configured")
	}
	if _, err := piece.ParseCID(pieceCid); err != nil {
		return Result{}, fmt.Errorf("rebuilding the index: %w", err)
	}
	pr, err := s.src.ReadPiece(ctx, pieceCid)
	if err != nil {
		return Result{}, fmt.Errorf("rebuilding the index of %s: opening the piece: %w", pieceCid, err)
	}
	defer pr.Close()
	return s.IndexPiece(ctx, pieceCid, pr, pr.Size())
}

// PieceCounts counts the pieces of the directory in each state
// ("indexing", "indexed", "failed"), for metrics.
func (s *Service) PieceCounts(ctx context.Context) (map[string]int64, error) {
	counts, err := db.CountBy(ctx, s.db, `SELECT state, count(*) FROM index_pieces GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("counting pieces: %w", err)
	}
	return counts, nil
}
