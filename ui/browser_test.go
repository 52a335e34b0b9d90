package ui_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-jsonrpc/auth"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/host"

	ferryauth "github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/node"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/wallet"
)

// chromiumPath finds Debian's chromium; without it the browser tests skip,
// unless FERRY_REQUIRE_BROWSER is set (as .ci/run does), when they fail.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("FERRY_CHROMIUM"), "/usr/bin/chromium", "chromium"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("FERRY_REQUIRE_BROWSER") != "" {
		t.Fatal("chromium is not installed (apt-get install -y chromium) and FERRY_REQUIRE_BROWSER is set")
	}
	t.Skip("chromium is not installed: the browser tests need Debian's chromium (apt-get install -y chromium); .ci/run installs it")
	return ""
}

// artifactDir is where screenshots go: FERRY_ARTIFACTS, or a new
// temporary directory kept after the test.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FERRY_ARTIFACTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "ferry-ui-screenshots-"); err != nil {
			t.Fatal(err)
		}
	} else {
		dir = filepath.Join(dir, "ui")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// startNode starts a ferryd on a fast devnet on loopback ports: blocks
// every 50 ms, 2 KiB sectors, deals published and sectors packed at once,
// downloads not retried inside one attempt (so a failing server shows as
// a deal waiting for its retry).
func startNode(t *testing.T) *node.Node {
	t.Helper()
	dir := t.TempDir()
	cfg := node.DefaultConfig()
	cfg.Chain.DevnetBlockTime = node.Duration(50 * time.Millisecond)
	cfg.Chain.DevnetListen = "127.0.0.1:0"
	cfg.Chain.DevnetSectorSize = "2KiB"
	cfg.Libp2p.ListenAddresses = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.HTTP.Listen = freeAddr(t)
	cfg.API.Listen = freeAddr(t)
	cfg.Sealing.MinerAPIListen = "127.0.0.1:0"
	cfg.Sealing.WaitDealsDelay = node.Duration(time.Second)
	cfg.Market.PublishMsgPeriod = node.Duration(time.Second)
	cfg.Market.MaxDealsPerPublishMsg = 1
	cfg.Transfer.MaxRetries = -1
	writeConfig(t, dir, cfg)
	d, err := node.Start(context.Background(), dir, node.Options{Logf: func(f string, a ...any) { t.Logf("ferryd: "+f, a...) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("closing ferryd: %v", err)
		}
	})
	return d
}

func freeAddr(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(http.NotFoundHandler())
	addr := s.Listener.Addr().String()
	s.Close()
	return addr
}

func writeConfig(t *testing.T, dir string, cfg node.Config) {
	t.Helper()
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// dataServer serves deal CARs by name; a name marked failing answers 503.
type dataServer struct {
	*httptest.Server
	mu      sync.Mutex
	files   map[string][]byte
	failing map[string]bool
}

func newDataServer(t *testing.T) *dataServer {
	ds := &dataServer{files: map[string][]byte{}, failing: map[string]bool{}}
	ds.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		ds.mu.Lock()
		b, fail := ds.files[name], ds.failing[name]
		ds.mu.Unlock()
		switch {
		case fail:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case b == nil:
			http.NotFound(w, r)
		default:
			http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
		}
	}))
	t.Cleanup(ds.Close)
	return ds
}

func (ds *dataServer) setFailing(name string, fail bool) {
	ds.mu.Lock()
	ds.failing[name] = fail
	ds.mu.Unlock()
}

// dealMaker proposes deals to the node from a funded client.
type dealMaker struct {
	t      *testing.T
	d      *node.Node
	h      host.Host
	client address.Address
	ds     *dataServer
	seed   uint64
}

func newDealMaker(t *testing.T, d *node.Node, ds *dataServer) *dealMaker {
	t.Helper()
	key, err := d.Wallet.New(wallet.TypeSecp256k1)
	if err != nil {
		t.Fatal(err)
	}
	pushWait(t, d, &chain.Message{From: d.Devnet.GenesisAddress(), To: key, Value: chain.FIL(100)})
	var params bytes.Buffer
	if err := key.MarshalCBOR(&params); err != nil {
		t.Fatal(err)
	}
	pushWait(t, d, &chain.Message{From: key, To: builtin.StorageMarketActorAddr, Method: builtin.MethodsMarket.AddBalance,
		Params: params.Bytes(), Value: chain.FIL(50)})
	h, err := client.NewHost()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return &dealMaker{t: t, d: d, h: h, client: key, ds: ds}
}

func pushWait(t *testing.T, d *node.Node, msg *chain.Message) {
	t.Helper()
	ctx := context.Background()
	if msg.Value.Int == nil {
		msg.Value = big.Zero()
	}
	sm, err := d.Chain.MpoolPushMessage(ctx, msg, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := sm.Cid()
	if err != nil {
		t.Fatal(err)
	}
	lk, err := d.Chain.StateWaitMsg(ctx, c, 1, -1, true)
	if err != nil || lk.Receipt.ExitCode != 0 {
		t.Fatalf("message %s: %v %v", c, lk, err)
	}
}

// deal makes a CAR of a small random file and proposes it: online from
// the data server (offline when offline is set).
func (m *dealMaker) deal(name string, offline bool) uuid.UUID {
	t := m.t
	t.Helper()
	ctx := context.Background()
	m.seed++
	dir := t.TempDir()
	data := make([]byte, 1200)
	r := rand.New(rand.NewPCG(m.seed, 7))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	src := filepath.Join(dir, name+".bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	carPath := filepath.Join(dir, name+".car")
	res, err := client.CreateCAR(ctx, []string{src}, carPath, client.CAROptions{})
	if err != nil {
		t.Fatal(err)
	}
	car, err := os.ReadFile(carPath)
	if err != nil {
		t.Fatal(err)
	}
	comm, err := piece.FromReader(ctx, bytes.NewReader(car), nil)
	if err != nil {
		t.Fatal(err)
	}
	m.ds.mu.Lock()
	m.ds.files[name] = car
	m.ds.mu.Unlock()
	req := client.DealRequest{Provider: m.d.Miner, Client: m.client, PieceCID: comm.CID(), PieceSize: comm.Size,
		CARSize: uint64(len(car)), PayloadCID: res.Root, Offline: offline}
	if !offline {
		req.HTTPURL = m.ds.URL + "/" + name
	}
	out, err := client.MakeDeal(ctx, m.d.Chain, m.h, m.d.Wallet, req)
	if err != nil {
		t.Fatalf("deal %s: %v", name, err)
	}
	return out.DealUUID
}

// waitDeal waits until the deal satisfies ok.
func waitDeal(t *testing.T, d *node.Node, id uuid.UUID, what string, ok func(*market.DealDetail) bool) *market.DealDetail {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		dd, err := d.Provider.Deal(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(dd) {
			return dd
		}
		if time.Now().After(deadline) {
			t.Fatalf("deal %s never got %s: %+v", id, what, dd.DealInfo)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func reached(cp market.Checkpoint) func(*market.DealDetail) bool {
	return func(dd *market.DealDetail) bool { return dd.Checkpoint >= cp }
}

// browserCtx starts headless chromium with a fresh profile.
func browserCtx(t *testing.T, exe string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// run runs browser actions with a bound on how long they may wait.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(wctx, actions...); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, where(ctx))
	}
}

// where describes the page a failed step left, for the failure message.
func where(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return "at " + loc + ":\n" + html
}

// value runs one browser action that returns a value.
func value[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	v, err := chromedp.Run(wctx, a)
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, where(ctx))
	}
	return v
}

// colorScheme sets prefers-color-scheme.
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia,
			emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return err
	})
}

// poll waits until the JavaScript expression is true.
func poll(expr string) chromedp.Action[chromedp.Void] {
	p := chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(2*time.Minute))
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := p(ctx, t)
		return chromedp.Void{}, err
	}
}

// shoot saves screenshots of the current page at desktop and phone size,
// light and dark.
func shoot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	for _, size := range []struct {
		label  string
		w, h   int64
		mobile bool
	}{{"1280x800", 1280, 800, false}, {"phone", 390, 844, true}} {
		for _, scheme := range []string{"light", "dark"} {
			run(t, ctx, "screenshot "+name,
				chromedp.EmulateViewport(size.w, size.h, func(p *emulation.SetDeviceMetricsOverrideParams, _ *emulation.SetTouchEmulationEnabledParams) {
					p.Mobile = size.mobile
				}),
				colorScheme(scheme),
				chromedp.Sleep(300*time.Millisecond), // let the layout settle for the picture; nothing is asserted on it
			)
			png := value(t, ctx, "screenshot "+name, chromedp.CaptureScreenshot())
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%s-%s.png", name, size.label, scheme)), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	run(t, ctx, "restore the viewport", chromedp.EmulateViewport(1280, 800), colorScheme("light"))
}

func login(t *testing.T, ctx context.Context, base, token string) {
	t.Helper()
	run(t, ctx, "log in",
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("live")),
	)
}

func mint(t *testing.T, d *node.Node, perms ...auth.Permission) string {
	t.Helper()
	secret, err := d.Repo.Secret()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ferryauth.Mint(secret, perms...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestBrowser drives the UI in chromium against a real ferryd with deals
// in several checkpoints.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: a devnet ferryd and a browser")
	}
	exe := chromiumPath(t)
	shots := artifactDir(t)
	d := startNode(t)
	ds := newDataServer(t)
	m := newDealMaker(t, d, ds)
	base := "http://" + d.Config.API.Listen

	// Deals in several checkpoints: one indexed (then on to Complete),
	// one whose server fails (waiting for a retry), one offline waiting
	// for its data, one cancelled.
	done := m.deal("done", false)
	ds.setFailing("flaky", true)
	flaky := m.deal("flaky", false)
	offline := m.deal("offline", true)
	cancelled := m.deal("cancelled", true)
	if err := d.Provider.Cancel(context.Background(), cancelled); err != nil {
		t.Fatal(err)
	}
	doneDeal := waitDeal(t, d, done, "indexed", reached(market.IndexedAndAnnounced))
	waitDeal(t, d, flaky, "a retry pending", func(dd *market.DealDetail) bool { return dd.Retry == market.RetryAuto })

	ctx := browserCtx(t, exe)
	login(t, ctx, base, mint(t, d, "read", "write", "sign", "admin"))
	run(t, ctx, "overview", chromedp.WaitVisible(chromedp.CSS("svg.chart")))
	text := value(t, ctx, "overview text", chromedp.Text(chromedp.ID("live")))
	for _, want := range []string{"Funds", "Staging", "Transfers in flight", "Sectors", "IPNI"} {
		if !strings.Contains(text, want) {
			t.Errorf("overview lacks %q: %s", want, text)
		}
	}
	shoot(t, ctx, shots, "overview")

	// A new deal appears on the Deals page and moves on without a reload.
	row := func(id uuid.UUID) chromedp.CSS { return chromedp.CSS(fmt.Sprintf("tr[data-deal='%s']", id)) }
	run(t, ctx, "deals page",
		chromedp.Navigate(base+"/deals"),
		chromedp.WaitVisible(row(offline)),
	)
	value(t, ctx, "mark the page", chromedp.Evaluate[string](`window.ferryMark = "same page"`))
	fresh := m.deal("fresh", false)
	run(t, ctx, "the new deal appears and moves",
		chromedp.WaitVisible(row(fresh)),
		poll(fmt.Sprintf(`(() => { const c = document.querySelector("tr[data-deal='%s'] .checkpoint"); return c && c.textContent !== "Accepted"; })()`, fresh)),
	)
	if mark := value(t, ctx, "read the mark", chromedp.Evaluate[string](`window.ferryMark`)); mark != "same page" {
		t.Fatalf("the Deals page reloaded (mark %q)", mark)
	}
	shoot(t, ctx, shots, "deals")

	// The filters and the search reach the store.
	run(t, ctx, "search by payload CID", chromedp.Navigate(base+"/deals?q="+doneDeal.DataRoot), chromedp.WaitVisible(row(done)))
	if text := value(t, ctx, "rows", chromedp.Text(chromedp.ID("deal-rows"))); strings.Contains(text, short(offline.String())) {
		t.Errorf("search by the done deal's payload shows other deals: %s", text)
	}
	run(t, ctx, "filter failed", chromedp.Navigate(base+"/deals?state=failed"), chromedp.WaitVisible(row(cancelled)))
	if text := value(t, ctx, "rows", chromedp.Text(chromedp.ID("deal-rows"))); strings.Contains(text, short(done.String())) {
		t.Errorf("failed filter shows the done deal: %s", text)
	}

	// The flaky deal: open it, retry it (with its confirmation), and its
	// data arrives once the server is back.
	ds.setFailing("flaky", false)
	run(t, ctx, "open the flaky deal", chromedp.Navigate(base+"/deals/"+flaky.String()), chromedp.WaitVisible(chromedp.ID("deal-live")))
	if text := value(t, ctx, "deal status", chromedp.Text(chromedp.ID("deal-live"))); !strings.Contains(text, "retrying") || !strings.Contains(text, "503") {
		t.Errorf("flaky deal page: %s", text)
	}
	shoot(t, ctx, shots, "deal")
	run(t, ctx, "retry the flaky deal", chromedp.Click(chromedp.CSS(`a[href$="/retry"]`)), chromedp.WaitVisible(chromedp.CSS("button.danger")))
	shoot(t, ctx, shots, "confirm")
	run(t, ctx, "confirm the retry",
		chromedp.Click(chromedp.CSS("button.danger")),
		chromedp.WaitVisible(chromedp.CSS("p.notice")),
		poll(`document.querySelector("#deal-checkpoint").textContent !== "Accepted"`),
	)
	dd := waitDeal(t, d, flaky, "transferred", reached(market.Transferred))
	var retried bool
	for _, l := range dd.Logs {
		retried = retried || strings.Contains(l.Text, "retry requested by the operator")
	}
	if !retried {
		t.Fatalf("the UI's retry did not reach the market: %v", dd.Logs)
	}

	// The piece page of the indexed deal and its retrieval check.
	run(t, ctx, "piece page", chromedp.Navigate(base+"/pieces/"+doneDeal.PieceCID), chromedp.WaitVisible(chromedp.ID("check-retrieval")))
	text = value(t, ctx, "piece text", chromedp.Text(chromedp.CSS("main")))
	for _, want := range []string{"present", "indexed", short(done.String())} {
		if !strings.Contains(text, want) {
			t.Errorf("piece page lacks %q: %s", want, text)
		}
	}
	run(t, ctx, "check retrieval", chromedp.Click(chromedp.ID("check-retrieval")), chromedp.WaitVisible(chromedp.CSS("table.check")))
	if text := value(t, ctx, "check", chromedp.Text(chromedp.CSS("table.check"))); strings.Count(text, "ok") != 2 || strings.Contains(text, "failed") {
		t.Errorf("retrieval check: %s", text)
	}
	shoot(t, ctx, shots, "piece")

	for _, p := range []struct{ path, sel, name string }{
		{"/sectors", "section.sector", "sectors"},
		{"/ask", "#price", "ask"},
		{"/settings", "pre.config", "settings"},
	} {
		run(t, ctx, p.name, chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS(p.sel)))
		shoot(t, ctx, shots, p.name)
	}

	// Keyboard: the skip link comes first.
	run(t, ctx, "keyboard", chromedp.Navigate(base+"/deals"), chromedp.WaitVisible(chromedp.ID("q")), chromedp.KeyEvent("\t"))
	if focused := value(t, ctx, "focus", chromedp.Evaluate[string](`document.activeElement.textContent`)); focused != "Skip to content" {
		t.Errorf("first Tab focuses %q", focused)
	}

	// Log out; a read token then sees everything and can act on nothing.
	run(t, ctx, "log out", chromedp.Click(chromedp.CSS("form.logout button")), chromedp.WaitVisible(chromedp.ID("token")))
	if loc := value(t, ctx, "after logout", chromedp.Location()); !strings.HasSuffix(loc, "/login") {
		t.Errorf("logout went to %s", loc)
	}
	rctx := ctx
	login(t, rctx, base, mint(t, d, "read"))
	run(t, rctx, "read-only confirmation", chromedp.Navigate(base+"/deals/"+offline.String()+"/fail"), chromedp.WaitReady(chromedp.CSS("button.danger")))
	disabled := value(t, rctx, "button", chromedp.Evaluate[bool](`document.querySelector("button.danger").disabled`))
	text = value(t, rctx, "confirmation text", chromedp.Text(chromedp.CSS("main")))
	if !disabled || !strings.Contains(text, "can read but not act") {
		t.Errorf("read-only confirmation: disabled %v, %s", disabled, text)
	}
	shoot(t, rctx, shots, "read-only")
	status := value(t, rctx, "read-only POST", chromedp.Evaluate[int](`(async () => {
		const body = new URLSearchParams({csrf: document.querySelector("input[name=csrf]").value});
		const r = await fetch(location.pathname, {method: "POST", body});
		return r.status;
	})()`, chromedp.EvalAwaitPromise))
	if status != http.StatusForbidden {
		t.Errorf("a read session's fail answered %d", status)
	}
	if dd, err := d.Provider.Deal(context.Background(), offline); err != nil || dd.Retry == market.RetryFatal {
		t.Fatalf("a read session failed a deal: %v %+v", err, dd)
	}
}

func short(s string) string {
	if len(s) <= 20 {
		return s
	}
	return s[:10]
}
