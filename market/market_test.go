package market

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/wallet"
	"github.com/ferry-fil/ferry/wire"
)

func tagCounts(t *testing.T, h *harness) (funds, space int) {
	t.Helper()
	if err := h.deps.DB.QueryRow(`SELECT count(*) FROM market_funds_tags`).Scan(&funds); err != nil {
		t.Fatal(err)
	}
	if err := h.deps.DB.QueryRow(`SELECT count(*) FROM market_space_tags`).Scan(&space); err != nil {
		t.Fatal(err)
	}
	return
}

func complete(d *DealInfo) bool { return d.Checkpoint == Complete }
func failed(d *DealInfo) bool   { return d.Retry == RetryFatal }

func TestDealCompletes(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	h.start()
	params := h.deal("a.car", 1500, 1, nil)
	resp := h.p.Propose(context.Background(), params, "peerA")
	if !resp.Accepted {
		t.Fatalf("rejected: %s", resp.Message)
	}
	d := h.waitFor(params.DealUUID, complete, Complete)
	if d.ChainDealID == 0 || d.PublishCID == "" || d.Sector == nil || d.BytesReceived != 1500 {
		t.Fatalf("complete deal lacks its facts: %+v", d)
	}
	if msgs, pushes := h.fc.publishMsgs(); msgs != 1 || pushes != 1 {
		t.Fatalf("%d publish messages pushed %d times, want 1 and 1", msgs, pushes)
	}
	if n := h.sealer.st.Writes[params.DealUUID.String()]; n != 1 {
		t.Fatalf("piece written %d times", n)
	}
	if h.sealer.crcs != 1 {
		t.Fatalf("sealing was given the data's CRC-32C %d times, want once", h.sealer.crcs)
	}
	if h.idx.calls[params.DealUUID] != 1 {
		t.Fatalf("indexer called %d times", h.idx.calls[params.DealUUID])
	}
	if f, s := tagCounts(t, h); f != 0 || s != 0 {
		t.Fatalf("tags left: funds %d, space %d", f, s)
	}
	if _, err := os.Stat(filepath.Join(h.cfg.StagingDir, params.DealUUID.String()+".car")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("staging file not removed: %v", err)
	}
	detail, err := h.p.Deal(context.Background(), params.DealUUID)
	if err != nil || len(detail.Logs) < 7 {
		t.Fatalf("deal log: %v %+v", err, detail)
	}

	// The same proposal again, and the same UUID with another proposal.
	if r := h.p.Propose(context.Background(), params, "peerA"); r.Accepted || !strings.Contains(r.Message, "identical") {
		t.Fatalf("duplicate proposal: %+v", r)
	}
	again := h.deal("b.car", 1000, 2, nil)
	again.DealUUID = params.DealUUID
	if r := h.p.Propose(context.Background(), again, "peerA"); r.Accepted || !strings.Contains(r.Message, "already in use") {
		t.Fatalf("duplicate UUID: %+v", r)
	}
}

func TestRejections(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) {
		c.PieceCIDBlocklist = nil
	})
	h.fc.dataCap[h.clientID] = abi.NewStoragePower(512)
	h.start()
	other := testKey(t, 9)
	blocked, _ := h.payload("blocked.car", 1000, 77)
	h.p.cfg.PieceCIDBlocklist = append(h.p.cfg.PieceCIDBlocklist, blocked)

	type mod = func(*market.DealProposal, *wire.DealParams)
	cases := []struct {
		name string
		mod  mod
		post func(*wire.DealParams)
		want string
	}{
		{"missing proposal", nil, func(d *wire.DealParams) { d.ClientDealProposal = market.ClientDealProposal{} }, "PieceCID is undefined"},
		{"bad signature", nil, func(d *wire.DealParams) { d.ClientDealProposal.Proposal.StoragePricePerEpoch = big.NewInt(1001) }, "invalid client signature"},
		{"signature by another key", nil, func(d *wire.DealParams) {
			sig, _ := wallet.Sign(other, []byte("x"))
			d.ClientDealProposal.ClientSignature = *sig
		}, "invalid client signature"},
		{"wrong provider", func(p *market.DealProposal, _ *wire.DealParams) { p.Provider = mustID(1234) }, nil, "is for provider"},
		// A label over 256 bytes cannot be built or decoded with
		// go-state-types' DealLabel; validate checks it all the same.
		{"bad piece size", func(p *market.DealProposal, _ *wire.DealParams) { p.PieceSize = 3000 }, nil, "invalid piece size"},
		{"not a piece CID", func(p *market.DealProposal, _ *wire.DealParams) { p.PieceCID = testRoot }, nil, "not a piece commitment CID"},
		{"end before start", func(p *market.DealProposal, _ *wire.DealParams) { p.EndEpoch = p.StartEpoch }, nil, "is not after the start epoch"},
		{"start passed", func(p *market.DealProposal, _ *wire.DealParams) { p.StartEpoch = 50 }, nil, "has already passed"},
		{"too short", func(p *market.DealProposal, _ *wire.DealParams) { p.EndEpoch = p.StartEpoch + 1000 }, nil, "outside the market's bounds"},
		{"ends too late", func(p *market.DealProposal, _ *wire.DealParams) {
			p.StartEpoch = 100 + MaxSectorExpirationExtension - MinDealDuration + 10
			p.EndEpoch = p.StartEpoch + MinDealDuration
		}, nil, "epochs past the current epoch"},
		{"collateral low", func(p *market.DealProposal, _ *wire.DealParams) { p.ProviderCollateral = big.NewInt(9) }, nil, "provider collateral 9 is outside"},
		{"collateral high", func(p *market.DealProposal, _ *wire.DealParams) { p.ProviderCollateral = big.NewInt(21) }, nil, "provider collateral 21 is outside"},
		{"price low", func(p *market.DealProposal, _ *wire.DealParams) { p.StoragePricePerEpoch = big.NewInt(1) }, nil, "less than the asking price"},
		{"client escrow", func(p *market.DealProposal, _ *wire.DealParams) { p.ClientCollateral = chain.FIL(2000) }, nil, "available market escrow"},
		{"verified piece under 1 MiB", func(p *market.DealProposal, _ *wire.DealParams) { p.VerifiedDeal = true }, nil, "piece must be at least 1048576 bytes"},
		{"blocked piece", func(p *market.DealProposal, _ *wire.DealParams) { p.PieceCID = blocked }, nil, "is blocked"},
		{"start too soon", func(p *market.DealProposal, _ *wire.DealParams) { p.StartEpoch = 200 }, nil, "is too soon"},
		{"start too late", func(p *market.DealProposal, _ *wire.DealParams) {
			p.StartEpoch = 100 + 15*2880
			p.EndEpoch = p.StartEpoch + MinDealDuration
		}, nil, "too far in the future"},
		{"transfer type", func(_ *market.DealProposal, d *wire.DealParams) { d.Transfer.Type = "graphsync" }, nil, `transfer type "graphsync"`},
		{"transfer params", func(_ *market.DealProposal, d *wire.DealParams) { d.Transfer.Params = []byte(`{"URL":"ftp://x"}`) }, nil, "http transfer params"},
		{"transfer too big", func(_ *market.DealProposal, d *wire.DealParams) { d.Transfer.Size = 5000 }, nil, "more than the piece holds"},
		{"missing data root", func(_ *market.DealProposal, d *wire.DealParams) { d.DealDataRoot = cid.Undef }, nil, "data root CID is missing"},
		{"missing UUID", func(_ *market.DealProposal, d *wire.DealParams) { d.DealUUID = uuid.Nil }, nil, "UUID is missing"},
	}
	for i, c := range cases {
		params := h.deal("r.car", 1000, int64(100+i), c.mod)
		if c.post != nil {
			c.post(params)
		}
		r := h.p.Propose(context.Background(), params, "p")
		if r.Accepted || !strings.Contains(r.Message, c.want) {
			t.Errorf("%s: got %+v, want a rejection containing %q", c.name, r, c.want)
		}
	}
	// Verified deals of 1 MiB: the allocation the market actor makes at
	// publish must be valid, or the whole publish message fails.
	verified := func(start abi.ChainEpoch) func(*market.DealProposal, *wire.DealParams) {
		return func(p *market.DealProposal, _ *wire.DealParams) {
			p.VerifiedDeal, p.StoragePricePerEpoch = true, big.NewInt(1_000_000)
			if start != 0 {
				p.StartEpoch, p.EndEpoch = start, start+MinDealDuration
			}
		}
	}
	for i, c := range []struct {
		name  string
		start abi.ChainEpoch
		want  string
	}{
		{"verified, starting after its allocation would expire", 100 + 60*2880 + 1, "must start within 172800 epochs"},
		{"verified without enough DataCap", 0, "DataCap 512 is less than"},
	} {
		r := h.p.Propose(context.Background(), h.deal("v.car", 600_000, int64(200+i), verified(c.start)), "p")
		if r.Accepted || !strings.Contains(r.Message, c.want) {
			t.Errorf("%s: got %+v, want a rejection containing %q", c.name, r, c.want)
		}
	}
	if f, s := tagCounts(t, h); f != 0 || s != 0 {
		t.Fatalf("rejections left tags: funds %d, space %d", f, s)
	}

	// Policy switches.
	h.p.cfg.RejectOnline = true
	if r := h.p.Propose(context.Background(), h.deal("o.car", 1000, 300, nil), "p"); r.Accepted || !strings.Contains(r.Message, "online deals") {
		t.Errorf("online deal with RejectOnline: %+v", r)
	}
	h.p.cfg.RejectOnline = false
	h.p.cfg.RejectUnverified = true
	if r := h.p.Propose(context.Background(), h.deal("o.car", 1000, 301, nil), "p"); r.Accepted || !strings.Contains(r.Message, "unverified deals") {
		t.Errorf("unverified deal with RejectUnverified: %+v", r)
	}
	h.p.cfg.RejectUnverified = false
	h.p.cfg.MaxPieceSize = 1024
	if r := h.p.Propose(context.Background(), h.deal("o.car", 1500, 302, nil), "p"); r.Accepted || !strings.Contains(r.Message, "provider's maximum") {
		t.Errorf("piece above MaxPieceSize: %+v", r)
	}
}

func encodeCBOR(t *testing.T, m interface{ MarshalCBOR(io.Writer) error }) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := m.MarshalCBOR(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestFilterCommand(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) {
		c.FilterCommand = []string{"sh", "-c", `grep -q '"IsOffline":true' && exit 0; echo "only offline deals today"; exit 1`}
	})
	h.start()
	r := h.p.Propose(context.Background(), h.deal("f.car", 1000, 1, nil), "p")
	if r.Accepted || r.Message != "deal rejected by filter: only offline deals today" {
		t.Fatalf("filter rejection: %+v", r)
	}
	off := h.deal("g.car", 1000, 2, func(_ *market.DealProposal, d *wire.DealParams) { d.IsOffline, d.Transfer = true, wire.Transfer{} })
	if r := h.p.Propose(context.Background(), off, "p"); !r.Accepted {
		t.Fatalf("filter should accept offline deal: %+v", r)
	}

	h.p.cfg.FilterCommand = []string{"sleep", "5"}
	h.p.cfg.FilterTimeout = 50 * 1e6
	if r := h.p.Propose(context.Background(), h.deal("h.car", 1000, 3, nil), "p"); r.Accepted || !strings.Contains(r.Message, "did not answer within") {
		t.Fatalf("slow filter: %+v", r)
	}
}

// TestAdmissionRace has many proposals race for funds and staging space
// that only a few can have.
func TestAdmissionRace(t *testing.T) {
	for _, kind := range []string{"funds", "space"} {
		t.Run(kind, func(t *testing.T) {
			const room = 3
			h := newHarness(t, t.TempDir(), func(c *Config) {
				if kind == "space" {
					c.StagingCapacity = room * 1000
				}
			})
			if kind == "funds" {
				// Collateral 10 per deal: escrow for exactly `room` deals.
				h.fc.market[testMiner] = chain.MarketBalance{Escrow: big.NewInt(room*10 + 5), Locked: big.Zero()}
			}
			h.dl.block = make(chan struct{}) // keep deals (and their tags) in flight
			h.start()
			const n = 24
			deals := make([]*wire.DealParams, n)
			for i := range deals {
				deals[i] = h.deal("race.car", 1000, 5, func(p *market.DealProposal, _ *wire.DealParams) {
					p.StartEpoch += abi.ChainEpoch(i) // distinct proposals
					p.EndEpoch += abi.ChainEpoch(i)
				})
			}
			var wg sync.WaitGroup
			results := make([]wire.DealResponse, n)
			for i := range deals {
				wg.Add(1)
				go func() {
					defer wg.Done()
					results[i] = h.p.Propose(context.Background(), deals[i], "p")
				}()
			}
			wg.Wait()
			accepted := 0
			for _, r := range results {
				if r.Accepted {
					accepted++
				} else if !strings.Contains(r.Message, map[string]string{"funds": "market escrow for this deal's collateral", "space": "not enough staging space"}[kind]) {
					t.Errorf("unexpected rejection: %s", r.Message)
				}
			}
			if accepted != room {
				t.Fatalf("%d deals accepted, room for %d", accepted, room)
			}
			close(h.dl.block)
		})
	}
}

func TestCommPMismatchFailsDeal(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	h.start()
	params := h.deal("m.car", 1500, 1, nil)
	// The served data differs from what the client committed to.
	if err := os.WriteFile(filepath.Join(h.dl.srcDir, "m.car"), make([]byte, 1500), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := h.p.Propose(context.Background(), params, "p"); !r.Accepted {
		t.Fatal(r.Message)
	}
	d := h.waitFor(params.DealUUID, failed, "failure")
	if !strings.Contains(d.Error, "does not match the deal's") {
		t.Fatalf("error %q", d.Error)
	}
	if f, s := tagCounts(t, h); f != 0 || s != 0 {
		t.Fatalf("tags left: funds %d, space %d", f, s)
	}
	h.waitGone(params.DealUUID)
}

func TestOfflineImport(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	h.start()
	params := h.deal("off.car", 1200, 1, func(_ *market.DealProposal, d *wire.DealParams) { d.IsOffline, d.Transfer = true, wire.Transfer{} })
	if r := h.p.Propose(context.Background(), params, "p"); !r.Accepted {
		t.Fatal(r.Message)
	}
	ctx := context.Background()
	wrong := filepath.Join(h.dir, "wrong.car")
	os.WriteFile(wrong, make([]byte, 1200), 0o644)
	if err := h.p.ImportData(ctx, params.DealUUID, wrong); err == nil || !strings.Contains(err.Error(), "the deal's is") {
		t.Fatalf("import of wrong data: %v", err)
	}
	if err := h.p.ImportData(ctx, params.DealUUID, filepath.Join(h.dir, "missing")); err == nil {
		t.Fatal("import of a missing file succeeded")
	}
	good := filepath.Join(h.dl.srcDir, "off.car")
	if err := h.p.ImportData(ctx, params.DealUUID, good); err != nil {
		t.Fatal(err)
	}
	h.waitFor(params.DealUUID, complete, Complete)
	if _, err := os.Stat(good); err != nil {
		t.Fatalf("imported file was removed: %v", err)
	}
	if h.sealer.crcs != 1 {
		t.Fatalf("sealing was given the imported data's CRC-32C %d times, want once", h.sealer.crcs)
	}
	if err := h.p.ImportData(ctx, params.DealUUID, good); err == nil {
		t.Fatal("second import accepted")
	}
}

// TestImportProgress: while import-data hashes the file, the deal's bytes
// received (what the status protocol and `ferryd deal show` report) grow.
// A FIFO as the file lets the test hold the import half way.
func TestImportProgress(t *testing.T) {
	// The batch waits for PublishNow, so nothing reads the FIFO again
	// before the test swaps it for a plain file (imports are read in place).
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 8; c.PublishMsgPeriod = 1e12 })
	h.start()
	params := h.deal("prog.car", 300000, 7, func(p *market.DealProposal, d *wire.DealParams) {
		p.StoragePricePerEpoch = big.NewInt(100000) // a 512 KiB piece asks more than the default
		d.IsOffline, d.Transfer = true, wire.Transfer{}
	})
	if r := h.p.Propose(context.Background(), params, "p"); !r.Accepted {
		t.Fatal(r.Message)
	}
	data, err := os.ReadFile(filepath.Join(h.dl.srcDir, "prog.car"))
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(h.dir, "import.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	done := make(chan error, 1)
	go func() { done <- h.p.ImportData(context.Background(), params.DealUUID, fifo) }()
	// Opening the write end without a reader fails (ENXIO) rather than
	// blocking, so an import that ends early cannot hang the test.
	var w *os.File
	for w == nil {
		select {
		case err := <-done:
			t.Fatalf("import ended before reading the file: %v", err)
		default:
		}
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w = f
		} else {
			time.Sleep(time.Millisecond)
		}
	}
	half := len(data) / 2
	if _, err := w.Write(data[:half]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := h.p.Deal(context.Background(), params.DealUUID)
		if err != nil {
			t.Fatal(err)
		}
		if d.BytesReceived >= uint64(half) {
			if d.Checkpoint != Accepted {
				t.Fatalf("deal moved on before the import finished: %s", d.Checkpoint)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bytes received stayed at %d during the import (%d written)", d.BytesReceived, half)
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.Write(data[half:])
	w.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	os.Remove(fifo)
	if err := os.WriteFile(fifo, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// The deal joins the batch queue on its own goroutine: publish until
	// it has.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := h.p.PublishNow(context.Background()); err != nil {
			t.Fatal(err)
		}
		if d, err := h.p.Deal(context.Background(), params.DealUUID); err == nil && d.Checkpoint != Transferred {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the deal never left Transferred")
		}
		time.Sleep(20 * time.Millisecond)
	}
	d := h.waitFor(params.DealUUID, complete, Complete)
	if d.BytesReceived != uint64(len(data)) {
		t.Fatalf("bytes received %d after the import, want %d", d.BytesReceived, len(data))
	}
}

// AddPiece reports how much of the staged data it has read while it runs.
func TestAddPieceProgress(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	h.sealer.hold = make(chan struct{})
	h.start()
	params := h.deal("add.car", 1500, 3, nil)
	if r := h.p.Propose(context.Background(), params, "p"); !r.Accepted {
		t.Fatal(r.Message)
	}
	d := h.waitFor(params.DealUUID, func(d *DealInfo) bool { return d.AddPieceBytes > 0 }, "AddPiece progress")
	if d.Checkpoint != PublishConfirmed || d.AddPieceBytes != 1500 {
		t.Fatalf("during AddPiece: checkpoint %s, %d bytes added, want all 1500", d.Checkpoint, d.AddPieceBytes)
	}
	close(h.sealer.hold)
	d = h.waitFor(params.DealUUID, complete, Complete)
	if d.AddPieceBytes != 0 {
		t.Fatalf("AddPiece progress %d once the piece is in a sector", d.AddPieceBytes)
	}
}

func TestBatchWithInvalidDeal(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 3; c.PublishMsgPeriod = 1e12 })
	h.fc.rejectNext = 1
	h.start()
	var ids []uuid.UUID
	for i := 0; i < 3; i++ {
		params := h.deal(fmt.Sprintf("b%d.car", i), 1000, int64(9+i), nil)
		if r := h.p.Propose(context.Background(), params, "p"); !r.Accepted {
			t.Fatal(r.Message)
		}
		ids = append(ids, params.DealUUID)
	}
	var fails, done int
	for _, id := range ids {
		d := h.waitFor(id, func(d *DealInfo) bool { return complete(d) || failed(d) }, "an end")
		if failed(d) {
			fails++
			if !strings.Contains(d.Error, "market actor rejected") {
				t.Errorf("error %q", d.Error)
			}
		} else {
			done++
		}
	}
	if msgs, _ := h.fc.publishMsgs(); msgs != 1 || fails != 1 || done != 2 {
		t.Fatalf("%d messages, %d failed, %d complete", msgs, fails, done)
	}
}

func TestPublishNowAndOperator(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.PublishMsgPeriod = 1e12; c.MaxDealsPerPublishMsg = 8 })
	h.start()
	ctx := context.Background()
	a := h.deal("a.car", 1000, 1, nil)
	b := h.deal("b.car", 1000, 2, nil)
	for _, d := range []*wire.DealParams{a, b} {
		if r := h.p.Propose(ctx, d, "p"); !r.Accepted {
			t.Fatal(r.Message)
		}
	}
	h.waitFor(a.DealUUID, func(d *DealInfo) bool { return d.Checkpoint == Transferred }, Transferred)
	h.waitFor(b.DealUUID, func(d *DealInfo) bool { return d.Checkpoint == Transferred }, Transferred)
	if err := h.p.Cancel(ctx, b.DealUUID); err != nil {
		t.Fatal(err)
	}
	if err := h.p.PublishNow(ctx); err != nil {
		t.Fatal(err)
	}
	h.waitFor(a.DealUUID, complete, Complete)
	if d := h.waitFor(b.DealUUID, failed, "failure"); d.Error != "cancelled by the operator" {
		t.Fatalf("cancelled deal error %q", d.Error)
	}
	if err := h.p.Cancel(ctx, a.DealUUID); err == nil {
		t.Fatal("cancelled a complete deal")
	}
	if err := h.p.Retry(ctx, b.DealUUID); err == nil {
		t.Fatal("retried a failed deal")
	}
	list, err := h.p.Deals(ctx, DealFilter{})
	if err != nil || len(list) != 2 {
		t.Fatalf("Deals: %v %d", err, len(list))
	}
	if _, err := h.p.Deal(ctx, uuid.New()); !errors.Is(err, ErrUnknownDeal) {
		t.Fatalf("unknown deal: %v", err)
	}
}

func TestRetryAndStartEpochPassed(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	h.sealer.fail = errors.New("sealer offline")
	h.start()
	ctx := context.Background()
	params := h.deal("s.car", 1000, 1, nil)
	if r := h.p.Propose(ctx, params, "p"); !r.Accepted {
		t.Fatal(r.Message)
	}
	d := h.waitFor(params.DealUUID, func(d *DealInfo) bool { return d.Retry == RetryManual }, "manual retry")
	if !strings.Contains(d.Error, "sealer offline") || d.Checkpoint != PublishConfirmed {
		t.Fatalf("deal after failures: %+v", d)
	}
	// The start epoch passes while it waits: the retry fails it for good.
	h.fc.setHeight(params.ClientDealProposal.Proposal.StartEpoch)
	h.sealer.mu.Lock()
	h.sealer.fail = nil
	h.sealer.mu.Unlock()
	if err := h.p.Retry(ctx, params.DealUUID); err != nil {
		t.Fatal(err)
	}
	d = h.waitFor(params.DealUUID, failed, "failure")
	if !strings.Contains(d.Error, "passed (current epoch") {
		t.Fatalf("error %q", d.Error)
	}
	if f, s := tagCounts(t, h); f != 0 || s != 0 {
		t.Fatalf("tags left: funds %d, space %d", f, s)
	}
}

// TestSealerUnavailableWaits: a sealer that cannot be reached (a
// lotus-miner restarting) makes AddPiece wait and try again, more often
// than MaxAutoRetries, without counting the tries or handing the deal to
// an operator; once the sealer answers the deal completes.
func TestSealerUnavailableWaits(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	h.sealer.fail = fmt.Errorf("lotus-miner SectorAddPieceToAny: %w: connection refused", ErrSealerUnavailable)
	h.start()
	ctx := context.Background()
	params := h.deal("down.car", 1000, 1, nil)
	if r := h.p.Propose(ctx, params, "p"); !r.Accepted {
		t.Fatal(r.Message)
	}
	d := h.waitFor(params.DealUUID, func(d *DealInfo) bool {
		h.sealer.mu.Lock()
		defer h.sealer.mu.Unlock()
		return h.sealer.calls > 2*h.p.cfg.MaxAutoRetries
	}, "tries beyond MaxAutoRetries")
	if d.Retry == RetryManual || d.Retry == RetryFatal || d.Retries != 0 || !strings.Contains(d.Error, "connection refused") {
		t.Fatalf("deal while the sealer is down: %+v", d)
	}
	h.sealer.mu.Lock()
	h.sealer.fail = nil
	h.sealer.mu.Unlock()
	h.waitFor(params.DealUUID, complete, Complete)
}

func TestStatusAndAsk(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	h.start()
	ctx := context.Background()
	params := h.deal("st.car", 1000, 1, nil)
	if r := h.p.Propose(ctx, params, "p"); !r.Accepted {
		t.Fatal(r.Message)
	}
	h.waitFor(params.DealUUID, complete, Complete)
	sig, err := wallet.Sign(h.clientKI, wire.StatusSigningBytes(params.DealUUID))
	if err != nil {
		t.Fatal(err)
	}
	resp := h.p.Status(ctx, &wire.DealStatusRequest{DealUUID: params.DealUUID, Signature: *sig})
	if resp.Error != "" || resp.DealStatus == nil || resp.DealStatus.Status != Complete.String() || resp.DealStatus.PublishCid == nil ||
		resp.DealStatus.ChainDealID == 0 || resp.NBytesReceived != 1000 || resp.TransferSize != 1000 || resp.DealStatus.SealingStatus != string(sealing.StateProving) {
		t.Fatalf("status: %+v %+v", resp, resp.DealStatus)
	}
	other, _ := wallet.Sign(testKey(t, 7), wire.StatusSigningBytes(params.DealUUID))
	if r := h.p.Status(ctx, &wire.DealStatusRequest{DealUUID: params.DealUUID, Signature: *other}); r.Error != "signature verification failed" || r.DealStatus != nil {
		t.Fatalf("bad signature: %+v", r)
	}
	if r := h.p.Status(ctx, &wire.DealStatusRequest{DealUUID: uuid.New(), Signature: crypto.Signature{Type: crypto.SigTypeSecp256k1}}); r.Error == "" {
		t.Fatal("unknown deal gave no error")
	}

	ask, err := h.p.Ask(ctx)
	if err != nil || !ask.Ask.Price.Equals(DefaultAskPrice()) {
		t.Fatalf("default ask: %+v %v", ask, err)
	}
	na, err := h.p.SetAsk(ctx, AskParams{Price: big.NewInt(7), VerifiedPrice: big.NewInt(1), MinPieceSize: 256, MaxPieceSize: 1 << 20})
	if err != nil || na.Ask.SeqNo != ask.Ask.SeqNo+1 {
		t.Fatalf("SetAsk: %+v %v", na, err)
	}
	b := encodeCBOR(t, na.Ask)
	if err := wallet.Verify(na.Signature, h.fc.worker, b); err != nil {
		t.Fatalf("ask signature: %v", err)
	}
	// It persists: a new provider over the same DB serves it.
	h.p.Close()
	h.start()
	got, _ := h.p.Ask(ctx)
	if !got.Ask.Price.Equals(big.NewInt(7)) || got.Ask.SeqNo != na.Ask.SeqNo {
		t.Fatalf("ask after restart: %+v", got.Ask)
	}
}

// TestPublishNonceTaken: another message takes the nonce of a signed publish
// message; the sender signs it again with the next nonce under the batch's
// id, and that one lands.
func TestPublishNonceTaken(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	h.fc.stealNonce = true
	h.start()
	params := h.deal("n.car", 1000, 1, nil)
	if r := h.p.Propose(context.Background(), params, "p"); !r.Accepted {
		t.Fatal(r.Message)
	}
	h.waitFor(params.DealUUID, complete, Complete)
	if msgs, pushes := h.fc.publishMsgs(); msgs != 1 || pushes != 1 {
		t.Fatalf("%d publish messages landed (%d pushes), want 1", msgs, pushes)
	}
	ctx := context.Background()
	d, err := h.p.store.deal(ctx, params.DealUUID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.p.store.batch(ctx, d.BatchID.Int64)
	if err != nil || b.state != batchLanded || !b.msgCid.Equals(d.PublishCid) {
		t.Fatalf("batch %+v (%v), want landed as the deal's publish CID %s", b, err, d.PublishCid)
	}
}

func TestDealListFilter(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	h.start()
	ctx := context.Background()
	done, _, waiting := h.doneAndWaiting(ctx)
	if err := h.p.Cancel(ctx, waiting[0].DealUUID); err != nil {
		t.Fatal(err)
	}
	ids := func(ds []DealInfo) []string {
		var out []string
		for _, d := range ds {
			out = append(out, d.UUID)
		}
		return out
	}
	for _, c := range []struct {
		f    DealFilter
		want []*wire.DealParams
	}{
		{DealFilter{}, []*wire.DealParams{waiting[2], waiting[1], waiting[0], done}},
		{DealFilter{State: StateActive}, []*wire.DealParams{waiting[2], waiting[1]}},
		{DealFilter{State: StateFailed}, []*wire.DealParams{waiting[0]}},
		{DealFilter{State: StateComplete}, []*wire.DealParams{done}},
		{DealFilter{State: StateEnded}, nil},
		{DealFilter{Limit: 2}, []*wire.DealParams{waiting[2], waiting[1]}},
		{DealFilter{Limit: 2, Offset: 2}, []*wire.DealParams{waiting[0], done}},
		{DealFilter{Offset: 3}, []*wire.DealParams{done}},
	} {
		got, err := h.p.Deals(ctx, c.f)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, p := range c.want {
			want = append(want, p.DealUUID.String())
		}
		if fmt.Sprint(ids(got)) != fmt.Sprint(want) {
			t.Errorf("%+v: %v, want %v", c.f, ids(got), want)
		}
	}
	counts, err := h.p.DealCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(counts) != fmt.Sprint([]DealCount{
		{StateActive, Accepted, 2}, {StateComplete, Complete, 1}, {StateFailed, Accepted, 1},
	}) {
		t.Errorf("deal counts %v", counts)
	}
	for _, f := range []DealFilter{{State: "stuck"}, {Limit: -1}, {Offset: -2}} {
		if _, err := h.p.Deals(ctx, f); err == nil {
			t.Errorf("%+v accepted", f)
		}
	}
}

// A kick that comes while the deal's goroutine is on its way out (it has
// just stopped to wait for the publisher) is not lost: the goroutine runs
// the deal once more and it completes without a restart.
func TestKickWhileStopping(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	params := h.deal("k.car", 1500, 5, nil)
	confirmed := make(chan struct{})
	var once sync.Once
	var p *Provider
	h.deps.OnCheckpoint = func(id uuid.UUID, cp string) {
		if id != params.DealUUID {
			return
		}
		switch cp {
		case PublishConfirmed.String():
			close(confirmed) // the publisher kicks the deal right after this
		case "Waiting":
			once.Do(func() {
				// Hold the goroutine that waits at Published until the
				// publisher's kick has found it still registered.
				<-confirmed
				for {
					p.mu.Lock()
					kicked := p.running[id] != nil && p.running[id].again
					p.mu.Unlock()
					if kicked {
						return
					}
					time.Sleep(time.Millisecond)
				}
			})
		}
	}
	h.start()
	p = h.p
	if r := h.p.Propose(context.Background(), params, "p"); !r.Accepted {
		t.Fatal(r.Message)
	}
	h.waitFor(params.DealUUID, complete, Complete)
}

// A deal the market actor rejected stays Published in a landed batch when
// the provider stops between recording the batch's result and failing the
// deal; after a restart its step fails it.
func TestRejectedDealFailsAfterRestart(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	h.fc.rejectNext = 0
	h.start()
	params := h.deal("r.car", 1000, 4, nil)
	if r := h.p.Propose(context.Background(), params, "p"); !r.Accepted {
		t.Fatal(r.Message)
	}
	h.waitFor(params.DealUUID, failed, "failure")
	h.p.Close()
	// As it was before the publisher failed it.
	if _, err := h.deps.DB.Exec(`UPDATE market_deals SET retry = '', error = '' WHERE uuid = ?`, params.DealUUID.String()); err != nil {
		t.Fatal(err)
	}
	h.start()
	d := h.waitFor(params.DealUUID, failed, "failure after the restart")
	if d.Checkpoint != Published || !strings.Contains(d.Error, "market actor rejected") {
		t.Fatalf("deal after the restart: %+v", d)
	}
}

// A rejection tells the client one stable sentence; what went wrong inside
// the provider reaches only the operator's log, with the deal's UUID.
func TestRejectionReasonAndCause(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	h.start()
	ctx := context.Background()

	h.fc.mu.Lock()
	h.fc.balanceErr[testMiner] = errors.New("lotus: connection refused to 10.0.0.7:1234")
	h.fc.mu.Unlock()
	params := h.deal("c.car", 1000, 1, nil)
	r := h.p.Propose(ctx, params, "peerC")
	if want := "deal rejected: the provider could not check its market balance; try again later"; r.Accepted || r.Message != want {
		t.Fatalf("client got %+v, want %q", r, want)
	}
	if l := h.logged(params.DealUUID.String(), "peerC", "check its market balance", "connection refused to 10.0.0.7:1234"); len(l) != 1 {
		t.Fatalf("operator log %q lacks the deal, the reason or the cause", h.logged(params.DealUUID.String()))
	}

	// A client's own mistake is logged with its deal too.
	bad := h.deal("d.car", 1000, 2, func(p *market.DealProposal, _ *wire.DealParams) { p.StoragePricePerEpoch = big.NewInt(1) })
	if r := h.p.Propose(ctx, bad, "peerC"); r.Accepted || !strings.HasPrefix(r.Message, "deal rejected: the storage price per epoch 1 is less") {
		t.Fatalf("client got %+v", r)
	}
	if l := h.logged(bad.DealUUID.String(), "less than the asking price"); len(l) != 1 {
		t.Fatalf("operator log %q", h.logged(bad.DealUUID.String()))
	}
	// An invalid signature: the verifier's detail stays in the log.
	sig := h.deal("e.car", 1000, 3, nil)
	sig.ClientDealProposal.Proposal.StoragePricePerEpoch = big.NewInt(1001)
	if r := h.p.Propose(ctx, sig, "peerC"); r.Message != "deal rejected: invalid client signature" {
		t.Fatalf("client got %+v", r)
	}
	if l := h.logged(sig.DealUUID.String(), "invalid client signature ("); len(l) != 1 {
		t.Fatalf("operator log %q lacks the verifier's error", h.logged(sig.DealUUID.String()))
	}
}

// TestClientEscrowTagged: ten concurrent proposals of 0.3 FIL each against
// a client's 1 FIL of available escrow: admission tags the client's escrow
// with the deal, so three are accepted and the others told why.
func TestClientEscrowTagged(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	h.fc.addClient(t, h.clientID, h.clientKI, chain.FIL(1))
	h.dl.block = make(chan struct{}) // keep the deals (and their tags) before publishing
	defer close(h.dl.block)
	h.start()
	const n = 10
	deals := make([]*wire.DealParams, n)
	for i := range deals {
		deals[i] = h.deal("escrow.car", 1000, 8, func(p *market.DealProposal, _ *wire.DealParams) {
			p.StartEpoch += abi.ChainEpoch(i) // distinct proposals
			p.EndEpoch += abi.ChainEpoch(i)
			fee := big.Mul(p.StoragePricePerEpoch, big.NewInt(int64(p.Duration())))
			p.ClientCollateral = big.Sub(big.Div(chain.FIL(3), big.NewInt(10)), fee) // 0.3 FIL in all
		})
	}
	if need := deals[0].ClientDealProposal.Proposal.ClientBalanceRequirement(); !need.Equals(big.Div(chain.FIL(3), big.NewInt(10))) {
		t.Fatalf("a deal needs %s", need)
	}
	results := make([]wire.DealResponse, n)
	var wg sync.WaitGroup
	for i := range deals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.p.Propose(context.Background(), deals[i], "p")
		}()
	}
	wg.Wait()
	accepted := 0
	for _, r := range results {
		switch {
		case r.Accepted:
			accepted++
		case !strings.Contains(r.Message, "the client's available market escrow 1000000000000000000 cannot cover this deal's 300000000000000000 on top of the 900000000000000000"):
			t.Errorf("rejection: %s", r.Message)
		}
	}
	if accepted != 3 {
		t.Fatalf("%d deals accepted against 1 FIL of escrow, want 3", accepted)
	}
	// A failed deal gives its escrow back.
	for i, r := range results {
		if r.Accepted {
			if err := h.p.Fail(context.Background(), deals[i].DealUUID); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	again := h.deal("escrow.car", 1000, 8, func(p *market.DealProposal, _ *wire.DealParams) {
		p.StartEpoch += 100
		p.EndEpoch += 100
		p.ClientCollateral = big.Sub(big.Div(chain.FIL(3), big.NewInt(10)), big.Mul(p.StoragePricePerEpoch, big.NewInt(int64(p.Duration()))))
	})
	if r := h.p.Propose(context.Background(), again, "p"); !r.Accepted {
		t.Fatalf("a deal after one failed: %s", r.Message)
	}
}

// TestDuplicateByContent: a proposal with the same piece, client, provider,
// epochs and price as an earlier deal, signed again (client signatures are
// not deterministic), is rejected naming the first deal, also when both
// arrive at once; once the first failed before it was published, the same
// content is accepted again.
func TestDuplicateByContent(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	h.dl.block = make(chan struct{})
	defer close(h.dl.block)
	h.start()
	ctx := context.Background()
	resign := func(of *wire.DealParams) *wire.DealParams {
		d := *of
		d.DealUUID = uuid.New()
		prop := of.ClientDealProposal.Proposal
		h.sign(&prop, &d)
		if d.ClientDealProposal.ClientSignature.Equals(&of.ClientDealProposal.ClientSignature) {
			t.Fatal("the signature came out the same")
		}
		return &d
	}
	first := h.deal("dup.car", 1000, 3, nil)
	if r := h.p.Propose(ctx, first, "p"); !r.Accepted {
		t.Fatal(r.Message)
	}
	second := resign(first)
	want := "deal rejected: the proposal has the same piece, client, provider, epochs and price as deal " + first.DealUUID.String()
	if r := h.p.Propose(ctx, second, "p"); r.Accepted || r.Message != want {
		t.Fatalf("second proposal: %+v, want %q", r, want)
	}

	// Two at once: one wins.
	a := h.deal("dup2.car", 1000, 4, nil)
	b := resign(a)
	var ra, rb wire.DealResponse
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ra = h.p.Propose(ctx, a, "p") }()
	go func() { defer wg.Done(); rb = h.p.Propose(ctx, b, "p") }()
	wg.Wait()
	if ra.Accepted == rb.Accepted || !strings.Contains(ra.Message+rb.Message, "same piece, client, provider, epochs and price") {
		t.Fatalf("concurrent duplicates: %+v and %+v", ra, rb)
	}

	if err := h.p.Cancel(ctx, first.DealUUID); err != nil {
		t.Fatal(err)
	}
	if r := h.p.Propose(ctx, resign(first), "p"); !r.Accepted {
		t.Fatalf("proposal after the first was cancelled: %s", r.Message)
	}
}

// TestPublishPrecheck: a client withdraws its escrow between acceptance and
// publishing; the publisher checks each deal against the chain just before
// it builds the batch, so only that deal fails and the other one is
// published.
func TestPublishPrecheck(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 2; c.PublishMsgPeriod = 1e12 })
	otherID, otherKI := mustID(1002), testKey(t, 4)
	h.fc.addClient(t, otherID, otherKI, chain.FIL(10))
	h.start()
	ctx := context.Background()
	gone := h.deal("gone.car", 1000, 1, nil)
	h.clientID, h.clientKI = otherID, otherKI
	kept := h.deal("kept.car", 1000, 2, nil)
	if r := h.p.Propose(ctx, gone, "p"); !r.Accepted {
		t.Fatal(r.Message)
	}
	h.waitFor(gone.DealUUID, func(d *DealInfo) bool { return d.Checkpoint == Transferred }, Transferred)
	h.fc.addClient(t, mustID(1001), testKey(t, 2), big.Zero()) // the first client withdrew everything
	// The second deal fills the batch.
	if r := h.p.Propose(ctx, kept, "p"); !r.Accepted {
		t.Fatal(r.Message)
	}
	d := h.waitFor(gone.DealUUID, failed, "failure")
	if !strings.Contains(d.Error, "the client's available market escrow 0 no longer covers") {
		t.Fatalf("error %q", d.Error)
	}
	h.waitFor(kept.DealUUID, complete, Complete)
	if msgs, _ := h.fc.publishMsgs(); msgs != 1 {
		t.Fatalf("%d publish messages", msgs)
	}
}

// TestLegacyBatchFollowedByCID: a batch signed and pushed before batches had
// message ids (migration 0033 leaves it without one) is followed on chain by
// its CID after a restart; nothing is sent again.
func TestLegacyBatchFollowedByCID(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	h.sealer.fail = errors.New("sealer offline") // the deal stops after its publish
	h.start()
	params := h.deal("legacy.car", 1000, 6, nil)
	if r := h.p.Propose(context.Background(), params, "p"); !r.Accepted {
		t.Fatal(r.Message)
	}
	d := h.waitFor(params.DealUUID, func(d *DealInfo) bool { return d.Retry == RetryManual }, "a failed AddPiece")
	h.p.Close()
	h.sealer.mu.Lock()
	h.sealer.fail = nil
	h.sealer.mu.Unlock()
	// As migration 0033 leaves a batch pushed before it: no message id,
	// the deal Published.
	if _, err := h.deps.DB.Exec(`UPDATE market_publish_batches SET msg_id = '', state = 'sending'`); err != nil {
		t.Fatal(err)
	}
	if _, err := h.deps.DB.Exec(`UPDATE market_deals SET checkpoint = 'Published', chain_deal_id = 0, retry = '', retries = 0 WHERE uuid = ?`, d.UUID); err != nil {
		t.Fatal(err)
	}
	h.start()
	again := h.waitFor(params.DealUUID, complete, Complete)
	if again.ChainDealID != d.ChainDealID || again.PublishCID != d.PublishCID {
		t.Fatalf("deal after the restart: %+v, before: %+v", again, d)
	}
	if msgs, pushes := h.fc.publishMsgs(); msgs != 1 || pushes != 1 {
		t.Fatalf("%d publish messages, %d pushes, want 1 and 1", msgs, pushes)
	}
}
