package minerapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
)

// rpcCall posts one JSON-RPC request with the admin token and returns
// the raw response body.
func rpcCall(t testing.TB, addr, method, params string) string {
	t.Helper()
	body := fmt.Sprintf(`{"jsonrpc":"2.0","method":"Filecoin.%s","params":%s,"id":1}`, method, params)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+APIPath, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("calling %s: %v", method, err) // not Fatal: may run in a goroutine
		return ""
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return string(out)
}

// pushReq sends one raw push request and returns its status.
func pushReq(t testing.TB, addr, method string, id uuid.UUID, body io.Reader) int {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+addr+pushPath+id.String(), body)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s push: %v", method, err)
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// lotusParams is SectorAddPieceToAny's params as Lotus' client sends them.
func lotusParams(t testing.TB, d PieceDealInfo, reader string) string {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`[%d,%s,%s]`, d.DealProposal.PieceSize.Unpadded(), reader, b)
}

func waitPending(t testing.TB, ts *testServer, n int) {
	t.Helper()
	for ts.srv.streams.pending() != n {
		if t.Failed() {
			t.FailNow()
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// TestPushHeadBeforeCall is the order Lotus' client often produces: the
// HEAD reaches the server before the RPC request names its stream.
func TestPushHeadBeforeCall(t *testing.T) {
	fs := newFakeSealing(t, testSectorSize)
	ts := startTestServer(t, fs, testSectorSize)
	defer http.DefaultClient.CloseIdleConnections()
	d := dealInfo(testDeal(7, 4096))
	payload := randomBytes(4064, 1)
	id := uuid.New()

	head := make(chan int, 1)
	go func() { head <- pushReq(t, ts.addr, http.MethodHead, id, nil) }()
	waitPending(t, ts, 1) // the HEAD is waiting for a call
	res := make(chan string, 1)
	go func() {
		res <- rpcCall(t, ts.addr, "SectorAddPieceToAny", lotusParams(t, d, fmt.Sprintf(`{"Type":"push","Info":%q}`, id)))
	}()
	if st := <-head; st != http.StatusOK {
		t.Fatalf("HEAD answered %d, want 200 once the call reads", st)
	}
	if st := pushReq(t, ts.addr, http.MethodPost, id, bytes.NewReader(payload)); st != http.StatusOK {
		t.Fatalf("POST answered %d", st)
	}
	if got := <-res; !strings.Contains(got, `"result":{"Sector":1,"Offset":0}`) {
		t.Fatalf("SectorAddPieceToAny answered %s", got)
	}
	sum := sha256.Sum256(payload)
	if !bytes.Equal(fs.digests[DealUUID(*d.PublishCid, d.DealID)], sum[:]) {
		t.Fatal("the server got other bytes than pushed")
	}
	if n := ts.srv.streams.pending(); n != 0 {
		t.Fatalf("%d streams left pending", n)
	}
}

// TestPushDirectPost: an old-style client POSTs at once, before the call.
func TestPushDirectPost(t *testing.T) {
	fs := newFakeSealing(t, testSectorSize)
	ts := startTestServer(t, fs, testSectorSize)
	defer http.DefaultClient.CloseIdleConnections()
	d := dealInfo(testDeal(8, 2048))
	id := uuid.New()
	post := make(chan int, 1)
	go func() { post <- pushReq(t, ts.addr, http.MethodPost, id, bytes.NewReader(make([]byte, 2032))) }()
	waitPending(t, ts, 1)
	if got := rpcCall(t, ts.addr, "SectorAddPieceToAny", lotusParams(t, d, fmt.Sprintf(`{"Type":"push","Info":%q}`, id))); !strings.Contains(got, `"result":{"Sector":1,"Offset":0}`) {
		t.Fatalf("SectorAddPieceToAny answered %s", got)
	}
	if st := <-post; st != http.StatusOK {
		t.Fatalf("POST answered %d", st)
	}
}

// TestPushClosedUnread: a call that fails before reading answers the HEAD
// with 204, so the client does not hang.
func TestPushClosedUnread(t *testing.T) {
	fs := newFakeSealing(t, testSectorSize)
	ts := startTestServer(t, fs, testSectorSize)
	defer http.DefaultClient.CloseIdleConnections()
	d := dealInfo(testDeal(9, 2048))
	d.DealSchedule.EndEpoch = d.DealSchedule.StartEpoch // invalid
	id := uuid.New()
	head := make(chan int, 1)
	go func() { head <- pushReq(t, ts.addr, http.MethodHead, id, nil) }()
	got := rpcCall(t, ts.addr, "SectorAddPieceToAny", lotusParams(t, d, fmt.Sprintf(`{"Type":"push","Info":%q}`, id)))
	if !strings.Contains(got, "invalid deal end epoch") {
		t.Fatalf("SectorAddPieceToAny answered %s", got)
	}
	if st := <-head; st != http.StatusNoContent {
		t.Fatalf("HEAD answered %d, want 204 (closed unread)", st)
	}
	if n := ts.srv.streams.pending(); n != 0 || fs.addCount() != 0 {
		t.Fatalf("%d streams pending, %d pieces added", n, fs.addCount())
	}
}

// TestPushWaits: each side gives up on the other after the wait, with a
// clear error.
func TestPushWaits(t *testing.T) {
	fs := newFakeSealing(t, testSectorSize)
	ts := startTestServer(t, fs, testSectorSize)
	defer http.DefaultClient.CloseIdleConnections()
	ts.srv.streams.wait = 20 * time.Millisecond
	d := dealInfo(testDeal(9, 2048))
	got := rpcCall(t, ts.addr, "SectorAddPieceToAny", lotusParams(t, d, fmt.Sprintf(`{"Type":"push","Info":%q}`, uuid.New())))
	if !strings.Contains(got, "no push request for stream") {
		t.Fatalf("a call whose client never pushes: %s", got)
	}
	if st := pushReq(t, ts.addr, http.MethodHead, uuid.New(), nil); st != http.StatusInternalServerError {
		t.Fatalf("a HEAD no call takes answered %d", st)
	}
	if n := ts.srv.streams.pending(); n != 0 {
		t.Fatalf("%d streams left pending", n)
	}
	if fs.addCount() != 0 {
		t.Fatal("a piece was added without data")
	}
}

func TestPushNullAndHTTPReaders(t *testing.T) {
	fs := newFakeSealing(t, testSectorSize)
	ts := startTestServer(t, fs, testSectorSize)
	defer http.DefaultClient.CloseIdleConnections()

	d := dealInfo(testDeal(20, 2048))
	if got := rpcCall(t, ts.addr, "SectorAddPieceToAny", lotusParams(t, d, `{"Type":"null","Info":"2032"}`)); !strings.Contains(got, `"result"`) {
		t.Fatalf("null reader: %s", got)
	}
	zero := sha256.Sum256(make([]byte, 2032))
	if !bytes.Equal(fs.digests[DealUUID(*d.PublishCid, d.DealID)], zero[:]) {
		t.Fatal("the null reader did not give zeros")
	}

	payload := randomBytes(4064, 2)
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(payload) }))
	defer src.Close()
	d = dealInfo(testDeal(21, 4096))
	if got := rpcCall(t, ts.addr, "SectorAddPieceToAny", lotusParams(t, d, fmt.Sprintf(`{"Type":"http","Info":%q}`, src.URL))); !strings.Contains(got, `"result"`) {
		t.Fatalf("http reader: %s", got)
	}
	sum := sha256.Sum256(payload)
	if !bytes.Equal(fs.digests[DealUUID(*d.PublishCid, d.DealID)], sum[:]) {
		t.Fatal("the http reader gave other bytes")
	}

	for _, bad := range []string{`{"Type":"null","Info":"-1"}`, `{"Type":"http","Info":"file:///etc/passwd"}`, `{"Type":"push","Info":"nope"}`, `{"Type":"tape"}`, `7`} {
		if got := rpcCall(t, ts.addr, "SectorAddPieceToAny", lotusParams(t, d, bad)); !strings.Contains(got, `"error"`) {
			t.Fatalf("reader %s: %s", bad, got)
		}
	}
}

// TestClientFollowsRedirect: a HEAD answered 302 is sent again to the
// Location, and the body POSTed there.
func TestClientFollowsRedirect(t *testing.T) {
	fs := newFakeSealing(t, testSectorSize)
	ts := startTestServer(t, fs, testSectorSize)
	target, _ := url.Parse("http://" + ts.addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	var redirected int
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, pushPath) {
			if r.Method != http.MethodHead {
				http.Error(w, "POST went to the first URL", http.StatusBadRequest)
				return
			}
			redirected++
			http.Redirect(w, r, "http://"+ts.addr+r.URL.Path, http.StatusFound)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer front.Close()
	c, err := DialURL(context.Background(), front.URL+APIPath, adminToken)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := testDeal(30, 2048)
	if _, err := c.SectorAddPieceToAny(context.Background(), 2032, bytes.NewReader(randomBytes(2032, 3)), dealInfo(d)); err != nil {
		t.Fatal(err)
	}
	if redirected != 1 || fs.addCount() != 1 {
		t.Fatalf("%d redirects, %d pieces added", redirected, fs.addCount())
	}
}

// TestSectorInfoJSON checks the shapes Lotus' client parses.
func TestSectorInfoJSON(t *testing.T) {
	fs := newFakeSealing(t, testSectorSize)
	ts := startTestServer(t, fs, testSectorSize)
	defer http.DefaultClient.CloseIdleConnections()
	c := ts.dial(t, adminToken)
	d := testDeal(40, 2048)
	if _, err := c.SectorAddPieceToAny(context.Background(), 2032, bytes.NewReader(nil), dealInfo(d)); err != nil {
		t.Fatal(err)
	}
	got := rpcCall(t, ts.addr, "SectorsStatus", `[1,false]`)
	for _, want := range []string{`"SectorID":1`, `"State":"WaitDeals"`, `"Deals":[40]`, `"DealWeight":"0"`, `"VerifiedDealWeight":"0"`,
		`"InitialPledge":"0"`, `"Pieces":[{"Piece":{"Size":2048,"PieceCID":{"/":"` + d.Proposal.PieceCID.String() + `"}},"DealInfo":{"PublishCid":{"/":"` + d.PublishCid.String() + `"},"DealID":40,"DealProposal":{"PieceCID":{"/":"` + d.Proposal.PieceCID.String() + `"}`,
		`"DealSchedule":{"StartEpoch":10000,"EndEpoch":528400}`, `"Log":[]`} {
		if !strings.Contains(got, want) {
			t.Errorf("SectorsStatus JSON lacks %s:\n%s", want, got)
		}
	}
	got = rpcCall(t, ts.addr, "StorageList", `[]`)
	if !strings.Contains(got, `[{"Miner":1000,"Number":1,"SectorFileType":1}]`) {
		t.Errorf("StorageList JSON: %s", got)
	}
	got = rpcCall(t, ts.addr, "SectorsSummary", `[]`)
	if !strings.Contains(got, `"result":{"WaitDeals":1}`) {
		t.Errorf("SectorsSummary JSON: %s", got)
	}
}

func TestSectorName(t *testing.T) {
	id := abi.SectorID{Miner: 1000, Number: 42}
	if SectorName(id) != "s-t01000-42" {
		t.Fatal(SectorName(id))
	}
	if got, err := ParseSectorName("s-t01000-42"); err != nil || got != id {
		t.Fatal(got, err)
	}
	for _, bad := range []string{"s-t1000-42", "s-t01000", "s-t01000-x", "s-t01000-042", "s-t0-1", "s-t01000-1-2"} {
		if _, err := ParseSectorName(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseAPIInfo(t *testing.T) {
	for in, want := range map[string]string{
		"tok:/ip4/127.0.0.1/tcp/2345/http": "http://127.0.0.1:2345/rpc/v0",
		"tok:/ip4/127.0.0.1/tcp/2345":      "http://127.0.0.1:2345/rpc/v0",
		"tok:ws://127.0.0.1:2345":          "ws://127.0.0.1:2345/rpc/v0",
		"http://127.0.0.1:2345/rpc/v0":     "http://127.0.0.1:2345/rpc/v0",
	} {
		if u, _, err := ParseAPIInfo(in); err != nil || u != want {
			t.Errorf("ParseAPIInfo(%q) = %q, %v; want %q", in, u, err, want)
		}
	}
	for in, want := range map[string]string{
		"ws://127.0.0.1:2345/rpc/v0":     "http://127.0.0.1:2345/rpc/streams/v0/push",
		"wss://miner.example/rpc/v0":     "https://miner.example/rpc/streams/v0/push",
		"http://127.0.0.1:2345/rpc/v0?x": "http://127.0.0.1:2345/rpc/streams/v0/push",
	} {
		if u, err := pushURLFor(in); err != nil || u.String() != want {
			t.Errorf("pushURLFor(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
}
