package devnet

import (
	"strings"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"

	"github.com/ferry-fil/ferry/chain"
)

func TestPastStatesKeptAndPruned(t *testing.T) {
	tn := newTestNet(t)
	a := tn.newKey()
	tn.fund(a, 1) // state changes at height 1
	changedAt := tn.height()
	tn.mineUntil(changedAt + keepStates + 20)
	head := tn.height()

	// Empty blocks store no new snapshot, yet every kept height is readable.
	var stored int
	if err := tn.d.store.db.QueryRow(`SELECT COUNT(*) FROM states WHERE snapshot IS NOT NULL`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored > 3 {
		t.Fatalf("%d snapshots stored for a chain of mostly empty blocks", stored)
	}
	for _, h := range []int64{int64(head) - 1, int64(head) - keepStates + 1} {
		ts, err := tn.d.ChainGetTipSetByHeight(tn.ctx, abi.ChainEpoch(h), chain.EmptyTSK)
		if err != nil {
			t.Fatal(err)
		}
		b, err := tn.d.StateMarketBalance(tn.ctx, a, ts.Key())
		if err != nil {
			t.Fatalf("state at %d: %v", h, err)
		}
		if !b.Escrow.IsZero() {
			t.Fatalf("escrow %s", b.Escrow)
		}
		id, err := tn.d.StateLookupID(tn.ctx, a, ts.Key())
		if err != nil || id != tn.lookupID(a) {
			t.Fatalf("lookup at %d: %s, %v", h, id, err)
		}
	}
	// Before the account existed (and long ago): pruned, with a clear error.
	old, _ := tn.d.ChainGetTipSetByHeight(tn.ctx, changedAt-1, chain.EmptyTSK)
	if _, err := tn.d.StateLookupID(tn.ctx, a, old.Key()); err == nil || !strings.Contains(err.Error(), "no longer kept") {
		t.Fatalf("state at a pruned epoch: %v", err)
	}
	// A state change after the long run of empty blocks is stored and read.
	tn.exec(tn.d.GenesisAddress(), a, builtin.MethodSend, big.NewInt(1), nil)
	tn.mine() // the next block's ParentStateRoot is the state after the Send
	prev, _ := tn.d.ChainGetTipSetByHeight(tn.ctx, tn.height()-1, chain.EmptyTSK)
	cur, _ := tn.d.ChainHead(tn.ctx)
	if prev.Blocks()[0].ParentStateRoot == cur.Blocks()[0].ParentStateRoot {
		t.Fatal("state root did not change after a Send")
	}
}
