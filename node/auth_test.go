package node

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/google/uuid"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/lotus"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/wallet"
)

// TestOperatorAPINeedsToken: no method of the operator API runs without a
// token or with a bad one; a read token reads and steers nothing; an admin
// token does both; /metrics stays open. The operator's token file is
// private to its owner.
func TestOperatorAPINeedsToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := Start(ctx, testRepo(t), Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if fi, err := os.Stat(n.Repo.Path("token")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, %v", fi, err)
	}
	addr, admin, err := api.Target(n.Repo.Dir)
	if err != nil {
		t.Fatal(err)
	}
	dialWith := func(token string) api.Ferry {
		t.Helper()
		t.Setenv(api.EnvAPIInfo, token+":"+addr)
		f, closer, err := api.Dial(ctx, n.Repo.Dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(closer)
		return f
	}

	// Without a token nothing reaches the API, not even a read.
	resp, err := http.Post("http://"+n.Config.API.Listen+"/rpc/v0", "application/json",
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"Ferry.Info","params":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("Info without a token: %s", resp.Status)
	}
	forged, err := auth.Mint([]byte("not the secret of this ferryd!!!"), auth.All()...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dialWith(forged).Info(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Info with a token of another secret: %v", err)
	}

	adminAPI := dialWith(admin)
	readTok, err := adminAPI.AuthNew(ctx, []auth.Permission{auth.Read})
	if err != nil {
		t.Fatal(err)
	}
	reader := dialWith(readTok)
	if _, err := reader.Info(ctx); err != nil {
		t.Fatalf("Info with a read token: %v", err)
	}
	if _, err := reader.AskGet(ctx); err != nil {
		t.Fatalf("AskGet with a read token: %v", err)
	}
	unknown := uuid.New()
	if err := reader.DealFail(ctx, unknown); err == nil || !strings.Contains(err.Error(), "missing permission") {
		t.Fatalf("DealFail with a read token: %v", err)
	}
	if _, err := reader.AuthNew(ctx, auth.All()); err == nil || !strings.Contains(err.Error(), "missing permission") {
		t.Fatalf("a read token minted an admin token: %v", err)
	}
	// The admin token reaches the method (which finds no such deal).
	if err := dialWith(admin).DealFail(ctx, unknown); err == nil || strings.Contains(err.Error(), "permission") {
		t.Fatalf("DealFail with the admin token: %v", err)
	}

	resp, err = http.Get("http://" + n.Config.API.Listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
}

// TestClientChainToken: the devnet token ferryd gives clients reads the
// chain, pushes what the client signed and funds it from the faucet, but
// cannot sign with the keys ferryd holds (worker, genesis), and is no
// token for the operator API.
func TestClientChainToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n, err := Start(ctx, testRepo(t), Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	b, err := os.ReadFile(n.Repo.Path(client.DevnetTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(b))
	url := "http://" + n.Config.Chain.DevnetListen + "/rpc/v1"
	c, closer, err := lotus.Dial(ctx, url, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer closer()
	if _, err := c.ChainHead(ctx); err != nil {
		t.Fatal(err)
	}
	for name, from := range map[string]address.Address{"worker": n.Worker, "genesis": n.Devnet.GenesisAddress()} {
		if _, err := c.WalletSign(ctx, from, []byte("ferry")); err == nil || !strings.Contains(err.Error(), "missing permission") {
			t.Fatalf("WalletSign with the %s key and a client token: %v", name, err)
		}
		m := &chain.Message{From: from, To: n.Worker, Value: big.NewInt(1)}
		if _, err := c.MpoolPushMessage(ctx, m, nil); err == nil || !strings.Contains(err.Error(), "missing permission") {
			t.Fatalf("MpoolPushMessage from the %s and a client token: %v", name, err)
		}
	}

	// The faucet works with it.
	key, err := wallet.Generate(wallet.TypeSecp256k1)
	if err != nil {
		t.Fatal(err)
	}
	to, _ := key.Address()
	faucet, fcloser, err := lotus.DialDevnet(ctx, url, tok)
	if err != nil {
		t.Fatal(err)
	}
	defer fcloser()
	mc, err := faucet.Fund(ctx, to, chain.FIL(3))
	if err != nil {
		t.Fatal(err)
	}
	if l, err := c.StateWaitMsg(ctx, mc, 0, -1, false); err != nil || l.Receipt.ExitCode != 0 {
		t.Fatalf("faucet message: %+v, %v", l, err)
	}

	// It is no operator token.
	addr, _, err := api.Target(n.Repo.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(api.EnvAPIInfo, tok+":"+addr)
	f, fc, err := api.Dial(ctx, n.Repo.Dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fc()
	if _, err := f.Info(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("the client chain token on the operator API: %v", err)
	}
}
