package market

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"

	"github.com/ferry-fil/ferry/wallet"
	"github.com/ferry-fil/ferry/wire"
)

func newHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func connect(t testing.TB, client, server host.Host) {
	t.Helper()
	if err := client.Connect(context.Background(), peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// exchange sends req on a new stream and decodes the answer into resp.
func exchange(t testing.TB, client host.Host, server peer.ID, proto string, req wire.Message, resp wire.Message) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.NewStream(ctx, server, protocol.ID(proto))
	if err != nil {
		return err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if req != nil {
		if err := wire.Write(s, req); err != nil {
			return err
		}
	}
	if err := s.CloseWrite(); err != nil {
		return err
	}
	return wire.Read(s, resp, 0)
}

func TestProtocolsOverLibp2p(t *testing.T) {
	server, client := newHost(t), newHost(t)
	retrieval := multiaddr.StringCast("/ip4/127.0.0.1/tcp/7777/http")
	h := newHarness(t, t.TempDir(), func(c *Config) {
		c.MaxDealsPerPublishMsg = 1
		c.RetrievalAddrs = []multiaddr.Multiaddr{retrieval}
		c.ReadTimeout = 500 * time.Millisecond
	})
	h.deps.Host = server
	h.start()
	connect(t, client, server)

	for i, proto := range []string{wire.DealProtocolv121, wire.DealProtocolv120} {
		params := h.deal("p2p.car", 1000, int64(i), nil) // two pieces: the same one twice is a duplicate
		var resp wire.DealResponse
		if err := exchange(t, client, server.ID(), proto, params, &resp); err != nil {
			t.Fatalf("%s: %v", proto, err)
		}
		if !resp.Accepted {
			t.Fatalf("%s: rejected: %s", proto, resp.Message)
		}
		h.waitFor(params.DealUUID, complete, Complete)

		sig, _ := wallet.Sign(h.clientKI, wire.StatusSigningBytes(params.DealUUID))
		var st wire.DealStatusResponse
		if err := exchange(t, client, server.ID(), wire.DealStatusProtocol, &wire.DealStatusRequest{DealUUID: params.DealUUID, Signature: *sig}, &st); err != nil {
			t.Fatal(err)
		}
		if st.DealStatus == nil || st.DealStatus.Status != Complete.String() {
			t.Fatalf("status over libp2p: %+v", st)
		}
	}

	var ask wire.AskResponse
	if err := exchange(t, client, server.ID(), wire.AskProtocol, &wire.AskRequest{Miner: testMiner}, &ask); err != nil {
		t.Fatal(err)
	}
	if ask.Ask == nil || ask.Ask.Ask.Miner != testMiner || ask.Ask.Signature == nil {
		t.Fatalf("ask over libp2p: %+v", ask)
	}
	if err := wallet.Verify(ask.Ask.Signature, h.fc.worker, encodeCBOR(t, ask.Ask.Ask)); err != nil {
		t.Fatalf("ask signature: %v", err)
	}
	var none wire.AskResponse
	if err := exchange(t, client, server.ID(), wire.AskProtocol, &wire.AskRequest{Miner: mustID(5)}, &none); err != nil || none.Ask != nil {
		t.Fatalf("ask for another miner: %+v %v", none, err)
	}

	var tr wire.QueryResponse
	if err := exchange(t, client, server.ID(), wire.TransportsProtocol, nil, &tr); err != nil {
		t.Fatal(err)
	}
	addrs, err := tr.Protocols[0].Multiaddrs()
	if err != nil || tr.Protocols[0].Name != "http" || !addrs[0].Equal(retrieval) {
		t.Fatalf("transports: %+v %v", tr, err)
	}

	// Malformed, oversized and silent requests get the stream reset; the
	// provider keeps serving.
	bad := map[string][]byte{
		"garbage":   []byte("not cbor at all"),
		"array":     {0x82, 0x01, 0x02},
		"truncated": encodeCBOR(t, h.deal("t.car", 1000, 5, nil))[:50],
		"oversized": append([]byte{0xa1, 0x64, 'J', 'u', 'n', 'k', 0x5a, 0x00, 0x50, 0x00, 0x00}, bytes.Repeat([]byte{0}, 5<<20)...),
		"silent":    nil,
	}
	for name, b := range bad {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := client.NewStream(ctx, server.ID(), protocol.ID(wire.DealProtocolv121))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		_ = s.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			_, _ = s.Write(b)
			if name != "silent" {
				_ = s.CloseWrite()
			}
		}()
		got, err := io.ReadAll(s)
		if err == nil && len(got) > 0 {
			t.Errorf("%s: provider answered %x", name, got)
		}
		s.Reset()
	}
	params := h.deal("after.car", 1000, 99, nil)
	var resp wire.DealResponse
	if err := exchange(t, client, server.ID(), wire.DealProtocolv121, params, &resp); err != nil || !resp.Accepted {
		t.Fatalf("provider after bad input: %+v %v", resp, err)
	}
}
