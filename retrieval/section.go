package retrieval

import (
	"errors"
	"io"
	"net/http"
)

// sectionBuf is how much of the piece one read of the unsealed copy asks
// for: few large reads keep fr32 unpadding and system calls cheap. It is a
// whole number of 127-byte fr32 quads (~1 MiB), so reads that start on a
// quad stay on quads and are unpadded straight into our buffer.
const sectionBuf = 127 << 13

// readAhead is how many chunks a long read keeps ready ahead of the writer.
const readAhead = 2

// sectionReader is an io.ReadSeeker over [off, off+size) of r that reads r
// in sectionBuf-sized calls, whatever size the caller reads in. Once a
// caller has read two chunks in a row (a long download rather than a small
// range), a goroutine reads and unpads the next chunks while the current one
// is sent. Close stops it.
type sectionReader struct {
	r         io.ReaderAt
	off, size int64
	pos       int64
	cur       []byte
	curPos    int64 // section offset of cur[0]
	seq       int   // chunks read in a row without seeking
	pf        *prefetcher
}

func newSectionReader(r io.ReaderAt, off, size int64) *sectionReader {
	return &sectionReader{r: r, off: off, size: size}
}

type chunk struct {
	pos int64
	b   []byte
	err error
}

type prefetcher struct {
	ch   chan chunk
	free chan []byte
	stop chan struct{}
	done chan struct{}
}

func (s *sectionReader) startPrefetch(from int64) {
	p := &prefetcher{
		ch:   make(chan chunk, readAhead),
		free: make(chan []byte, readAhead+2),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	s.pf = p
	go func() {
		defer close(p.done)
		defer close(p.ch)
		for pos := from; pos < s.size; {
			var buf []byte
			select {
			case buf = <-p.free:
			default:
				buf = make([]byte, sectionBuf)
			}
			n := min(int64(sectionBuf), s.size-pos)
			k, err := s.r.ReadAt(buf[:n], s.off+pos)
			if int64(k) == n {
				err = nil
			} else if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			select {
			case p.ch <- chunk{pos, buf[:k], err}:
			case <-p.stop:
				return
			}
			if err != nil {
				return
			}
			pos += int64(k)
		}
	}()
}

func (s *sectionReader) stopPrefetch() {
	if s.pf != nil {
		close(s.pf.stop)
		<-s.pf.done
		s.pf = nil
	}
}

// recycle hands the current buffer back to the prefetcher.
func (s *sectionReader) recycle() {
	if s.pf != nil && cap(s.cur) == sectionBuf {
		select {
		case s.pf.free <- s.cur[:cap(s.cur)]:
		default:
		}
	}
	s.cur = nil
}

// fill makes cur hold the chunk at pos.
func (s *sectionReader) fill() error {
	if s.pf != nil {
		c, ok := <-s.pf.ch
		if ok && c.pos == s.pos {
			s.recycle()
			s.cur, s.curPos = c.b, c.pos
			return c.err
		}
		s.stopPrefetch()
	}
	buf := s.cur[:cap(s.cur)]
	if cap(buf) < sectionBuf {
		buf = make([]byte, sectionBuf)
	}
	// Start on a quad of the piece, so this chunk and the next ones unpad
	// without a copy.
	start := s.pos - (s.off+s.pos)%127
	if start < 0 {
		start = s.pos
	}
	n := min(int64(sectionBuf), s.size-start)
	k, err := s.r.ReadAt(buf[:n], s.off+start)
	s.cur, s.curPos = buf[:k], start
	if int64(k) == n {
		err = nil
	} else if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if s.pos >= start+int64(k) {
		s.cur = s.cur[:0]
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if err == nil {
		if s.seq++; s.seq >= 2 && start+n < s.size {
			s.startPrefetch(start + n)
		}
	}
	return err
}

func (s *sectionReader) Read(p []byte) (int, error) {
	if s.pos >= s.size {
		return 0, io.EOF
	}
	if s.pos < s.curPos || s.pos >= s.curPos+int64(len(s.cur)) {
		if err := s.fill(); err != nil && len(s.cur) == 0 {
			return 0, err
		}
	}
	n := copy(p, s.cur[s.pos-s.curPos:])
	s.pos += int64(n)
	return n, nil
}

func (s *sectionReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += s.pos
	case io.SeekEnd:
		offset += s.size
	default:
		return 0, errors.New("seek: invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	if offset != s.pos {
		s.seq = 0
		s.stopPrefetch()
	}
	s.pos = offset
	return offset, nil
}

// Close stops the read-ahead goroutine, if any.
func (s *sectionReader) Close() error {
	s.stopPrefetch()
	return nil
}

// chunkWriter lets http.ServeContent hand the section to the connection a
// whole chunk per Write instead of through a 32 KiB copy buffer.
type chunkWriter struct {
	http.ResponseWriter
	s *sectionReader
}

// ReadFrom writes src to the response. When src is (a limit on) the
// section reader, chunks go out as they are, without a copy.
func (w chunkWriter) ReadFrom(src io.Reader) (int64, error) {
	lr, ok := src.(*io.LimitedReader)
	if !ok || lr.R != io.Reader(w.s) {
		return io.Copy(writerOnly{w.ResponseWriter}, src)
	}
	var total int64
	for lr.N > 0 {
		b, err := w.s.next(lr.N)
		if len(b) > 0 {
			n, werr := w.ResponseWriter.Write(b)
			total += int64(n)
			lr.N -= int64(n)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

type writerOnly struct{ io.Writer }

// next returns up to max bytes at the current position, straight from the
// current chunk, and advances past them.
func (s *sectionReader) next(max int64) ([]byte, error) {
	if s.pos >= s.size {
		return nil, io.EOF
	}
	if s.pos < s.curPos || s.pos >= s.curPos+int64(len(s.cur)) {
		if err := s.fill(); err != nil && len(s.cur) == 0 {
			return nil, err
		}
	}
	b := s.cur[s.pos-s.curPos:]
	if int64(len(b)) > max {
		b = b[:max]
	}
	s.pos += int64(len(b))
	return b, nil
}
