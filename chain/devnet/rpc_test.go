package devnet

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/filecoin-project/go-state-types/exitcode"

	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/lotus"
	"github.com/ferry-fil/ferry/wallet"
)

func TestRPCEndToEnd(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(context.Background(), Config{Dir: dir, BlockTime: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for _, scheme := range []string{"http", "ws"} {
		t.Run(scheme, func(t *testing.T) {
			url := scheme + strings.TrimPrefix(srv.URL, "http") + "/rpc/v1"
			token, err := d.Token()
			if err != nil {
				t.Fatal(err)
			}
			n, closer, err := lotus.Dial(ctx, url, token)
			if err != nil {
				t.Fatal(err)
			}
			defer closer()

			head, err := n.ChainHead(ctx)
			if err != nil {
				t.Fatal(err)
			}
			local, _ := d.ChainGetTipSetByHeight(ctx, head.Height(), chain.EmptyTSK)
			if head.Key() != local.Key() {
				t.Fatalf("tipset over RPC %s, locally %s", head.Key(), local.Key())
			}
			// Lotus recomputes block CIDs from the decoded headers: they
			// must match the tipset's CIDs.
			if c, err := head.Blocks()[0].Cid(); err != nil || c != head.Cids()[0] {
				t.Fatalf("decoded header CID %s, tipset says %s (%v)", c, head.Cids()[0], err)
			}
			if p := head.Blocks()[0]; p.Ticket == nil || p.ElectionProof == nil || p.BlockSig == nil || !p.ParentStateRoot.Defined() {
				t.Fatalf("header fields missing: %+v", p)
			}
			g, err := n.WalletDefaultAddress(ctx)
			if err != nil || g != d.GenesisAddress() {
				t.Fatalf("default address %s, %v", g, err)
			}

			// A client key held outside the node: fund it, then it signs its
			// own AddBalance and pushes it with MpoolPush.
			kw, err := wallet.Open(t.TempDir() + "/w")
			if err != nil {
				t.Fatal(err)
			}
			client, _ := kw.New(wallet.TypeSecp256k1)
			sm, err := n.MpoolPushMessage(ctx, &chain.Message{From: g, To: client, Value: big.NewInt(fil)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			c, _ := sm.Cid()
			if l, err := n.StateWaitMsg(ctx, c, 1, -1, false); err != nil || l.Receipt.ExitCode != exitcode.Ok {
				t.Fatalf("funding: %+v, %v", l, err)
			}
			if b, _ := n.WalletBalance(ctx, client); !b.Equals(big.NewInt(fil)) {
				t.Fatalf("client balance %s", b)
			}
			var params bytes.Buffer
			if err := client.MarshalCBOR(&params); err != nil {
				t.Fatal(err)
			}
			nonce, err := n.MpoolGetNonce(ctx, client)
			if err != nil {
				t.Fatal(err)
			}
			m, err := n.GasEstimateMessageGas(ctx, &chain.Message{From: client, To: idAddr(idMarket), Nonce: nonce,
				Value: big.NewInt(1000), Method: builtin.MethodsMarket.AddBalance, Params: params.Bytes()}, nil, chain.EmptyTSK)
			if err != nil {
				t.Fatal(err)
			}
			signed, err := chain.SignMessage(m, func(b []byte) (*crypto.Signature, error) { return kw.Sign(client, b) })
			if err != nil {
				t.Fatal(err)
			}
			c, err = n.MpoolPush(ctx, signed)
			if err != nil {
				t.Fatal(err)
			}
			l, err := n.StateWaitMsg(ctx, c, 0, -1, false)
			if err != nil || l.Receipt.ExitCode != exitcode.Ok {
				t.Fatalf("AddBalance: %+v, %v", l, err)
			}
			mb, err := n.StateMarketBalance(ctx, client, chain.EmptyTSK)
			if err != nil || !mb.Escrow.Equals(big.NewInt(1000)) {
				t.Fatalf("escrow %+v, %v", mb, err)
			}
			// The lookup's tipset is a real one.
			ts, err := n.ChainGetTipSetByHeight(ctx, l.Height, chain.EmptyTSK)
			if err != nil || ts.Key() != l.TipSet {
				t.Fatalf("lookup tipset %s, chain has %v (%v)", l.TipSet, ts, err)
			}
			// A bad message is refused with a readable error.
			signed.Signature.Data[3] ^= 0xff
			if _, err := n.MpoolPush(ctx, signed); err == nil || !strings.Contains(err.Error(), "signature") {
				t.Fatalf("bad signature over RPC: %v", err)
			}
		})
	}

	t.Run("permissions", func(t *testing.T) {
		url := srv.URL + "/rpc/v1"
		anon, closer, err := lotus.Dial(ctx, url, "")
		if err != nil {
			t.Fatal(err)
		}
		defer closer()
		if _, err := anon.ChainHead(ctx); err != nil {
			t.Fatalf("read without a token: %v", err)
		}
		g := d.GenesisAddress()
		if _, err := anon.WalletSign(ctx, g, []byte("x")); err == nil {
			t.Fatal("signing without a token succeeded")
		}
		readTok, _ := d.Token(auth.Read, auth.Write)
		rw, closer2, _ := lotus.Dial(ctx, url, readTok)
		defer closer2()
		if _, err := rw.MpoolPushMessage(ctx, &chain.Message{From: g, To: g}, nil); err == nil {
			t.Fatal("MpoolPushMessage with a write token succeeded (needs sign)")
		}
		if _, err := rw.WalletSign(ctx, g, []byte("x")); err == nil {
			t.Fatal("WalletSign with a write token succeeded (needs sign)")
		}
		signTok, _ := d.Token(auth.Read, auth.Sign)
		s, closer3, _ := lotus.Dial(ctx, url, signTok)
		defer closer3()
		sig, err := s.WalletSign(ctx, g, []byte("ferry"))
		if err != nil {
			t.Fatal(err)
		}
		if err := wallet.Verify(sig, g, []byte("ferry")); err != nil {
			t.Fatal(err)
		}
		forged, _ := auth.Mint(make([]byte, 32), auth.All()...)
		f, closer4, _ := lotus.Dial(ctx, url, forged)
		defer closer4()
		if _, err := f.ChainHead(ctx); err == nil {
			t.Fatal("a token signed with another secret was accepted")
		}
	})

	// The faucet and the notary: funds and DataCap for a write token,
	// nothing without one, and no more than MaxFund a call.
	t.Run("faucet", func(t *testing.T) {
		url := srv.URL + "/rpc/v1"
		to, _ := wallet.Generate(wallet.TypeSecp256k1)
		addr, _ := to.Address()
		for tok, ok := range map[string]bool{"": false, mustToken(t, d, auth.Read): false, mustToken(t, d, auth.Read, auth.Write): true} {
			dn, closer, err := lotus.DialDevnet(ctx, url, tok)
			if err != nil {
				t.Fatal(err)
			}
			defer closer()
			c, err := dn.Fund(ctx, addr, big.NewInt(fil))
			if (err == nil) != ok {
				t.Fatalf("fund with token %q: %v (want success %v)", tok, err, ok)
			}
			if !ok {
				if _, err := dn.GrantDataCap(ctx, addr, big.NewInt(2<<20)); err == nil {
					t.Fatalf("DataCap granted with token %q", tok)
				}
				continue
			}
			if l, err := d.StateWaitMsg(ctx, c, 0, -1, false); err != nil || l.Receipt.ExitCode != exitcode.Ok {
				t.Fatalf("fund message: %+v, %v", l, err)
			}
			if _, err := dn.Fund(ctx, addr, big.Add(MaxFund(), big.NewInt(1))); err == nil {
				t.Fatal("funded more than MaxFund")
			}
			// The notary, with the same permission.
			c, err = dn.GrantDataCap(ctx, addr, big.NewInt(2<<20))
			if err != nil {
				t.Fatal(err)
			}
			if l, err := d.StateWaitMsg(ctx, c, 0, -1, false); err != nil || l.Receipt.ExitCode != exitcode.Ok {
				t.Fatalf("DataCap grant: %+v, %v", l, err)
			}
			if dc, err := d.StateVerifiedClientStatus(ctx, addr, chain.EmptyTSK); err != nil || dc == nil || dc.Int64() != 2<<20 {
				t.Fatalf("DataCap after the grant: %v, %v", dc, err)
			}
		}
		if b, _ := d.WalletBalance(ctx, addr); !b.Equals(big.NewInt(fil)) {
			t.Fatalf("funded address holds %s", b)
		}
	})
}

func mustToken(t *testing.T, d *Devnet, perms ...auth.Permission) string {
	t.Helper()
	tok, err := d.Token(perms...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestRestartKeepsEverything(t *testing.T) {
	e := newDealEnv(t).funded()
	p := e.proposal()
	ret := decodePublish(t, e.publish(e.sign(p, e.client)))
	if r := e.precommit(1, ret.IDs, e.commD(p), p.EndEpoch+5); r.ExitCode != exitcode.Ok {
		t.Fatalf("pre-commit: exit %d", r.ExitCode)
	}
	// A message executed long ago and one still pending.
	old, err := e.d.MpoolPushMessage(e.ctx, &chain.Message{From: e.client, To: e.owner, Value: big.NewInt(3)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.mine()
	pending, err := e.d.MpoolPushMessage(e.ctx, &chain.Message{From: e.client, To: e.owner, Value: big.NewInt(4)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := e.d.ChainHead(e.ctx)
	balances := map[address.Address]big.Int{}
	for _, a := range []address.Address{e.client, e.owner, e.worker, e.maddr, e.d.GenesisAddress()} {
		balances[a] = e.balance(a)
	}
	mb := e.marketBalance(e.client)
	genesis := e.d.GenesisAddress()

	e.restart()

	h2, _ := e.d.ChainHead(e.ctx)
	if h2.Key() != head.Key() {
		t.Fatalf("head after restart %d %s, was %d %s", h2.Height(), h2.Key(), head.Height(), head.Key())
	}
	if e.d.GenesisAddress() != genesis {
		t.Fatal("genesis address changed")
	}
	for a, b := range balances {
		if got := e.balance(a); !got.Equals(b) {
			t.Fatalf("balance of %s %s, was %s", a, got, b)
		}
	}
	if got := e.marketBalance(e.client); !got.Escrow.Equals(mb.Escrow) || !got.Locked.Equals(mb.Locked) {
		t.Fatalf("market balance %+v, was %+v", got, mb)
	}
	if md, err := e.d.StateMarketStorageDeal(e.ctx, ret.IDs[0], chain.EmptyTSK); err != nil || !md.Proposal.PieceCID.Equals(p.PieceCID) {
		t.Fatalf("deal after restart %+v, %v", md, err)
	}
	if pc, err := e.d.StateSectorPreCommitInfo(e.ctx, e.maddr, 1, chain.EmptyTSK); err != nil || pc == nil {
		t.Fatalf("pre-commit after restart %+v, %v", pc, err)
	}
	if l, err := e.d.StateSearchMsg(e.ctx, chain.EmptyTSK, mustCid(t, old), -1, false); err != nil || l == nil || l.Receipt.ExitCode != exitcode.Ok {
		t.Fatalf("old message after restart %+v, %v", l, err)
	}
	// State at an earlier tipset is still readable.
	prev, _ := e.d.ChainGetTipSetByHeight(e.ctx, head.Height()-1, chain.EmptyTSK)
	if _, err := e.d.StateMarketBalance(e.ctx, e.client, prev.Key()); err != nil {
		t.Fatal(err)
	}
	// The pending message survived and executes.
	e.mine()
	if l, _ := e.d.StateSearchMsg(e.ctx, chain.EmptyTSK, mustCid(t, pending), -1, false); l == nil || l.Receipt.ExitCode != exitcode.Ok {
		t.Fatalf("pending message after restart: %+v", l)
	}
	e.checkSupply()
}
