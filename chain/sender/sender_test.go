package sender

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/devnet"
	"github.com/ferry-fil/ferry/chain/lotus"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/db/dbtest"
	"github.com/ferry-fil/ferry/wallet"
)

// env is a devnet, a wallet it holds and a funded sending key.
type env struct {
	t    testing.TB
	ctx  context.Context
	dir  string
	d    *devnet.Devnet
	w    *wallet.Wallet
	from address.Address
}

// newEnv opens a devnet; blockTime < 0 mines only when the test says so.
func newEnv(t testing.TB, blockTime time.Duration) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, dir: t.TempDir()}
	var err error
	if e.w, err = wallet.Open(filepath.Join(e.dir, "keystore")); err != nil {
		t.Fatal(err)
	}
	if e.d, err = devnet.Open(ctx, devnet.Config{Dir: filepath.Join(e.dir, "devnet"), BlockTime: blockTime, Wallet: e.w, Logf: t.Logf}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.d.Close() })
	e.from = e.fundedKey(100)
	return e
}

// fundedKey makes a BLS key holding filAmount FIL.
func (e *env) fundedKey(filAmount int64) address.Address {
	e.t.Helper()
	a, err := e.w.New(wallet.TypeBLS)
	if err != nil {
		e.t.Fatal(err)
	}
	e.fund(a, chain.FIL(filAmount))
	return a
}

// fund sends amount from genesis to a and waits for it.
func (e *env) fund(a address.Address, amount abi.TokenAmount) {
	e.t.Helper()
	c, err := e.d.Send(e.ctx, e.d.GenesisAddress(), a, amount)
	if err != nil {
		e.t.Fatal(err)
	}
	e.mine()
	if _, err := e.d.StateWaitMsg(e.ctx, c, 0, -1, false); err != nil {
		e.t.Fatal(err)
	}
}

// mine produces a block now (also when blocks come by themselves).
func (e *env) mine() {
	e.t.Helper()
	if _, err := e.d.Mine(e.ctx); err != nil {
		e.t.Fatal(err)
	}
}

// mining mines a block every few milliseconds until the test ends.
func (e *env) mining() {
	ctx, cancel := context.WithCancel(e.ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(3 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if _, err := e.d.Mine(ctx); err != nil && ctx.Err() == nil {
					e.t.Errorf("mining: %v", err)
					return
				}
			}
		}
	}()
	e.t.Cleanup(func() { cancel(); wg.Wait() })
}

func (e *env) openDB(name string) *sql.DB {
	e.t.Helper()
	sqldb, err := db.Open(e.ctx, dbtest.Source(e.t, filepath.Join(e.dir, name)))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { sqldb.Close() })
	return sqldb
}

func (e *env) sender(sqldb *sql.DB, n Node, keys Keys, mod func(*Config)) *Sender {
	e.t.Helper()
	cfg := Config{DB: sqldb, Node: n, From: e.from, Keys: keys, Logf: e.t.Logf}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(e.ctx, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) nonce(a address.Address) uint64 {
	e.t.Helper()
	act, err := e.d.StateGetActor(e.ctx, a, chain.EmptyTSK)
	if err != nil {
		e.t.Fatal(err)
	}
	return act.Nonce
}

func (e *env) balance(a address.Address) abi.TokenAmount {
	e.t.Helper()
	b, err := e.d.WalletBalance(e.ctx, a)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *env) newAddr() address.Address {
	e.t.Helper()
	a, err := wallet.Generate(wallet.TypeSecp256k1)
	if err != nil {
		e.t.Fatal(err)
	}
	addr, err := a.Address()
	if err != nil {
		e.t.Fatal(err)
	}
	return addr
}

func send(from, to address.Address, attoFIL int64) *chain.Message {
	return &chain.Message{From: from, To: to, Value: big.NewInt(attoFIL)}
}

// TestSendWaitResend sends one message on each path (signed locally, by
// the devnet in-process, by the devnet over JSON-RPC): sending it again
// under its id, before and after it executed, returns the same CID and
// sends nothing more.
func TestSendWaitResend(t *testing.T) {
	e := newEnv(t, 5*time.Millisecond)
	srv := httptest.NewServer(e.d.Handler())
	t.Cleanup(srv.Close)
	tok, err := e.d.Token(auth.Read, auth.Write, auth.Sign)
	if err != nil {
		t.Fatal(err)
	}
	rpc, closer, err := lotus.Dial(e.ctx, srv.URL+"/rpc/v1", tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closer)

	for _, tc := range []struct {
		name  string
		node  Node
		keys  Keys
		local bool
	}{
		{"local", e.d, e.w, true},
		{"node", e.d, nil, false},
		{"node over JSON-RPC", rpc, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.from = e.fundedKey(10)
			s := e.sender(e.openDB(tc.name+".db"), tc.node, tc.keys, nil)
			if s.SignsLocally() != tc.local {
				t.Fatalf("SignsLocally() = %v, want %v", s.SignsLocally(), tc.local)
			}
			to := e.newAddr()
			id := uuid.New()
			c1, err := s.Send(e.ctx, id, send(e.from, to, 1000), nil)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := s.Send(e.ctx, id, send(e.from, to, 1000), nil)
			if err != nil || c2 != c1 {
				t.Fatalf("sending again gave %s, %v; want %s", c2, err, c1)
			}
			l, err := s.Wait(e.ctx, id, 1)
			if err != nil {
				t.Fatal(err)
			}
			if l.Message != c1 || l.Receipt.ExitCode != exitcode.Ok {
				t.Fatalf("lookup %+v, want %s executed", l, c1)
			}
			if c3, err := s.Send(e.ctx, id, send(e.from, to, 1000), nil); err != nil || c3 != c1 {
				t.Fatalf("sending after execution gave %s, %v; want %s", c3, err, c1)
			}
			if n := e.nonce(e.from); n != 1 {
				t.Fatalf("sender's nonce %d, want 1", n)
			}
			if b := e.balance(to); !b.Equals(big.NewInt(1000)) {
				t.Fatalf("recipient holds %s, want 1000", b)
			}
			// The ID address names the same sender.
			fromID, err := e.d.StateLookupID(e.ctx, e.from, chain.EmptyTSK)
			if err != nil {
				t.Fatal(err)
			}
			id2 := uuid.New()
			if _, err := s.Send(e.ctx, id2, send(fromID, to, 1), &chain.MessageSendSpec{MaxFee: chain.FIL(1)}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Wait(e.ctx, id2, 0); err != nil {
				t.Fatal(err)
			}
			if n := e.nonce(e.from); n != 2 {
				t.Fatalf("sender's nonce %d, want 2", n)
			}
		})
	}
}

// TestSendRefusesWhatItCannotSend: an id reused for another message,
// another sender's address, a nonce set by the caller, an unknown id.
func TestSendRefusesWhatItCannotSend(t *testing.T) {
	e := newEnv(t, -1)
	s := e.sender(e.openDB("ferry.db"), e.d, e.w, nil)
	id := uuid.New()
	to := e.newAddr()
	if _, err := s.Send(e.ctx, id, send(e.from, to, 1), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(e.ctx, id, send(e.from, to, 2), nil); !errors.Is(err, ErrIDReused) {
		t.Fatalf("another value under the same id: %v, want ErrIDReused", err)
	}
	if _, err := s.Send(e.ctx, id, send(e.from, e.newAddr(), 1), nil); !errors.Is(err, ErrIDReused) {
		t.Fatalf("another recipient under the same id: %v, want ErrIDReused", err)
	}
	if _, err := s.Send(e.ctx, uuid.New(), send(e.d.GenesisAddress(), to, 1), nil); err == nil {
		t.Fatal("a message from another address was sent")
	}
	m := send(e.from, to, 1)
	m.Nonce = 7
	if _, err := s.Send(e.ctx, uuid.New(), m, nil); err == nil {
		t.Fatal("a message with its own nonce was sent")
	}
	if _, err := s.Wait(e.ctx, uuid.New(), 0); !errors.Is(err, ErrUnknownID) {
		t.Fatalf("waiting for an unknown id: %v, want ErrUnknownID", err)
	}
}

// TestTwoSendersNeverReuseANonce: two Senders of one address over one
// database file (separate connections, as two processes have) send
// concurrently; every message is accepted and lands, each with its own
// nonce.
func TestTwoSendersNeverReuseANonce(t *testing.T) {
	e := newEnv(t, 5*time.Millisecond)
	senders := []*Sender{
		e.sender(e.openDB("ferry.db"), e.d, e.w, nil),
		e.sender(e.openDB("ferry.db"), e.d, e.w, nil),
	}
	const each = 8
	to := e.newAddr()
	var wg sync.WaitGroup
	ids := make(chan uuid.UUID, 2*each)
	for _, s := range senders {
		for i := 0; i < each; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := uuid.New()
				if _, err := s.Send(e.ctx, id, send(e.from, to, 1), nil); err != nil {
					t.Errorf("send: %v", err)
					return
				}
				ids <- id
			}()
		}
	}
	wg.Wait()
	close(ids)
	nonces := map[uint64]bool{}
	for id := range ids {
		if _, err := senders[0].Wait(e.ctx, id, 0); err != nil {
			t.Fatal(err)
		}
		r, err := senders[1].store.get(e.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if nonces[r.signed.Message.Nonce] {
			t.Fatalf("nonce %d assigned twice", r.signed.Message.Nonce)
		}
		nonces[r.signed.Message.Nonce] = true
	}
	if n := e.nonce(e.from); n != 2*each || len(nonces) != 2*each {
		t.Fatalf("sender's nonce %d after %d messages (%d distinct nonces)", n, 2*each, len(nonces))
	}
	if b := e.balance(to); !b.Equals(big.NewInt(2 * each)) {
		t.Fatalf("recipient holds %s, want %d", b, 2*each)
	}
}

// signElsewhere signs a message from the sender's key the way another
// program would, with the nonce it chose.
func (e *env) signElsewhere(to address.Address, nonce uint64, premium int64) *chain.SignedMessage {
	e.t.Helper()
	m, err := e.d.GasEstimateMessageGas(e.ctx, &chain.Message{From: e.from, To: to, Value: big.NewInt(5), Nonce: nonce, GasPremium: big.NewInt(premium)}, nil, chain.EmptyTSK)
	if err != nil {
		e.t.Fatal(err)
	}
	sm, err := chain.SignMessage(m, func(b []byte) (*crypto.Signature, error) { return e.w.Sign(e.from, b) })
	if err != nil {
		e.t.Fatal(err)
	}
	return sm
}

// lotusLike is the devnet answering a lookup of a message it never saw as
// Lotus does: with an error, since Lotus loads the message from its
// blockstore first.
type lotusLike struct {
	*devnet.Devnet
	mu   sync.Mutex
	seen map[cid.Cid]bool
}

func (l *lotusLike) saw(c cid.Cid) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[cid.Cid]bool{}
	}
	l.seen[c] = true
}

func (l *lotusLike) known(c cid.Cid) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.seen[c] {
		return fmt.Errorf("failed to load message: ipld: could not find %s", c)
	}
	return nil
}

func (l *lotusLike) MpoolPush(ctx context.Context, sm *chain.SignedMessage) (cid.Cid, error) {
	c, err := l.Devnet.MpoolPush(ctx, sm)
	if err == nil {
		l.saw(c)
	}
	return c, err
}

func (l *lotusLike) StateSearchMsg(ctx context.Context, from chain.TipSetKey, c cid.Cid, limit abi.ChainEpoch, allowReplaced bool) (*chain.MsgLookup, error) {
	if err := l.known(c); err != nil {
		return nil, err
	}
	return l.Devnet.StateSearchMsg(ctx, from, c, limit, allowReplaced)
}

func (l *lotusLike) StateWaitMsg(ctx context.Context, c cid.Cid, confidence uint64, limit abi.ChainEpoch, allowReplaced bool) (*chain.MsgLookup, error) {
	if err := l.known(c); err != nil {
		return nil, err
	}
	return l.Devnet.StateWaitMsg(ctx, c, confidence, limit, allowReplaced)
}

// TestTakenNonceBeforePush: another program sends from the same key with
// the nonce the sender has just recorded, and its message executes before
// the sender pushes. The push is refused; the message is signed again
// under the same id with the next nonce, and lands. Also with a node that,
// like Lotus, fails to look up a message it never saw.
func TestTakenNonceBeforePush(t *testing.T) {
	for _, lotusLookups := range []bool{false, true} {
		t.Run(fmt.Sprintf("lotus lookups %v", lotusLookups), func(t *testing.T) {
			e := newEnv(t, -1)
			var node Node = e.d
			if lotusLookups {
				node = &lotusLike{Devnet: e.d}
			}
			elsewhere, to := e.newAddr(), e.newAddr()
			var first cid.Cid
			var s *Sender
			s = e.sender(e.openDB("ferry.db"), node, e.w, func(c *Config) {
				c.OnStep = func(id uuid.UUID, st Step) {
					if st != StepRecorded || first.Defined() {
						return
					}
					r, err := s.store.get(e.ctx, id)
					if err != nil {
						t.Error(err)
						return
					}
					first = r.cid
					if _, err := e.d.MpoolPush(e.ctx, e.signElsewhere(elsewhere, r.signed.Message.Nonce, 1000)); err != nil {
						t.Error(err)
					}
					e.mine()
				}
			})
			id := uuid.New()
			c, err := s.Send(e.ctx, id, send(e.from, to, 1000), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !first.Defined() || c == first {
				t.Fatalf("Send returned %s, the first signing was %s: not signed again", c, first)
			}
			e.mine()
			l, err := s.Wait(e.ctx, id, 0)
			if err != nil {
				t.Fatal(err)
			}
			if l.Message != c || l.Receipt.ExitCode != exitcode.Ok {
				t.Fatalf("lookup %+v, want %s", l, c)
			}
			if !e.balance(to).Equals(big.NewInt(1000)) || !e.balance(elsewhere).Equals(big.NewInt(5)) || e.nonce(e.from) != 2 {
				t.Fatalf("after both messages: recipient %s, other %s, nonce %d", e.balance(to), e.balance(elsewhere), e.nonce(e.from))
			}
		})
	}
}

// TestTakenNonceWhilePending: the sender's message waits in the pool when
// another program replaces it by fee with another call; that call
// executes. Wait notices the nonce was taken, signs the message again and
// returns when the new one lands.
func TestTakenNonceWhilePending(t *testing.T) {
	e := newEnv(t, -1)
	s := e.sender(e.openDB("ferry.db"), e.d, e.w, func(c *Config) { c.Recheck = 20 * time.Millisecond })
	elsewhere, to := e.newAddr(), e.newAddr()
	id := uuid.New()
	c, err := s.Send(e.ctx, id, send(e.from, to, 1000), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.MpoolPush(e.ctx, e.signElsewhere(elsewhere, 0, 1_000_000)); err != nil {
		t.Fatal(err)
	}
	e.mine()
	e.mining()
	l, err := s.Wait(e.ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if l.Message == c || l.Receipt.ExitCode != exitcode.Ok {
		t.Fatalf("lookup %+v: the first signing %s cannot have executed", l, c)
	}
	if !e.balance(to).Equals(big.NewInt(1000)) || !e.balance(elsewhere).Equals(big.NewInt(5)) {
		t.Fatalf("recipient %s, other %s", e.balance(to), e.balance(elsewhere))
	}
}

// TestWaitPushesAgain: a message the pool refused (its sender had not the
// funds) stays recorded; once funded, waiting for a later message pushes
// it again too, and both land in nonce order.
func TestWaitPushesAgain(t *testing.T) {
	e := newEnv(t, -1)
	e.from = e.fundedKey(1)
	s := e.sender(e.openDB("ferry.db"), e.d, e.w, func(c *Config) { c.Recheck = 20 * time.Millisecond })
	to := e.newAddr()
	big1 := uuid.New()
	if _, err := s.Send(e.ctx, big1, &chain.Message{From: e.from, To: to, Value: chain.FIL(5)}, nil); err == nil {
		t.Fatal("a message worth more than its sender holds was pushed")
	}
	small := uuid.New()
	if _, err := s.Send(e.ctx, small, send(e.from, to, 1), nil); err != nil {
		t.Fatal(err)
	}
	e.fund(e.from, chain.FIL(10))
	e.mining()
	if _, err := s.Wait(e.ctx, small, 0); err != nil {
		t.Fatal(err)
	}
	l, err := s.Wait(e.ctx, big1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if l.Receipt.ExitCode != exitcode.Ok || e.nonce(e.from) != 2 {
		t.Fatalf("refused message: %+v, nonce %d", l, e.nonce(e.from))
	}
	if want := big.Add(chain.FIL(5), big.NewInt(1)); !e.balance(to).Equals(want) {
		t.Fatalf("recipient holds %s, want %s", e.balance(to), want)
	}
}
