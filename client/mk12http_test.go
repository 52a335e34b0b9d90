package client

import (
	"bytes"
	"context"
	"net"
	"net/http/httptest"
	"reflect"
	"strconv"
	"sync"
	"testing"

	"github.com/multiformats/go-multiaddr"

	"github.com/ferry-fil/ferry/httpdeal"
	"github.com/ferry-fil/ferry/wallet"
	"github.com/ferry-fil/ferry/wire"
)

func TestDealBaseURLs(t *testing.T) {
	var addrs []multiaddr.Multiaddr
	for _, s := range []string{
		"/ip4/127.0.0.1/tcp/24001",
		"/dns/sp.example/tcp/443/https",
		"/ip4/127.0.0.1/udp/24001/quic-v1",
		"/dns4/sp.example/tcp/443/wss",
		"/ip6/::1/tcp/8080/ws",
		"/ip4/127.0.0.1/tcp/7777/http",
		"/ip4/127.0.0.1/tcp/8443/tls/http",
	} {
		addrs = append(addrs, multiaddr.StringCast(s))
	}
	got := DealBaseURLs(addrs)
	want := []string{
		"https://sp.example:443",
		"https://sp.example:443",
		"http://[::1]:8080",
		"http://127.0.0.1:7777",
		"https://127.0.0.1:8443",
		"http://127.0.0.1:24001",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DealBaseURLs:\n got %q\nwant %q", got, want)
	}
}

// httpProvider serves the mk12 routes for the fake provider, recording
// the proposals that came over HTTP.
type httpProvider struct {
	fp *fakeProvider
	mu sync.Mutex
	n  int
}

func (hp *httpProvider) Propose(_ context.Context, p *wire.DealParams, _ string) wire.DealResponse {
	hp.mu.Lock()
	hp.n++
	hp.mu.Unlock()
	var buf bytes.Buffer
	_ = p.ClientDealProposal.Proposal.MarshalCBOR(&buf)
	if err := wallet.Verify(&p.ClientDealProposal.ClientSignature, p.ClientDealProposal.Proposal.Client, buf.Bytes()); err != nil {
		return wire.DealResponse{Message: "bad signature"}
	}
	hp.fp.set(func() { hp.fp.proposed = append(hp.fp.proposed, *p) })
	return wire.DealResponse{Accepted: true}
}

func (hp *httpProvider) Status(_ context.Context, r *wire.DealStatusRequest) wire.DealStatusResponse {
	return wire.DealStatusResponse{DealUUID: r.DealUUID, Error: "not here"}
}

func (hp *httpProvider) Ask(context.Context) (*wire.SignedStorageAsk, error) {
	var buf bytes.Buffer
	_ = hp.fp.ask.MarshalCBOR(&buf)
	sig, err := hp.fp.wk.Sign(hp.fp.worker, buf.Bytes())
	return &wire.SignedStorageAsk{Ask: &hp.fp.ask, Signature: sig}, err
}

// closedPort returns a loopback TCP port nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// A miner whose on-chain addresses include an HTTP one gets the proposal
// over HTTP, after an address that refuses connections; the libp2p
// handler sees nothing.
func TestMakeDealTriesHTTPFirst(t *testing.T) {
	fp, fc := newFakeProvider(t)
	hp := &httpProvider{fp: fp}
	srv := httptest.NewServer(httpdeal.NewMK12(httpdeal.MK12Config{Miner: fp.ask.Miner, Logf: t.Logf}, hp))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	dead := multiaddr.StringCast("/ip4/127.0.0.1/tcp/" + strconv.Itoa(closedPort(t)) + "/http")
	live := multiaddr.StringCast("/ip4/127.0.0.1/tcp/" + port + "/http")
	fc.info.Multiaddrs = append([][]byte{dead.Bytes(), live.Bytes()}, fc.info.Multiaddrs...)

	w, err := wallet.Open(t.TempDir() + "/client")
	if err != nil {
		t.Fatal(err)
	}
	clientAddr, _ := w.New(wallet.TypeSecp256k1)
	h, err := NewHost()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	res, err := MakeDeal(context.Background(), fc, h, w, testDealRequest(t, clientAddr))
	if err != nil || !res.Accepted {
		t.Fatalf("MakeDeal: %+v %v", res, err)
	}
	if hp.n != 1 {
		t.Fatalf("%d proposals over HTTP, want 1", hp.n)
	}

	p, err := LookupProvider(context.Background(), fc, fp.ask.Miner)
	if err != nil {
		t.Fatal(err)
	}
	ask, err := QueryAskHTTP(context.Background(), fc, nil, DealBaseURLs(p.AddrInfo.Addrs), p)
	if err != nil || ask.SeqNo != fp.ask.SeqNo {
		t.Fatalf("QueryAskHTTP: %+v %v", ask, err)
	}
	if _, err := QueryAskHTTP(context.Background(), fc, nil, []string{"http://127.0.0.1:" + strconv.Itoa(closedPort(t))}, p); err == nil {
		t.Fatal("QueryAskHTTP with no live address succeeded")
	}
}
