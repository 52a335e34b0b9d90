package devnet

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-bitfield"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/lotus"
)

// serve starts the devnet's JSON-RPC handler and dials it over scheme
// ("http" or "ws") with an admin token, or none when token is false.
func serve(t *testing.T, d *Devnet, scheme string, token bool) (chain.FullNode, string) {
	t.Helper()
	srv := httptest.NewServer(d.Handler())
	t.Cleanup(srv.Close)
	url := scheme + strings.TrimPrefix(srv.URL, "http") + "/rpc/v1"
	tok := ""
	if token {
		var err error
		if tok, err = d.Token(); err != nil {
			t.Fatal(err)
		}
	}
	n, closer, err := lotus.Dial(context.Background(), url, tok)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closer)
	return n, srv.URL + "/rpc/v1"
}

// rawCall posts a JSON-RPC request without a token and returns the raw
// result.
func rawCall(t *testing.T, url, method string, params ...any) json.RawMessage {
	t.Helper()
	if params == nil {
		params = []any{}
	}
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "Filecoin." + method, "params": params})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Result json.RawMessage
		Error  *struct{ Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	if out.Error != nil {
		t.Fatalf("%s: %s", method, out.Error.Message)
	}
	return out.Result
}

// keysOf returns the sorted keys of a JSON object.
func keysOf(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func wantKeys(t *testing.T, what string, raw json.RawMessage, want ...string) {
	t.Helper()
	sort.Strings(want)
	if got := keysOf(t, raw); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%s keys %v, want %v (%s)", what, got, want, raw)
	}
}

func TestFullNodeRPC(t *testing.T) {
	e := newDealEnv(t).funded()
	ctx := e.ctx
	// A deal proven in sector 1.
	p1 := e.proposal()
	id1 := decodePublish(t, e.publish(e.sign(p1, e.client))).IDs[0]
	if r := e.precommit(1, []abi.DealID{id1}, e.commD(p1), p1.EndEpoch+10); r.ExitCode != exitcode.Ok {
		t.Fatalf("pre-commit: exit %d", r.ExitCode)
	}
	pc, err := e.d.StateSectorPreCommitInfo(ctx, e.maddr, 1, chain.EmptyTSK)
	if err != nil || pc == nil {
		t.Fatal(pc, err)
	}
	e.mineUntil(pc.PreCommitEpoch + testPolicy.PreCommitChallengeDelay)
	if r := e.prove(1); r.ExitCode != exitcode.Ok {
		t.Fatalf("prove: exit %d", r.ExitCode)
	}

	n, url := serve(t, e.d, "ws", true)
	g := e.d.GenesisAddress()

	// Chain reads.
	gen, err := n.ChainGetGenesis(ctx)
	if err != nil || gen.Height() != 0 {
		t.Fatalf("genesis %v, %v", gen, err)
	}
	if local, _ := e.d.ChainGetTipSetByHeight(ctx, 0, chain.EmptyTSK); local.Key() != gen.Key() {
		t.Fatal("genesis over RPC differs from height 0")
	}
	head, err := n.ChainHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ts, err := n.ChainGetTipSet(ctx, head.Key()); err != nil || ts.Key() != head.Key() {
		t.Fatalf("ChainGetTipSet %v, %v", ts, err)
	}
	if _, err := n.ChainGetTipSet(ctx, chain.NewTipSetKey(sealedCID(t, 9))); err == nil {
		t.Fatal("unknown tipset found")
	}
	bh, err := n.ChainGetBlock(ctx, head.Cids()[0])
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := bh.Cid(); c != head.Cids()[0] {
		t.Fatalf("block CID %s, want %s", c, head.Cids()[0])
	}
	if _, err := n.ChainGetBlock(ctx, sealedCID(t, 9)); err == nil {
		t.Fatal("unknown block found")
	}

	// A send through the pool: pending, then in a block, then the parent
	// messages and receipts of the next block.
	to := e.newKey()
	sm, err := n.MpoolPushMessage(ctx, &chain.Message{From: g, To: to, Value: big.NewInt(5)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := mustCid(t, sm)
	pending, err := n.MpoolPending(ctx, chain.EmptyTSK)
	if err != nil || len(pending) != 1 || mustCid(t, pending[0]) != sc {
		t.Fatalf("pending %v, %v", pending, err)
	}
	if m, err := n.ChainGetMessage(ctx, sc); err != nil || m.To != to {
		t.Fatalf("pending message %v, %v", m, err)
	}
	incl := e.mine()
	if pending, _ := n.MpoolPending(ctx, chain.EmptyTSK); len(pending) != 0 {
		t.Fatalf("still pending: %v", pending)
	}
	ucid, _ := sm.Message.Cid()
	for _, c := range []cid.Cid{sc, ucid} {
		m, err := n.ChainGetMessage(ctx, c)
		if err != nil || m.To != to || !m.Value.Equals(big.NewInt(5)) {
			t.Fatalf("ChainGetMessage(%s) %v, %v", c, m, err)
		}
	}
	bm, err := n.ChainGetBlockMessages(ctx, incl.Cids()[0])
	if err != nil || len(bm.SecpkMessages) != 1 || len(bm.BlsMessages) != 0 || len(bm.Cids) != 1 || bm.Cids[0] != sc {
		t.Fatalf("block messages %+v, %v", bm, err)
	}
	next := e.mine()
	pm, err := n.ChainGetParentMessages(ctx, next.Cids()[0])
	if err != nil || len(pm) != 1 || pm[0].Cid != sc || pm[0].Message.To != to {
		t.Fatalf("parent messages %+v, %v", pm, err)
	}
	pr, err := n.ChainGetParentReceipts(ctx, next.Cids()[0])
	l, lerr := n.StateSearchMsg(ctx, chain.EmptyTSK, sc, -1, false)
	if err != nil || lerr != nil || len(pr) != 1 || pr[0].ExitCode != exitcode.Ok || pr[0].GasUsed != l.Receipt.GasUsed {
		t.Fatalf("parent receipts %+v, %v (lookup %+v, %v)", pr, err, l, lerr)
	}
	if pm, err := n.ChainGetParentMessages(ctx, gen.Cids()[0]); err != nil || len(pm) != 0 {
		t.Fatalf("genesis parent messages %v, %v", pm, err)
	}

	// State reads.
	if name, err := n.StateNetworkName(ctx); err != nil || name != NetworkName {
		t.Fatalf("network name %q, %v", name, err)
	}
	ga, err := n.StateGetActor(ctx, g, chain.EmptyTSK)
	bal, _ := n.WalletBalance(ctx, g)
	if err != nil || ga.Code != CodeCID("account") || !ga.Balance.Equals(bal) || ga.Nonce == 0 || !ga.Head.Defined() {
		t.Fatalf("genesis actor %+v, %v", ga, err)
	}
	ma, err := n.StateGetActor(ctx, e.maddr, chain.EmptyTSK)
	if err != nil || ma.Code != CodeCID("storageminer") {
		t.Fatalf("miner actor %+v, %v", ma, err)
	}
	if _, err := n.StateGetActor(ctx, e.newKey(), chain.EmptyTSK); err == nil {
		t.Fatal("actor of an unused key found")
	}
	if da, err := n.StateGetActor(ctx, idAddr(idDatacap), chain.EmptyTSK); err != nil || da.Code != CodeCID("datacap") {
		t.Fatalf("DataCap actor %+v, %v", da, err)
	}
	codes, err := n.StateActorCodeCIDs(ctx, NetworkVersion)
	if err != nil || codes["storagemarket"] != CodeCID("storagemarket") || CodeCID("account").String() == CodeCID("storageminer").String() {
		t.Fatalf("code CIDs %v, %v", codes, err)
	}
	if miners, err := n.StateListMiners(ctx, chain.EmptyTSK); err != nil || len(miners) != 1 || miners[0] != e.maddr {
		t.Fatalf("miners %v, %v", miners, err)
	}
	pow, err := n.StateMinerPower(ctx, e.maddr, chain.EmptyTSK)
	if err != nil || !pow.MinerPower.RawBytePower.Equals(big.NewInt(2048)) || !pow.TotalPower.QualityAdjPower.Equals(big.NewInt(2048)) || pow.HasMinPower {
		t.Fatalf("power %+v, %v", pow, err)
	}
	if _, err := n.StateMinerPower(ctx, g, chain.EmptyTSK); err == nil {
		t.Fatal("power of an account")
	}
	avail, err := n.StateMinerAvailableBalance(ctx, e.maddr, chain.EmptyTSK)
	mbal, _ := n.WalletBalance(ctx, e.maddr)
	if err != nil || !avail.Equals(mbal) {
		t.Fatalf("available %s, balance %s, %v", avail, mbal, err)
	}
	secs, err := n.StateMinerSectors(ctx, e.maddr, nil, chain.EmptyTSK)
	if err != nil || len(secs) != 1 || secs[0].SectorNumber != 1 {
		t.Fatalf("sectors %v, %v", secs, err)
	}
	only2 := bitfield.NewFromSet([]uint64{2})
	if secs, err := n.StateMinerSectors(ctx, e.maddr, &only2, chain.EmptyTSK); err != nil || len(secs) != 0 {
		t.Fatalf("sectors in {2}: %v, %v", secs, err)
	}
	if secs, err := n.StateMinerActiveSectors(ctx, e.maddr, chain.EmptyTSK); err != nil || len(secs) != 1 {
		t.Fatalf("active sectors %v, %v", secs, err)
	}
	dl, err := n.StateMinerProvingDeadline(ctx, e.maddr, chain.EmptyTSK)
	h := e.height()
	if err != nil || dl.CurrentEpoch != h || dl.PeriodStart > h || dl.Index >= dl.WPoStPeriodDeadlines || dl.Open > h || dl.Close <= h {
		t.Fatalf("deadline %+v at %d, %v", dl, h, err)
	}
	deals, err := n.StateMarketDeals(ctx, chain.EmptyTSK)
	md := deals[strconv.FormatUint(uint64(id1), 10)]
	if err != nil || md == nil || md.Proposal.PieceCID != p1.PieceCID || md.State.SectorStartEpoch <= 0 || md.State.SectorNumber != 1 {
		t.Fatalf("deals %v, %v", deals, err)
	}
	if cs, err := n.StateCirculatingSupply(ctx, chain.EmptyTSK); err != nil || !cs.Equals(CirculatingSupply) {
		t.Fatalf("circulating supply %s, %v", cs, err)
	}

	// Gas.
	send := &chain.Message{From: g, To: to, Value: big.NewInt(1), Method: builtin.MethodSend}
	if gl, err := n.GasEstimateGasLimit(ctx, send, chain.EmptyTSK); err != nil || gl != gasUsed(send) {
		t.Fatalf("gas limit %d, %v", gl, err)
	}
	if _, err := n.GasEstimateGasLimit(ctx, &chain.Message{From: g, To: to, Method: 42}, chain.EmptyTSK); err == nil {
		t.Fatal("gas limit of a method accounts do not have")
	}
	prem, err := n.GasEstimateGasPremium(ctx, 10, g, 1_000_000, chain.EmptyTSK)
	if err != nil || !prem.Equals(big.NewInt(defaultGasPremium)) {
		t.Fatalf("premium %s, %v", prem, err)
	}
	est, _ := n.GasEstimateMessageGas(ctx, send, nil, chain.EmptyTSK)
	if fc, err := n.GasEstimateFeeCap(ctx, send, 10, chain.EmptyTSK); err != nil || !fc.Equals(est.GasFeeCap) {
		t.Fatalf("fee cap %s (message gas says %s), %v", fc, est.GasFeeCap, err)
	}

	// Wallet.
	list, err := n.WalletList(ctx)
	if err != nil || !containsAddr(list, g) || !containsAddr(list, e.owner) {
		t.Fatalf("wallet list %v, %v", list, err)
	}
	nb, err := n.WalletNew(ctx, "bls")
	if err != nil || nb.Protocol() != address.BLS {
		t.Fatalf("new BLS key %s, %v", nb, err)
	}
	if has, err := n.WalletHas(ctx, nb); err != nil || !has {
		t.Fatalf("node does not hold its new key: %v", err)
	}
	if list, _ := n.WalletList(ctx); !containsAddr(list, nb) {
		t.Fatal("new key not listed")
	}
	if _, err := n.WalletNew(ctx, "ed25519"); err == nil {
		t.Fatal("unknown key type accepted")
	}
	// Without a token, reads work and wallet listing does not.
	anon, _ := serve(t, e.d, "http", false)
	if _, err := anon.StateListMiners(ctx, chain.EmptyTSK); err != nil {
		t.Fatal(err)
	}
	if _, err := anon.WalletList(ctx); err == nil {
		t.Fatal("WalletList without a token")
	}
	if _, err := anon.WalletNew(ctx, "secp256k1"); err == nil {
		t.Fatal("WalletNew without a token")
	}

	// The JSON shapes Lotus' clients decode.
	wantKeys(t, "Actor", rawCall(t, url, "StateGetActor", e.maddr, nil), "Code", "Head", "Nonce", "Balance", "DelegatedAddress")
	rawPow := rawCall(t, url, "StateMinerPower", e.maddr, nil)
	wantKeys(t, "MinerPower", rawPow, "MinerPower", "TotalPower", "HasMinPower")
	var powJSON map[string]json.RawMessage
	_ = json.Unmarshal(rawPow, &powJSON)
	wantKeys(t, "Claim", powJSON["MinerPower"], "RawBytePower", "QualityAdjPower")
	if !bytes.Contains(powJSON["MinerPower"], []byte(`"RawBytePower":"2048"`)) {
		t.Fatalf("power %s", powJSON["MinerPower"])
	}
	wantKeys(t, "BlockMessages", rawCall(t, url, "ChainGetBlockMessages", incl.Cids()[0]), "BlsMessages", "SecpkMessages", "Cids")
	wantKeys(t, "dline.Info", rawCall(t, url, "StateMinerProvingDeadline", e.maddr, nil),
		"CurrentEpoch", "PeriodStart", "Index", "Open", "Close", "Challenge", "FaultCutoff",
		"WPoStPeriodDeadlines", "WPoStProvingPeriod", "WPoStChallengeWindow", "WPoStChallengeLookback", "FaultDeclarationCutoff")
	var dealsJSON map[string]json.RawMessage
	if err := json.Unmarshal(rawCall(t, url, "StateMarketDeals", nil), &dealsJSON); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, "MarketDeal", dealsJSON[strconv.FormatUint(uint64(id1), 10)], "Proposal", "State")
	var pmJSON []json.RawMessage
	if err := json.Unmarshal(rawCall(t, url, "ChainGetParentMessages", next.Cids()[0]), &pmJSON); err != nil || len(pmJSON) != 1 {
		t.Fatal(pmJSON, err)
	}
	wantKeys(t, "api.Message", pmJSON[0], "Cid", "Message")
	if got := string(rawCall(t, url, "StateNetworkName")); got != `"ferry-devnet"` {
		t.Fatalf("network name JSON %s", got)
	}
	if got := string(rawCall(t, url, "StateCirculatingSupply", nil)); got != `"500000000000000000000000000"` {
		t.Fatalf("circulating supply JSON %s", got)
	}
}

func containsAddr(as []address.Address, a address.Address) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

func TestChainNotify(t *testing.T) {
	d, err := Open(context.Background(), Config{Dir: t.TempDir(), BlockTime: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	n, _ := serve(t, d, "ws", false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	subCtx, stop := context.WithCancel(ctx)
	ch, err := n.ChainNotify(subCtx)
	if err != nil {
		t.Fatal(err)
	}
	first := <-ch
	if len(first) != 1 || first[0].Type != chain.HCCurrent || first[0].Val == nil {
		t.Fatalf("first notification %+v", first)
	}
	last := first[0].Val
	for applied := 0; applied < 5; {
		select {
		case changes, ok := <-ch:
			if !ok {
				t.Fatal("channel closed early")
			}
			for _, c := range changes {
				if c.Type != chain.HCApply || c.Val.Height() != last.Height()+1 || c.Val.Parents() != last.Key() {
					t.Fatalf("change %s at %d after %d", c.Type, c.Val.Height(), last.Height())
				}
				last = c.Val
				applied++
			}
		case <-ctx.Done():
			t.Fatal("no head changes")
		}
	}
	stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				goto closed
			}
		case <-ctx.Done():
			t.Fatal("channel not closed after cancel")
		}
	}
closed:
	// ChainNotify needs a websocket: over HTTP it fails cleanly.
	hn, _ := serve(t, d, "http", false)
	if _, err := hn.ChainNotify(ctx); err == nil {
		t.Fatal("ChainNotify over HTTP POST succeeded")
	}
}
