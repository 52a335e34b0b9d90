package retrieval

import (
	"errors"
	"io"
)

// sectionBuf is how much of the piece one read of the unsealed copy asks
// for: few large reads keep fr32 unpadding and system calls cheap.
const sectionBuf = 1 << 20

// sectionReader is an io.ReadSeeker over [off, off+size) of r that reads r
// in sectionBuf-sized calls, whatever size the caller reads in.
type sectionReader struct {
	r         io.ReaderAt
	off, size int64
	pos       int64
	buf       []byte
	bufPos    int64 // section offset of buf[0]
}

func newSectionReader(r io.ReaderAt, off, size int64) *sectionReader {
	return &sectionReader{r: r, off: off, size: size}
}

func (s *sectionReader) Read(p []byte) (int, error) {
	if s.pos >= s.size {
		return 0, io.EOF
	}
	if s.pos < s.bufPos || s.pos >= s.bufPos+int64(len(s.buf)) {
		if len(p) >= sectionBuf {
			// Large reads go straight through.
			want := min(int64(len(p)), s.size-s.pos)
			n, err := s.r.ReadAt(p[:want], s.off+s.pos)
			s.pos += int64(n)
			if n > 0 && errors.Is(err, io.EOF) {
				err = nil
			}
			return n, err
		}
		if cap(s.buf) == 0 {
			s.buf = make([]byte, sectionBuf)
		}
		want := min(int64(sectionBuf), s.size-s.pos)
		n, err := s.r.ReadAt(s.buf[:want], s.off+s.pos)
		s.buf, s.bufPos = s.buf[:n], s.pos
		if n == 0 {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
	n := copy(p, s.buf[s.pos-s.bufPos:])
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
	s.pos = offset
	return offset, nil
}
