package piece

import (
	"context"
	"fmt"
	"io"
	"os"
)

// readChunk is how much FromReader reads at a time.
const readChunk = 8 << 20

// Progress is called with the payload bytes hashed so far.
type Progress func(done uint64)

// FromReader computes the commitment of everything r yields, in the smallest
// piece that holds it. progress, if not nil, is called after every read.
// It stops with ctx's error when ctx is done.
func FromReader(ctx context.Context, r io.Reader, progress Progress) (Commitment, error) {
	c := NewCalc()
	buf := make([]byte, readChunk)
	for {
		if err := ctx.Err(); err != nil {
			return Commitment{}, err
		}
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return Commitment{}, werr
			}
			if progress != nil {
				progress(c.Written())
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return Commitment{}, fmt.Errorf("reading payload after %d bytes: %w", c.Written(), err)
		}
	}
	cm, err := c.Sum()
	if err != nil {
		return Commitment{}, err
	}
	return cm, nil
}

// FromFile computes the commitment of the file at path. progress, if not nil,
// gets the bytes done and the file size.
func FromFile(ctx context.Context, path string, progress func(done, total uint64)) (Commitment, error) {
	f, err := os.Open(path)
	if err != nil {
		return Commitment{}, fmt.Errorf("opening payload: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Commitment{}, fmt.Errorf("opening payload: %w", err)
	}
	if st.IsDir() {
		return Commitment{}, fmt.Errorf("payload %s is a directory", path)
	}
	total := uint64(st.Size())
	var p Progress
	if progress != nil {
		p = func(done uint64) { progress(done, total) }
	}
	cm, err := FromReader(ctx, f, p)
	if err != nil {
		return Commitment{}, fmt.Errorf("commp of %s: %w", path, err)
	}
	return cm, nil
}
