package devnet

import (
	"context"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/exitcode"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/wallet"
)

func TestGenesis(t *testing.T) {
	tn := newTestNet(t)
	ctx := tn.ctx
	g := tn.d.GenesisAddress()
	if def, _ := tn.d.WalletDefaultAddress(ctx); def != g {
		t.Fatalf("default address %s, want genesis %s", def, g)
	}
	if has, _ := tn.d.WalletHas(ctx, g); !has {
		t.Fatal("node does not hold the genesis key")
	}
	if b := tn.balance(g); !b.Equals(GenesisBalance) {
		t.Fatalf("genesis balance %s", b)
	}
	if id := tn.lookupID(g); id.String() != "f0100" {
		t.Fatalf("genesis ID %s, want f0100", id)
	}
	ts, _ := tn.d.ChainHead(ctx)
	if ts.Height() != 0 || len(ts.Blocks()[0].Parents) != 0 {
		t.Fatalf("head %d with %d parents", ts.Height(), len(ts.Blocks()[0].Parents))
	}
	for _, a := range []string{"f00", "f02", "f03", "f04", "f05", "f06", "f099"} {
		addr, _ := address.NewFromString(a)
		if _, err := tn.d.StateLookupID(ctx, addr, chain.EmptyTSK); err != nil {
			t.Fatalf("system actor %s: %v", a, err)
		}
	}
	tn.checkSupply()
}

func TestSendCreatesAccountAndChargesGas(t *testing.T) {
	tn := newTestNet(t)
	g := tn.d.GenesisAddress()
	to := tn.newKey()
	before := tn.balance(g)
	r := tn.exec(g, to, builtin.MethodSend, big.NewInt(12345), nil)
	if r.ExitCode != exitcode.Ok || r.GasUsed != gasSend {
		t.Fatalf("receipt %+v", r)
	}
	if b := tn.balance(to); !b.Equals(big.NewInt(12345)) {
		t.Fatalf("recipient balance %s", b)
	}
	if id := tn.lookupID(to); id.String() != "f01000" {
		t.Fatalf("new account ID %s, want f01000", id)
	}
	spent := big.Sub(before, tn.balance(g))
	burnt := tn.balance(idAddr(idBurnt))
	tip := tn.balance(idAddr(idReward))
	if !burnt.Equals(big.NewInt(gasSend * BaseFee)) {
		t.Fatalf("burnt %s, want %d", burnt, gasSend*BaseFee)
	}
	if !spent.Equals(big.Sum(big.NewInt(12345), burnt, tip)) {
		t.Fatalf("spent %s != value + burnt %s + tip %s", spent, burnt, tip)
	}
	if key, err := tn.d.StateAccountKey(tn.ctx, tn.lookupID(to), chain.EmptyTSK); err != nil || key != to {
		t.Fatalf("account key %s, %v", key, err)
	}
	tn.checkSupply()
}

func TestBlockProductionLoop(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(context.Background(), Config{Dir: dir, BlockTime: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g := d.GenesisAddress()
	kw, err := wallet.Open(t.TempDir() + "/w")
	if err != nil {
		t.Fatal(err)
	}
	to, _ := kw.New(wallet.TypeBLS)
	sm, err := d.MpoolPushMessage(ctx, &chain.Message{From: g, To: to, Value: big.NewInt(7)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := d.StateWaitMsg(ctx, mustCid(t, sm), 2, -1, false)
	if err != nil {
		t.Fatal(err)
	}
	if l.Receipt.ExitCode != exitcode.Ok {
		t.Fatalf("exit %d", l.Receipt.ExitCode)
	}
	head, _ := d.ChainHead(ctx)
	if head.Height() < l.Height+2 {
		t.Fatalf("head %d, message at %d with confidence 2", head.Height(), l.Height)
	}
	// Each block's parent is the previous one.
	for h := abi.ChainEpoch(1); h <= head.Height(); h++ {
		ts, err := d.ChainGetTipSetByHeight(ctx, h, head.Key())
		if err != nil {
			t.Fatal(err)
		}
		prev, err := d.ChainGetTipSetByHeight(ctx, h-1, head.Key())
		if err != nil {
			t.Fatal(err)
		}
		if ts.Parents() != prev.Key() {
			t.Fatalf("block %d's parents %s, want %s", h, ts.Parents(), prev.Key())
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCloseWakesWaiters(t *testing.T) {
	tn := newTestNet(t)
	sm, err := tn.d.MpoolPushMessage(tn.ctx, &chain.Message{From: tn.d.GenesisAddress(), To: tn.newKey(), Value: big.NewInt(1)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := tn.d.StateWaitMsg(context.Background(), mustCid(t, sm), 0, -1, false)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	if err := tn.d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("StateWaitMsg returned no error after Close")
	}
	if _, err := tn.d.Mine(tn.ctx); err == nil {
		t.Fatal("Mine after Close succeeded")
	}
}

func TestHelpersWithBlockProduction(t *testing.T) {
	w, err := wallet.Open(t.TempDir() + "/w")
	if err != nil {
		t.Fatal(err)
	}
	d, err := Open(context.Background(), Config{Dir: t.TempDir(), BlockTime: time.Millisecond, Wallet: w})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	owner, _ := w.New(wallet.TypeBLS)
	if err := d.Fund(ctx, owner, big.NewInt(fil)); err != nil {
		t.Fatal(err)
	}
	maddr, err := d.CreateMiner(ctx, owner, owner, 8<<20, []byte("peer"), nil)
	if err != nil {
		t.Fatal(err)
	}
	mi, err := d.StateMinerInfo(ctx, maddr, chain.EmptyTSK)
	if err != nil || mi.SectorSize != 8<<20 || mi.Owner != mi.Worker {
		t.Fatalf("miner info %+v, %v", mi, err)
	}
	if _, err := d.CreateMiner(ctx, owner, owner, 4096, nil, nil); err == nil {
		t.Fatal("miner with a 4 KiB sector size created")
	}
	if err := d.GrantDataCap(ctx, owner, big.NewInt(1<<20)); err != nil {
		t.Fatal(err)
	}
	dc, _ := d.StateVerifiedClientStatus(ctx, owner, chain.EmptyTSK)
	if dc == nil || !dc.Equals(big.NewInt(1<<20)) {
		t.Fatalf("DataCap %v", dc)
	}
	if err := d.GrantDataCap(ctx, owner, big.NewInt(-1)); err == nil {
		t.Fatal("negative grant accepted")
	}
}
