package devnet

import (
	"bytes"
	"strings"
	"testing"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	miner13 "github.com/filecoin-project/go-state-types/builtin/v13/miner"
	verifreg13 "github.com/filecoin-project/go-state-types/builtin/v13/verifreg"
	"github.com/filecoin-project/go-state-types/builtin/v16/datacap"
	"github.com/filecoin-project/go-state-types/builtin/v16/verifreg"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/piece"
)

// ddoPolicy keeps the actors' deal durations (a verified deal's allocation
// has the deal's duration as TermMin, which must be at least 180 days) and
// shortens the rest.
var ddoPolicy = Policy{PreCommitChallengeDelay: 2, MaxProveCommitDuration: 30, MinSectorExpiration: 20, DealUpdatesInterval: 5}

const mib = 1 << 20

// newDDOEnv is a deal environment with an 8 MiB miner, big enough for
// allocations (at least 1 MiB).
func newDDOEnv(t testing.TB) *dealEnv {
	return newDealEnvWith(t, ddoPolicy, abi.RegisteredSealProof_StackedDrg8MiBV1_1)
}

// actorID returns the actor ID of a.
func (e *dealEnv) actorID(a address.Address) abi.ActorID {
	e.t.Helper()
	id, err := address.IDFromAddress(e.lookupID(a))
	if err != nil {
		e.t.Fatal(err)
	}
	return abi.ActorID(id)
}

// grant makes the root key give n bytes of DataCap to a.
func (e *dealEnv) grant(a address.Address, n int64) chain.MessageReceipt {
	e.t.Helper()
	return e.exec(e.d.RootKeyAddress(), idAddr(idVerifreg), builtin.MethodsVerifiedRegistry.AddVerifiedClient, big.Zero(),
		&verifreg.AddVerifiedClientParams{Address: a, Allowance: big.NewInt(n)})
}

// mustGrant grants n bytes of DataCap to a and checks it worked.
func (e *dealEnv) mustGrant(a address.Address, n int64) {
	e.t.Helper()
	if r := e.grant(a, n); r.ExitCode != exitcode.Ok {
		e.t.Fatalf("granting DataCap: exit %d", r.ExitCode)
	}
}

// dataCap returns a's DataCap in bytes (0 when it has none).
func (e *dealEnv) dataCap(a address.Address) int64 {
	e.t.Helper()
	dc, err := e.d.StateVerifiedClientStatus(e.ctx, a, chain.EmptyTSK)
	if err != nil {
		e.t.Fatal(err)
	}
	if dc == nil {
		return 0
	}
	return dc.Int64()
}

// request is a valid allocation request of size bytes for the miner.
func (e *dealEnv) request(size abi.PaddedPieceSize) verifreg.AllocationRequest {
	return verifreg.AllocationRequest{
		Provider: e.actorID(e.maddr), Data: e.pieceCID(), Size: size,
		TermMin: minAllocationTerm, TermMax: maxAllocationTerm, Expiration: e.height() + 1000,
	}
}

// transfer sends a DataCap Transfer of amount bytes to the registry from
// from, with reqs as operator data.
func (e *dealEnv) transfer(from address.Address, amount int64, reqs verifreg.AllocationRequests) chain.MessageReceipt {
	e.t.Helper()
	var op bytes.Buffer
	if err := reqs.MarshalCBOR(&op); err != nil {
		e.t.Fatal(err)
	}
	return e.exec(from, idAddr(idDatacap), builtin.MethodsDatacap.TransferExported, big.Zero(), &datacap.TransferParams{
		To: idAddr(idVerifreg), Amount: bytesToTokens(big.NewInt(amount)), OperatorData: op.Bytes(),
	})
}

// allocate makes allocations for reqs from the client and returns their
// IDs.
func (e *dealEnv) allocate(reqs ...verifreg.AllocationRequest) []verifreg.AllocationId {
	e.t.Helper()
	var total int64
	for _, r := range reqs {
		total += int64(r.Size)
	}
	r := e.transfer(e.client, total, verifreg.AllocationRequests{Allocations: reqs})
	if r.ExitCode != exitcode.Ok {
		e.t.Fatalf("allocating: exit %d", r.ExitCode)
	}
	var tr datacap.TransferReturn
	if err := tr.UnmarshalCBOR(bytes.NewReader(r.Return)); err != nil {
		e.t.Fatal(err)
	}
	var ar verifreg.AllocationsResponse
	if err := ar.UnmarshalCBOR(bytes.NewReader(tr.RecipientData)); err != nil {
		e.t.Fatal(err)
	}
	if len(ar.NewAllocations) != len(reqs) || ar.AllocationResults.SuccessCount != uint64(len(reqs)) {
		e.t.Fatalf("allocations response %+v for %d requests", ar, len(reqs))
	}
	return ar.NewAllocations
}

// checkDatacap asserts that the registry holds exactly the DataCap of the
// unclaimed allocations.
func (e *dealEnv) checkDatacap() {
	e.t.Helper()
	e.d.mu.RLock()
	defer e.d.mu.RUnlock()
	st := e.d.st
	sum := big.Zero()
	for _, m := range st.Verifreg.Allocations {
		for _, a := range m {
			sum = big.Add(sum, big.NewInt(int64(a.Size)))
		}
	}
	if got := st.datacapBalance(idVerifreg); !got.Equals(bytesToTokens(sum)) {
		e.t.Fatalf("registry holds %s DataCap tokens, allocations need %s", got, bytesToTokens(sum))
	}
}

// stateJSON encodes the market, registry and DataCap states.
func (e *dealEnv) stateJSON() string {
	e.t.Helper()
	e.d.mu.RLock()
	defer e.d.mu.RUnlock()
	b, err := jsonOf(e.d.st)
	if err != nil {
		e.t.Fatal(err)
	}
	return string(b)
}

// manifest is a piece manifest of a request, claiming alloc when it is not
// NoAllocationID.
func (e *dealEnv) manifest(r verifreg.AllocationRequest, alloc verifreg.AllocationId) miner13.PieceActivationManifest {
	pm := miner13.PieceActivationManifest{CID: r.Data, Size: r.Size, Notify: []miner13.DataActivationNotification{}}
	if alloc != verifreg.NoAllocationID {
		pm.VerifiedAllocationKey = &miner13.VerifiedAllocationKey{Client: e.actorID(e.client), ID: verifreg13.AllocationId(alloc)}
	}
	return pm
}

// manifestCommD is the unsealed CID of a sector holding the pieces.
func (e *dealEnv) manifestCommD(pieces ...miner13.PieceActivationManifest) *cid.Cid {
	e.t.Helper()
	var infos []abi.PieceInfo
	for _, p := range pieces {
		infos = append(infos, abi.PieceInfo{Size: p.Size, PieceCID: p.CID})
	}
	c, err := piece.CommD(abi.PaddedPieceSize(e.sectorSize), infos)
	if err != nil {
		e.t.Fatal(err)
	}
	return &c
}

// sectorLife is how long the DDO tests' sectors live: within the default
// allocation terms.
const sectorLife = 600_000

// precommitFor pre-commits sector n without deals, with the CommD of the
// pieces, and mines until it may be proven.
func (e *dealEnv) precommitFor(n abi.SectorNumber, pieces ...miner13.PieceActivationManifest) {
	e.t.Helper()
	if r := e.precommit(n, nil, e.manifestCommD(pieces...), e.height()+sectorLife); r.ExitCode != exitcode.Ok {
		e.t.Fatalf("pre-commit of sector %d: exit %d", n, r.ExitCode)
	}
	e.mineUntil(e.height() + ddoPolicy.PreCommitChallengeDelay)
}

// prove3 sends ProveCommitSectors3 with one proof per sector.
func (e *dealEnv) prove3(requireActivation, requireNotification bool, acts ...miner13.SectorActivationManifest) chain.MessageReceipt {
	e.t.Helper()
	proofs := make([][]byte, len(acts))
	for i := range proofs {
		proofs[i] = []byte{1, 2, 3}
	}
	return e.exec(e.worker, e.maddr, builtin.MethodsMiner.ProveCommitSectors3, big.Zero(), &miner13.ProveCommitSectors3Params{
		SectorActivations: acts, SectorProofs: proofs, AggregateProof: []byte{},
		RequireActivationSuccess: requireActivation, RequireNotificationSuccess: requireNotification,
	})
}

// batchCodes decodes a BatchReturn's per-item exit codes.
func batchCodes(t *testing.T, r chain.MessageReceipt) []exitcode.ExitCode {
	t.Helper()
	if r.ExitCode != exitcode.Ok {
		t.Fatalf("exit %d", r.ExitCode)
	}
	var b miner13.ProveCommitSectors3Return
	if err := b.UnmarshalCBOR(bytes.NewReader(r.Return)); err != nil {
		t.Fatal(err)
	}
	return b.Codes()
}

func TestDataCapGrantAndTransferRules(t *testing.T) {
	e := newDDOEnv(t)
	e.mustGrant(e.client, 3*mib)
	if got := e.dataCap(e.client); got != 3*mib {
		t.Fatalf("DataCap %d, want %d", got, 3*mib)
	}
	// The DataCap actor reports the balance in tokens, and the market may
	// spend them (AddVerifiedClient names it as operator).
	r := e.exec(e.client, idAddr(idDatacap), builtin.MethodsDatacap.BalanceExported, big.Zero(), &e.client)
	var bal abi.TokenAmount
	if err := bal.UnmarshalCBOR(bytes.NewReader(r.Return)); err != nil || !bal.Equals(bytesToTokens(big.NewInt(3*mib))) {
		t.Fatalf("Balance: %s, %v (exit %d)", bal, err, r.ExitCode)
	}
	r = e.exec(e.client, idAddr(idDatacap), builtin.MethodsDatacap.AllowanceExported, big.Zero(), &datacap.GetAllowanceParams{Owner: e.client, Operator: idAddr(idMarket)})
	var allow abi.TokenAmount
	if err := allow.UnmarshalCBOR(bytes.NewReader(r.Return)); err != nil || !allow.Equals(infiniteAllowance) {
		t.Fatalf("Allowance: %s, %v (exit %d)", allow, err, r.ExitCode)
	}

	other := e.newKey()
	e.fund(other, 10)
	before := e.stateJSON()
	cases := []struct {
		name string
		send func() chain.MessageReceipt
		want exitcode.ExitCode
	}{
		{"grant below 1 MiB", func() chain.MessageReceipt { return e.grant(other, mib-1) }, exitcode.ErrIllegalArgument},
		{"grant by a non-verifier", func() chain.MessageReceipt {
			return e.exec(e.client, idAddr(idVerifreg), builtin.MethodsVerifiedRegistry.AddVerifiedClient, big.Zero(),
				&verifreg.AddVerifiedClientParams{Address: other, Allowance: big.NewInt(mib)})
		}, exitcode.ErrForbidden},
		{"grant to the root key", func() chain.MessageReceipt { return e.grant(e.d.RootKeyAddress(), mib) }, exitcode.ErrIllegalArgument},
		{"transfer to an account", func() chain.MessageReceipt {
			return e.exec(e.client, idAddr(idDatacap), builtin.MethodsDatacap.TransferExported, big.Zero(),
				&datacap.TransferParams{To: other, Amount: bytesToTokens(big.NewInt(mib)), OperatorData: []byte{}})
		}, exitcode.ErrForbidden},
		{"transfer more than the balance", func() chain.MessageReceipt {
			return e.transfer(e.client, 4*mib, verifreg.AllocationRequests{Allocations: []verifreg.AllocationRequest{e.request(4 * mib)}})
		}, exitcode.ErrInsufficientFunds},
		{"transfer of a fraction of a token", func() chain.MessageReceipt {
			return e.exec(e.client, idAddr(idDatacap), builtin.MethodsDatacap.TransferExported, big.Zero(),
				&datacap.TransferParams{To: idAddr(idVerifreg), Amount: big.NewInt(1), OperatorData: []byte{}})
		}, exitcode.ErrIllegalArgument},
		{"TransferFrom without allowance", func() chain.MessageReceipt {
			return e.exec(other, idAddr(idDatacap), builtin.MethodsDatacap.TransferFromExported, big.Zero(),
				&datacap.TransferFromParams{From: e.client, To: idAddr(idVerifreg), Amount: bytesToTokens(big.NewInt(mib)), OperatorData: []byte{}})
		}, exitcode.ErrInsufficientFunds},
		{"mint by an account", func() chain.MessageReceipt {
			return e.exec(other, idAddr(idDatacap), builtin.MethodsDatacap.MintExported, big.Zero(),
				&datacap.MintParams{To: other, Amount: bytesToTokens(big.NewInt(mib)), Operators: []address.Address{}})
		}, exitcode.ErrForbidden},
		{"receiver hook called by an account", func() chain.MessageReceipt {
			return e.exec(e.client, idAddr(idVerifreg), builtin.MethodsVerifiedRegistry.UniversalReceiverHook, big.Zero(),
				&verifreg.UniversalReceiverParams{Type_: frc46TokenType, Payload: []byte{0x80}})
		}, exitcode.ErrForbidden},
		{"claim by an account", func() chain.MessageReceipt {
			return e.exec(e.client, idAddr(idVerifreg), builtin.MethodsVerifiedRegistry.ClaimAllocations, big.Zero(),
				&verifreg.ClaimAllocationsParams{Sectors: []verifreg.SectorAllocationClaims{{Sector: 1, SectorExpiry: 1, Claims: []verifreg.AllocationClaim{}}}})
		}, exitcode.ErrForbidden},
		{"notification from an account", func() chain.MessageReceipt {
			return e.exec(e.client, idAddr(idMarket), builtin.MethodSectorContentChanged, big.Zero(), &sectorChangesParams{})
		}, exitcode.ErrForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if r := c.send(); r.ExitCode != c.want {
				t.Fatalf("exit %d, want %d", r.ExitCode, c.want)
			}
			if after := e.stateJSON(); after != before {
				t.Fatal("a failed message changed the registry or DataCap state")
			}
		})
	}
}

func TestAllocationRequestRejections(t *testing.T) {
	e := newDDOEnv(t)
	e.mustGrant(e.client, 8*mib)
	nonMiner := e.actorID(e.client)
	cases := []struct {
		name   string
		mutate func(r *verifreg.AllocationRequest, h abi.ChainEpoch) // h: the epoch the transfer executes at
		amount int64                                                 // 0: what the requests need
	}{
		{"size below 1 MiB", func(r *verifreg.AllocationRequest, h abi.ChainEpoch) { r.Size = mib / 2 }, 0},
		{"term min below 180 days", func(r *verifreg.AllocationRequest, h abi.ChainEpoch) { r.TermMin = minAllocationTerm - 1 }, 0},
		{"term max above 5 years", func(r *verifreg.AllocationRequest, h abi.ChainEpoch) { r.TermMax = maxAllocationTerm + 1 }, 0},
		{"term min above term max", func(r *verifreg.AllocationRequest, h abi.ChainEpoch) {
			r.TermMin, r.TermMax = minAllocationTerm+10, minAllocationTerm+9
		}, 0},
		{"expiration passed", func(r *verifreg.AllocationRequest, h abi.ChainEpoch) { r.Expiration = h - 1 }, 0},
		{"expiration beyond 60 days", func(r *verifreg.AllocationRequest, h abi.ChainEpoch) { r.Expiration = h + maxAllocationExpiration + 1 }, 0},
		{"provider is an account", func(r *verifreg.AllocationRequest, h abi.ChainEpoch) { r.Provider = nonMiner }, 0},
		{"provider has no actor", func(r *verifreg.AllocationRequest, h abi.ChainEpoch) { r.Provider = 99999 }, 0},
		{"more DataCap than the sizes", func(r *verifreg.AllocationRequest, h abi.ChainEpoch) {}, 2 * mib},
		{"less DataCap than the sizes", func(r *verifreg.AllocationRequest, h abi.ChainEpoch) { r.Size = 2 * mib }, mib},
	}
	before := e.stateJSON()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A valid request, then the bad one: the whole transfer fails.
			req := e.request(mib)
			c.mutate(&req, e.height()+1)
			amount := c.amount
			if amount == 0 {
				amount = mib + int64(req.Size)
			} else {
				amount += mib
			}
			r := e.transfer(e.client, amount, verifreg.AllocationRequests{Allocations: []verifreg.AllocationRequest{e.request(mib), req}})
			if r.ExitCode != exitcode.ErrIllegalArgument {
				t.Fatalf("exit %d, want %d", r.ExitCode, exitcode.ErrIllegalArgument)
			}
			if after := e.stateJSON(); after != before {
				t.Fatal("a refused transfer made allocations or moved DataCap")
			}
		})
	}
	t.Run("extension of a missing claim", func(t *testing.T) {
		r := e.transfer(e.client, mib, verifreg.AllocationRequests{Extensions: []verifreg.ClaimExtensionRequest{{Provider: e.actorID(e.maddr), Claim: 7, TermMax: maxAllocationTerm}}})
		if r.ExitCode != exitcode.ErrNotFound {
			t.Fatalf("exit %d, want %d", r.ExitCode, exitcode.ErrNotFound)
		}
	})
	t.Run("operator data that are not requests", func(t *testing.T) {
		r := e.exec(e.client, idAddr(idDatacap), builtin.MethodsDatacap.TransferExported, big.Zero(),
			&datacap.TransferParams{To: idAddr(idVerifreg), Amount: bytesToTokens(big.NewInt(mib)), OperatorData: []byte{0x43, 1, 2, 3}})
		if r.ExitCode != exitcode.ErrSerialization {
			t.Fatalf("exit %d, want %d", r.ExitCode, exitcode.ErrSerialization)
		}
	})
	if after := e.stateJSON(); after != before {
		t.Fatal("a refused transfer changed the state")
	}

	// The edges are allowed.
	ok := e.request(mib)
	ok.TermMin, ok.TermMax = minAllocationTerm, minAllocationTerm
	last := e.request(mib)
	last.Expiration = e.height() + 1 + maxAllocationExpiration
	last.TermMax = maxAllocationTerm
	ids := e.allocate(ok, last)
	if ids[0] != 1 || ids[1] != 2 {
		t.Fatalf("allocation IDs %v, want [1 2]", ids)
	}
	if got := e.dataCap(e.client); got != 6*mib {
		t.Fatalf("DataCap left %d, want %d", got, 6*mib)
	}
	e.checkDatacap()
	as, err := e.d.StateGetAllocations(e.ctx, e.client, chain.EmptyTSK)
	if err != nil || len(as) != 2 {
		t.Fatalf("allocations %v, %v", as, err)
	}
	if a := as[1]; a.Client != e.actorID(e.client) || a.Provider != e.actorID(e.maddr) || !a.Data.Equals(ok.Data) || a.Size != mib ||
		a.TermMin != ok.TermMin || a.TermMax != ok.TermMax || a.Expiration != ok.Expiration {
		t.Fatalf("allocation 1 is %+v, requested %+v", a, ok)
	}
}

func TestDirectOnboardingClaims(t *testing.T) {
	e := newDDOEnv(t)
	e.mustGrant(e.client, 4*mib)
	r1, r2 := e.request(mib), e.request(2*mib)
	ids := e.allocate(r1, r2)
	unverified := miner13.PieceActivationManifest{CID: e.pieceCID(), Size: mib, Notify: []miner13.DataActivationNotification{}}
	pieces := []miner13.PieceActivationManifest{e.manifest(r1, ids[0]), unverified, e.manifest(r2, ids[1])}
	e.precommitFor(1, pieces...)
	pc, err := e.d.StateSectorPreCommitInfo(e.ctx, e.maddr, 1, chain.EmptyTSK)
	if err != nil || pc == nil || len(pc.Info.DealIDs) != 0 {
		t.Fatalf("pre-commit %+v, %v", pc, err)
	}
	codes := batchCodes(t, e.prove3(true, true, miner13.SectorActivationManifest{SectorNumber: 1, Pieces: pieces}))
	if len(codes) != 1 || codes[0] != exitcode.Ok {
		t.Fatalf("results %v", codes)
	}
	proveEpoch := e.height()
	claims, err := e.d.StateGetClaims(e.ctx, e.maddr, chain.EmptyTSK)
	if err != nil || len(claims) != 2 {
		t.Fatalf("claims %v, %v", claims, err)
	}
	c := claims[verifreg.ClaimId(ids[1])]
	if c.Provider != e.actorID(e.maddr) || c.Client != e.actorID(e.client) || !c.Data.Equals(r2.Data) || c.Size != 2*mib ||
		c.TermMin != r2.TermMin || c.TermMax != r2.TermMax || c.TermStart != proveEpoch || c.Sector != 1 {
		t.Fatalf("claim %+v of request %+v", c, r2)
	}
	if as, _ := e.d.StateGetAllocations(e.ctx, e.client, chain.EmptyTSK); len(as) != 0 {
		t.Fatalf("allocations left after the claims: %v", as)
	}
	e.checkDatacap() // the claimed DataCap is burnt
	sec, err := e.d.StateSectorGetInfo(e.ctx, e.maddr, 1, chain.EmptyTSK)
	if err != nil || sec == nil {
		t.Fatalf("sector: %v, %v", sec, err)
	}
	life := int64(sec.Expiration - proveEpoch)
	if !sec.VerifiedDealWeight.Equals(big.NewInt(3*mib*life)) || !sec.DealWeight.Equals(big.NewInt(mib*life)) {
		t.Fatalf("weights %s verified, %s unverified; want %d and %d", sec.VerifiedDealWeight, sec.DealWeight, 3*mib*life, mib*life)
	}
	// A sector's claim can be read back one by one too, and a second
	// claim of a claimed allocation finds nothing.
	if got, err := e.d.StateGetClaim(e.ctx, e.maddr, verifreg.ClaimId(ids[0]), chain.EmptyTSK); err != nil || got == nil || got.Sector != 1 {
		t.Fatalf("claim %d: %+v, %v", ids[0], got, err)
	}
	e.precommitFor(2, e.manifest(r1, ids[0]))
	r := e.prove3(false, false, miner13.SectorActivationManifest{SectorNumber: 2, Pieces: []miner13.PieceActivationManifest{e.manifest(r1, ids[0])}})
	if r.ExitCode != exitcode.ErrIllegalArgument {
		t.Fatalf("proving with a claimed allocation: exit %d, want %d", r.ExitCode, exitcode.ErrIllegalArgument)
	}
	if pc, _ := e.d.StateSectorPreCommitInfo(e.ctx, e.maddr, 2, chain.EmptyTSK); pc == nil {
		t.Fatal("the failed proof removed the pre-commit")
	}
}

// dealOf is a valid proposal for a piece of size lasting the shortest
// deal duration.
func (e *dealEnv) dealOf(size abi.PaddedPieceSize, verified bool) market.DealProposal {
	p := e.proposal()
	p.PieceSize, p.VerifiedDeal = size, verified
	p.EndEpoch = p.StartEpoch + e.d.Policy().MinDealDuration
	p.ProviderCollateral, _ = ProviderCollateralBounds(size)
	return p
}

func TestVerifiedDealsMakeAllocations(t *testing.T) {
	e := newDDOEnv(t).funded()
	e.mustGrant(e.client, 2*mib)
	p1, p2, p3 := e.dealOf(mib, true), e.dealOf(mib, true), e.dealOf(mib, true)
	ret := decodePublish(t, e.publish(e.sign(p1, e.client), e.sign(p2, e.client), e.sign(p3, e.client)))
	if got := bitsOf(t, ret.ValidDeals); len(got) != 2 {
		t.Fatalf("valid %v, want two deals of 1 MiB within 2 MiB of DataCap", got)
	}
	if dc := e.dataCap(e.client); dc != 0 {
		t.Fatalf("DataCap left %d, want none", dc)
	}
	e.checkDatacap()
	// Each deal has its allocation, as the market actor makes them.
	for i, id := range ret.IDs {
		aid, err := e.d.StateGetAllocationIdForPendingDeal(e.ctx, id, chain.EmptyTSK)
		if err != nil || aid != verifreg.AllocationId(i+1) {
			t.Fatalf("deal %d: allocation ID %d, %v", id, aid, err)
		}
		a, err := e.d.StateGetAllocationForPendingDeal(e.ctx, id, chain.EmptyTSK)
		p := []market.DealProposal{p1, p2}[i]
		if err != nil || a == nil || !a.Data.Equals(p.PieceCID) || a.Size != p.PieceSize || a.Provider != e.actorID(e.maddr) ||
			a.TermMin != p.Duration() || a.TermMax != p.Duration()+marketAllocationTermBuffer || a.Expiration != p.StartEpoch {
			t.Fatalf("deal %d: allocation %+v, %v", id, a, err)
		}
	}
	// Activating a deal (the legacy pre-commit with deal IDs) claims its
	// allocation.
	if r := e.precommit(1, ret.IDs[:1], e.commD(p1), p1.EndEpoch+10); r.ExitCode != exitcode.Ok {
		t.Fatalf("pre-commit: exit %d", r.ExitCode)
	}
	e.mineUntil(e.height() + ddoPolicy.PreCommitChallengeDelay)
	if r := e.prove(1); r.ExitCode != exitcode.Ok {
		t.Fatalf("prove-commit: exit %d", r.ExitCode)
	}
	if aid, _ := e.d.StateGetAllocationIdForPendingDeal(e.ctx, ret.IDs[0], chain.EmptyTSK); aid != verifreg.NoAllocationID {
		t.Fatalf("activated deal still has pending allocation %d", aid)
	}
	if c, err := e.d.StateGetClaim(e.ctx, e.maddr, 1, chain.EmptyTSK); err != nil || c == nil || c.Sector != 1 || !c.Data.Equals(p1.PieceCID) {
		t.Fatalf("claim of the activated deal: %+v, %v", c, err)
	}
	e.checkDatacap()
	// Verified deals below the registry's minimum size cannot make an
	// allocation: the publish fails as a whole.
	e.mustGrant(e.client, 2*mib)
	before := e.stateJSON()
	if r := e.publish(e.sign(e.dealOf(512, true), e.client)); r.ExitCode != exitcode.ErrIllegalState {
		t.Fatalf("publishing a verified 512-byte deal: exit %d, want %d", r.ExitCode, exitcode.ErrIllegalState)
	}
	if e.stateJSON() != before {
		t.Fatal("the failed publish changed the state")
	}
}

func TestDataCapStateSurvivesRestart(t *testing.T) {
	e := newDDOEnv(t)
	e.mustGrant(e.client, 2*mib)
	r := e.request(mib)
	ids := e.allocate(r)
	e.restart()
	if got := e.dataCap(e.client); got != mib {
		t.Fatalf("DataCap after restart %d, want %d", got, mib)
	}
	if a, err := e.d.StateGetAllocation(e.ctx, e.client, ids[0], chain.EmptyTSK); err != nil || a == nil || !a.Data.Equals(r.Data) {
		t.Fatalf("allocation after restart: %+v, %v", a, err)
	}
	if next := e.allocate(e.request(mib)); next[0] != ids[0]+1 {
		t.Fatalf("allocation ID after restart %d, want %d", next[0], ids[0]+1)
	}
	e.checkDatacap()
}

func TestStateBeforeTheDataCapActor(t *testing.T) {
	// A snapshot written before the DataCap actor: DataCap in bytes in the
	// registry, no actor f07.
	old := `{"NextID":1001,"Actors":{"1000":{"Code":"account","Address":"f01000","Balance":"5","Nonce":0}},` +
		`"Verifreg":{"Root":1000,"Verifiers":{},"Clients":{"1000":"2048"}}}`
	s, err := decodeState([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if a := s.Actors[idDatacap]; a == nil || a.Code != codeDatacap {
		t.Fatalf("DataCap actor %+v", a)
	}
	if got := s.datacapBalance(1000); !got.Equals(bytesToTokens(big.NewInt(2048))) {
		t.Fatalf("balance %s", got)
	}
	if got := s.allowance(1000, idMarket); !got.Equals(infiniteAllowance) {
		t.Fatalf("market allowance %s", got)
	}
	if s.Verifreg.Clients != nil || s.Verifreg.NextAllocationID != 1 {
		t.Fatalf("registry %+v", s.Verifreg)
	}
	b, err := s.encode()
	if err != nil || strings.Contains(string(b), `"Clients"`) {
		t.Fatalf("re-encoded %s, %v", b, err)
	}
}
