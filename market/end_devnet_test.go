package market

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/devnet"
	"github.com/ferry-fil/ferry/chain/lotus"
	"github.com/ferry-fil/ferry/wallet"
)

// TestDevnetDealGone checks the end detection against what the devnet
// answers, in process and over its Lotus JSON-RPC API: a deal the market
// actor no longer holds reads as removed, while a failed read of another
// kind (an unknown tipset, also "not found") is only an error.
func TestDevnetDealGone(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a devnet")
	}
	ctx := context.Background()
	dir := t.TempDir()
	w, err := wallet.Open(dir + "/wallet")
	if err != nil {
		t.Fatal(err)
	}
	dn, err := devnet.Open(ctx, devnet.Config{Dir: dir + "/devnet", BlockTime: 20 * time.Millisecond, Wallet: w, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer dn.Close()
	srv := httptest.NewServer(dn.Handler())
	defer srv.Close()
	rpc, closer, err := lotus.Dial(ctx, srv.URL+"/rpc/v1", "")
	if err != nil {
		t.Fatal(err)
	}
	defer closer()

	bogus := chain.NewTipSetKey(testRoot)
	for name, node := range map[string]chain.Node{"devnet": dn, "json-rpc": rpc} {
		w := &endWatcher{chain: node}
		reason, err := w.chainEnd(ctx, 424242, chain.TipSetKey{})
		if err != nil || reason != EndRemoved {
			t.Fatalf("%s: unknown deal: reason %q, error %v", name, reason, err)
		}
		if reason, err := w.chainEnd(ctx, 424242, bogus); err == nil || reason != "" {
			t.Fatalf("%s: unknown tipset: reason %q, error %v", name, reason, err)
		}
	}
}
