package devnet

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-bitfield"
	commcid "github.com/filecoin-project/go-fil-commcid"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/builtin/v9/miner"
	"github.com/filecoin-project/go-state-types/builtin/v9/power"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/piece"
)

// dealEnv is a devnet with a 2 KiB miner and a funded client.
type dealEnv struct {
	*testNet
	owner, worker, client address.Address // key addresses
	maddr                 address.Address // miner ID address
	sealProof             abi.RegisteredSealProof
	sectorSize            abi.SectorSize
	seq                   int
}

func newDealEnv(t testing.TB) *dealEnv {
	return newDealEnvWith(t, testPolicy, abi.RegisteredSealProof_StackedDrg2KiBV1_1)
}

// newDealEnvWith makes a deal environment with policy and a miner sealing
// with sealProof.
func newDealEnvWith(t testing.TB, policy Policy, sealProof abi.RegisteredSealProof) *dealEnv {
	tn := newTestNetWith(t, policy)
	e := &dealEnv{testNet: tn, owner: tn.newKey(), worker: tn.newKey(), client: tn.newKey(), sealProof: sealProof}
	for _, a := range []address.Address{e.owner, e.worker, e.client} {
		tn.fund(a, 1000)
	}
	post, err := sealProof.RegisteredWindowPoStProof()
	if err != nil {
		t.Fatal(err)
	}
	if e.sectorSize, err = sealProof.SectorSize(); err != nil {
		t.Fatal(err)
	}
	r := tn.exec(e.owner, idAddr(idPower), builtin.MethodsPower.CreateMiner, big.Zero(), &power.CreateMinerParams{
		Owner: e.owner, Worker: e.worker, WindowPoStProofType: post,
		Peer: []byte("peer"), Multiaddrs: []abi.Multiaddrs{{0x04, 127, 0, 0, 1}},
	})
	if r.ExitCode != exitcode.Ok {
		t.Fatalf("CreateMiner: exit %d", r.ExitCode)
	}
	var ret power.CreateMinerReturn
	if err := ret.UnmarshalCBOR(bytes.NewReader(r.Return)); err != nil {
		t.Fatal(err)
	}
	e.maddr = ret.IDAddress
	if e.lookupID(ret.RobustAddress) != e.maddr {
		t.Fatal("robust address does not resolve to the miner")
	}
	return e
}

// addBalance deposits FIL into the market for addr, sent by from.
func (e *dealEnv) addBalance(from, addr address.Address, amount abi.TokenAmount) {
	e.t.Helper()
	if r := e.exec(from, idAddr(idMarket), builtin.MethodsMarket.AddBalance, amount, &addr); r.ExitCode != exitcode.Ok {
		e.t.Fatalf("AddBalance: exit %d", r.ExitCode)
	}
}

func (e *dealEnv) marketBalance(a address.Address) chain.MarketBalance {
	e.t.Helper()
	b, err := e.d.StateMarketBalance(e.ctx, a, chain.EmptyTSK)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// pieceCID makes a distinct piece CID for each call.
func (e *dealEnv) pieceCID() cid.Cid {
	e.seq++
	root := sha256.Sum256([]byte(fmt.Sprint("piece", e.seq)))
	root[31] &= 0x3f
	return piece.CIDv1(root)
}

// proposal makes a valid proposal starting in 100 epochs and lasting 50.
func (e *dealEnv) proposal() market.DealProposal {
	e.t.Helper()
	start := e.height() + 100
	min, _ := ProviderCollateralBounds(512)
	label, _ := market.NewLabelFromString("label")
	return market.DealProposal{
		PieceCID: e.pieceCID(), PieceSize: 512, Client: e.client, Provider: e.maddr, Label: label,
		StartEpoch: start, EndEpoch: start + 50, StoragePricePerEpoch: big.NewInt(1000),
		ProviderCollateral: min, ClientCollateral: big.NewInt(77),
	}
}

// sign signs a proposal with the client's key (or with signer's).
func (e *dealEnv) sign(p market.DealProposal, signer address.Address) market.ClientDealProposal {
	e.t.Helper()
	var buf bytes.Buffer
	if err := p.MarshalCBOR(&buf); err != nil {
		e.t.Fatal(err)
	}
	sig, err := e.w.Sign(signer, buf.Bytes())
	if err != nil {
		e.t.Fatal(err)
	}
	return market.ClientDealProposal{Proposal: p, ClientSignature: *sig}
}

// publish publishes deals from the worker and returns the receipt.
func (e *dealEnv) publish(deals ...market.ClientDealProposal) chain.MessageReceipt {
	e.t.Helper()
	return e.exec(e.worker, idAddr(idMarket), builtin.MethodsMarket.PublishStorageDeals, big.Zero(),
		&market.PublishStorageDealsParams{Deals: deals})
}

func decodePublish(t *testing.T, r chain.MessageReceipt) market.PublishStorageDealsReturn {
	t.Helper()
	if r.ExitCode != exitcode.Ok {
		t.Fatalf("PublishStorageDeals: exit %d", r.ExitCode)
	}
	var ret market.PublishStorageDealsReturn
	if err := ret.UnmarshalCBOR(bytes.NewReader(r.Return)); err != nil {
		t.Fatal(err)
	}
	return ret
}

func bitsOf(t *testing.T, bf bitfield.BitField) []uint64 {
	t.Helper()
	all, err := bf.All(1000)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// funded deposits generous escrow for the client and the provider.
func (e *dealEnv) funded() *dealEnv {
	e.addBalance(e.client, e.client, big.Mul(big.NewInt(10), big.NewInt(fil)))
	e.addBalance(e.worker, e.maddr, big.Mul(big.NewInt(10), big.NewInt(fil)))
	return e
}

func TestPublishStorageDealsRejections(t *testing.T) {
	e := newDealEnv(t).funded()
	other := e.newKey()
	e.fund(other, 10)
	cborCid, _ := cid.V1Builder{Codec: cid.DagCBOR, MhType: 0x12}.Sum([]byte("x"))
	var longLabel market.DealLabel
	raw := append([]byte{0x79, 0x01, 0x01}, strings.Repeat("a", DealMaxLabelSize+1)...)
	if err := longLabel.UnmarshalCBOR(bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	tooMuch := big.Mul(big.NewInt(100), big.NewInt(fil))

	cases := []struct {
		name     string
		mutate   func(p *market.DealProposal)
		signer   func() address.Address
		loneExit exitcode.ExitCode // exit code of a batch of only this deal, if not ErrIllegalArgument
	}{
		{"bad signature", nil, func() address.Address { return other }, 0},
		{"unknown client", func(p *market.DealProposal) { p.Client = e.newKey() }, nil, 0},
		{"label too long", func(p *market.DealProposal) { p.Label = longLabel }, nil, 0},
		{"piece size not a power of two", func(p *market.DealProposal) { p.PieceSize = 384 }, nil, 0},
		{"piece size too small", func(p *market.DealProposal) { p.PieceSize = 64 }, nil, 0},
		{"piece CID not a commitment", func(p *market.DealProposal) { p.PieceCID = cborCid }, nil, 0},
		{"end before start", func(p *market.DealProposal) { p.EndEpoch = p.StartEpoch }, nil, 0},
		{"start passed", func(p *market.DealProposal) { p.StartEpoch = e.height() - 1; p.EndEpoch = p.StartEpoch + 50 }, nil, 0},
		{"too short", func(p *market.DealProposal) { p.EndEpoch = p.StartEpoch + testPolicy.MinDealDuration - 1 }, nil, 0},
		{"too long", func(p *market.DealProposal) { p.EndEpoch = p.StartEpoch + testPolicy.MaxDealDuration + 1 }, nil, 0},
		{"provider collateral below min", func(p *market.DealProposal) { p.ProviderCollateral = big.Sub(p.ProviderCollateral, big.NewInt(1)) }, nil, 0},
		{"negative price", func(p *market.DealProposal) { p.StoragePricePerEpoch = big.NewInt(-1) }, nil, 0},
		{"client escrow short", func(p *market.DealProposal) { p.ClientCollateral = tooMuch }, nil, 0},
		{"provider escrow short", func(p *market.DealProposal) { p.ProviderCollateral = tooMuch }, nil, 0},
		{"verified without DataCap", func(p *market.DealProposal) { p.VerifiedDeal = true }, nil, 0},
		// A batch's provider is its first deal's: alone, a non-miner is not found.
		{"other provider", func(p *market.DealProposal) { p.Provider = idAddr(idMarket) }, nil, exitcode.ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.marketBalance(e.client)
			bad := e.proposal()
			if c.mutate != nil {
				c.mutate(&bad)
			}
			signer := e.client
			if c.signer != nil {
				signer = c.signer()
			}
			// Alone, the bad deal fails the message.
			want := exitcode.ErrIllegalArgument
			if c.loneExit != 0 {
				want = c.loneExit
			}
			if r := e.publish(e.sign(bad, signer)); r.ExitCode != want {
				t.Fatalf("lone bad deal: exit %d, want %d", r.ExitCode, want)
			}
			if after := e.marketBalance(e.client); !after.Locked.Equals(before.Locked) {
				t.Fatalf("failed publish locked funds: %s -> %s", before.Locked, after.Locked)
			}
			// Between good deals, only the good ones are published.
			good, good2 := e.proposal(), e.proposal()
			ret := decodePublish(t, e.publish(e.sign(good, e.client), e.sign(bad, signer), e.sign(good2, e.client)))
			if got := bitsOf(t, ret.ValidDeals); len(got) != 2 || got[0] != 0 || got[1] != 2 || len(ret.IDs) != 2 {
				t.Fatalf("valid deals %v, IDs %v; want indices 0 and 2", got, ret.IDs)
			}
			md, err := e.d.StateMarketStorageDeal(e.ctx, ret.IDs[0], chain.EmptyTSK)
			if err != nil {
				t.Fatal(err)
			}
			if !md.Proposal.PieceCID.Equals(good.PieceCID) || md.State.SectorStartEpoch != -1 || md.State.SlashEpoch != -1 {
				t.Fatalf("published deal %+v", md)
			}
			e.checkSupply()
		})
	}

	t.Run("duplicate", func(t *testing.T) {
		p := e.sign(e.proposal(), e.client)
		ret := decodePublish(t, e.publish(p, p))
		if got := bitsOf(t, ret.ValidDeals); len(got) != 1 || got[0] != 0 {
			t.Fatalf("duplicate in batch: valid %v", got)
		}
		if r := e.publish(p); r.ExitCode != exitcode.ErrIllegalArgument {
			t.Fatalf("republished deal: exit %d", r.ExitCode)
		}
	})
	t.Run("caller not worker", func(t *testing.T) {
		r := e.exec(e.client, idAddr(idMarket), builtin.MethodsMarket.PublishStorageDeals, big.Zero(),
			&market.PublishStorageDealsParams{Deals: []market.ClientDealProposal{e.sign(e.proposal(), e.client)}})
		if r.ExitCode != exitcode.ErrForbidden {
			t.Fatalf("exit %d, want forbidden", r.ExitCode)
		}
	})
	t.Run("cumulative client funds", func(t *testing.T) {
		// Two deals that each fit the client's free escrow but not together.
		free := big.Sub(e.marketBalance(e.client).Escrow, e.marketBalance(e.client).Locked)
		p1, p2 := e.proposal(), e.proposal()
		half := big.Div(free, big.NewInt(2))
		p1.ClientCollateral = big.Sub(half, p1.TotalStorageFee())
		// p1 + p2 need one attoFIL more than is free.
		p2.ClientCollateral = big.Add(big.Sub(big.Sub(free, p1.ClientBalanceRequirement()), p2.TotalStorageFee()), big.NewInt(1))
		ret := decodePublish(t, e.publish(e.sign(p1, e.client), e.sign(p2, e.client), e.sign(p1, e.client)))
		if got := bitsOf(t, ret.ValidDeals); len(got) != 1 || got[0] != 0 {
			t.Fatalf("valid %v, want [0]", got)
		}
		e.checkSupply()
	})
}

// sealedCID makes a replica commitment CID.
func sealedCID(t testing.TB, n int) cid.Cid {
	root := sha256.Sum256([]byte(fmt.Sprint("sealed", n)))
	root[31] &= 0x3f
	c, err := commcid.ReplicaCommitmentV1ToCID(root[:])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// precommit pre-commits sector n with deals and returns the receipt.
func (e *dealEnv) precommit(n abi.SectorNumber, deals []abi.DealID, unsealed *cid.Cid, expiration abi.ChainEpoch) chain.MessageReceipt {
	e.t.Helper()
	info := miner.SectorPreCommitInfo{
		SealProof: e.sealProof, SectorNumber: n, SealedCID: sealedCID(e.t, int(n)),
		SealRandEpoch: e.height() - 1, DealIDs: deals, Expiration: expiration, UnsealedCid: unsealed,
	}
	return e.exec(e.worker, e.maddr, builtin.MethodsMiner.PreCommitSectorBatch2, big.Zero(),
		&miner.PreCommitSectorBatchParams2{Sectors: []miner.SectorPreCommitInfo{info}})
}

func (e *dealEnv) commD(props ...market.DealProposal) *cid.Cid {
	e.t.Helper()
	var pieces []abi.PieceInfo
	for _, p := range props {
		pieces = append(pieces, abi.PieceInfo{Size: p.PieceSize, PieceCID: p.PieceCID})
	}
	c, err := piece.CommD(abi.PaddedPieceSize(e.sectorSize), pieces)
	if err != nil {
		e.t.Fatal(err)
	}
	return &c
}

func (e *dealEnv) prove(n abi.SectorNumber) chain.MessageReceipt {
	e.t.Helper()
	return e.exec(e.worker, e.maddr, builtin.MethodsMiner.ProveCommitSector, big.Zero(),
		&miner.ProveCommitSectorParams{SectorNumber: n, Proof: []byte{1, 2, 3}})
}

func TestDealLifecycle(t *testing.T) {
	e := newDealEnv(t).funded()
	clientStart, provStart := e.marketBalance(e.client), e.marketBalance(e.maddr)
	p1, p2 := e.proposal(), e.proposal()
	ret := decodePublish(t, e.publish(e.sign(p1, e.client), e.sign(p2, e.client)))
	if len(ret.IDs) != 2 {
		t.Fatalf("IDs %v", ret.IDs)
	}
	id1, id2 := ret.IDs[0], ret.IDs[1]
	wantClientLock := big.Add(p1.ClientBalanceRequirement(), p2.ClientBalanceRequirement())
	if got := e.marketBalance(e.client).Locked; !got.Equals(big.Add(clientStart.Locked, wantClientLock)) {
		t.Fatalf("client locked %s, want %s", got, wantClientLock)
	}
	if got := e.marketBalance(e.maddr).Locked; !got.Equals(big.Add(p1.ProviderCollateral, p2.ProviderCollateral)) {
		t.Fatalf("provider locked %s", got)
	}
	e.checkSupply()

	// A wrong CommD, a deal of the wrong provider and a missing CID fail.
	exp := p1.EndEpoch + 10
	wrong := e.commD(p2)
	if r := e.precommit(1, []abi.DealID{id1}, wrong, exp); r.ExitCode != exitcode.ErrIllegalArgument {
		t.Fatalf("wrong CommD: exit %d", r.ExitCode)
	}
	if r := e.precommit(1, []abi.DealID{id1}, nil, exp); r.ExitCode != exitcode.ErrIllegalArgument {
		t.Fatalf("missing CommD: exit %d", r.ExitCode)
	}
	if r := e.precommit(1, []abi.DealID{id1}, e.commD(p1), p1.EndEpoch-1); r.ExitCode != exitcode.ErrIllegalArgument {
		t.Fatalf("sector expiring before the deal: exit %d", r.ExitCode)
	}
	if r := e.precommit(1, nil, nil, e.height()+testPolicy.MaxProveCommitDuration+testPolicy.MinSectorExpiration); r.ExitCode != exitcode.ErrIllegalArgument {
		t.Fatalf("sector living less than the minimum: exit %d", r.ExitCode)
	}
	if r := e.precommit(1, []abi.DealID{id1, 999}, e.commD(p1), exp); r.ExitCode != exitcode.ErrNotFound {
		t.Fatalf("unknown deal: exit %d", r.ExitCode)
	}
	// Deal 1 goes into sector 1; deal 2 is never sealed.
	if r := e.precommit(1, []abi.DealID{id1}, e.commD(p1), exp); r.ExitCode != exitcode.Ok {
		t.Fatalf("pre-commit: exit %d", r.ExitCode)
	}
	if r := e.precommit(2, []abi.DealID{id1}, e.commD(p1), exp); r.ExitCode != exitcode.ErrIllegalArgument {
		t.Fatalf("deal in two sectors: exit %d", r.ExitCode)
	}
	pc, err := e.d.StateSectorPreCommitInfo(e.ctx, e.maddr, 1, chain.EmptyTSK)
	if err != nil || pc == nil || !pc.Info.UnsealedCid.Equals(*e.commD(p1)) {
		t.Fatalf("pre-commit info %+v, %v", pc, err)
	}
	// Too early to prove.
	if r := e.prove(1); r.ExitCode != exitcode.ErrForbidden {
		t.Fatalf("early prove: exit %d", r.ExitCode)
	}
	e.mineUntil(pc.PreCommitEpoch + testPolicy.PreCommitChallengeDelay)
	if r := e.prove(1); r.ExitCode != exitcode.Ok {
		t.Fatalf("prove: exit %d", r.ExitCode)
	}
	si, err := e.d.StateSectorGetInfo(e.ctx, e.maddr, 1, chain.EmptyTSK)
	if err != nil || si == nil || len(si.DeprecatedDealIDs) != 1 || si.DeprecatedDealIDs[0] != id1 {
		t.Fatalf("sector info %+v, %v", si, err)
	}
	md, _ := e.d.StateMarketStorageDeal(e.ctx, id1, chain.EmptyTSK)
	if md.State.SectorStartEpoch != si.Activation || md.State.SectorNumber != 1 {
		t.Fatalf("deal state %+v, sector activated at %d", md.State, si.Activation)
	}

	// Deal 2 times out at its start: the provider's collateral is burnt.
	burnt := e.balance(idAddr(idBurnt))
	e.mineUntil(p2.StartEpoch)
	if _, err := e.d.StateMarketStorageDeal(e.ctx, id2, chain.EmptyTSK); err == nil {
		t.Fatal("timed-out deal still exists")
	}
	if got := big.Sub(e.balance(idAddr(idBurnt)), burnt); got.LessThan(p2.ProviderCollateral) {
		t.Fatalf("burnt %s, want at least the collateral %s", got, p2.ProviderCollateral)
	}
	e.checkSupply()

	// Payments run from the start epoch.
	e.mineUntil(p1.StartEpoch + 3*testPolicy.DealUpdatesInterval)
	md, _ = e.d.StateMarketStorageDeal(e.ctx, id1, chain.EmptyTSK)
	paid := big.Mul(p1.StoragePricePerEpoch, big.NewInt(int64(md.State.LastUpdatedEpoch-p1.StartEpoch)))
	if md.State.LastUpdatedEpoch <= p1.StartEpoch || !e.marketBalance(e.maddr).Escrow.Equals(big.Sub(big.Add(provStart.Escrow, paid), p2.ProviderCollateral)) {
		t.Fatalf("provider escrow %s after payments until %d", e.marketBalance(e.maddr).Escrow, md.State.LastUpdatedEpoch)
	}
	e.checkSupply()

	// At the end the whole fee is paid and everything is unlocked.
	e.mineUntil(p1.EndEpoch)
	if _, err := e.d.StateMarketStorageDeal(e.ctx, id1, chain.EmptyTSK); err == nil {
		t.Fatal("ended deal still exists")
	}
	cb, pb := e.marketBalance(e.client), e.marketBalance(e.maddr)
	if !cb.Locked.IsZero() || !pb.Locked.IsZero() {
		t.Fatalf("locked after the end: client %s provider %s", cb.Locked, pb.Locked)
	}
	fee := p1.TotalStorageFee()
	if !cb.Escrow.Equals(big.Sub(clientStart.Escrow, fee)) {
		t.Fatalf("client escrow %s, want %s", cb.Escrow, big.Sub(clientStart.Escrow, fee))
	}
	if !pb.Escrow.Equals(big.Sub(big.Add(provStart.Escrow, fee), p2.ProviderCollateral)) {
		t.Fatalf("provider escrow %s", pb.Escrow)
	}
	e.checkSupply()
}

func TestWithdrawBalance(t *testing.T) {
	e := newDealEnv(t).funded()
	p := e.proposal()
	decodePublish(t, e.publish(e.sign(p, e.client)))
	free := big.Sub(e.marketBalance(e.client).Escrow, e.marketBalance(e.client).Locked)
	before := e.balance(e.client)
	// Asking for more than is free withdraws what is free.
	r := e.exec(e.client, idAddr(idMarket), builtin.MethodsMarket.WithdrawBalance, big.Zero(),
		&market.WithdrawBalanceParams{ProviderOrClientAddress: e.client, Amount: big.Mul(big.NewInt(100), big.NewInt(fil))})
	if r.ExitCode != exitcode.Ok {
		t.Fatalf("withdraw: exit %d", r.ExitCode)
	}
	var got abi.TokenAmount
	if err := got.UnmarshalCBOR(bytes.NewReader(r.Return)); err != nil || !got.Equals(free) {
		t.Fatalf("withdrew %v (%v), want %s", got, err, free)
	}
	if b := e.marketBalance(e.client); !b.Escrow.Equals(b.Locked) {
		t.Fatalf("escrow %s locked %s", b.Escrow, b.Locked)
	}
	if gain := big.Sub(e.balance(e.client), before); gain.LessThan(big.Sub(free, big.NewInt(fil))) {
		t.Fatalf("client gained %s", gain)
	}
	// Someone else cannot withdraw the client's funds, nor the miner's.
	r = e.exec(e.worker, idAddr(idMarket), builtin.MethodsMarket.WithdrawBalance, big.Zero(),
		&market.WithdrawBalanceParams{ProviderOrClientAddress: e.client, Amount: big.NewInt(1)})
	if r.ExitCode != exitcode.ErrForbidden {
		t.Fatalf("withdraw by another: exit %d", r.ExitCode)
	}
	r = e.exec(e.client, idAddr(idMarket), builtin.MethodsMarket.WithdrawBalance, big.Zero(),
		&market.WithdrawBalanceParams{ProviderOrClientAddress: e.maddr, Amount: big.NewInt(1)})
	if r.ExitCode != exitcode.ErrForbidden {
		t.Fatalf("withdraw of the miner's funds by a client: exit %d", r.ExitCode)
	}
	e.checkSupply()
}

func TestMinerInfoAndChanges(t *testing.T) {
	e := newDealEnv(t)
	mi, err := e.d.StateMinerInfo(e.ctx, e.maddr, chain.EmptyTSK)
	if err != nil {
		t.Fatal(err)
	}
	if mi.SectorSize != 2048 || mi.Owner != e.lookupID(e.owner) || mi.Worker != e.lookupID(e.worker) || len(mi.Multiaddrs) != 1 {
		t.Fatalf("miner info %+v", mi)
	}
	if r := e.exec(e.worker, e.maddr, builtin.MethodsMiner.ChangeMultiaddrs, big.Zero(),
		&miner.ChangeMultiaddrsParams{NewMultiaddrs: []abi.Multiaddrs{{1}, {2}}}); r.ExitCode != exitcode.Ok {
		t.Fatalf("ChangeMultiaddrs: exit %d", r.ExitCode)
	}
	if r := e.exec(e.client, e.maddr, builtin.MethodsMiner.ChangePeerID, big.Zero(),
		&miner.ChangePeerIDParams{NewID: []byte("x")}); r.ExitCode != exitcode.ErrForbidden {
		t.Fatalf("ChangePeerID by a stranger: exit %d", r.ExitCode)
	}
	if r := e.exec(e.owner, e.maddr, builtin.MethodsMiner.ChangeWorkerAddress, big.Zero(),
		&miner.ChangeWorkerAddressParams{NewWorker: e.worker, NewControlAddrs: []address.Address{e.client}}); r.ExitCode != exitcode.Ok {
		t.Fatalf("ChangeWorkerAddress: exit %d", r.ExitCode)
	}
	mi, _ = e.d.StateMinerInfo(e.ctx, e.maddr, chain.EmptyTSK)
	if len(mi.Multiaddrs) != 2 || len(mi.ControlAddresses) != 1 || mi.ControlAddresses[0] != e.lookupID(e.client) {
		t.Fatalf("miner info after changes %+v", mi)
	}
	// Each 2 KiB … 64 GiB proof type gives its sector size.
	for proof, size := range map[abi.RegisteredPoStProof]abi.SectorSize{
		abi.RegisteredPoStProof_StackedDrgWindow8MiBV1_1:   8 << 20,
		abi.RegisteredPoStProof_StackedDrgWindow512MiBV1_1: 512 << 20,
		abi.RegisteredPoStProof_StackedDrgWindow32GiBV1_1:  32 << 30,
		abi.RegisteredPoStProof_StackedDrgWindow64GiBV1_1:  64 << 30,
	} {
		r := e.exec(e.owner, idAddr(idPower), builtin.MethodsPower.CreateMiner, big.Zero(), &power.CreateMinerParams{
			Owner: e.owner, Worker: e.worker, WindowPoStProofType: proof,
		})
		var ret power.CreateMinerReturn
		if err := ret.UnmarshalCBOR(bytes.NewReader(r.Return)); err != nil {
			t.Fatal(err)
		}
		mi, err := e.d.StateMinerInfo(e.ctx, ret.IDAddress, chain.EmptyTSK)
		if err != nil || mi.SectorSize != size {
			t.Fatalf("proof %d: sector size %d, %v", proof, mi.SectorSize, err)
		}
	}
}

func TestPreCommitExpires(t *testing.T) {
	e := newDealEnv(t).funded()
	p := e.proposal()
	ret := decodePublish(t, e.publish(e.sign(p, e.client)))
	if r := e.precommit(1, ret.IDs, e.commD(p), p.EndEpoch+5); r.ExitCode != exitcode.Ok {
		t.Fatalf("pre-commit: exit %d", r.ExitCode)
	}
	pc, _ := e.d.StateSectorPreCommitInfo(e.ctx, e.maddr, 1, chain.EmptyTSK)
	e.mineUntil(pc.PreCommitEpoch + testPolicy.MaxProveCommitDuration + 1)
	if pc, err := e.d.StateSectorPreCommitInfo(e.ctx, e.maddr, 1, chain.EmptyTSK); err != nil || pc != nil {
		t.Fatalf("pre-commit still there: %+v, %v", pc, err)
	}
	if r := e.prove(1); r.ExitCode != exitcode.ErrNotFound {
		t.Fatalf("proving an expired pre-commit: exit %d", r.ExitCode)
	}
	// The deal is free to go into another sector.
	if r := e.precommit(2, ret.IDs, e.commD(p), p.EndEpoch+5); r.ExitCode != exitcode.Ok {
		t.Fatalf("pre-commit again: exit %d", r.ExitCode)
	}
}
