package sealing

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"github.com/ferry-fil/ferry/piece"
)

// Writing a piece through the page cache costs more CPU than hashing it on
// the machines we measured (1.6 CPU-s per GiB for buffered writes against
// 0.17 with O_DIRECT), and AddPiece shares its cores with the CommP
// workers. So the padded bytes go to the sector file with O_DIRECT from a
// goroutine of their own, overlapping the hashing; the buffered path stays
// for file systems without O_DIRECT and for pieces too small to align.

const (
	directAlign   = 4096            // offsets, lengths and buffers of O_DIRECT I/O
	directBufSize = piece.ChunkSize // one write
	directWriters = 1               // writing goroutines
	directBatch   = 8               // most chunks in one (vectored) write
	directBuffers = 32              // the calculator's chunks and those queued or being written
)

// DirectWriteMax is the most bytes one O_DIRECT write of a piece carries:
// runs of up to that many padded bytes go to the sector file in one
// vectored write of piece.ChunkSize buffers.
const DirectWriteMax = directBatch * directBufSize

// errDirectUnsupported: the file system or platform has no O_DIRECT.
var errDirectUnsupported = errors.New("O_DIRECT is not supported here")

// directWriter writes a piece's padded bytes with O_DIRECT, as the chunk
// sink of a piece.Calc: the calculator pads straight into the writer's
// aligned buffers, so the bytes are not copied on their way to the disk,
// and a chunk is written while it is hashed. A buffer is free again once
// both its write and its hash are done.
// The piece's range must read as zeros before (a hole): chunks of zeros and
// the zero fill are not written. Close waits for the writes and reports the
// first error.
type directWriter struct {
	f      *os.File
	writev func(f *os.File, bufs [][]byte, off int64) error // writevAt; tests inject failures
	base   int64                                            // file offset of the piece
	size   int64                                            // piece size
	free   chan []byte
	jobs   chan directJob
	done   chan struct{}
	zeros  []byte

	mu     sync.Mutex
	lent   int           // buffers allocated
	refs   map[*byte]int // lent buffers handed back: uses left (the write, the hash)
	err    error         // the first write error
	closed bool
}

type directJob struct {
	buf []byte
	off int64
}

// newDirectWriter opens path for direct writes of a piece of size bytes at
// offset off, both aligned.
func newDirectWriter(path string, off, size int64) (*directWriter, error) {
	if off%directAlign != 0 || size%directAlign != 0 {
		return nil, fmt.Errorf("piece of %d bytes at offset %d is not %d-aligned", size, off, directAlign)
	}
	f, err := openDirect(path)
	if err != nil {
		return nil, err
	}
	w := &directWriter{
		f:      f,
		writev: writevAt,
		base:   off,
		size:   size,
		free:   make(chan []byte, directBuffers),
		jobs:   make(chan directJob, directBuffers),
		done:   make(chan struct{}),
		zeros:  make([]byte, directBufSize),
		refs:   make(map[*byte]int),
	}
	var wg sync.WaitGroup
	for i := 0; i < directWriters; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop()
		}()
	}
	go func() {
		wg.Wait()
		close(w.done)
	}()
	return w, nil
}

// alignedBuffer returns n bytes starting at a directAlign boundary.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(&b[0])) % directAlign); r != 0 {
		skip = directAlign - r
	}
	return b[skip : skip+n : skip+n]
}

// loop writes the queued chunks. It takes every chunk waiting (up to
// directBatch, never waiting for more; they come in order of offset) and
// writes each run of adjacent ones with one vectored write: when the CPUs are busy hashing, fewer and larger
// writes keep the device fed (on our 2-core VM, beside two busy cores, 1 MiB
// writes ran at 785 MiB/s and 8 MiB ones at 1029 MiB/s). The batches grow by
// themselves when the device falls behind.
func (w *directWriter) loop() {
	batch := make([]directJob, 0, directBatch)
	bufs := make([][]byte, 0, directBatch)
	for j := range w.jobs {
		batch = append(batch[:0], j)
	more:
		for len(batch) < directBatch {
			select {
			case j, ok := <-w.jobs:
				if !ok {
					break more
				}
				batch = append(batch, j)
			default:
				break more
			}
		}
		for len(batch) > 0 {
			bufs = append(bufs[:0], batch[0].buf)
			end := batch[0].off + int64(len(batch[0].buf))
			k := 1
			for ; k < len(batch) && batch[k].off == end; k++ {
				bufs = append(bufs, batch[k].buf)
				end += int64(len(batch[k].buf))
			}
			if w.firstErr() == nil {
				if err := w.writev(w.f, bufs, batch[0].off); err != nil {
					w.setErr(err)
				}
			}
			for _, j := range batch[:k] {
				w.Release(j.buf)
			}
			batch = batch[k:]
		}
	}
}

func (w *directWriter) firstErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *directWriter) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// Buffer lends an aligned buffer of directBufSize bytes, waiting for a
// write to finish when all are lent.
func (w *directWriter) Buffer() ([]byte, error) {
	w.mu.Lock()
	err, alloc := w.err, w.lent < directBuffers
	if err == nil && alloc {
		w.lent++
	}
	w.mu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case b := <-w.free:
		return b, nil
	default:
	}
	if alloc {
		return alignedBuffer(directBufSize), nil
	}
	return <-w.free, nil
}

// WriteChunk queues b for writing at piece offset off, unless it is all
// zeros. A last chunk that is not a whole number of aligned blocks is
// written up to the next block boundary with zeros, which stays inside the
// (aligned) piece and its zero fill. It fails once a write has failed.
func (w *directWriter) WriteChunk(b []byte, off uint64) error {
	n := (len(b) + directAlign - 1) / directAlign * directAlign
	if off > uint64(w.size) || int64(off)+int64(n) > w.size || n > cap(b) {
		return fmt.Errorf("%d padded bytes at offset %d do not fit the %d-byte piece", len(b), off, w.size)
	}
	if bytes.Equal(b, w.zeros[:len(b)]) {
		return w.firstErr()
	}
	// The Calc reads only b[:len(b)]: the tail is the writer's.
	clear(b[len(b):n])
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("direct writer: write after Close")
	}
	if w.err != nil {
		return w.err
	}
	w.refs[&b[:1][0]]++ // the write's use, besides the hash's
	// Never waits: the channel holds every buffer there is.
	w.jobs <- directJob{buf: b[:n], off: w.base + int64(off)}
	return nil
}

// Release ends one use of a buffer: its hash or its write. The last one
// frees it.
func (w *directWriter) Release(b []byte) {
	b = b[:cap(b)]
	w.mu.Lock()
	k := &b[0]
	if w.refs[k] > 0 {
		w.refs[k]--
		w.mu.Unlock()
		return
	}
	delete(w.refs, k)
	w.mu.Unlock()
	w.free <- b
}

// WriteZeros checks that the zero fill is inside the piece; its range is
// a hole already.
func (w *directWriter) WriteZeros(off, n uint64) error {
	if off > uint64(w.size) || n > uint64(w.size)-off {
		return fmt.Errorf("%d bytes of zero fill at offset %d do not fit the %d-byte piece", n, off, w.size)
	}
	return nil
}

// Close waits for every write and closes the direct file descriptor.
func (w *directWriter) Close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.jobs)
	}
	w.mu.Unlock()
	<-w.done
	err := w.firstErr()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}
