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
)

const (
	crashDirEnv = "FERRY_MARKET_CRASH_DIR"
	crashAtEnv  = "FERRY_MARKET_CRASH_AT"
)

// TestCrashChild is the process the crash test kills: it runs a provider in
// the directory given by the environment, proposes one deal on its first
// run, SIGKILLs itself when the named checkpoint is persisted, and otherwise
// waits for the deal to complete.
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
	h.start()
	ctx := context.Background()
	deals, err := h.p.Deals(ctx, DealFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(deals) == 0 {
		params := h.deal("crash.car", 3000, 42, nil)
		if r := h.p.Propose(ctx, params, "crash-test"); !r.Accepted {
			t.Fatal(r.Message)
		}
		deals, _ = h.p.Deals(ctx, DealFilter{})
	}
	id := uuid.MustParse(deals[0].UUID)
	h.waitFor(id, complete, Complete)
}

// TestCrashAtEachCheckpoint kills a provider at every checkpoint and
// restarts it over the same directory: the deal completes with exactly one
// publish message and one piece write.
func TestCrashAtEachCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	points := []string{Accepted.String(), Transferred.String(), Published.String(), "MessageRecorded", "MessagePushed", "PublishSent",
		PublishConfirmed.String(), AddedPiece.String(), IndexedAndAnnounced.String()}
	for _, at := range points {
		t.Run(at, func(t *testing.T) {
			dir := t.TempDir()
			run := func(crashAt string) error {
				dbtest.Source(t, dir) // the database outlives the children, and goes with t
				cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
				cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashAtEnv+"="+crashAt)
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
			readJSON(t, filepath.Join(dir, "fakechain.json"), &cs)
			msgs := 0
			for _, m := range cs.Msgs {
				if m.Method == 4 {
					msgs++
				}
			}
			if msgs != 1 {
				t.Fatalf("%d publish messages on chain, want 1", msgs)
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
