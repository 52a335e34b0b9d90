package httpdeal

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/wire"
)

// fakeMK12 records what the routes hand it and answers fixed messages.
type fakeMK12 struct {
	mu       sync.Mutex
	proposed []*wire.DealParams
	statuses []*wire.DealStatusRequest
}

func (f *fakeMK12) Propose(_ context.Context, p *wire.DealParams, peer string) wire.DealResponse {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.proposed = append(f.proposed, p)
	return wire.DealResponse{Message: "rejected for the test, peer " + peer}
}

func (f *fakeMK12) Status(_ context.Context, r *wire.DealStatusRequest) wire.DealStatusResponse {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses = append(f.statuses, r)
	return wire.DealStatusResponse{DealUUID: r.DealUUID, Error: "signature verification failed"}
}

func (f *fakeMK12) Ask(context.Context) (*wire.SignedStorageAsk, error) {
	return &wire.SignedStorageAsk{Ask: &wire.StorageAsk{Miner: testMiner, SeqNo: 3}}, nil
}

var testMiner, _ = address.NewIDAddress(1001)

// testParams is a deal proposal as far as encoding needs one.
func testParams() *wire.DealParams {
	root := cid.MustParse("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi")
	pc := cid.MustParse("baga6ea4seaqes3nobte6ezpp4wqan2age2s5yxcatzotcvobhgcmv5wi2xh5mbi")
	p := &wire.DealParams{DealUUID: uuid.New(), DealDataRoot: root, Transfer: wire.Transfer{Type: wire.TransferHTTP, Size: 10}}
	p.ClientDealProposal.Proposal.PieceCID = pc
	p.ClientDealProposal.Proposal.Client = testMiner
	p.ClientDealProposal.Proposal.Provider = testMiner
	p.ClientDealProposal.Proposal.StoragePricePerEpoch = big.Zero()
	p.ClientDealProposal.Proposal.ProviderCollateral = big.Zero()
	p.ClientDealProposal.Proposal.ClientCollateral = big.Zero()
	p.ClientDealProposal.ClientSignature = crypto.Signature{Type: crypto.SigTypeSecp256k1, Data: make([]byte, 65)}
	return p
}

func cborOf(t *testing.T, m wire.Message) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := wire.Write(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func do(t *testing.T, h http.Handler, method, path, ct string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	r.RemoteAddr = "127.0.0.1:5555"
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestMK12Routes(t *testing.T) {
	f := &fakeMK12{}
	h := NewMK12(MK12Config{Miner: testMiner, Logf: t.Logf}, f)
	params := testParams()

	w := do(t, h, http.MethodPost, MK12StorePath, ContentTypeCBOR, cborOf(t, params))
	want := cborOf(t, &wire.DealResponse{Message: "rejected for the test, peer "})
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), want) || w.Header().Get("Content-Type") != ContentTypeCBOR {
		t.Fatalf("store: %d %q %x", w.Code, w.Header().Get("Content-Type"), w.Body.Bytes())
	}
	if len(f.proposed) != 1 || f.proposed[0].DealUUID != params.DealUUID {
		t.Fatalf("provider got %+v", f.proposed)
	}

	sreq := &wire.DealStatusRequest{DealUUID: params.DealUUID, Signature: crypto.Signature{Type: crypto.SigTypeSecp256k1, Data: []byte{1, 2, 3}}}
	w = do(t, h, http.MethodGet, MK12StatusPath, ContentTypeCBOR, cborOf(t, sreq))
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), cborOf(t, &wire.DealStatusResponse{DealUUID: params.DealUUID, Error: "signature verification failed"})) {
		t.Fatalf("status: %d %x", w.Code, w.Body.Bytes())
	}
	if len(f.statuses) != 1 || !bytes.Equal(f.statuses[0].Signature.Data, []byte{1, 2, 3}) {
		t.Fatalf("the signature did not reach the provider: %+v", f.statuses)
	}

	w = do(t, h, http.MethodGet, MK12AskPath, ContentTypeCBOR, cborOf(t, &wire.AskRequest{Miner: testMiner}))
	var ask wire.AskResponse
	if w.Code != 200 || ask.UnmarshalCBOR(w.Body) != nil || ask.Ask == nil || ask.Ask.Ask.SeqNo != 3 {
		t.Fatalf("ask: %d %+v", w.Code, ask)
	}
	other, _ := address.NewIDAddress(5)
	w = do(t, h, http.MethodGet, MK12AskPath, ContentTypeCBOR, cborOf(t, &wire.AskRequest{Miner: other}))
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), cborOf(t, &wire.AskResponse{})) {
		t.Fatalf("ask for another miner: %d %x", w.Code, w.Body.Bytes())
	}
}

func TestMK12BadRequests(t *testing.T) {
	f := &fakeMK12{}
	h := NewMK12(MK12Config{Miner: testMiner, Logf: t.Logf}, f)
	good := cborOf(t, testParams())
	huge := append([]byte{0xa1, 0x64, 'J', 'u', 'n', 'k', 0x5a, 0x00, 0x50, 0x00, 0x00}, bytes.Repeat([]byte{0}, MK12MaxProposal+10)...)
	for _, tc := range []struct {
		name, method, path, ct string
		body                   []byte
		code                   int
	}{
		{"no content type", "POST", MK12StorePath, "", good, 400},
		{"json", "POST", MK12StorePath, "application/json", good, 400},
		{"cbor with parameters", "POST", MK12StorePath, "application/cbor; charset=binary", good, 400},
		{"garbage", "POST", MK12StorePath, ContentTypeCBOR, []byte("not cbor"), 400},
		{"truncated", "POST", MK12StorePath, ContentTypeCBOR, good[:len(good)/2], 400},
		{"oversized", "POST", MK12StorePath, ContentTypeCBOR, huge, 400},
		{"status too large", "GET", MK12StatusPath, ContentTypeCBOR, huge[:MK12MaxRequest+100], 400},
		{"empty ask", "GET", MK12AskPath, ContentTypeCBOR, nil, 400},
		{"GET store", "GET", MK12StorePath, ContentTypeCBOR, good, 405},
		{"POST status", "POST", MK12StatusPath, ContentTypeCBOR, good, 405},
	} {
		w := do(t, h, tc.method, tc.path, tc.ct, tc.body)
		if w.Code != tc.code {
			t.Errorf("%s: %d, want %d", tc.name, w.Code, tc.code)
		}
		if tc.code == 400 && w.Body.Len() != 0 {
			t.Errorf("%s: body %q, want none", tc.name, w.Body.String())
		}
	}
	if len(f.proposed) != 0 {
		t.Fatalf("bad requests reached the provider: %d", len(f.proposed))
	}
}

func TestRateLimit(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	f := &fakeMK12{}
	h := NewMK12(MK12Config{Miner: testMiner, RateLimit: 3, Now: clock, Logf: t.Logf}, f)
	ask := cborOf(t, &wire.AskRequest{Miner: testMiner})
	call := func(path, ip string) int {
		r := httptest.NewRequest("GET", path, bytes.NewReader(ask))
		r.RemoteAddr = ip + ":1234"
		r.Header.Set("Content-Type", ContentTypeCBOR)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for i := 0; i < 3; i++ {
		if c := call(MK12AskPath, "127.0.0.1"); c != 200 {
			t.Fatalf("request %d: %d", i, c)
		}
	}
	if c := call(MK12AskPath, "127.0.0.1"); c != http.StatusTooManyRequests {
		t.Fatalf("4th request in a second: %d", c)
	}
	if c := call(MK12AskPath, "127.0.0.2"); c != 200 {
		t.Fatalf("another address: %d", c)
	}
	if c := call(MK12StatusPath, "127.0.0.1"); c == http.StatusTooManyRequests {
		t.Fatal("another route shares the limit")
	}
	if c := call(MK12AskPath, "[::ffff:127.0.0.1]"); c != http.StatusTooManyRequests {
		t.Fatalf("an IPv4-mapped spelling of the same address: %d", c)
	}
	now = now.Add(time.Second)
	if c := call(MK12AskPath, "127.0.0.1"); c != 200 {
		t.Fatalf("next second: %d", c)
	}
}

// The routes answer over a real loopback listener too, GET bodies included.
func TestMK12OverLoopback(t *testing.T) {
	srv := httptest.NewServer(NewMK12(MK12Config{Miner: testMiner, Logf: t.Logf}, &fakeMK12{}))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+MK12AskPath, bytes.NewReader(cborOf(t, &wire.AskRequest{Miner: testMiner})))
	req.Header.Set("Content-Type", ContentTypeCBOR)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var ask wire.AskResponse
	if resp.StatusCode != 200 || ask.UnmarshalCBOR(bytes.NewReader(b)) != nil || ask.Ask == nil {
		t.Fatalf("%s %x", resp.Status, b)
	}
}

// TestRateLimitForwarded: a request another node of the cluster forwarded
// (its peer token verified) counts under the client's address, the last
// X-Forwarded-For entry; without a verified token the header is ignored.
func TestRateLimitForwarded(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newRateLimiter(2, func() time.Time { return now })
	l.peer = func(r *http.Request) bool { return r.Header.Get(peerToken) == "good" }
	h := l.wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	call := func(token string, forwarded ...string) int {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "127.0.0.9:1234" // the forwarding node
		for _, f := range forwarded {
			r.Header.Add("X-Forwarded-For", f)
		}
		if token != "" {
			r.Header.Set(peerToken, token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	// Three clients through one node: each has its own limit.
	for _, client := range []string{"127.0.0.1", "127.0.0.2", "::1"} {
		for i := 0; i < 2; i++ {
			if c := call("good", client); c != http.StatusOK {
				t.Fatalf("client %s, request %d through a peer: %d", client, i, c)
			}
		}
		if c := call("good", client); c != http.StatusTooManyRequests {
			t.Fatalf("client %s, 3rd request: %d", client, c)
		}
	}
	// The entry the peer added is the last one; the client's own go before it.
	if c := call("good", "127.0.0.3, 127.0.0.1"); c != http.StatusTooManyRequests {
		t.Fatalf("a client naming another address before its own: %d", c)
	}
	if c := call("good", "127.0.0.1", "127.0.0.4"); c != http.StatusOK {
		t.Fatalf("the last of two headers: %d", c)
	}
	// Without the cluster's token the header is anyone's: the request
	// counts under the address it came from.
	for i := 0; i < 2; i++ {
		if c := call("forged", "127.0.0.5"); c != http.StatusOK {
			t.Fatalf("request %d with a forged token: %d", i, c)
		}
	}
	if c := call("", "127.0.0.6"); c != http.StatusTooManyRequests {
		t.Fatalf("a 3rd request from the forwarding node's address, no token: %d", c)
	}
	// A peer's request without the header counts under the peer.
	if c := call("good"); c != http.StatusTooManyRequests {
		t.Fatalf("a peer's own request: %d", c)
	}
}
