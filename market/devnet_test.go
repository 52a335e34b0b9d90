package market

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v16/datacap"
	"github.com/filecoin-project/go-state-types/builtin/v16/verifreg"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/builtin/v9/power"
	"github.com/google/uuid"
	cbg "github.com/whyrusleeping/cbor-gen"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/devnet"
	"github.com/ferry-fil/ferry/chain/sender"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/wallet"
	"github.com/ferry-fil/ferry/wire"
)

func devnetExec(t *testing.T, node chain.Node, from, to address.Address, method abi.MethodNum, value abi.TokenAmount, params cbg.CBORMarshaler) []byte {
	t.Helper()
	ctx := context.Background()
	var p []byte
	if params != nil {
		var buf bytes.Buffer
		if err := params.MarshalCBOR(&buf); err != nil {
			t.Fatal(err)
		}
		p = buf.Bytes()
	}
	sm, err := node.MpoolPushMessage(ctx, &chain.Message{From: from, To: to, Method: method, Value: value, Params: p}, nil)
	if err != nil {
		t.Fatalf("pushing message: %v", err)
	}
	c, err := sm.Cid()
	if err != nil {
		t.Fatal(err)
	}
	lk, err := node.StateWaitMsg(ctx, c, 1, -1, true)
	if err != nil {
		t.Fatal(err)
	}
	if lk.Receipt.ExitCode != 0 {
		t.Fatalf("message %d to %s failed: exit %d", method, to, lk.Receipt.ExitCode)
	}
	return lk.Receipt.Return
}

// TestDevnetPublish runs the provider against the embedded devnet chain:
// real signature checks against chain accounts, real collateral bounds and
// balances, PublishStorageDeals executed by the market actor with the deal
// IDs read from its return.
func TestDevnetPublish(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a devnet")
	}
	ctx := context.Background()
	h, dn, _ := devnetHarness(t, ctx)
	maddr := h.cfg.Miner
	h.sealer.state = "WaitDeals" // the fake sealer never proves: stop before Complete
	// The batch is sent once both deals are in it, however long apart
	// their transfers end (a 50 ms period split them once under -race).
	h.cfg.PublishMsgPeriod, h.cfg.MaxDealsPerPublishMsg = time.Hour, 2
	h.start()

	bounds, err := dn.StateDealProviderCollateralBounds(ctx, 2048, false, chain.TipSetKey{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		params := h.deal("d"+string(rune('a'+i))+".car", 1500+i, int64(i), func(p *market.DealProposal, _ *wire.DealParams) {
			p.ProviderCollateral = bounds.Min
		})
		if r := h.p.Propose(ctx, params, "devnet"); !r.Accepted {
			t.Fatalf("deal %d rejected by the provider: %s", i, r.Message)
		}
	}
	for _, d := range mustDeals(t, h) {
		h.waitFor(uuidOf(t, d.UUID), func(d *DealInfo) bool { return d.Checkpoint == IndexedAndAnnounced || failed(d) }, IndexedAndAnnounced)
	}
	list, err := h.p.Deals(ctx, DealFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range list {
		if d.Checkpoint != IndexedAndAnnounced {
			t.Fatalf("deal after publish: %+v", d)
		}
		md, err := dn.StateMarketStorageDeal(ctx, abi.DealID(d.ChainDealID), chain.TipSetKey{})
		if err != nil {
			t.Fatalf("chain deal %d: %v", d.ChainDealID, err)
		}
		if md.Proposal.PieceCID.String() != d.PieceCID || md.Proposal.Provider != maddr {
			t.Fatalf("chain deal %d is %s, provider's deal %s has %s", d.ChainDealID, md.Proposal.PieceCID, d.UUID, d.PieceCID)
		}
	}
	if list[0].PublishCID != list[1].PublishCID {
		t.Fatalf("two deals of one batch published by different messages %s and %s", list[0].PublishCID, list[1].PublishCID)
	}
}

func mustDeals(t *testing.T, h *harness) []DealInfo {
	t.Helper()
	ds, err := h.p.Deals(context.Background(), DealFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func uuidOf(t *testing.T, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestDevnetComplete takes one deal all the way to Complete with the devnet
// chain and the real sealing subsystem (devnet sealer): the sector is
// proven and the chain shows the deal active.
func TestDevnetComplete(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a devnet and sealing")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, dn, worker := devnetHarness(t, ctx)
	snd, err := sender.New(ctx, sender.Config{DB: h.deps.DB, Node: dn, From: worker, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sealing.New(sealing.Config{
		Dir: h.dir + "/sectors", SectorSize: 2048, WaitDealsDelay: 50 * time.Millisecond,
		StartEpochSealingBuffer: 30, PreCommitChallengeDelay: 5, PollInterval: 20 * time.Millisecond,
	}, h.deps.DB, dn, snd, h.cfg.Miner, sealing.NewDevnetSealer())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	h.deps.Sealer = s
	h.cfg.MaxDealsPerPublishMsg = 1
	h.start()

	bounds, err := dn.StateDealProviderCollateralBounds(ctx, 2048, false, chain.TipSetKey{})
	if err != nil {
		t.Fatal(err)
	}
	params := h.deal("full.car", 2000, 7, func(p *market.DealProposal, _ *wire.DealParams) {
		p.ProviderCollateral = bounds.Min
		// Long enough that the sector's minimum lifetime (max prove-commit
		// duration + 180 days) ends before the deal does.
		p.EndEpoch = p.StartEpoch + 700_000
	})
	if r := h.p.Propose(ctx, params, "devnet"); !r.Accepted {
		t.Fatalf("rejected: %s", r.Message)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		d, err := h.p.Deal(ctx, params.DealUUID)
		if err != nil {
			t.Fatal(err)
		}
		if d.Checkpoint == Complete {
			md, err := dn.StateMarketStorageDeal(ctx, abi.DealID(d.ChainDealID), chain.TipSetKey{})
			if err != nil || md.State.SectorStartEpoch <= 0 {
				t.Fatalf("complete deal not active on chain: %+v %v", md, err)
			}
			return
		}
		if d.Retry == RetryFatal || time.Now().After(deadline) || d.SealingState == "PreCommitFailed" {
			var serr string
			_ = h.deps.DB.QueryRow(`SELECT last_error FROM sealing_sectors WHERE number = ?`, *d.Sector).Scan(&serr)
			t.Fatalf("deal did not complete: %+v (sector error: %s)", d.DealInfo, serr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// devnetHarness makes a devnet with a funded miner and client and a harness
// whose provider uses it.
func devnetHarness(t *testing.T, ctx context.Context) (*harness, *devnet.Devnet, address.Address) {
	t.Helper()
	return devnetHarnessOf(t, ctx, abi.RegisteredSealProof_StackedDrg2KiBV1_1)
}

// devnetHarnessOf is devnetHarness with a miner of the given seal proof's
// sector size.
func devnetHarnessOf(t *testing.T, ctx context.Context, proof abi.RegisteredSealProof) (*harness, *devnet.Devnet, address.Address) {
	t.Helper()
	dir := t.TempDir()
	w, err := wallet.Open(dir + "/wallet")
	if err != nil {
		t.Fatal(err)
	}
	dn, err := devnet.Open(ctx, devnet.Config{Dir: dir + "/devnet", BlockTime: 20 * time.Millisecond, Wallet: w, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dn.Close() })

	worker, err := w.New(wallet.TypeBLS)
	if err != nil {
		t.Fatal(err)
	}
	devnetExec(t, dn, dn.GenesisAddress(), worker, 0, chain.FIL(1000), nil)
	postProof, err := proof.RegisteredWindowPoStProof()
	if err != nil {
		t.Fatal(err)
	}
	ret := devnetExec(t, dn, worker, builtin.StoragePowerActorAddr, builtin.MethodsPower.CreateMiner, big.Zero(),
		&power.CreateMinerParams{Owner: worker, Worker: worker, WindowPoStProofType: postProof, Peer: []byte("x")})
	var cm power.CreateMinerReturn
	if err := cm.UnmarshalCBOR(bytes.NewReader(ret)); err != nil {
		t.Fatal(err)
	}
	maddr := cm.IDAddress
	devnetExec(t, dn, worker, builtin.StorageMarketActorAddr, builtin.MethodsMarket.AddBalance, chain.FIL(10), &maddr)

	clientKey, err := w.New(wallet.TypeSecp256k1)
	if err != nil {
		t.Fatal(err)
	}
	devnetExec(t, dn, dn.GenesisAddress(), clientKey, 0, chain.FIL(100), nil)
	devnetExec(t, dn, clientKey, builtin.StorageMarketActorAddr, builtin.MethodsMarket.AddBalance, chain.FIL(50), &clientKey)
	clientID, err := dn.StateLookupID(ctx, clientKey, chain.TipSetKey{})
	if err != nil {
		t.Fatal(err)
	}
	ki, err := w.Export(clientKey)
	if err != nil {
		t.Fatal(err)
	}

	h := newHarness(t, dir, func(c *Config) {
		c.Miner = maddr
		c.MaxDealsPerPublishMsg = 2
		c.PublishConfidence = 1
		c.MaxPublishDealsFee = chain.FIL(1)
	})
	h.deps.Node = dn
	h.keys = w
	h.clientID, h.clientKI = clientID, ki
	return h, dn, worker
}

// TestDevnetDirectComplete takes a direct deal all the way to Complete
// with the devnet chain and the real sealing subsystem: the client's
// DataCap becomes an allocation, the provider imports the piece's file,
// the sector holding it is proven with ProveCommitSectors3, and the chain
// shows the claim in that sector.
func TestDevnetDirectComplete(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a devnet and sealing")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, dn, worker := devnetHarnessOf(t, ctx, abi.RegisteredSealProof_StackedDrg8MiBV1_1)
	snd, err := sender.New(ctx, sender.Config{DB: h.deps.DB, Node: dn, From: worker, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	pol := dn.Policy()
	s, err := sealing.New(sealing.Config{
		Dir: h.dir + "/sectors", SectorSize: 8 << 20, WaitDealsDelay: 50 * time.Millisecond,
		StartEpochSealingBuffer: 30, PreCommitChallengeDelay: pol.PreCommitChallengeDelay, PollInterval: 20 * time.Millisecond,
		MaxProveCommitDuration: pol.MaxProveCommitDuration, MinSectorExpiration: pol.MinSectorExpiration, MessageConfidence: 1,
	}, h.deps.DB, dn, snd, h.cfg.Miner, sealing.NewDevnetSealer())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	h.deps.Sealer = s
	h.start()

	// DataCap for the client, then an allocation of it for the piece.
	clientKey, err := dn.StateAccountKey(ctx, h.clientID, chain.TipSetKey{})
	if err != nil {
		t.Fatal(err)
	}
	root, err := dn.StateVerifiedRegistryRootKey(ctx, chain.TipSetKey{})
	if err != nil {
		t.Fatal(err)
	}
	devnetExec(t, dn, root, builtin.VerifiedRegistryActorAddr, builtin.MethodsVerifiedRegistry.AddVerifiedClient, big.Zero(),
		&verifreg.AddVerifiedClientParams{Address: clientKey, Allowance: big.NewInt(1 << 20)})
	pc, size := h.payload("direct.car", 1_000_000, 11)
	mid, _ := address.IDFromAddress(h.cfg.Miner)
	head, _ := dn.ChainHead(ctx)
	msg, err := client.AllocateMessage(clientKey, []verifreg.AllocationRequest{{Provider: abi.ActorID(mid), Data: pc, Size: size,
		TermMin: verifreg.MinimumVerifiedAllocationTerm, TermMax: verifreg.MaximumVerifiedAllocationTerm, Expiration: head.Height() + 10_000}})
	if err != nil {
		t.Fatal(err)
	}
	var tp datacap.TransferParams
	if err := tp.UnmarshalCBOR(bytes.NewReader(msg.Params)); err != nil {
		t.Fatal(err)
	}
	ids, err := client.NewAllocations(devnetExec(t, dn, clientKey, msg.To, msg.Method, big.Zero(), &tp))
	if err != nil || len(ids) != 1 {
		t.Fatalf("allocations %v, %v", ids, err)
	}

	info, err := h.p.ImportDirect(ctx, DirectDeal{Client: clientKey, AllocationID: ids[0], PieceCID: pc,
		StartEpoch: head.Height() + 2000, Data: DirectData{File: filepath.Join(h.dl.srcDir, "direct.car")}, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		d, err := h.p.Deal(ctx, uuid.MustParse(info.UUID))
		if err != nil {
			t.Fatal(err)
		}
		if d.Checkpoint == Complete {
			cl, err := dn.StateGetClaim(ctx, h.cfg.Miner, chain.ClaimID(ids[0]), chain.TipSetKey{})
			if err != nil || cl == nil || d.Sector == nil || cl.Sector != abi.SectorNumber(*d.Sector) || !cl.Data.Equals(pc) {
				t.Fatalf("complete direct deal %+v, claim %+v, %v", d.DealInfo, cl, err)
			}
			if d.ClaimID != uint64(ids[0]) {
				t.Fatalf("claim ID %d, want %d", d.ClaimID, ids[0])
			}
			return
		}
		if d.Retry == RetryFatal || time.Now().After(deadline) {
			t.Fatalf("direct deal did not complete: %+v", d.DealInfo)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
