package piece

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/filecoin-project/go-state-types/abi"
)

const (
	// MinPieceSize is the smallest valid padded piece size: one Fr32 quad.
	MinPieceSize = abi.PaddedPieceSize(128)
	// MaxPieceSize is the largest padded piece size the proofs support (64 GiB).
	MaxPieceSize = abi.PaddedPieceSize(64 << 30)
	// MaxPayload is the largest payload one piece can hold.
	MaxPayload = uint64(MaxPieceSize) / 128 * 127
	// NodeSize is the size of one merkle tree leaf or node.
	NodeSize = 32
	// maxLevel is the tree height of a MaxPieceSize piece (log2(64 GiB / 32)).
	maxLevel = 31
)

// ErrEmptyPayload is returned when a commitment is asked for zero payload bytes.
var ErrEmptyPayload = errors.New("empty payload: a piece needs at least one byte of data")

// ErrPayloadTooLarge is returned when a payload does not fit in the largest piece.
var ErrPayloadTooLarge = fmt.Errorf("payload larger than the %d-byte maximum of a 64 GiB piece", MaxPayload)

// ValidatePadded checks that p is a padded piece size the network accepts: a
// power of two between 128 bytes and 64 GiB.
func ValidatePadded(p abi.PaddedPieceSize) error {
	switch {
	case p < MinPieceSize:
		return fmt.Errorf("padded piece size %d is below the 128-byte minimum", p)
	case p&(p-1) != 0:
		return fmt.Errorf("padded piece size %d is not a power of two", p)
	case p > MaxPieceSize:
		return fmt.Errorf("padded piece size %d is above the 64 GiB maximum", p)
	}
	return nil
}

// ValidateUnpadded checks that u is the unpadded capacity of a valid padded
// piece (127·2^k bytes, from 127 bytes to the 64 GiB piece's capacity).
func ValidateUnpadded(u abi.UnpaddedPieceSize) error {
	if u%127 != 0 {
		return fmt.Errorf("unpadded piece size %d is not a multiple of 127", u)
	}
	if err := ValidatePadded(u.Padded()); err != nil {
		return fmt.Errorf("unpadded piece size %d: %w", u, err)
	}
	return nil
}

// PaddedSizeFor returns the smallest valid padded piece size whose unpadded
// capacity holds payload bytes; the minimum is 128. The result can exceed
// MaxPieceSize for a payload larger than MaxPayload; check with ValidatePadded.
func PaddedSizeFor(payload uint64) abi.PaddedPieceSize {
	quads := (payload + 126) / 127
	if quads <= 1 {
		return MinPieceSize
	}
	return abi.PaddedPieceSize(128) << (64 - bits.LeadingZeros64(quads-1))
}

// UnpaddedSizeFor returns the unpadded capacity of PaddedSizeFor(payload).
func UnpaddedSizeFor(payload uint64) abi.UnpaddedPieceSize {
	return PaddedSizeFor(payload).Unpadded()
}

// level returns log2(p/32), the height of the tree of a valid padded size.
func level(p abi.PaddedPieceSize) int {
	return bits.TrailingZeros64(uint64(p)) - 5
}
