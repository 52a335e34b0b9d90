package market

import (
	"github.com/ferry-fil/ferry/db/dbtest"

	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/piece"
)

const (
	crashDirEnv  = "FERRY_MARKET_CRASH_DIR"
	crashAtEnv   = "FERRY_MARKET_CRASH_AT"
	crashKindEnv = "FERRY_MARKET_CRASH_KIND"
)

// TestCrashChild is the process the crash test kills: it runs a provider in
// the directory given by the environment, proposes one deal (or imports a
// direct deal, when the kind is KindDirect) on its first run, SIGKILLs
// itself when the named checkpoint is persisted, and otherwise waits for
// the deal to complete.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestCrashAtEachCheckpoint")
	}
	at := os.Getenv(crashAtEnv)
	h := newHarness(t, dir, func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	h.deps.Logf = func(string, ...any) {}
	h.deps.OnCheckpoint = func(_ uuid.UUID, cp string) {
		if cp == at {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal arrives
		}
	}
	kind := os.Getenv(crashKindEnv)
	staged := kind == crashStaged
	direct := DealKind(kind) == KindDirect || staged
	var path string
	var pc cid.Cid
	if direct {
		// The fake chain forgets its allocations with the process. The
		// file is written again before the provider starts, not while a
		// resumed deal reads it.
		path, pc, _ = h.directPiece(42, "crash.car", 1500, 42)
	}
	h.start()
	ctx := context.Background()
	deals, err := h.p.Deals(ctx, DealFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(deals) == 0 {
		switch {
		case staged:
			// A front end's upload: reserved, received into staging,
			// handed over with its reservation.
			v2, err := piece.V1ToV2(pc, 1500, 2048)
			if err != nil {
				t.Fatal(err)
			}
			if err := h.p.ReserveStaging(ctx, "crash-upload", 1500); err != nil {
				t.Fatal(err)
			}
			if _, err := h.p.ImportDirect(ctx, DirectDeal{Client: h.clientID, AllocationID: 42, PieceCID: v2,
				Data: DirectData{Staged: h.stageFile(path)}, Reservation: "crash-upload"}); err != nil {
				t.Fatal(err)
			}
		case direct:
			if _, err := h.importFile(42, pc, path, nil); err != nil {
				t.Fatal(err)
			}
		default:
			params := h.deal("crash.car", 3000, 42, nil)
			if r := h.p.Propose(ctx, params, "crash-test"); !r.Accepted {
				t.Fatal(r.Message)
			}
		}
		deals, _ = h.p.Deals(ctx, DealFilter{})
	}
	id := uuid.MustParse(deals[0].UUID)
	h.waitFor(id, complete, Complete)
	if staged {
		// Nothing held or left behind, whatever the crash interrupted.
		if n, held := reservations(t, h); n != 0 || held != 0 {
			t.Fatalf("%d reservations and %d staging bytes held after the deal completed", n, held)
		}
		if left, _ := os.ReadDir(h.cfg.StagingDir); len(left) != 0 {
			t.Fatalf("staging holds %d files after the deal completed", len(left))
		}
	}
}

// TestCrashAtEachCheckpoint kills a provider at every checkpoint and
// restarts it over the same directory: the deal completes with exactly one
// publish message and one piece write.
func TestCrashAtEachCheckpoint(t *testing.T) {
	points := []string{Accepted.String(), Transferred.String(), Published.String(), "MessageRecorded", "MessagePushed", "PublishSent",
		PublishConfirmed.String(), AddedPiece.String(), IndexedAndAnnounced.String()}
	crashAtEach(t, string(KindMarket), points, 1)
}

// TestCrashDirectAtEachCheckpoint kills a provider at every checkpoint of
// a direct deal: it completes with one piece write, one claim and no
// publish message.
func TestCrashDirectAtEachCheckpoint(t *testing.T) {
	points := []string{Accepted.String(), Transferred.String(), AddedPiece.String(), IndexedAndAnnounced.String()}
	crashAtEach(t, string(KindDirect), points, 0)
}

// crashStaged is the crash child's kind for a direct deal whose data a
// front end received into staging under a reservation.
const crashStaged = "staged"

// TestCrashStagedAtEachCheckpoint kills a provider at every checkpoint of
// a direct deal a front end handed over with its staged file and
// reservation: it completes with one piece write and one claim, and no
// staging bytes or file are left.
func TestCrashStagedAtEachCheckpoint(t *testing.T) {
	points := []string{Accepted.String(), Transferred.String(), AddedPiece.String(), IndexedAndAnnounced.String()}
	crashAtEach(t, crashStaged, points, 0)
}

// crashAtEach runs the crash child of a deal of kind, killed at each
// point, then again to completion, and checks the publish messages and
// piece writes (and claims) the deal made.
func crashAtEach(t *testing.T, kind string, points []string, publishes int) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	for _, at := range points {
		t.Run(at, func(t *testing.T) {
			dir := t.TempDir()
			run := func(crashAt string) error {
				dbtest.Source(t, dir) // the database outlives the children, and goes with t
				cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
				cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashAtEnv+"="+crashAt, crashKindEnv+"="+kind)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				done := make(chan error, 1)
				out, _ := os.CreateTemp(dir, "child-*.log")
				cmd.Stdout, cmd.Stderr = out, out
				if err := cmd.Start(); err != nil {
					return err
				}
				go func() { done <- cmd.Wait() }()
				select {
				case err := <-done:
					if err != nil {
						b, _ := os.ReadFile(out.Name())
						t.Logf("child (crash at %q) output:\n%s", crashAt, b)
					}
					return err
				case <-ctx.Done():
					_ = cmd.Process.Kill()
					<-done
					return errors.New("child timed out")
				}
			}
			err := run(at)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("first run was not killed at %s: %v", at, err)
			}
			if err := run(""); err != nil {
				t.Fatalf("restarted provider did not complete the deal: %v", err)
			}

			var cs fakeChainState
			if publishes > 0 { // the fake chain saves its state when a message is pushed
				readJSON(t, filepath.Join(dir, "fakechain.json"), &cs)
			} else if _, err := os.Stat(filepath.Join(dir, "fakechain.json")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a message was pushed: %v", err)
			}
			msgs := 0
			for _, m := range cs.Msgs {
				if m.Method == 4 {
					msgs++
				}
			}
			if msgs != publishes {
				t.Fatalf("%d publish messages on chain, want %d", msgs, publishes)
			}
			var ss fakeSealerState
			readJSON(t, filepath.Join(dir, "fakesealer.json"), &ss)
			if len(ss.Writes) != 1 {
				t.Fatalf("%d deals written by the sealer", len(ss.Writes))
			}
			for id, n := range ss.Writes {
				if n != 1 {
					t.Fatalf("deal %s written %d times", id, n)
				}
			}
			if DealKind(kind) != KindMarket && len(ss.Claims) != 1 {
				t.Fatalf("%d claims, want 1: %+v", len(ss.Claims), ss.Claims)
			}
		})
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
