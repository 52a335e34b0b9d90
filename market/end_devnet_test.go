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
// kind (an unknown tipset, also "not found") is only an error; a direct
// deal whose claim is gone reads as removed.
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
	for name, node := range map[string]chain.FullNode{"devnet": dn, "json-rpc": rpc} {
		w := &endWatcher{chain: node, miner: dn.GenesisAddress()}
		gone := watchedDeal{kind: KindMarket, dealID: 424242}
		reason, err := w.chainEnd(ctx, gone, chain.TipSetKey{})
		if err != nil || reason != EndRemoved {
			t.Fatalf("%s: unknown deal: reason %q, error %v", name, reason, err)
		}
		if reason, err := w.chainEnd(ctx, gone, bogus); err == nil || reason != "" {
			t.Fatalf("%s: unknown tipset: reason %q, error %v", name, reason, err)
		}
		// A direct deal's claim the registry no longer has (null over
		// JSON-RPC) is a removed deal too.
		noClaim := watchedDeal{kind: KindDirect, claim: 424242}
		if reason, err := w.chainEnd(ctx, noClaim, chain.TipSetKey{}); err != nil || reason != EndRemoved {
			t.Fatalf("%s: unknown claim: reason %q, error %v", name, reason, err)
		}
		if reason, err := w.chainEnd(ctx, noClaim, bogus); err == nil || reason != "" {
			t.Fatalf("%s: claim at an unknown tipset: reason %q, error %v", name, reason, err)
		}
	}
}
