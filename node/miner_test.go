package node

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v9/miner"
	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/devnet"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/wallet"
)

// minerEnv is a devnet and a repo database with this repo's miner on it.
type minerEnv struct {
	t   *testing.T
	ctx context.Context
	d   *devnet.Devnet
	w   *wallet.Wallet
	dm  *devnetMiner
	kv  facts
}

func newMinerEnv(t *testing.T) *minerEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	dir := t.TempDir()
	w, err := wallet.Open(filepath.Join(dir, "keystore"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := devnet.Open(ctx, devnet.Config{Dir: filepath.Join(dir, "devnet"), BlockTime: 5 * time.Millisecond, Wallet: w, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	sqldb, err := db.Open(ctx, filepath.Join(dir, "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close() })
	e := &minerEnv{t: t, ctx: ctx, d: d, w: w, kv: facts{sqldb}}
	e.dm = e.ensure()
	return e
}

func (e *minerEnv) ensure() *devnetMiner {
	e.t.Helper()
	dm, err := ensureDevnetMiner(e.ctx, e.kv.db, e.d, e.w, e.d.GenesisAddress(), 2048, testPeer(e.t), 5*time.Millisecond, e.t.Logf)
	if err != nil {
		e.t.Fatal(err)
	}
	return dm
}

func (e *minerEnv) workerNonce() uint64 {
	e.t.Helper()
	a, err := e.d.StateGetActor(e.ctx, e.dm.worker, chain.EmptyTSK)
	if err != nil {
		e.t.Fatal(err)
	}
	return a.Nonce
}

func testPeer(t *testing.T) peer.ID {
	t.Helper()
	pid, err := peer.Decode("12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf")
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestDevnetMinerResumes: the miner's creation is recorded only once its
// collateral landed; a start that crashed after sending everything (here:
// the record of the miner lost) finds the same messages under their ids
// and the same miner, and sends nothing.
func TestDevnetMinerResumes(t *testing.T) {
	e := newMinerEnv(t)
	nonce := e.workerNonce()
	if nonce != 2 {
		t.Fatalf("worker nonce %d after set-up, want 2 (CreateMiner, AddBalance)", nonce)
	}
	if err := e.kv.delete(e.ctx, "miner"); err != nil {
		t.Fatal(err)
	}
	again := e.ensure()
	if again.miner != e.dm.miner || again.worker != e.dm.worker {
		t.Fatalf("second start found miner %s (worker %s), want %s (%s)", again.miner, again.worker, e.dm.miner, e.dm.worker)
	}
	if n := e.workerNonce(); n != nonce {
		t.Fatalf("the second start sent %d messages", n-nonce)
	}
	mi, err := e.d.StateListMiners(e.ctx, chain.EmptyTSK)
	if err != nil || len(mi) != 1 {
		t.Fatalf("miners on the devnet: %v, %v; want one", mi, err)
	}
}

// TestEnsureMinerAddrs writes the peer ID and addresses once, sends nothing
// when they are already right, and after a restart waits for a message
// sent before it instead of sending another.
func TestEnsureMinerAddrs(t *testing.T) {
	e := newMinerEnv(t)
	pid := testPeer(t)
	addrs := []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/24001")}
	check := func() {
		t.Helper()
		mi, err := e.d.StateMinerInfo(e.ctx, e.dm.miner, chain.EmptyTSK)
		if err != nil || mi.PeerId == nil || *mi.PeerId != pid || len(mi.Multiaddrs) != 1 || !bytes.Equal(mi.Multiaddrs[0], addrs[0].Bytes()) {
			t.Fatalf("miner info: %+v, %v", mi, err)
		}
	}
	if err := ensureMinerAddrs(e.ctx, e.kv.db, e.d, e.dm.sender, e.dm.miner, pid, addrs); err != nil {
		t.Fatal(err)
	}
	check()
	nonce := e.workerNonce()
	if err := ensureMinerAddrs(e.ctx, e.kv.db, e.d, e.dm.sender, e.dm.miner, pid, addrs); err != nil {
		t.Fatal(err)
	}
	if n := e.workerNonce(); n != nonce {
		t.Fatalf("ensureMinerAddrs sent %d messages although nothing changed", n-nonce)
	}

	// A restart finds a ChangeMultiaddrs under way (recorded, sent, not
	// executed yet): it waits for that one.
	addrs = []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/24002")}
	params, err := cborBytes(&miner.ChangeMultiaddrsParams{NewMultiaddrs: []abi.Multiaddrs{addrs[0].Bytes()}})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	if err := e.kv.set(e.ctx, "message under way: ChangeMultiaddrs", id.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.dm.sender.Send(e.ctx, id, &chain.Message{From: e.dm.worker, To: e.dm.miner, Method: builtin.MethodsMiner.ChangeMultiaddrs, Params: params}, nil); err != nil {
		t.Fatal(err)
	}
	if err := ensureMinerAddrs(e.ctx, e.kv.db, e.d, e.dm.sender, e.dm.miner, pid, addrs); err != nil {
		t.Fatal(err)
	}
	check()
	if n := e.workerNonce(); n != nonce+1 {
		t.Fatalf("%d messages for one change of addresses", n-nonce)
	}
	if _, ok, _ := e.kv.get(e.ctx, "message under way: ChangeMultiaddrs"); ok {
		t.Fatal("the message under way is still recorded after it executed")
	}
}
