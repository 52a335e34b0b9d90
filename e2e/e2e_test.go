// Package e2e runs Ferry the way its README tells people to: ferryd and
// ferry as separate processes, a devnet with fast blocks, and the client
// commands of the quick start, from a folder of files to a proven deal and
// back.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/lotus"
)

// binaries builds ferryd and ferry once for the package's tests.
func binaries(t *testing.T) (ferryd, ferry string) {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"ferryd", "ferry"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), "../cmd/"+name)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", name, err, out)
		}
	}
	return filepath.Join(dir, "ferryd"), filepath.Join(dir, "ferry")
}

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// env is a provider repo, a client repo and the ports between them.
type env struct {
	t             *testing.T
	ferryd, ferry string
	repo, client  string
	chainPort     int
	daemon        *exec.Cmd
	daemonLog     *bytes.Buffer
	apiInfo       string
	retrievalPort int
}

func newEnv(t *testing.T) *env {
	ferryd, ferry := binaries(t)
	e := &env{t: t, ferryd: ferryd, ferry: ferry, repo: t.TempDir(), client: t.TempDir()}
	e.chainPort = freePort(t)
	e.retrievalPort = freePort(t)
	cfg := fmt.Sprintf(`
[Chain]
DevnetBlockTime = "200ms"
DevnetListen = "127.0.0.1:%d"
[Libp2p]
ListenAddresses = ["/ip4/127.0.0.1/tcp/%d"]
[HTTP]
Listen = "127.0.0.1:%d"
[API]
Listen = "127.0.0.1:%d"
[Sealing]
WaitDealsDelay = "3s"
[Market]
PublishMsgPeriod = "2s"
`, e.chainPort, freePort(t), e.retrievalPort, freePort(t))
	if err := os.WriteFile(filepath.Join(e.repo, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// start runs `ferryd run` and waits until its API answers.
func (e *env) start() {
	t := e.t
	e.daemonLog = new(bytes.Buffer)
	e.daemon = exec.Command(e.ferryd, "--repo", e.repo, "run")
	e.daemon.Stdout, e.daemon.Stderr = e.daemonLog, e.daemonLog
	if err := e.daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.stop() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(e.repo, "api")); err == nil {
			if _, err := e.run(e.ferryd, "--repo", e.repo, "info"); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ferryd did not come up in 60s:\n%s", e.daemonLog)
		}
		time.Sleep(200 * time.Millisecond)
	}
	token, err := os.ReadFile(filepath.Join(e.repo, "token"))
	if err != nil {
		t.Fatal(err)
	}
	e.apiInfo = fmt.Sprintf("%s:/ip4/127.0.0.1/tcp/%d/http", token, e.chainPort)
}

func (e *env) stop() {
	if e.daemon == nil || e.daemon.Process == nil {
		return
	}
	e.daemon.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { e.daemon.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		e.daemon.Process.Kill()
		<-done
		e.t.Errorf("ferryd did not stop within 20s of SIGINT")
	}
	e.daemon = nil
}

// run runs a command with the client's environment and returns stdout.
func (e *env) run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "FERRY_CLIENT_REPO="+e.client, "FERRY_REPO="+e.repo)
	if e.apiInfo != "" {
		cmd.Env = append(cmd.Env, "FULLNODE_API_INFO="+e.apiInfo)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v\n%s%s", filepath.Base(name), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// must runs a command and fails the test when it fails.
func (e *env) must(name string, args ...string) string {
	e.t.Helper()
	out, err := e.run(name, args...)
	if err != nil {
		e.t.Fatalf("%v\nferryd log:\n%s", err, e.daemonLog)
	}
	return out
}

// TestQuickStart is the README's quick start: fund a client, make a CAR of
// a folder, make a deal served by the client itself, watch it to Complete,
// and check the chain and the sector agree.
func TestQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	e := newEnv(t)
	e.start()

	// A folder of files.
	data := t.TempDir()
	big := make([]byte, 3<<20+12345)
	rand.Read(big)
	os.WriteFile(filepath.Join(data, "big.bin"), big, 0o644)
	os.WriteFile(filepath.Join(data, "hello.txt"), []byte("hello, ferry\n"), 0o644)

	var info struct{ Miner string }
	if err := json.Unmarshal([]byte(e.must(e.ferryd, "--repo", e.repo, "info", "--json")), &info); err != nil {
		t.Fatal(err)
	}

	e.must(e.ferry, "init")
	addr := strings.TrimSpace(e.must(e.ferry, "wallet", "default"))
	e.must(e.ferry, "devnet", "fund", addr, "100")
	e.must(e.ferry, "market", "add-balance", "10")
	carPath := filepath.Join(t.TempDir(), "data.car")
	root := strings.TrimSpace(e.must(e.ferry, "car", "create", data, "-o", carPath))

	out := e.must(e.ferry, "deal", "--provider", info.Miner, carPath, "--serve", "--json")
	var deal struct {
		DealUUID string
		PieceCID string
	}
	if err := json.Unmarshal([]byte(lastJSON(out)), &deal); err != nil {
		t.Fatalf("reading ferry deal --json output %q: %v", out, err)
	}
	if deal.DealUUID == "" || deal.PieceCID == "" {
		t.Fatalf("ferry deal --json gave %q", out)
	}
	e.must(e.ferry, "deal-status", "--provider", info.Miner, "--deal-uuid", deal.DealUUID, "--watch")

	// The provider's view.
	var shown struct {
		Checkpoint  string
		ChainDealID uint64
		Sector      *uint64
		PieceCID    string
	}
	if err := json.Unmarshal([]byte(e.must(e.ferryd, "--repo", e.repo, "deal", "show", deal.DealUUID, "--json")), &shown); err != nil {
		t.Fatal(err)
	}
	if shown.Checkpoint != "Complete" || shown.Sector == nil || shown.PieceCID != deal.PieceCID {
		t.Fatalf("provider shows the deal as %+v", shown)
	}
	var sector struct{ State string }
	if err := json.Unmarshal([]byte(e.must(e.ferryd, "--repo", e.repo, "sectors", "status", fmt.Sprint(*shown.Sector), "--json")), &sector); err != nil {
		t.Fatal(err)
	}
	if sector.State != "Proving" {
		t.Fatalf("sector %d is %s, want Proving", *shown.Sector, sector.State)
	}

	// The chain's view, through Lotus' API.
	ctx := context.Background()
	url, token, err := lotus.ParseAPIInfo(e.apiInfo)
	if err != nil {
		t.Fatal(err)
	}
	node, closer, err := lotus.Dial(ctx, url, token)
	if err != nil {
		t.Fatal(err)
	}
	defer closer()
	md, err := node.StateMarketStorageDeal(ctx, abi.DealID(shown.ChainDealID), chain.EmptyTSK)
	if err != nil {
		t.Fatalf("reading chain deal %d: %v", shown.ChainDealID, err)
	}
	if md.State.SectorStartEpoch <= 0 {
		t.Fatalf("chain deal %d is not active: %+v", shown.ChainDealID, md.State)
	}
	if md.Proposal.PieceCID.String() != deal.PieceCID {
		t.Fatalf("chain deal %d has piece %s, want %s", shown.ChainDealID, md.Proposal.PieceCID, deal.PieceCID)
	}
	if label, err := md.Proposal.Label.ToString(); err != nil || label != root {
		t.Fatalf("chain deal %d has label %q (%v), want the payload CID %s", shown.ChainDealID, label, err, root)
	}
	client, _ := address.NewFromString(addr)
	if ka, err := node.StateAccountKey(ctx, md.Proposal.Client, chain.EmptyTSK); err != nil || ka != client {
		t.Fatalf("chain deal client %s resolves to %s (%v), want %s", md.Proposal.Client, ka, err, client)
	}
}

// lastJSON returns the last top-level JSON object in out.
func lastJSON(out string) string {
	i := strings.LastIndex(out, "\n{")
	if i < 0 {
		return out
	}
	return out[i+1:]
}
