// Package carroot tells whether a file is a CAR (v1 or v2) and returns its
// root CIDs, so that tools can report a payload's root next to its piece CID.
package carroot

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
)

// ErrNotCAR is returned when the data does not start with a CAR header.
var ErrNotCAR = errors.New("not a CAR file")

// maxHeader bounds the CAR v1 header read from untrusted data.
const maxHeader = 1 << 20

// Roots returns the root CIDs in the header of the CAR v1 or v2 held in r.
// It reads only the header(s). Data that is not a CAR gives an error wrapping
// ErrNotCAR.
func Roots(r io.ReaderAt) ([]cid.Cid, error) {
	cr, err := car.NewReader(r, car.MaxAllowedHeaderSize(maxHeader))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCAR, err)
	}
	roots, err := cr.Roots()
	if err != nil {
		return nil, fmt.Errorf("%w: reading roots: %v", ErrNotCAR, err)
	}
	if len(roots) == 0 {
		return nil, fmt.Errorf("%w: header lists no roots", ErrNotCAR)
	}
	return roots, nil
}

// FileRoots returns the root CIDs of the CAR file at path; see Roots.
func FileRoots(path string) ([]cid.Cid, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	return Roots(f)
}
