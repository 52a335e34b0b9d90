package devnet

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/ipfs/go-cid"
	cbg "github.com/whyrusleeping/cbor-gen"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/wallet"
)

// testNet is a devnet with manual mining and a wallet of test keys.
type testNet struct {
	t      testing.TB
	d      *Devnet
	w      *wallet.Wallet
	dir    string
	ctx    context.Context
	policy Policy
}

// testPolicy makes deals short enough to live through in a test.
var testPolicy = Policy{MinDealDuration: 10, MaxDealDuration: 1000, PreCommitChallengeDelay: 2, MaxProveCommitDuration: 30, MinSectorExpiration: 20, DealUpdatesInterval: 5}

func newTestNet(t testing.TB) *testNet { return newTestNetWith(t, testPolicy) }

// newTestNetWith makes a test net with policy.
func newTestNetWith(t testing.TB, policy Policy) *testNet {
	t.Helper()
	dir := t.TempDir()
	w, err := wallet.Open(dir + "/wallet")
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNet{t: t, w: w, dir: dir + "/devnet", ctx: context.Background(), policy: policy}
	tn.open()
	return tn
}

func (tn *testNet) open() {
	tn.t.Helper()
	d, err := Open(tn.ctx, Config{Dir: tn.dir, BlockTime: -1, Wallet: tn.w, Policy: tn.policy, Logf: tn.t.Logf})
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.d = d
	tn.t.Cleanup(func() { d.Close() })
}

func (tn *testNet) restart() {
	tn.t.Helper()
	if err := tn.d.Close(); err != nil {
		tn.t.Fatal(err)
	}
	tn.open()
}

func (tn *testNet) mine() *chain.TipSet {
	tn.t.Helper()
	ts, err := tn.d.Mine(tn.ctx)
	if err != nil {
		tn.t.Fatal(err)
	}
	return ts
}

func (tn *testNet) mineUntil(h abi.ChainEpoch) {
	tn.t.Helper()
	if _, err := tn.d.MineUntil(tn.ctx, h); err != nil {
		tn.t.Fatal(err)
	}
}

func (tn *testNet) height() abi.ChainEpoch {
	ts, err := tn.d.ChainHead(tn.ctx)
	if err != nil {
		tn.t.Fatal(err)
	}
	return ts.Height()
}

// newKey makes a key in the test wallet (held by the node).
func (tn *testNet) newKey() address.Address {
	tn.t.Helper()
	a, err := tn.w.New(wallet.TypeSecp256k1)
	if err != nil {
		tn.t.Fatal(err)
	}
	return a
}

// fund sends amount FIL from genesis to a and mines it in.
func (tn *testNet) fund(a address.Address, filAmount int64) {
	tn.t.Helper()
	r := tn.exec(tn.d.GenesisAddress(), a, builtin.MethodSend, big.Mul(big.NewInt(filAmount), big.NewInt(fil)), nil)
	if r.ExitCode != exitcode.Ok {
		tn.t.Fatalf("funding %s: exit %d", a, r.ExitCode)
	}
}

// exec pushes a message through MpoolPushMessage, mines and returns the
// receipt.
func (tn *testNet) exec(from, to address.Address, method abi.MethodNum, value abi.TokenAmount, params cbg.CBORMarshaler) chain.MessageReceipt {
	tn.t.Helper()
	var p []byte
	if params != nil {
		var buf bytes.Buffer
		if err := params.MarshalCBOR(&buf); err != nil {
			tn.t.Fatal(err)
		}
		p = buf.Bytes()
	}
	return tn.execRaw(from, to, method, value, p)
}

func (tn *testNet) execRaw(from, to address.Address, method abi.MethodNum, value abi.TokenAmount, params []byte) chain.MessageReceipt {
	tn.t.Helper()
	sm, err := tn.d.MpoolPushMessage(tn.ctx, &chain.Message{From: from, To: to, Method: method, Value: value, Params: params}, nil)
	if err != nil {
		tn.t.Fatalf("pushing method %d to %s: %v", method, to, err)
	}
	return tn.wait(sm)
}

func (tn *testNet) wait(sm *chain.SignedMessage) chain.MessageReceipt {
	tn.t.Helper()
	c, err := sm.Cid()
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.mine()
	ctx, cancel := context.WithTimeout(tn.ctx, 5*time.Second)
	defer cancel()
	l, err := tn.d.StateWaitMsg(ctx, c, 0, -1, false)
	if err != nil {
		tn.t.Fatalf("waiting for %s: %v", c, err)
	}
	return l.Receipt
}

// signed makes a signed message from a key in the test wallet.
func (tn *testNet) signed(m *chain.Message) *chain.SignedMessage {
	tn.t.Helper()
	key := m.From
	if key.Protocol() == address.ID {
		var err error
		if key, err = tn.d.StateAccountKey(tn.ctx, m.From, chain.EmptyTSK); err != nil {
			tn.t.Fatal(err)
		}
	}
	sm, err := chain.SignMessage(m, func(b []byte) (*crypto.Signature, error) { return tn.w.Sign(key, b) })
	if err != nil {
		tn.t.Fatal(err)
	}
	return sm
}

func (tn *testNet) balance(a address.Address) abi.TokenAmount {
	tn.t.Helper()
	b, err := tn.d.WalletBalance(tn.ctx, a)
	if err != nil {
		tn.t.Fatal(err)
	}
	return b
}

func (tn *testNet) lookupID(a address.Address) address.Address {
	tn.t.Helper()
	id, err := tn.d.StateLookupID(tn.ctx, a, chain.EmptyTSK)
	if err != nil {
		tn.t.Fatal(err)
	}
	return id
}

// checkSupply asserts that no attoFIL was created or lost.
func (tn *testNet) checkSupply() {
	tn.t.Helper()
	tn.d.mu.RLock()
	defer tn.d.mu.RUnlock()
	want := big.Add(GenesisBalance, rootBalance)
	if got := tn.d.st.totalBalance(); !got.Equals(want) {
		tn.t.Fatalf("total balance %s, want %s", got, want)
	}
	// The market actor holds exactly the escrow.
	esc := big.Zero()
	for _, e := range tn.d.st.Market.Escrow {
		esc = big.Add(esc, e.Balance)
		if e.Locked.GreaterThan(e.Balance) || e.Locked.Sign() < 0 {
			tn.t.Fatalf("escrow locked %s out of [0, %s]", e.Locked, e.Balance)
		}
	}
	if got := tn.d.st.Actors[idMarket].Balance; !got.Equals(esc) {
		tn.t.Fatalf("market actor holds %s, escrow sums to %s", got, esc)
	}
}

func mustCid(t testing.TB, sm *chain.SignedMessage) cid.Cid {
	t.Helper()
	c, err := sm.Cid()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
