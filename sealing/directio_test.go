package sealing

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"

	"github.com/ferry-fil/ferry/piece"
)

func TestDirectWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sector")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(8 << 20); err != nil {
		t.Fatal(err)
	}
	const off, size = 1 << 20, 4 << 20
	w, err := newDirectWriter(new(bufferPool), path, off, size)
	if errors.Is(err, errDirectUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	// Random chunks, a chunk of zeros (skipped) and a last chunk that is
	// not a whole block, handed over out of order; the "hash" releases
	// each buffer after Close, so a buffer must wait for both.
	r := rand.New(rand.NewSource(1))
	want := make([]byte, size)
	var hashing [][]byte
	lens := []int{directBufSize, directBufSize, directBufSize, 12345}
	order := []int{2, 0, 3, 1}
	for _, i := range order {
		b, err := w.Buffer()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != directBufSize {
			t.Fatalf("buffer of %d bytes", len(b))
		}
		r.Read(b) // garbage past the chunk's length must not reach the file
		b = b[:lens[i]]
		if i == 1 {
			clear(b)
		}
		copy(want[i*directBufSize:], b)
		if err := w.WriteChunk(b, uint64(i*directBufSize)); err != nil {
			t.Fatal(err)
		}
		hashing = append(hashing, b)
	}
	if err := w.WriteZeros(3*directBufSize+12345, directBufSize-12345); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteZeros(3*directBufSize, 2*directBufSize); err == nil {
		t.Fatal("zero fill past the piece accepted")
	}
	b, _ := w.Buffer()
	if err := w.WriteChunk(b, size); err == nil {
		t.Fatal("chunk past the piece accepted")
	}
	w.Release(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(w.pool.free); n != 1 {
		t.Fatalf("%d buffers back in the pool before their hashes ended, want the 1 dropped", n)
	}
	for _, b := range hashing {
		w.Release(b)
	}
	if len(w.pool.free) != w.lent || len(w.refs) != 0 {
		t.Fatalf("%d of %d buffers back in the pool, %d still counted", len(w.pool.free), w.lent, len(w.refs))
	}
	got := make([]byte, 8<<20)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[off:off+size], want) {
		t.Fatal("bytes read back differ from those written")
	}
	if !bytes.Equal(got[:off], make([]byte, off)) || !bytes.Equal(got[off+size:], make([]byte, len(got)-off-size)) {
		t.Fatal("bytes outside the piece were written")
	}
	if err := w.WriteChunk(bytes.Repeat([]byte{1}, directAlign), 0); err == nil {
		t.Fatal("write after Close accepted")
	}
}

func TestDirectWriterRefusesUnaligned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sector")
	os.WriteFile(path, nil, 0o644)
	if _, err := newDirectWriter(new(bufferPool), path, 100, 1<<20); err == nil {
		t.Fatal("unaligned offset accepted")
	}
	if _, err := newDirectWriter(new(bufferPool), path, 0, 2048); err == nil {
		t.Fatal("unaligned size accepted")
	}
}

// A failing write (a full disk) stops the Calc feeding the writer: the
// error reaches Write or Sum and Close, and nothing waits forever.
func TestDirectWriterFullDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sector")
	const size = 32 << 20
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := newDirectWriter(new(bufferPool), path, 0, size)
	if errors.Is(err, errDirectUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int32
	w.writev = func(f *os.File, bufs [][]byte, off int64) error {
		if writes.Add(1) > 2 {
			return &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
		}
		return writevAt(f, bufs, off)
	}
	c := piece.NewCalcWithChunkSink(w)
	data := make([]byte, abi.PaddedPieceSize(size).Unpadded())
	rand.New(rand.NewSource(2)).Read(data)
	_, werr := io.Copy(c, bytes.NewReader(data))
	_, serr := c.SumAs(size)
	if !errors.Is(werr, syscall.ENOSPC) && !errors.Is(serr, syscall.ENOSPC) {
		t.Fatalf("Write: %v, Sum: %v; want ENOSPC", werr, serr)
	}
	if err := w.Close(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Close: %v, want ENOSPC", err)
	}
}

// A PieceWriter's later pieces are written with the first one's buffers:
// after each piece every buffer is back in the pool, and the pool never
// holds more than one writer may lend (fresh buffers for every piece would
// pass that by the fourth).
func TestPieceWriterReusesBuffers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sector")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const size = 16 << 20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if _, err := openDirect(path); errors.Is(err, errDirectUnsupported) {
		t.Skip(err)
	}
	var pw PieceWriter
	data := make([]byte, abi.PaddedPieceSize(size).Unpadded())
	rand.New(rand.NewSource(3)).Read(data)
	pooled := func() map[*byte]bool {
		m := make(map[*byte]bool)
		for _, b := range pw.bufs.free {
			m[&b[0]] = true
		}
		return m
	}
	var first map[*byte]bool
	for i := range 4 {
		if _, err := pw.WritePadded(context.Background(), f, 0, size, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		got := pooled()
		if len(got) == 0 || len(got) > directBuffers {
			t.Fatalf("piece %d: %d buffers in the pool, want 1 to %d", i, len(got), directBuffers)
		}
		if i == 0 {
			first = got
			continue
		}
		for b := range first {
			if !got[b] {
				t.Fatalf("piece %d: a buffer of the first piece is not back in the pool", i)
			}
		}
	}
}

// The buffer freed last is lent first (it is the one still in the caches).
func TestDirectWriterLendsLastFreed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sector")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := newDirectWriter(new(bufferPool), path, 0, 4<<20)
	if errors.Is(err, errDirectUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	a, _ := w.Buffer()
	b, _ := w.Buffer()
	w.Release(a)
	w.Release(b)
	if got, _ := w.Buffer(); &got[0] != &b[0] {
		t.Fatal("the buffer freed first was lent again before the one freed last")
	}
}
