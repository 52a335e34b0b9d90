package market

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/transfer"
)

// reservations counts the staging reservations and sums every byte held
// in staging (tags and reservations) as admission does.
func reservations(t *testing.T, h *harness) (n int, held uint64) {
	t.Helper()
	if err := h.deps.DB.QueryRow(`SELECT count(*) FROM market_staging_reservations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	r, err := h.p.Reserved(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n, r.StagingTagged
}

// stage makes allocation id for the payload stored under name, copies the
// payload into the staging directory, as a front end's upload would leave
// it, and returns its path and piece CID v2.
func (h *harness) stage(id chain.AllocationID, name string, n int, seed int64) (string, cid.Cid) {
	h.t.Helper()
	src, pc, size := h.directPiece(id, name, n, seed)
	v2, err := piece.V1ToV2(pc, uint64(n), size)
	if err != nil {
		h.t.Fatal(err)
	}
	return h.stageFile(src), v2
}

// stageFile copies src into the staging directory.
func (h *harness) stageFile(src string) string {
	h.t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := os.MkdirAll(h.cfg.StagingDir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	path := filepath.Join(h.cfg.StagingDir, "upload-"+filepath.Base(src))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		h.t.Fatal(err)
	}
	return path
}

// A front end reserves staging for a deal it receives; the reservation
// counts against the capacity with the deals' tags, and ImportDirect of
// the staged file turns it into the deal's tag in the transaction that
// records the deal. The market then owns the file: it removes it once the
// piece is in a sector.
func TestStagedDealTakesOverReservation(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.StagingCapacity = 3000 })
	h.start()
	ctx := context.Background()
	path, v2 := h.stage(31, "s.car", 1300, 31)

	if err := h.p.ReserveStaging(ctx, "mk20-a", 1300); err != nil {
		t.Fatal(err)
	}
	if err := h.p.ReserveStaging(ctx, "mk20-a", 1300); err != nil {
		t.Fatalf("reserving again under the same id: %v", err)
	}
	if n, held := reservations(t, h); n != 1 || held != 1300 {
		t.Fatalf("%d reservations holding %d bytes, want 1 of 1300", n, held)
	}
	// What is reserved is not free: neither for another reservation nor
	// for a deal.
	if err := h.p.ReserveStaging(ctx, "mk20-b", 1800); !errors.Is(err, ErrStagingFull) {
		t.Fatalf("a reservation beyond the capacity: %v", err)
	}
	_, upc, usize := h.directPiece(32, "u.car", 1800, 32)
	uv2, _ := piece.V1ToV2(upc, 1800, usize)
	if _, err := h.p.ImportDirect(ctx, DirectDeal{Client: h.clientID, AllocationID: 32, PieceCID: uv2, Data: DirectData{Upload: true}}); !errors.Is(err, ErrDirectDealRejected) ||
		!strings.Contains(err.Error(), "staging space") {
		t.Fatalf("a deal beyond the capacity left by a reservation: %v", err)
	}

	// The piece waits at AddPiece, which releases the deal's tags, while
	// the hand-off is checked.
	hold := make(chan struct{})
	h.sealer.mu.Lock()
	h.sealer.hold = hold
	h.sealer.mu.Unlock()
	info, err := h.p.ImportDirect(ctx, DirectDeal{Client: h.clientID, AllocationID: 31, PieceCID: v2,
		Data: DirectData{Staged: path}, Reservation: "mk20-a"})
	if err != nil {
		t.Fatal(err)
	}
	if n, held := reservations(t, h); n != 0 || held != 1300 {
		t.Fatalf("after the hand-off: %d reservations, %d bytes held; want the deal's 1300 alone", n, held)
	}
	if _, s := tagCounts(t, h); s != 1 {
		t.Fatalf("%d staging tags, want the deal's", s)
	}
	close(hold)
	d := h.waitFor(uuid.MustParse(info.UUID), complete, Complete)
	if d.BytesReceived != 1300 || d.TransferSize != 1300 {
		t.Fatalf("complete staged deal: %+v", d)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the staged file is kept after the piece went to a sector: %v", err)
	}
	if _, held := reservations(t, h); held != 0 {
		t.Fatalf("%d bytes held after the piece is in a sector", held)
	}
}

// A hand-off whose reservation is gone (released by the front end, or
// never made) is refused and records nothing; a released reservation
// frees its bytes.
func TestStagedDealRefusals(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.StagingCapacity = 2000 })
	h.start()
	ctx := context.Background()
	path, v2 := h.stage(41, "r.car", 1000, 41)
	if err := h.p.ReserveStaging(ctx, "gone", 1000); err != nil {
		t.Fatal(err)
	}
	if err := h.p.ReleaseStaging(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := h.p.ReleaseStaging(ctx, "gone"); err != nil {
		t.Fatalf("releasing twice: %v", err)
	}
	if err := h.p.ReserveStaging(ctx, "big", 2000); err != nil {
		t.Fatalf("the released bytes are still held: %v", err)
	}
	if ids, err := h.p.StagingReservations(ctx); err != nil || len(ids) != 1 || ids[0] != "big" {
		t.Fatalf("reservations %v, %v", ids, err)
	}
	elsewhere := filepath.Join(t.TempDir(), "r.car")
	b, _ := os.ReadFile(path)
	os.WriteFile(elsewhere, b, 0o644)
	pc, _, _, _ := piece.ParseAnyCID(v2)
	// CheckDirect, before the file is there, refuses only what does not
	// depend on it.
	for _, c := range []struct {
		name  string
		dd    DirectDeal
		want  string
		check bool
	}{
		{"reservation gone", DirectDeal{Data: DirectData{Staged: path}, Reservation: "gone"}, "reservation gone is gone", false},
		{"outside staging", DirectDeal{Data: DirectData{Staged: elsewhere}}, "not in the staging directory", false},
		{"no file", DirectDeal{Data: DirectData{Staged: path + ".x"}}, "reading the staged file", false},
		{"v1 piece CID", DirectDeal{PieceCID: pc, Data: DirectData{Staged: path}}, "needs a piece CID v2", false},
		{"duration under TermMin", DirectDeal{Duration: MinDealDuration - 1, Data: DirectData{Staged: path}}, "outside allocation 41's terms", true},
	} {
		dd := c.dd
		dd.Client, dd.AllocationID = h.clientID, 41
		if !dd.PieceCID.Defined() {
			dd.PieceCID = v2
		}
		if err := h.p.CheckDirect(ctx, dd); c.check != (err != nil) || (c.check && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: CheckDirect: %v (want a refusal: %t)", c.name, err, c.check)
		}
		if _, err := h.p.ImportDirect(ctx, dd); !errors.Is(err, ErrDirectDealRejected) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a rejection containing %q", c.name, err, c.want)
		}
	}
	if ds := mustDeals(t, h); len(ds) != 0 {
		t.Fatalf("refusals recorded deals: %+v", ds)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("a refused hand-off touched the staged file: %v", err)
	}
}

// CheckDirect makes ImportDirect's checks, the recorded deals' included,
// and records nothing; a Duration within the allocation's terms sets the
// deal's end.
func TestCheckDirect(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	h.start()
	ctx := context.Background()
	path, pc, _ := h.directPiece(51, "c.car", 1000, 51)
	dd := DirectDeal{Client: h.clientID, AllocationID: 51, PieceCID: pc, Data: DirectData{HTTP: &transfer.Request{URL: "http://fake.example/c.car", Size: 1000}}}
	if err := h.p.CheckDirect(ctx, dd); err != nil {
		t.Fatal(err)
	}
	if ds := mustDeals(t, h); len(ds) != 0 {
		t.Fatalf("CheckDirect recorded %+v", ds)
	}
	info, err := h.importFile(51, pc, path, func(d *DirectDeal) { d.Duration = MinDealDuration + 1000 })
	if err != nil {
		t.Fatal(err)
	}
	if info.EndEpoch != info.StartEpoch+int64(MinDealDuration)+1000 {
		t.Fatalf("epochs %d to %d, want a duration of TermMin + 1000", info.StartEpoch, info.EndEpoch)
	}
	if err := h.p.CheckDirect(ctx, dd); !errors.Is(err, ErrDirectDealRejected) || !strings.Contains(err.Error(), "already claims allocation 51") {
		t.Fatalf("CheckDirect of an allocation a deal claims: %v", err)
	}
	dd.AllocationID = 52
	if err := h.p.CheckDirect(ctx, dd); !errors.Is(err, ErrDirectDealRejected) || !strings.Contains(err.Error(), "has no allocation 52") {
		t.Fatalf("CheckDirect of a missing allocation: %v", err)
	}
}
