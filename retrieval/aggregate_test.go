package retrieval

import (
	"bytes"
	"context"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/piece"
)

// TestAggregateSubPiece serves a data segment of an FRC-0058 aggregate by
// its own piece CID, and its blocks through the gateway.
func TestAggregateSubPiece(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	other := rawBlock(t, bytes.Repeat([]byte("other "), 40))
	subs := [][]byte{carOf(t, f.dag.C.c, f.dag.all()), carOf(t, other.c, []blk{other})}

	const size = abi.PaddedPieceSize(1 << 16)
	agg := make([]byte, size.Unpadded())
	var (
		off     uint64
		entries []byte
		subCIDs []cid.Cid
		subData [][]byte
	)
	for _, sub := range subs {
		calc := piece.NewCalc()
		calc.Write(sub)
		comm, err := calc.Sum()
		if err != nil {
			t.Fatal(err)
		}
		ps := uint64(piece.PaddedSizeFor(uint64(len(sub))))
		off = (off + ps - 1) / ps * ps
		copy(agg[off-off/128:], sub)
		e := index.Segment{CommDs: comm.Root, Offset: off, Size: ps}.MarshalEntry()
		entries = append(entries, e[:]...)
		subCIDs = append(subCIDs, comm.CID())
		full := make([]byte, abi.PaddedPieceSize(ps).Unpadded())
		copy(full, sub)
		subData = append(subData, full)
		off += ps
	}
	_, ustart, _ := index.SegmentIndexOffset(size)
	idx := make([]byte, index.SegmentIndexEntries(size)*index.SegmentEntrySize)
	copy(idx, entries)
	piece.Unpad(agg[ustart:], idx)
	calc := piece.NewCalc()
	calc.Write(agg)
	comm, err := calc.Sum()
	if err != nil {
		t.Fatal(err)
	}
	aggCID := comm.CID()
	f.src.pieces[aggCID] = agg
	delete(f.src.pieces, f.pc) // only the aggregate holds the DAG now
	if err := f.idx.RemovePiece(ctx, f.pc); err != nil {
		t.Fatal(err)
	}
	res, err := f.idx.Rebuild(ctx, aggCID)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Segments) != 2 || res.Blocks != 7 {
		t.Fatalf("aggregate indexed as %+v", res)
	}

	for i, sc := range subCIDs {
		resp, body := do(t, "GET", f.srv.URL+"/piece/"+sc.String(), nil)
		if resp.StatusCode != 200 || !bytes.Equal(body, subData[i]) {
			t.Fatalf("sub-piece %d: %s, %d bytes", i, resp.Status, len(body))
		}
		var buf bytes.Buffer
		if err := FetchPiece(ctx, f.srv.URL, sc, &buf); err != nil {
			t.Fatalf("FetchPiece sub-piece %d: %v", i, err)
		}
	}
	resp, body := do(t, "GET", f.srv.URL+"/ipfs/"+other.c.String()+"?format=raw", nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, other.data) {
		t.Fatalf("block from the aggregate: %s", resp.Status)
	}
	var car bytes.Buffer
	if err := FetchCAR(ctx, f.srv.URL, f.dag.C.c, &car); err != nil {
		t.Fatalf("DAG from the aggregate: %v", err)
	}
}
