package sealing

import (
	"math/bits"
	"sort"

	"github.com/filecoin-project/go-state-types/abi"
)

// openSector is what packing needs to know of a sector open for deals.
type openSector struct {
	Number abi.SectorNumber
	Used   abi.PaddedPieceSize // padded bytes taken by pieces and fillers
	Deals  int                 // deal pieces placed
}

// choosePlacement picks the open sector for a piece of padded size size by
// Lotus' rule (storage/pipeline input.go updateInput): among the sectors with
// room, the one needing the least filler padding, then the oldest (lowest
// number). It returns -1 when none has room.
func choosePlacement(open []openSector, ssize abi.SectorSize, size abi.PaddedPieceSize) int {
	best := -1
	var bestPad abi.PaddedPieceSize
	maxDeals := maxDealsPerSector(ssize)
	for i, s := range open {
		if s.Deals >= maxDeals || s.Used > abi.PaddedPieceSize(ssize) {
			continue
		}
		avail := abi.PaddedPieceSize(ssize) - s.Used
		if size > avail {
			continue
		}
		// Sector sizes are multiples of every piece size, so this is the
		// filler needed to align the piece: (-used) mod size.
		pad := avail % size
		if best < 0 || pad < bestPad || (pad == bestPad && s.Number < open[best].Number) {
			best, bestPad = i, pad
		}
	}
	return best
}

// fillersBefore returns the zero pieces that align a piece of padded size
// size placed after used bytes: one per set bit of (-used) mod size, lowest
// first, as Lotus' GetRequiredPadding does.
func fillersBefore(used, size abi.PaddedPieceSize) []span {
	toFill := uint64(-used) % uint64(size)
	return bitPieces(used, toFill)
}

// tailFillers returns the zero pieces that fill a sector from used to its
// end, smallest first.
func tailFillers(used abi.PaddedPieceSize, ssize abi.SectorSize) []span {
	return bitPieces(used, uint64(ssize)-uint64(used))
}

// bitPieces splits n bytes starting at off into power-of-two pieces, one per
// set bit of n, lowest bit first. Each piece lands aligned to its own size
// when off is aligned to n's lowest bit.
func bitPieces(off abi.PaddedPieceSize, n uint64) []span {
	var out []span
	for n != 0 {
		p := abi.PaddedPieceSize(1) << bits.TrailingZeros64(n)
		out = append(out, span{Offset: off, Size: p})
		off += p
		n &^= uint64(p)
	}
	return out
}

// sortSpans orders spans by offset.
func sortSpans(s []span) {
	sort.Slice(s, func(i, j int) bool { return s[i].Offset < s[j].Offset })
}
