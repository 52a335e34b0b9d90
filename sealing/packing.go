package sealing

import (
	"github.com/filecoin-project/go-state-types/abi"

	"github.com/ferry-fil/ferry/piece"
)

// openSector is what packing needs to know of a sector open for deals.
type openSector struct {
	Number abi.SectorNumber
	Used   abi.PaddedPieceSize // padded bytes taken by pieces, reservations and their fillers
	Deals  int                 // deal pieces written or reserved
	Bounds expiryBounds        // what its deals ask of its expiration
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

// layoutFrom lays out pieces of the given padded sizes one after the other
// from used, each at the next multiple of its size, which is where the chain
// puts them when it computes CommD from the deals alone. It returns each
// piece's offset and the zero fillers before it.
func layoutFrom(used abi.PaddedPieceSize, sizes []abi.PaddedPieceSize) ([]abi.PaddedPieceSize, [][]span) {
	offsets := make([]abi.PaddedPieceSize, len(sizes))
	fillers := make([][]span, len(sizes))
	for i, size := range sizes {
		fillers[i] = fillersBefore(used, size)
		offsets[i] = used + sumSpans(fillers[i])
		used = offsets[i] + size
	}
	return offsets, fillers
}

// fillersBefore returns the zero pieces that align a piece of padded size
// size placed after used bytes (piece.Fillers: Lotus' GetRequiredPadding),
// with their offsets.
func fillersBefore(used, size abi.PaddedPieceSize) []span {
	return spansFrom(used, piece.Fillers(used, size))
}

// tailFillers returns the zero pieces that fill a sector from used to its
// end, smallest first, with their offsets.
func tailFillers(used abi.PaddedPieceSize, ssize abi.SectorSize) []span {
	return spansFrom(used, piece.TailFillers(used, abi.PaddedPieceSize(ssize)))
}

// spansFrom lays sizes out one after the other from off.
func spansFrom(off abi.PaddedPieceSize, sizes []abi.PaddedPieceSize) []span {
	var out []span
	for _, sz := range sizes {
		out = append(out, span{Offset: off, Size: sz})
		off += sz
	}
	return out
}

func sumSpans(s []span) abi.PaddedPieceSize {
	var t abi.PaddedPieceSize
	for _, x := range s {
		t += x.Size
	}
	return t
}
