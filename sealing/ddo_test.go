package sealing

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	miner13 "github.com/filecoin-project/go-state-types/builtin/v13/miner"
	verifreg13 "github.com/filecoin-project/go-state-types/builtin/v13/verifreg"
	"github.com/filecoin-project/go-state-types/builtin/v16/verifreg"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/google/uuid"
	cbg "github.com/whyrusleeping/cbor-gen"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/devnet"
	"github.com/ferry-fil/ferry/chain/sender"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/db"
)

// ddoChain is a devnet with an 8 MiB miner whose owner and worker, and the
// client, are the genesis key (which the devnet holds), with DataCap.
type ddoChain struct {
	t     *testing.T
	ctx   context.Context
	dn    *devnet.Devnet
	g     address.Address // genesis: worker, owner and client
	gID   abi.ActorID
	maddr address.Address
}

func newDDOChain(t *testing.T) *ddoChain {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dn, err := devnet.Open(ctx, devnet.Config{Dir: filepath.Join(t.TempDir(), "devnet"), BlockTime: 10 * time.Millisecond, Logf: func(string, ...any) {}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dn.Close() })
	c := &ddoChain{t: t, ctx: ctx, dn: dn, g: dn.GenesisAddress()}
	if c.maddr, err = dn.CreateMiner(ctx, c.g, c.g, 8<<20, []byte("peer"), nil); err != nil {
		t.Fatal(err)
	}
	gid, err := dn.StateLookupID(ctx, c.g, chain.EmptyTSK)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := address.IDFromAddress(gid)
	c.gID = abi.ActorID(n)
	root, err := dn.StateVerifiedRegistryRootKey(ctx, chain.EmptyTSK)
	if err != nil {
		t.Fatal(err)
	}
	c.push(root, builtin.VerifiedRegistryActorAddr, builtin.MethodsVerifiedRegistry.AddVerifiedClient, big.Zero(),
		&verifreg.AddVerifiedClientParams{Address: c.g, Allowance: big.NewInt(8 << 20)})
	c.push(c.g, builtin.StorageMarketActorAddr, builtin.MethodsMarket.AddBalance, chain.FIL(10), &c.g)
	c.push(c.g, builtin.StorageMarketActorAddr, builtin.MethodsMarket.AddBalance, chain.FIL(10), &c.maddr)
	return c
}

// push sends a message through the devnet's pool and returns its return.
func (c *ddoChain) push(from, to address.Address, method abi.MethodNum, value abi.TokenAmount, params cbg.CBORMarshaler) []byte {
	c.t.Helper()
	var buf bytes.Buffer
	if err := params.MarshalCBOR(&buf); err != nil {
		c.t.Fatal(err)
	}
	return c.send(&chain.Message{From: from, To: to, Method: method, Value: value, Params: buf.Bytes()})
}

func (c *ddoChain) send(msg *chain.Message) []byte {
	c.t.Helper()
	sm, err := c.dn.MpoolPushMessage(c.ctx, msg, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	mc, _ := sm.Cid()
	l, err := c.dn.StateWaitMsg(c.ctx, mc, 1, -1, true)
	if err != nil {
		c.t.Fatal(err)
	}
	if l.Receipt.ExitCode != exitcode.Ok {
		c.t.Fatalf("message %d to %s failed: exit code %d", msg.Method, msg.To, l.Receipt.ExitCode)
	}
	return l.Receipt.Return
}

func (c *ddoChain) head() abi.ChainEpoch {
	ts, err := c.dn.ChainHead(c.ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	return ts.Height()
}

// allocate makes an allocation of the client's DataCap for piece p.
func (c *ddoChain) allocate(p testPiece) chain.AllocationID {
	c.t.Helper()
	mid, _ := address.IDFromAddress(c.maddr)
	msg, err := client.AllocateMessage(c.g, []verifreg.AllocationRequest{{
		Provider: abi.ActorID(mid), Data: p.cid, Size: p.size.Padded(),
		TermMin: verifreg.MinimumVerifiedAllocationTerm, TermMax: verifreg.MaximumVerifiedAllocationTerm,
		Expiration: c.head() + 5000,
	}})
	if err != nil {
		c.t.Fatal(err)
	}
	ids, err := client.NewAllocations(c.send(msg))
	if err != nil || len(ids) != 1 {
		c.t.Fatalf("allocations %v, %v", ids, err)
	}
	return ids[0]
}

// publish publishes a verified deal of the client for piece p and returns
// it with its chain deal ID and publish message.
func (c *ddoChain) publish(p testPiece, start abi.ChainEpoch) Deal {
	c.t.Helper()
	bounds, err := c.dn.StateDealProviderCollateralBounds(c.ctx, p.size.Padded(), true, chain.EmptyTSK)
	if err != nil {
		c.t.Fatal(err)
	}
	prop := market.DealProposal{
		PieceCID: p.cid, PieceSize: p.size.Padded(), VerifiedDeal: true, Client: c.g, Provider: c.maddr,
		StartEpoch: start, EndEpoch: start + 700_000, StoragePricePerEpoch: big.Zero(),
		ProviderCollateral: bounds.Min, ClientCollateral: big.Zero(),
	}
	var buf bytes.Buffer
	if err := prop.MarshalCBOR(&buf); err != nil {
		c.t.Fatal(err)
	}
	sig, err := c.dn.WalletSign(c.ctx, c.g, buf.Bytes())
	if err != nil {
		c.t.Fatal(err)
	}
	var params bytes.Buffer
	psd := market.PublishStorageDealsParams{Deals: []market.ClientDealProposal{{Proposal: prop, ClientSignature: *sig}}}
	if err := psd.MarshalCBOR(&params); err != nil {
		c.t.Fatal(err)
	}
	sm, err := c.dn.MpoolPushMessage(c.ctx, &chain.Message{From: c.g, To: builtin.StorageMarketActorAddr,
		Method: builtin.MethodsMarket.PublishStorageDeals, Value: big.Zero(), Params: params.Bytes()}, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	mc, _ := sm.Cid()
	l, err := c.dn.StateWaitMsg(c.ctx, mc, 1, -1, true)
	if err != nil || l.Receipt.ExitCode != exitcode.Ok {
		c.t.Fatalf("publish: %+v %v", l, err)
	}
	var ret market.PublishStorageDealsReturn
	if err := ret.UnmarshalCBOR(bytes.NewReader(l.Receipt.Return)); err != nil || len(ret.IDs) != 1 {
		c.t.Fatalf("publish return %+v, %v", ret, err)
	}
	return Deal{UUID: uuid.New(), DealID: ret.IDs[0], PublishCid: mc, Proposal: &prop, KeepUnsealed: true}
}

// A sector holding a direct piece and a verified market deal is
// pre-committed without deal IDs and proven with ProveCommitSectors3 on
// the devnet, whose actors check it: the direct piece's allocation is
// claimed, and so is the market deal's (its manifest names the allocation
// the deal made at publish), and the market activates the deal its
// notification names. Each message is sent once.
func TestDirectAndMarketPieceOneSector(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a devnet")
	}
	c := newDDOChain(t)
	ctx := c.ctx
	direct := makePiece(t, 1, 1_000_000, 1<<20)
	verified := makePiece(t, 2, 900_000, 1<<20)
	alloc := c.allocate(direct)
	start := c.head() + 2000
	md := c.publish(verified, start)

	sqldb, err := db.Open(ctx, filepath.Join(t.TempDir(), "ferry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close() })
	snd, err := sender.New(ctx, sender.Config{DB: sqldb, Node: c.dn, From: c.g, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	pol := c.dn.Policy()
	s, err := New(Config{
		Dir: filepath.Join(t.TempDir(), "sectors"), SectorSize: 8 << 20, WaitDealsDelay: time.Hour, StartEpochSealingBuffer: 10,
		PreCommitChallengeDelay: pol.PreCommitChallengeDelay, MaxProveCommitDuration: pol.MaxProveCommitDuration,
		MinSectorExpiration: pol.MinSectorExpiration, PollInterval: 10 * time.Millisecond, MessageConfidence: 1,
	}, sqldb, c.dn, snd, c.maddr, NewDevnetSealer())
	if err != nil {
		t.Fatal(err)
	}
	dd := Deal{
		UUID: uuid.New(), KeepUnsealed: true,
		DealSchedule: DealSchedule{StartEpoch: start, EndEpoch: start + verifreg.MinimumVerifiedAllocationTerm},
		PieceActivationManifest: &miner13.PieceActivationManifest{CID: direct.cid, Size: 1 << 20,
			VerifiedAllocationKey: &miner13.VerifiedAllocationKey{Client: c.gID, ID: verifreg13.AllocationId(alloc)}},
	}
	for _, a := range []struct {
		p testPiece
		d Deal
	}{{direct, dd}, {verified, md}} {
		if _, err := s.AddPieceToAny(ctx, a.p.size, bytes.NewReader(a.p.data), a.d); err != nil {
			t.Fatal(err)
		}
	}
	si, err := s.Sector(ctx, 1)
	if err != nil || si.Deals != 2 || !si.Pieces[0].Direct || si.Pieces[0].AllocationID != alloc || si.Pieces[len(si.Pieces)-1].AllocationID == 0 {
		t.Fatalf("sector 1 before sealing: %+v, %v", si, err)
	}
	// Pack now: the sector holds both.
	if _, err := s.st.setState(ctx, 1, StatePacking, "", StateWaitDeals); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() { stop(); <-done }()
	si = waitState(t, s, 1, StateProving)

	pci, err := c.dn.ChainGetMessage(ctx, *si.PreCommitMsg)
	if err != nil {
		t.Fatal(err)
	}
	var pcp miner13.PreCommitSectorBatchParams2
	if err := pcp.UnmarshalCBOR(bytes.NewReader(pci.Params)); err != nil || len(pcp.Sectors) != 1 || len(pcp.Sectors[0].DealIDs) != 0 {
		t.Fatalf("pre-commit %+v, %v: want one sector without deal IDs", pcp, err)
	}
	cm, err := c.dn.ChainGetMessage(ctx, *si.CommitMsg)
	if err != nil || cm.Method != builtin.MethodsMiner.ProveCommitSectors3 {
		t.Fatalf("prove-commit %+v, %v: want ProveCommitSectors3", cm, err)
	}
	claims, err := c.dn.StateGetClaims(ctx, c.maddr, chain.EmptyTSK)
	if err != nil || len(claims) != 2 {
		t.Fatalf("claims %+v, %v: want the direct piece's and the verified deal's", claims, err)
	}
	cl, ok := claims[chain.ClaimID(alloc)]
	if !ok || cl.Sector != 1 || !cl.Data.Equals(direct.cid) {
		t.Fatalf("claim of allocation %d: %+v", alloc, cl)
	}
	for _, cl := range claims {
		onChain, err := c.dn.StateSectorGetInfo(ctx, c.maddr, 1, chain.EmptyTSK)
		if err != nil || onChain == nil {
			t.Fatal(err)
		}
		if life := onChain.Expiration - cl.TermStart; life < cl.TermMin || life > cl.TermMax {
			t.Fatalf("sector lives %d epochs after the claim, outside [%d, %d]", life, cl.TermMin, cl.TermMax)
		}
	}
	mdOnChain, err := c.dn.StateMarketStorageDeal(ctx, md.DealID, chain.EmptyTSK)
	if err != nil || mdOnChain.State.SectorStartEpoch <= 0 {
		t.Fatalf("market deal %d not active: %+v %v", md.DealID, mdOnChain, err)
	}
	var sent int
	if err := sqldb.QueryRowContext(ctx, `SELECT count(*) FROM chain_messages`).Scan(&sent); err != nil || sent != 2 {
		t.Fatalf("%d messages sent (%v), want a pre-commit and a prove-commit", sent, err)
	}
}

// directDeal is a direct piece claiming allocation id of testClient.
func directDeal(p testPiece, start abi.ChainEpoch, id chain.AllocationID) Deal {
	return Deal{
		UUID: uuid.New(), KeepUnsealed: true,
		DealSchedule: DealSchedule{StartEpoch: start, EndEpoch: start + verifreg.MinimumVerifiedAllocationTerm},
		PieceActivationManifest: &miner13.PieceActivationManifest{CID: p.cid, Size: p.size.Padded(),
			VerifiedAllocationKey: &miner13.VerifiedAllocationKey{Client: 1001, ID: verifreg13.AllocationId(id)}},
	}
}

// The expiration of a sector is the latest of the miner's minimum and its
// deals' ends, and no later than its shortest allocation TermMax allows.
func TestSectorExpiration(t *testing.T) {
	s := openTestDB(t, t.TempDir())
	const h = 1000
	minimum := h + s.cfg.MaxProveCommitDuration + s.cfg.MinSectorExpiration + expirationMargin
	for _, c := range []struct {
		name string
		b    expiryBounds
		want abi.ChainEpoch // 0: none fits
	}{
		{"nothing asked", expiryBounds{}, minimum},
		{"a deal ends later", expiryBounds{MinEnd: minimum + 5}, minimum + 5},
		{"a TermMax that allows the minimum", expiryBounds{TermMax: minimum - h}, minimum},
		{"a TermMax too short", expiryBounds{TermMax: minimum - h - 1}, 0},
		{"a deal ends after a TermMax", expiryBounds{MinEnd: h + 900_000, TermMax: 800_000}, 0},
		{"beyond the longest commitment", expiryBounds{MinEnd: h + maxSectorExpiration + 1}, 0},
	} {
		got, err := s.expiration(h, c.b)
		if (err != nil) != (c.want == 0) || got != c.want {
			t.Errorf("%s: expiration %d, %v; want %d", c.name, got, err, c.want)
		}
		if s.fits(h, c.b) != (c.want != 0) {
			t.Errorf("%s: fits says %t", c.name, s.fits(h, c.b))
		}
	}
	b := expiryBounds{MinEnd: 5, TermMax: 100}.with(expiryBounds{MinEnd: 3, TermMax: 0}).with(expiryBounds{MinEnd: 9, TermMax: 50})
	if b != (expiryBounds{MinEnd: 9, TermMax: 50}) {
		t.Errorf("combined bounds %+v", b)
	}
}

// A direct piece goes only into a sector whose deals leave its sector an
// expiration within the allocation's TermMax, and is refused when no
// sector could hold it; its allocation must be on chain, this miner's and
// for this piece.
func TestAddDirectPieceTerms(t *testing.T) {
	ctx := context.Background()
	fn := &fakeNode{height: 10, allocs: map[chain.AllocationID]*chain.Allocation{}}
	s := openTestSealing(t, t.TempDir(), Config{SectorSize: 2048}, fn)
	alloc := func(id chain.AllocationID, p testPiece, provider abi.ActorID, termMax abi.ChainEpoch) {
		fn.allocs[id] = &chain.Allocation{Client: 1001, Provider: provider, Data: p.cid, Size: p.size.Padded(),
			TermMin: verifreg.MinimumVerifiedAllocationTerm, TermMax: termMax, Expiration: 100_000}
	}
	// A market deal that ends in 1200 days opens sector 1.
	long := makePiece(t, 1, 200, 256)
	ld := dealFor(long, 10000)
	ld.Proposal.EndEpoch = 10000 + 1200*2880
	if pl, err := s.AddPieceToAny(ctx, long.size, bytes.NewReader(long.data), ld); err != nil || pl.Sector != 1 {
		t.Fatalf("long deal: %+v %v", pl, err)
	}
	// A direct piece whose allocation lets its sector live 400 days cannot
	// share it: sector 2.
	p := makePiece(t, 2, 200, 256)
	alloc(7, p, 1000, 400*2880)
	pl, err := s.AddPieceToAny(ctx, p.size, bytes.NewReader(p.data), directDeal(p, 10000, 7))
	if err != nil || pl.Sector != 2 {
		t.Fatalf("direct piece: %+v %v; want sector 2", pl, err)
	}
	si, err := s.Sector(ctx, 2)
	if err != nil || !si.Pieces[0].Direct || si.Pieces[0].AllocationID != 7 {
		t.Fatalf("sector 2: %+v %v", si.Pieces, err)
	}
	// A TermMax shorter than the shortest sector: no sector can hold it.
	q := makePiece(t, 3, 200, 256)
	alloc(8, q, 1000, 200*2880)
	if _, err := s.AddPieceToAny(ctx, q.size, bytes.NewReader(q.data), directDeal(q, 10000, 8)); !errors.Is(err, ErrCannotSeal) {
		t.Fatalf("TermMax below the shortest sector: %v", err)
	}
	// Allocations that are not this deal's.
	r := makePiece(t, 4, 200, 256)
	alloc(9, r, 2000, 500*2880)
	alloc(10, q, 1000, 500*2880)
	for name, d := range map[string]Deal{
		"missing":        directDeal(r, 10000, 11),
		"other provider": directDeal(r, 10000, 9),
		"other piece":    directDeal(r, 10000, 10),
	} {
		if _, err := s.AddPieceToAny(ctx, r.size, bytes.NewReader(r.data), d); err == nil || !strings.Contains(err.Error(), "allocation") {
			t.Errorf("%s allocation: %v", name, err)
		}
	}
	// Neither a market deal nor a direct piece, or both.
	both := directDeal(r, 10000, 9)
	both.Proposal = ld.Proposal
	for name, d := range map[string]Deal{"both": both, "neither": {UUID: uuid.New()}} {
		if _, err := s.AddPieceToAny(ctx, r.size, bytes.NewReader(r.data), d); err == nil || !strings.Contains(err.Error(), "exactly one") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
