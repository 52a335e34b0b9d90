package piece

import (
	"errors"
	"fmt"

	"github.com/filecoin-project/go-fil-commcid"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/multiformats/go-varint"
)

const (
	// MhV1 is the multihash code of piece CID v1: sha2-256-trunc254-padded.
	MhV1 = multihash.SHA2_256_TRUNC254_PADDED
	// MhV2 is the multihash code of piece CID v2 (FRC-0069):
	// fr32-sha256-trunc254-padbintree.
	MhV2 = 0x1011
)

// ErrNotPieceCID is wrapped by the parse errors for CIDs that are not piece CIDs.
var ErrNotPieceCID = errors.New("not a piece CID")

// CIDv1 returns the piece CID v1 of a commitment: codec
// fil-commitment-unsealed, multihash sha2-256-trunc254-padded.
func CIDv1(root [32]byte) cid.Cid {
	c, err := commcid.DataCommitmentV1ToCID(root[:])
	if err != nil {
		// Only a wrong length can fail, and root is always 32 bytes.
		panic(fmt.Sprintf("piece: building CID v1: %v", err))
	}
	return c
}

// ParseCID returns the commitment of a piece CID v1.
func ParseCID(c cid.Cid) (root [32]byte, err error) {
	if !c.Defined() {
		return root, fmt.Errorf("%w: undefined CID", ErrNotPieceCID)
	}
	if c.Prefix().Version != 1 {
		return root, fmt.Errorf("%w: %s is a CID v%d", ErrNotPieceCID, c, c.Prefix().Version)
	}
	if c.Type() != cid.FilCommitmentUnsealed {
		return root, fmt.Errorf("%w: %s has codec 0x%x, want fil-commitment-unsealed 0xf101", ErrNotPieceCID, c, c.Type())
	}
	dec, err := multihash.Decode(c.Hash())
	if err != nil {
		return root, fmt.Errorf("%w: %s: decoding multihash: %v", ErrNotPieceCID, c, err)
	}
	if dec.Code != MhV1 {
		return root, fmt.Errorf("%w: %s has multihash 0x%x, want sha2-256-trunc254-padded 0x1012", ErrNotPieceCID, c, dec.Code)
	}
	if len(dec.Digest) != 32 {
		return root, fmt.Errorf("%w: %s has a %d-byte digest, want 32", ErrNotPieceCID, c, len(dec.Digest))
	}
	copy(root[:], dec.Digest)
	return root, nil
}

// CIDv2 returns the FRC-0069 piece CID v2 of a commitment of a piece of padded
// size size holding payload bytes: codec raw, multihash
// fr32-sha256-trunc254-padbintree, digest uvarint(padding)‖height‖root.
func CIDv2(root [32]byte, payload uint64, size abi.PaddedPieceSize) (cid.Cid, error) {
	if err := ValidatePadded(size); err != nil {
		return cid.Undef, fmt.Errorf("piece CID v2: %w", err)
	}
	capacity := uint64(size.Unpadded())
	if payload > capacity {
		return cid.Undef, fmt.Errorf("piece CID v2: payload %d bytes exceeds the %d-byte capacity of a %d-byte piece", payload, capacity, size)
	}
	digest := make([]byte, 0, varint.MaxLenUvarint63+1+32)
	digest = append(digest, varint.ToUvarint(capacity-payload)...)
	digest = append(digest, byte(level(size)))
	digest = append(digest, root[:]...)
	mh, err := multihash.Encode(digest, MhV2)
	if err != nil {
		return cid.Undef, fmt.Errorf("piece CID v2: encoding multihash: %w", err)
	}
	return cid.NewCidV1(cid.Raw, mh), nil
}

// ParseCIDv2 returns the commitment, payload size and padded piece size of an
// FRC-0069 piece CID v2.
func ParseCIDv2(c cid.Cid) (root [32]byte, payload uint64, size abi.PaddedPieceSize, err error) {
	if !c.Defined() {
		return root, 0, 0, fmt.Errorf("%w: undefined CID", ErrNotPieceCID)
	}
	if c.Prefix().Version != 1 || c.Type() != cid.Raw {
		return root, 0, 0, fmt.Errorf("%w: %s is not a raw-codec CID v1 as piece CID v2 requires", ErrNotPieceCID, c)
	}
	dec, err := multihash.Decode(c.Hash())
	if err != nil {
		return root, 0, 0, fmt.Errorf("%w: %s: decoding multihash: %v", ErrNotPieceCID, c, err)
	}
	if dec.Code != MhV2 {
		return root, 0, 0, fmt.Errorf("%w: %s has multihash 0x%x, want fr32-sha256-trunc254-padbintree 0x1011", ErrNotPieceCID, c, dec.Code)
	}
	d := dec.Digest
	padding, n, err := varint.FromUvarint(d)
	if err != nil {
		return root, 0, 0, fmt.Errorf("%w: %s: reading padding: %v", ErrNotPieceCID, c, err)
	}
	d = d[n:]
	if len(d) != 33 {
		return root, 0, 0, fmt.Errorf("%w: %s: digest after the padding is %d bytes, want 33 (height and root)", ErrNotPieceCID, c, len(d))
	}
	height := int(d[0])
	if height < 2 || height > maxLevel {
		return root, 0, 0, fmt.Errorf("%w: %s: tree height %d outside 2..%d (128 B to 64 GiB)", ErrNotPieceCID, c, height, maxLevel)
	}
	size = abi.PaddedPieceSize(NodeSize) << height
	capacity := uint64(size.Unpadded())
	if padding > capacity {
		return root, 0, 0, fmt.Errorf("%w: %s: padding %d exceeds the %d-byte capacity of a %d-byte piece", ErrNotPieceCID, c, padding, capacity, size)
	}
	copy(root[:], d[1:])
	return root, capacity - padding, size, nil
}

// V1ToV2 converts a piece CID v1 to v2 given the payload and padded sizes.
func V1ToV2(c cid.Cid, payload uint64, size abi.PaddedPieceSize) (cid.Cid, error) {
	root, err := ParseCID(c)
	if err != nil {
		return cid.Undef, err
	}
	return CIDv2(root, payload, size)
}

// V2ToV1 converts a piece CID v2 to v1, returning the sizes it carried.
func V2ToV1(c cid.Cid) (v1 cid.Cid, payload uint64, size abi.PaddedPieceSize, err error) {
	root, payload, size, err := ParseCIDv2(c)
	if err != nil {
		return cid.Undef, 0, 0, err
	}
	return CIDv1(root), payload, size, nil
}

// ParseAnyCID reads a piece CID given in either version, as Ferry takes
// them wherever one comes in: it returns the v1 CID (what Ferry stores and
// indexes pieces by) and, for a v2 CID, the padded piece size and payload
// size it carries (size 0 for a v1 CID, which carries neither).
func ParseAnyCID(c cid.Cid) (v1 cid.Cid, size abi.PaddedPieceSize, payload uint64, err error) {
	if c.Defined() && c.Prefix().MhType == MhV2 {
		v1, payload, size, err := V2ToV1(c)
		return v1, size, payload, err
	}
	if _, err := ParseCID(c); err != nil {
		return cid.Undef, 0, 0, fmt.Errorf("%w (nor a piece CID v2)", err)
	}
	return c, 0, 0, nil
}

// ParseCIDString reads a piece CID v1 or v2 from text (a command-line
// argument, a URL path, a JSON field), as ParseAnyCID.
func ParseCIDString(s string) (v1 cid.Cid, size abi.PaddedPieceSize, payload uint64, err error) {
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, 0, 0, fmt.Errorf("%w: %q is not a CID: %v", ErrNotPieceCID, s, err)
	}
	return ParseAnyCID(c)
}

// ParseCIDv2Strict is ParseCIDv2 with the rule go-fil-commcid applies, and so
// Curio and Lotus: the padding is less than half the tree's payload capacity.
// The tree is then the smallest that holds the payload, and the payload is at
// least 65 bytes (as go-fil-commp-hashhash requires). A CID that ParseCIDv2
// reads but this refuses names the same commitment in a larger tree than
// its payload needs.
func ParseCIDv2Strict(c cid.Cid) (root [32]byte, payload uint64, size abi.PaddedPieceSize, err error) {
	root, payload, size, err = ParseCIDv2(c)
	if err != nil {
		return root, 0, 0, err
	}
	capacity := uint64(size.Unpadded())
	if padding := capacity - payload; padding >= capacity/2 {
		return root, 0, 0, fmt.Errorf("%w: %s: padding %d is not less than half the %d-byte capacity of its %d-byte tree (the payload of %d bytes belongs in a smaller tree, or is under 65 bytes)", ErrNotPieceCID, c, padding, capacity, size, payload)
	}
	return root, payload, size, nil
}
