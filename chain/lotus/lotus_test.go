package lotus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-jsonrpc"
	"github.com/filecoin-project/go-jsonrpc/auth"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/ipfs/go-cid"

	ferryauth "github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain"
)

// fakeNode answers a few methods from recorded Lotus responses; the rest
// of chain.Node is left nil and never called.
type fakeNode struct {
	chain.Node
	head *chain.TipSet
	mi   chain.MinerInfo

	mu     sync.Mutex
	pushed []*chain.SignedMessage
}

func (f *fakeNode) ChainHead(ctx context.Context) (*chain.TipSet, error) { return f.head, nil }

func (f *fakeNode) StateMinerInfo(ctx context.Context, maddr address.Address, tsk chain.TipSetKey) (chain.MinerInfo, error) {
	if maddr.String() != "f01234" {
		return chain.MinerInfo{}, fmt.Errorf("actor %s not found", maddr)
	}
	return f.mi, nil
}

func (f *fakeNode) WalletBalance(ctx context.Context, a address.Address) (big.Int, error) {
	return chain.FIL(5), nil
}

func (f *fakeNode) WalletSign(ctx context.Context, a address.Address, data []byte) (*crypto.Signature, error) {
	return &crypto.Signature{Type: crypto.SigTypeSecp256k1, Data: append([]byte("sig:"), data...)}, nil
}

func (f *fakeNode) MpoolPush(ctx context.Context, sm *chain.SignedMessage) (cid.Cid, error) {
	f.mu.Lock()
	f.pushed = append(f.pushed, sm)
	f.mu.Unlock()
	return sm.Cid()
}

func (f *fakeNode) StateVerifiedClientStatus(ctx context.Context, a address.Address, tsk chain.TipSetKey) (*abi.StoragePower, error) {
	return nil, nil
}

func readRecorded(t *testing.T, name string, v interface{}) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "lotus", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// tokens maps bearer tokens to their permissions.
var testTokens = map[string][]auth.Permission{
	"admin-token": ferryauth.All(),
	"read-token":  {ferryauth.Read},
}

type server struct {
	*httptest.Server
	node *fakeNode

	mu   sync.Mutex
	seen []string // tokens presented
}

func newServer(t *testing.T) *server {
	t.Helper()
	f := &fakeNode{}
	readRecorded(t, "ChainHead", &f.head)
	readRecorded(t, "StateMinerInfo", &f.mi)
	s := &server{node: f}
	rpc := jsonrpc.NewServer()
	rpc.Register("Filecoin", Permissioned(f))
	h := &auth.Handler{
		Verify: func(ctx context.Context, token string) ([]auth.Permission, error) {
			s.mu.Lock()
			s.seen = append(s.seen, token)
			s.mu.Unlock()
			p, ok := testTokens[token]
			if !ok {
				return nil, errors.New("unknown token")
			}
			return p, nil
		},
		Next: rpc.ServeHTTP,
	}
	mux := http.NewServeMux()
	mux.Handle("/rpc/v1", h)
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *server) url(scheme string) string {
	return scheme + strings.TrimPrefix(s.URL, "http") + "/rpc/v1"
}

func dial(t *testing.T, url, token string) chain.Node {
	t.Helper()
	n, closer, err := Dial(context.Background(), url, token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closer)
	return n
}

func TestDialRoundTrip(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	for _, scheme := range []string{"http", "ws"} {
		t.Run(scheme, func(t *testing.T) {
			n := dial(t, s.url(scheme), "admin-token")
			head, err := n.ChainHead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if head.Height() != s.node.head.Height() || head.Key() != s.node.head.Key() {
				t.Fatalf("head %v at %d", head.Key(), head.Height())
			}
			c, err := head.Blocks()[0].Cid()
			if err != nil || c != head.Cids()[0] {
				t.Fatalf("block did not survive the trip: %s %v", c, err)
			}
			mi, err := n.StateMinerInfo(ctx, mustAddr(t, "f01234"), chain.EmptyTSK)
			if err != nil {
				t.Fatal(err)
			}
			if mi.PeerId == nil || mi.PeerId.String() != s.node.mi.PeerId.String() || mi.SectorSize != 34359738368 {
				t.Fatalf("miner info %+v", mi)
			}
			if _, err := n.StateMinerInfo(ctx, mustAddr(t, "f09999"), chain.EmptyTSK); err == nil || !strings.Contains(err.Error(), "actor f09999 not found") {
				t.Fatalf("server error not surfaced: %v", err)
			}
			bal, err := n.WalletBalance(ctx, mustAddr(t, "f01234"))
			if err != nil || !bal.Equals(chain.FIL(5)) {
				t.Fatalf("balance %v %v", bal, err)
			}
			sig, err := n.WalletSign(ctx, mustAddr(t, "f01234"), []byte("data"))
			if err != nil || string(sig.Data) != "sig:data" {
				t.Fatalf("sign %v %v", sig, err)
			}
			dc, err := n.StateVerifiedClientStatus(ctx, mustAddr(t, "f01234"), chain.EmptyTSK)
			if err != nil || dc != nil {
				t.Fatalf("verified status %v %v", dc, err)
			}
			var sm chain.SignedMessage
			readRecorded(t, "MpoolPushMessage", &sm)
			want, _ := sm.Cid()
			got, err := n.MpoolPush(ctx, &sm)
			if err != nil || got != want {
				t.Fatalf("push: %s %v, want %s", got, err, want)
			}
		})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) == 0 || s.seen[0] != "admin-token" {
		t.Fatalf("token not sent: %v", s.seen)
	}
}

func TestPermissions(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	a := mustAddr(t, "f01234")

	var sm chain.SignedMessage
	readRecorded(t, "MpoolPushMessage", &sm)
	for _, tok := range []string{"", "read-token"} {
		n := dial(t, s.url("http"), tok)
		if _, err := n.ChainHead(ctx); err != nil {
			t.Fatalf("token %q: read method refused: %v", tok, err)
		}
		_, err := n.WalletSign(ctx, a, []byte("x"))
		if err == nil || !strings.Contains(err.Error(), "missing permission to invoke 'WalletSign' (need 'sign')") {
			t.Fatalf("token %q: sign without permission: %v", tok, err)
		}
		_, err = n.MpoolPush(ctx, &sm)
		if err == nil || !strings.Contains(err.Error(), "need 'write'") {
			t.Fatalf("token %q: push without permission: %v", tok, err)
		}
	}
	n := dial(t, s.url("http"), "wrong-token")
	if _, err := n.ChainHead(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("bad token: %v", err)
	}
}

func TestNotSupported(t *testing.T) {
	var s NodeStruct
	if _, err := s.ChainHead(context.Background()); !errors.Is(err, ErrNotSupported) {
		t.Fatal(err)
	}
}

func TestParseAPIInfo(t *testing.T) {
	for in, want := range map[string][2]string{
		"tok:/ip4/127.0.0.1/tcp/1234/http":          {"http://127.0.0.1:1234/rpc/v1", "tok"},
		"eyJh.eyJB.sig:/ip4/10.0.0.1/tcp/1234/http": {"http://10.0.0.1:1234/rpc/v1", "eyJh.eyJB.sig"},
		"/ip4/127.0.0.1/tcp/1234":                   {"http://127.0.0.1:1234/rpc/v1", ""},
		"/ip4/127.0.0.1/tcp/1234/ws":                {"ws://127.0.0.1:1234/rpc/v1", ""},
		"t:/dns/lotus.example/tcp/443/wss":          {"wss://lotus.example:443/rpc/v1", "t"},
		"/ip6/::1/tcp/1234/http\n":                  {"http://[::1]:1234/rpc/v1", ""},
		"https://api.node.glif.io":                  {"https://api.node.glif.io/rpc/v1", ""},
		"https://api.node.glif.io/rpc/v0":           {"https://api.node.glif.io/rpc/v0", ""},
		"tok:ws://127.0.0.1:1234/rpc/v1":            {"ws://127.0.0.1:1234/rpc/v1", "tok"},
	} {
		u, tok, err := ParseAPIInfo(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if u != want[0] || tok != want[1] {
			t.Errorf("%q: %q %q, want %q %q", in, u, tok, want[0], want[1])
		}
	}
	for _, in := range []string{"", "tok", ":/ip4/1.2.3.4/tcp/1", "tok:/ip4/notanip/tcp/1", "tok:ftp://x", "tok:http://", "/ip4/1.2.3.4/udp/5"} {
		if u, tok, err := ParseAPIInfo(in); err == nil {
			t.Errorf("%q parsed as %q %q", in, u, tok)
		}
	}
}

func TestFromEnv(t *testing.T) {
	s := newServer(t)
	t.Setenv(EnvAPIInfo, "read-token:"+s.url("http"))
	n, closer, err := FromEnv(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer closer()
	if _, err := n.ChainHead(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvAPIInfo, "")
	if _, _, err := FromEnv(context.Background()); err == nil {
		t.Fatal("dialed with no API info")
	}
}

func mustAddr(t *testing.T, s string) address.Address {
	t.Helper()
	a, err := address.NewFromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func FuzzParseAPIInfo(f *testing.F) {
	f.Add("tok:/ip4/127.0.0.1/tcp/1234/http")
	f.Add("https://api.node.glif.io")
	f.Add("/ip6/::1/tcp/1234/ws")
	f.Fuzz(func(t *testing.T, s string) {
		u, _, err := ParseAPIInfo(s)
		if err != nil {
			return
		}
		if !hasScheme(u) {
			t.Fatalf("%q gave URL %q without a known scheme", s, u)
		}
	})
}

func TestFullNotSupported(t *testing.T) {
	var s FullNodeStruct
	ctx := context.Background()
	if _, err := s.ChainNotify(ctx); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("ChainNotify: %v", err)
	}
	if _, err := s.StateMinerPower(ctx, address.Undef, chain.EmptyTSK); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("StateMinerPower: %v", err)
	}
	if _, err := s.StateGetAllocations(ctx, address.Undef, chain.EmptyTSK); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("StateGetAllocations: %v", err)
	}
	if _, err := s.StateGetClaim(ctx, address.Undef, 1, chain.EmptyTSK); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("StateGetClaim: %v", err)
	}
	// The embedded Node methods report it too.
	if _, err := s.ChainHead(ctx); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("ChainHead: %v", err)
	}
}
