package market

import (
	"fmt"
	"io"
	"os"
)

// stagedPiece reads a deal's data file as the unpadded piece it became:
// the file's bytes, then zeros up to the piece's unpadded size, as AddPiece
// wrote them to the sector.
type stagedPiece struct {
	f    *os.File
	n    int64 // the file's bytes
	size int64 // the unpadded piece size
}

var _ PieceData = (*stagedPiece)(nil)

// openStagedPiece opens the data file at path as a piece of size unpadded
// bytes. A file longer than the piece is an error: it is not the piece.
func openStagedPiece(path string, size int64) (*stagedPiece, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening staged data: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading the size of staged data: %w", err)
	}
	if st.Size() > size {
		f.Close()
		return nil, fmt.Errorf("staged data of %d bytes is longer than its piece's %d unpadded bytes", st.Size(), size)
	}
	return &stagedPiece{f: f, n: st.Size(), size: size}, nil
}

// Size is the unpadded piece size.
func (s *stagedPiece) Size() int64 { return s.size }

// Close closes the file.
func (s *stagedPiece) Close() error { return s.f.Close() }

// ReadAt reads the piece's bytes at off: the file's, then zeros.
func (s *stagedPiece) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("reading staged piece at negative offset %d", off)
	}
	if off >= s.size {
		return 0, io.EOF
	}
	want := len(p)
	p = p[:min(int64(want), s.size-off)]
	n := 0
	if off < s.n {
		k, err := s.f.ReadAt(p[:min(int64(len(p)), s.n-off)], off)
		n = k
		if err != nil && err != io.EOF {
			return n, fmt.Errorf("reading staged data: %w", err)
		}
		if off+int64(k) < min(s.n, off+int64(len(p))) {
			return n, fmt.Errorf("reading staged data: the file ended at %d bytes, not %d", off+int64(k), s.n)
		}
	}
	clear(p[n:])
	if len(p) < want {
		return len(p), io.EOF
	}
	return len(p), nil
}
