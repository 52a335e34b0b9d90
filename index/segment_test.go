package index

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"

	"github.com/ferry-fil/ferry/piece"
)

func TestSegmentIndexGeometry(t *testing.T) {
	for _, c := range []struct {
		size    abi.PaddedPieceSize
		entries uint64
	}{
		{2048, 4}, {1 << 20, 8}, {1 << 21, 16}, {32 << 30, 256 << 10}, {64 << 30, 512 << 10}, {(32 << 30) + 1, 256 << 10},
	} {
		if got := SegmentIndexEntries(c.size); got != c.entries {
			t.Errorf("SegmentIndexEntries(%d) = %d, want %d", c.size, got, c.entries)
		}
	}
	// 32 GiB: a 16 MiB index at the end.
	p, u, ok := SegmentIndexOffset(32 << 30)
	if !ok || p != 32<<30-16<<20 || u != p-p/128 {
		t.Fatalf("SegmentIndexOffset(32GiB) = %d %d %v", p, u, ok)
	}
	if _, _, ok := SegmentIndexOffset(256); ok {
		t.Fatal("a 256-byte piece cannot hold a 256-byte index and data")
	}
}

func TestSegmentEntry(t *testing.T) {
	var comm [32]byte
	for i := range comm {
		comm[i] = byte(i * 7)
	}
	comm[31] &= 0x3f
	s := Segment{CommDs: comm, Offset: 4096, Size: 2048}
	e := s.MarshalEntry()
	if e[63]&0xc0 != 0 {
		t.Fatal("checksum top bits not cleared")
	}
	// Both nodes must be valid fr32 nodes: the entry survives unpad/pad.
	var un [127]byte
	var two [128]byte
	copy(two[:], e[:])
	copy(two[64:], e[:])
	piece.Unpad(un[:], two[:])
	var back [128]byte
	piece.Pad(back[:], un[:])
	if back != two {
		t.Fatal("entry does not round-trip through fr32")
	}
	got, err := ParseSegmentEntry(e[:])
	if err != nil || got != s {
		t.Fatalf("ParseSegmentEntry = %+v %v", got, err)
	}
	if got.UnpaddedOffset() != 4064 || got.UnpaddedSize() != 2032 || got.PaddedPieceSize() != 2048 {
		t.Fatalf("unpadded geometry %d %d %d", got.UnpaddedOffset(), got.UnpaddedSize(), got.PaddedPieceSize())
	}
	for i := range e {
		bad := e
		bad[i] ^= 1
		if _, err := ParseSegmentEntry(bad[:]); !errors.Is(err, ErrBadSegment) {
			t.Fatalf("flipping byte %d: %v", i, err)
		}
	}
	var zero [64]byte
	if _, err := ParseSegmentEntry(zero[:]); err == nil {
		t.Fatal("all-zero entry accepted")
	}
	unaligned := Segment{CommDs: comm, Offset: 100, Size: 2048}.MarshalEntry()
	if _, err := ParseSegmentEntry(unaligned[:]); err == nil {
		t.Fatal("unaligned offset accepted")
	}
	segs, err := ParseSegmentIndex(append(e[:], make([]byte, 64)...), 4096+2048)
	if err != nil || len(segs) != 1 {
		t.Fatalf("ParseSegmentIndex = %v %v", segs, err)
	}
	if segs, _ := ParseSegmentIndex(e[:], 4096+1024); len(segs) != 0 {
		t.Fatal("segment past the index start accepted")
	}
	if _, err := ParseSegmentIndex(e[:63], 1<<20); err == nil {
		t.Fatal("partial entry accepted")
	}
}

// aggregate builds an FRC-0058 aggregate of padded size size holding the
// given sub-piece payloads, each at the next offset aligned to its size,
// and returns the aggregate's unpadded payload and the segments.
func aggregate(t *testing.T, size abi.PaddedPieceSize, subs ...[]byte) ([]byte, []Segment) {
	t.Helper()
	out := make([]byte, size.Unpadded())
	var segs []Segment
	var off uint64
	for _, sub := range subs {
		pc, full := pieceOf(t, sub)
		root, _ := piece.ParseCID(pc)
		ps := uint64(len(full)) / 127 * 128
		off = (off + ps - 1) / ps * ps
		copy(out[off-off/128:], full)
		segs = append(segs, Segment{CommDs: root, Offset: off, Size: ps})
		off += ps
	}
	start, ustart, ok := SegmentIndexOffset(size)
	if !ok || off > start {
		t.Fatalf("aggregate of %d bytes does not fit", size)
	}
	idx := make([]byte, SegmentIndexEntries(size)*SegmentEntrySize)
	for i, s := range segs {
		e := s.MarshalEntry()
		copy(idx[i*SegmentEntrySize:], e[:])
	}
	piece.Unpad(out[ustart:], idx)
	return out, segs
}

func TestIndexAggregate(t *testing.T) {
	ctx := context.Background()
	s := New(openDB(t), nil, WithBatchSize(7))
	carA, blocksA := makeCAR(t, 10, 10)
	carB, blocksB := makeCAR(t, 12, 11)
	payload, segs := aggregate(t, 1<<16, carA, carB)
	pc, _ := pieceOf(t, payload)

	found, err := ReadSegmentIndex(bytes.NewReader(payload), int64(len(payload)))
	if err != nil || len(found) != 2 || found[0] != segs[0] || found[1] != segs[1] {
		t.Fatalf("ReadSegmentIndex = %+v %v, want %+v", found, err, segs)
	}

	res, err := s.IndexPiece(ctx, pc, bytes.NewReader(payload), int64(len(payload)))
	if err != nil {
		t.Fatal(err)
	}
	if res.Blocks != 22 || len(res.Segments) != 2 || len(res.Roots) != 2 {
		t.Fatalf("result %+v", res)
	}
	for _, sg := range res.Segments {
		if sg.Error != "" {
			t.Fatalf("segment error: %s", sg.Error)
		}
	}
	checkBlocks(t, s, pc, payload, append(blocksA, blocksB...))
	info, _ := s.Piece(ctx, pc)
	if !info.Aggregate {
		t.Fatal("piece not marked aggregate")
	}
	where, err := s.FindSegment(ctx, segs[1].PieceCID())
	if err != nil || len(where) != 1 || !where[0].PieceCID.Equals(pc) || where[0].Offset != segs[1].UnpaddedOffset() || where[0].Blocks != 12 {
		t.Fatalf("FindSegment = %+v %v", where, err)
	}
	roots, _ := s.PiecesWithRoot(ctx, blocksB[0].c)
	if len(roots) != 1 || !roots[0].Equals(pc) {
		t.Fatalf("root of sub-piece B: %v", roots)
	}

	// Corrupt sub-piece B's data: its commitment no longer matches, so its
	// blocks are dropped while A's stay.
	bad := append([]byte(nil), payload...)
	bad[segs[1].UnpaddedOffset()+uint64(len(carB))-1] ^= 0xff
	pcBad, _ := pieceOf(t, bad)
	res, err = s.IndexPiece(ctx, pcBad, bytes.NewReader(bad), int64(len(bad)))
	if err != nil {
		t.Fatal(err)
	}
	if res.Blocks != 10 || res.Segments[1].Error == "" || res.Segments[0].Error != "" {
		t.Fatalf("corrupt aggregate: %+v", res)
	}
	if l, _ := s.PiecesContaining(ctx, blocksB[0].c.Hash()); len(l) != 1 || !l[0].PieceCID.Equals(pc) {
		t.Fatalf("B's blocks from the corrupt aggregate kept: %v", l)
	}
	if l, _ := s.PiecesContaining(ctx, blocksA[0].c.Hash()); len(l) != 2 {
		t.Fatalf("A's blocks: %v", l)
	}
	if w, _ := s.FindSegment(ctx, segs[1].PieceCID()); len(w) != 1 {
		t.Fatalf("unverified segment offered: %v", w)
	}
}

func TestPlainPieceHasNoSegments(t *testing.T) {
	carBytes, _ := makeCAR(t, 200, 12)
	_, payload := pieceOf(t, carBytes)
	segs, err := ReadSegmentIndex(bytes.NewReader(payload), int64(len(payload)))
	if err != nil || len(segs) != 0 {
		t.Fatalf("segments in a plain piece: %v %v", segs, err)
	}
	// Only the CAR, no padding: the tail reads as zeros.
	segs, err = ReadSegmentIndex(bytes.NewReader(carBytes), int64(len(carBytes)))
	if err != nil || len(segs) != 0 {
		t.Fatalf("segments in a bare CAR: %v %v", segs, err)
	}
}
