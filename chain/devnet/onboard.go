package devnet

import (
	"bytes"
	"sort"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	miner13 "github.com/filecoin-project/go-state-types/builtin/v13/miner"
	"github.com/filecoin-project/go-state-types/builtin/v16/verifreg"
	"github.com/filecoin-project/go-state-types/builtin/v9/miner"
	"github.com/filecoin-project/go-state-types/exitcode"
)

// Direct data onboarding (FIP-0076): a sector pre-committed without deals
// (PreCommitSectorBatch2) is proven with the manifest of its pieces
// (ProveCommitSectors3); pieces with a verified allocation key claim their
// allocation, and pieces with notifications are announced to the actors
// they name (the market activates the deal a notification's payload
// names).

// Aggregate proof bounds of ProveCommitSectors3, as in the actors.
const (
	minAggregatedSectors  = 4
	maxAggregatedSectors  = 819
	maxAggregateProofSize = 81960
)

// Exit codes of the miner for notifications that fail while
// RequireNotificationSuccess is set, as in the actors.
const (
	errNotificationSendFailed      = exitcode.ExitCode(1001)
	errNotificationReceiverAborted = exitcode.ExitCode(1002)
	errNotificationResponseInvalid = exitcode.ExitCode(1003)
	errNotificationRejected        = exitcode.ExitCode(1004)
)

// minerProveCommitSectors3 proves pre-committed sectors that have no deal
// IDs, each with the manifest of its pieces. The proofs are not verified
// (the devnet has no PoRep), but their shape is: one non-empty proof per
// sector, or one SnarkPackV2 aggregate for 4 to 819 sectors. A sector whose
// pre-commit has deals, or that is too late, fails on its own (the whole
// call with RequireActivationSuccess); one too early, or whose pieces'
// CommD is not its pre-commit's unsealed CID, fails the call. The sectors'
// verified pieces claim their allocations (a sector whose claims fail is
// not activated, or fails the call with RequireActivationSuccess), the
// rest are activated, and then each notification receiver is told of the
// pieces naming it (a rejection fails the call only with
// RequireNotificationSuccess). The return has one result per sector.
func (v *vm) minerProveCommitSectors3(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	var p miner13.ProveCommitSectors3Params
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	m := v.minerOf(c)
	if !m.isOwnerWorkerOrControl(c.caller) {
		return nil, abort(exitcode.ErrForbidden, "caller f0%d is not the owner, worker or a control address", c.caller)
	}
	acts := p.SectorActivations
	if len(acts) == 0 {
		return nil, abort(exitcode.ErrIllegalArgument, "no sectors to prove")
	}
	if err := checkCommitProofs(&p); err != nil {
		return nil, err
	}
	pcs := make([]*miner.SectorPreCommitOnChainInfo, len(acts))
	seen := map[abi.SectorNumber]bool{}
	for i, a := range acts {
		pc, ok := m.PreCommits[a.SectorNumber]
		if !ok {
			return nil, abort(exitcode.ErrNotFound, "sector %d is not pre-committed", a.SectorNumber)
		}
		if seen[a.SectorNumber] {
			return nil, abort(exitcode.ErrIllegalArgument, "sector %d is given twice", a.SectorNumber)
		}
		seen[a.SectorNumber] = true
		pcs[i] = pc
	}

	// The pre-commits: one result per sector from here on.
	codes := make([]exitcode.ExitCode, len(acts))
	for i, pc := range pcs {
		n := pc.Info.SectorNumber
		if i > 0 && pc.Info.SealProof != pcs[i-1].Info.SealProof {
			return nil, abort(exitcode.ErrIllegalState, "sectors %d and %d have different seal proofs", pcs[i-1].Info.SectorNumber, n)
		}
		if c.epoch <= pc.PreCommitEpoch+v.policy.PreCommitChallengeDelay {
			return nil, abort(exitcode.ErrForbidden, "sector %d cannot be proven before epoch %d", n, pc.PreCommitEpoch+v.policy.PreCommitChallengeDelay+1)
		}
		var why string
		switch {
		case len(pc.Info.DealIDs) > 0:
			why = "its pre-commit has deal IDs (prove it with ProveCommitSector)"
		case c.epoch > pc.PreCommitEpoch+v.policy.MaxProveCommitDuration:
			why = "its pre-commit is too old to prove"
		}
		if why != "" {
			if p.RequireActivationSuccess {
				return nil, abort(exitcode.ErrIllegalArgument, "sector %d: %s", n, why)
			}
			codes[i] = exitcode.ErrIllegalArgument
		}
	}
	if !anyOk(codes) {
		return nil, abort(exitcode.ErrIllegalArgument, "no valid pre-commits to prove")
	}

	// The data: CommD of the pieces must be the declared one.
	for i, a := range acts {
		if codes[i] != exitcode.Ok {
			continue
		}
		if err := v.checkManifest(m, pcs[i], &a); err != nil {
			return nil, err
		}
	}

	// The verified pieces claim their allocations, sector by sector.
	var claims []verifreg.SectorAllocationClaims
	var claimIdx []int
	nclaims := 0
	for i, a := range acts {
		if codes[i] != exitcode.Ok {
			continue
		}
		sc := verifreg.SectorAllocationClaims{Sector: a.SectorNumber, SectorExpiry: pcs[i].Info.Expiration, Claims: []verifreg.AllocationClaim{}}
		for _, pm := range a.Pieces {
			if k := pm.VerifiedAllocationKey; k != nil {
				sc.Claims = append(sc.Claims, verifreg.AllocationClaim{Client: k.Client, AllocationId: verifreg.AllocationId(k.ID), Data: pm.CID, Size: pm.Size})
			}
		}
		nclaims += len(sc.Claims)
		claims = append(claims, sc)
		claimIdx = append(claimIdx, i)
	}
	if nclaims > 0 {
		raw, err := v.send(c, idVerifreg, builtin.MethodsVerifiedRegistry.ClaimAllocations,
			&verifreg.ClaimAllocationsParams{Sectors: claims, AllOrNothing: p.RequireActivationSuccess})
		if err != nil {
			return nil, err
		}
		var cr verifreg.ClaimAllocationsReturn
		if err := cr.UnmarshalCBOR(bytes.NewReader(raw)); err != nil {
			return nil, abort(exitcode.ErrSerialization, "decoding the claims' return: %v", err)
		}
		for j, code := range cr.BatchInfo.Codes() {
			if j < len(claimIdx) && code != exitcode.Ok {
				codes[claimIdx[j]] = code
			}
		}
		if !anyOk(codes) {
			return nil, abort(exitcode.ErrIllegalArgument, "all data activations failed")
		}
	}

	// Activate the sectors.
	for i, a := range acts {
		if codes[i] != exitcode.Ok {
			continue
		}
		pc := pcs[i]
		duration := pc.Info.Expiration - c.epoch
		if duration < v.policy.MinSectorExpiration {
			return nil, abort(exitcode.ErrIllegalArgument, "sector %d would live %d epochs, less than the minimum %d", a.SectorNumber, duration, v.policy.MinSectorExpiration)
		}
		verified, unverified := big.Zero(), big.Zero()
		for _, pm := range a.Pieces {
			if pm.VerifiedAllocationKey != nil {
				verified = big.Add(verified, big.NewInt(int64(pm.Size)))
			} else {
				unverified = big.Add(unverified, big.NewInt(int64(pm.Size)))
			}
		}
		d := big.NewInt(int64(duration))
		m.Sectors[a.SectorNumber] = newSectorRecord(pc, c.epoch, big.Mul(unverified, d), big.Mul(verified, d), nil)
		delete(m.PreCommits, a.SectorNumber)
	}

	if err := v.notifyDataConsumers(c, acts, pcs, codes, p.RequireNotificationSuccess); err != nil {
		return nil, err
	}
	return encodeReturn(ptr(batchOf(codes)))
}

// ptr returns a pointer to a copy of x.
func ptr[T any](x T) *T { return &x }

// anyOk reports whether some code is Ok.
func anyOk(codes []exitcode.ExitCode) bool {
	for _, c := range codes {
		if c == exitcode.Ok {
			return true
		}
	}
	return false
}

// checkCommitProofs checks the shape of ProveCommitSectors3's proofs:
// exactly one of per-sector proofs (as many as sectors, none empty or too
// big) and an aggregate (SnarkPackV2, 4 to 819 sectors).
func checkCommitProofs(p *miner13.ProveCommitSectors3Params) error {
	if (len(p.SectorProofs) == 0) == (len(p.AggregateProof) == 0) {
		return abort(exitcode.ErrIllegalArgument, "exactly one of sector proofs or aggregate proof must be non-empty")
	}
	if len(p.SectorProofs) > 0 {
		if p.AggregateProofType != nil {
			return abort(exitcode.ErrIllegalArgument, "aggregate proof type must be null with per-sector proofs")
		}
		if len(p.SectorProofs) != len(p.SectorActivations) {
			return abort(exitcode.ErrIllegalArgument, "%d sector activations but %d proofs", len(p.SectorActivations), len(p.SectorProofs))
		}
		for i, pr := range p.SectorProofs {
			if len(pr) == 0 || len(pr) > maxProveCommitSize {
				return abort(exitcode.ErrIllegalArgument, "proof %d is %d bytes; want 1 to %d", i, len(pr), maxProveCommitSize)
			}
		}
		return nil
	}
	if p.AggregateProofType == nil || *p.AggregateProofType != abi.RegisteredAggregationProof_SnarkPackV2 {
		return abort(exitcode.ErrIllegalArgument, "aggregate proof type must be SnarkPackV2")
	}
	if n := len(p.SectorActivations); n < minAggregatedSectors || n > maxAggregatedSectors {
		return abort(exitcode.ErrIllegalArgument, "an aggregate proof covers %d to %d sectors, not %d", minAggregatedSectors, maxAggregatedSectors, n)
	}
	if len(p.AggregateProof) > maxAggregateProofSize {
		return abort(exitcode.ErrIllegalArgument, "aggregate proof is %d bytes, more than %d", len(p.AggregateProof), maxAggregateProofSize)
	}
	return nil
}

// checkManifest checks that a sector's manifest lists piece commitments
// whose CommD, placed in order in the sector, is the unsealed CID its
// pre-commit declared (no CID: an empty sector).
func (v *vm) checkManifest(m *minerState, pc *miner.SectorPreCommitOnChainInfo, a *miner13.SectorActivationManifest) error {
	n := a.SectorNumber
	pieces := make([]abi.PieceInfo, 0, len(a.Pieces))
	for j, pm := range a.Pieces {
		if !isPieceCID(pm.CID) {
			return abort(exitcode.ErrIllegalArgument, "sector %d piece %d: %s is not a piece commitment (v1)", n, j, pm.CID)
		}
		if err := pm.Size.Validate(); err != nil {
			return abort(exitcode.ErrIllegalArgument, "sector %d piece %d: size: %v", n, j, err)
		}
		pieces = append(pieces, abi.PieceInfo{Size: pm.Size, PieceCID: pm.CID})
	}
	size := abi.PaddedPieceSize(m.SectorSize)
	got, err := v.commD(size, pieces)
	if err != nil {
		return abort(exitcode.ErrIllegalArgument, "sector %d: computing the unsealed CID of its pieces: %v", n, err)
	}
	want := pc.Info.UnsealedCid
	if want == nil {
		empty, err := v.commD(size, nil)
		if err != nil {
			return abort(exitcode.ErrIllegalState, "computing an empty sector's unsealed CID: %v", err)
		}
		want = &empty
	}
	if !got.Equals(*want) {
		return abort(exitcode.ErrIllegalArgument, "unsealed CID %s of sector %d's pieces does not match the pre-committed %s", got, n, *want)
	}
	return nil
}

// notifyDataConsumers sends SectorContentChanged to each actor that the
// activated sectors' pieces name, once per actor with all its pieces (by
// sector, in sector number order). A failure or a rejected piece is an
// error only with requireSuccess.
func (v *vm) notifyDataConsumers(c *call, acts []miner13.SectorActivationManifest, pcs []*miner.SectorPreCommitOnChainInfo, codes []exitcode.ExitCode, requireSuccess bool) error {
	type sectorPieces struct {
		sector     abi.SectorNumber
		expiration abi.ChainEpoch
		pieces     []miner13.PieceChange
	}
	byNotifee := map[address.Address]map[abi.SectorNumber]*sectorPieces{}
	for i, a := range acts {
		if codes[i] != exitcode.Ok {
			continue
		}
		for _, pm := range a.Pieces {
			for _, nt := range pm.Notify {
				secs := byNotifee[nt.Address]
				if secs == nil {
					secs = map[abi.SectorNumber]*sectorPieces{}
					byNotifee[nt.Address] = secs
				}
				sp := secs[a.SectorNumber]
				if sp == nil {
					sp = &sectorPieces{sector: a.SectorNumber, expiration: pcs[i].Info.Expiration}
					secs[a.SectorNumber] = sp
				}
				sp.pieces = append(sp.pieces, miner13.PieceChange{Data: pm.CID, Size: pm.Size, Payload: nt.Payload})
			}
		}
	}
	notifees := make([]address.Address, 0, len(byNotifee))
	for a := range byNotifee {
		notifees = append(notifees, a)
	}
	sort.Slice(notifees, func(i, j int) bool { return bytes.Compare(notifees[i].Bytes(), notifees[j].Bytes()) < 0 })
	for _, addr := range notifees {
		var params sectorChangesParams
		for _, sp := range byNotifee[addr] {
			params = append(params, miner13.SectorChanges{Sector: sp.sector, MinimumCommitmentEpoch: sp.expiration, Added: sp.pieces})
		}
		sort.Slice(params, func(i, j int) bool { return params[i].Sector < params[j].Sector })
		err := v.notify(c, addr, &params)
		if err != nil && requireSuccess {
			return err
		}
	}
	return nil
}

// notify sends one SectorContentChanged and checks that every piece was
// accepted.
func (v *vm) notify(c *call, addr address.Address, params *sectorChangesParams) error {
	to, ok := v.st.lookupID(addr)
	if !ok {
		return abort(errNotificationSendFailed, "notifying %s: no actor there", addr)
	}
	raw, err := v.send(c, to, builtin.MethodSectorContentChanged, params)
	if err != nil {
		return abort(errNotificationReceiverAborted, "notifying %s: %v", addr, err)
	}
	var ret sectorChangesReturn
	if err := decodeParams(raw, &ret); err != nil || len(ret) != len(*params) {
		return abort(errNotificationResponseInvalid, "notifying %s: invalid response", addr)
	}
	for i, sec := range *params {
		if len(ret[i]) != len(sec.Added) {
			return abort(errNotificationResponseInvalid, "notifying %s: response for sector %d has %d pieces, not %d", addr, sec.Sector, len(ret[i]), len(sec.Added))
		}
		for j, ok := range ret[i] {
			if !ok {
				return abort(errNotificationRejected, "%s rejected piece %s of sector %d", addr, sec.Added[j].Data, sec.Sector)
			}
		}
	}
	return nil
}
