package ui

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-jsonrpc/auth"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/ipni"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/wire"
)

var (
	testDeal  = uuid.MustParse("0b5f8a4e-7a4c-4f5e-9d7e-1c2b3a4d5e6f")
	testPiece = cid.MustParse("baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi")
	testRoot  = cid.MustParse("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
)

// fakeAPI answers the UI's calls with one deal waiting for an operator
// and records the actions it gets.
type fakeAPI struct {
	api.Ferry // methods the UI does not call panic
	actions   []string
	filters   []market.DealFilter
}

func (f *fakeAPI) Info(context.Context) (api.Info, error) {
	return api.Info{Miner: "f01000", ChainMode: "devnet", ChainHead: 1000, ChainHeadTime: time.Now(), BlockDelayMillis: 1000,
		MarketEscrow: big.NewInt(5e18), MarketLocked: big.NewInt(1e18), WorkerFunds: big.NewInt(2e18)}, nil
}

func (f *fakeAPI) deal() market.DealInfo {
	s, off := uint64(3), uint64(2048)
	return market.DealInfo{UUID: testDeal.String(), CreatedAt: time.Now(), Client: "f1abc", ClientPeer: "12D3KooW",
		PieceCID: testPiece.String(), PieceSize: 2048, DataRoot: testRoot.String(), StartEpoch: 2000, EndEpoch: 600000,
		TransferSize: 1000, BytesReceived: 400, Checkpoint: market.Accepted, Retry: market.RetryManual, Error: "HTTP 503",
		TransferURL: "https://data.example/d.car?…", TransferFallbacks: 1,
		Sector: &s, SectorOffset: &off, SignedCID: testRoot.String()}
}

func (f *fakeAPI) DealList(_ context.Context, fl market.DealFilter) ([]market.DealInfo, error) {
	f.filters = append(f.filters, fl)
	if fl.Search == "nothing" {
		return nil, nil
	}
	return []market.DealInfo{f.deal()}, nil
}

func (f *fakeAPI) DealShow(_ context.Context, id uuid.UUID) (*market.DealDetail, error) {
	if id != testDeal {
		return nil, market.ErrUnknownDeal
	}
	return &market.DealDetail{DealInfo: f.deal(), Logs: []market.DealLog{{At: time.Now(), Text: "checkpoint Transferred"}}}, nil
}

func (f *fakeAPI) act(name string) error {
	f.actions = append(f.actions, name)
	return nil
}
func (f *fakeAPI) DealRetry(context.Context, uuid.UUID) error  { return f.act("retry") }
func (f *fakeAPI) DealFail(context.Context, uuid.UUID) error   { return f.act("fail") }
func (f *fakeAPI) DealCancel(context.Context, uuid.UUID) error { return f.act("cancel") }
func (f *fakeAPI) DealImportData(_ context.Context, _ uuid.UUID, path string) error {
	return f.act("import " + path)
}

func (f *fakeAPI) Transfers(context.Context) ([]api.Transfer, error) {
	return []api.Transfer{{DealUUID: testDeal.String(), Size: 1000, Received: 400, BytesPerSecond: 100, ETASeconds: 6}}, nil
}

func (f *fakeAPI) Overview(ctx context.Context) (api.Overview, error) {
	info, _ := f.Info(ctx)
	ts, _ := f.Transfers(ctx)
	now := time.Now().Truncate(time.Hour)
	return api.Overview{Info: info, Deals: []market.DealCount{{State: market.StateActive, Checkpoint: market.Accepted, N: 1}},
		IngestHourly: []market.IngestBucket{{Start: now.Add(-time.Hour), Bytes: 10}, {Start: now, Bytes: 1000, Deals: 1}},
		IngestDaily:  []market.IngestBucket{{Start: now, Bytes: 1010, Deals: 2}},
		Transfers:    ts, Reserved: market.Reserved{StagingCapacity: 1 << 30, StagingTagged: 1000, Collateral: big.NewInt(10), PublishFees: big.Zero()},
		Sectors: map[string]int64{"WaitDeals": 1}, IndexPieces: map[string]int64{"indexed": 2},
		IPNI: api.IPNIStatus{Enabled: true, Head: testRoot.String(), Indexers: []ipni.IndexerState{{URL: "https://cid.contact/announce"}, {URL: "https://ix.example/announce", Pending: true, Failures: 2}}}}, nil
}

func (f *fakeAPI) PieceShow(_ context.Context, c cid.Cid) (api.PieceDetail, error) {
	return api.PieceDetail{PieceCID: c.String(), PieceSize: 2048, Deals: []market.DealInfo{f.deal()},
		Sectors:  []api.PiecePlacement{{Sector: 3, Offset: 2048, Size: 2048, State: "WaitDeals", Written: true, DealUUID: testDeal.String()}},
		Unsealed: true, Index: &api.PieceIndexInfo{PieceCID: c.String(), State: "indexed", Blocks: 7},
		IPNI: &api.PieceAd{AdCID: testRoot.String(), Seq: 1, Announced: true, Entries: 7, CreatedAt: time.Now()}}, nil
}

func (f *fakeAPI) PieceCheckRetrieval(context.Context, cid.Cid) (api.RetrievalCheck, error) {
	return api.RetrievalCheck{Piece: api.RetrievalProbe{URL: "http://127.0.0.1:7777/piece/x", Status: 206, Bytes: 1024, OK: true},
		Block: api.RetrievalProbe{URL: "http://127.0.0.1:7777/ipfs/y", Status: 404, Error: "HTTP 404"}}, nil
}

func (f *fakeAPI) SectorsList(context.Context) ([]sealing.SectorInfo, error) {
	id := testDeal
	return []sealing.SectorInfo{{Number: 3, State: "WaitDeals", SectorSize: 8 << 20, Used: 4096, Deals: 1, OpenedAt: time.Now(),
		Pieces: []sealing.SectorPiece{{Offset: 0, Size: 2048, Filler: true}, {Offset: 2048, Size: 2048, PieceCID: testPiece, DealUUID: &id, DealID: 4}}}}, nil
}

func (f *fakeAPI) AskGet(context.Context) (*wire.SignedStorageAsk, error) {
	m, _ := address.NewIDAddress(1000)
	return &wire.SignedStorageAsk{Ask: &wire.StorageAsk{Price: big.NewInt(5), VerifiedPrice: big.Zero(), MinPieceSize: 256, MaxPieceSize: 8 << 20,
		Miner: m, Timestamp: 900, Expiry: 100000, SeqNo: 2}}, nil
}

func (f *fakeAPI) AskSet(_ context.Context, ap market.AskParams) (*wire.SignedStorageAsk, error) {
	f.actions = append(f.actions, "ask "+ap.Price.String())
	return f.AskGet(context.Background())
}

func (f *fakeAPI) ConfigShow(context.Context) (string, error) {
	return "[Chain]\n  Mode = \"devnet\"\n  LotusAPIInfo = \"<redacted>:/ip4/127.0.0.1/tcp/1234/http\"\n", nil
}

// Tokens of the test: one that reads, one that may act.
const (
	readToken  = "read-token"
	adminToken = "admin-token"
)

func verify(_ context.Context, token string) ([]auth.Permission, error) {
	switch token {
	case readToken:
		return []auth.Permission{"read"}, nil
	case adminToken:
		return []auth.Permission{"read", "write", "sign", "admin"}, nil
	}
	return nil, errors.New("bad token")
}

// newTestServer serves a UI over a fakeAPI on loopback.
func newTestServer(t *testing.T) (*httptest.Server, *fakeAPI) {
	t.Helper()
	f := &fakeAPI{}
	s, err := New(Config{API: f, Verify: verify, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts, f
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects.
func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func post(t *testing.T, c *http.Client, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

var (
	nonceRe = regexp.MustCompile(`name="nonce" value="([^"]+)"`)
	csrfRe  = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// logIn logs c in with token and returns the session's CSRF token.
func logIn(t *testing.T, ts *httptest.Server, c *http.Client, token string) string {
	t.Helper()
	_, body := get(t, c, ts.URL+"/login")
	m := nonceRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("login page without nonce: %s", body)
	}
	resp, body := post(t, c, ts.URL+"/login", url.Values{"token": {token}, "nonce": {m[1]}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login with %s: %d %s", token, resp.StatusCode, body)
	}
	_, body = get(t, c, ts.URL+"/")
	m = csrfRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("overview without csrf token: %s", body)
	}
	return m[1]
}

func TestLoginRequired(t *testing.T) {
	ts, _ := newTestServer(t)
	c := browser(t)
	for _, p := range []string{"/", "/deals", "/deals/" + testDeal.String(), "/pieces/" + testPiece.String(), "/sectors", "/ask", "/settings", "/overview/live"} {
		resp, _ := get(t, c, ts.URL+p)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
			t.Errorf("GET %s without a session: %d %s", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// A live fragment asked by htmx gets 401 and where to go.
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/overview/live", nil)
	req.Header.Set("HX-Request", "true")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("HX-Redirect") != "/login" {
		t.Errorf("htmx fragment without a session: %d %q", resp.StatusCode, resp.Header.Get("HX-Redirect"))
	}
	// Actions without a session do nothing.
	resp, _ = post(t, c, ts.URL+"/deals/"+testDeal.String()+"/retry", url.Values{"csrf": {"x"}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST without a session: %d", resp.StatusCode)
	}
}

func TestLoginTokens(t *testing.T) {
	ts, _ := newTestServer(t)
	c := browser(t)
	_, body := get(t, c, ts.URL+"/login")
	nonce := nonceRe.FindStringSubmatch(body)[1]
	for _, tok := range []string{"", "wrong", adminToken + "x"} {
		resp, body := post(t, c, ts.URL+"/login", url.Values{"token": {tok}, "nonce": {nonce}})
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "not valid") {
			t.Errorf("login with %q: %d", tok, resp.StatusCode)
		}
		for _, ck := range resp.Cookies() {
			if ck.Name == sessionCookie && ck.Value != "" {
				t.Errorf("login with %q set a session", tok)
			}
		}
		nonce = nonceRe.FindStringSubmatch(body)[1]
	}
	// A login POST without the login page's nonce (from another site) is
	// refused even with a good token.
	other := browser(t)
	resp, _ := post(t, other, ts.URL+"/login", url.Values{"token": {adminToken}, "nonce": {"guess"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without the form's nonce: %d", resp.StatusCode)
	}
	// The token never appears in a URL or a cookie.
	resp, _ = post(t, c, ts.URL+"/login", url.Values{"token": {adminToken}, "nonce": {nonce}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if strings.Contains(ck.Value, adminToken) {
			t.Errorf("cookie %s holds the token", ck.Name)
		}
		if ck.Name == sessionCookie {
			session = ck
		}
	}
	if strings.Contains(resp.Header.Get("Location"), adminToken) {
		t.Error("redirect holds the token")
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/" || len(session.Value) < 40 {
		t.Fatalf("session cookie %+v", session)
	}
}

func TestReadCannotAct(t *testing.T) {
	ts, f := newTestServer(t)
	c := browser(t)
	csrf := logIn(t, ts, c, readToken)
	_, body := get(t, c, ts.URL+"/deals/"+testDeal.String())
	if !strings.Contains(body, "read only") || !strings.Contains(body, "Retry…") {
		t.Errorf("deal page of a read session: %s", body)
	}
	if !strings.Contains(body, "<code>https://data.example/d.car?…</code> <span class=\"dim\">(then 1 more)</span>") {
		t.Errorf("deal page lacks where the data comes from: %s", body)
	}
	_, body = get(t, c, ts.URL+"/deals/"+testDeal.String()+"/retry")
	if !strings.Contains(body, "disabled") || !strings.Contains(body, "can read but not act") {
		t.Errorf("confirmation of a read session: %s", body)
	}
	for _, a := range []string{"retry", "fail", "cancel", "import"} {
		resp, _ := post(t, c, ts.URL+"/deals/"+testDeal.String()+"/"+a, url.Values{"csrf": {csrf}, "path": {"/x"}})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s by a read session: %d", a, resp.StatusCode)
		}
	}
	resp, _ := post(t, c, ts.URL+"/ask", url.Values{"csrf": {csrf}, "price": {"1"}, "verifiedPrice": {"0"}, "minPieceSize": {"256"}, "maxPieceSize": {"1024"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("ask set by a read session: %d", resp.StatusCode)
	}
	if len(f.actions) != 0 {
		t.Errorf("a read session acted: %v", f.actions)
	}
}

// The API's own permission checks hold too: a read session calling an
// admin method through the UI's API is refused by the API.
func TestSessionPermissionsReachTheAPI(t *testing.T) {
	f := &fakeAPI{}
	s, err := New(Config{API: f, Verify: verify, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	ctx := auth.WithPerm(context.Background(), []auth.Permission{"read"})
	if err := s.api.DealRetry(ctx, testDeal); err == nil || len(f.actions) != 0 {
		t.Fatalf("read permission ran DealRetry: %v %v", err, f.actions)
	}
	if _, err := s.api.DealShow(ctx, testDeal); err != nil {
		t.Fatal(err)
	}
}

func TestCSRF(t *testing.T) {
	ts, f := newTestServer(t)
	c := browser(t)
	csrf := logIn(t, ts, c, adminToken)
	u := ts.URL + "/deals/" + testDeal.String() + "/retry"
	for _, bad := range []url.Values{{}, {"csrf": {""}}, {"csrf": {"wrong"}}, {"csrf": {csrf + "x"}}} {
		resp, _ := post(t, c, u, bad)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("retry with %v: %d", bad, resp.StatusCode)
		}
	}
	// Another session's token is no good either.
	c2 := browser(t)
	csrf2 := logIn(t, ts, c2, adminToken)
	if resp, _ := post(t, c, u, url.Values{"csrf": {csrf2}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("retry with another session's token: %d", resp.StatusCode)
	}
	if resp, _ := post(t, c, ts.URL+"/logout", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without a token: %d", resp.StatusCode)
	}
	if len(f.actions) != 0 {
		t.Fatalf("acted without a valid CSRF token: %v", f.actions)
	}
	resp, _ := post(t, c, u, url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/deals/"+testDeal.String()+"?done=retry" {
		t.Fatalf("retry: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = post(t, c, ts.URL+"/deals/"+testDeal.String()+"/import", url.Values{"csrf": {csrf}, "path": {"/data/d.car"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("import: %d", resp.StatusCode)
	}
	resp, body := post(t, c, ts.URL+"/ask", url.Values{"csrf": {csrf}, "price": {"7"}, "verifiedPrice": {"0"}, "minPieceSize": {"256"}, "maxPieceSize": {"8MiB"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("ask: %d %s", resp.StatusCode, body)
	}
	if strings.Join(f.actions, ",") != "retry,import /data/d.car,ask 7" {
		t.Fatalf("actions %v", f.actions)
	}
	// After logout the session is gone on the server too.
	if resp, _ := post(t, c, ts.URL+"/logout", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, ts.URL+"/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("overview after logout: %d", resp.StatusCode)
	}
}

func TestSessionExpires(t *testing.T) {
	f := &fakeAPI{}
	s, err := New(Config{API: f, Verify: verify, Logf: t.Logf, SessionTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s.now = func() time.Time { return now }
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	c := browser(t)
	logIn(t, ts, c, readToken)
	now = now.Add(59 * time.Minute)
	if resp, _ := get(t, c, ts.URL+"/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("within the TTL: %d", resp.StatusCode)
	}
	now = now.Add(61 * time.Minute)
	if resp, _ := get(t, c, ts.URL+"/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the TTL: %d", resp.StatusCode)
	}
}

// Every page renders with the data of the API, with its security headers.
func TestPages(t *testing.T) {
	ts, f := newTestServer(t)
	c := browser(t)
	logIn(t, ts, c, adminToken)
	for _, tc := range []struct{ path, want string }{
		{"/", "Transfers in flight"},
		{"/", "retrying, 2 failed"},
		{"/overview/live", `id="live"`},
		{"/deals", testDeal.String()},
		{"/deals?state=active&checkpoint=Accepted&client=f1abc&piece=" + testPiece.String() + "&from=2026-01-01&to=2026-01-31&q=x", `value="2026-01-31"`},
		{"/deals/rows", `id="deal-rows"`},
		{"/deals/" + testDeal.String(), "HTTP 503"},
		{"/deals/" + testDeal.String() + "/live", "Timeline"},
		{"/deals/" + testDeal.String() + "/fail", "fails for good"},
		{"/pieces/" + testPiece.String(), "Check retrieval"},
		{"/pieces", "Piece CID"},
		{"/sectors", "Sector 3"},
		{"/ask", "attoFIL/GiB/epoch"},
		{"/settings", "&lt;redacted&gt;"},
	} {
		resp, body := get(t, c, ts.URL+tc.path)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s: %d, want %q in\n%s", tc.path, resp.StatusCode, tc.want, body)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("GET %s: CSP %q", tc.path, csp)
		}
	}
	last := f.filters[1]
	if last.State != "active" || last.Checkpoint != "Accepted" || last.Client != "f1abc" || last.PieceCID != testPiece.String() ||
		last.Search != "x" || last.CreatedFrom.Format("2006-01-02") != "2026-01-01" || last.CreatedTo.Format("2006-01-02") != "2026-02-01" {
		t.Errorf("filter %+v", last)
	}
	for _, bad := range []string{"/deals?from=yesterday", "/deals?after=nope"} {
		if resp, _ := get(t, c, ts.URL+bad); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s: %d", bad, resp.StatusCode)
		}
	}
	if resp, _ := get(t, c, ts.URL+"/deals/not-a-uuid"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad deal UUID: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, ts.URL+"/deals/"+uuid.NewString()); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown deal: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, ts.URL+"/static/htmx.min.js"); resp.StatusCode != http.StatusOK {
		t.Errorf("htmx: %d", resp.StatusCode)
	}
}

func TestSizesAndFormats(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
	}{{"256", 256}, {"8MiB", 8 << 20}, {"32 GiB", 32 << 30}} {
		if got, err := parseSize(c.in); err != nil || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v", c.in, got, err)
		}
	}
	if _, err := parseSize("big"); err == nil {
		t.Error("parseSize accepted big")
	}
	if got := fmtFIL(big.NewInt(1_500_000_000_000_000_000)); got != "1.5 FIL" {
		t.Errorf("fmtFIL: %s", got)
	}
	for _, c := range []struct {
		atto int64
		want string
	}{{0, ">0 FIL<"}, {1_234_567_000_000_000_000, ">1.2346 FIL<"}, {8_881_784_196, ">8.88 nanoFIL<"}, {42, ">42 attoFIL<"}} {
		if got := string(filHTML(big.NewInt(c.atto))); !strings.Contains(got, c.want) {
			t.Errorf("filHTML(%d) = %s", c.atto, got)
		}
	}
	if got := fmtBytes(1536); got != "1.5 KiB" {
		t.Errorf("fmtBytes: %s", got)
	}
	c := clock{Head: 100, HeadTime: time.Unix(1000, 0), Delay: 30 * time.Second}
	if c.At(102) != time.Unix(1060, 0) || c.EpochAt(time.Unix(940, 0)) != abi.ChainEpoch(98) {
		t.Error("clock")
	}
}
