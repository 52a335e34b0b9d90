package devnet

import (
	"testing"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/google/uuid"

	"github.com/ferry-fil/ferry/chain"
)

// TestMpoolPushMessageMsgUuid: as in Lotus, a MsgUuid names the message
// MpoolPushMessage signs. Asking again with it, before or after the block
// that executes it and across a restart, returns that message and signs no
// other; another MsgUuid is another message.
func TestMpoolPushMessageMsgUuid(t *testing.T) {
	tn := newTestNet(t)
	from := tn.newKey()
	tn.fund(from, 10)
	to := tn.newKey()
	id := uuid.New()
	push := func(u uuid.UUID) *chain.SignedMessage {
		t.Helper()
		sm, err := tn.d.MpoolPushMessage(tn.ctx, &chain.Message{From: from, To: to, Value: big.NewInt(7)}, &chain.MessageSendSpec{MsgUuid: u})
		if err != nil {
			t.Fatal(err)
		}
		return sm
	}
	first := mustCid(t, push(id))
	if again := mustCid(t, push(id)); !again.Equals(first) {
		t.Fatalf("second push with the same MsgUuid signed %s, want %s", again, first)
	}
	if n := tn.d.pool.size(); n != 1 {
		t.Fatalf("%d messages pending, want 1", n)
	}
	tn.restart()
	if again := mustCid(t, push(id)); !again.Equals(first) {
		t.Fatalf("after a restart the MsgUuid gave %s, want %s", again, first)
	}
	tn.mine()
	if again := push(id); !mustCid(t, again).Equals(first) || again.Message.Nonce != 0 {
		t.Fatalf("after execution the MsgUuid gave %s (nonce %d), want %s", mustCid(t, again), again.Message.Nonce, first)
	}
	if n, _ := tn.d.MpoolGetNonce(tn.ctx, from); n != 1 {
		t.Fatalf("next nonce %d, want 1: the MsgUuid was sent twice", n)
	}
	other := push(uuid.New())
	if other.Message.Nonce != 1 {
		t.Fatalf("another MsgUuid got nonce %d, want 1", other.Message.Nonce)
	}
	// Without a MsgUuid every call is a new message.
	a, b := push(uuid.Nil), push(uuid.Nil)
	if a.Message.Nonce == b.Message.Nonce {
		t.Fatalf("two pushes without a MsgUuid share nonce %d", a.Message.Nonce)
	}
}

// TestReplacementMustMakeTheSameCall: as in Lotus, a search that allows
// replacements only finds a message that makes the same call with other
// gas; another call that took the nonce is no replacement, so a sender can
// tell that its message will never execute.
func TestReplacementMustMakeTheSameCall(t *testing.T) {
	tn := newTestNet(t)
	from := tn.newKey()
	tn.fund(from, 10)
	to, elsewhere := tn.newKey(), tn.newKey()
	msg := func(dest address.Address, premium int64) *chain.SignedMessage {
		return tn.signed(gasFields(t, tn.d, &chain.Message{From: from, To: dest, Value: big.NewInt(1), GasPremium: big.NewInt(premium)}))
	}
	ours := msg(to, 1000)
	if _, err := tn.d.MpoolPush(tn.ctx, ours); err != nil {
		t.Fatal(err)
	}
	other := msg(elsewhere, 2000) // same nonce, another call
	if _, err := tn.d.MpoolPush(tn.ctx, other); err != nil {
		t.Fatal(err)
	}
	tn.mine()
	if l, err := tn.d.StateSearchMsg(tn.ctx, chain.EmptyTSK, mustCid(t, ours), -1, true); err != nil || l != nil {
		t.Fatalf("another call at the same nonce was reported as the replacement: %+v, %v", l, err)
	}
	if l, err := tn.d.StateSearchMsg(tn.ctx, chain.EmptyTSK, mustCid(t, other), -1, true); err != nil || l == nil {
		t.Fatalf("the executed message is not found: %+v, %v", l, err)
	}
}
