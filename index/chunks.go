package index

import (
	"errors"
	"io"
)

// chunkSize is how much of a piece one ReadAt asks for: a whole number of
// 127-byte fr32 quads (~1 MiB), so that reads of an unsealed copy that
// start on a quad stay on quads and unpad without copies.
const chunkSize = 127 << 13

// chunkReader reads [off, off+size) of r sequentially in chunkSize reads,
// handing each chunk to tee (if set) as it arrives. Data ending before
// off+size reads as the end of the stream.
type chunkReader struct {
	r        io.ReaderAt
	pos, end int64
	buf, cur []byte
	tee      io.Writer
	err      error
}

func newChunkReader(r io.ReaderAt, off, size int64, tee io.Writer) *chunkReader {
	return &chunkReader{r: r, pos: off, end: off + max(size, 0), tee: tee}
}

func (c *chunkReader) fill() error {
	if c.err != nil {
		return c.err
	}
	if c.pos >= c.end {
		c.err = io.EOF
		return c.err
	}
	if c.buf == nil {
		c.buf = make([]byte, min(int64(chunkSize), c.end-c.pos))
	}
	n := min(int64(len(c.buf)), c.end-c.pos)
	k, err := c.r.ReadAt(c.buf[:n], c.pos)
	switch {
	case int64(k) == n:
	case err == nil || errors.Is(err, io.EOF):
		c.end = c.pos + int64(k) // the data stops here
	default:
		c.err = err
		return err
	}
	if k > 0 && c.tee != nil {
		if _, err := c.tee.Write(c.buf[:k]); err != nil {
			c.err = err
			return err
		}
	}
	c.pos += int64(k)
	c.cur = c.buf[:k]
	if k == 0 {
		c.err = io.EOF
		return c.err
	}
	return nil
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.cur) == 0 {
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.cur)
	c.cur = c.cur[n:]
	return n, nil
}

func (c *chunkReader) ReadByte() (byte, error) {
	if len(c.cur) == 0 {
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	b := c.cur[0]
	c.cur = c.cur[1:]
	return b, nil
}

// drain reads the rest of the section, so that tee sees all of it.
func (c *chunkReader) drain() error {
	c.cur = nil
	for {
		if err := c.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		c.cur = nil
	}
}
