package devnet

import (
	"encoding/binary"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v16/verifreg"
	"github.com/filecoin-project/go-state-types/builtin/v9/miner"
	"github.com/filecoin-project/go-state-types/builtin/v9/power"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"

	"github.com/ferry-fil/ferry/chain"
)

// Miner policy values, as in the actors.
const (
	maxPeerIDLength          = 128
	maxMultiaddrData         = 1024
	maxControlAddresses      = 10
	chainFinality            = 900
	maxPreCommitRandLookback = epochsInDay + chainFinality
	maxSectorExpiration      = 1278 * epochsInDay
	maxProveCommitSize       = 4096
)

// isWorkerOrControl reports whether id may act as the miner's worker.
func (m *minerState) isWorkerOrControl(id uint64) bool {
	if id == m.Worker {
		return true
	}
	for _, c := range m.Control {
		if c == id {
			return true
		}
	}
	return false
}

// isOwnerWorkerOrControl reports whether id may change the miner's info.
func (m *minerState) isOwnerWorkerOrControl(id uint64) bool {
	return id == m.Owner || m.isWorkerOrControl(id)
}

// accountID resolves an address that must be an existing account.
func (s *state) accountID(a address.Address, what string) (uint64, error) {
	id, act, ok := s.actor(a)
	if !ok {
		return 0, abort(exitcode.ErrIllegalArgument, "%s %s has no actor", what, a)
	}
	if act.Code != codeAccount {
		return 0, abort(exitcode.ErrIllegalArgument, "%s %s is a %s actor, not an account", what, a, act.Code)
	}
	return id, nil
}

func checkMultiaddrs(mas []abi.Multiaddrs) error {
	n := 0
	for _, ma := range mas {
		if len(ma) == 0 {
			return abort(exitcode.ErrIllegalArgument, "empty multiaddr")
		}
		n += len(ma)
	}
	if n > maxMultiaddrData {
		return abort(exitcode.ErrIllegalArgument, "multiaddrs are %d bytes, more than %d", n, maxMultiaddrData)
	}
	return nil
}

func copyMultiaddrs(mas []abi.Multiaddrs) [][]byte {
	out := make([][]byte, len(mas))
	for i, ma := range mas {
		out[i] = append([]byte(nil), ma...)
	}
	return out
}

// powerCreateMiner creates a miner actor (power actor method CreateMiner).
// The message value goes to the new miner's balance.
func (v *vm) powerCreateMiner(c *call) ([]byte, error) {
	var p power.CreateMinerParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	s := v.st
	owner, err := s.accountID(p.Owner, "owner")
	if err != nil {
		return nil, err
	}
	worker, err := s.accountID(p.Worker, "worker")
	if err != nil {
		return nil, err
	}
	size, err := p.WindowPoStProofType.SectorSize()
	if err != nil {
		return nil, abort(exitcode.ErrIllegalArgument, "window PoSt proof type %d: %v", p.WindowPoStProofType, err)
	}
	if len(p.Peer) > maxPeerIDLength {
		return nil, abort(exitcode.ErrIllegalArgument, "peer ID is %d bytes, more than %d", len(p.Peer), maxPeerIDLength)
	}
	if err := checkMultiaddrs(p.Multiaddrs); err != nil {
		return nil, err
	}
	// The robust address hashes the creating message's sender and nonce,
	// as the init actor does.
	seed := append(c.origin.Bytes(), binary.AppendUvarint(nil, c.nonce)...)
	seed = binary.AppendUvarint(seed, s.NextID)
	robust, err := address.NewActorAddress(seed)
	if err != nil {
		return nil, abort(exitcode.ErrIllegalState, "making robust address: %v", err)
	}
	id, a := s.newActor(codeMiner, robust)
	a.Miner = &minerState{
		Owner: owner, Worker: worker,
		PeerID:          append([]byte(nil), p.Peer...),
		Multiaddrs:      copyMultiaddrs(p.Multiaddrs),
		WindowPoStProof: p.WindowPoStProofType,
		SectorSize:      size,
		PreCommits:      map[abi.SectorNumber]*miner.SectorPreCommitOnChainInfo{},
		Sectors:         map[abi.SectorNumber]*sectorRecord{},
	}
	// The value is forwarded to the miner rather than kept by the power
	// actor.
	s.transfer(c.caller, id, c.value)
	c.value = big.Zero()
	return encodeReturn(&power.CreateMinerReturn{IDAddress: idAddr(id), RobustAddress: robust})
}

// minerOf returns the miner state of the call's receiver.
func (v *vm) minerOf(c *call) *minerState { return v.st.Actors[c.receiver].Miner }

// minerChangeWorkerAddress sets the worker and control addresses. The devnet
// applies a new worker at once (Filecoin waits WorkerKeyChangeDelay).
func (v *vm) minerChangeWorkerAddress(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	var p miner.ChangeWorkerAddressParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	m := v.minerOf(c)
	if c.caller != m.Owner {
		return nil, abort(exitcode.ErrForbidden, "caller f0%d is not the owner", c.caller)
	}
	worker, err := v.st.accountID(p.NewWorker, "worker")
	if err != nil {
		return nil, err
	}
	if len(p.NewControlAddrs) > maxControlAddresses {
		return nil, abort(exitcode.ErrIllegalArgument, "%d control addresses, more than %d", len(p.NewControlAddrs), maxControlAddresses)
	}
	control := make([]uint64, 0, len(p.NewControlAddrs))
	for _, a := range p.NewControlAddrs {
		id, err := v.st.accountID(a, "control address")
		if err != nil {
			return nil, err
		}
		control = append(control, id)
	}
	m.Worker, m.Control = worker, control
	return nil, nil
}

// minerChangePeerID sets the miner's libp2p peer ID.
func (v *vm) minerChangePeerID(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	var p miner.ChangePeerIDParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	m := v.minerOf(c)
	if !m.isOwnerWorkerOrControl(c.caller) {
		return nil, abort(exitcode.ErrForbidden, "caller f0%d is not the owner, worker or a control address", c.caller)
	}
	if len(p.NewID) > maxPeerIDLength {
		return nil, abort(exitcode.ErrIllegalArgument, "peer ID is %d bytes, more than %d", len(p.NewID), maxPeerIDLength)
	}
	m.PeerID = append([]byte(nil), p.NewID...)
	return nil, nil
}

// minerChangeMultiaddrs sets the miner's multiaddrs.
func (v *vm) minerChangeMultiaddrs(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	var p miner.ChangeMultiaddrsParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	m := v.minerOf(c)
	if !m.isOwnerWorkerOrControl(c.caller) {
		return nil, abort(exitcode.ErrForbidden, "caller f0%d is not the owner, worker or a control address", c.caller)
	}
	if err := checkMultiaddrs(p.NewMultiaddrs); err != nil {
		return nil, err
	}
	m.Multiaddrs = copyMultiaddrs(p.NewMultiaddrs)
	return nil, nil
}

// minerWithdrawBalance sends the miner's balance to its owner.
func (v *vm) minerWithdrawBalance(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	var p miner.WithdrawBalanceParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	m := v.minerOf(c)
	if c.caller != m.Owner {
		return nil, abort(exitcode.ErrForbidden, "caller f0%d is not the owner", c.caller)
	}
	if p.AmountRequested.Int == nil || p.AmountRequested.Sign() < 0 {
		return nil, abort(exitcode.ErrIllegalArgument, "negative amount %s", p.AmountRequested)
	}
	amount := big.Min(p.AmountRequested, v.st.Actors[c.receiver].Balance)
	ret, err := encodeReturn(&amount)
	if err != nil {
		return nil, err
	}
	v.st.transfer(c.receiver, m.Owner, amount)
	return ret, nil
}

// minerPreCommitSector pre-commits one sector (the v1 method, without an
// unsealed CID: the devnet computes CommD from the deals and stores it).
func (v *vm) minerPreCommitSector(c *call) ([]byte, error) {
	var p miner.PreCommitSectorParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	info := miner.SectorPreCommitInfo{
		SealProof: p.SealProof, SectorNumber: p.SectorNumber, SealedCID: p.SealedCID,
		SealRandEpoch: p.SealRandEpoch, DealIDs: p.DealIDs, Expiration: p.Expiration,
	}
	return nil, v.preCommit(c, []miner.SectorPreCommitInfo{info}, true)
}

// minerPreCommitSectorBatch2 pre-commits sectors with their unsealed CIDs.
// Any invalid sector fails the whole batch, as in the actors.
func (v *vm) minerPreCommitSectorBatch2(c *call) ([]byte, error) {
	var p miner.PreCommitSectorBatchParams2
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	if len(p.Sectors) == 0 {
		return nil, abort(exitcode.ErrIllegalArgument, "no sectors to pre-commit")
	}
	return nil, v.preCommit(c, p.Sectors, false)
}

// preCommit validates and stores pre-commits. With fillCommD the unsealed
// CID is computed instead of checked.
func (v *vm) preCommit(c *call, infos []miner.SectorPreCommitInfo, fillCommD bool) error {
	m := v.minerOf(c)
	if !m.isWorkerOrControl(c.caller) {
		return abort(exitcode.ErrForbidden, "caller f0%d is not the worker or a control address", c.caller)
	}
	s := v.st
	batchSectors := map[abi.SectorNumber]bool{}
	batchDeals := map[abi.DealID]bool{}
	out := make([]*miner.SectorPreCommitOnChainInfo, 0, len(infos))
	for i := range infos {
		info := infos[i]
		n := info.SectorNumber
		if ss, err := info.SealProof.SectorSize(); err != nil || ss != m.SectorSize {
			return abort(exitcode.ErrIllegalArgument, "sector %d: seal proof %d does not match the miner's sector size %d", n, info.SealProof, m.SectorSize)
		}
		if n > abi.MaxSectorNumber {
			return abort(exitcode.ErrIllegalArgument, "sector number %d too large", n)
		}
		if _, ok := m.PreCommits[n]; ok || batchSectors[n] {
			return abort(exitcode.ErrIllegalArgument, "sector %d is already pre-committed", n)
		}
		if _, ok := m.Sectors[n]; ok {
			return abort(exitcode.ErrIllegalArgument, "sector %d is already proven", n)
		}
		batchSectors[n] = true
		if p := info.SealedCID.Prefix(); !info.SealedCID.Defined() || p.Codec != cid.FilCommitmentSealed || p.MhType != multihash.POSEIDON_BLS12_381_A1_FC1 || p.MhLength != 32 {
			return abort(exitcode.ErrIllegalArgument, "sector %d: sealed CID %s is not a replica commitment", n, info.SealedCID)
		}
		if info.SealRandEpoch >= c.epoch {
			return abort(exitcode.ErrIllegalArgument, "sector %d: seal randomness epoch %d is not before now (%d)", n, info.SealRandEpoch, c.epoch)
		}
		if info.SealRandEpoch < c.epoch-maxPreCommitRandLookback {
			return abort(exitcode.ErrIllegalArgument, "sector %d: seal randomness epoch %d is older than %d epochs", n, info.SealRandEpoch, maxPreCommitRandLookback)
		}
		// The sector must live MinSectorExpiration after the latest
		// activation this pre-commit allows.
		if minExp := c.epoch + v.policy.MaxProveCommitDuration + v.policy.MinSectorExpiration; info.Expiration < minExp {
			return abort(exitcode.ErrIllegalArgument, "sector %d: expiration %d is before %d (now + max prove-commit duration %d + min sector lifetime %d)",
				n, info.Expiration, minExp, v.policy.MaxProveCommitDuration, v.policy.MinSectorExpiration)
		}
		if info.Expiration > c.epoch+maxSectorExpiration {
			return abort(exitcode.ErrIllegalArgument, "sector %d: expiration %d is more than %d epochs away", n, info.Expiration, maxSectorExpiration)
		}
		pieces := make([]abi.PieceInfo, 0, len(info.DealIDs))
		var total abi.PaddedPieceSize
		for _, id := range info.DealIDs {
			d, ok := s.Market.Deals[id]
			if !ok {
				return abort(exitcode.ErrNotFound, "sector %d: deal %d not found", n, id)
			}
			if pid, _ := s.lookupID(d.Proposal.Provider); pid != c.receiver {
				return abort(exitcode.ErrForbidden, "sector %d: deal %d belongs to provider %s", n, id, d.Proposal.Provider)
			}
			if d.SectorStartEpoch >= 0 || d.PreCommitted || batchDeals[id] {
				return abort(exitcode.ErrIllegalArgument, "sector %d: deal %d is already in a sector", n, id)
			}
			if c.epoch > d.Proposal.StartEpoch {
				return abort(exitcode.ErrIllegalArgument, "sector %d: deal %d start epoch %d has passed", n, id, d.Proposal.StartEpoch)
			}
			if d.Proposal.EndEpoch > info.Expiration {
				return abort(exitcode.ErrIllegalArgument, "sector %d: deal %d ends at %d, after the sector expires (%d)", n, id, d.Proposal.EndEpoch, info.Expiration)
			}
			batchDeals[id] = true
			total += d.Proposal.PieceSize
			pieces = append(pieces, abi.PieceInfo{Size: d.Proposal.PieceSize, PieceCID: d.Proposal.PieceCID})
		}
		if uint64(total) > uint64(m.SectorSize) {
			return abort(exitcode.ErrIllegalArgument, "sector %d: deals total %d bytes, more than the sector size %d", n, total, m.SectorSize)
		}
		if info.UnsealedCid != nil && !isPieceCID(*info.UnsealedCid) {
			return abort(exitcode.ErrIllegalArgument, "sector %d: unsealed CID %s is not a data commitment", n, *info.UnsealedCid)
		}
		// With deals, CommD is theirs; without, the declared one is kept as
		// it is (a sector proven with ProveCommitSectors3 has its CommD
		// checked against its manifest then), nil meaning an empty sector.
		if len(pieces) > 0 {
			commD, err := v.commD(abi.PaddedPieceSize(m.SectorSize), pieces)
			if err != nil {
				return abort(exitcode.ErrIllegalArgument, "sector %d: computing unsealed CID: %v", n, err)
			}
			if fillCommD {
				info.UnsealedCid = &commD
			} else if info.UnsealedCid == nil {
				return abort(exitcode.ErrIllegalArgument, "sector %d has deals but no unsealed CID", n)
			} else if !info.UnsealedCid.Equals(commD) {
				return abort(exitcode.ErrIllegalArgument, "sector %d: unsealed CID %s does not match the deals' %s", n, *info.UnsealedCid, commD)
			}
		}
		info.DealIDs = append([]abi.DealID(nil), info.DealIDs...)
		out = append(out, &miner.SectorPreCommitOnChainInfo{Info: info, PreCommitDeposit: big.Zero(), PreCommitEpoch: c.epoch})
	}
	for _, pc := range out {
		m.PreCommits[pc.Info.SectorNumber] = pc
		for _, id := range pc.Info.DealIDs {
			d := s.Market.Deals[id]
			d.PreCommitted, d.SectorNumber = true, pc.Info.SectorNumber
		}
	}
	return nil
}

// minerProveCommitSector proves a pre-committed sector and activates its
// deals. The proof bytes are not verified: the devnet has no PoRep.
func (v *vm) minerProveCommitSector(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	var p miner.ProveCommitSectorParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	m := v.minerOf(c)
	pc, ok := m.PreCommits[p.SectorNumber]
	if !ok {
		return nil, abort(exitcode.ErrNotFound, "sector %d is not pre-committed", p.SectorNumber)
	}
	if len(p.Proof) == 0 || len(p.Proof) > maxProveCommitSize {
		return nil, abort(exitcode.ErrIllegalArgument, "proof is %d bytes; want 1 to %d", len(p.Proof), maxProveCommitSize)
	}
	if c.epoch <= pc.PreCommitEpoch+v.policy.PreCommitChallengeDelay {
		return nil, abort(exitcode.ErrForbidden, "sector %d cannot be proven before epoch %d", p.SectorNumber, pc.PreCommitEpoch+v.policy.PreCommitChallengeDelay+1)
	}
	s := v.st
	weight, verifiedWeight := big.Zero(), big.Zero()
	claims := verifreg.SectorAllocationClaims{Sector: p.SectorNumber, SectorExpiry: pc.Info.Expiration, Claims: []verifreg.AllocationClaim{}}
	for _, id := range pc.Info.DealIDs {
		d, ok := s.Market.Deals[id]
		if !ok {
			return nil, abort(exitcode.ErrNotFound, "activating deal %d: not found (expired?)", id)
		}
		if c.epoch > d.Proposal.StartEpoch {
			return nil, abort(exitcode.ErrIllegalArgument, "activating deal %d: start epoch %d has passed", id, d.Proposal.StartEpoch)
		}
		w := big.Mul(big.NewInt(int64(d.Proposal.PieceSize)), big.NewInt(int64(d.Proposal.EndEpoch-c.epoch)))
		if d.Proposal.VerifiedDeal {
			verifiedWeight = big.Add(verifiedWeight, w)
		} else {
			weight = big.Add(weight, w)
		}
		if alloc, ok := s.Market.PendingAllocations[id]; ok {
			client, _ := s.lookupID(d.Proposal.Client)
			claims.Claims = append(claims.Claims, verifreg.AllocationClaim{
				Client: abi.ActorID(client), AllocationId: alloc, Data: d.Proposal.PieceCID, Size: d.Proposal.PieceSize,
			})
		}
	}
	// The verified deals' allocations are claimed as the deals activate;
	// any that cannot be fails the proof.
	if len(claims.Claims) > 0 {
		if _, err := v.send(c, idVerifreg, builtin.MethodsVerifiedRegistry.ClaimAllocations,
			&verifreg.ClaimAllocationsParams{Sectors: []verifreg.SectorAllocationClaims{claims}, AllOrNothing: true}); err != nil {
			return nil, err
		}
	}
	for _, id := range pc.Info.DealIDs {
		d := s.Market.Deals[id]
		d.PreCommitted, d.SectorNumber, d.SectorStartEpoch = false, p.SectorNumber, c.epoch
		delete(s.Market.PendingAllocations, id)
	}
	m.Sectors[p.SectorNumber] = newSectorRecord(pc, c.epoch, weight, verifiedWeight, pc.Info.DealIDs)
	delete(m.PreCommits, p.SectorNumber)
	return nil, nil
}

// newSectorRecord is the proven sector of a pre-commit, activated at epoch.
func newSectorRecord(pc *miner.SectorPreCommitOnChainInfo, epoch abi.ChainEpoch, weight, verifiedWeight abi.DealWeight, deals []abi.DealID) *sectorRecord {
	zero := big.Zero()
	return &sectorRecord{DealIDs: deals, Info: chain.SectorOnChainInfo{
		SectorNumber: pc.Info.SectorNumber, SealProof: pc.Info.SealProof, SealedCID: pc.Info.SealedCID,
		DeprecatedDealIDs: deals, Activation: epoch, Expiration: pc.Info.Expiration,
		DealWeight: weight, VerifiedDealWeight: verifiedWeight, InitialPledge: zero,
		ExpectedDayReward: &zero, ExpectedStoragePledge: &zero, PowerBaseEpoch: epoch,
		ReplacedDayReward: &zero, DailyFee: zero,
	}}
}

// minerCron expires pre-commits that were never proven; it reports whether
// it changed anything.
func (v *vm) minerCron(epoch abi.ChainEpoch) (changed bool) {
	s := v.st
	for _, id := range s.sortedActorIDs() {
		m := s.Actors[id].Miner
		if m == nil {
			continue
		}
		for n, pc := range m.PreCommits {
			if epoch <= pc.PreCommitEpoch+v.policy.MaxProveCommitDuration {
				continue
			}
			for _, d := range pc.Info.DealIDs {
				if ds, ok := s.Market.Deals[d]; ok && ds.PreCommitted && ds.SectorNumber == n {
					ds.PreCommitted = false
				}
			}
			delete(m.PreCommits, n)
			changed = true
		}
	}
	return changed
}
