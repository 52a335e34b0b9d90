package index

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/piece"
)

// FRC-0058 (verifiable data aggregation) puts a data segment index in the
// last part of an aggregate piece. Each entry is 64 bytes in fr32-padded form,
// two 32-byte nodes:
//
//	CommDs (32) | Offset (8, LE) | Size (8, LE) | Checksum (16)
//
// Offset and Size are padded bytes from the start of the piece. The checksum
// is the first 16 bytes of SHA-256 over the entry with the checksum zeroed,
// with the top two bits of its last byte cleared (126 bits), so that both
// nodes are valid field elements.

// SegmentEntrySize is the size in padded bytes of one data segment index entry.
const SegmentEntrySize = 64

// SegmentIndexEntries returns how many entries the data segment index of a
// piece of padded size size has room for: max(4, 2^floor(log2(size/2048/64))).
func SegmentIndexEntries(size abi.PaddedPieceSize) uint64 {
	n := uint64(size) / 2048 / SegmentEntrySize
	if n < 4 {
		return 4
	}
	return 1 << (bits.Len64(n) - 1)
}

// SegmentIndexOffset returns where the data segment index of a piece of
// padded size size starts, in padded and in unpadded bytes. ok is false when
// the piece is too small to hold an index (less than twice the index size).
func SegmentIndexOffset(size abi.PaddedPieceSize) (padded, unpadded uint64, ok bool) {
	idx := SegmentIndexEntries(size) * SegmentEntrySize
	if uint64(size) < 2*idx || piece.ValidatePadded(size) != nil {
		return 0, 0, false
	}
	padded = uint64(size) - idx
	// idx is a multiple of 256, so the unpadded length is exact.
	return padded, padded - padded/128, true
}

// Segment is a valid entry of an FRC-0058 data segment index.
type Segment struct {
	// CommDs is the piece commitment of the segment.
	CommDs [32]byte
	// Offset is the segment's start in padded bytes from the start of the piece.
	Offset uint64
	// Size is the segment's length in padded bytes.
	Size uint64
}

// PieceCID returns the segment's piece CID (v1).
func (s Segment) PieceCID() cid.Cid { return piece.CIDv1(s.CommDs) }

// UnpaddedOffset returns the segment's start in the piece payload.
func (s Segment) UnpaddedOffset() uint64 { return s.Offset - s.Offset/128 }

// UnpaddedSize returns the segment's length in payload bytes.
func (s Segment) UnpaddedSize() uint64 { return s.Size - s.Size/128 }

// PaddedPieceSize returns the power-of-two piece size the segment occupies.
func (s Segment) PaddedPieceSize() abi.PaddedPieceSize {
	if s.Size <= 128 {
		return 128
	}
	return abi.PaddedPieceSize(1) << bits.Len64(s.Size-1)
}

// MarshalEntry returns the 64-byte padded index entry of s, checksum included.
func (s Segment) MarshalEntry() [SegmentEntrySize]byte {
	var e [SegmentEntrySize]byte
	copy(e[:32], s.CommDs[:])
	binary.LittleEndian.PutUint64(e[32:], s.Offset)
	binary.LittleEndian.PutUint64(e[40:], s.Size)
	sum := segmentChecksum(&e)
	copy(e[48:], sum[:])
	return e
}

// segmentChecksum computes the checksum of entry e, ignoring e's own checksum
// bytes.
func segmentChecksum(e *[SegmentEntrySize]byte) [16]byte {
	var buf [SegmentEntrySize]byte
	copy(buf[:48], e[:48])
	d := sha256.Sum256(buf[:])
	var sum [16]byte
	copy(sum[:], d[:16])
	sum[15] &= 0x3F
	return sum
}

// ErrBadSegment is wrapped by the errors of ParseSegmentEntry for entries
// that are not valid.
var ErrBadSegment = errors.New("invalid data segment index entry")

// ParseSegmentEntry decodes one padded 64-byte index entry and checks its
// checksum and alignment. Unused (all-zero) entries give ErrBadSegment too.
func ParseSegmentEntry(e []byte) (Segment, error) {
	if len(e) != SegmentEntrySize {
		return Segment{}, fmt.Errorf("%w: %d bytes, want %d", ErrBadSegment, len(e), SegmentEntrySize)
	}
	var s Segment
	copy(s.CommDs[:], e[:32])
	s.Offset = binary.LittleEndian.Uint64(e[32:])
	s.Size = binary.LittleEndian.Uint64(e[40:])
	want := segmentChecksum((*[SegmentEntrySize]byte)(e))
	if !bytes.Equal(want[:], e[48:]) {
		return Segment{}, fmt.Errorf("%w: checksum mismatch", ErrBadSegment)
	}
	if s.Offset%128 != 0 || s.Size%128 != 0 || s.Size == 0 {
		return Segment{}, fmt.Errorf("%w: offset %d or size %d not a positive multiple of 128", ErrBadSegment, s.Offset, s.Size)
	}
	return s, nil
}

// ParseSegmentIndex decodes the padded bytes of a data segment index and
// returns its valid entries whose segment lies before indexStart (the padded
// offset of the index). Invalid and unused entries are skipped, as FRC-0058
// asks. padded must be a whole number of entries.
func ParseSegmentIndex(padded []byte, indexStart uint64) ([]Segment, error) {
	if len(padded)%SegmentEntrySize != 0 {
		return nil, fmt.Errorf("data segment index of %d bytes is not a whole number of %d-byte entries", len(padded), SegmentEntrySize)
	}
	var segs []Segment
	for off := 0; off < len(padded); off += SegmentEntrySize {
		s, err := ParseSegmentEntry(padded[off : off+SegmentEntrySize])
		if err != nil {
			continue
		}
		if s.Offset > indexStart || s.Size > indexStart-s.Offset {
			continue // points outside the data area
		}
		segs = append(segs, s)
	}
	return segs, nil
}

// segmentChunk is how many unpadded bytes of the index are read at a time:
// 1024 quads, which pad to 2048 entries.
const segmentChunk = 127 * 1024

// ReadSegmentIndex reads the data segment index of the piece whose payload r
// holds (payloadSize bytes; past that the payload is taken as zeros, as when
// r is a deal's CAR before zero padding) and returns its valid entries. A
// piece without an index gives no entries and no error. The padded size of
// the piece is the smallest one that holds payloadSize.
func ReadSegmentIndex(r io.ReaderAt, payloadSize int64) ([]Segment, error) {
	if payloadSize <= 0 {
		return nil, nil
	}
	size := piece.PaddedSizeFor(uint64(payloadSize))
	start, ustart, ok := SegmentIndexOffset(size)
	if !ok || int64(ustart) >= payloadSize {
		return nil, nil
	}
	end := uint64(size.Unpadded())
	ubuf := make([]byte, segmentChunk)
	pbuf := make([]byte, segmentChunk/127*128)
	var segs []Segment
	for off := ustart; off < end; off += segmentChunk {
		n := min(uint64(segmentChunk), end-off)
		chunk := ubuf[:n]
		clear(chunk)
		if int64(off) < payloadSize {
			avail := min(n, uint64(payloadSize)-off)
			if _, err := r.ReadAt(chunk[:avail], int64(off)); err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("reading data segment index at %d: %w", off, err)
			}
		}
		p := pbuf[:n/127*128]
		piece.Pad(p, chunk)
		s, err := ParseSegmentIndex(p, start)
		if err != nil {
			return nil, err
		}
		segs = append(segs, s...)
	}
	return segs, nil
}
