package piece

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/filecoin-project/go-state-types/abi"
)

// Fr32 moves each 127 payload bytes (1016 bits, least significant bit first)
// into four 32-byte nodes of 254 bits each; the top two bits of every node are
// zero so that each node is a valid BLS12-381 field element.

const (
	quadU = 127 // payload bytes per quad
	quadP = 128 // padded bytes per quad
)

const topMask = uint64(0x3FFFFFFFFFFFFFFF) // clears bits 254 and 255 of a node

// Pad fr32-pads in into out. len(in) must be a multiple of 127 and len(out)
// at least len(in)/127*128; it panics otherwise.
func Pad(out, in []byte) {
	if len(in)%quadU != 0 || len(out) < len(in)/quadU*quadP {
		panic(fmt.Sprintf("piece.Pad: input %d bytes is not a multiple of 127 or output %d bytes too short", len(in), len(out)))
	}
	for len(in) >= quadU {
		padQuad((*[quadP]byte)(out), (*[quadU]byte)(in))
		in, out = in[quadU:], out[quadP:]
	}
}

// padQuad pads one quad. Node k starts at input bit 254·k: byte 0, 31, 63,
// 95 shifted right by 0, 6, 4, 2 bits; each output word takes its high bits
// from the next input word.
func padQuad(out *[quadP]byte, in *[quadU]byte) {
	le := binary.LittleEndian
	le.PutUint64(out[0:], le.Uint64(in[0:]))
	le.PutUint64(out[8:], le.Uint64(in[8:]))
	le.PutUint64(out[16:], le.Uint64(in[16:]))
	le.PutUint64(out[24:], le.Uint64(in[24:])&topMask)

	le.PutUint64(out[32:], le.Uint64(in[31:])>>6|le.Uint64(in[39:])<<58)
	le.PutUint64(out[40:], le.Uint64(in[39:])>>6|le.Uint64(in[47:])<<58)
	le.PutUint64(out[48:], le.Uint64(in[47:])>>6|le.Uint64(in[55:])<<58)
	le.PutUint64(out[56:], (le.Uint64(in[55:])>>6|le.Uint64(in[63:])<<58)&topMask)

	le.PutUint64(out[64:], le.Uint64(in[63:])>>4|le.Uint64(in[71:])<<60)
	le.PutUint64(out[72:], le.Uint64(in[71:])>>4|le.Uint64(in[79:])<<60)
	le.PutUint64(out[80:], le.Uint64(in[79:])>>4|le.Uint64(in[87:])<<60)
	le.PutUint64(out[88:], (le.Uint64(in[87:])>>4|le.Uint64(in[95:])<<60)&topMask)

	le.PutUint64(out[96:], le.Uint64(in[95:])>>2|le.Uint64(in[103:])<<62)
	le.PutUint64(out[104:], le.Uint64(in[103:])>>2|le.Uint64(in[111:])<<62)
	le.PutUint64(out[112:], le.Uint64(in[111:])>>2|le.Uint64(in[119:])<<62)
	le.PutUint64(out[120:], le.Uint64(in[119:])>>2&topMask)
}

// Unpad reverses Pad: len(in) must be a multiple of 128 and len(out) at least
// len(in)/128*127; it panics otherwise. The top two bits of every node are
// ignored.
func Unpad(out, in []byte) {
	if len(in)%quadP != 0 || len(out) < len(in)/quadP*quadU {
		panic(fmt.Sprintf("piece.Unpad: input %d bytes is not a multiple of 128 or output %d bytes too short", len(in), len(out)))
	}
	for len(in) >= quadP {
		unpadQuad((*[quadU]byte)(out), (*[quadP]byte)(in))
		in, out = in[quadP:], out[quadU:]
	}
}

// unpadQuad reverses padQuad: the 254-bit nodes are concatenated again.
func unpadQuad(out *[quadU]byte, in *[quadP]byte) {
	le := binary.LittleEndian
	a3 := le.Uint64(in[24:]) & topMask
	b0, b1, b2, b3 := le.Uint64(in[32:]), le.Uint64(in[40:]), le.Uint64(in[48:]), le.Uint64(in[56:])&topMask
	c0, c1, c2, c3 := le.Uint64(in[64:]), le.Uint64(in[72:]), le.Uint64(in[80:]), le.Uint64(in[88:])&topMask
	d0, d1, d2, d3 := le.Uint64(in[96:]), le.Uint64(in[104:]), le.Uint64(in[112:]), le.Uint64(in[120:])&topMask
	le.PutUint64(out[0:], le.Uint64(in[0:]))
	le.PutUint64(out[8:], le.Uint64(in[8:]))
	le.PutUint64(out[16:], le.Uint64(in[16:]))
	le.PutUint64(out[24:], a3|b0<<62)
	le.PutUint64(out[32:], b0>>2|b1<<62)
	le.PutUint64(out[40:], b1>>2|b2<<62)
	le.PutUint64(out[48:], b2>>2|b3<<62)
	le.PutUint64(out[56:], b3>>2|c0<<60)
	le.PutUint64(out[64:], c0>>4|c1<<60)
	le.PutUint64(out[72:], c1>>4|c2<<60)
	le.PutUint64(out[80:], c2>>4|c3<<60)
	le.PutUint64(out[88:], c3>>4|d0<<58)
	le.PutUint64(out[96:], d0>>6|d1<<58)
	le.PutUint64(out[104:], d1>>6|d2<<58)
	w14 := d2>>6 | d3<<58
	le.PutUint64(out[112:], w14)
	// The last 7 bytes: write the word ending at byte 126, overlapping byte 119.
	le.PutUint64(out[119:], w14>>56|(d3>>6)<<8)
}

// ErrNotQuadAligned is returned when a padded stream does not end on a
// 127-byte payload boundary.
var ErrNotQuadAligned = errors.New("fr32: payload length is not a multiple of 127 bytes")

const streamBuf = 127 * 8192 // ~1 MiB of payload per pad/unpad step

// PadWriter fr32-pads what is written to it and writes the padded bytes to
// the underlying writer. See NewPadWriter.
type PadWriter struct {
	w     io.Writer
	in    []byte // pending payload, less than one buffer
	out   []byte
	err   error
	total uint64
}

// NewPadWriter returns a writer that fr32-pads its input into w. Padded bytes
// are written in large batches as whole 127-byte quads arrive; Close writes
// what is pending and fails with ErrNotQuadAligned if the total written is not
// a multiple of 127 bytes (pad the payload with zeros first, see NewInflator).
// Close does not close w.
func NewPadWriter(w io.Writer) io.WriteCloser {
	return &PadWriter{w: w, in: make([]byte, 0, streamBuf), out: make([]byte, streamBuf/quadU*quadP)}
}

// Write implements io.Writer.
func (p *PadWriter) Write(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n := 0
	for len(b) > 0 {
		c := copy(p.in[len(p.in):cap(p.in)], b)
		p.in = p.in[:len(p.in)+c]
		b = b[c:]
		n += c
		if len(p.in) == cap(p.in) {
			if err := p.flush(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (p *PadWriter) flush() error {
	whole := len(p.in) / quadU * quadU
	if whole == 0 {
		return nil
	}
	Pad(p.out, p.in[:whole])
	if _, err := p.w.Write(p.out[:whole/quadU*quadP]); err != nil {
		p.err = fmt.Errorf("fr32: writing padded data: %w", err)
		return p.err
	}
	p.total += uint64(whole)
	rest := copy(p.in, p.in[whole:])
	p.in = p.in[:rest]
	return nil
}

// Close flushes the pending quads. It fails if the payload written does not
// end on a 127-byte boundary.
func (p *PadWriter) Close() error {
	if p.err != nil {
		return p.err
	}
	if err := p.flush(); err != nil {
		return err
	}
	if len(p.in) != 0 {
		p.err = fmt.Errorf("%w (%d bytes written)", ErrNotQuadAligned, p.total+uint64(len(p.in)))
		return p.err
	}
	p.err = errors.New("fr32: pad writer closed")
	return nil
}

// unpadReader reads padded bytes and yields the payload.
type unpadReader struct {
	r   io.Reader
	in  []byte
	out []byte // unread payload
	buf []byte
	err error
}

// NewUnpadReader returns a reader of the payload held in the fr32-padded
// stream r. The padded stream must be a whole number of 128-byte quads; a
// trailing partial quad is an error (io.ErrUnexpectedEOF).
func NewUnpadReader(r io.Reader) io.Reader {
	return newUnpadReader(r, streamBuf/quadU)
}

// newUnpadReader reads up to quads quads per read of r; the payload buffer
// is only allocated if a caller reads less than a quad's payload at a time.
func newUnpadReader(r io.Reader, quads int) *unpadReader {
	return &unpadReader{r: r, in: make([]byte, quads*quadP)}
}

// note records the outcome of filling in with n bytes.
func (u *unpadReader) note(n int, err error) {
	switch {
	case err == io.EOF:
		u.err = io.EOF
	case err == io.ErrUnexpectedEOF:
		if n%quadP != 0 {
			u.err = fmt.Errorf("fr32: padded stream ends %d bytes into a 128-byte quad: %w", n%quadP, io.ErrUnexpectedEOF)
		} else {
			u.err = io.EOF
		}
	case err != nil:
		u.err = fmt.Errorf("fr32: reading padded data: %w", err)
	}
}

func (u *unpadReader) Read(p []byte) (int, error) {
	if len(u.out) == 0 && u.err == nil && len(p) >= quadU {
		// Room for whole quads: unpad straight into p, no copy.
		k := min(len(p)/quadU, len(u.in)/quadP)
		n, err := io.ReadFull(u.r, u.in[:k*quadP])
		u.note(n, err)
		whole := n / quadP
		Unpad(p, u.in[:whole*quadP])
		if whole > 0 {
			return whole * quadU, nil
		}
		return 0, u.err
	}
	for len(u.out) == 0 {
		if u.err != nil {
			return 0, u.err
		}
		if u.buf == nil {
			u.buf = make([]byte, len(u.in)/quadP*quadU)
		}
		n, err := io.ReadFull(u.r, u.in)
		u.note(n, err)
		whole := n / quadP
		Unpad(u.buf, u.in[:whole*quadP])
		u.out = u.buf[:whole*quadU]
	}
	c := copy(p, u.out)
	u.out = u.out[c:]
	return c, nil
}

// UnpadRange returns a reader of payload bytes [unpaddedOffset,
// unpaddedOffset+length) of the piece stored fr32-padded in r at padded offset
// pieceOffset (for example inside an unsealed sector file). It reads only the
// quads it needs. Reading past the end of r yields io.ErrUnexpectedEOF.
func UnpadRange(r io.ReaderAt, pieceOffset abi.PaddedPieceSize, unpaddedOffset, length uint64) io.Reader {
	firstQuad := unpaddedOffset / quadU
	skip := unpaddedOffset % quadU
	quads := (skip + length + quadU - 1) / quadU
	start := int64(pieceOffset) + int64(firstQuad*quadP)
	if length == 0 {
		return eofReader{}
	}
	sr := io.NewSectionReader(r, start, int64(quads*quadP))
	var ur io.Reader = newUnpadReader(sr, int(min(quads, streamBuf/quadU)))
	if skip > 0 {
		ur = &skipReader{r: ur, skip: int64(skip)}
	}
	return io.LimitReader(&strictReader{r: ur, want: int64(skip + length), skip: int64(skip)}, int64(length))
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// skipReader discards the first skip bytes of r.
type skipReader struct {
	r    io.Reader
	skip int64
}

func (s *skipReader) Read(p []byte) (int, error) {
	if s.skip > 0 {
		if _, err := io.CopyN(io.Discard, s.r, s.skip); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		s.skip = 0
	}
	return s.r.Read(p)
}

// strictReader turns an early EOF into io.ErrUnexpectedEOF.
type strictReader struct {
	r          io.Reader
	want, skip int64
	got        int64
}

func (s *strictReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.got += int64(n)
	if err == io.EOF && s.got+s.skip < s.want {
		err = fmt.Errorf("fr32: padded data ends %d payload bytes early: %w", s.want-s.got-s.skip, io.ErrUnexpectedEOF)
	}
	return n, err
}
