package piece

import (
	"fmt"
	"io"
	"math/bits"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"
)

// Fillers returns the zero pieces to place at padded offset offset so that a
// piece of padded size size that follows starts aligned to its size: one
// piece per set bit of (−offset) mod size, smallest first. size must be a
// power of two.
func Fillers(offset, size abi.PaddedPieceSize) []abi.PaddedPieceSize {
	toFill := uint64(-offset) & uint64(size-1)
	return splitBits(toFill)
}

// TailFillers returns the zero pieces that fill a sector of padded size
// sectorSize after used padded bytes, smallest first. It returns nil if used
// is not below sectorSize.
func TailFillers(used, sectorSize abi.PaddedPieceSize) []abi.PaddedPieceSize {
	if used >= sectorSize {
		return nil
	}
	return splitBits(uint64(sectorSize - used))
}

func splitBits(n uint64) []abi.PaddedPieceSize {
	out := make([]abi.PaddedPieceSize, 0, bits.OnesCount64(n))
	for n != 0 {
		low := n & -n
		out = append(out, abi.PaddedPieceSize(low))
		n &^= low
	}
	return out
}

// treeStack folds aligned subtree roots, given in order, into their parents.
type treeStack struct {
	roots  [][32]byte
	levels []int
}

func (s *treeStack) push(r [32]byte, l int) {
	for n := len(s.roots); n > 0 && s.levels[n-1] == l; n = len(s.roots) {
		r = hashPair(&s.roots[n-1], &r)
		s.roots, s.levels = s.roots[:n-1], s.levels[:n-1]
		l++
	}
	s.roots = append(s.roots, r)
	s.levels = append(s.levels, l)
}

// CommD returns the unsealed sector CID (CommD) of a sector of padded size
// sectorSize holding pieces in order, each placed at the next offset aligned
// to its size with zero filler pieces before it, and zero-filled to the
// sector size. Piece CIDs may be v1 or v2 (a v2 must agree with Size).
func CommD(sectorSize abi.PaddedPieceSize, pieces []abi.PieceInfo) (cid.Cid, error) {
	if err := ValidatePadded(sectorSize); err != nil {
		return cid.Undef, fmt.Errorf("commd: sector size: %w", err)
	}
	var st treeStack
	var offset abi.PaddedPieceSize
	place := func(root [32]byte, size abi.PaddedPieceSize) {
		st.push(root, level(size))
		offset += size
	}
	for i, p := range pieces {
		if err := ValidatePadded(p.Size); err != nil {
			return cid.Undef, fmt.Errorf("commd: piece %d: %w", i, err)
		}
		root, err := pieceRoot(p)
		if err != nil {
			return cid.Undef, fmt.Errorf("commd: piece %d: %w", i, err)
		}
		for _, f := range Fillers(offset, p.Size) {
			place(zeroComm[level(f)], f)
		}
		if p.Size > sectorSize || offset > sectorSize-p.Size {
			return cid.Undef, fmt.Errorf("commd: piece %d (%d bytes at offset %d) does not fit in a %d-byte sector", i, p.Size, offset, sectorSize)
		}
		place(root, p.Size)
	}
	for _, f := range TailFillers(offset, sectorSize) {
		place(zeroComm[level(f)], f)
	}
	if len(st.roots) != 1 || st.levels[0] != level(sectorSize) {
		return cid.Undef, fmt.Errorf("commd: internal error: %d roots left", len(st.roots))
	}
	return CIDv1(st.roots[0]), nil
}

// pieceRoot returns the commitment of a piece CID v1 or v2.
func pieceRoot(p abi.PieceInfo) ([32]byte, error) {
	if p.PieceCID.Defined() && p.PieceCID.Type() == cid.Raw {
		root, _, size, err := ParseCIDv2(p.PieceCID)
		if err != nil {
			return root, err
		}
		if size != p.Size {
			return root, fmt.Errorf("piece CID v2 %s is for %d bytes, piece info says %d", p.PieceCID, size, p.Size)
		}
		return root, nil
	}
	return ParseCID(p.PieceCID)
}

// Inflator yields a payload then zeros up to a fixed size. See NewInflator.
type inflator struct {
	r       io.Reader
	payload uint64
	size    uint64
	pos     uint64
	checked bool
}

// NewInflator returns a reader that yields exactly payload bytes from r, then
// zeros up to size bytes: the unpadded piece ready for fr32 padding. Reading
// fails with io.ErrUnexpectedEOF if r ends early and with an error if r has
// more than payload bytes.
func NewInflator(r io.Reader, payload uint64, size abi.UnpaddedPieceSize) (io.Reader, error) {
	if payload > uint64(size) {
		return nil, fmt.Errorf("inflator: payload %d bytes larger than the %d-byte piece", payload, size)
	}
	return &inflator{r: r, payload: payload, size: uint64(size)}, nil
}

func (f *inflator) Read(p []byte) (int, error) {
	if f.pos < f.payload {
		want := min(uint64(len(p)), f.payload-f.pos)
		n, err := f.r.Read(p[:want])
		f.pos += uint64(n)
		if err == io.EOF {
			if f.pos < f.payload {
				return n, fmt.Errorf("inflator: payload ended after %d of %d bytes: %w", f.pos, f.payload, io.ErrUnexpectedEOF)
			}
			err = nil
		}
		return n, err
	}
	if !f.checked {
		var one [1]byte
		for {
			n, err := f.r.Read(one[:])
			if n > 0 {
				return 0, fmt.Errorf("inflator: payload is longer than the declared %d bytes", f.payload)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return 0, fmt.Errorf("inflator: checking the payload's end: %w", err)
			}
		}
		f.checked = true
	}
	if f.pos >= f.size {
		return 0, io.EOF
	}
	n := min(uint64(len(p)), f.size-f.pos)
	clear(p[:n])
	f.pos += n
	return int(n), nil
}
