package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v9/verifreg"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/ipfs/go-cid"
	"github.com/oklog/ulid/v2"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/httpdeal"
	"github.com/ferry-fil/ferry/httpdeal/mk20"
	"github.com/ferry-fil/ferry/internal/carv1"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/wallet"
)

// Curio's status names follow the market's checkpoints.
func TestMK20State(t *testing.T) {
	for _, c := range []struct {
		d    market.DealInfo
		want mk20.State
	}{
		{market.DealInfo{Checkpoint: market.Accepted}, mk20.StateAccepted},
		{market.DealInfo{Checkpoint: market.Accepted, BytesReceived: 1}, mk20.StateProcessing},
		{market.DealInfo{Checkpoint: market.Transferred}, mk20.StateSealing},
		{market.DealInfo{Checkpoint: market.AddedPiece}, mk20.StateIndexing},
		{market.DealInfo{Checkpoint: market.IndexedAndAnnounced}, mk20.StateSealing},
		{market.DealInfo{Checkpoint: market.Complete}, mk20.StateComplete},
		{market.DealInfo{Checkpoint: market.Transferred, Retry: market.RetryAuto}, mk20.StateSealing},
		{market.DealInfo{Checkpoint: market.Transferred, Retry: market.RetryFatal}, mk20.StateFailed},
	} {
		if got := mk20State(&c.d); got != c.want {
			t.Errorf("%s (retry %q, %d bytes): %s, want %s", c.d.Checkpoint, c.d.Retry, c.d.BytesReceived, got, c.want)
		}
	}
}

// An mk20 deal becomes the market's direct deal: its ULID the UUID, its
// allocation, piece, epochs and announcement, and its source; what Ferry
// does not take is refused with Curio's codes.
func TestMK20DirectDeal(t *testing.T) {
	clientAddr, _ := address.NewIDAddress(1500)
	provider, _ := address.NewIDAddress(1001)
	pc, err := piece.V1ToV2(mustPieceCID(t), 1500, 2048)
	if err != nil {
		t.Fatal(err)
	}
	alloc := verifreg.AllocationId(9)
	start := abi.ChainEpoch(5000)
	deal := func(mod func(*mk20.Deal)) *mk20.Deal {
		r := client.DDORequest{Client: clientAddr, Provider: provider, PieceCID: pc, URL: "http://127.0.0.1:1/a.car",
			StartEpoch: start, Duration: 600000, AllocationID: alloc}
		d := r.Deal()
		if mod != nil {
			mod(d)
		}
		return d
	}
	m := &mk20Market{verified: true}
	d := deal(func(d *mk20.Deal) {
		d.Data.SourceHTTP.URLs = []mk20.HTTPURL{
			{URL: "http://127.0.0.1:1/fallback.car", Priority: 0, Fallback: true},
			{URL: "http://127.0.0.1:1/second.car", Priority: 2},
			{URL: "http://127.0.0.1:1/first.car", Priority: 1, Headers: http.Header{"Authorization": {"Bearer x"}, "X-Two": {"a", "b"}}},
		}
	})
	dd, err := m.directDeal(d, "")
	if err != nil {
		t.Fatal(err)
	}
	if dd.UUID != httpdeal.DealUUID(d.Identifier) || [16]byte(dd.UUID) != [16]byte(d.Identifier) || dd.Client != clientAddr ||
		dd.AllocationID != 9 || dd.PieceCID != pc || dd.StartEpoch != start || dd.Duration != 600000 || dd.SkipIPNIAnnounce {
		t.Fatalf("direct deal %+v", dd)
	}
	if h := dd.Data.HTTP; h == nil || h.URL != "http://127.0.0.1:1/first.car" || h.Size != 1500 || h.Headers["Authorization"] != "Bearer x" ||
		h.Headers["X-Two"] != "a, b" || dd.Reservation != "mk20/"+d.Identifier.String() {
		t.Fatalf("download %+v, reservation %q", dd.Data.HTTP, dd.Reservation)
	}
	// The others follow, by priority, the fallback last.
	if f := dd.Data.HTTP.Fallbacks; len(f) != 2 || f[0].URL != "http://127.0.0.1:1/second.car" || f[1].URL != "http://127.0.0.1:1/fallback.car" || f[0].Headers != nil {
		t.Fatalf("fallbacks %+v", f)
	}

	up := deal(func(d *mk20.Deal) {
		d.Data.SourceHTTP, d.Data.SourceHTTPPut = nil, &mk20.DataSourceHTTPPut{}
		d.Products.RetrievalV1.AnnouncePayload = false
	})
	if dd, err := m.directDeal(up, ""); err != nil || !dd.Data.Upload || dd.Reservation != "" || !dd.SkipIPNIAnnounce {
		t.Fatalf("an upload, checked before it comes: %+v, %v", dd, err)
	}
	if dd, err := m.directDeal(up, "/staging/x"); err != nil || dd.Data.Staged != "/staging/x" || dd.Data.Upload || dd.Reservation == "" {
		t.Fatalf("an upload handed over: %+v, %v", dd, err)
	}
	off := deal(func(d *mk20.Deal) { d.Data.SourceHTTP, d.Data.SourceOffline = nil, &mk20.DataSourceOffline{} })
	if dd, err := m.directDeal(off, ""); err != nil || !dd.Data.Upload || dd.Reservation != "" {
		t.Fatalf("an offline deal: %+v, %v", dd, err)
	}

	for _, c := range []struct {
		name string
		m    *mk20Market
		d    *mk20.Deal
		code mk20.DealCode
	}{
		{"no allocation", m, deal(func(d *mk20.Deal) { d.Products.DDOV1.AllocationID = nil }), mk20.ErrProductValidationFailed},
		{"raw bytes", m, deal(func(d *mk20.Deal) { d.Data.Format = mk20.PieceDataFormat{Raw: &mk20.FormatBytes{}} }), mk20.ErrMalformedDataSource},
		{"verified deals off", &mk20Market{}, deal(nil), mk20.ErrProductNotEnabled},
	} {
		_, err := c.m.directDeal(c.d, "")
		var rej *mk20.Rejection
		if !errors.As(err, &rej) || rej.Code != c.code {
			t.Errorf("%s: %v, want code %d", c.name, err, c.code)
		}
	}
	// The market's refusals are Curio's "rejected by market", with the
	// market's reason.
	var rej *mk20.Rejection
	err = rejection(fmt.Errorf("%w: allocation 9 is for another piece", market.ErrDirectDealRejected))
	if !errors.As(err, &rej) || rej.Code != mk20.ErrDealRejectedByMarket || rej.Reason != "allocation 9 is for another piece" {
		t.Fatalf("rejection %v", err)
	}
	if other := errors.New("disk full"); rejection(other) != other {
		t.Fatal("an error of the provider's became a rejection")
	}
}

func mustPieceCID(t *testing.T) cid.Cid {
	t.Helper()
	calc := piece.NewCalc()
	calc.Write(make([]byte, 1500))
	cm, err := calc.SumAs(2048)
	if err != nil {
		t.Fatal(err)
	}
	return cm.CID()
}

// ferryd serves mk12 over HTTP and Market 2.0 on its retrieval listener,
// each unless turned off; the mk12 ask is the market's, byte for byte.
func TestHTTPDealRoutes(t *testing.T) {
	ctx := context.Background()
	dir := testRepo(t)
	n, err := Start(ctx, dir, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + n.Config.HTTP.Listen
	p, err := client.LookupProvider(ctx, n.Chain, n.Miner)
	if err != nil {
		t.Fatal(err)
	}
	ask, err := client.QueryAskHTTP(ctx, n.Chain, nil, []string{base}, p)
	if err != nil {
		t.Fatalf("mk12 ask over HTTP: %v", err)
	}
	want, err := n.Provider.Ask(ctx)
	if err != nil || ask.Price.String() != want.Ask.Price.String() || ask.Miner != n.Miner {
		t.Fatalf("ask over HTTP %+v, the market's %+v (%v)", ask, want, err)
	}
	ki, err := wallet.Generate(wallet.TypeSecp256k1)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := ki.Address()
	mc := &client.MK20Client{BaseURL: base, Client: addr, Sign: func(b []byte) (*crypto.Signature, error) { return wallet.Sign(ki, b) }}
	products, err := mc.Products(ctx)
	if err != nil || len(products) != 2 {
		t.Fatalf("mk20 products %v, %v", products, err)
	}
	if _, err := mc.Status(ctx, ulid.Make()); err == nil {
		t.Fatal("status of a deal nobody made")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	// Both off: the routes are not there.
	cfg, err := os.ReadFile(filepath.Join(dir, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	off := strings.Replace(string(cfg), "[HTTP]\n", "[HTTP]\nEnableMK12 = false\nEnableMK20 = false\n", 1)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(off), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err = Start(ctx, dir, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, path := range []string{"/market/mk12/ask", "/market/mk20/products"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s with the API off: %s", path, resp.Status)
		}
	}
}

// An upload deal through ferryd's Market 2.0 API reaches the market as a
// direct deal named by its ULID: the upload's staging reservation becomes
// the deal's tag (counted once all along), a hand-off made again (a crash
// before httpdeal recorded it) changes nothing, and the deal completes
// with its allocation claimed.
func TestMK20DealThroughMarket(t *testing.T) {
	if testing.Short() {
		t.Skip("seals a sector on the devnet")
	}
	ctx := context.Background()
	dir := testRepo(t)
	cfg, _ := os.ReadFile(filepath.Join(dir, "config.toml"))
	cfg = []byte(strings.Replace(strings.Replace(strings.Replace(string(cfg), `DevnetSectorSize = "2KiB"`, `DevnetSectorSize = "8MiB"`, 1),
		"[HTTP]\n", "[HTTP]\nMinChunkSize = \"1MiB\"\n", 1), "[Sealing]\n", "[Sealing]\nWaitDealsDelay = \"1s\"\n", 1))
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := Start(ctx, dir, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()

	// A client with FIL and DataCap, a CAR, and an allocation for its piece.
	r, _, err := client.InitRepo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addr, err := r.Wallet.New(wallet.TypeSecp256k1)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Devnet.Fund(ctx, addr, chain.FIL(100)); err != nil {
		t.Fatal(err)
	}
	if err := n.Devnet.GrantDataCap(ctx, addr, abi.NewStoragePower(4<<20)); err != nil {
		t.Fatal(err)
	}
	car := filepath.Join(t.TempDir(), "data.car")
	f, err := os.Create(car)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carv1.WriteFileDAG(f, 2<<20+1000, 256<<10, 7); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cm, err := piece.FromFile(ctx, car, nil)
	if err != nil {
		t.Fatal(err)
	}
	allocs, err := client.Allocate(ctx, n.Chain, r, addr, []client.AllocationRequest{{Provider: n.Miner, PieceCID: cm.CIDv2(),
		TermMin: client.DefaultTermMin, TermMax: client.DefaultTermMax, Expiration: client.DefaultAllocationExpiration}}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}

	mc := &client.MK20Client{BaseURL: "http://" + n.Config.HTTP.Listen, Client: addr, Sign: r.Wallet.Signer(addr)}
	head, err := n.Chain.ChainHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := client.DDORequest{Client: addr, Provider: n.Miner, PieceCID: cm.CIDv2(), StartEpoch: head.Height() + 2000,
		AllocationID: verifreg.AllocationId(allocs[0].ID)}
	d := req.Deal()
	if err := mc.MakeDeal(ctx, d); err != nil {
		t.Fatal(err)
	}
	reserved, err := n.Provider.Reserved(ctx)
	if err != nil || reserved.StagingTagged != cm.PayloadSize {
		t.Fatalf("staging held while the upload waits: %+v, %v; want the payload's %d bytes", reserved, err, cm.PayloadSize)
	}
	if err := mc.Upload(ctx, d.Identifier, car, 1<<20, nil); err != nil {
		t.Fatal(err)
	}
	id := httpdeal.DealUUID(d.Identifier)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := n.Provider.Deal(ctx, id); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the upload never reached the market")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if res, err := n.Provider.StagingReservations(ctx); err != nil || len(res) != 0 {
		t.Fatalf("reservations after the hand-off: %v, %v", res, err)
	}
	// Handed over again: nothing changes.
	m := &mk20Market{p: n.Provider, verified: true}
	if err := m.Start(ctx, d, filepath.Join(n.Repo.Path("staging"), "gone")); err != nil {
		t.Fatalf("the hand-off made again: %v", err)
	}
	if ds, err := n.Provider.Deals(ctx, market.DealFilter{}); err != nil || len(ds) != 1 {
		t.Fatalf("deals after a second hand-off: %d, %v", len(ds), err)
	}
	for {
		st, err := mc.Status(ctx, d.Identifier)
		if err != nil {
			t.Fatal(err)
		}
		if st.DDOV1.State == mk20.StateComplete {
			break
		}
		if st.DDOV1.State == mk20.StateFailed || time.Now().After(deadline.Add(60*time.Second)) {
			t.Fatalf("deal %s: %+v", d.Identifier, st.DDOV1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cl, err := n.Chain.StateGetClaim(ctx, n.Miner, chain.ClaimID(allocs[0].ID), chain.EmptyTSK)
	if err != nil || cl == nil || !cl.Data.Equals(cm.CID()) {
		t.Fatalf("claim %+v, %v", cl, err)
	}
	if reserved, err := n.Provider.Reserved(ctx); err != nil || reserved.StagingTagged != 0 {
		t.Fatalf("staging held after the deal completed: %+v, %v", reserved, err)
	}
}
