package sealing

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sort"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
)

func TestLayoutFrom(t *testing.T) {
	offsets, fillers := layoutFrom(128, []abi.PaddedPieceSize{512, 128, 1024})
	want := []abi.PaddedPieceSize{512, 1024, 2048}
	for i := range want {
		if offsets[i] != want[i] {
			t.Fatalf("offsets %v, want %v", offsets, want)
		}
	}
	wantFill := [][]span{{{128, 128}, {256, 256}}, nil, {{1152, 128}, {1280, 256}, {1536, 512}}}
	for i := range wantFill {
		if len(fillers[i]) != len(wantFill[i]) {
			t.Fatalf("fillers %v, want %v", fillers, wantFill)
		}
		for j := range wantFill[i] {
			if fillers[i][j] != wantFill[i][j] {
				t.Fatalf("fillers %v, want %v", fillers, wantFill)
			}
		}
	}
}

// Two deals of one publish batch, 2 MiB and 4 MiB, go into one 8 MiB sector
// although the first is still being written when the second is placed
// (lotus-miner packs them so; a sector that took one piece at a time sealed
// two sectors of mostly filler).
func TestAddPieceSharesSectorWhileWriting(t *testing.T) {
	ctx := context.Background()
	s := openTestSealing(t, t.TempDir(), Config{SectorSize: 8 << 20}, &fakeNode{height: 10})
	a := makePiece(t, 1, 1<<20, 2<<20)
	b := makePiece(t, 2, 3<<20, 4<<20)
	da, db := dealFor(a, 10000), dealFor(b, 10000)
	gate := make(chan struct{})
	ra := addAsync(ctx, s, a, &gatedReader{r: bytes.NewReader(a.data), open: gate}, da)
	waitReserved(t, s, da)
	rb := addAsync(ctx, s, b, bytes.NewReader(b.data), db)
	waitReserved(t, s, db) // placed while the first waits in its write
	close(gate)
	resA, resB := <-ra, <-rb
	if resA.err != nil || resB.err != nil {
		t.Fatal(resA.err, resB.err)
	}
	if resA.pl != (Placement{1, 0, 2 << 20}) || resB.pl != (Placement{1, 4 << 20, 4 << 20}) {
		t.Fatalf("placed at %+v and %+v, want both in sector 1", resA.pl, resB.pl)
	}
	si, err := s.Sector(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if si.Used != 8<<20 || si.Deals != 2 {
		t.Fatalf("sector 1: used %d, %d deals", si.Used, si.Deals)
	}
	if all, _ := s.Sectors(ctx); len(all) != 1 {
		t.Fatalf("%d sectors opened, want 1", len(all))
	}
	checkPayload(t, readBack(t, s, a.cid), a)
	checkPayload(t, readBack(t, s, b.cid), b)
	checkSector(t, s, 1)
}

// Many small pieces placed at once fill one sector exactly; no second
// sector is opened while the first has room.
func TestAddPieceManySmallShareOneSector(t *testing.T) {
	ctx := context.Background()
	s := openTestSealing(t, t.TempDir(), Config{SectorSize: 8 << 20, AddPieceConcurrency: 4}, &fakeNode{height: 10})
	const n = 64 // 64 × 128 KiB = 8 MiB
	gate := make(chan struct{})
	var ps []testPiece
	var deals []Deal
	var results []<-chan addResult
	for i := range n {
		p := makePiece(t, int64(100+i), 100_000+i*100, 128<<10)
		d := dealFor(p, 10000)
		ps, deals = append(ps, p), append(deals, d)
		results = append(results, addAsync(ctx, s, p, &gatedReader{r: bytes.NewReader(p.data), open: gate}, d))
	}
	for _, d := range deals {
		waitReserved(t, s, d) // all placed before any byte is written
	}
	close(gate)
	var offsets []int
	for i, ch := range results {
		r := <-ch
		if r.err != nil {
			t.Fatalf("piece %d: %v", i, r.err)
		}
		if r.pl.Sector != 1 || r.pl.Size != 128<<10 {
			t.Fatalf("piece %d placed at %+v, want sector 1", i, r.pl)
		}
		offsets = append(offsets, int(r.pl.Offset))
	}
	sort.Ints(offsets)
	for i, off := range offsets {
		if off != i*(128<<10) {
			t.Fatalf("offsets %v are not the 64 slots of the sector", offsets)
		}
	}
	for _, p := range ps {
		checkPayload(t, readBack(t, s, p.cid), p)
	}
	checkSector(t, s, 1)
	if all, _ := s.Sectors(ctx); len(all) != 1 {
		t.Fatalf("%d sectors opened, want 1", len(all))
	}
}

// A piece that fails while pieces wait behind it in its sector (one whose
// data does not match, one whose caller gave up while waiting) leaves no
// hole: the pieces behind move up to where the chain will look for them,
// and the failed deals, tried again, go after them.
func TestAddPieceFailureMidSector(t *testing.T) {
	ctx := context.Background()
	s := openTestSealing(t, t.TempDir(), Config{SectorSize: 8 << 20}, &fakeNode{height: 10})
	first := makePiece(t, 1, 100_000, 128<<10)
	if _, err := s.AddPieceToAny(ctx, first.size, bytes.NewReader(first.data), dealFor(first, 10000)); err != nil {
		t.Fatal(err)
	}
	bad := makePiece(t, 2, 1_000_000, 1<<20)
	quit := makePiece(t, 3, 400_000, 512<<10)
	last := makePiece(t, 4, 900_000, 1<<20)
	dBad, dQuit, dLast := dealFor(bad, 10000), dealFor(quit, 10000), dealFor(last, 10000)

	corrupt := append([]byte(nil), bad.data...)
	corrupt[1000] ^= 1
	gate := make(chan struct{})
	rBad := addAsync(ctx, s, bad, &gatedReader{r: bytes.NewReader(corrupt), open: gate}, dBad)
	if pl := waitReserved(t, s, dBad); pl != (Placement{1, 1 << 20, 1 << 20}) {
		t.Fatalf("bad piece reserved at %+v", pl)
	}
	qctx, cancel := context.WithCancel(ctx)
	rQuit := addAsync(qctx, s, quit, bytes.NewReader(quit.data), dQuit)
	if pl := waitReserved(t, s, dQuit); pl != (Placement{1, 2 << 20, 512 << 10}) {
		t.Fatalf("second piece reserved at %+v", pl)
	}
	rLast := addAsync(ctx, s, last, bytes.NewReader(last.data), dLast)
	if pl := waitReserved(t, s, dLast); pl != (Placement{1, 3 << 20, 1 << 20}) {
		t.Fatalf("third piece reserved at %+v", pl)
	}

	cancel() // the second gives up while it waits for its turn
	if r := <-rQuit; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("cancelled call: %v", r.err)
	}
	if pl := waitReserved(t, s, dLast); pl != (Placement{1, 2 << 20, 1 << 20}) {
		t.Fatalf("after the second gave up the third is at %+v, want moved up to 2 MiB", pl)
	}
	close(gate) // the first writes its (corrupt) data and fails
	if r := <-rBad; !errors.Is(r.err, ErrCommPMismatch) {
		t.Fatalf("corrupt piece: %v", r.err)
	}
	r := <-rLast
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.pl != (Placement{1, 1 << 20, 1 << 20}) {
		t.Fatalf("third piece written at %+v, want moved up to 1 MiB", r.pl)
	}
	checkSector(t, s, 1)

	// Tried again, the failed deals go behind it.
	pl, err := s.AddPieceToAny(ctx, quit.size, bytes.NewReader(quit.data), dQuit)
	if err != nil || pl != (Placement{1, 2 << 20, 512 << 10}) {
		t.Fatalf("second piece again: %+v %v", pl, err)
	}
	pl, err = s.AddPieceToAny(ctx, bad.size, bytes.NewReader(bad.data), dBad)
	if err != nil || pl != (Placement{1, 3 << 20, 1 << 20}) {
		t.Fatalf("first piece again: %+v %v", pl, err)
	}
	for _, p := range []testPiece{first, bad, quit, last} {
		checkPayload(t, readBack(t, s, p.cid), p)
	}
	checkSector(t, s, 1)
	si, _ := s.Sector(ctx, 1)
	if si.Deals != 4 {
		t.Fatalf("sector 1 has %d deals, want 4", si.Deals)
	}
}

// A reader that fails with an I/O error mid-piece is a failure like any
// other: its range is zeroed and the next piece takes its place.
func TestAddPieceReaderFailsMidSector(t *testing.T) {
	ctx := context.Background()
	s := openTestSealing(t, t.TempDir(), Config{SectorSize: 8 << 20}, &fakeNode{height: 10})
	a := makePiece(t, 1, 2_000_000, 2<<20)
	b := makePiece(t, 2, 1<<20, 2<<20)
	da, db := dealFor(a, 10000), dealFor(b, 10000)
	gate := make(chan struct{})
	boom := errors.New("connection reset")
	half := io.MultiReader(bytes.NewReader(a.data[:1<<20]), &gatedReader{open: gate, fail: boom})
	ra := addAsync(ctx, s, a, half, da)
	waitReserved(t, s, da)
	rb := addAsync(ctx, s, b, bytes.NewReader(b.data), db)
	if pl := waitReserved(t, s, db); pl.Offset != 2<<20 {
		t.Fatalf("second piece reserved at %+v", pl)
	}
	close(gate)
	if r := <-ra; !errors.Is(r.err, boom) {
		t.Fatalf("failing reader: %v", r.err)
	}
	if r := <-rb; r.err != nil || r.pl != (Placement{1, 0, 2 << 20}) {
		t.Fatalf("second piece: %+v %v", r.pl, r.err)
	}
	checkPayload(t, readBack(t, s, b.cid), b)
	checkSector(t, s, 1)
}

// A chain deal reserved under one deal UUID (a crash left it unwritten) and
// given again under another is written once, at its reservation.
func TestAddPieceSameChainDealOtherUUID(t *testing.T) {
	ctx := context.Background()
	s := openTestDB(t, t.TempDir())
	p := makePiece(t, 1, 300, 512)
	d1 := dealFor(p, 10000)
	d1.DealID = 55
	newSector := func([]openSector, int) (int, error) { return -1, nil }
	res, err := s.st.reserve(ctx, d1, 512, pieceClaim{}, s.proof, newSector)
	if err != nil {
		t.Fatal(err)
	}
	d2 := d1
	d2.UUID = uuid.New()
	pl, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(p.data), d2)
	if err != nil || pl != res {
		t.Fatalf("placed at %+v (%v), reserved at %+v", pl, err, res)
	}
	si, _ := s.Sector(ctx, 1)
	if si.Deals != 1 || !si.Pieces[0].Written || *si.Pieces[0].DealUUID != d1.UUID {
		t.Fatalf("sector 1: %+v", si.Pieces)
	}
	checkPayload(t, readBack(t, s, p.cid), p)
	checkSector(t, s, 1)
}
