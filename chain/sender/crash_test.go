package sender

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/google/uuid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/devnet"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/wallet"
)

const (
	crashDirEnv  = "FERRY_SENDER_CRASH_DIR"
	crashPathEnv = "FERRY_SENDER_CRASH_PATH" // "local" or "node"
	crashAtEnv   = "FERRY_SENDER_CRASH_AT"   // a Step, or empty
)

// The message every run of the crash child sends.
var (
	crashID    = uuid.MustParse("6d1c3e8e-2f4b-4d0a-9c57-5b1f0d7c2a11")
	crashValue = big.NewInt(4242)
)

// crashWorld is what the child and the parent share: the devnet, wallet
// and database in one directory, a funded key and a recipient.
type crashWorld struct {
	d        *devnet.Devnet
	w        *wallet.Wallet
	from, to address.Address
}

func openCrashWorld(t *testing.T, ctx context.Context, dir string) *crashWorld {
	t.Helper()
	w, err := wallet.Open(filepath.Join(dir, "keystore"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := devnet.Open(ctx, devnet.Config{Dir: filepath.Join(dir, "devnet"), BlockTime: 5 * time.Millisecond, Wallet: w, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	cw := &crashWorld{d: d, w: w}
	keys, err := w.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k != d.GenesisAddress() {
			cw.from = k
		}
	}
	if cw.to, err = address.NewIDAddress(99); err != nil { // the burnt funds actor: anything will do
		t.Fatal(err)
	}
	return cw
}

// TestCrashChild is the process TestCrashAtEachStep kills: it sends
// crashID (funding a sending key on its first run), SIGKILLs itself at the
// Step named in the environment, and otherwise waits for the message.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestCrashAtEachStep")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cw := openCrashWorld(t, ctx, dir)
	if cw.from == address.Undef {
		from, err := cw.w.New(wallet.TypeBLS)
		if err != nil {
			t.Fatal(err)
		}
		c, err := cw.d.Send(ctx, cw.d.GenesisAddress(), from, chain.FIL(10))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cw.d.StateWaitMsg(ctx, c, 0, -1, false); err != nil {
			t.Fatal(err)
		}
		cw.from = from
	}
	sqldb, err := db.Open(ctx, filepath.Join(dir, "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	cfg := Config{DB: sqldb, Node: cw.d, From: cw.from, Logf: t.Logf, OnStep: func(_ uuid.UUID, st Step) {
		if string(st) == os.Getenv(crashAtEnv) {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal arrives
		}
	}}
	if os.Getenv(crashPathEnv) == "local" {
		cfg.Keys = cw.w
	}
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, crashID, &chain.Message{From: cw.from, To: cw.to, Value: crashValue}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Wait(ctx, crashID, 1); err != nil {
		t.Fatal(err)
	}
}

// TestCrashAtEachStep kills a sender between recording a message and
// pushing it, and between the push and recording its result, on both
// signing paths; sent again under its id after the restart, the message
// executes exactly once.
func TestCrashAtEachStep(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	for _, path := range []string{"local", "node"} {
		for _, at := range []Step{StepRecorded, StepPushed} {
			t.Run(path+"/"+string(at), func(t *testing.T) {
				dir := t.TempDir()
				run := func(crashAt Step) error {
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
					cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashPathEnv+"="+path, crashAtEnv+"="+string(crashAt))
					out, err := cmd.CombinedOutput()
					if err != nil {
						t.Logf("child (crash at %q) output:\n%s", crashAt, out)
					}
					return err
				}
				err := run(at)
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("first run was not killed at %s: %v", at, err)
				}
				if err := run(""); err != nil {
					t.Fatalf("restarted sender did not see its message executed: %v", err)
				}

				ctx := context.Background()
				cw := openCrashWorld(t, ctx, dir)
				act, err := cw.d.StateGetActor(ctx, cw.from, chain.EmptyTSK)
				if err != nil {
					t.Fatal(err)
				}
				if act.Nonce != 1 {
					t.Fatalf("the sending key's nonce is %d: %d messages executed, want 1", act.Nonce, act.Nonce)
				}
				bal, err := cw.d.WalletBalance(ctx, cw.to)
				if err != nil {
					t.Fatal(err)
				}
				if !bal.GreaterThanEqual(crashValue) {
					t.Fatalf("the recipient got %s, less than the message's %s", bal, crashValue)
				}
				sqldb, err := db.Open(ctx, filepath.Join(dir, "ferry.db"))
				if err != nil {
					t.Fatal(err)
				}
				defer sqldb.Close()
				r, err := (&store{db: sqldb}).get(ctx, crashID)
				if err != nil || r == nil || r.state != stateExecuted {
					t.Fatalf("record after the run: %+v, %v", r, err)
				}
				l, err := cw.d.StateSearchMsg(ctx, chain.EmptyTSK, r.cid, -1, false)
				if err != nil || l == nil || l.Receipt.ExitCode != exitcode.Ok {
					t.Fatalf("the recorded message %s: %+v, %v", r.cid, l, err)
				}
			})
		}
	}
}
