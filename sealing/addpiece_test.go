package sealing

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/piece"
)

func TestNewUnsealedFileLayout(t *testing.T) {
	s := openTestDB(t, t.TempDir())
	f, err := s.openUnsealed(1)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, err := os.ReadFile(s.unsealedPath(1))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 2048+4) // Lotus: 2048 bytes of hole, empty RLE+, length 00000000
	if !bytes.Equal(b, want) {
		t.Fatalf("new 2 KiB unsealed file is %d bytes, want 2052 zero bytes", len(b))
	}
}

func TestTrailerRoundTrip(t *testing.T) {
	cases := [][]span{
		nil,
		{{0, 2048}},
		{{0, 128}, {256, 256}},
		{{128, 128}, {0, 128}, {1024, 1024}}, // unsorted, touching
		{{512, 512}},
	}
	for _, spans := range cases {
		b, err := encodeTrailer(spans)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeTrailer(b, 2048)
		if err != nil {
			t.Fatalf("%v: %v", spans, err)
		}
		if !sameCoverage(got, spans) {
			t.Fatalf("round trip of %v gave %v", spans, got)
		}
	}
	if _, err := decodeTrailer([]byte{0xff, 0xff, 0xff}, 2048); err == nil {
		t.Fatal("garbage trailer decoded without error")
	}
	b, _ := encodeTrailer([]span{{0, 4096}})
	if _, err := decodeTrailer(b, 2048); err == nil {
		t.Fatal("trailer past the sector end decoded without error")
	}
}

// sameCoverage compares the bytes covered by two span lists.
func sameCoverage(a, b []span) bool {
	cover := func(s []span) map[abi.PaddedPieceSize]bool {
		m := map[abi.PaddedPieceSize]bool{}
		for _, x := range s {
			for o := x.Offset; o < x.Offset+x.Size; o += 128 {
				m[o] = true
			}
		}
		return m
	}
	ca, cb := cover(a), cover(b)
	if len(ca) != len(cb) {
		return false
	}
	for k := range ca {
		if !cb[k] {
			return false
		}
	}
	return true
}

func TestChoosePlacement(t *testing.T) {
	const ss = abi.SectorSize(2048)
	cases := []struct {
		name string
		open []openSector
		size abi.PaddedPieceSize
		want abi.SectorNumber // 0: none
	}{
		{"empty list", nil, 128, 0},
		{"fits the only one", []openSector{{Number: 1, Used: 0, Deals: 0}}, 1024, 1},
		{"too big for any", []openSector{{Number: 1, Used: 1152, Deals: 1}, {Number: 2, Used: 1536, Deals: 1}}, 1024, 0},
		// used 128 needs 384 bytes of filler for a 512 piece; used 512 needs none
		{"least padding wins", []openSector{{Number: 1, Used: 128, Deals: 1}, {Number: 2, Used: 512, Deals: 1}}, 512, 2},
		{"tie goes to the older", []openSector{{Number: 3, Used: 512, Deals: 1}, {Number: 2, Used: 1536, Deals: 1}}, 512, 2},
		{"full sector skipped", []openSector{{Number: 1, Used: 2048, Deals: 2}, {Number: 2, Used: 256, Deals: 1}}, 128, 2},
		{"deal limit", []openSector{{Number: 1, Used: 0, Deals: 256}}, 128, 0},
	}
	for _, c := range cases {
		i := choosePlacement(c.open, ss, c.size)
		got := abi.SectorNumber(0)
		if i >= 0 {
			got = c.open[i].Number
		}
		if got != c.want {
			t.Errorf("%s: got sector %d, want %d", c.name, got, c.want)
		}
	}
}

func TestFillers(t *testing.T) {
	cases := []struct {
		used, size abi.PaddedPieceSize
		want       []span
	}{
		{0, 1024, nil},
		{128, 128, nil},
		{128, 1024, []span{{128, 128}, {256, 256}, {512, 512}}},
		{384, 256, []span{{384, 128}}},
		{640, 512, []span{{640, 128}, {768, 256}}},
	}
	for _, c := range cases {
		got := fillersBefore(c.used, c.size)
		if len(got) != len(c.want) {
			t.Fatalf("fillers(%d, %d) = %v, want %v", c.used, c.size, got, c.want)
		}
		for i := range got {
			if got[i] != c.want[i] || got[i].Offset%got[i].Size != 0 {
				t.Fatalf("fillers(%d, %d) = %v, want %v", c.used, c.size, got, c.want)
			}
		}
	}
	tail := tailFillers(640, 2048)
	want := []span{{640, 128}, {768, 256}, {1024, 1024}}
	if len(tail) != len(want) {
		t.Fatalf("tail = %v, want %v", tail, want)
	}
	for i := range tail {
		if tail[i] != want[i] {
			t.Fatalf("tail = %v, want %v", tail, want)
		}
	}
}

// nodeHash is the piece tree's node hash, written here independently of
// package piece to serve as an oracle.
func nodeHash(a, b [32]byte) [32]byte {
	d := sha256.Sum256(append(a[:], b[:]...))
	d[31] &= 0x3F
	return d
}

// treeRoot is the root over [off, off+size) of a sector whose pieces (with
// their commitments) are given; uncovered bytes are zeros.
func treeRoot(pieces map[abi.PaddedPieceSize]abi.PieceInfo, off, size abi.PaddedPieceSize) [32]byte {
	if p, ok := pieces[off]; ok && p.Size == size {
		r, _ := piece.ParseCID(p.PieceCID)
		return r
	}
	any := false
	for o, p := range pieces {
		if o >= off && o+p.Size <= off+size {
			any = true
		}
	}
	if !any {
		return piece.ZeroCommitment(size)
	}
	return nodeHash(treeRoot(pieces, off, size/2), treeRoot(pieces, off+size/2, size/2))
}

// checkSector checks a sector's consistency: the trailer covers exactly the
// written pieces, and the tree over the file's bytes equals the tree over
// the recorded pieces' commitments (that is, CommD).
func checkSector(t testing.TB, s *Sealing, n abi.SectorNumber) {
	t.Helper()
	ctx := context.Background()
	si, err := s.Sector(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(s.unsealedPath(n))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	alloc, err := readAllocation(f, s.cfg.SectorSize)
	if err != nil {
		t.Fatalf("sector %d trailer: %v", n, err)
	}
	var done []span
	pieces := map[abi.PaddedPieceSize]abi.PieceInfo{}
	for _, p := range si.Pieces {
		if !p.Written {
			continue
		}
		done = append(done, span{p.Offset, p.Size})
		pieces[p.Offset] = abi.PieceInfo{Size: p.Size, PieceCID: p.PieceCID}
	}
	if !sameCoverage(alloc, done) {
		t.Fatalf("sector %d trailer covers %v, the written pieces %v", n, alloc, done)
	}
	c := piece.NewCalc()
	if _, err := io.Copy(c, piece.NewUnpadReader(io.NewSectionReader(f, 0, int64(s.cfg.SectorSize)))); err != nil {
		t.Fatal(err)
	}
	fileRoot, err := c.SumAs(abi.PaddedPieceSize(s.cfg.SectorSize))
	if err != nil {
		t.Fatal(err)
	}
	want := treeRoot(pieces, 0, abi.PaddedPieceSize(s.cfg.SectorSize))
	if fileRoot.Root != want {
		t.Fatalf("sector %d: tree over the file's bytes differs from the tree over its pieces", n)
	}
	// CommD from the deals alone (what the chain computes) is the same.
	var deals []abi.PieceInfo
	for _, p := range si.Pieces {
		if p.Written && !p.Filler {
			deals = append(deals, abi.PieceInfo{Size: p.Size, PieceCID: p.PieceCID})
		}
	}
	commD, err := piece.CommD(abi.PaddedPieceSize(s.cfg.SectorSize), deals)
	if err != nil {
		t.Fatal(err)
	}
	if root, _ := piece.ParseCID(commD); root != fileRoot.Root {
		t.Fatalf("sector %d: piece.CommD of its deals differs from the tree over the file", n)
	}
}

func TestAddPiecePacksAndReadsBack(t *testing.T) {
	ctx := context.Background()
	s := openTestDB(t, t.TempDir())
	type step struct {
		payload int
		size    abi.PaddedPieceSize
		want    Placement
	}
	steps := []step{
		{100, 128, Placement{1, 0, 128}},
		{500, 512, Placement{1, 512, 512}},  // 128..512 filled with 128+256
		{127, 128, Placement{1, 1024, 128}}, // least padding is in sector 1
		{1000, 1024, Placement{2, 0, 1024}}, // does not fit sector 1 (1152 used)
		{200, 256, Placement{2, 1024, 256}}, // sector 1 would need 128 of filler, sector 2 none
		{400, 512, Placement{2, 1536, 512}}, // 256 of filler in sector 2, 384 in sector 1
	}
	var pieces []testPiece
	for i, st := range steps {
		p := makePiece(t, int64(i), st.payload, st.size)
		pieces = append(pieces, p)
		pl, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(p.data), dealFor(p, 10000))
		if err != nil {
			t.Fatalf("piece %d: %v", i, err)
		}
		if pl != st.want {
			t.Fatalf("piece %d placed at %+v, want %+v", i, pl, st.want)
		}
	}
	for _, p := range pieces {
		checkPayload(t, readBack(t, s, p.cid), p)
	}
	checkSector(t, s, 1)
	checkSector(t, s, 2)
	si, err := s.Sector(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if si.Used != 1152 || si.Deals != 3 || si.State != StateWaitDeals {
		t.Fatalf("sector 1: used %d deals %d state %s", si.Used, si.Deals, si.State)
	}
}

func TestAddPieceIdempotent(t *testing.T) {
	ctx := context.Background()
	s := openTestDB(t, t.TempDir())
	p := makePiece(t, 1, 300, 512)
	d := dealFor(p, 10000)
	pl1, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(p.data), d)
	if err != nil {
		t.Fatal(err)
	}
	// Same deal again, with data that would not even match: no second copy.
	pl2, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(make([]byte, 10)), d)
	if err != nil {
		t.Fatal(err)
	}
	if pl1 != pl2 {
		t.Fatalf("second call placed at %+v, first at %+v", pl2, pl1)
	}
	// By chain deal ID too.
	d.DealID = 77
	q := makePiece(t, 2, 300, 512)
	d2 := dealFor(q, 10000)
	d2.DealID = 78
	if _, err := s.AddPieceToAny(ctx, q.size, bytes.NewReader(q.data), d2); err != nil {
		t.Fatal(err)
	}
	d3 := d2
	d3.UUID = d.UUID // a different UUID but the same chain deal would also match
	d3.UUID[0] ^= 1
	pl3, err := s.AddPieceToAny(ctx, q.size, bytes.NewReader(q.data), d3)
	if err != nil {
		t.Fatal(err)
	}
	si, _ := s.Sector(ctx, 1)
	if si.Deals != 2 {
		t.Fatalf("sector has %d deals, want 2", si.Deals)
	}
	if pl3.Offset != 512 {
		t.Fatalf("same chain deal ID placed at %+v", pl3)
	}
	checkSector(t, s, 1)
}

func TestAddPieceCommPMismatch(t *testing.T) {
	ctx := context.Background()
	s := openTestDB(t, t.TempDir())
	good := makePiece(t, 1, 100, 128)
	if _, err := s.AddPieceToAny(ctx, good.size, bytes.NewReader(good.data), dealFor(good, 10000)); err != nil {
		t.Fatal(err)
	}
	bad := makePiece(t, 2, 500, 512)
	d := dealFor(bad, 10000)
	corrupt := append([]byte(nil), bad.data...)
	corrupt[17] ^= 0x40
	_, err := s.AddPieceToAny(ctx, bad.size, bytes.NewReader(corrupt), d)
	if !errors.Is(err, ErrCommPMismatch) {
		t.Fatalf("corrupt data: got %v, want ErrCommPMismatch", err)
	}
	if _, err := s.ReadPiece(ctx, bad.cid); !errors.Is(err, ErrNoUnsealedCopy) {
		t.Fatalf("ReadPiece of a failed piece: %v", err)
	}
	if _, err := s.SectorStatus(ctx, d.UUID); !errors.Is(err, ErrUnknownDeal) {
		t.Fatalf("failed deal still listed: %v", err)
	}
	checkSector(t, s, 1)
	// The sector goes back to taking pieces once Run has seen the failure;
	// here the state is AddPieceFailed, which still takes pieces.
	next := makePiece(t, 3, 500, 512)
	pl, err := s.AddPieceToAny(ctx, next.size, bytes.NewReader(next.data), dealFor(next, 10000))
	if err != nil {
		t.Fatal(err)
	}
	if pl != (Placement{1, 512, 512}) {
		t.Fatalf("next piece at %+v", pl)
	}
	// The same deal with the right data now succeeds.
	if _, err := s.AddPieceToAny(ctx, bad.size, bytes.NewReader(bad.data), d); err != nil {
		t.Fatal(err)
	}
	checkPayload(t, readBack(t, s, good.cid), good)
	checkPayload(t, readBack(t, s, next.cid), next)
	checkPayload(t, readBack(t, s, bad.cid), bad)
	checkSector(t, s, 1)
}

// enospcFile fails sector-data writes once budget bytes were written.
type enospcFile struct {
	sectorFile
	budget int64
	limit  int64
}

func (e *enospcFile) WriteAt(p []byte, off int64) (int, error) {
	if off < e.limit {
		if int64(len(p)) > e.budget {
			return 0, &os.PathError{Op: "write", Path: "sector", Err: syscall.ENOSPC}
		}
		e.budget -= int64(len(p))
	}
	return e.sectorFile.WriteAt(p, off)
}

func TestAddPieceDiskFull(t *testing.T) {
	ctx := context.Background()
	s := openTestSealing(t, t.TempDir(), Config{SectorSize: 8 << 20}, &fakeNode{height: 10})
	first := makePiece(t, 1, 1000, 1024)
	if _, err := s.AddPieceToAny(ctx, first.size, bytes.NewReader(first.data), dealFor(first, 10000)); err != nil {
		t.Fatal(err)
	}
	s.openFile = func(path string, flag int, perm os.FileMode) (sectorFile, error) {
		f, err := osOpen(path, flag, perm)
		if err != nil {
			return nil, err
		}
		return &enospcFile{sectorFile: f, budget: 1 << 20, limit: 8 << 20}, nil
	}
	big := makePiece(t, 2, 3<<20, 4<<20)
	_, err := s.AddPieceToAny(ctx, big.size, bytes.NewReader(big.data), dealFor(big, 10000))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("full disk: got %v, want ENOSPC", err)
	}
	checkSector(t, s, 1)
	s.openFile = osOpen
	next := makePiece(t, 3, 2000, 2048)
	pl, err := s.AddPieceToAny(ctx, next.size, bytes.NewReader(next.data), dealFor(next, 10000))
	if err != nil {
		t.Fatal(err)
	}
	if pl.Sector != 1 || pl.Offset != 2048 { // the failed piece and its fillers are forgotten
		t.Fatalf("after a full disk the next piece went to %+v", pl)
	}
	checkPayload(t, readBack(t, s, first.cid), first)
	checkPayload(t, readBack(t, s, next.cid), next)
	checkSector(t, s, 1)
}

func TestAddPieceStartEpochTooSoon(t *testing.T) {
	ctx := context.Background()
	node := &fakeNode{height: 1000}
	s := openTestSealing(t, t.TempDir(), Config{StartEpochSealingBuffer: 100}, node)
	p := makePiece(t, 1, 100, 128)
	_, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(p.data), dealFor(p, 1099))
	if !errors.Is(err, ErrStartEpochTooSoon) {
		t.Fatalf("got %v, want ErrStartEpochTooSoon", err)
	}
	if _, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(p.data), dealFor(p, 1100)); err != nil {
		t.Fatal(err)
	}
}

func TestAddPieceBadInput(t *testing.T) {
	ctx := context.Background()
	s := openTestDB(t, t.TempDir())
	p := makePiece(t, 1, 100, 128)
	d := dealFor(p, 10000)
	if _, err := s.AddPieceToAny(ctx, 100, bytes.NewReader(p.data), d); err == nil {
		t.Fatal("invalid unpadded size accepted")
	}
	if _, err := s.AddPieceToAny(ctx, 254, bytes.NewReader(p.data), d); err == nil {
		t.Fatal("size not matching the proposal accepted")
	}
	long := append(append([]byte(nil), p.data...), make([]byte, 200)...)
	if _, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(long), d); err == nil {
		t.Fatal("data longer than the piece accepted")
	}
	big := makePiece(t, 2, 3000, 4096)
	if _, err := s.AddPieceToAny(ctx, big.size, bytes.NewReader(big.data), dealFor(big, 10000)); err == nil {
		t.Fatal("piece larger than the sector accepted")
	}
	// Nothing of the above is left behind.
	if _, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(p.data), d); err != nil {
		t.Fatal(err)
	}
	checkSector(t, s, 1)
}

func TestAddPieceWaitsForRoom(t *testing.T) {
	ctx := context.Background()
	s := openTestSealing(t, t.TempDir(), Config{MaxWaitDealsSectors: 1}, &fakeNode{height: 10})
	a := makePiece(t, 1, 1500, 2048)
	if _, err := s.AddPieceToAny(ctx, a.size, bytes.NewReader(a.data), dealFor(a, 10000)); err != nil {
		t.Fatal(err)
	}
	b := makePiece(t, 2, 100, 128)
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := s.AddPieceToAny(tctx, b.size, bytes.NewReader(b.data), dealFor(b, 10000))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with the only open sector full: got %v, want to wait until the deadline", err)
	}
}

func TestAddPieceConcurrent(t *testing.T) {
	ctx := context.Background()
	s := openTestSealing(t, t.TempDir(), Config{SectorSize: 8 << 20, MaxWaitDealsSectors: 3}, &fakeNode{height: 10})
	var ps []testPiece
	for i := range 12 {
		ps = append(ps, makePiece(t, int64(i), 100_000+i*1000, 128<<10))
	}
	errs := make(chan error, len(ps))
	for _, p := range ps {
		go func() {
			_, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(p.data), dealFor(p, 10000))
			errs <- err
		}()
	}
	for range ps {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range ps {
		checkPayload(t, readBack(t, s, p.cid), p)
	}
	sectors, err := s.Sectors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, si := range sectors {
		checkSector(t, s, si.Number)
	}
	_ = cid.Undef
}

// A sector's pieces carry their deal's publish CID and proposal, which
// lotus-miner's SectorsStatus shows a market (minerapi's server), and
// fillers carry neither.
func TestSectorPiecesCarryDeal(t *testing.T) {
	ctx := context.Background()
	s := openTestDB(t, t.TempDir())
	p := makePiece(t, 7, 300, 512)
	d := dealFor(p, 10000)
	d.DealID = 42
	d.PublishCid = p.cid // any CID will do
	pl, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(p.data), d)
	if err != nil {
		t.Fatal(err)
	}
	si, err := s.Sector(ctx, pl.Sector)
	if err != nil {
		t.Fatal(err)
	}
	var seen bool
	for _, sp := range si.Pieces {
		if sp.Filler {
			if sp.PublishCid != nil || sp.Proposal != nil {
				t.Fatalf("filler with deal fields: %+v", sp)
			}
			continue
		}
		seen = true
		if sp.PublishCid == nil || !sp.PublishCid.Equals(d.PublishCid) || sp.Proposal == nil ||
			!sp.Proposal.PieceCID.Equals(p.cid) || sp.Proposal.EndEpoch != d.Proposal.EndEpoch || sp.Proposal.Client != d.Proposal.Client {
			t.Fatalf("deal piece %+v (proposal %+v), want publish CID %s and the deal's proposal", sp, sp.Proposal, d.PublishCid)
		}
	}
	if !seen {
		t.Fatalf("no deal piece in %+v", si.Pieces)
	}
}

// TestAddPieceCRC checks a deal whose data the market checked already
// (Deal.DataCRC32C): its piece is padded into the sector file without being
// hashed, byte for byte as a hashed one is, and bytes that are not the ones
// checked fail with ErrCommPMismatch and leave nothing behind.
func TestAddPieceCRC(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	probe := filepath.Join(dir, "probe")
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err := openDirect(probe); err != nil {
		t.Skipf("no direct I/O here: %v", err)
	} else {
		f.Close()
	}
	s := openTestSealing(t, dir, Config{SectorSize: 8 << 20}, &fakeNode{height: 10})
	crcOf := func(b []byte) *uint32 {
		sum := crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
		return &sum
	}
	p := makePiece(t, 1, 3<<20, 4<<20)
	hashed := dealFor(p, 10000)
	checked := dealFor(p, 10000)
	checked.DataCRC32C = crcOf(p.data)

	// Corrupt bytes under the checksum of the right ones fail, and the
	// sector takes the next piece where the failed one was.
	corrupt := append([]byte(nil), p.data...)
	corrupt[2<<20] ^= 1
	if _, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(corrupt), checked); !errors.Is(err, ErrCommPMismatch) || !strings.Contains(err.Error(), "CRC-32C") {
		t.Fatalf("corrupt data under the checksum: %v, want ErrCommPMismatch naming the CRC", err)
	}
	if _, err := s.SectorStatus(ctx, checked.UUID); !errors.Is(err, ErrUnknownDeal) {
		t.Fatalf("failed deal still listed: %v", err)
	}
	// A payload longer than the piece fails too.
	long := append(append([]byte(nil), p.data...), make([]byte, int(p.size)-len(p.data)+1)...)
	long[len(long)-1] = 1
	if _, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(long), Deal{UUID: uuid.New(), Proposal: checked.Proposal, KeepUnsealed: true, DataCRC32C: crcOf(long)}); err == nil || errors.Is(err, ErrCommPMismatch) {
		t.Fatalf("a payload longer than the piece: %v", err)
	}

	pl1, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(p.data), checked)
	if err != nil {
		t.Fatal(err)
	}
	pl2, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(p.data), hashed)
	if err != nil {
		t.Fatal(err)
	}
	if pl1.Sector != pl2.Sector || pl1.Offset != 0 || pl2.Offset != 4<<20 {
		t.Fatalf("placed at %+v and %+v", pl1, pl2)
	}
	raw, err := os.ReadFile(s.unsealedPath(pl1.Sector))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw[:4<<20], raw[4<<20:8<<20]) {
		t.Fatal("the checked piece's padded bytes differ from the hashed one's")
	}
	checkPayload(t, readBack(t, s, p.cid), p)
	checkSector(t, s, pl1.Sector)
}
