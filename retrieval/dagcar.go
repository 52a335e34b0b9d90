package retrieval

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/internal/carv1"
	"github.com/ferry-fil/ferry/internal/iocount"
)

// dagCAR is the CARv1 of the whole DAG under root: the root, then every
// block reachable from it, depth-first with links in order, each block
// once, identity CIDs followed but never written.
//
// Most CARs are stored in that very order, so the stream reads the piece
// holding the root sequentially from the root's section on, as /piece
// does: each section read is written as it is when its CID is the next
// block the walk expects (its data is not hashed; see take). Sections the
// walk does not expect next (a CAR in another order, duplicates, another
// DAG's blocks, the end of the piece) are not trusted: the block expected
// is then looked up in the index instead, and sequential reading goes on
// after it. The order of the piece is thus checked, block by block, never
// assumed.
type dagCAR struct {
	ctx  context.Context
	bs   *Blockstore
	root cid.Cid
	open openPieces // the pieces blocks out of order were read from
}

func newDAGCAR(ctx context.Context, bs *Blockstore, root cid.Cid) *stream {
	return &stream{write: (&dagCAR{ctx: ctx, bs: bs, root: root, open: openPieces{}}).write}
}

// stream is a CAR response: WriteTo writes it straight to the
// connection (the gateway copies with io.Copy, which uses it); Read,
// for other readers, pipes from it.
type stream struct {
	write func(io.Writer) error

	once sync.Once
	pr   *io.PipeReader
	done chan struct{}
}

// WriteTo writes the CAR to w.
func (s *stream) WriteTo(w io.Writer) (int64, error) {
	var n atomic.Int64
	err := s.write(iocount.Writer{W: w, N: &n})
	return n.Load(), err
}

// Read reads the CAR through a pipe from WriteTo.
func (s *stream) Read(p []byte) (int, error) {
	s.once.Do(func() {
		var pw *io.PipeWriter
		s.pr, pw = io.Pipe()
		s.done = make(chan struct{})
		go func() {
			defer close(s.done)
			_, err := s.WriteTo(pw)
			pw.CloseWithError(err)
		}()
	})
	return s.pr.Read(p)
}

// Close stops a Read under way.
func (s *stream) Close() error {
	s.once.Do(func() {})
	if s.pr != nil {
		s.pr.Close()
		<-s.done
	}
	return nil
}

func (d *dagCAR) write(w io.Writer) error {
	if _, err := carv1.WriteHeader(w, []cid.Cid{d.root}); err != nil {
		return err
	}
	// Without a piece to read in order, every block comes through the
	// index (and the first one read opens its piece for the next ones).
	sc := &sectionScanner{w: w}
	if !isIdentity(d.root) {
		d.openAtRoot(sc)
	}
	defer sc.close()
	defer d.open.close()
	stack := []cid.Cid{d.root}
	seen := map[string]struct{}{}
	var keep []byte // the data of a block with links, to decode them
	for len(stack) > 0 {
		if err := d.ctx.Err(); err != nil {
			return err
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		key := string(c.Hash())
		if _, ok := seen[key]; ok {
			continue
		}
		seen[key] = struct{}{}
		var data []byte
		var err error
		switch {
		case isIdentity(c):
			data, err = identityData(c)
		default:
			data, err = d.copyBlock(w, sc, c, seen, keep[:0])
			if cap(data) > cap(keep) {
				keep = data
			}
		}
		if err != nil {
			return err
		}
		ls, err := links(c, data)
		if err != nil {
			return err
		}
		for i := len(ls) - 1; i >= 0; i-- {
			stack = append(stack, ls[i])
		}
	}
	return sc.flush()
}

// openAtRoot opens in sc the first piece that holds the root, positioned
// at the root's section; sc stays without a piece when none opens.
func (d *dagCAR) openAtRoot(sc *sectionScanner) {
	locs, err := d.bs.dir.PiecesContaining(d.ctx, d.root.Hash())
	if err != nil {
		return
	}
	for _, loc := range locs {
		pr, err := d.bs.src.ReadPiece(d.ctx, loc.PieceCID)
		if err != nil {
			continue
		}
		sc.piece, sc.pr, sc.sr = loc.PieceCID, pr, newSectionReader(pr, 0, pr.Size())
		sc.seek(int64(loc.Offset))
		return
	}
}

// copyBlock writes the section of block c: from the scanner when its next
// section holds c (skipping sections of blocks already written or inlined
// in identity CIDs), otherwise read through the index, after which the
// scanner goes on from the section following it. It returns c's data when
// c's codec has links (appended to buf), nil otherwise.
func (d *dagCAR) copyBlock(w io.Writer, sc *sectionScanner, c cid.Cid, seen map[string]struct{}, buf []byte) ([]byte, error) {
	for sc.ok() {
		h := sc.peek()
		if h == nil {
			break
		}
		if isIdentity(h.c) {
			sc.skip()
			continue
		}
		if _, dup := seen[string(h.c.Hash())]; dup && !bytes.Equal(h.c.Hash(), c.Hash()) {
			sc.skip()
			continue
		}
		if !bytes.Equal(h.c.Hash(), c.Hash()) {
			break
		}
		return sc.take(c, hasLinks(c), buf)
	}
	if err := sc.flush(); err != nil {
		return nil, err
	}
	data, loc, err := d.bs.load(d.ctx, c, d.open)
	if err != nil {
		return nil, err
	}
	if _, err := carv1.WriteBlock(w, c, data); err != nil {
		return nil, err
	}
	if loc.PieceCID.Defined() {
		sc.resume(d.ctx, d.bs.src, loc, c, len(data))
	}
	if !hasLinks(c) {
		return nil, nil
	}
	return data, nil
}

// hasLinks reports whether blocks of c's codec may link to others.
func hasLinks(c cid.Cid) bool { return c.Type() != cid.Raw }

// sectionHeader is a section's CID and the length of its data.
type sectionHeader struct {
	c    cid.Cid
	size int
}

// sectionScanner reads the CAR sections of one piece in order, through a
// sectionReader (large reads, read-ahead), and writes the sections the
// walk takes to w. Consecutive sections taken as they are stored are
// written as one run of the chunk that holds them, so the stream goes out
// in writes of about a chunk, as /piece/ does. A zero scanner has no piece
// and is never ok.
type sectionScanner struct {
	piece cid.Cid
	pr    index.PieceReader
	sr    *sectionReader
	w     io.Writer

	chunk []byte // the current chunk of the piece
	off   int    // read position in chunk
	// run is the part of chunk taken but not written yet, [runFrom,
	// runTo); runTo == runFrom when there is none.
	runFrom, runTo int
	// hdrFrom is where in chunk the peeked header starts, -1 when it
	// started in an earlier chunk.
	hdrFrom int
	hdr     *sectionHeader
	bad     bool  // the bytes at the position are no section
	err     error // a write failed
}

func (s *sectionScanner) ok() bool { return s.sr != nil && !s.bad && s.err == nil }

func (s *sectionScanner) close() {
	if s.sr != nil {
		s.sr.Close()
		s.pr.Close()
	}
}

// flush writes the pending run.
func (s *sectionScanner) flush() error {
	if s.err == nil && s.runTo > s.runFrom {
		if _, err := s.w.Write(s.chunk[s.runFrom:s.runTo]); err != nil {
			s.err = fmt.Errorf("writing CAR blocks: %w", err)
		}
	}
	s.runFrom, s.runTo = s.off, s.off
	return s.err
}

// seek moves the scanner to the section at piece offset off, after
// writing what is pending.
func (s *sectionScanner) seek(off int64) {
	s.flush()
	s.chunk, s.off, s.runFrom, s.runTo = nil, 0, 0, 0
	s.hdr, s.bad = nil, false
	if _, err := s.sr.Seek(off, io.SeekStart); err != nil {
		s.bad = true
	}
}

// resume moves the scanner past the section of c at loc, which was just
// read through the index: to the next section if loc is in the
// scanner's piece, else into loc's piece when the scanner has none.
func (s *sectionScanner) resume(ctx context.Context, src index.PieceSource, loc index.Location, c cid.Cid, size int) {
	if s.sr == nil {
		pr, err := src.ReadPiece(ctx, loc.PieceCID)
		if err != nil {
			return
		}
		s.piece, s.pr, s.sr = loc.PieceCID, pr, newSectionReader(pr, 0, pr.Size())
	}
	if !s.piece.Equals(loc.PieceCID) {
		return
	}
	s.seek(int64(loc.Offset) + int64(len(carv1.SectionHeader(c, size))) + int64(size))
}

// more makes the chunk hold unread bytes, writing the pending run before
// it moves to the next chunk; false at the end of the piece or on an
// error.
func (s *sectionScanner) more() bool {
	if s.off < len(s.chunk) {
		return true
	}
	if s.flush() != nil {
		return false
	}
	b, err := s.sr.next(int64(sectionBuf))
	if err != nil || len(b) == 0 {
		s.chunk, s.off, s.runFrom, s.runTo = nil, 0, 0, 0
		return false
	}
	s.chunk, s.off, s.runFrom, s.runTo = b, 0, 0, 0
	s.hdrFrom = -1
	return true
}

// ReadByte reads one byte, for the uvarint and CID of a section header.
func (s *sectionScanner) ReadByte() (byte, error) {
	if !s.more() {
		return 0, io.ErrUnexpectedEOF
	}
	b := s.chunk[s.off]
	s.off++
	return b, nil
}

// Read copies unread bytes into p, for the CID of a section header.
func (s *sectionScanner) Read(p []byte) (int, error) {
	if !s.more() {
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, s.chunk[s.off:])
	s.off += n
	return n, nil
}

// peek reads the header of the section at the position, once; nil (and
// the scanner no longer ok) when the bytes there are no section.
func (s *sectionScanner) peek() *sectionHeader {
	if s.hdr != nil || !s.ok() {
		return s.hdr
	}
	if !s.more() {
		s.bad = true
		return nil
	}
	s.hdrFrom = s.off
	l, err := binary.ReadUvarint(s)
	if err != nil || l == 0 || l > maxBlockSize+1024 {
		s.bad = true
		return nil
	}
	n, c, err := cid.CidFromReader(s)
	if err != nil || uint64(n) > l || l-uint64(n) > maxBlockSize {
		s.bad = true
		return nil
	}
	s.hdr = &sectionHeader{c: c, size: int(l - uint64(n))}
	return s.hdr
}

// skip passes over the peeked section, writing what was taken before it.
func (s *sectionScanner) skip() {
	if s.hdrFrom >= 0 {
		s.runTo = min(s.runTo, s.hdrFrom)
	}
	s.flush()
	for left := s.hdr.size; left > 0; {
		if !s.more() {
			s.bad = true
			break
		}
		k := min(left, len(s.chunk)-s.off)
		s.off += k
		left -= k
	}
	s.hdr = nil
	s.runFrom, s.runTo = s.off, s.off
}

// take writes the peeked section as the section of c (which has the same
// multihash) and returns its data appended to buf when keep is set. The
// data is not hashed: the section's CID is the one the walk expects, and
// a trustless client checks every block it receives (hashing here would
// halve the rate, and /piece/ does not hash either).
func (s *sectionScanner) take(c cid.Cid, keep bool, buf []byte) ([]byte, error) {
	size := s.hdr.size
	s.hdr = nil
	want := carv1.SectionHeader(c, size)
	if s.hdrFrom >= 0 && s.runTo == s.hdrFrom && bytes.Equal(s.chunk[s.hdrFrom:s.off], want) {
		s.runTo = s.off // the stored header is the one to send: extend the run
	} else {
		// The header began in an earlier chunk, or is stored otherwise
		// (another CID version, a longer uvarint): send ours.
		if s.hdrFrom >= 0 {
			s.runTo = min(s.runTo, s.hdrFrom)
		}
		if s.flush() != nil {
			return nil, s.err
		}
		if _, err := s.w.Write(want); err != nil {
			s.err = fmt.Errorf("writing CAR block %s: %w", c, err)
			return nil, s.err
		}
	}
	for left := size; left > 0; {
		if !s.more() {
			if s.err != nil {
				return nil, s.err
			}
			s.bad = true
			return nil, fmt.Errorf("block %s: the piece ends inside its section", c)
		}
		k := min(left, len(s.chunk)-s.off)
		if keep {
			buf = append(buf, s.chunk[s.off:s.off+k]...)
		}
		s.off += k
		s.runTo = s.off
		left -= k
	}
	if !keep {
		return nil, nil
	}
	return buf, nil
}
