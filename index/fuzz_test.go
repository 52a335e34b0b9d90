package index

import (
	"bytes"
	"context"
	"testing"
)

// FuzzIndexCAR feeds arbitrary bytes to the CAR indexer: it must answer
// with an error or an index, never panic, and a failure must leave no rows.
func FuzzIndexCAR(f *testing.F) {
	carBytes, _ := makeCAR(f, 3, 20)
	f.Add(carBytes)
	f.Add(carBytes[:len(carBytes)/2])
	f.Add([]byte{})
	s := New(openDB(f), nil, WithBatchSize(2))
	pc, _ := pieceOf(f, []byte("fuzz"))
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := s.IndexPiece(ctx, pc, bytes.NewReader(data), int64(len(data)))
		var n int64
		if err := s.db.QueryRow(`SELECT count(*) FROM index_blocks`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if err != nil && n != 0 {
			t.Fatalf("failed indexing left %d rows", n)
		}
		if err == nil && n > res.Blocks {
			t.Fatalf("%d rows for %d blocks", n, res.Blocks)
		}
	})
}

// FuzzSegmentIndex feeds arbitrary bytes to the data segment index decoder
// and checks that what it accepts re-encodes to the same entry.
func FuzzSegmentIndex(f *testing.F) {
	var comm [32]byte
	comm[0] = 1
	e := Segment{CommDs: comm, Offset: 0, Size: 1024}.MarshalEntry()
	f.Add(e[:])
	f.Add(make([]byte, 128))
	f.Add(e[:40])
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) >= SegmentEntrySize {
			if s, err := ParseSegmentEntry(data[:SegmentEntrySize]); err == nil {
				if back := s.MarshalEntry(); !bytes.Equal(back[:], data[:SegmentEntrySize]) {
					t.Fatalf("entry %x re-encodes as %x", data[:SegmentEntrySize], back)
				}
			}
		}
		segs, err := ParseSegmentIndex(data, 1<<30)
		if err == nil {
			for _, s := range segs {
				if s.Offset%128 != 0 || s.Size == 0 || s.Offset+s.Size > 1<<30 {
					t.Fatalf("accepted bad segment %+v", s)
				}
			}
		}
		if _, err := ReadSegmentIndex(bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	})
}
