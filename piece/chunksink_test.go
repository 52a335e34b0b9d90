package piece

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"
)

// memChunkSink lends a few buffers and keeps what it is handed in a byte
// slice. It checks that chunks come in order and are not changed between
// WriteChunk and Release, and scribbles over a released buffer before
// lending it again, so a Calc that read a buffer after releasing it would
// get a wrong root.
type memChunkSink struct {
	maxBufs int

	mu       sync.Mutex
	free     chan []byte
	lent     int
	out      []byte
	zeroFrom uint64 // WriteZeros: offset
	zeroN    uint64
	chunks   int
	failAt   int // WriteChunk number that fails; 0 never
	bufErr   error
	held     map[*byte][]byte // buffers handed over and not released: a copy of their bytes
	given    int              // Buffer calls that returned a buffer
	released int
	misuse   error // the first breach of the ChunkSink contract
}

var errChunkSink = errors.New("chunk sink broke")

func newMemChunkSink(maxBufs int) *memChunkSink {
	return &memChunkSink{maxBufs: maxBufs, free: make(chan []byte, maxBufs), held: make(map[*byte][]byte)}
}

func (s *memChunkSink) Buffer() ([]byte, error) {
	s.mu.Lock()
	if s.bufErr != nil {
		s.mu.Unlock()
		return nil, s.bufErr
	}
	s.given++
	if s.lent < s.maxBufs {
		s.lent++
		s.mu.Unlock()
		return bytes.Repeat([]byte{0x5a}, ChunkSize), nil
	}
	s.mu.Unlock()
	return <-s.free, nil
}

func (s *memChunkSink) fail(format string, args ...any) {
	if s.misuse == nil {
		s.misuse = fmt.Errorf(format, args...)
	}
}

func (s *memChunkSink) WriteChunk(b []byte, off uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chunks++
	if s.failAt != 0 && s.chunks >= s.failAt {
		return errChunkSink
	}
	if off%ChunkSize != 0 || len(b) > ChunkSize || len(b) == 0 {
		s.fail("bad chunk: %d bytes at %d", len(b), off)
		return fmt.Errorf("bad chunk: %d bytes at %d", len(b), off)
	}
	if off != uint64(len(s.out)) {
		s.fail("chunk at %d, data ends at %d: out of order", off, len(s.out))
	}
	s.out = append(s.out, b...)
	s.held[&b[:1][0]] = append([]byte(nil), b...)
	return nil
}

func (s *memChunkSink) Release(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.released++
	if len(b) != ChunkSize {
		s.fail("released a buffer of %d bytes", len(b))
	}
	if c, ok := s.held[&b[0]]; ok {
		if !bytes.Equal(b[:len(c)], c) {
			s.fail("a buffer changed between WriteChunk and Release")
		}
		delete(s.held, &b[0])
	}
	for i := range b {
		b[i] = 0xa5
	}
	s.free <- b
}

// check reports a breach of the contract, or a buffer not released.
func (s *memChunkSink) check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.misuse != nil {
		return s.misuse
	}
	if s.released != s.given {
		return fmt.Errorf("%d buffers lent, %d released", s.given, s.released)
	}
	return nil
}

func (s *memChunkSink) WriteZeros(off, n uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off != uint64(len(s.out)) && s.zeroN == 0 {
		return fmt.Errorf("zeros at %d, data ends at %d", off, len(s.out))
	}
	if s.zeroN != 0 && off != s.zeroFrom+s.zeroN {
		return fmt.Errorf("zeros at %d, the previous fill ends at %d", off, s.zeroFrom+s.zeroN)
	}
	if s.zeroN == 0 {
		s.zeroFrom = off
	}
	s.zeroN += n
	return nil
}

// padded returns what the sink holds, zero fill included.
func (s *memChunkSink) padded() []byte {
	return append(append([]byte{}, s.out...), make([]byte, s.zeroN)...)
}

// TestCalcChunkSink checks that a chunk sink receives exactly what an
// io.Writer sink does, and the same commitment, for payloads within one
// chunk, on chunk boundaries and across several.
func TestCalcChunkSink(t *testing.T) {
	for _, n := range []int{1, 127, 5000, chunkU - 127, chunkU, chunkU + 1, 3*chunkU + 1000, 4 * chunkU} {
		for _, bufs := range []int{1, 8} {
			p := randBytes(int64(n), n)
			var plain bytes.Buffer
			pc := NewCalcWithSink(&plain)
			pc.Write(p)
			want, err := pc.Sum()
			if err != nil {
				t.Fatal(err)
			}
			sink := newMemChunkSink(bufs)
			c := NewCalcWithChunkSink(sink)
			if _, err := io.CopyBuffer(c, bytes.NewReader(p), make([]byte, 300001)); err != nil {
				t.Fatal(err)
			}
			got, err := c.Sum()
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("%d bytes, %d buffers: commitment %+v, want %+v", n, bufs, got, want)
			}
			if err := sink.check(); err != nil {
				t.Fatalf("%d bytes, %d buffers: %v", n, bufs, err)
			}
			if !bytes.Equal(sink.padded(), plain.Bytes()) {
				t.Fatalf("%d bytes, %d buffers: chunk sink holds %d bytes unlike the writer sink's %d", n, bufs, len(sink.padded()), plain.Len())
			}
			// A larger piece extends the zero fill only.
			target := want.Size * 4
			got, err = c.SumAs(target)
			if err != nil {
				t.Fatal(err)
			}
			if w, _ := Raise(want.Root, want.Size, target); got.Root != w {
				t.Fatalf("%d bytes: SumAs root differs", n)
			}
			if len(sink.padded()) != int(target) || !bytes.Equal(sink.padded()[:plain.Len()], plain.Bytes()) {
				t.Fatalf("%d bytes: sink after SumAs(%d) holds %d bytes", n, target, len(sink.padded()))
			}
			if _, err := c.SumAs(want.Size); err == nil {
				t.Fatalf("SumAs below what the sink holds succeeded")
			}
		}
	}
}

func TestCalcChunkSinkErrors(t *testing.T) {
	// WriteChunk failing stops the Calc: Write or Sum reports it.
	sink := newMemChunkSink(4)
	sink.failAt = 2
	c := NewCalcWithChunkSink(sink)
	_, werr := c.Write(randBytes(1, 6*chunkU))
	_, serr := c.Sum()
	if !errors.Is(serr, errChunkSink) || (werr != nil && !errors.Is(werr, errChunkSink)) {
		t.Fatalf("Write: %v, Sum: %v", werr, serr)
	}
	if err := sink.check(); err != nil {
		t.Fatalf("after a failing WriteChunk: %v", err)
	}
	// The last partial chunk failing fails Sum.
	sink = newMemChunkSink(4)
	sink.failAt = 1
	c = NewCalcWithChunkSink(sink)
	c.Write([]byte("tiny"))
	if _, err := c.Sum(); !errors.Is(err, errChunkSink) {
		t.Fatalf("Sum with failing sink: %v", err)
	}
	if err := sink.check(); err != nil {
		t.Fatalf("after a failing last chunk: %v", err)
	}
	// Buffer failing stops the Calc at once.
	sink = newMemChunkSink(4)
	sink.bufErr = errChunkSink
	c = NewCalcWithChunkSink(sink)
	if _, err := c.Write([]byte("data")); !errors.Is(err, errChunkSink) {
		t.Fatalf("Write with no buffer: %v", err)
	}
	if _, err := c.Sum(); !errors.Is(err, errChunkSink) {
		t.Fatalf("Sum with no buffer: %v", err)
	}
	// A buffer of the wrong size is refused.
	c = NewCalcWithChunkSink(shortBufferSink{})
	if _, err := c.Write([]byte("data")); err == nil {
		t.Fatal("a short buffer was accepted")
	}
}

type shortBufferSink struct{}

func (shortBufferSink) Buffer() ([]byte, error)             { return make([]byte, 4096), nil }
func (shortBufferSink) WriteChunk(b []byte, _ uint64) error { return nil }
func (shortBufferSink) Release(b []byte)                    {}
func (shortBufferSink) WriteZeros(_, _ uint64) error        { return nil }

// TestHashLeavesData checks that hashing a chunk leaves its data as it was,
// which lets a chunk sink write it out.
func TestHashLeavesData(t *testing.T) {
	ch := newChunk(true)
	src := randBytes(5, chunkP)
	copy(ch.data, src)
	r1 := hashFull(ch)
	if !bytes.Equal(ch.data, src) {
		t.Fatal("hashFull wrote to the chunk's data")
	}
	if r2 := hashFull(ch); r1 != r2 {
		t.Fatal("hashing twice gave two roots")
	}
	hashPartial(ch, 1000, chunkLevel)
	if !bytes.Equal(ch.data, src) {
		t.Fatal("hashPartial wrote to the chunk's data")
	}
	_ = abi.PaddedPieceSize(0)
}

// TestPadder checks that a Padder hands its sink exactly the padded bytes a
// Calc does, zero fill included, releases every buffer, and fails as a Calc
// does.
func TestPadder(t *testing.T) {
	for _, n := range []int{1, 127, chunkU, chunkU + 1, 3*chunkU + 1000} {
		for _, bufs := range []int{1, 8} {
			p := randBytes(int64(n), n)
			var plain bytes.Buffer
			pc := NewCalcWithSink(&plain)
			pc.Write(p)
			want, err := pc.SumAs(PaddedSizeFor(uint64(n)) * 2)
			if err != nil {
				t.Fatal(err)
			}
			sink := newMemChunkSink(bufs)
			pd := NewPadder(sink)
			if _, err := io.CopyBuffer(pd, bytes.NewReader(p), make([]byte, 300001)); err != nil {
				t.Fatal(err)
			}
			if err := pd.Close(want.Size); err != nil {
				t.Fatal(err)
			}
			if err := sink.check(); err != nil {
				t.Fatalf("%d bytes, %d buffers: %v", n, bufs, err)
			}
			if !bytes.Equal(sink.padded(), plain.Bytes()) {
				t.Fatalf("%d bytes, %d buffers: padder's sink holds %d bytes unlike the calc's %d", n, bufs, len(sink.padded()), plain.Len())
			}
			if _, err := pd.Write([]byte{1}); err == nil {
				t.Fatal("a write after Close succeeded")
			}
		}
	}
	sink := newMemChunkSink(4)
	pd := NewPadder(sink)
	pd.Write(randBytes(2, 2*chunkU))
	if err := pd.Close(abi.PaddedPieceSize(ChunkSize)); err == nil {
		t.Fatal("a payload larger than the piece closed")
	}
	if err := sink.check(); err != nil {
		t.Fatal(err)
	}
	sink = newMemChunkSink(4)
	sink.failAt = 2
	pd = NewPadder(sink)
	_, werr := pd.Write(randBytes(3, 6*chunkU))
	if cerr := pd.Close(8 * ChunkSize); !errors.Is(cerr, errChunkSink) || (werr != nil && !errors.Is(werr, errChunkSink)) {
		t.Fatalf("Write: %v, Close: %v", werr, cerr)
	}
	if err := sink.check(); err != nil {
		t.Fatal(err)
	}
}
