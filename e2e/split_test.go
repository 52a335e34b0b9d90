package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/market"
)

// splitPair is the README's "Splitting ferryd in two": a sealing-only
// ferryd on the devnet (its chain, its sectors, lotus-miner's API) and a
// market-only ferryd in network mode whose chain is the first's Lotus API
// and whose sealer is the first's lotus-miner API.
type splitPair struct {
	sealer, market *env
	miner          string
}

// newSplitPair starts the pair with sectors of sectorSize; the clients'
// commands go to the market, their chain is the sealer's devnet.
func newSplitPair(t *testing.T, sectorSize, waitDeals string) *splitPair {
	ferryd, ferry := binaries(t)
	s := &env{t: t, ferryd: ferryd, ferry: ferry, repo: t.TempDir(), client: t.TempDir(),
		chainPort: freePort(t), apiPort: freePort(t)}
	minerAPIPort := freePort(t)
	writeConfig(t, s.repo, fmt.Sprintf(`
[Subsystems]
EnableMarkets = false
EnableSealing = true
[Chain]
DevnetBlockTime = "200ms"
DevnetListen = "127.0.0.1:%d"
DevnetSectorSize = %q
[API]
Listen = "127.0.0.1:%d"
[Sealing]
MinerAPIListen = "127.0.0.1:%d"
WaitDealsDelay = %q
`, s.chainPort, sectorSize, s.apiPort, minerAPIPort, waitDeals))
	s.start()
	var info struct {
		Miner, MinerAPI, PeerID string
		Subsystems              []string
	}
	if err := json.Unmarshal([]byte(s.must(ferryd, "--repo", s.repo, "info", "--json")), &info); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/http", minerAPIPort); info.MinerAPI != want || info.PeerID != "" || strings.Join(info.Subsystems, ",") != "sealing" {
		t.Fatalf("the sealing-only ferryd says %+v (want its miner API at %s, no peer)", info, want)
	}
	// Its operator makes the market's two tokens: the chain's with sign
	// (the worker key is in this ferryd's wallet, as in a Lotus node's),
	// and lotus-miner's with admin.
	chainInfo := cutEnv(t, s.must(ferryd, "--repo", s.repo, "auth", "api-info", "--chain", "--perm", "sign"), "FULLNODE_API_INFO")
	minerInfo := cutEnv(t, s.must(ferryd, "--repo", s.repo, "auth", "api-info", "--miner", "--perm", "admin"), "MINER_API_INFO")

	m := &env{t: t, ferryd: ferryd, ferry: ferry, repo: t.TempDir(), client: s.client,
		retrievalPort: freePort(t), apiPort: freePort(t)}
	writeConfig(t, m.repo, fmt.Sprintf(`
[Subsystems]
EnableMarkets = true
EnableSealing = false
[Chain]
Mode = "lotus"
LotusAPIInfo = %q
Miner = %q
[Libp2p]
ListenAddresses = ["/ip4/127.0.0.1/tcp/%d"]
[HTTP]
Listen = "127.0.0.1:%d"
[API]
Listen = "127.0.0.1:%d"
[Sealing]
Backend = "lotus-miner"
MinerAPIInfo = %q
[Market]
PublishMsgPeriod = "2s"
[Transfer]
AllowPrivateAddresses = true # the clients serve their data on loopback
`, chainInfo, info.Miner, freePort(t), m.retrievalPort, m.apiPort, minerInfo))
	m.start()
	m.apiInfo = s.apiInfo // the clients' chain is the sealer's devnet
	return &splitPair{sealer: s, market: m, miner: info.Miner}
}

func writeConfig(t *testing.T, repo, cfg string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(repo, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// cutEnv returns the value of the NAME=value line out.
func cutEnv(t *testing.T, out, name string) string {
	t.Helper()
	v, ok := strings.CutPrefix(strings.TrimSpace(out), name+"=")
	if !ok {
		t.Fatalf("want a %s= line, got %q", name, out)
	}
	return v
}

// carOf writes a CAR of a folder holding one file of n random bytes.
func (e *env) carOf(n int) (carPath string, payload []byte) {
	e.t.Helper()
	data := e.t.TempDir()
	payload = make([]byte, n)
	rand.Read(payload)
	if err := os.WriteFile(filepath.Join(data, "file.bin"), payload, 0o644); err != nil {
		e.t.Fatal(err)
	}
	carPath = filepath.Join(e.t.TempDir(), "data.car")
	e.must(e.ferry, "car", "create", data, "-o", carPath)
	return carPath, payload
}

// propose makes a deal of the CAR, served by the client until the market
// has it.
func (p *splitPair) propose(carPath string) proposedDeal {
	p.market.t.Helper()
	var deal proposedDeal
	out := p.market.must(p.market.ferry, "deal", "--provider", p.miner, carPath, "--serve", "--json")
	if err := json.Unmarshal([]byte(lastJSON(out)), &deal); err != nil {
		p.market.t.Fatalf("reading ferry deal --json output %q: %v", out, err)
	}
	return deal
}

// operator dials the operator API of a running ferryd.
func (e *env) operator() api.Ferry {
	e.t.Helper()
	f, closer, err := api.Dial(context.Background(), e.repo)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(closer)
	return f
}

// waitDeal polls the market's deal until until holds, failing the test if
// the deal fails or waits for an operator.
func (p *splitPair) waitDeal(f api.Ferry, id string, what string, until func(*market.DealInfo) bool) *market.DealInfo {
	t := p.market.t
	t.Helper()
	u := uuid.MustParse(id)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		d, err := f.DealShow(context.Background(), u)
		if err == nil {
			if until(&d.DealInfo) {
				return &d.DealInfo
			}
			if d.Retry == market.RetryFatal || d.Retry == market.RetryManual {
				t.Fatalf("deal %s stopped (%s) waiting for %s: %+v", id, d.Retry, what, d.DealInfo)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("deal %s: no %s in 3 minutes: %+v, %v\nmarket log:\n%s\nsealer log:\n%s", id, what, d, err, p.market.log(), p.sealer.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// log is what the daemon printed so far.
func (e *env) log() string {
	if e.daemonLog == nil {
		return ""
	}
	return e.daemonLog.String()
}

// placements counts, in the sealing ferryd's sectors, the pieces of each
// chain deal, and the deals of each sector.
func (p *splitPair) placements() (perDeal map[uint64]int, perSector map[uint64]int) {
	p.sealer.t.Helper()
	var sectors []struct {
		Number uint64
		Pieces []struct {
			DealID     uint64
			PublishCid *struct {
				Root string `json:"/"`
			}
			Filler bool
		}
	}
	if err := json.Unmarshal([]byte(p.sealer.must(p.sealer.ferryd, "--repo", p.sealer.repo, "sectors", "list", "--json")), &sectors); err != nil {
		p.sealer.t.Fatal(err)
	}
	perDeal, perSector = map[uint64]int{}, map[uint64]int{}
	for _, s := range sectors {
		for _, pc := range s.Pieces {
			if pc.Filler {
				continue
			}
			if pc.PublishCid == nil {
				p.sealer.t.Fatalf("sector %d holds deal %d without its publish CID", s.Number, pc.DealID)
			}
			perDeal[pc.DealID]++
			perSector[s.Number]++
		}
	}
	return perDeal, perSector
}

// TestSplitProvider runs a deal through a market-only ferryd in front of a
// sealing-only one: Complete, the piece in the sealer's sector with its
// publish CID, the market's view of that sector through lotus-miner's API,
// the piece read back over /remote for the index and for /piece; then a
// deal whose sealer is killed (kill -9) as its piece is handed over: the
// market waits and retries, and once the sealer is back the deal
// completes, with one placement per deal.
func TestSplitProvider(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel() // most of an end-to-end test is waiting for blocks
	p := newSplitPair(t, "8MiB", "3s")
	m := p.market
	m.fundClient()

	ops := m.operator()
	carPath, _ := m.carOf(700_000)
	deal := p.propose(carPath)
	p.waitDeal(ops, deal.DealUUID, "Complete", func(d *market.DealInfo) bool { return d.Checkpoint == market.Complete })
	m.must(m.ferry, "deal-status", "--provider", p.miner, "--deal-uuid", deal.DealUUID, "--watch")
	shown := m.checkComplete(deal.DealUUID, deal.PieceCID)

	// The sealer has the piece with its deal's publish CID, once.
	var sector struct {
		State  string
		Pieces []struct {
			DealID     uint64
			PublishCid map[string]string
		}
	}
	if err := json.Unmarshal([]byte(p.sealer.must(p.sealer.ferryd, "--repo", p.sealer.repo, "sectors", "status", fmt.Sprint(*shown.Sector), "--json")), &sector); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, pc := range sector.Pieces {
		if pc.DealID == shown.ChainDealID && pc.PublishCid["/"] == shown.PublishCID {
			found++
		}
	}
	if sector.State != "Proving" || found != 1 {
		t.Fatalf("the sealer's sector %d: %+v, want deal %d with publish CID %s once", *shown.Sector, sector, shown.ChainDealID, shown.PublishCID)
	}
	// /piece on the market reads the sealer's unsealed copy over /remote.
	pieceOut := filepath.Join(t.TempDir(), "piece")
	m.must(m.ferry, "retrieve", "--provider", p.miner, "--piece", deal.PieceCID, "-o", pieceOut)
	car, _ := os.ReadFile(carPath)
	got, _ := os.ReadFile(pieceOut)
	if len(got) < len(car) || !bytes.Equal(got[:len(car)], car) {
		t.Fatalf("the piece read back through the market does not start with the CAR (%d bytes)", len(got))
	}

	// The sealer dies as the next piece is handed over.
	carPath, _ = m.carOf(1_500_000)
	deal = p.propose(carPath)
	p.waitDeal(ops, deal.DealUUID, "PublishConfirmed", func(d *market.DealInfo) bool { return d.Checkpoint >= market.PublishConfirmed })
	p.sealer.kill()
	d := p.waitDeal(ops, deal.DealUUID, "a failed try", func(d *market.DealInfo) bool { return d.Error != "" })
	t.Logf("with the sealer down the market waits: %s (%s)", d.Error, d.Checkpoint)
	if d.Checkpoint >= market.AddedPiece {
		t.Logf("the piece was in a sector before the kill reached the sealer: %+v", d)
	}
	p.sealer.start()
	p.waitDeal(ops, deal.DealUUID, "Complete", func(d *market.DealInfo) bool { return d.Checkpoint == market.Complete })
	perDeal, _ := p.placements()
	if len(perDeal) != 2 {
		t.Fatalf("the sealer holds pieces of deals %v, want 2 deals", perDeal)
	}
	for id, k := range perDeal {
		if k != 1 {
			t.Fatalf("deal %d is in the sealer's sectors %d times", id, k)
		}
	}
}

// waitHandOff polls the market's deals until one of them is streaming its
// piece to the sealer (AddPiece in flight) and returns it; nil when every
// deal got past AddPiece first.
func (p *splitPair) waitHandOff(f api.Ferry, deals []proposedDeal) *market.DealInfo {
	t := p.market.t
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		list, err := f.DealList(context.Background(), market.DealFilter{})
		if err != nil {
			t.Fatal(err)
		}
		past := 0
		for i := range list {
			d := &list[i]
			if d.Checkpoint == market.PublishConfirmed && d.AddPieceBytes > 0 && d.AddPieceBytes < d.TransferSize {
				return d
			}
			if d.Checkpoint > market.PublishConfirmed {
				past++
			}
		}
		if past == len(deals) {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no piece was handed over in 3 minutes\nmarket log:\n%s", p.market.log())
	return nil
}

// TestSplitProvider512MiB: 512 MiB sectors and four deals of 128 MiB
// pieces, which share one sector; the market is killed (kill -9) while it
// streams a piece to the sealer, then the sealer while it takes one. Every
// deal completes, published once and placed once, and a piece reads back
// through the market.
func TestSplitProvider512MiB(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test")
	}
	t.Parallel() // most of an end-to-end test is waiting for blocks
	p := newSplitPair(t, "512MiB", "1m")
	m := p.market
	m.fundClient()
	ops := m.operator()
	var deals []proposedDeal
	var cars []string
	for range 4 {
		carPath, _ := m.carOf(100 << 20)
		deals = append(deals, p.propose(carPath))
		cars = append(cars, carPath)
	}

	if d := p.waitHandOff(ops, deals); d != nil {
		t.Logf("killing the market while deal %s streams its piece (%d of %d bytes)", d.UUID, d.AddPieceBytes, d.TransferSize)
	} else {
		t.Logf("killing the market after every piece was handed over")
	}
	m.kill()
	m.start()
	ops = m.operator()
	if d := p.waitHandOff(ops, deals); d != nil {
		t.Logf("killing the sealer while deal %s streams its piece (%d of %d bytes)", d.UUID, d.AddPieceBytes, d.TransferSize)
	} else {
		t.Logf("killing the sealer after every piece was handed over")
	}
	p.sealer.kill()
	p.sealer.start()

	for _, d := range deals {
		p.waitDeal(ops, d.DealUUID, "Complete", func(d *market.DealInfo) bool { return d.Checkpoint == market.Complete })
		if n := m.chainDealsWithPiece(d.PieceCID); n != 1 {
			t.Fatalf("%d deals on chain carry piece %s, want 1", n, d.PieceCID)
		}
	}
	perDeal, perSector := p.placements()
	if len(perDeal) != len(deals) {
		t.Fatalf("the sealer holds pieces of deals %v, want %d deals", perDeal, len(deals))
	}
	for id, k := range perDeal {
		if k != 1 {
			t.Fatalf("deal %d is in the sealer's sectors %d times", id, k)
		}
	}
	most := 0
	for _, k := range perSector {
		most = max(most, k)
	}
	if most < 2 {
		t.Fatalf("no sector holds several deals: %v", perSector)
	}
	t.Logf("deals per sector: %v", perSector)

	pieceOut := filepath.Join(t.TempDir(), "piece")
	m.must(m.ferry, "retrieve", "--provider", p.miner, "--piece", deals[3].PieceCID, "-o", pieceOut)
	car, _ := os.ReadFile(cars[3])
	got, _ := os.ReadFile(pieceOut)
	if len(got) < len(car) || !bytes.Equal(got[:len(car)], car) {
		t.Fatalf("the piece read back through the market does not start with the CAR (%d of %d bytes)", len(got), len(car))
	}
}
