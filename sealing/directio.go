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
//
// What the fused pass still costs beyond a plain CommP pass, measured on a
// 2-core VM (ferry-bench addpiece, CPU profiles of both): about 0.2 CPU-s
// per GiB, nearly all of it fr32 padding into buffers the device has just
// read (their cache lines are cold; padding into a plain Calc's chunks,
// which only the CPU touches, costs less than half as much) and the write
// syscalls. Copying each chunk into the buffer instead costs the same.
// Buffers are reused, the last freed first, from a pool that outlives the
// piece (bufferPool), so a piece's writes fault in no fresh memory.

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
	pool   *bufferPool                                      // where buffers come from and go back to at Close
	freed  chan struct{}                                    // a buffer was freed (Buffer may be waiting)
	jobs   chan directJob
	done   chan struct{}
	zeros  []byte

	mu     sync.Mutex
	free   [][]byte      // buffers free, the last freed on top
	lent   int           // buffers taken from the pool, at most directBuffers
	refs   map[*byte]int // lent buffers handed back: uses left (the write, the hash)
	err    error         // the first write error
	closed bool
}

type directJob struct {
	buf []byte
	off int64
}

// newDirectWriter opens path for direct writes of a piece of size bytes at
// offset off, both aligned, with buffers from pool.
func newDirectWriter(pool *bufferPool, path string, off, size int64) (*directWriter, error) {
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
		pool:   pool,
		freed:  make(chan struct{}, 1),
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

// bufferPool keeps the aligned buffers of finished direct writes for the
// next ones: a piece's writes reuse memory that is mapped already instead
// of 32 fresh MiB per piece, which the Go heap would give back to the
// system between pieces and fault in again (a page fault costs several
// microseconds in a VM). It holds at most the buffers the writes running
// at once have needed. The zero value is ready.
type bufferPool struct {
	mu   sync.Mutex
	free [][]byte
}

// get returns a free buffer, or a new one.
func (p *bufferPool) get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b
	}
	return alignedBuffer(directBufSize)
}

// put takes buffers back.
func (p *bufferPool) put(bufs [][]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.free = append(p.free, bufs...)
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
// write to finish when all are lent. The buffer freed last goes out first:
// it is the one most likely still in the CPU's caches, and the buffers in
// use stay as few as the writes and hashes in flight need.
func (w *directWriter) Buffer() ([]byte, error) {
	for {
		w.mu.Lock()
		if w.err != nil {
			w.mu.Unlock()
			return nil, w.err
		}
		if n := len(w.free); n > 0 {
			b := w.free[n-1]
			w.free = w.free[:n-1]
			w.mu.Unlock()
			return b, nil
		}
		if w.lent < directBuffers {
			w.lent++
			w.mu.Unlock()
			return w.pool.get(), nil
		}
		w.mu.Unlock()
		<-w.freed
	}
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
// frees it (back to the pool once the writer is closed).
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
	if w.closed {
		w.mu.Unlock()
		w.pool.put([][]byte{b})
		return
	}
	w.free = append(w.free, b)
	w.mu.Unlock()
	select {
	case w.freed <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// WriteZeros checks that the zero fill is inside the piece; its range is
// a hole already.
func (w *directWriter) WriteZeros(off, n uint64) error {
	if off > uint64(w.size) || n > uint64(w.size)-off {
		return fmt.Errorf("%d bytes of zero fill at offset %d do not fit the %d-byte piece", n, off, w.size)
	}
	return nil
}

// Close waits for every write, gives the free buffers back to the pool
// (those still in use follow when released) and closes the direct file
// descriptor.
func (w *directWriter) Close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.jobs)
	}
	w.mu.Unlock()
	<-w.done
	w.mu.Lock()
	w.pool.put(w.free)
	w.free = nil
	w.mu.Unlock()
	err := w.firstErr()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}
