package market

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"

	"github.com/ferry-fil/ferry/transfer"
	"github.com/ferry-fil/ferry/wallet"
	"github.com/ferry-fil/ferry/wire"
)

// withURL gives a deal's transfer the URL u.
func withURL(u string) func(*market.DealProposal, *wire.DealParams) {
	return func(_ *market.DealProposal, d *wire.DealParams) {
		d.Transfer.Params = []byte(fmt.Sprintf(`{"URL":%q,"Headers":{}}`, u))
	}
}

// With AllowPrivateAddresses false, a proposal whose transfer URL leads to
// a loopback, private or link-local address, in whatever numeric form or
// through a name, is rejected when it arrives; nothing is recorded, and a
// pre-signed URL's query is not repeated. (The resolver is a stub: no
// packet leaves the machine.)
func TestTransferURLCheckedAtProposal(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	h.deps.Resolver = stubResolver{
		"fake.example":     {netip.MustParseAddr("8.8.8.8")},
		"internal.example": {netip.MustParseAddr("8.8.4.4"), netip.MustParseAddr("10.1.2.3")},
	}
	h.start()
	ctx := context.Background()
	for i, u := range []string{
		"http://127.1/data.car",
		"http://2130706433/data.car",
		"http://0x7f000001/data.car",
		"http://0177.0.0.1/data.car",
		"http://[::1]:8080/data.car",
		"http://[::ffff:127.0.0.1]/data.car",
		"http://169.254.169.254/latest/meta-data?X-Amz-Signature=s3cr3t",
		"https://internal.example/data.car?token=s3cr3t",
		"http://192.168.1.20:9000/bucket/data.car",
	} {
		params := h.deal("u.car", 1000, int64(40+i), withURL(u))
		r := h.p.Propose(ctx, params, "p")
		if r.Accepted || !strings.HasPrefix(r.Message, "deal rejected: the transfer URL is refused") || strings.Contains(r.Message, "s3cr3t") {
			t.Errorf("%s: %+v", u, r)
		}
		if _, err := h.p.Deal(ctx, params.DealUUID); !errors.Is(err, ErrUnknownDeal) {
			t.Errorf("%s: the refused deal was recorded (%v)", u, err)
		}
	}
	params := h.deal("u.car", 1000, 60, withURL("https://nowhere.example/data.car?token=s3cr3t"))
	if r := h.p.Propose(ctx, params, "p"); r.Accepted || !strings.Contains(r.Message, "could not be resolved") || strings.Contains(r.Message, "s3cr3t") {
		t.Errorf("unresolvable host: %+v", r)
	}
	if r := h.p.Propose(ctx, h.deal("u.car", 1000, 61, nil), "p"); !r.Accepted {
		t.Errorf("a public URL: %+v", r)
	}
	if len(h.logged("s3cr3t")) > 0 {
		t.Errorf("the log shows a URL's query: %q", h.logged("s3cr3t"))
	}

	h.p.cfg.AllowPrivateAddresses = true
	if r := h.p.Propose(ctx, h.deal("u.car", 1000, 62, withURL("http://127.1/data.car")), "p"); !r.Accepted {
		t.Errorf("loopback with AllowPrivateAddresses: %+v", r)
	}
}

// A deal whose download is refused for good (here the downloader met a
// private address when it dialled: DNS changed since the proposal) fails
// at once, and stays failed after a restart with the setting changed.
func TestPermanentTransferErrorFails(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	h.dl.err = fmt.Errorf("download %s: %w", "http://fake.example/p.car", transfer.ErrPrivateAddress)
	h.start()
	params := h.deal("p.car", 1000, 1, nil)
	if r := h.p.Propose(context.Background(), params, "p"); !r.Accepted {
		t.Fatal(r.Message)
	}
	d := h.waitFor(params.DealUUID, failed, "failure")
	if d.Retries != 0 || !strings.Contains(d.Error, "non-public address") {
		t.Fatalf("deal after a permanent error: %+v", d)
	}
	if f, s := tagCounts(t, h); f != 0 || s != 0 {
		t.Fatalf("tags left: funds %d, space %d", f, s)
	}
	h.p.Close()
	h.cfg.AllowPrivateAddresses = true
	h.dl.mu.Lock()
	h.dl.err = nil
	h.dl.mu.Unlock()
	h.start()
	time.Sleep(20 * h.cfg.PollInterval) // a resumed deal would be downloading by now
	if d, _ := h.p.Deal(context.Background(), params.DealUUID); d.Retry != RetryFatal || h.dl.calls != 1 {
		t.Fatalf("after a restart: %+v, %d downloads", d.DealInfo, h.dl.calls)
	}
}

// loopbackServer serves the harness' payload files over HTTP on loopback,
// and what went wrong on the paths that ask for it: /404/… answers 404,
// /long/… sends 100 bytes more than the file, /flaky/… answers 503 to its
// first request. Every URL has a pre-signed query.
func loopbackServer(t *testing.T, h *harness) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var flaky atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind, name, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		b, err := os.ReadFile(filepath.Join(h.dl.srcDir, name))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		switch kind {
		case "404":
			http.NotFound(w, r)
		case "long":
			w.Header().Set("Content-Length", fmt.Sprint(len(b)+100))
			w.Write(append(b, make([]byte, 100)...))
		case "busy":
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case "flaky":
			if flaky.Add(1) == 1 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
		default:
			http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &flaky
}

// realDownloader makes the harness download with the transfer package's
// Downloader, which may dial loopback (the tests' servers are there).
func (h *harness) realDownloader() {
	dl := transfer.New(transfer.Config{AllowPrivateAddresses: true, MaxRetries: -1, StallTimeout: 10 * time.Second})
	h.t.Cleanup(dl.CloseIdleConnections)
	h.deps.Downloader = dl
}

// The real downloader against a server on loopback: a 404 and a body
// longer than declared fail the deal at once with a clear reason and
// release its tags and staging file; a 503 is retried with back-off and
// the deal completes. A pre-signed URL's query shows nowhere: not in the
// deal's error, its log, the operator's log or the status response.
func TestTransferErrorsOverHTTP(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) {
		c.MaxDealsPerPublishMsg = 1
		c.AllowPrivateAddresses = true // the server is on loopback
	})
	h.realDownloader()
	h.start()
	srv, flaky := loopbackServer(t, h)
	ctx := context.Background()
	const secret = "X-Amz-Signature=s3cr3t"
	propose := func(kind, name string, seed int64) *wire.DealParams {
		t.Helper()
		params := h.deal(name, 1500, seed, withURL(srv.URL+"/"+kind+"/"+name+"?"+secret))
		if r := h.p.Propose(ctx, params, "p"); !r.Accepted {
			t.Fatal(r.Message)
		}
		return params
	}
	status := func(params *wire.DealParams) wire.DealStatusResponse {
		sig, err := wallet.Sign(h.clientKI, wire.StatusSigningBytes(params.DealUUID))
		if err != nil {
			t.Fatal(err)
		}
		return h.p.Status(ctx, &wire.DealStatusRequest{DealUUID: params.DealUUID, Signature: *sig})
	}
	noSecret := func(params *wire.DealParams) {
		t.Helper()
		detail, err := h.p.Deal(ctx, params.DealUUID)
		if err != nil {
			t.Fatal(err)
		}
		texts := []string{detail.Error}
		for _, l := range detail.Logs {
			texts = append(texts, l.Text)
		}
		st := status(params)
		texts = append(texts, st.Error)
		if st.DealStatus != nil {
			texts = append(texts, st.DealStatus.Error)
		}
		for _, s := range texts {
			if strings.Contains(s, "s3cr3t") {
				t.Errorf("deal %s shows the URL's query: %q", params.DealUUID, s)
			}
		}
		if l := h.logged("s3cr3t"); len(l) > 0 {
			t.Errorf("the operator's log shows the URL's query: %q", l)
		}
	}

	for _, c := range []struct{ kind, want string }{{"404", "404 Not Found"}, {"long", "declared"}} {
		params := propose(c.kind, c.kind+".car", int64(len(c.kind)))
		d := h.waitFor(params.DealUUID, failed, "failure")
		if d.Retries != 0 || !strings.Contains(d.Error, c.want) || !strings.Contains(d.Error, "?…") {
			t.Errorf("%s: deal %+v", c.kind, d)
		}
		h.waitGone(params.DealUUID)
		noSecret(params)
	}
	if f, s := tagCounts(t, h); f != 0 || s != 0 {
		t.Fatalf("tags left: funds %d, space %d", f, s)
	}

	params := propose("flaky", "flaky.car", 9)
	d := h.waitFor(params.DealUUID, complete, Complete)
	if flaky.Load() < 2 || d.BytesReceived != 1500 {
		t.Fatalf("flaky server: %d requests, deal %+v", flaky.Load(), d)
	}
	detail, _ := h.p.Deal(ctx, params.DealUUID)
	if !hasLog(detail, "transfer failed (attempt 1, next: auto)") {
		t.Fatalf("no retry in the log: %+v", detail.Logs)
	}
	noSecret(params)
}

// A download with several URLs (Market 2.0's http source) goes on to the
// next when one fails for good (a 404) or runs out of retries (a server
// that answers 503 every time), starting the file afresh, and the deal
// completes from the one that serves it; when the last fails for good, the
// deal fails with its reason. The log says which URL gave way to which,
// without their queries.
func TestTransferFallbackURLs(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) {
		c.AllowPrivateAddresses = true // the server is on loopback
		c.MaxAutoRetries = 2
		c.RetryBackoff = 10 * time.Millisecond
	})
	h.realDownloader()
	h.start()
	srv, _ := loopbackServer(t, h)
	ctx := context.Background()
	url := func(kind, name string) string { return srv.URL + "/" + kind + "/" + name + "?sig=s3cr3t" }

	_, pc, _ := h.directPiece(21, "f.car", 1400, 21)
	info, err := h.p.ImportDirect(ctx, DirectDeal{Client: h.clientID, AllocationID: 21, PieceCID: pc,
		Data: DirectData{HTTP: &transfer.Request{URL: url("404", "f.car"), Size: 1400, Fallbacks: []transfer.Source{
			{URL: url("busy", "f.car")}, {URL: url("ok", "f.car"), Headers: map[string]string{"X-Token": "t"}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.MustParse(info.UUID)
	d := h.waitFor(id, complete, Complete)
	if d.BytesReceived != 1400 {
		t.Fatalf("deal %+v", d)
	}
	detail, _ := h.p.Deal(ctx, id)
	for _, want := range []string{"404 Not Found; going on to " + srv.URL + "/busy/f.car?… (1 more after it)",
		"503 Service Unavailable; going on to " + srv.URL + "/ok/f.car?… (0 more after it)"} {
		if !slices.ContainsFunc(detail.Logs, func(l DealLog) bool { return strings.Contains(l.Text, want) }) {
			t.Errorf("no %q in the log: %+v", want, detail.Logs)
		}
	}
	for _, l := range detail.Logs {
		if strings.Contains(l.Text, "s3cr3t") {
			t.Errorf("the log shows a URL's query: %q", l.Text)
		}
	}

	_, pc2, _ := h.directPiece(22, "g.car", 1200, 22)
	info, err = h.p.ImportDirect(ctx, DirectDeal{Client: h.clientID, AllocationID: 22, PieceCID: pc2,
		Data: DirectData{HTTP: &transfer.Request{URL: url("404", "g.car"), Size: 1200, Fallbacks: []transfer.Source{{URL: url("long", "g.car")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	d = h.waitFor(uuid.MustParse(info.UUID), failed, "failure")
	if !strings.Contains(d.Error, "declared") || strings.Contains(d.Error, "s3cr3t") {
		t.Fatalf("the last URL's failure: %q", d.Error)
	}
	h.waitGone(uuid.MustParse(info.UUID))

}

// The operator sees where an online deal's data comes from until it is
// transferred, the query hidden, and how many URLs are left after it.
func TestDealInfoTransferURL(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	h.start()
	params, err := transfer.EncodeHTTPParams(transfer.Request{URL: "https://a.example/p.car?sig=s3cr3t",
		Fallbacks: []transfer.Source{{URL: "https://b.example/p.car"}, {URL: "https://c.example/p.car"}}})
	if err != nil {
		t.Fatal(err)
	}
	d := &dealRow{UUID: uuid.New(), TransferType: wire.TransferHTTP, TransferParams: params, Checkpoint: Accepted}
	if di := h.p.info(d); di.TransferURL != "https://a.example/p.car?…" || di.TransferFallbacks != 2 {
		t.Fatalf("accepted: %q, %d fallbacks", di.TransferURL, di.TransferFallbacks)
	}
	d.Checkpoint = Transferred
	if di := h.p.info(d); di.TransferURL != "" || di.TransferFallbacks != 0 {
		t.Fatalf("transferred: %q, %d", di.TransferURL, di.TransferFallbacks)
	}
	d.Checkpoint, d.IsOffline = Accepted, true
	if di := h.p.info(d); di.TransferURL != "" {
		t.Fatalf("offline: %q", di.TransferURL)
	}
}

// The downloader is told the deal's client, so its slots are shared fairly
// across clients.
func TestTransferNamesClient(t *testing.T) {
	h := newHarness(t, t.TempDir(), nil)
	h.start()
	params := h.deal("c.car", 1000, 1, nil)
	if r := h.p.Propose(context.Background(), params, "p"); !r.Accepted {
		t.Fatal(r.Message)
	}
	h.waitFor(params.DealUUID, func(d *DealInfo) bool { return d.Checkpoint >= Transferred }, Transferred)
	key, _ := h.clientKI.Address()
	h.dl.mu.Lock()
	defer h.dl.mu.Unlock()
	if len(h.dl.clients) == 0 || h.dl.clients[0] != key.String() {
		t.Fatalf("downloads for clients %q, want %s", h.dl.clients, key)
	}
}
