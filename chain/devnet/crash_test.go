package devnet

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/big"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/wallet"
)

// crashChildEnv makes the test binary act as the process that gets killed.
const crashChildEnv = "FERRY_DEVNET_CRASH_CHILD"

// TestCrashChild is the child side of TestKillDuringBlockProduction: it runs
// a devnet producing blocks with messages as fast as it can until killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("only run as the child of TestKillDuringBlockProduction")
	}
	w, err := wallet.Open(dir + "/wallet")
	if err != nil {
		t.Fatal(err)
	}
	d, err := Open(context.Background(), Config{Dir: dir + "/devnet", BlockTime: -1, Wallet: w})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	to, _ := w.New(wallet.TypeSecp256k1)
	// Ready once a block is on disk, so that the parent's check that the
	// chain grew does not depend on how fast this process runs.
	for first := true; ; first = false {
		for i := 0; i < 20; i++ {
			if _, err := d.MpoolPushMessage(ctx, &chain.Message{From: d.GenesisAddress(), To: to, Value: big.NewInt(1)}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := d.Mine(ctx); err != nil {
			t.Fatal(err)
		}
		if first {
			os.WriteFile(dir+"/ready", nil, 0o600)
		}
	}
}

func TestKillDuringBlockProduction(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := os.Stat(dir + "/ready"); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(150+100*round) * time.Millisecond)
		cmd.Process.Kill() // SIGKILL, mid-block most likely
		cmd.Wait()
		os.Remove(dir + "/ready")

		w, err := wallet.Open(dir + "/wallet")
		if err != nil {
			t.Fatal(err)
		}
		d, err := Open(context.Background(), Config{Dir: dir + "/devnet", BlockTime: -1, Wallet: w})
		if err != nil {
			t.Fatalf("reopening after kill -9: %v", err)
		}
		ctx := context.Background()
		head, _ := d.ChainHead(ctx)
		if head.Height() < 1 {
			t.Fatalf("round %d: head %d: the child produced no block", round, head.Height())
		}
		// The chain is whole: every block links to its parent.
		for h := head.Height(); h > 0 && h > head.Height()-50; h-- {
			ts, err := d.ChainGetTipSetByHeight(ctx, h, chain.EmptyTSK)
			if err != nil {
				t.Fatal(err)
			}
			prev, err := d.ChainGetTipSetByHeight(ctx, h-1, chain.EmptyTSK)
			if err != nil {
				t.Fatal(err)
			}
			if ts.Parents() != prev.Key() {
				t.Fatalf("block %d does not link to block %d", h, h-1)
			}
		}
		// No funds were made or lost, and the chain goes on.
		d.mu.RLock()
		total := d.st.totalBalance()
		d.mu.RUnlock()
		if want := big.Add(GenesisBalance, rootBalance); !total.Equals(want) {
			t.Fatalf("total balance %s after the kill, want %s", total, want)
		}
		if _, err := d.Mine(ctx); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
