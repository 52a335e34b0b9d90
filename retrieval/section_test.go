package retrieval

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"testing"
)

// countingReaderAt counts ReadAt calls.
type countingReaderAt struct {
	r     *bytes.Reader
	calls int
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.calls++
	return c.r.ReadAt(p, off)
}

func TestSectionReader(t *testing.T) {
	data := make([]byte, 5<<20+333)
	rand.NewChaCha8([32]byte{3}).Read(data)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sec := range [][2]int64{{0, int64(len(data))}, {127 * 5, 3 << 20}, {1000, 4<<20 + 17}, {5, 100}} {
		off, size := sec[0], sec[1]
		want := data[off : off+size]
		cr := &countingReaderAt{r: bytes.NewReader(data)}
		s := newSectionReader(cr, off, size)
		// Sequential small reads engage the read-ahead.
		got, err := io.ReadAll(io.LimitReader(s, size))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("section %v: sequential read: %v", sec, err)
		}
		if size > 2*sectionBuf && cr.calls > int(size/sectionBuf)+3 {
			t.Fatalf("section %v: %d reads of the piece", sec, cr.calls)
		}
		// Random seeks and reads.
		for i := 0; i < 200; i++ {
			pos := rng.Int64N(size)
			n := rng.IntN(3 * sectionBuf)
			if _, err := s.Seek(pos, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, n)
			k, err := io.ReadFull(s, buf)
			end := min(pos+int64(n), size)
			if int64(k) != end-pos || !bytes.Equal(buf[:k], want[pos:end]) {
				t.Fatalf("section %v: read %d at %d: got %d bytes, %v", sec, n, pos, k, err)
			}
		}
		// The copy-free path of the response writer.
		if _, err := s.Seek(1, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		n, err := chunkWriter{rec, s}.ReadFrom(&io.LimitedReader{R: s, N: size - 2})
		if err != nil || n != size-2 || !bytes.Equal(rec.Body.Bytes(), want[1:size-1]) {
			t.Fatalf("section %v: ReadFrom %d %v", sec, n, err)
		}
		s.Close()
		if s.pf != nil {
			t.Fatal("read-ahead still running after Close")
		}
	}
	// Reading past the end of a short underlying reader is an error.
	s := newSectionReader(bytes.NewReader(data[:100]), 0, 200)
	if _, err := io.ReadAll(s); err == nil {
		t.Fatal("short piece read without error")
	}
	s.Close()
}
