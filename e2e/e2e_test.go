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
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/lotus"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/internal/freeport"
)

// binaries builds ferryd and ferry once for the package's tests.
func binaries(t *testing.T) (ferryd, ferry string) {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "ferry-e2e-")
		for _, name := range []string{"ferryd", "ferry"} {
			if built.err != nil {
				return
			}
			cmd := exec.Command("go", "build", "-o", filepath.Join(built.dir, name), "../cmd/"+name)
			if out, err := cmd.CombinedOutput(); err != nil {
				built.err = fmt.Errorf("building %s: %v\n%s", name, err, out)
			}
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return filepath.Join(built.dir, "ferryd"), filepath.Join(built.dir, "ferry")
}

// built holds the binaries every test runs, linked once (13 s for the two
// on the CI VM) and removed when the tests end.
var built struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// ports hands out the loopback ports of the servers the tests start.
var ports freeport.Ports

// freePort returns a loopback port nobody listens on right now, for a
// ferryd to bind later (see package freeport).
func freePort(t *testing.T) int {
	t.Helper()
	p, err := ports.Get()
	if err != nil {
		t.Fatal(err)
	}
	return p
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
	extraEnv      []string // more of the commands' environment
	retrievalPort int
	apiPort       int
}

// newEnv makes the repos and the config of a devnet ferryd on free ports,
// with httpSettings (TOML lines) in its HTTP section.
func newEnv(t *testing.T, httpSettings ...string) *env {
	ferryd, ferry := binaries(t)
	e := &env{t: t, ferryd: ferryd, ferry: ferry, repo: t.TempDir(), client: t.TempDir()}
	e.chainPort = freePort(t)
	e.retrievalPort = freePort(t)
	e.apiPort = freePort(t)
	cfg := fmt.Sprintf(`
[Chain]
DevnetBlockTime = "200ms"
DevnetListen = "127.0.0.1:%d"
[Libp2p]
ListenAddresses = ["/ip4/127.0.0.1/tcp/%d"]
[HTTP]
Listen = "127.0.0.1:%d"
%s
[API]
Listen = "127.0.0.1:%d"
[Sealing]
WaitDealsDelay = "3s"
MinerAPIListen = "127.0.0.1:0" # several ferryds on one machine
[Market]
PublishMsgPeriod = "2s"
`, e.chainPort, freePort(t), e.retrievalPort, strings.Join(httpSettings, "\n"), e.apiPort)
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
	// If the test binary dies (a timeout panic), the daemon dies with it
	// instead of holding its ports.
	e.daemon.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
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
	// The chain token a devnet ferryd gives clients (read and write).
	token, err := os.ReadFile(filepath.Join(e.repo, client.DevnetTokenFile))
	if errors.Is(err, os.ErrNotExist) {
		return // a ferryd on a Lotus node: the test names the chain
	}
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
	cmd.Env = append(cmd.Env, e.extraEnv...)
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
	t.Parallel() // most of an end-to-end test is waiting for blocks
	e := newEnv(t)
	e.start()

	// A folder of files.
	data := t.TempDir()
	big := make([]byte, 3<<20+12345)
	rand.Read(big)
	os.WriteFile(filepath.Join(data, "big.bin"), big, 0o644)
	os.WriteFile(filepath.Join(data, "hello.txt"), []byte("hello, ferry\n"), 0o644)

	miner, addr := e.fundClient()
	carPath := filepath.Join(t.TempDir(), "data.car")
	root := strings.TrimSpace(e.must(e.ferry, "car", "create", data, "-o", carPath))

	out := e.must(e.ferry, "deal", "--provider", miner, carPath, "--serve", "--json")
	var deal proposedDeal
	if err := json.Unmarshal([]byte(lastJSON(out)), &deal); err != nil {
		t.Fatalf("reading ferry deal --json output %q: %v", out, err)
	}
	if deal.DealUUID == "" || deal.PieceCID == "" {
		t.Fatalf("ferry deal --json gave %q", out)
	}
	e.must(e.ferry, "deal-status", "--provider", miner, "--deal-uuid", deal.DealUUID, "--watch")

	// The provider's view. ferry proposed over HTTP (Curio's mk12 route
	// at the miner's HTTP address), so no libp2p peer is named.
	shown := e.checkComplete(deal.DealUUID, deal.PieceCID)
	if shown.ClientPeer != "" {
		t.Fatalf("the deal was proposed over libp2p (peer %s), not over HTTP", shown.ClientPeer)
	}

	// The chain's view, through Lotus' API.
	ctx := context.Background()
	node := e.chainNode()
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
	// The data comes back: the payload as files, and the piece with its
	// commitment checked.
	back := filepath.Join(t.TempDir(), "back")
	e.must(e.ferry, "retrieve", "--provider", miner, root, "-o", back, "--extract")
	for name, want := range map[string][]byte{"big.bin": big, "hello.txt": []byte("hello, ferry\n")} {
		got, err := os.ReadFile(filepath.Join(back, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("retrieved %s differs from the original (%d bytes, %v)", name, len(got), err)
		}
	}
	pieceOut := filepath.Join(t.TempDir(), "piece")
	e.must(e.ferry, "retrieve", "--provider", miner, "--piece", deal.PieceCID, "-o", pieceOut)
	car, _ := os.ReadFile(carPath)
	gotPiece, _ := os.ReadFile(pieceOut)
	if len(gotPiece) < len(car) || !bytes.Equal(gotPiece[:len(car)], car) {
		t.Fatalf("retrieved piece does not start with the CAR")
	}

	client, _ := address.NewFromString(addr)
	if ka, err := node.StateAccountKey(ctx, md.Proposal.Client, chain.EmptyTSK); err != nil || ka != client {
		t.Fatalf("chain deal client %s resolves to %s (%v), want %s", md.Proposal.Client, ka, err, client)
	}
}

// fundClient makes the client repo, funds its wallet and escrow, and returns
// the provider's miner address and the client's wallet address.
func (e *env) fundClient() (miner, addr string) {
	var info struct{ Miner string }
	if err := json.Unmarshal([]byte(e.must(e.ferryd, "--repo", e.repo, "info", "--json")), &info); err != nil {
		e.t.Fatal(err)
	}
	e.must(e.ferry, "init")
	addr = strings.TrimSpace(e.must(e.ferry, "wallet", "default"))
	e.must(e.ferry, "devnet", "fund", addr, "100")
	e.must(e.ferry, "market", "add-balance", "10")
	return info.Miner, addr
}

// proposedDeal is what `ferry deal --json` says of a deal (Boost's keys).
type proposedDeal struct {
	DealUUID string `json:"dealUuid"`
	PieceCID string `json:"commp"`
}

// dealView is what `ferryd deal show --json` says of a deal.
type dealView struct {
	ClientPeer  string
	Checkpoint  string
	ChainDealID uint64
	Sector      *uint64
	PieceCID    string
	PublishCID  string
	Error       string
}

// checkComplete asserts the provider has the deal Complete in a proving
// sector.
func (e *env) checkComplete(uuid, pieceCID string) dealView {
	e.t.Helper()
	var shown dealView
	if err := json.Unmarshal([]byte(e.must(e.ferryd, "--repo", e.repo, "deal", "show", uuid, "--json")), &shown); err != nil {
		e.t.Fatal(err)
	}
	if shown.Checkpoint != "Complete" || shown.Sector == nil || shown.PieceCID != pieceCID {
		e.t.Fatalf("provider shows the deal as %+v", shown)
	}
	var sector struct{ State string }
	if err := json.Unmarshal([]byte(e.must(e.ferryd, "--repo", e.repo, "sectors", "status", fmt.Sprint(*shown.Sector), "--json")), &sector); err != nil {
		e.t.Fatal(err)
	}
	if sector.State != "Proving" {
		e.t.Fatalf("sector %d is %s, want Proving", *shown.Sector, sector.State)
	}
	var listed []struct{ UUID string }
	if err := json.Unmarshal([]byte(e.must(e.ferryd, "--repo", e.repo, "deal", "list", "--state", "complete", "--json")), &listed); err != nil {
		e.t.Fatal(err)
	}
	found := false
	for _, d := range listed {
		found = found || d.UUID == uuid
	}
	if !found {
		e.t.Fatalf("deal list --state complete lacks %s: %+v", uuid, listed)
	}
	if out, err := e.run(e.ferryd, "--repo", e.repo, "deal", "list", "--state", "stuck"); err == nil {
		e.t.Fatalf("an unknown state was accepted: %s", out)
	}
	// Prometheus sees the deal, its sector and its piece, once the next
	// count (every 10 s) has run.
	wants := []string{`ferry_deals{checkpoint="Complete",state="complete"}`, `ferry_sectors{state="Proving"}`, `ferry_index_pieces{state="indexed"}`}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", e.apiPort))
		if err != nil {
			e.t.Fatal(err)
		}
		metrics, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			e.t.Fatal(err)
		}
		missing := ""
		for _, want := range wants {
			if !bytes.Contains(metrics, []byte(want)) {
				missing = want
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("/metrics lacks %s:\n%s", missing, metrics)
		}
	}
	// The piece's index, rebuilt from the unsealed copy, as an operator would.
	if out := e.must(e.ferryd, "--repo", e.repo, "index", "rebuild", pieceCID); !strings.HasPrefix(out, "indexed ") {
		e.t.Fatalf("index rebuild printed %q", out)
	}
	var st struct{ State string }
	if err := json.Unmarshal([]byte(e.must(e.ferryd, "--repo", e.repo, "index", "status", pieceCID, "--json")), &st); err != nil || st.State != "indexed" {
		e.t.Fatalf("index status after the rebuild: %+v, %v", st, err)
	}
	return shown
}

// TestKilledDaemonResumes kills ferryd with SIGKILL while an offline deal is
// on its way, restarts it, and checks the deal still completes, published
// once. It also covers offline deals and `ferryd import-data`.
func TestKilledDaemonResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel() // most of an end-to-end test is waiting for blocks
	e := newEnv(t)
	e.start()
	miner, _ := e.fundClient()

	data := t.TempDir()
	payload := make([]byte, 1<<20+777)
	rand.Read(payload)
	os.WriteFile(filepath.Join(data, "file.bin"), payload, 0o644)
	carPath := filepath.Join(t.TempDir(), "offline.car")
	e.must(e.ferry, "car", "create", data, "-o", carPath)

	var deal proposedDeal
	out := e.must(e.ferry, "deal", "--provider", miner, "--offline", carPath, "--json")
	if err := json.Unmarshal([]byte(lastJSON(out)), &deal); err != nil {
		t.Fatalf("reading ferry deal --json output %q: %v", out, err)
	}
	// A wrong file is refused and changes nothing.
	wrong := filepath.Join(t.TempDir(), "wrong.car")
	os.WriteFile(wrong, payload[:4096], 0o644)
	if _, err := e.run(e.ferryd, "--repo", e.repo, "import-data", deal.DealUUID, wrong); err == nil {
		t.Fatalf("import-data accepted a file whose piece CID is not the deal's")
	}
	e.must(e.ferryd, "--repo", e.repo, "import-data", deal.DealUUID, carPath)

	// Kill the daemon as soon as the deal is past the transfer, restart it.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var v dealView
		if err := json.Unmarshal([]byte(e.must(e.ferryd, "--repo", e.repo, "deal", "show", deal.DealUUID, "--json")), &v); err != nil {
			t.Fatal(err)
		}
		if v.Checkpoint != "Accepted" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deal stuck at %+v", v)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.kill()
	e.start()

	e.must(e.ferry, "deal-status", "--provider", miner, "--deal-uuid", deal.DealUUID, "--watch")
	shown := e.checkComplete(deal.DealUUID, deal.PieceCID)
	if shown.PublishCID == "" {
		t.Fatalf("complete deal has no publish message: %+v", shown)
	}
	// Published once: exactly one deal on chain carries this piece.
	if n := e.chainDealsWithPiece(deal.PieceCID); n != 1 {
		t.Fatalf("%d deals on chain carry piece %s, want 1", n, deal.PieceCID)
	}

	// A read token, as for a dashboard: it shows, it does not steer.
	line := strings.TrimSpace(e.must(e.ferryd, "--repo", e.repo, "auth", "api-info", "--perm", "read"))
	info, ok := strings.CutPrefix(line, "FERRY_API_INFO=")
	if !ok {
		t.Fatalf("ferryd auth api-info printed %q", line)
	}
	e.extraEnv = append(e.extraEnv, "FERRY_API_INFO="+info)
	e.must(e.ferryd, "info")
	if out, err := e.run(e.ferryd, "deal", "fail", deal.DealUUID); err == nil || !strings.Contains(err.Error(), "permission") {
		t.Fatalf("deal fail with a read token: %v %s", err, out)
	}
}

// chainNode dials the chain's Lotus API as the test's clients do
// (e.apiInfo); it closes when the test ends.
func (e *env) chainNode() chain.FullNode {
	e.t.Helper()
	url, token, err := lotus.ParseAPIInfo(e.apiInfo)
	if err != nil {
		e.t.Fatal(err)
	}
	node, closer, err := lotus.Dial(context.Background(), url, token)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(closer)
	return node
}

// chainDealsWithPiece counts the deals on chain (IDs from 0 until the first
// unknown one) whose piece is pieceCID, through Lotus' API.
func (e *env) chainDealsWithPiece(pieceCID string) int {
	e.t.Helper()
	ctx := context.Background()
	node := e.chainNode()
	n := 0
	for id := abi.DealID(0); id < 1000; id++ {
		md, err := node.StateMarketStorageDeal(ctx, id, chain.EmptyTSK)
		if err != nil {
			break
		}
		if md.Proposal.PieceCID.String() == pieceCID {
			n++
		}
	}
	return n
}

// TestLotusMode runs a deal through a ferryd whose chain is a Lotus node:
// Chain.Mode = "lotus", reached only through Lotus' JSON-RPC API. The
// "Lotus node" is a first ferryd's devnet, which holds the miner's worker
// key in its wallet as a Lotus node would; the second ferryd takes over
// that miner (writing its own peer ID to the chain) and runs the deal.
func TestLotusMode(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel() // most of an end-to-end test is waiting for blocks
	chainNode := newEnv(t)
	chainNode.start()
	var info struct{ Miner string }
	if err := json.Unmarshal([]byte(chainNode.must(chainNode.ferryd, "--repo", chainNode.repo, "info", "--json")), &info); err != nil {
		t.Fatal(err)
	}

	// The second ferryd signs with the worker key in the "Lotus node":
	// its operator makes it a token with sign, as with `lotus auth
	// api-info --perm sign`.
	line := strings.TrimSpace(chainNode.must(chainNode.ferryd, "--repo", chainNode.repo, "auth", "api-info", "--chain", "--perm", "sign"))
	signInfo, ok := strings.CutPrefix(line, "FULLNODE_API_INFO=")
	if !ok {
		t.Fatalf("ferryd auth api-info --chain printed %q", line)
	}

	e := newEnv(t)
	cfg := fmt.Sprintf(`
[Chain]
Mode = "lotus"
LotusAPIInfo = %q
Miner = %q
[Libp2p]
ListenAddresses = ["/ip4/127.0.0.1/tcp/%d"]
[HTTP]
Listen = "127.0.0.1:%d"
EnableMK12 = false # ferry deal falls back to libp2p
[API]
Listen = "127.0.0.1:%d"
[Sealing]
WaitDealsDelay = "3s"
MinerAPIListen = "127.0.0.1:0" # several ferryds on one machine
[Market]
PublishMsgPeriod = "2s"
[Transfer]
AllowPrivateAddresses = true # the client serves its data on loopback
`, signInfo, info.Miner, freePort(t), e.retrievalPort, e.apiPort)
	if err := os.WriteFile(filepath.Join(e.repo, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e.start()
	e.apiInfo = chainNode.apiInfo // the client uses the same chain
	var info2 struct{ Miner, PeerID, ChainMode string }
	if err := json.Unmarshal([]byte(e.must(e.ferryd, "--repo", e.repo, "info", "--json")), &info2); err != nil {
		t.Fatal(err)
	}
	if info2.ChainMode != "lotus" || info2.Miner != info.Miner {
		t.Fatalf("second ferryd says %+v", info2)
	}

	miner, _ := e.fundClient()
	data := t.TempDir()
	payload := make([]byte, 700_000)
	rand.Read(payload)
	os.WriteFile(filepath.Join(data, "f.bin"), payload, 0o644)
	carPath := filepath.Join(t.TempDir(), "lotus.car")
	e.must(e.ferry, "car", "create", data, "-o", carPath)
	var deal proposedDeal
	out := e.must(e.ferry, "deal", "--provider", miner, carPath, "--serve", "--json")
	if err := json.Unmarshal([]byte(lastJSON(out)), &deal); err != nil {
		t.Fatalf("reading ferry deal --json output %q: %v", out, err)
	}
	e.must(e.ferry, "deal-status", "--provider", miner, "--deal-uuid", deal.DealUUID, "--watch")
	if shown := e.checkComplete(deal.DealUUID, deal.PieceCID); shown.ClientPeer == "" {
		t.Fatal("with mk12 over HTTP off, the deal did not come over libp2p")
	}
	if n := e.chainDealsWithPiece(deal.PieceCID); n != 1 {
		t.Fatalf("%d deals on chain carry piece %s, want 1", n, deal.PieceCID)
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

// directDeal is a direct deal made as the README makes one: its client's
// wallet, the CAR, its piece CIDs and allocation, and the deal's UUID.
type directDeal struct {
	miner, client string
	payload       []byte
	car, root     string
	pieceCID      string
	pieceCIDv2    string
	allocation    uint64
	uuid          string
}

// makeDirectDeal funds a client with DataCap, makes a CAR of a folder and
// an allocation for it (by piece CID v2), and has the operator import the
// CAR for that allocation.
func (e *env) makeDirectDeal() *directDeal {
	t := e.t
	t.Helper()
	dd := e.allocatedPiece(1<<20 + 4321)
	var deal struct {
		UUID string `json:"uuid"`
		Kind string `json:"kind"`
	}
	out := e.must(e.ferryd, "--repo", e.repo, "import-direct", "--client", dd.client, "--allocation-id", fmt.Sprint(dd.allocation), dd.pieceCIDv2, dd.car, "--json")
	if err := json.Unmarshal([]byte(out), &deal); err != nil || deal.Kind != "direct" {
		t.Fatalf("import-direct printed %q (%v)", out, err)
	}
	dd.uuid = deal.UUID
	return dd
}

// directView is what `ferryd deal show --json` says of a direct deal.
type directView struct {
	Checkpoint   string
	Retry        string
	Sector       *uint64
	PieceCID     string
	PieceCIDv2   string
	AllocationID uint64
	ClaimID      uint64
	PublishCID   string
	Error        string
}

// showDirect reads a direct deal as the operator sees it.
func (e *env) showDirect(uuid string) directView {
	e.t.Helper()
	var v directView
	if err := json.Unmarshal([]byte(e.must(e.ferryd, "--repo", e.repo, "deal", "show", uuid, "--json")), &v); err != nil {
		e.t.Fatal(err)
	}
	if v.Retry == "fatal" {
		e.t.Fatalf("direct deal failed: %+v\nferryd log:\n%s", v, e.daemonLog)
	}
	return v
}

// waitDirect waits until the direct deal reaches a checkpoint done says is
// far enough.
func (e *env) waitDirect(uuid string, done func(checkpoint string) bool) directView {
	e.t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		v := e.showDirect(uuid)
		if done(v.Checkpoint) {
			return v
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("direct deal stuck: %+v\nferryd log:\n%s", v, e.daemonLog)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func isComplete(cp string) bool { return cp == "Complete" }

// checkClaimed checks the chain has exactly one claim of the provider's,
// the deal's, in the deal's sector, and that the provider placed the piece
// once.
func (e *env) checkClaimed(dd *directDeal, shown directView) {
	t := e.t
	t.Helper()
	if shown.PieceCID != dd.pieceCID || shown.PieceCIDv2 != dd.pieceCIDv2 || shown.AllocationID != dd.allocation ||
		shown.ClaimID != dd.allocation || shown.PublishCID != "" || shown.Sector == nil {
		t.Fatalf("complete direct deal: %+v", shown)
	}
	ctx := context.Background()
	node := e.chainNode()
	maddr, _ := address.NewFromString(dd.miner)
	claims, err := node.StateGetClaims(ctx, maddr, chain.EmptyTSK)
	if err != nil || len(claims) != 1 {
		t.Fatalf("claims of %s on chain: %+v, %v; want one", dd.miner, claims, err)
	}
	cl := claims[chain.ClaimID(dd.allocation)]
	if uint64(cl.Sector) != *shown.Sector || cl.Data.String() != dd.pieceCID {
		t.Fatalf("claim %d on chain: %+v", dd.allocation, cl)
	}
	var sectors []struct {
		Pieces []struct {
			DealUUID string `json:"dealUuid"`
		} `json:"pieces"`
	}
	if err := json.Unmarshal([]byte(e.must(e.ferryd, "--repo", e.repo, "sectors", "list", "--json")), &sectors); err != nil {
		t.Fatal(err)
	}
	placed := 0
	for _, s := range sectors {
		for _, p := range s.Pieces {
			if p.DealUUID == dd.uuid {
				placed++
			}
		}
	}
	if placed != 1 {
		t.Fatalf("the deal's piece is placed %d times", placed)
	}
}

// TestDirectDeal is the README's direct data onboarding deal: the client
// gets DataCap, makes a CAR and an allocation of DataCap for the provider
// and its piece (by piece CID v2), the operator imports the CAR for that
// allocation, the deal completes once its sector is proven with the
// piece's activation manifest, the chain shows the claim in that sector,
// and the data comes back by payload CID and by piece CID v2.
func TestDirectDeal(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel() // most of an end-to-end test is waiting for blocks
	e := newEnv(t)
	e.start()
	dd := e.makeDirectDeal()
	// The same allocation again is refused while the deal lives.
	if _, err := e.run(e.ferryd, "--repo", e.repo, "import-direct", "--client", dd.client, "--allocation-id", fmt.Sprint(dd.allocation), dd.pieceCID, dd.car); err == nil {
		t.Fatal("a second deal of the same allocation was accepted")
	}
	e.checkClaimed(dd, e.waitDirect(dd.uuid, isComplete))

	// The client sees the claim with ferry allocations; the index shows
	// the piece's CID v2.
	var claims struct {
		Claims []struct {
			ClaimID uint64 `json:"claimId"`
		} `json:"claims"`
	}
	if err := json.Unmarshal([]byte(e.must(e.ferry, "allocations", "--claims", "--provider", dd.miner, "--json")), &claims); err != nil ||
		len(claims.Claims) != 1 || claims.Claims[0].ClaimID != dd.allocation {
		t.Fatalf("ferry allocations --claims: %+v, %v", claims, err)
	}
	var pieces []struct {
		PieceCID   string `json:"pieceCid"`
		PieceCIDv2 string `json:"pieceCidV2"`
	}
	if err := json.Unmarshal([]byte(e.must(e.ferryd, "--repo", e.repo, "index", "list", "--json")), &pieces); err != nil ||
		len(pieces) != 1 || pieces[0].PieceCIDv2 != dd.pieceCIDv2 {
		t.Fatalf("index list: %+v, %v", pieces, err)
	}

	// The data comes back: the files, and the payload by piece CID v2.
	e.checkRetrieved(dd)
}

// TestKilledDaemonResumesDirect kills ferryd with SIGKILL right after it
// took a direct deal and again once the piece is in a sector: the deal
// still completes, its piece placed once and its allocation claimed once.
func TestKilledDaemonResumesDirect(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel() // most of an end-to-end test is waiting for blocks
	e := newEnv(t)
	e.start()
	dd := e.makeDirectDeal()
	e.kill()
	e.start()
	e.waitDirect(dd.uuid, func(cp string) bool { return cp == "AddedPiece" || cp == "IndexedAndAnnounced" || cp == "Complete" })
	e.kill()
	e.start()
	e.checkClaimed(dd, e.waitDirect(dd.uuid, isComplete))
}

// kill stops ferryd with SIGKILL, as a crash does (in a cluster, its
// leases stay until they expire).
func (e *env) kill() {
	e.daemon.Process.Kill()
	e.daemon.Wait()
	e.daemon = nil
	os.Remove(filepath.Join(e.repo, "api")) // a killed daemon leaves it behind
}
