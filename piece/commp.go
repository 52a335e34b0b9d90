package piece

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"
	"github.com/prysmaticlabs/gohashtree"
)

// Commitment is a piece commitment (CommP) with the sizes it was computed for.
type Commitment struct {
	// Root is the 32-byte root of the piece's merkle tree.
	Root [32]byte
	// PayloadSize is the number of payload bytes the piece holds.
	PayloadSize uint64
	// Size is the padded piece size the root was computed for.
	Size abi.PaddedPieceSize
}

// CID returns the piece CID v1 (baga6ea4seaq…).
func (c Commitment) CID() cid.Cid { return CIDv1(c.Root) }

// CIDv2 returns the FRC-0069 piece CID v2, which also carries the sizes. It
// returns cid.Undef if the sizes are inconsistent (a Commitment from Calc never is).
func (c Commitment) CIDv2() cid.Cid {
	v2, err := CIDv2(c.Root, c.PayloadSize, c.Size)
	if err != nil {
		return cid.Undef
	}
	return v2
}

const (
	chunkLevel = 15                     // tree height of one worker job
	chunkP     = NodeSize << chunkLevel // padded bytes per job (1 MiB)
	chunkU     = chunkP / quadP * quadU // payload bytes per job
)

// ChunkSize is the size of the buffers a ChunkSink lends a Calc: the padded
// bytes of one hashing job.
const ChunkSize = chunkP

// ChunkSink takes a Calc's padded bytes without a copy: the Calc pads into
// buffers the sink lends it and hands each over as soon as it is padded, so
// the sink writes a chunk while the Calc hashes it. A sink that writes the
// bytes to disk can so own buffers aligned for direct I/O.
type ChunkSink interface {
	// Buffer returns a buffer of ChunkSize bytes for the Calc to pad into;
	// it may wait until one is free (Release). An error stops the Calc.
	Buffer() ([]byte, error)
	// WriteChunk hands over a buffer from Buffer holding the padded bytes
	// at offset off from the start of the piece: b[:len(b)] is padded data,
	// len(b) is ChunkSize except for the last chunk, and off is a multiple
	// of ChunkSize. It is called from the goroutine writing to the Calc,
	// in order of offset, and should not wait long. The Calc goes on
	// reading b until it releases it: the sink may read b (write it out)
	// but must not change it before Release. An error stops the Calc.
	WriteChunk(b []byte, off uint64) error
	// Release gives a buffer back for good: the Calc is done hashing a
	// chunk passed to WriteChunk, or drops a buffer unwritten (after an
	// error, or an empty last chunk). It is called from the hashing
	// goroutines, so several calls may run at once. Once Sum or SumAs
	// returns, every buffer the Calc got is released.
	Release(b []byte)
	// WriteZeros records that the n padded bytes at offset off are zeros:
	// the fill up to the piece size at Sum or SumAs. It is called after
	// every WriteChunk.
	WriteZeros(off, n uint64) error
}

// chunk is a padded buffer and the scratch space to hash it.
type chunk struct {
	data    []byte
	scratch [][32]byte
}

// Calc computes a piece commitment over what is written to it. It hashes
// full 1 MiB subtrees on up to GOMAXPROCS goroutines while the writer pads the
// next ones. A Calc is for one goroutine at a time; Written may be called
// from any goroutine. Call Sum or SumAs once all the payload is written; a Calc
// that is dropped without Sum leaves no goroutine behind once its in-flight
// subtrees are hashed.
type Calc struct {
	sink    io.Writer
	csink   ChunkSink
	padOnly bool // a Padder's: pads into csink, hashes nothing
	cur     *chunk
	fill    int // padded bytes in cur, always < chunkP between calls
	carry   [quadU]byte
	carryN  int
	written atomic.Uint64 // payload bytes; atomic so progress can be read from elsewhere
	err     error

	free     chan *chunk // hashed chunks ready for reuse
	nbuf     int         // chunks allocated so far
	maxBuf   int
	inFlight sync.WaitGroup
	next     uint64 // index of the next chunk to dispatch

	mu      sync.Mutex // guards the fields below, written by hashing goroutines
	pending map[uint64][32]byte
	merged  uint64 // chunks merged into stack, in order
	stack   [maxLevel + 1][32]byte
	present uint64 // bit l set: stack[l] holds a left subtree root of level l

	done    bool
	natural Commitment
	sunk    abi.PaddedPieceSize // padded bytes written to sink
}

// NewCalc returns a Calc ready for writing.
func NewCalc() *Calc { return NewCalcWithSink(nil) }

// NewCalcWithSink returns a Calc that also writes every fr32-padded byte, in
// order, to sink, including the zero fill up to the piece size at Sum or
// SumAs. The sink sees the padded bytes in 1 MiB batches; a sink error stops
// the Calc and is returned by Write and Sum.
func NewCalcWithSink(sink io.Writer) *Calc {
	n := runtime.GOMAXPROCS(0) + 1
	return &Calc{
		sink:    sink,
		maxBuf:  n,
		free:    make(chan *chunk, n),
		pending: make(map[uint64][32]byte),
	}
}

// NewCalcWithChunkSink returns a Calc that pads into buffers lent by sink
// and hands each to sink.WriteChunk as soon as it is full, hashing it
// meanwhile; the zero fill up to the piece size at Sum or SumAs goes to
// sink.WriteZeros. The padded bytes are never copied. A sink error stops the
// Calc and is returned by Write or Sum. Once Sum or SumAs returns, error or
// not, the Calc makes no more calls to sink.
func NewCalcWithChunkSink(sink ChunkSink) *Calc {
	n := runtime.GOMAXPROCS(0) + 1
	return &Calc{
		csink:   sink,
		maxBuf:  n,
		free:    make(chan *chunk, n),
		pending: make(map[uint64][32]byte),
	}
}

// Padder pads a payload into a ChunkSink's buffers as a Calc made by
// NewCalcWithChunkSink does, and computes no commitment: it is for bytes
// whose commitment was computed already and that are checked another way
// (sealing writes a piece the market checked as it arrived, checking a
// CRC of the bytes instead). Write pads; Close zero-fills the sink up to
// the piece size. Once Close returns, error or not, the Padder makes no
// more calls to the sink.
type Padder struct{ c *Calc }

// NewPadder returns a Padder ready for writing into sink.
func NewPadder(sink ChunkSink) *Padder {
	c := NewCalcWithChunkSink(sink)
	c.padOnly = true
	return &Padder{c: c}
}

// Write pads p into the sink's buffers, handing each to the sink once
// full. It fails once the payload exceeds MaxPayload, after Close, or
// after a sink error.
func (p *Padder) Write(b []byte) (int, error) { return p.c.Write(b) }

// Close hands the last padded bytes to the sink and zero-fills it to the
// padded piece size size; it fails if the payload does not fit in size.
func (p *Padder) Close(size abi.PaddedPieceSize) error {
	_, err := p.c.SumAs(size)
	return err
}

// Written returns the number of payload bytes written so far. It is safe to
// call from another goroutine, for example to show progress.
func (c *Calc) Written() uint64 { return c.written.Load() }

// scratchNodes is the scratch space to hash a chunk without writing to its
// data: the layers above the leaves take turns between two halves of it.
const scratchNodes = chunkP / NodeSize / 4 * 3

func newChunk(withData bool) *chunk {
	ch := &chunk{scratch: make([][32]byte, scratchNodes)}
	if withData {
		ch.data = make([]byte, chunkP)
	}
	return ch
}

// getChunk returns a free chunk, allocating up to maxBuf and waiting for a
// hashing goroutine to finish after that. With a chunk sink the chunk's
// data is a buffer from the sink.
func (c *Calc) getChunk() (*chunk, error) {
	var ch *chunk
	select {
	case ch = <-c.free:
	default:
		if c.nbuf < c.maxBuf {
			c.nbuf++
			ch = newChunk(c.csink == nil)
		} else {
			ch = <-c.free
		}
	}
	if c.csink != nil {
		b, err := c.csink.Buffer()
		if err == nil && len(b) != chunkP {
			err = fmt.Errorf("buffer of %d bytes, want %d", len(b), chunkP)
		}
		if err != nil {
			c.free <- ch
			c.err = fmt.Errorf("commp: getting a buffer from the sink: %w", err)
			return nil, c.err
		}
		ch.data = b
	}
	return ch, nil
}

// Write pads and hashes p. It fails once the payload exceeds MaxPayload, after
// Sum, or after a sink error.
func (c *Calc) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.done {
		return 0, errors.New("commp: write after Sum")
	}
	if uint64(len(p)) > MaxPayload-c.written.Load() {
		return 0, ErrPayloadTooLarge
	}
	if c.cur == nil {
		ch, err := c.getChunk()
		if err != nil {
			return 0, err
		}
		c.cur = ch
	}
	n := len(p)
	if c.carryN > 0 {
		k := copy(c.carry[c.carryN:], p)
		c.carryN += k
		p = p[k:]
		if c.carryN < quadU {
			c.written.Add(uint64(n))
			return n, nil
		}
		padQuad((*[quadP]byte)(c.cur.data[c.fill:]), &c.carry)
		c.carryN = 0
		c.fill += quadP
		if err := c.maybeDispatch(); err != nil {
			return n - len(p), err
		}
	}
	for len(p) >= quadU {
		q := min(len(p)/quadU, (chunkP-c.fill)/quadP)
		Pad(c.cur.data[c.fill:], p[:q*quadU])
		c.fill += q * quadP
		p = p[q*quadU:]
		if err := c.maybeDispatch(); err != nil {
			return n - len(p), err
		}
	}
	c.carryN = copy(c.carry[:], p)
	c.written.Add(uint64(n))
	return n, nil
}

// maybeDispatch hands a full chunk to a hashing goroutine.
func (c *Calc) maybeDispatch() error {
	if c.fill < chunkP {
		return nil
	}
	if c.sink != nil {
		if _, err := c.sink.Write(c.cur.data); err != nil {
			c.err = fmt.Errorf("commp: writing padded data to sink: %w", err)
			return c.err
		}
	}
	if c.sink != nil || c.csink != nil {
		c.sunk += chunkP
	}
	ch, idx := c.cur, c.next
	c.cur, c.fill = nil, 0
	if c.csink != nil {
		if err := c.csink.WriteChunk(ch.data, idx*chunkP); err != nil {
			c.drop(ch)
			c.err = fmt.Errorf("commp: writing padded data to sink: %w", err)
			return c.err
		}
	}
	c.next++
	if c.padOnly {
		c.drop(ch) // nothing to hash: the sink's write is its only use
	} else {
		c.inFlight.Add(1)
		go func() {
			defer c.inFlight.Done()
			root := hashFull(ch)
			c.drop(ch)
			c.merge(idx, root)
		}()
	}
	next, err := c.getChunk()
	if err != nil {
		return err
	}
	c.cur = next
	return nil
}

// drop releases a chunk's sink buffer, if it has one, and frees the chunk.
func (c *Calc) drop(ch *chunk) {
	if c.csink != nil && ch.data != nil {
		c.csink.Release(ch.data[:cap(ch.data)])
		ch.data = nil
	}
	c.free <- ch
}

// merge records the root of chunk idx and folds every chunk now in order
// into the stack.
func (c *Calc) merge(idx uint64, root [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending[idx] = root
	for {
		r, ok := c.pending[c.merged]
		if !ok {
			return
		}
		delete(c.pending, c.merged)
		c.merged++
		c.push(r, chunkLevel)
	}
}

// push adds the next subtree root of level l, combining equal levels.
func (c *Calc) push(r [32]byte, l int) {
	for c.present&(1<<l) != 0 {
		r = hashPair(&c.stack[l], &r)
		c.present &^= 1 << l
		l++
	}
	c.stack[l] = r
	c.present |= 1 << l
}

// asNodes views a byte slice of whole nodes as nodes.
func asNodes(b []byte) [][32]byte {
	return unsafe.Slice((*[32]byte)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/NodeSize)
}

// hashLayer hashes pairs of in into out and clears the top two bits of each.
func hashLayer(out, in [][32]byte) {
	gohashtree.HashChunks(out, in)
	for i := range out[:len(in)/2] {
		out[i][31] &= 0x3F
	}
}

// hashFull returns the root of a full chunk. It only reads the chunk's data,
// so a sink may write the data out while it is hashed.
func hashFull(ch *chunk) [32]byte {
	return hashPartial(ch, chunkP/NodeSize, chunkLevel)
}

// hashPartial returns the level-`top` root of the n nodes at the start of ch's
// data, zero-filled: an odd node is paired with the zero commitment of its
// level. It reads ch.data[:n*NodeSize] and writes only ch.scratch: the first
// layer above the leaves goes to the scratch's first two thirds, and from
// there the layers take turns between its last third and its first.
func hashPartial(ch *chunk, n, top int) [32]byte {
	leaves := chunkP / NodeSize
	lo, hi := ch.scratch[:leaves/2], ch.scratch[leaves/2:]
	a, b := asNodes(ch.data), lo
	for l := 0; l < top; l++ {
		if n%2 == 1 {
			// Never at the leaves: a chunk holds whole 4-node quads,
			// so a[n] is always in the scratch.
			a[n] = zeroComm[l]
			n++
		}
		hashLayer(b, a[:n])
		n /= 2
		if l == 0 {
			a, b = lo, hi
		} else {
			a, b = b, a
		}
	}
	return a[0]
}

// Sum returns the commitment of the payload written, in the smallest piece
// that holds it. It waits for the hashing goroutines. Further writes fail.
func (c *Calc) Sum() (Commitment, error) {
	return c.sum(0)
}

// SumAs returns the commitment of the payload written zero-filled to the padded
// piece size size. It fails if the payload does not fit or size is invalid.
// Sum and SumAs may be called again after the first call (the hashing is done
// once); with a sink, each call extends the sink's zero fill to its size and a
// size smaller than what the sink already holds is an error.
func (c *Calc) SumAs(size abi.PaddedPieceSize) (Commitment, error) {
	if err := ValidatePadded(size); err != nil {
		return Commitment{}, fmt.Errorf("commp: %w", err)
	}
	return c.sum(size)
}

func (c *Calc) sum(size abi.PaddedPieceSize) (Commitment, error) {
	if c.err != nil {
		if c.cur != nil {
			c.drop(c.cur)
			c.cur = nil
		}
		c.inFlight.Wait() // no sink calls after Sum returns
		return Commitment{}, c.err
	}
	if !c.done {
		if c.written.Load() == 0 {
			return Commitment{}, ErrEmptyPayload
		}
		if err := c.finish(); err != nil {
			return Commitment{}, err
		}
	}
	nat := c.natural
	if size == 0 {
		size = nat.Size
	}
	if size < nat.Size {
		return Commitment{}, fmt.Errorf("commp: payload of %d bytes needs a %d-byte piece, more than the declared %d", nat.PayloadSize, nat.Size, size)
	}
	if c.sink != nil || c.csink != nil {
		if c.sunk > size {
			return Commitment{}, fmt.Errorf("commp: sink already holds %d padded bytes, more than %d", c.sunk, size)
		}
		if err := c.fillSink(size); err != nil {
			return Commitment{}, err
		}
	}
	root, err := Raise(nat.Root, nat.Size, size)
	if err != nil {
		return Commitment{}, err
	}
	return Commitment{Root: root, PayloadSize: nat.PayloadSize, Size: size}, nil
}

// fillSink writes zeros to the sink up to size padded bytes.
func (c *Calc) fillSink(size abi.PaddedPieceSize) error {
	if c.sunk >= size {
		return nil
	}
	if c.csink != nil {
		if err := c.csink.WriteZeros(uint64(c.sunk), uint64(size-c.sunk)); err != nil {
			c.err = fmt.Errorf("commp: writing zero fill to sink: %w", err)
			return c.err
		}
		c.sunk = size
		return nil
	}
	zeros := make([]byte, min(uint64(size-c.sunk), chunkP))
	for c.sunk < size {
		n := min(uint64(size-c.sunk), uint64(len(zeros)))
		if _, err := c.sink.Write(zeros[:n]); err != nil {
			c.err = fmt.Errorf("commp: writing zero fill to sink: %w", err)
			return c.err
		}
		c.sunk += abi.PaddedPieceSize(n)
	}
	return nil
}

// finish hashes the last partial chunk, waits for the others and folds the
// stack into the natural-size root.
func (c *Calc) finish() error {
	c.done = true
	if c.carryN > 0 {
		clear(c.carry[c.carryN:])
		padQuad((*[quadP]byte)(c.cur.data[c.fill:]), &c.carry)
		c.carryN = 0
		c.fill += quadP
	}
	// fill < chunkP here: full chunks were dispatched as soon as they filled.
	if c.sink != nil && c.fill > 0 {
		if _, err := c.sink.Write(c.cur.data[:c.fill]); err != nil {
			c.err = fmt.Errorf("commp: writing padded data to sink: %w", err)
			c.inFlight.Wait()
			return c.err
		}
		c.sunk += abi.PaddedPieceSize(c.fill)
	}
	size := PaddedSizeFor(c.written.Load())
	top := level(size)
	var partial [32]byte
	if c.fill > 0 && !c.padOnly {
		partial = hashPartial(c.cur, c.fill/NodeSize, min(top, chunkLevel))
	}
	if c.csink != nil && c.cur != nil {
		var err error
		if c.fill > 0 {
			err = c.csink.WriteChunk(c.cur.data[:c.fill], c.next*chunkP)
			c.sunk += abi.PaddedPieceSize(c.fill)
		}
		c.drop(c.cur)
		c.cur = nil
		if err != nil {
			c.err = fmt.Errorf("commp: writing padded data to sink: %w", err)
			c.inFlight.Wait()
			return c.err
		}
	}
	c.inFlight.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	var root [32]byte // a Padder's stays zero
	switch {
	case c.padOnly:
	case top < chunkLevel:
		root = partial // no full chunk fits in a piece this small
	default:
		if c.fill > 0 {
			c.push(partial, chunkLevel)
		}
		root = c.fold(top)
	}
	c.natural = Commitment{Root: root, PayloadSize: c.written.Load(), Size: size}
	c.cur = nil
	return nil
}

// fold combines the stack into the root of a tree of height top, zero-filled.
func (c *Calc) fold(top int) [32]byte {
	if c.present&(1<<top) != 0 {
		return c.stack[top]
	}
	var cur [32]byte
	have := false
	for l := chunkLevel; l < top; l++ {
		switch {
		case c.present&(1<<l) != 0 && have:
			cur = hashPair(&c.stack[l], &cur)
		case c.present&(1<<l) != 0:
			cur = hashPair(&c.stack[l], &zeroComm[l])
			have = true
		case have:
			cur = hashPair(&cur, &zeroComm[l])
		}
	}
	return cur
}

// Raise returns the commitment of a piece of padded size from, with root c,
// zero-padded to the larger padded size to.
func Raise(c [32]byte, from, to abi.PaddedPieceSize) ([32]byte, error) {
	if err := ValidatePadded(from); err != nil {
		return c, fmt.Errorf("raising commitment: from: %w", err)
	}
	if err := ValidatePadded(to); err != nil {
		return c, fmt.Errorf("raising commitment: to: %w", err)
	}
	if to < from {
		return c, fmt.Errorf("raising commitment: target size %d smaller than piece size %d", to, from)
	}
	for l := level(from); l < level(to); l++ {
		c = hashPair(&c, &zeroComm[l])
	}
	return c, nil
}
