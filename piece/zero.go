package piece

import (
	"crypto/sha256"

	"github.com/filecoin-project/go-state-types/abi"
)

// zeroComm[L] is the root of an all-zero tree of height L (2^L leaves). It is
// filled once at start-up and only read afterwards.
var zeroComm = func() (z [maxLevel + 1][32]byte) {
	for l := 1; l <= maxLevel; l++ {
		z[l] = hashPair(&z[l-1], &z[l-1])
	}
	return z
}()

// hashPair returns the truncated SHA-256 of left‖right: the tree's node hash.
func hashPair(left, right *[32]byte) [32]byte {
	var buf [64]byte
	copy(buf[:32], left[:])
	copy(buf[32:], right[:])
	d := sha256.Sum256(buf[:])
	d[31] &= 0x3F
	return d
}

// ZeroCommitment returns the commitment of an all-zero piece of padded size
// size, which must be a power of two between 32 bytes (one node) and 64 GiB;
// other sizes return the all-zero node. ZeroCommitment(128) is also the
// commitment of any payload of zero bytes.
func ZeroCommitment(size abi.PaddedPieceSize) [32]byte {
	if size < NodeSize || size > MaxPieceSize || size&(size-1) != 0 {
		return [32]byte{}
	}
	return zeroComm[level(size)]
}
