package market

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ferry-fil/ferry/httpdeal"
	"github.com/ferry-fil/ferry/wallet"
	"github.com/ferry-fil/ferry/wire"
)

// mk12HTTP sends req's CBOR to the route and returns the raw answer body.
func mk12HTTP(t *testing.T, srv *httptest.Server, method, path string, req wire.Message) []byte {
	t.Helper()
	hreq, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(encodeCBOR(t, req)))
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Content-Type", httpdeal.ContentTypeCBOR)
	resp, err := srv.Client().Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s %q", method, path, resp.Status, buf.String())
	}
	return buf.Bytes()
}

// libp2pRaw sends req over the libp2p protocol and returns the raw answer.
func libp2pRaw(t *testing.T, h *harness, proto string, req wire.Message, resp wire.Message) []byte {
	t.Helper()
	client := newHost(t)
	connect(t, client, h.deps.Host)
	if err := exchange(t, client, h.deps.Host.ID(), proto, req, resp); err != nil {
		t.Fatal(err)
	}
	return encodeCBOR(t, resp)
}

// TestMK12OverHTTPMatchesLibp2p serves one real provider over both
// transports and checks that every answer about the same deal is the same
// bytes: a proposal accepted over HTTP, its duplicate refused alike, its
// status (signature checked), a bad signature, and the ask.
func TestMK12OverHTTPMatchesLibp2p(t *testing.T) {
	h := newHarness(t, t.TempDir(), func(c *Config) { c.ReadTimeout = 2 * time.Second })
	h.deps.Host = newHost(t)
	h.start()
	srv := httptest.NewServer(httpdeal.NewMK12(httpdeal.MK12Config{Miner: testMiner, Logf: t.Logf}, h.p))
	defer srv.Close()

	params := h.deal("http.car", 1000, 7, nil)
	var accepted wire.DealResponse
	if err := accepted.UnmarshalCBOR(bytes.NewReader(mk12HTTP(t, srv, http.MethodPost, httpdeal.MK12StorePath, params))); err != nil {
		t.Fatal(err)
	}
	if !accepted.Accepted {
		t.Fatalf("proposal over HTTP rejected: %s", accepted.Message)
	}
	h.waitFor(params.DealUUID, complete, Complete)

	// The same proposal again, once over each transport: the same refusal.
	var viaP2P wire.DealResponse
	p2p := libp2pRaw(t, h, wire.DealProtocolv121, params, &viaP2P)
	viaHTTP := mk12HTTP(t, srv, http.MethodPost, httpdeal.MK12StorePath, params)
	if viaP2P.Accepted || !bytes.Equal(p2p, viaHTTP) {
		t.Fatalf("duplicate proposal: libp2p %x (%+v), HTTP %x", p2p, viaP2P, viaHTTP)
	}

	sig, err := wallet.Sign(h.clientKI, wire.StatusSigningBytes(params.DealUUID))
	if err != nil {
		t.Fatal(err)
	}
	other, err := wallet.Sign(h.clientKI, wire.StatusSigningBytes(uuid.New()))
	if err != nil {
		t.Fatal(err)
	}
	for name, req := range map[string]*wire.DealStatusRequest{
		"signed":        {DealUUID: params.DealUUID, Signature: *sig},
		"bad signature": {DealUUID: params.DealUUID, Signature: *other},
		"unknown deal":  {DealUUID: uuid.New(), Signature: *sig},
	} {
		var st wire.DealStatusResponse
		p2p := libp2pRaw(t, h, wire.DealStatusProtocol, req, &st)
		viaHTTP := mk12HTTP(t, srv, http.MethodGet, httpdeal.MK12StatusPath, req)
		if !bytes.Equal(p2p, viaHTTP) {
			t.Errorf("status %s: libp2p %x, HTTP %x", name, p2p, viaHTTP)
		}
		switch name {
		case "signed":
			if st.DealStatus == nil || st.DealStatus.Status != "Complete" {
				t.Errorf("status: %+v", st.DealStatus)
			}
		case "bad signature":
			if st.Error != "signature verification failed" {
				t.Errorf("bad signature answered %+v", st)
			}
		}
	}

	for _, miner := range []string{"ours", "another"} {
		req := &wire.AskRequest{Miner: testMiner}
		if miner == "another" {
			req.Miner = mustID(5)
		}
		var ask wire.AskResponse
		p2p := libp2pRaw(t, h, wire.AskProtocol, req, &ask)
		viaHTTP := mk12HTTP(t, srv, http.MethodGet, httpdeal.MK12AskPath, req)
		if !bytes.Equal(p2p, viaHTTP) || (miner == "ours") != (ask.Ask != nil) {
			t.Errorf("ask of %s miner: libp2p %x, HTTP %x", miner, p2p, viaHTTP)
		}
	}
}
