package devnet

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/exitcode"

	"github.com/ferry-fil/ferry/chain"
)

// gasFields fills a message's gas as GasEstimateMessageGas does.
func gasFields(t testing.TB, d *Devnet, m *chain.Message) *chain.Message {
	t.Helper()
	out, err := d.GasEstimateMessageGas(context.Background(), m, nil, chain.EmptyTSK)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMpoolRejects(t *testing.T) {
	tn := newTestNet(t)
	from := tn.newKey()
	tn.fund(from, 10)
	to := tn.newKey()
	tn.fund(to, 1)
	// from sends once so that its nonce is 1.
	tn.execRaw(from, to, builtin.MethodSend, big.Zero(), nil)
	nonce, _ := tn.d.MpoolGetNonce(tn.ctx, from)
	startBalance := tn.balance(from)
	good := func() *chain.Message {
		return gasFields(t, tn.d, &chain.Message{From: from, To: to, Nonce: nonce, Value: big.NewInt(1)})
	}
	stranger := tn.newKey()

	cases := []struct {
		name string
		make func() *chain.SignedMessage
		want string
	}{
		{"bad signature", func() *chain.SignedMessage {
			sm := tn.signed(good())
			sm.Signature.Data[5] ^= 1
			return sm
		}, "signature"},
		{"signed by another key", func() *chain.SignedMessage {
			m := good()
			c, _ := m.Cid()
			sig, _ := tn.w.Sign(stranger, c.Bytes())
			return &chain.SignedMessage{Message: *m, Signature: *sig}
		}, "signature"},
		{"wrong signature type", func() *chain.SignedMessage {
			sm := tn.signed(good())
			sm.Signature.Type = crypto.SigTypeBLS
			return sm
		}, "signature type"},
		{"nonce too low", func() *chain.SignedMessage {
			m := good()
			m.Nonce = nonce - 1
			return tn.signed(m)
		}, "too low"},
		{"value above balance", func() *chain.SignedMessage {
			m := good()
			m.Value = big.Mul(big.NewInt(11), big.NewInt(fil))
			return tn.signed(m)
		}, "not enough funds"},
		{"negative value", func() *chain.SignedMessage {
			m := good()
			m.Value = big.NewInt(-1)
			return tn.signed(m)
		}, "negative"},
		{"gas limit too low", func() *chain.SignedMessage {
			m := good()
			m.GasLimit = 10
			return tn.signed(m)
		}, "gas limit"},
		{"fee cap below base fee", func() *chain.SignedMessage {
			m := good()
			m.GasFeeCap, m.GasPremium = big.NewInt(BaseFee-1), big.Zero()
			return tn.signed(m)
		}, "base fee"},
		{"unknown method", func() *chain.SignedMessage {
			m := good()
			m.To, m.Method = idAddr(idMarket), 12345
			return tn.signed(m)
		}, "no method"},
		{"sender without actor", func() *chain.SignedMessage {
			m := good()
			m.From = stranger
			return tn.signed(m)
		}, "no actor"},
		{"version", func() *chain.SignedMessage {
			m := good()
			m.Version = 1
			return tn.signed(m)
		}, "version"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := tn.d.MpoolPush(tn.ctx, c.make())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one mentioning %q", err, c.want)
			}
			if n := tn.d.pool.size(); n != 0 {
				t.Fatalf("%d messages pending after a rejected push", n)
			}
			tn.mine()
			if b := tn.balance(from); !b.Equals(startBalance) {
				t.Fatalf("sender balance changed to %s", b)
			}
		})
	}
}

func TestMpoolNonceGapAndReplace(t *testing.T) {
	tn := newTestNet(t)
	from := tn.newKey()
	tn.fund(from, 10)
	to := tn.newKey()
	msg := func(nonce uint64, premium int64) *chain.SignedMessage {
		m := gasFields(t, tn.d, &chain.Message{From: from, To: to, Nonce: nonce, Value: big.NewInt(1), GasPremium: big.NewInt(premium)})
		return tn.signed(m)
	}
	// Nonce 1 waits for nonce 0.
	m1 := msg(1, 1000)
	if _, err := tn.d.MpoolPush(tn.ctx, m1); err != nil {
		t.Fatal(err)
	}
	if n, _ := tn.d.MpoolGetNonce(tn.ctx, from); n != 0 {
		t.Fatalf("next nonce %d with a gap at 0", n)
	}
	tn.mine()
	if l, _ := tn.d.StateSearchMsg(tn.ctx, chain.EmptyTSK, mustCid(t, m1), -1, false); l != nil {
		t.Fatal("message after a nonce gap was executed")
	}
	m0 := msg(0, 1000)
	if _, err := tn.d.MpoolPush(tn.ctx, m0); err != nil {
		t.Fatal(err)
	}
	// Replacing needs a 25% higher premium.
	if _, err := tn.d.MpoolPush(tn.ctx, msg(0, 1100)); err == nil {
		t.Fatal("replacement with a small premium bump was accepted")
	}
	m0b := msg(0, 2000)
	if _, err := tn.d.MpoolPush(tn.ctx, m0b); err != nil {
		t.Fatal(err)
	}
	if n, _ := tn.d.MpoolGetNonce(tn.ctx, from); n != 2 {
		t.Fatalf("next nonce %d, want 2", n)
	}
	tn.mine()
	for _, sm := range []*chain.SignedMessage{m0b, m1} {
		if l, _ := tn.d.StateSearchMsg(tn.ctx, chain.EmptyTSK, mustCid(t, sm), -1, false); l == nil || l.Receipt.ExitCode != exitcode.Ok {
			t.Fatalf("message nonce %d: %+v", sm.Message.Nonce, l)
		}
	}
	if l, _ := tn.d.StateSearchMsg(tn.ctx, chain.EmptyTSK, mustCid(t, m0), -1, false); l != nil {
		t.Fatal("the replaced message was executed")
	}
	// Asked to, the search finds the replacement.
	l, err := tn.d.StateSearchMsg(tn.ctx, chain.EmptyTSK, mustCid(t, m0), -1, true)
	if err != nil || l == nil || l.Message != mustCid(t, m0b) {
		t.Fatalf("replaced message lookup %+v, %v; want the replacement %s", l, err, mustCid(t, m0b))
	}
	if l, err := tn.d.StateWaitMsg(tn.ctx, mustCid(t, m0), 0, -1, true); err != nil || l.Message != mustCid(t, m0b) {
		t.Fatalf("waiting for a replaced message: %+v, %v", l, err)
	}
}

// execDirect applies a message in the VM without the pool, as a block
// producer that skipped the pool's checks would.
func execDirect(t *testing.T, tn *testNet, m *chain.Message) (chain.MessageReceipt, *state, *state) {
	t.Helper()
	tn.d.mu.Lock()
	defer tn.d.mu.Unlock()
	before, err := decodeState(tn.d.snap)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := decodeState(tn.d.snap)
	v := tn.d.newVM(after)
	r := v.apply(tn.d.head.Height()+1, m)
	return r, before, after
}

// onlyGasChanged checks that between two states only the sender's nonce and
// balance, the burnt funds and the reward actor changed.
func onlyGasChanged(t testing.TB, before, after *state, sender uint64, nonceMoved bool) {
	t.Helper()
	for id, b := range before.Actors {
		a := after.Actors[id]
		switch id {
		case sender:
			if nonceMoved != (a.Nonce == b.Nonce+1) {
				t.Fatalf("sender nonce %d -> %d", b.Nonce, a.Nonce)
			}
			continue
		case idBurnt, idReward:
			continue
		}
		if !a.Balance.Equals(b.Balance) || a.Nonce != b.Nonce {
			t.Fatalf("actor f0%d changed", id)
		}
	}
	if len(after.Actors) != len(before.Actors) {
		t.Fatalf("%d actors, was %d", len(after.Actors), len(before.Actors))
	}
	bm, _ := jsonOf(before)
	am, _ := jsonOf(after)
	if !bytes.Equal(bm, am) {
		t.Fatal("market, verified registry or DataCap state changed")
	}
	if !after.totalBalance().Equals(before.totalBalance()) {
		t.Fatal("funds created or lost")
	}
}

// jsonOf encodes the market, verified registry and DataCap states of st.
func jsonOf(st *state) ([]byte, error) {
	s := &state{Actors: map[uint64]*actorState{}, Market: st.Market, Verifreg: st.Verifreg, Datacap: st.Datacap}
	return s.encode()
}

func TestFailedMessagesChangeOnlyNonceAndGas(t *testing.T) {
	tn := newTestNet(t)
	from := tn.newKey()
	tn.fund(from, 10)
	id, _ := address.IDFromAddress(tn.lookupID(from))
	base := func(to address.Address, method abi.MethodNum, value abi.TokenAmount, params []byte) *chain.Message {
		m := &chain.Message{From: from, To: to, Method: method, Value: value, Params: params,
			GasFeeCap: big.NewInt(5 * BaseFee), GasPremium: big.NewInt(100)}
		m.GasLimit = 2 * gasUsed(m)
		return m
	}
	ten := big.Mul(big.NewInt(10), big.NewInt(fil))
	cases := []struct {
		name       string
		msg        *chain.Message
		want       exitcode.ExitCode
		nonceMoved bool
	}{
		{"malformed params", base(idAddr(idMarket), builtin.MethodsMarket.AddBalance, big.NewInt(5), []byte{0xff, 0x00}), exitcode.ErrSerialization, true},
		{"trailing params", base(idAddr(idMarket), builtin.MethodsMarket.AddBalance, big.NewInt(5), append(append([]byte{0x55}, from.Bytes()...), 0)), exitcode.ErrSerialization, true},
		{"unknown method", base(idAddr(idMarket), 999, big.Zero(), nil), exitcode.SysErrInvalidMethod, true},
		{"account method", base(tn.d.GenesisAddress(), 2, big.Zero(), nil), exitcode.SysErrInvalidMethod, true},
		{"insufficient funds", base(tn.newKey(), builtin.MethodSend, ten, nil), exitcode.SysErrInsufficientFunds, true},
		{"unknown ID receiver", base(idAddr(4242), builtin.MethodSend, big.NewInt(1), nil), exitcode.SysErrInvalidReceiver, true},
		{"wrong nonce", func() *chain.Message {
			m := base(tn.newKey(), builtin.MethodSend, big.NewInt(1), nil)
			m.Nonce = 7
			return m
		}(), exitcode.SysErrSenderStateInvalid, false},
		{"cannot pay gas", func() *chain.Message {
			m := base(tn.newKey(), builtin.MethodSend, big.NewInt(1), nil)
			m.GasFeeCap = ten
			return m
		}(), exitcode.SysErrSenderStateInvalid, false},
		{"out of gas", func() *chain.Message {
			m := base(tn.newKey(), builtin.MethodSend, big.NewInt(1), nil)
			m.GasLimit = gasSend - 1
			return m
		}(), exitcode.SysErrOutOfGas, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, before, after := execDirect(t, tn, c.msg)
			if r.ExitCode != c.want {
				t.Fatalf("exit %d, want %d", r.ExitCode, c.want)
			}
			onlyGasChanged(t, before, after, id, c.nonceMoved)
		})
	}
	// The same through the pool and a real block: malformed params fail in
	// the receipt, and the sender pays only gas.
	before, burnt, reward := tn.balance(from), tn.balance(idAddr(idBurnt)), tn.balance(idAddr(idReward))
	r := tn.execRaw(from, idAddr(idMarket), builtin.MethodsMarket.AddBalance, big.NewInt(5), []byte{0xff})
	if r.ExitCode != exitcode.ErrSerialization {
		t.Fatalf("exit %d", r.ExitCode)
	}
	spent := big.Sub(before, tn.balance(from))
	burnt = big.Sub(tn.balance(idAddr(idBurnt)), burnt)
	reward = big.Sub(tn.balance(idAddr(idReward)), reward)
	if !burnt.Equals(big.NewInt(r.GasUsed*BaseFee)) || !spent.Equals(big.Add(burnt, reward)) {
		t.Fatalf("failed message cost %s: burnt %s, tip %s, gas used %d", spent, burnt, reward, r.GasUsed)
	}
	if b, _ := tn.d.StateMarketBalance(tn.ctx, from, chain.EmptyTSK); !b.Escrow.IsZero() {
		t.Fatalf("escrow %s after a failed AddBalance", b.Escrow)
	}
	tn.checkSupply()
}
