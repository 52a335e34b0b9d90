package market

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/transfer"
)

// directPiece writes a payload of n bytes as a file, makes allocation id
// of the harness' client for its piece (TermMin 180 days, TermMax 5 years,
// expiring at epoch 50,000) and returns the file and the piece.
func (h *harness) directPiece(id chain.AllocationID, name string, n int, seed int64) (path string, pc cid.Cid, size abi.PaddedPieceSize) {
	h.t.Helper()
	pc, size = h.payload(name, n, seed)
	path = filepath.Join(h.dl.srcDir, name)
	h.fc.allocate(id, h.clientID, pc, size, MinDealDuration, 5*365*2880, 50_000)
	return path, pc, size
}

// importFile is a direct deal of allocation id with the data in path.
func (h *harness) importFile(id chain.AllocationID, pc cid.Cid, path string, mod func(*DirectDeal)) (*DealInfo, error) {
	dd := DirectDeal{Client: h.clientID, AllocationID: id, PieceCID: pc, Data: DirectData{File: path}, Source: "test"}
	if mod != nil {
		mod(&dd)
	}
	return h.p.ImportDirect(context.Background(), dd)
}

// A direct deal from a file goes Accepted → Transferred → AddedPiece →
// IndexedAndAnnounced → Complete without a publish message: the sealer is
// given the piece's manifest with the allocation to claim, and the deal
// completes once the claim is on chain. The file stays unless asked.
func TestDirectDealCompletes(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	h.start()
	path, pc, size := h.directPiece(7, "d.car", 1500, 1)
	info, err := h.importFile(7, pc, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != KindDirect || info.AllocationID != 7 || info.Checkpoint != Accepted || info.PieceSize != uint64(size) {
		t.Fatalf("accepted deal: %+v", info)
	}
	head, _ := h.fc.ChainHead(context.Background())
	if info.StartEpoch != int64(head.Height()+DefaultDirectStartDelay) || info.EndEpoch != info.StartEpoch+int64(MinDealDuration) {
		t.Fatalf("epochs %d to %d; want head + 2 days to that + TermMin", info.StartEpoch, info.EndEpoch)
	}
	id := uuid.MustParse(info.UUID)
	d := h.waitFor(id, complete, Complete)
	if d.ClaimID != 7 || d.PublishCID != "" || d.Client != h.clientID.String() {
		t.Fatalf("complete direct deal: %+v", d)
	}
	v2, err := piece.V1ToV2(pc, 1500, size)
	if err != nil || d.PieceCIDv2 != v2.String() {
		t.Fatalf("piece CID v2 %q, want %s (%v)", d.PieceCIDv2, v2, err)
	}
	if msgs, _ := h.fc.publishMsgs(); msgs != 0 {
		t.Fatalf("%d publish messages for a direct deal", msgs)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the imported file went: %v", err)
	}
	if h.idx.calls[id] != 1 {
		t.Fatalf("indexed %d times", h.idx.calls[id])
	}
	// Another deal for the same allocation is refused while this one lives.
	if _, err := h.importFile(7, pc, path, nil); !errors.Is(err, ErrDirectDealRejected) || !strings.Contains(err.Error(), "already claims allocation 7") {
		t.Fatalf("second deal of allocation 7: %v", err)
	}
}

// import-direct --delete-after-import removes the file once the piece is
// in a sector; a piece CID v2 is accepted and its sizes checked.
func TestDirectDealDeleteAfterImportAndV2(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	h.start()
	path, pc, size := h.directPiece(8, "e.car", 1200, 2)
	v2, err := piece.V1ToV2(pc, 1200, size)
	if err != nil {
		t.Fatal(err)
	}
	info, err := h.importFile(8, v2, path, func(dd *DirectDeal) { dd.Data.DeleteAfterImport = true })
	if err != nil {
		t.Fatal(err)
	}
	if info.PieceCID != pc.String() {
		t.Fatalf("stored as %s, want the v1 %s", info.PieceCID, pc)
	}
	h.waitFor(uuid.MustParse(info.UUID), complete, Complete)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file kept after import with delete-after-import: %v", err)
	}
}

// Boost's import-direct checks, each refused with ErrDirectDealRejected
// and nothing recorded.
func TestDirectDealRejections(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.StartEpochSealingBuffer = 100 })
	h.start()
	path, pc, size := h.directPiece(1, "r.car", 1000, 3)
	other, _ := h.payload("o.car", 900, 4)
	h.fc.allocate(2, h.clientID, pc, size, MinDealDuration, 5*365*2880, 50_000)
	h.fc.mu.Lock()
	h.fc.allocs[2].Provider = 2000 // another miner's
	h.fc.mu.Unlock()
	h.fc.allocate(3, h.clientID, pc, size, MaxSectorExpirationExtension, MaxSectorExpirationExtension, 50_000)
	h.fc.allocate(4, h.clientID, pc, size, MinDealDuration, 5*365*2880, 5000) // expires before the default start
	big, _ := h.payload("big.car", 3000, 5)
	bigPath := filepath.Join(h.dl.srcDir, "big.car")
	v2wrong, _ := piece.V1ToV2(pc, 999, size)
	v2big, _ := piece.V1ToV2(pc, 1000, size*2)
	for _, c := range []struct {
		name string
		mod  func(*DirectDeal)
		want string
	}{
		{"no allocation", func(d *DirectDeal) { d.AllocationID = 99 }, "has no allocation 99"},
		{"another client's", func(d *DirectDeal) { d.Client = mustID(1002) }, "has no allocation 1"},
		{"another provider's", func(d *DirectDeal) { d.AllocationID = 2 }, "is for provider f02000"},
		{"another piece", func(d *DirectDeal) { d.PieceCID = other }, "is for piece"},
		{"not a piece CID", func(d *DirectDeal) { d.PieceCID = testRoot }, "not a piece CID"},
		{"v2 of another size", func(d *DirectDeal) { d.PieceCID = v2big }, "the piece CID v2 says"},
		{"v2 of another payload", func(d *DirectDeal) { d.PieceCID = v2wrong }, "the data is 1000 bytes, the piece CID v2 says 999"},
		{"expires before the start", func(d *DirectDeal) { d.AllocationID = 4 }, "before the deal's start epoch"},
		{"start within the sealing buffer", func(d *DirectDeal) { d.StartEpoch = 150 }, "sealing buffer of 100 epochs"},
		{"TermMin no sector can hold", func(d *DirectDeal) { d.AllocationID = 3 }, "longer than a sector can be committed for"},
		{"data larger than the piece", func(d *DirectDeal) { d.Data.File = bigPath; d.PieceCID = pc; _ = big }, "more than the"},
		{"no file", func(d *DirectDeal) { d.Data.File = path + ".gone" }, "reading the file"},
		{"relative file", func(d *DirectDeal) { d.Data.File = "r.car" }, "not an absolute path"},
		{"two sources", func(d *DirectDeal) { d.Data.Upload = true }, "exactly one source"},
		{"no source", func(d *DirectDeal) { d.Data = DirectData{} }, "exactly one source"},
		{"private URL", func(d *DirectDeal) {
			d.Data = DirectData{HTTP: &transfer.Request{URL: "http://127.0.0.1:1/x", Size: 1000}}
		}, "the URL is refused"},
		{"private fallback URL", func(d *DirectDeal) {
			d.Data = DirectData{HTTP: &transfer.Request{URL: "http://fake.example/x", Size: 1000,
				Fallbacks: []transfer.Source{{URL: "http://127.0.0.1:1/x"}}}}
		}, "the URL is refused"},
	} {
		_, err := h.importFile(1, pc, path, c.mod)
		if !errors.Is(err, ErrDirectDealRejected) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want a rejection containing %q", c.name, err, c.want)
		}
	}
	if ds := mustDeals(t, h); len(ds) != 0 {
		t.Fatalf("rejections recorded deals: %+v", ds)
	}
	// The same allocation again once the first deal failed (the sealer
	// holds it at Transferred for the operator to fail it).
	h.sealer.mu.Lock()
	h.sealer.fail = errors.New("no room")
	h.sealer.mu.Unlock()
	info, err := h.importFile(1, pc, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.MustParse(info.UUID)
	h.waitFor(id, func(d *DealInfo) bool { return d.Checkpoint == Transferred }, "Transferred")
	if err := h.p.Cancel(context.Background(), id); err == nil {
		t.Fatal("a direct deal past its data check was cancelled")
	}
	if err := h.p.Fail(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if _, err := h.importFile(1, pc, path, nil); err != nil {
		t.Fatalf("allocation of a failed deal: %v", err)
	}
}

// A direct deal whose file does not have the piece's commitment fails,
// and the operator's file stays even with delete-after-import.
func TestDirectDealWrongData(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	h.start()
	path, pc, _ := h.directPiece(5, "w.car", 1000, 6)
	if err := os.WriteFile(path, make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := h.importFile(5, pc, path, func(dd *DirectDeal) { dd.Data.DeleteAfterImport = true })
	if err != nil {
		t.Fatal(err)
	}
	d := h.waitFor(uuid.MustParse(info.UUID), failed, "failure")
	if !strings.Contains(d.Error, "the deal's is "+pc.String()) {
		t.Fatalf("error %q", d.Error)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the operator's file went with the failed deal: %v", err)
	}
}

// A direct deal's data may be downloaded into staging, or uploaded there
// and continued with ImportData; staging is tagged until the piece is in
// a sector and the staging file removed then.
func TestDirectDealDownloadAndUpload(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	h.start()
	ctx := context.Background()
	_, pc, _ := h.directPiece(11, "h.car", 1400, 7)
	info, err := h.p.ImportDirect(ctx, DirectDeal{Client: h.clientID, AllocationID: 11, PieceCID: pc,
		Data: DirectData{HTTP: &transfer.Request{URL: "http://fake.example/h.car", Size: 1400}}})
	if err != nil {
		t.Fatal(err)
	}
	h.waitFor(uuid.MustParse(info.UUID), complete, Complete)
	if _, err := os.Stat(filepath.Join(h.cfg.StagingDir, info.UUID+".car")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("staging file kept: %v", err)
	}

	up, upc, usize := h.directPiece(12, "u.car", 1100, 8)
	v2, _ := piece.V1ToV2(upc, 1100, usize)
	info, err = h.p.ImportDirect(ctx, DirectDeal{Client: h.clientID, AllocationID: 12, PieceCID: v2, Data: DirectData{Upload: true}})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.MustParse(info.UUID)
	if info.DataPath == "" || info.IsOffline != true {
		t.Fatalf("upload deal: %+v", info)
	}
	if _, s := tagCounts(t, h); s != 1 {
		t.Fatalf("%d staging tags while the upload waits, want 1", s)
	}
	h.waitFor(id, func(d *DealInfo) bool { return d.Checkpoint == Accepted }, "waiting")
	b, err := os.ReadFile(up)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(info.DataPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.p.ImportData(ctx, id, info.DataPath); err != nil {
		t.Fatal(err)
	}
	h.waitFor(id, complete, Complete)
	if _, err := os.Stat(info.DataPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("uploaded staging file kept: %v", err)
	}
	if _, s := tagCounts(t, h); s != 0 {
		t.Fatalf("%d staging tags left", s)
	}
}

// A Complete direct deal ends when its claim leaves the chain, and expires
// at its end epoch; its piece is released either way.
func TestDirectDealEnds(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.DealEndCheckInterval = 10 * 1e6 })
	h.start()
	path, pc, _ := h.directPiece(21, "x.car", 1000, 9)
	a, err := h.importFile(21, pc, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	path2, pc2, _ := h.directPiece(22, "y.car", 1000, 10)
	b, err := h.importFile(22, pc2, path2, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []*DealInfo{a, b} {
		h.waitFor(uuid.MustParse(d.UUID), complete, Complete)
	}
	// The sealer's claims are the chain's: drop the first.
	h.sealer.mu.Lock()
	delete(h.sealer.st.Claims, 21)
	h.sealer.mu.Unlock()
	h.waitFor(uuid.MustParse(a.UUID), ended(EndRemoved), EndRemoved)
	h.fc.setHeight(abi.ChainEpoch(b.EndEpoch))
	h.waitFor(uuid.MustParse(b.UUID), ended(EndExpired), EndExpired)
	h.waitReleased(uuid.MustParse(a.UUID))
	h.waitReleased(uuid.MustParse(b.UUID))
}
