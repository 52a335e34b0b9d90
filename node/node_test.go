package node

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/devnet"
	"github.com/ferry-fil/ferry/internal/freeport"
	"github.com/ferry-fil/ferry/sealing"
)

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

// testRepo writes a config for a fast devnet on free ports, with
// libp2pSettings (TOML lines) in its Libp2p section.
func testRepo(t *testing.T, libp2pSettings ...string) string {
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
[Chain]
DevnetBlockTime = "50ms"
DevnetListen = "127.0.0.1:%d"
DevnetSectorSize = "2KiB"
[Libp2p]
ListenAddresses = ["/ip4/127.0.0.1/tcp/%d"]
%s
[HTTP]
Listen = "127.0.0.1:%d"
[API]
Listen = "127.0.0.1:%d"
[Sealing]
MinerAPIListen = "127.0.0.1:%d"
`, freePort(t), freePort(t), strings.Join(libp2pSettings, "\n"), freePort(t), freePort(t), freePort(t))
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestStartStopRestart starts a devnet ferryd, stops it, and starts it again
// on the same repo: the same miner and peer identity come back, the api
// file exists only while it runs, and stopping leaves no goroutines behind.
func TestStartStopRestart(t *testing.T) {
	ctx := context.Background()
	dir := testRepo(t)
	before := runtime.NumGoroutine()

	n, err := Start(ctx, dir, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	miner, peerID := n.Miner, n.Host.ID()
	if _, err := os.Stat(filepath.Join(dir, "api")); err != nil {
		t.Fatalf("no api file while running: %v", err)
	}
	info, err := (&nodeAPI{n: n}).Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Miner != miner.String() || info.SectorSize != 2048 || info.MarketEscrow.Sign() <= 0 {
		t.Fatalf("Info = %+v", info)
	}
	// The miner's multiaddrs on chain: the libp2p ones, then the HTTP
	// listener's (Curio's clients take the provider's URL from it).
	mi, err := n.Chain.StateMinerInfo(ctx, miner, chain.EmptyTSK)
	if err != nil {
		t.Fatal(err)
	}
	var onChain []string
	for _, b := range mi.Multiaddrs {
		a, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		onChain = append(onChain, a.String())
	}
	wantHTTP := "/ip4/127.0.0.1/tcp/" + strings.TrimPrefix(n.Config.HTTP.Listen, "127.0.0.1:") + "/http"
	if len(onChain) != len(n.Host.Addrs())+1 || onChain[len(onChain)-1] != wantHTTP || onChain[0] != n.Host.Addrs()[0].String() {
		t.Fatalf("multiaddrs on chain %v; want the host's %v then %s", onChain, n.Host.Addrs(), wantHTTP)
	}
	for _, a := range info.Addresses {
		if strings.Contains(a, "/http") {
			t.Fatalf("ferryd info lists the HTTP address among the libp2p ones: %v", info.Addresses)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "api")); !os.IsNotExist(err) {
		t.Fatalf("api file left after Close: %v", err)
	}

	n, err = Start(ctx, dir, Options{Logf: t.Logf})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	if n.Miner != miner || n.Host.ID() != peerID {
		t.Fatalf("restart changed miner %s→%s or peer %s→%s", miner, n.Miner, peerID, n.Host.ID())
	}
	if err := n.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Goroutines wind down (libp2p and HTTP keep-alives take a moment).
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before Start, %d after Close:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

// TestStartRefusesBadConfig: a broken config.toml is refused with the
// setting named, and nothing is started.
func TestStartRefusesBadConfig(t *testing.T) {
	for name, tc := range map[string]struct{ cfg, names string }{
		"unknown setting": {"[Chain]\nBlockTme = \"1s\"\n", "BlockTme"},
		"bad mode":        {"[Chain]\nMode = \"mainnet\"\n", "Chain.Mode"},
		"bad duration":    {"[Chain]\nDevnetBlockTime = \"soon\"\n", "soon"},
		"bad sector size": {"[Chain]\nDevnetSectorSize = \"3MiB\"\n", "Chain.DevnetSectorSize"},
		"bad announce":    {"[Libp2p]\nAnnounceAddresses = [\"1.2.3.4:5\"]\n", "Libp2p.AnnounceAddresses"},
		"no proposals":    {"[Libp2p]\nProposalsPerPeer = 0\n", "Libp2p.ProposalsPerPeer"},
		"bad staging":     {"[Market]\nStagingCapacity = \"lots\"\n", "Market.StagingCapacity"},
		"bad fee":         {"[Market]\nMaxPublishDealsFee = \"cheap\"\n", "Market.MaxPublishDealsFee"},
		"bad blocklist":   {"[Market]\nPieceCidBlocklist = [\"baga\"]\n", "Market.PieceCidBlocklist"},
		"nothing to run":  {"[Subsystems]\nEnableMarkets = false\nEnableSealing = false\n", "Subsystems.EnableMarkets"},
		"no sealer":       {"[Subsystems]\nEnableSealing = false\n", "Sealing.Backend = \"lotus-miner\""},
		"two sealers":     {"[Sealing]\nBackend = \"lotus-miner\"\n", "Subsystems.EnableSealing = false"},
		"bad backend":     {"[Sealing]\nBackend = \"boost\"\n", "Sealing.Backend"},
		"bad miner API":   {"[Subsystems]\nEnableSealing = false\n[Sealing]\nBackend = \"lotus-miner\"\nMinerAPIInfo = \"tok:/ip4/127.0.0.1/udp/5\"\n", "Sealing.MinerAPIInfo"},
		"every address":   {"[Sealing]\nMinerAPIListen = \"0.0.0.0:2345\"\n", "Sealing.MinerAPIPublicURL"},
		"bad public URL":  {"[Sealing]\nMinerAPIPublicURL = \"ftp://127.0.0.1:2345\"\n", "Sealing.MinerAPIPublicURL"},
		"bad chunk size":  {"[HTTP]\nMinChunkSize = \"3MiB\"\n", "HTTP.MinChunkSize"},
		"no uploads":      {"[HTTP]\nMaxParallelUploads = 0\n", "MaxParallelUploads"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "config.toml"), []byte(tc.cfg), 0o600)
			n, err := Start(context.Background(), dir, Options{Logf: t.Logf})
			if err == nil {
				n.Close()
				t.Fatal("started with a bad config")
			}
			if !strings.Contains(err.Error(), "config.toml") || !strings.Contains(err.Error(), tc.names) {
				t.Fatalf("error does not say what is wrong (want %q named): %v", tc.names, err)
			}
		})
	}
}

// TestStartRefusesBusyPort: a port in use is a clear error, and what was
// started before it is stopped again.
func TestStartRefusesBusyPort(t *testing.T) {
	dir := testRepo(t)
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", cfg.Chain.DevnetListen)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	n, err := Start(context.Background(), dir, Options{Logf: t.Logf})
	if err == nil {
		n.Close()
		t.Fatal("started although the devnet port is taken")
	}
	if !strings.Contains(err.Error(), cfg.Chain.DevnetListen) {
		t.Fatalf("error does not name the port: %v", err)
	}
}

// /metrics on the operator API answers without a token, in Prometheus' text
// format, with the node's figures read from the database.
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	n, err := Start(ctx, testRepo(t), Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	resp, err := http.Get("http://" + n.Config.API.Listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the metrics: %v", err)
	}
	for _, name := range []string{"ferry_metrics_errors", "go_goroutines", "process_resident_memory_bytes"} {
		if families[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	for _, m := range families["ferry_metrics_errors"].GetMetric() {
		if m.GetGauge().GetValue() != 0 {
			t.Errorf("a part failed: %v", m)
		}
	}
	// The devnet miner's start-up leaves no deals and no sectors: their
	// families appear once there is something to count.
	if f := families["ferry_deals"]; f != nil && len(f.GetMetric()) != 0 {
		t.Errorf("deals on a fresh node: %v", f)
	}
}

// namedChain is a chain whose network name the test sets.
type namedChain struct {
	chain.FullNode
	name chain.NetworkName
}

func (c namedChain) StateNetworkName(context.Context) (chain.NetworkName, error) { return c.name, nil }

// TestSealerForNetwork: the devnet's sealer only for a Ferry devnet; any
// other network is a start error that says why, before anything is sent.
func TestSealerForNetwork(t *testing.T) {
	ctx := context.Background()
	s, err := (&Node{Chain: namedChain{name: devnet.NetworkName}}).sealer(ctx)
	if _, ok := s.(*sealing.DevnetSealer); err != nil || !ok {
		t.Fatalf("devnet: %T, %v", s, err)
	}
	for _, name := range []chain.NetworkName{"mainnet", "calibrationnet"} {
		s, err := (&Node{Chain: namedChain{name: name}}).sealer(ctx)
		if err == nil || !strings.Contains(err.Error(), "no sealer back end") || !strings.Contains(err.Error(), "lotus-miner") {
			t.Fatalf("%s: %T, %v", name, s, err)
		}
	}
}

// TestAllowPrivateAddressesDefault: unset, private transfer targets are
// allowed on the devnet and refused in lotus mode, also in a config.toml a
// devnet start wrote and the operator then switched to lotus; set, the
// setting wins.
func TestAllowPrivateAddressesDefault(t *testing.T) {
	dir := t.TempDir()
	cfg, err := LoadConfig(dir) // writes the defaults
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.allowPrivate() || !cfg.transferConfig().AllowPrivateAddresses {
		t.Fatal("the devnet default refuses private addresses")
	}
	written, err := os.ReadFile(filepath.Join(dir, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(written), "AllowPrivateAddresses") {
		t.Fatalf("the written defaults pin AllowPrivateAddresses, so a switch to lotus mode would keep it on:\n%s", written)
	}
	switched := strings.Replace(string(written), `Mode = "devnet"`, `Mode = "lotus"`, 1)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(switched), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err = LoadConfig(dir); err != nil {
		t.Fatal(err)
	}
	if cfg.allowPrivate() || cfg.transferConfig().AllowPrivateAddresses {
		t.Fatal("lotus mode allows private addresses by default")
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(strings.Replace(switched, "[Transfer]\n", "[Transfer]\n  AllowPrivateAddresses = true\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err = LoadConfig(dir); err != nil {
		t.Fatal(err)
	}
	if !cfg.allowPrivate() {
		t.Fatal("an explicit AllowPrivateAddresses = true is ignored in lotus mode")
	}
}
