package piece

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// readInSteps reads r to the end in reads of step bytes.
func readInSteps(r io.Reader, step int) ([]byte, error) {
	var out []byte
	buf := make([]byte, step)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// TestUnpadReadSizes covers both paths of the unpad reader: reads of whole
// quads go straight into the caller's buffer, smaller ones through a copy.
func TestUnpadReadSizes(t *testing.T) {
	payload := randBytes(11, 127*300)
	padded := make([]byte, 128*300)
	Pad(padded, payload)
	for _, step := range []int{1, 100, 126, 127, 128, 254, 1000, 127 * 300, 1 << 20} {
		got, err := readInSteps(NewUnpadReader(bytes.NewReader(padded)), step)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("NewUnpadReader, reads of %d: %v", step, err)
		}
		for _, rg := range [][2]uint64{{0, 127 * 300}, {5, 1000}, {127, 127 * 10}, {3000, 7777}} {
			got, err := readInSteps(UnpadRange(bytes.NewReader(padded), 0, rg[0], rg[1]), step)
			if err != nil || !bytes.Equal(got, payload[rg[0]:rg[0]+rg[1]]) {
				t.Fatalf("UnpadRange %v, reads of %d: %v", rg, step, err)
			}
		}
		_, err = readInSteps(NewUnpadReader(bytes.NewReader(padded[:128*3+5])), step)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("partial quad, reads of %d: %v", step, err)
		}
	}
}
