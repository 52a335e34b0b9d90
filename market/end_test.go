package market

import (
	"github.com/ferry-fil/ferry/db/dbtest"

	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"

	"github.com/ferry-fil/ferry/wire"
)

// completeDeal proposes a deal and waits for it to be Complete.
func (h *harness) completeDeal(params *wire.DealParams) *DealInfo {
	h.t.Helper()
	if r := h.p.Propose(context.Background(), params, "peerA"); !r.Accepted {
		h.t.Fatalf("rejected: %s", r.Message)
	}
	return h.waitFor(params.DealUUID, complete, Complete)
}

// waitRemovals waits until the indexer was asked n removals.
func (h *harness) waitRemovals(n int) []RemoveRequest {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if rs := h.idx.removed(); len(rs) >= n {
			return rs
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("%d piece removals, want %d", len(h.idx.removed()), n)
	return nil
}

func ended(reason string) func(*DealInfo) bool {
	return func(d *DealInfo) bool { return d.Ended != "" && (reason == "" || d.Ended == reason) }
}

func endEpoch(p *wire.DealParams) abi.ChainEpoch { return p.ClientDealProposal.Proposal.EndEpoch }

func TestDealEndExpired(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	h.start()
	ctx := context.Background()
	a := h.deal("a.car", 1500, 1, nil)
	b := h.deal("b.car", 1200, 2, func(p *market.DealProposal, _ *wire.DealParams) { p.EndEpoch += 10 })
	h.completeDeal(a)
	h.completeDeal(b)

	h.fc.setHeight(endEpoch(a) - 1)
	time.Sleep(20 * h.cfg.PollInterval) // passes that must not end anything
	if rs := h.idx.removed(); len(rs) != 0 {
		t.Fatalf("removals before the end epoch: %+v", rs)
	}
	h.fc.setHeight(endEpoch(a))
	d := h.waitFor(a.DealUUID, ended(EndExpired), "expired")
	if d.Checkpoint != Complete || d.EndedAt == nil {
		t.Fatalf("ended deal: %+v", d)
	}
	rs := h.waitRemovals(1)
	h.waitReleased(a.DealUUID) // the release is recorded, with its log, after the removal
	r := rs[0]
	if r.DealUUID != a.DealUUID || !r.PieceCID.Equals(a.ClientDealProposal.Proposal.PieceCID) || r.EndReason != EndExpired ||
		r.KeepIndex || r.KeepAnnounced || r.ChainDealID != abi.DealID(d.ChainDealID) {
		t.Fatalf("removal request: %+v for deal %+v", r, d)
	}
	if bi, _ := h.p.Deal(ctx, b.DealUUID); bi.Ended != "" {
		t.Fatalf("deal b ended with a: %+v", bi.DealInfo)
	}
	detail, err := h.p.Deal(ctx, a.DealUUID)
	if err != nil {
		t.Fatal(err)
	}
	if !hasLog(detail, "deal ended on chain: expired") || !hasLog(detail, "piece removed from the index and IPNI") {
		t.Fatalf("deal log lacks the end: %+v", detail.Logs)
	}

	// After a restart, the ended deal is neither ended nor removed again:
	// b's removal comes from a pass that saw a as well.
	h.p.Close()
	h.start()
	h.fc.setHeight(endEpoch(b) + 5)
	h.waitFor(b.DealUUID, ended(EndExpired), "expired")
	rs = h.waitRemovals(2)
	if len(rs) != 2 || rs[1].DealUUID != b.DealUUID {
		t.Fatalf("removals after restart: %+v", rs)
	}
	detail, _ = h.p.Deal(ctx, a.DealUUID)
	if n := countLogs(detail, "deal ended on chain"); n != 1 {
		t.Fatalf("deal a's end logged %d times", n)
	}
}

func TestDealEndSharedPiece(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	h.start()
	// Three deals of the same data, ending one epoch apart; the last one
	// skipped the IPNI announcement.
	var deals []*wire.DealParams
	for i := 0; i < 3; i++ {
		params := h.deal("same.car", 1500, 7, func(p *market.DealProposal, w *wire.DealParams) {
			p.EndEpoch += abi.ChainEpoch(i)
			w.SkipIPNIAnnounce = i == 2
		})
		h.completeDeal(params)
		deals = append(deals, params)
	}
	if !deals[0].ClientDealProposal.Proposal.PieceCID.Equals(deals[2].ClientDealProposal.Proposal.PieceCID) {
		t.Fatal("the deals do not share their piece")
	}
	want := []struct{ keepIndex, keepAnnounced bool }{{true, true}, {true, false}, {false, false}}
	for i, params := range deals {
		h.fc.setHeight(endEpoch(params))
		h.waitFor(params.DealUUID, ended(EndExpired), "expired")
		rs := h.waitRemovals(i + 1)
		if len(rs) != i+1 {
			t.Fatalf("after deal %d ended: %d removals", i, len(rs))
		}
		r := rs[i]
		if r.DealUUID != params.DealUUID || r.KeepIndex != want[i].keepIndex || r.KeepAnnounced != want[i].keepAnnounced ||
			r.SkipIPNIAnnounce != (i == 2) {
			t.Fatalf("removal %d: %+v, want keep index %t, keep announced %t", i, r, want[i].keepIndex, want[i].keepAnnounced)
		}
	}
}

func TestDealEndSlashedOrRemoved(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) {
		c.MaxDealsPerPublishMsg = 1
		c.DealEndCheckInterval = 30 * time.Millisecond
		c.EndChecksPerPass = 1 // one lookup a pass: the passes take turns
	})
	h.start()
	a := h.completeDeal(h.deal("a.car", 1500, 1, nil))
	b := h.completeDeal(h.deal("b.car", 1500, 2, nil))
	c := h.completeDeal(h.deal("c.car", 1500, 3, nil))

	h.fc.slash(abi.DealID(a.ChainDealID), 120)
	h.waitFor(uuid.MustParse(a.UUID), ended(EndSlashed), "slashed")
	h.fc.dropDeal(abi.DealID(b.ChainDealID))
	h.waitFor(uuid.MustParse(b.UUID), ended(EndRemoved), "removed")
	rs := h.waitRemovals(2)
	if len(rs) != 2 || rs[0].EndReason != EndSlashed || rs[1].EndReason != EndRemoved {
		t.Fatalf("removals: %+v", rs)
	}
	if ci, _ := h.p.Deal(context.Background(), uuid.MustParse(c.UUID)); ci.Ended != "" {
		t.Fatalf("untouched deal ended: %+v", ci.DealInfo)
	}
}

// A provider without a PieceRemover still records ends.
func TestDealEndWithoutRemover(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	h.deps.Indexer = nil
	h.start()
	params := h.deal("a.car", 1500, 1, nil)
	h.completeDeal(params)
	h.fc.setHeight(endEpoch(params) + 100)
	h.waitFor(params.DealUUID, ended(EndExpired), "expired")
	h.waitReleased(params.DealUUID)
}

func (h *harness) waitReleased(id uuid.UUID) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var released bool
		if err := h.deps.DB.QueryRow(`SELECT piece_released FROM market_deals WHERE uuid = ?`, id.String()).Scan(&released); err != nil {
			h.t.Fatal(err)
		}
		if released {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("deal %s's piece never released", id)
}

func hasLog(d *DealDetail, prefix string) bool { return countLogs(d, prefix) > 0 }

func countLogs(d *DealDetail, prefix string) int {
	n := 0
	for _, l := range d.Logs {
		if strings.HasPrefix(l.Text, prefix) {
			n++
		}
	}
	return n
}

// TestDealEndCrashChild is the process TestDealEndCrash kills: it completes
// one deal (first run), moves the chain past its end, SIGKILLs itself when
// the named step is persisted, and otherwise waits for the piece release.
// Removals are appended to removals.jsonl in the directory.
func TestDealEndCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestDealEndCrash")
	}
	at := os.Getenv(crashAtEnv)
	h := newHarness(t, dir, func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	h.idx.logPath = filepath.Join(dir, "removals.jsonl")
	h.deps.Logf = func(string, ...any) {}
	h.deps.OnCheckpoint = func(_ uuid.UUID, cp string) {
		if cp == at {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal arrives
		}
	}
	h.start()
	deals := mustDeals(t, h)
	if len(deals) == 0 {
		h.completeDeal(h.deal("end.car", 1500, 5, nil))
		deals = mustDeals(t, h)
	}
	id := uuid.MustParse(deals[0].UUID)
	h.waitFor(id, complete, Complete)
	h.fc.setHeight(abi.ChainEpoch(deals[0].EndEpoch))
	h.waitReleased(id)
}

// TestDealEndCrash kills the provider right after a deal's end is recorded
// and right after its piece is released: after a restart the indexer has
// been asked to remove the piece exactly once.
func TestDealEndCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	for _, at := range []string{"Ended", "PieceReleased"} {
		t.Run(at, func(t *testing.T) {
			dir := t.TempDir()
			err := runChild(t, dir, "TestDealEndCrashChild", at)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("first run was not killed at %s: %v", at, err)
			}
			if err := runChild(t, dir, "TestDealEndCrashChild", ""); err != nil {
				t.Fatalf("restarted provider did not release the piece: %v", err)
			}
			f, err := os.Open(filepath.Join(dir, "removals.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			n := 0
			for sc := bufio.NewScanner(f); sc.Scan(); {
				n++
			}
			if n != 1 {
				t.Fatalf("piece removed %d times, want 1", n)
			}
		})
	}
}

// runChild runs one test of this binary as a child process over dir.
func runChild(t *testing.T, dir, test, crashAt string) error {
	t.Helper()
	dbtest.Source(t, dir) // the database outlives the children, and goes with t
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashAtEnv+"="+crashAt)
	out, err := os.CreateTemp(dir, "child-*.log")
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	err = cmd.Run()
	if err != nil && crashAt == "" {
		b, _ := os.ReadFile(out.Name())
		t.Logf("child output:\n%s", b)
	}
	return err
}

// A deal failed after its piece reached a sector releases the piece as an
// ended deal does; one failed before that asks for nothing.
func TestFailedDealReleasesPiece(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	h.sealer.mu.Lock()
	h.sealer.state = "PreCommit1" // the deals wait for activation
	h.sealer.mu.Unlock()
	h.start()
	ctx := context.Background()

	a := h.deal("a.car", 1500, 1, nil)
	if r := h.p.Propose(ctx, a, "peerA"); !r.Accepted {
		t.Fatalf("rejected: %s", r.Message)
	}
	h.waitFor(a.DealUUID, func(d *DealInfo) bool { return d.Checkpoint == IndexedAndAnnounced }, IndexedAndAnnounced)

	h.dl.mu.Lock()
	h.dl.block = make(chan struct{}) // b stays in its transfer
	h.dl.mu.Unlock()
	b := h.deal("b.car", 1500, 2, nil)
	if r := h.p.Propose(ctx, b, "peerA"); !r.Accepted {
		t.Fatalf("rejected: %s", r.Message)
	}
	if err := h.p.Fail(ctx, b.DealUUID); err != nil {
		t.Fatal(err)
	}
	if err := h.p.Fail(ctx, a.DealUUID); err != nil {
		t.Fatal(err)
	}
	rs := h.waitRemovals(1)
	h.waitReleased(a.DealUUID)
	if r := rs[0]; r.DealUUID != a.DealUUID || r.EndReason != EndFailed || r.KeepIndex || r.KeepAnnounced {
		t.Fatalf("removal request: %+v", r)
	}
	detail, err := h.p.Deal(ctx, a.DealUUID)
	if err != nil {
		t.Fatal(err)
	}
	if detail.Ended != "" || !hasLog(detail, "piece removed from the index and IPNI") {
		t.Fatalf("failed deal: ended %q, logs %+v", detail.Ended, detail.Logs)
	}
	time.Sleep(20 * h.cfg.PollInterval) // passes that must not release again, nor b
	if rs := h.idx.removed(); len(rs) != 1 {
		t.Fatalf("removals: %+v", rs)
	}
	close(h.dl.block)
}

// The watcher's queries read indexes, not every deal.
func TestDealEndQueriesUseIndexes(t *testing.T) {
	if dbtest.OnPostgres() {
		t.Skip("the plans checked are SQLite's")
	}
	h := newHarness(t, t.TempDir(), nil)
	type queryOf func() (string, []any)
	for _, c := range []struct {
		query queryOf
		index string
	}{
		{func() (string, []any) { return expiredQuery(100) }, "market_deals_expiry"},
		{func() (string, []any) { return toCheckQuery(10) }, "market_deals_end_check"},
		{unreleasedQuery, "market_deals_unreleased"},
	} {
		q, args := c.query()
		rows, err := h.deps.DB.Query("EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if !strings.Contains(strings.Join(plan, "; "), c.index) {
			t.Errorf("query %q: plan %q does not use %s", q, plan, c.index)
		}
	}
}
