package devnet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	miner13 "github.com/filecoin-project/go-state-types/builtin/v13/miner"
	verifreg13 "github.com/filecoin-project/go-state-types/builtin/v13/verifreg"
	"github.com/filecoin-project/go-state-types/builtin/v16/verifreg"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/builtin/v9/power"
	"github.com/filecoin-project/go-state-types/exitcode"

	"github.com/ferry-fil/ferry/chain"
)

// otherMiner creates a second miner (owned and worked by a new key) and
// returns its ID address.
func (e *dealEnv) otherMiner() address.Address {
	e.t.Helper()
	k := e.newKey()
	e.fund(k, 10)
	post, _ := e.sealProof.RegisteredWindowPoStProof()
	r := e.exec(k, idAddr(idPower), builtin.MethodsPower.CreateMiner, big.Zero(), &power.CreateMinerParams{Owner: k, Worker: k, WindowPoStProofType: post})
	var ret power.CreateMinerReturn
	if err := ret.UnmarshalCBOR(bytes.NewReader(r.Return)); err != nil {
		e.t.Fatalf("CreateMiner (exit %d): %v", r.ExitCode, err)
	}
	return ret.IDAddress
}

// sectors is a counter of sector numbers for tests that pre-commit many.
type sectors struct{ n abi.SectorNumber }

func (s *sectors) next() abi.SectorNumber { s.n++; return s.n }

func TestClaimRejections(t *testing.T) {
	e := newDDOEnv(t)
	e.mustGrant(e.client, 64*mib)
	other := e.otherMiner()
	stranger := e.newKey()
	e.fund(stranger, 1)
	cases := []struct {
		name  string
		req   func(r *verifreg.AllocationRequest)                                    // how the allocation differs
		piece func(pm *miner13.PieceActivationManifest, alloc verifreg.AllocationId) // how the manifest differs
		want  exitcode.ExitCode
	}{
		{"another provider's allocation", func(r *verifreg.AllocationRequest) { r.Provider = e.actorID(other) }, nil, exitcode.ErrForbidden},
		{"another client's key", nil, func(pm *miner13.PieceActivationManifest, _ verifreg.AllocationId) {
			pm.VerifiedAllocationKey.Client = e.actorID(stranger)
		}, exitcode.ErrNotFound},
		{"no such allocation", nil, func(pm *miner13.PieceActivationManifest, a verifreg.AllocationId) {
			pm.VerifiedAllocationKey.ID = verifreg13.AllocationId(a + 1000)
		}, exitcode.ErrNotFound},
		{"another piece", nil, func(pm *miner13.PieceActivationManifest, _ verifreg.AllocationId) { pm.CID = e.pieceCID() }, exitcode.ErrForbidden},
		{"another size", nil, func(pm *miner13.PieceActivationManifest, _ verifreg.AllocationId) { pm.Size = 2 * mib }, exitcode.ErrForbidden},
		{"expired allocation", func(r *verifreg.AllocationRequest) { r.Expiration = e.height() + 2 }, nil, exitcode.ErrForbidden},
		{"sector shorter than term min", func(r *verifreg.AllocationRequest) { r.TermMin = sectorLife + 100 }, nil, exitcode.ErrForbidden},
		{"sector longer than term max", func(r *verifreg.AllocationRequest) { r.TermMax = minAllocationTerm }, nil, exitcode.ErrForbidden},
	}
	var secs sectors
	for _, c := range cases {
		for _, all := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/all-or-nothing=%v", c.name, all), func(t *testing.T) {
				good, bad := e.request(mib), e.request(mib)
				if c.req != nil {
					c.req(&bad)
				}
				ids := e.allocate(good, bad)
				goodPiece, badPiece := e.manifest(good, ids[0]), e.manifest(bad, ids[1])
				if c.piece != nil {
					c.piece(&badPiece, ids[1])
				}
				s1, s2 := secs.next(), secs.next()
				e.precommitFor(s1, goodPiece)
				e.precommitFor(s2, badPiece)
				before := e.stateJSON()
				r := e.prove3(all, false,
					miner13.SectorActivationManifest{SectorNumber: s1, Pieces: []miner13.PieceActivationManifest{goodPiece}},
					miner13.SectorActivationManifest{SectorNumber: s2, Pieces: []miner13.PieceActivationManifest{badPiece}})
				if all {
					if r.ExitCode != exitcode.ErrIllegalArgument {
						t.Fatalf("exit %d, want %d", r.ExitCode, exitcode.ErrIllegalArgument)
					}
					if e.stateJSON() != before {
						t.Fatal("the failed proof changed the registry or market")
					}
					return
				}
				if codes := batchCodes(t, r); !reflect.DeepEqual(codes, []exitcode.ExitCode{exitcode.Ok, c.want}) {
					t.Fatalf("results %v, want [0 %d]", codes, c.want)
				}
				if pc, _ := e.d.StateSectorPreCommitInfo(e.ctx, e.maddr, s2, chain.EmptyTSK); pc == nil {
					t.Fatal("the sector whose claim failed was activated")
				}
				if a, _ := e.d.StateGetAllocation(e.ctx, e.client, ids[1], chain.EmptyTSK); a == nil {
					t.Fatal("the allocation that was not claimed is gone")
				}
				if cl, _ := e.d.StateGetClaim(e.ctx, e.maddr, verifreg.ClaimId(ids[0]), chain.EmptyTSK); cl == nil || cl.Sector != s1 {
					t.Fatalf("claim of the good sector: %+v", cl)
				}
				e.checkDatacap()
			})
		}
	}
}

func TestProveCommitSectors3Rejections(t *testing.T) {
	e := newDDOEnv(t).funded()
	var secs sectors
	piece := func() miner13.PieceActivationManifest {
		return miner13.PieceActivationManifest{CID: e.pieceCID(), Size: mib, Notify: []miner13.DataActivationNotification{}}
	}
	act := func(n abi.SectorNumber, pms ...miner13.PieceActivationManifest) miner13.SectorActivationManifest {
		return miner13.SectorActivationManifest{SectorNumber: n, Pieces: pms}
	}
	send := func(from address.Address, value abi.TokenAmount, p *miner13.ProveCommitSectors3Params) chain.MessageReceipt {
		return e.exec(from, e.maddr, builtin.MethodsMiner.ProveCommitSectors3, value, p)
	}
	snark := abi.RegisteredAggregationProof_SnarkPackV2
	other := abi.RegisteredAggregationProof(7)

	ready := secs.next()
	pm := piece()
	e.precommitFor(ready, pm)
	good := func() *miner13.ProveCommitSectors3Params {
		return &miner13.ProveCommitSectors3Params{SectorActivations: []miner13.SectorActivationManifest{act(ready, pm)}, SectorProofs: [][]byte{{1}}, AggregateProof: []byte{}}
	}
	cases := []struct {
		name string
		send func() chain.MessageReceipt
		want exitcode.ExitCode
	}{
		{"no sectors", func() chain.MessageReceipt {
			p := good()
			p.SectorActivations, p.SectorProofs = nil, nil
			return send(e.worker, big.Zero(), p)
		}, exitcode.ErrIllegalArgument},
		{"caller is not the miner's", func() chain.MessageReceipt { return send(e.client, big.Zero(), good()) }, exitcode.ErrForbidden},
		{"value sent", func() chain.MessageReceipt { return send(e.worker, big.NewInt(1), good()) }, exitcode.ErrIllegalArgument},
		{"sector not pre-committed", func() chain.MessageReceipt {
			p := good()
			p.SectorActivations[0].SectorNumber = 999
			return send(e.worker, big.Zero(), p)
		}, exitcode.ErrNotFound},
		{"sector twice", func() chain.MessageReceipt {
			p := good()
			p.SectorActivations = append(p.SectorActivations, p.SectorActivations[0])
			p.SectorProofs = append(p.SectorProofs, []byte{1})
			return send(e.worker, big.Zero(), p)
		}, exitcode.ErrIllegalArgument},
		{"no proof", func() chain.MessageReceipt {
			p := good()
			p.SectorProofs = nil
			return send(e.worker, big.Zero(), p)
		}, exitcode.ErrIllegalArgument},
		{"both proofs and an aggregate", func() chain.MessageReceipt {
			p := good()
			p.AggregateProof, p.AggregateProofType = []byte{1}, &snark
			return send(e.worker, big.Zero(), p)
		}, exitcode.ErrIllegalArgument},
		{"an empty proof", func() chain.MessageReceipt {
			p := good()
			p.SectorProofs = [][]byte{{}}
			return send(e.worker, big.Zero(), p)
		}, exitcode.ErrIllegalArgument},
		{"proofs do not match the sectors", func() chain.MessageReceipt {
			p := good()
			p.SectorProofs = [][]byte{{1}, {2}}
			return send(e.worker, big.Zero(), p)
		}, exitcode.ErrIllegalArgument},
		{"aggregate type with proofs", func() chain.MessageReceipt {
			p := good()
			p.AggregateProofType = &snark
			return send(e.worker, big.Zero(), p)
		}, exitcode.ErrIllegalArgument},
		{"aggregate of another type", func() chain.MessageReceipt {
			p := good()
			p.SectorProofs, p.AggregateProof, p.AggregateProofType = nil, []byte{1}, &other
			return send(e.worker, big.Zero(), p)
		}, exitcode.ErrIllegalArgument},
		{"aggregate of one sector", func() chain.MessageReceipt {
			p := good()
			p.SectorProofs, p.AggregateProof, p.AggregateProofType = nil, []byte{1}, &snark
			return send(e.worker, big.Zero(), p)
		}, exitcode.ErrIllegalArgument},
		{"pieces whose CommD is not the pre-committed one", func() chain.MessageReceipt {
			p := good()
			p.SectorActivations[0].Pieces = []miner13.PieceActivationManifest{piece()}
			return send(e.worker, big.Zero(), p)
		}, exitcode.ErrIllegalArgument},
		{"no pieces for a sector with data", func() chain.MessageReceipt {
			p := good()
			p.SectorActivations[0].Pieces = nil
			return send(e.worker, big.Zero(), p)
		}, exitcode.ErrIllegalArgument},
		{"a piece that is not a piece commitment", func() chain.MessageReceipt {
			p := good()
			p.SectorActivations[0].Pieces[0].CID = sealedCID(t, 1)
			return send(e.worker, big.Zero(), p)
		}, exitcode.ErrIllegalArgument},
		{"a piece of an invalid size", func() chain.MessageReceipt {
			p := good()
			p.SectorActivations[0].Pieces[0].Size = mib + 1
			return send(e.worker, big.Zero(), p)
		}, exitcode.ErrIllegalArgument},
		{"too early", func() chain.MessageReceipt {
			n := secs.next()
			pm := piece()
			if r := e.precommit(n, nil, e.manifestCommD(pm), e.height()+sectorLife); r.ExitCode != exitcode.Ok {
				t.Fatalf("pre-commit: exit %d", r.ExitCode)
			}
			return e.prove3(false, false, act(n, pm))
		}, exitcode.ErrForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.stateJSON()
			if r := c.send(); r.ExitCode != c.want {
				t.Fatalf("exit %d, want %d", r.ExitCode, c.want)
			}
			if e.stateJSON() != before {
				t.Fatal("a refused proof changed the market or registry")
			}
			if pc, _ := e.d.StateSectorPreCommitInfo(e.ctx, e.maddr, ready, chain.EmptyTSK); pc == nil {
				t.Fatal("a refused proof activated the sector")
			}
		})
	}

	// Sectors that cannot be proven this way fail on their own, or fail
	// the call when activation success is required: one whose pre-commit
	// has deal IDs, one too late (proven after its MaxProveCommitDuration,
	// in the block before the cron expires it).
	late := secs.next()
	latePiece := piece()
	e.precommitFor(late, latePiece)
	latePC, _ := e.d.StateSectorPreCommitInfo(e.ctx, e.maddr, late, chain.EmptyTSK)
	e.mineUntil(latePC.PreCommitEpoch + ddoPolicy.MaxProveCommitDuration - 10)
	deal := e.dealOf(mib, false)
	dealID := decodePublish(t, e.publish(e.sign(deal, e.client))).IDs[0]
	withDeals := secs.next()
	if r := e.precommit(withDeals, []abi.DealID{dealID}, e.commD(deal), deal.EndEpoch+10); r.ExitCode != exitcode.Ok {
		t.Fatalf("pre-commit with deals: exit %d", r.ExitCode)
	}
	fresh := secs.next()
	freshPiece := piece()
	e.precommitFor(fresh, freshPiece)
	dealPiece := miner13.PieceActivationManifest{CID: deal.PieceCID, Size: deal.PieceSize}
	before := e.stateJSON()
	if r := e.prove3(true, false, act(fresh, freshPiece), act(withDeals, dealPiece)); r.ExitCode != exitcode.ErrIllegalArgument {
		t.Fatalf("requiring activation success with a pre-commit with deals: exit %d", r.ExitCode)
	}
	if e.stateJSON() != before {
		t.Fatal("the failed proof changed the state")
	}
	e.mineUntil(latePC.PreCommitEpoch + ddoPolicy.MaxProveCommitDuration)
	codes := batchCodes(t, e.prove3(false, false, act(fresh, freshPiece), act(withDeals, dealPiece), act(late, latePiece)))
	if want := []exitcode.ExitCode{exitcode.Ok, exitcode.ErrIllegalArgument, exitcode.ErrIllegalArgument}; !reflect.DeepEqual(codes, want) {
		t.Fatalf("results %v, want %v", codes, want)
	}
	if sec, _ := e.d.StateSectorGetInfo(e.ctx, e.maddr, fresh, chain.EmptyTSK); sec == nil {
		t.Fatal("the valid sector was not activated")
	}
	if sec, _ := e.d.StateSectorGetInfo(e.ctx, e.maddr, late, chain.EmptyTSK); sec != nil {
		t.Fatal("the late sector was activated")
	}
}

func TestPreCommitBatch2WithoutDeals(t *testing.T) {
	e := newDDOEnv(t)
	// Without deals any data commitment is kept as declared (it is checked
	// when the sector is proven), or none for an empty sector.
	declared := e.pieceCID()
	if r := e.precommit(1, nil, &declared, e.height()+sectorLife); r.ExitCode != exitcode.Ok {
		t.Fatalf("pre-commit with a declared CommD: exit %d", r.ExitCode)
	}
	if pc, _ := e.d.StateSectorPreCommitInfo(e.ctx, e.maddr, 1, chain.EmptyTSK); pc == nil || pc.Info.UnsealedCid == nil || !pc.Info.UnsealedCid.Equals(declared) {
		t.Fatalf("pre-commit %+v", pc)
	}
	if r := e.precommit(2, nil, nil, e.height()+sectorLife); r.ExitCode != exitcode.Ok {
		t.Fatalf("pre-commit of an empty sector: exit %d", r.ExitCode)
	}
	// An empty sector is proven with no pieces.
	e.mineUntil(e.height() + ddoPolicy.PreCommitChallengeDelay)
	if codes := batchCodes(t, e.prove3(true, true, miner13.SectorActivationManifest{SectorNumber: 2})); codes[0] != exitcode.Ok {
		t.Fatalf("results %v", codes)
	}
	notPiece := sealedCID(t, 3)
	if r := e.precommit(3, nil, &notPiece, e.height()+sectorLife); r.ExitCode != exitcode.ErrIllegalArgument {
		t.Fatalf("pre-commit with a sealed CID as CommD: exit %d", r.ExitCode)
	}
}

func TestNotificationsActivateDeals(t *testing.T) {
	e := newDDOEnv(t).funded()
	notify := func(id abi.DealID) []miner13.DataActivationNotification {
		return []miner13.DataActivationNotification{{Address: idAddr(idMarket), Payload: chain.DealNotificationPayload(id)}}
	}
	dealPiece := func(p market.DealProposal, id abi.DealID) miner13.PieceActivationManifest {
		return miner13.PieceActivationManifest{CID: p.PieceCID, Size: p.PieceSize, Notify: notify(id)}
	}

	// An unverified deal and a verified one (whose allocation the piece
	// claims) in one sector.
	e.mustGrant(e.client, mib)
	plain, verified := e.dealOf(mib, false), e.dealOf(mib, true)
	ids := decodePublish(t, e.publish(e.sign(plain, e.client), e.sign(verified, e.client))).IDs
	alloc, _ := e.d.StateGetAllocationIdForPendingDeal(e.ctx, ids[1], chain.EmptyTSK)
	vp := dealPiece(verified, ids[1])
	vp.VerifiedAllocationKey = &miner13.VerifiedAllocationKey{Client: e.actorID(e.client), ID: verifreg13.AllocationId(alloc)}
	pieces := []miner13.PieceActivationManifest{dealPiece(plain, ids[0]), vp}
	e.precommitFor(1, pieces...)
	if codes := batchCodes(t, e.prove3(true, true, miner13.SectorActivationManifest{SectorNumber: 1, Pieces: pieces})); codes[0] != exitcode.Ok {
		t.Fatalf("results %v", codes)
	}
	for _, id := range ids {
		md, err := e.d.StateMarketStorageDeal(e.ctx, id, chain.EmptyTSK)
		if err != nil || md.State.SectorStartEpoch != e.height() || md.State.SectorNumber != 1 {
			t.Fatalf("deal %d: %+v, %v", id, md, err)
		}
	}
	if a, _ := e.d.StateGetAllocationIdForPendingDeal(e.ctx, ids[1], chain.EmptyTSK); a != verifreg.NoAllocationID {
		t.Fatalf("the activated verified deal still has pending allocation %d", a)
	}
	if cl, _ := e.d.StateGetClaim(e.ctx, e.maddr, verifreg.ClaimId(alloc), chain.EmptyTSK); cl == nil {
		t.Fatal("the verified deal's allocation was not claimed")
	}
	e.checkDatacap()

	// Notifications the market refuses: the sector is activated but not
	// the deal, unless notification success is required.
	var secs = sectors{n: 1}
	d2 := e.dealOf(mib, false)
	id2 := decodePublish(t, e.publish(e.sign(d2, e.client))).IDs[0]
	refusals := []struct {
		name  string
		piece func() miner13.PieceActivationManifest
		want  exitcode.ExitCode // with notification success required
	}{
		{"payload names a deal with another piece", func() miner13.PieceActivationManifest {
			return miner13.PieceActivationManifest{CID: e.pieceCID(), Size: mib, Notify: notify(id2)}
		}, errNotificationRejected},
		{"payload is not a deal ID", func() miner13.PieceActivationManifest {
			pm := dealPiece(d2, id2)
			pm.Notify[0].Payload = []byte{0x61, 'x'}
			return pm
		}, errNotificationRejected},
		{"an already active deal", func() miner13.PieceActivationManifest { return dealPiece(plain, ids[0]) }, errNotificationRejected},
		{"a receiver with no actor", func() miner13.PieceActivationManifest {
			pm := dealPiece(d2, id2)
			pm.Notify[0].Address = idAddr(99999)
			return pm
		}, errNotificationSendFailed},
		{"a receiver without the method", func() miner13.PieceActivationManifest {
			pm := dealPiece(d2, id2)
			pm.Notify[0].Address = e.client
			return pm
		}, errNotificationReceiverAborted},
	}
	for _, c := range refusals {
		t.Run(c.name, func(t *testing.T) {
			pm := c.piece()
			n := secs.next()
			e.precommitFor(n, pm)
			before := e.stateJSON()
			if r := e.prove3(true, true, miner13.SectorActivationManifest{SectorNumber: n, Pieces: []miner13.PieceActivationManifest{pm}}); r.ExitCode != c.want {
				t.Fatalf("requiring notification success: exit %d, want %d", r.ExitCode, c.want)
			}
			if e.stateJSON() != before {
				t.Fatal("the failed proof changed the market or registry")
			}
			if sec, _ := e.d.StateSectorGetInfo(e.ctx, e.maddr, n, chain.EmptyTSK); sec != nil {
				t.Fatal("the failed proof activated the sector")
			}
			if codes := batchCodes(t, e.prove3(true, false, miner13.SectorActivationManifest{SectorNumber: n, Pieces: []miner13.PieceActivationManifest{pm}})); codes[0] != exitcode.Ok {
				t.Fatalf("results %v", codes)
			}
			if md, _ := e.d.StateMarketStorageDeal(e.ctx, id2, chain.EmptyTSK); md.State.SectorStartEpoch >= 0 {
				t.Fatalf("deal %d activated by a refused notification", id2)
			}
		})
	}
}

func TestRemoveExpiredAllocations(t *testing.T) {
	e := newDDOEnv(t)
	e.mustGrant(e.client, 2*mib)
	soon, later := e.request(mib), e.request(mib)
	soon.Expiration = e.height() + 3
	ids := e.allocate(soon, later)
	remove := func(ids ...verifreg.AllocationId) verifreg.RemoveExpiredAllocationsReturn {
		t.Helper()
		r := e.exec(e.worker, idAddr(idVerifreg), builtin.MethodsVerifiedRegistry.RemoveExpiredAllocationsExported, big.Zero(),
			&verifreg.RemoveExpiredAllocationsParams{Client: e.actorID(e.client), AllocationIds: ids})
		var ret verifreg.RemoveExpiredAllocationsReturn
		if err := ret.UnmarshalCBOR(bytes.NewReader(r.Return)); err != nil {
			t.Fatalf("exit %d: %v", r.ExitCode, err)
		}
		return ret
	}
	if ret := remove(ids...); ret.Results.SuccessCount != 0 || !ret.DataCapRecovered.IsZero() {
		t.Fatalf("removing unexpired allocations: %+v", ret)
	}
	e.mineUntil(soon.Expiration + 1)
	ret := remove()
	if len(ret.Considered) != 1 || ret.Considered[0] != ids[0] || !ret.DataCapRecovered.Equals(big.NewInt(mib)) {
		t.Fatalf("removing the expired allocations: %+v", ret)
	}
	if got := e.dataCap(e.client); got != mib {
		t.Fatalf("DataCap back %d, want %d", got, mib)
	}
	e.checkDatacap()
}

func TestAllocationJSON(t *testing.T) {
	e := newDDOEnv(t).funded()
	e.mustGrant(e.client, 3*mib)
	r1 := e.request(mib)
	ids := e.allocate(r1)
	verified := e.dealOf(mib, true)
	dealID := decodePublish(t, e.publish(e.sign(verified, e.client))).IDs[0]
	e.precommitFor(1, e.manifest(r1, ids[0]))
	batchCodes(t, e.prove3(true, true, miner13.SectorActivationManifest{SectorNumber: 1, Pieces: []miner13.PieceActivationManifest{e.manifest(r1, ids[0])}}))

	n, url := serve(t, e.d, "http", false)
	client, provider := e.lookupID(e.client).String(), e.maddr.String()

	// Lotus' JSON: structs with Lotus' field names, maps keyed by the ID
	// in decimal, the DataCap as a decimal string.
	allocKeys := []string{"Client", "Data", "Expiration", "Provider", "Size", "TermMax", "TermMin"}
	claimKeys := []string{"Client", "Data", "Provider", "Sector", "Size", "TermMax", "TermMin", "TermStart"}
	pendingAlloc := "2"
	raw := rawCall(t, url, "StateGetAllocations", client, nil)
	wantKeys(t, "StateGetAllocations", raw, pendingAlloc)
	wantKeys(t, "allocation", objectField(t, raw, pendingAlloc), allocKeys...)
	wantKeys(t, "StateGetAllAllocations", rawCall(t, url, "StateGetAllAllocations", nil), pendingAlloc)
	wantKeys(t, "StateGetAllocation", rawCall(t, url, "StateGetAllocation", client, 2, nil), allocKeys...)
	wantKeys(t, "StateGetAllocationForPendingDeal", rawCall(t, url, "StateGetAllocationForPendingDeal", dealID, nil), allocKeys...)
	if got := string(rawCall(t, url, "StateGetAllocationIdForPendingDeal", dealID, nil)); got != "2" {
		t.Fatalf("StateGetAllocationIdForPendingDeal: %s", got)
	}
	if got := string(rawCall(t, url, "StateGetAllocation", client, 1, nil)); got != "null" {
		t.Fatalf("a claimed allocation: %s", got)
	}
	raw = rawCall(t, url, "StateGetClaims", provider, nil)
	wantKeys(t, "StateGetClaims", raw, "1")
	wantKeys(t, "claim", objectField(t, raw, "1"), claimKeys...)
	wantKeys(t, "StateGetAllClaims", rawCall(t, url, "StateGetAllClaims", nil), "1")
	wantKeys(t, "StateGetClaim", rawCall(t, url, "StateGetClaim", provider, 1, nil), claimKeys...)
	if got := string(rawCall(t, url, "StateVerifiedClientStatus", client, nil)); got != fmt.Sprintf("%q", fmt.Sprint(mib)) {
		t.Fatalf("StateVerifiedClientStatus: %s, want the 1 MiB left as a string", got)
	}
	if got := string(rawCall(t, url, "StateVerifiedClientStatus", e.worker.String(), nil)); got != "null" {
		t.Fatalf("StateVerifiedClientStatus of a non-client: %s", got)
	}
	if got := string(rawCall(t, url, "StateVerifiedRegistryRootKey", nil)); got != fmt.Sprintf("%q", e.lookupID(e.d.RootKeyAddress())) {
		t.Fatalf("StateVerifiedRegistryRootKey: %s", got)
	}

	// The values decode into go-state-types' (Lotus') types exactly, and
	// chain/lotus reads the same.
	var strict verifreg.Claim
	dec := json.NewDecoder(bytes.NewReader(rawCall(t, url, "StateGetClaim", provider, 1, nil)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&strict); err != nil {
		t.Fatal(err)
	}
	var strictAllocs map[verifreg.AllocationId]verifreg.Allocation
	dec = json.NewDecoder(bytes.NewReader(rawCall(t, url, "StateGetAllocations", client, nil)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&strictAllocs); err != nil {
		t.Fatal(err)
	}
	if a := strictAllocs[2]; !a.Data.Equals(verified.PieceCID) || a.Size != verified.PieceSize || a.Expiration != verified.StartEpoch || a.Client != e.actorID(e.client) {
		t.Fatalf("allocation 2 decoded as %+v", a)
	}
	want := verifreg.Claim{Provider: e.actorID(e.maddr), Client: e.actorID(e.client), Data: r1.Data, Size: r1.Size,
		TermMin: r1.TermMin, TermMax: r1.TermMax, TermStart: strict.TermStart, Sector: 1}
	if strict != want || strict.TermStart <= 0 {
		t.Fatalf("claim %+v, want %+v", strict, want)
	}
	claims, err := n.StateGetClaims(e.ctx, e.maddr, chain.EmptyTSK)
	if err != nil || claims[1] != want {
		t.Fatalf("StateGetClaims over RPC: %+v, %v", claims, err)
	}
	allocs, err := n.StateGetAllocations(e.ctx, e.client, chain.EmptyTSK)
	local, _ := e.d.StateGetAllocations(e.ctx, e.client, chain.EmptyTSK)
	if err != nil || !reflect.DeepEqual(allocs, local) || len(allocs) != 1 {
		t.Fatalf("StateGetAllocations over RPC: %+v, %v; locally %+v", allocs, err, local)
	}
	if a, err := n.StateGetAllocationForPendingDeal(e.ctx, dealID, chain.EmptyTSK); err != nil || a == nil || !a.Data.Equals(verified.PieceCID) {
		t.Fatalf("StateGetAllocationForPendingDeal over RPC: %+v, %v", a, err)
	}
	if _, err := n.StateGetAllocations(e.ctx, e.newKey(), chain.EmptyTSK); err == nil {
		t.Fatal("allocations of an address with no actor: no error")
	}
	if all, err := n.StateGetAllClaims(e.ctx, chain.EmptyTSK); err != nil || len(all) != 1 {
		t.Fatalf("StateGetAllClaims: %v, %v", all, err)
	}
}

// objectField returns one field of a JSON object.
func objectField(t *testing.T, raw json.RawMessage, key string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m[key]
}

func TestReceiverHookRejections(t *testing.T) {
	e := newDDOEnv(t)
	st, err := decodeState(e.d.snap)
	if err != nil {
		t.Fatal(err)
	}
	v := e.d.newVM(st)
	var reqs bytes.Buffer
	if err := (&verifreg.AllocationRequests{}).MarshalCBOR(&reqs); err != nil {
		t.Fatal(err)
	}
	hook := func(typ verifreg.ReceiverType, got FRC46TokenReceived) exitcode.ExitCode {
		var payload, params bytes.Buffer
		if err := got.MarshalCBOR(&payload); err != nil {
			t.Fatal(err)
		}
		if err := (&verifreg.UniversalReceiverParams{Type_: typ, Payload: payload.Bytes()}).MarshalCBOR(&params); err != nil {
			t.Fatal(err)
		}
		_, err := v.verifregReceive(&call{epoch: e.height() + 1, caller: idDatacap, receiver: idVerifreg, value: big.Zero(), params: params.Bytes()})
		return exitCodeOf(err)
	}
	ok := FRC46TokenReceived{From: uint64(e.actorID(e.client)), To: idVerifreg, Operator: uint64(e.actorID(e.client)), Amount: big.Zero(), OperatorData: reqs.Bytes(), TokenData: []byte{}}
	if code := hook(frc46TokenType, ok); code != exitcode.Ok {
		t.Fatalf("an empty request: exit %d", code)
	}
	if code := hook(frc46TokenType+1, ok); code != exitcode.ErrIllegalArgument {
		t.Fatalf("another token type: exit %d", code)
	}
	other := ok
	other.To = idMarket
	if code := hook(frc46TokenType, other); code != exitcode.ErrIllegalArgument {
		t.Fatalf("tokens sent to another actor: exit %d", code)
	}
}
