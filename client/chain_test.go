package client

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/devnet"
	"github.com/ferry-fil/ferry/wallet"
)

// startDevnet runs a devnet with millisecond blocks behind its JSON-RPC
// handler and returns the endpoint with a token as ferryd gives clients
// (read and write).
func startDevnet(t *testing.T) Endpoint {
	t.Helper()
	ep, _ := startDevnetNode(t)
	return ep
}

func startDevnetNode(t *testing.T) (Endpoint, *devnet.Devnet) {
	t.Helper()
	d, err := devnet.Open(context.Background(), devnet.Config{Dir: filepath.Join(t.TempDir(), "devnet"), BlockTime: 5 * time.Millisecond, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	tok, err := d.Token(auth.Read, auth.Write)
	if err != nil {
		t.Fatal(err)
	}
	return Endpoint{URL: srv.URL + "/rpc/v1", Token: tok, Source: "test devnet"}, d
}

func dialTest(t *testing.T, ep Endpoint) chain.FullNode {
	t.Helper()
	n, closer, err := Dial(context.Background(), ep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closer)
	return n
}

func TestFundAddBalanceWithdraw(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ep := startDevnet(t)
	n := dialTest(t, ep)
	r, _, err := InitRepo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addr, err := r.Wallet.New(wallet.TypeSecp256k1)
	if err != nil {
		t.Fatal(err)
	}

	ten := chain.FIL(10)
	c, err := FundFromDevnet(ctx, n, ep, addr, ten)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WaitMessage(ctx, n, c); err != nil {
		t.Fatal(err)
	}
	bal, err := n.WalletBalance(ctx, addr)
	if err != nil || !bal.Equals(ten) {
		t.Fatalf("balance after funding %s (%v), want %s", bal, err, ten)
	}

	three := chain.FIL(3)
	if _, err := AddBalance(ctx, n, r, addr, chain.FIL(11)); err == nil {
		t.Fatal("added more than the wallet holds")
	}
	c, err = AddBalance(ctx, n, r, addr, three)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WaitMessage(ctx, n, c); err != nil {
		t.Fatal(err)
	}
	mb, err := n.StateMarketBalance(ctx, addr, chain.EmptyTSK)
	if err != nil || !mb.Escrow.Equals(three) {
		t.Fatalf("escrow %s (%v), want %s", mb.Escrow, err, three)
	}
	bal, _ = n.WalletBalance(ctx, addr)
	if !bal.LessThan(big.Sub(ten, three)) {
		t.Fatalf("wallet %s after adding 3 FIL and paying gas", bal)
	}

	// Enough escrow for 2 FIL, not for 4.
	if err := CheckEscrow(ctx, n, addr, chain.FIL(2)); err != nil {
		t.Fatal(err)
	}
	err = CheckEscrow(ctx, n, addr, chain.FIL(4))
	if !errors.Is(err, ErrInsufficientEscrow) || !strings.Contains(err.Error(), "ferry market add-balance 1") {
		t.Fatalf("escrow check for 4 FIL: %v", err)
	}

	c, err = WithdrawBalance(ctx, n, r, addr, chain.FIL(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WaitMessage(ctx, n, c); err != nil {
		t.Fatal(err)
	}
	mb, _ = n.StateMarketBalance(ctx, addr, chain.EmptyTSK)
	if !mb.Escrow.Equals(chain.FIL(2)) {
		t.Fatalf("escrow after withdrawing 1 FIL: %s", mb.Escrow)
	}

	// The actor would withdraw less than asked; the client refuses.
	if _, err := WithdrawBalance(ctx, n, r, addr, chain.FIL(3)); err == nil || !strings.Contains(err.Error(), "available") {
		t.Fatalf("over-withdrawal: %v", err)
	}

	// A message that fails on chain (WithdrawBalance without parameters)
	// is refused by gas estimation or executes with a non-zero exit code.
	msg, _ := WithdrawBalanceMessage(addr, chain.FIL(1))
	msg.Params = nil
	c, err = SendMessage(ctx, n, r, msg)
	if err == nil {
		_, err = WaitMessage(ctx, n, c)
		var ee *ExitError
		if !errors.As(err, &ee) || ee.ExitCode == exitcode.Ok {
			t.Fatalf("withdrawal without params: %v", err)
		}
	}

	// A sender whose key the wallet lacks.
	other, _ := wallet.Generate(wallet.TypeSecp256k1)
	oa, _ := other.Address()
	msg, _ = AddBalanceMessage(oa, chain.FIL(1))
	if _, err := SendMessage(ctx, n, r, msg); err == nil {
		t.Fatal("sent from an address without its key")
	}
}

// notDevnet is a chain that is not a ferry devnet.
type notDevnet struct{ chain.Node }

func (notDevnet) Version(context.Context) (chain.APIVersion, error) {
	return chain.APIVersion{Version: "1.32.0+mainnet"}, nil
}

func TestFundRefusesOtherChains(t *testing.T) {
	_, err := FundFromDevnet(context.Background(), notDevnet{}, Endpoint{URL: "http://127.0.0.1:1/rpc/v1"}, mustAddr(t, "f01001"), chain.FIL(1))
	if !errors.Is(err, ErrNotDevnet) {
		t.Fatalf("funding on mainnet: %v", err)
	}
}

// TestFundNeedsWriteToken: the faucet needs a token with write; without
// one, or with read only, the error says which token to use.
func TestFundNeedsWriteToken(t *testing.T) {
	ep, d := startDevnetNode(t)
	n := dialTest(t, ep)
	read, err := d.Token(auth.Read)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"", read} {
		e := ep
		e.Token = tok
		_, err := FundFromDevnet(context.Background(), n, e, mustAddr(t, "f01001"), chain.FIL(1))
		if err == nil || !strings.Contains(err.Error(), DevnetTokenFile) {
			t.Fatalf("funding with token %q: %v", tok, err)
		}
	}
}

func TestResolveEndpoint(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	home := t.TempDir()
	env["HOME"] = home

	ep, err := ResolveEndpoint(getenv, Config{})
	if err != nil || ep.URL != DefaultDevnetURL || ep.Token != "" {
		t.Fatalf("no settings: %+v %v", ep, err)
	}
	if err := os.MkdirAll(filepath.Join(home, ".ferry"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".ferry", "token"), []byte("operator token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ep, _ := ResolveEndpoint(getenv, Config{}); ep.Token != "" {
		t.Fatalf("the operator's token is read for the chain: %+v", ep)
	}
	if err := os.WriteFile(filepath.Join(home, ".ferry", DevnetTokenFile), []byte("filetoken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ep, _ := ResolveEndpoint(getenv, Config{}); ep.Token != "filetoken" {
		t.Fatalf("token file: %+v", ep)
	}
	env[EnvAPIToken] = "envtoken"
	if ep, _ := ResolveEndpoint(getenv, Config{}); ep.Token != "envtoken" {
		t.Fatalf("FERRY_API_TOKEN: %+v", ep)
	}
	if ep, _ := ResolveEndpoint(getenv, Config{ChainAPI: "cfgtok:/ip4/10.0.0.1/tcp/1234/http"}); ep.URL != "http://10.0.0.1:1234/rpc/v1" || ep.Token != "cfgtok" {
		t.Fatalf("config: %+v", ep)
	}
	env["FULLNODE_API_INFO"] = "tok:/ip4/127.0.0.2/tcp/2345/http"
	if ep, _ := ResolveEndpoint(getenv, Config{ChainAPI: "x:/ip4/10.0.0.1/tcp/1/http"}); ep.URL != "http://127.0.0.2:2345/rpc/v1" || ep.Token != "tok" {
		t.Fatalf("FULLNODE_API_INFO: %+v", ep)
	}
	env["FULLNODE_API_INFO"] = "garbage"
	if _, err := ResolveEndpoint(getenv, Config{}); err == nil {
		t.Fatal("bad FULLNODE_API_INFO accepted")
	}
}

func TestDialUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := Dial(ctx, Endpoint{URL: "http://127.0.0.1:1/rpc/v1", Source: "local devnet"})
	if err == nil || !strings.Contains(err.Error(), "ferryd run") {
		t.Fatalf("unreachable chain: %v", err)
	}
}

// TestConcurrentSendsShareNonces: ferry commands running at once from one
// wallet (each opening the repo's message records, as separate processes
// do) never give two messages one nonce: all land.
func TestConcurrentSendsShareNonces(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ep := startDevnet(t)
	n := dialTest(t, ep)
	r, _, err := InitRepo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addr, err := r.Wallet.New(wallet.TypeSecp256k1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := FundFromDevnet(ctx, n, ep, addr, chain.FIL(10))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WaitMessage(ctx, n, c); err != nil {
		t.Fatal(err)
	}
	const sends = 6
	cids := make(chan cid.Cid, sends)
	var wg sync.WaitGroup
	for i := 0; i < sends; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg, _ := AddBalanceMessage(addr, chain.FIL(1))
			c, err := SendMessage(ctx, n, r, msg)
			if err != nil {
				t.Errorf("send: %v", err)
				return
			}
			cids <- c
		}()
	}
	wg.Wait()
	close(cids)
	for c := range cids {
		if _, err := WaitMessage(ctx, n, c); err != nil {
			t.Fatal(err)
		}
	}
	mb, err := n.StateMarketBalance(ctx, addr, chain.EmptyTSK)
	if err != nil || !mb.Escrow.Equals(chain.FIL(sends)) {
		t.Fatalf("escrow %s (%v) after %d concurrent AddBalance of 1 FIL", mb.Escrow, err, sends)
	}
}
