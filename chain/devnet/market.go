package devnet

import (
	"bytes"
	"fmt"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-bitfield"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v16/datacap"
	"github.com/filecoin-project/go-state-types/builtin/v16/verifreg"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/filecoin-project/go-state-types/exitcode"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
)

// Market policy values the actors use.
const (
	// DealMaxLabelSize is the longest deal label in bytes.
	DealMaxLabelSize = 256
	// fil is one FIL in attoFIL.
	fil = 1_000_000_000_000_000_000
	// marketAllocationTermBuffer is how much longer than its deal the
	// allocation of a verified deal may be kept (its TermMax − TermMin):
	// 90 days.
	marketAllocationTermBuffer = 90 * epochsInDay
)

var (
	// totalFilecoin is the supply cap: the upper bound of every price and
	// collateral.
	totalFilecoin = big.Mul(big.NewInt(2_000_000_000), big.NewInt(fil))
	// collateralNumerator over collateralDenominator is attoFIL of minimum
	// provider collateral per padded byte: Filecoin's formula
	// 1% × circulating supply × size / max(network power, baseline) with the
	// devnet's fixed circulating supply of 500,000,000 FIL and baseline of
	// 2 EiB (2^61 bytes).
	collateralNumerator   = big.Mul(big.NewInt(5_000_000), big.NewInt(fil)) // 1% of 500M FIL
	collateralDenominator = big.Lsh(big.NewInt(1), 61)
)

// ProviderCollateralBounds returns the provider collateral the devnet's
// market accepts for a deal of size: Min is size-proportional (see
// collateralNumerator), Max is the total FIL supply, as on Filecoin.
func ProviderCollateralBounds(size abi.PaddedPieceSize) (min, max abi.TokenAmount) {
	min = big.Div(big.Mul(big.NewInt(int64(size)), collateralNumerator), collateralDenominator)
	return min, totalFilecoin
}

// isPieceCID reports whether c has the piece commitment prefix
// (fil-commitment-unsealed, sha2-256-trunc254-padded, 32 bytes).
func isPieceCID(c cid.Cid) bool {
	if !c.Defined() {
		return false
	}
	p := c.Prefix()
	return p.Version == 1 && p.Codec == cid.FilCommitmentUnsealed && p.MhType == 0x1012 && p.MhLength == 32
}

// marketAddBalance deposits the message value into an address' escrow.
func (v *vm) marketAddBalance(c *call) ([]byte, error) {
	var nominal address.Address
	if err := decodeParams(c.params, &nominal); err != nil {
		return nil, err
	}
	if c.value.Sign() <= 0 {
		return nil, abort(exitcode.ErrIllegalArgument, "balance to add must be greater than zero, was %s", c.value)
	}
	id, _, err := v.escrowOwner(c, nominal)
	if err != nil {
		return nil, err
	}
	e := v.st.escrowOf(id)
	e.Balance = big.Add(e.Balance, c.value)
	return nil, nil
}

// escrowOwner resolves the nominal address of escrow funds and checks the
// caller may act for it: a miner's funds are its owner's and worker's, an
// account's anyone may add to (the caller check for withdrawals is done by
// the caller of escrowOwner). It returns the ID and where withdrawals go.
func (v *vm) escrowOwner(c *call, nominal address.Address) (id, recipient uint64, err error) {
	id, a, ok := v.st.actor(nominal)
	if !ok {
		return 0, 0, abort(exitcode.ErrIllegalArgument, "no actor at address %s", nominal)
	}
	switch a.Code {
	case codeMiner:
		if c.caller != a.Miner.Owner && c.caller != a.Miner.Worker {
			return 0, 0, abort(exitcode.ErrForbidden, "caller f0%d is not the owner or worker of miner f0%d", c.caller, id)
		}
		return id, a.Miner.Owner, nil
	case codeAccount:
		return id, id, nil
	default:
		return 0, 0, abort(exitcode.ErrForbidden, "%s actor f0%d cannot hold market funds", a.Code, id)
	}
}

// marketWithdrawBalance withdraws unlocked escrow to the account, or to a
// miner's owner.
func (v *vm) marketWithdrawBalance(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	var p market.WithdrawBalanceParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	if p.Amount.Int == nil || p.Amount.Sign() < 0 {
		return nil, abort(exitcode.ErrIllegalArgument, "negative amount %s", p.Amount)
	}
	id, recipient, err := v.escrowOwner(c, p.ProviderOrClientAddress)
	if err != nil {
		return nil, err
	}
	if v.st.Actors[id].Code == codeAccount && c.caller != id {
		return nil, abort(exitcode.ErrForbidden, "caller f0%d may not withdraw the funds of f0%d", c.caller, id)
	}
	e := v.st.escrowOf(id)
	amount := big.Min(p.Amount, big.Sub(e.Balance, e.Locked))
	ret, err := encodeReturn(&amount)
	if err != nil {
		return nil, err
	}
	e.Balance = big.Sub(e.Balance, amount)
	v.st.transfer(idMarket, recipient, amount)
	return ret, nil
}

// marketPublishStorageDeals publishes the valid deals of a batch, skipping
// the invalid ones, as the v9+ market actor does; it fails only when no
// deal is valid.
func (v *vm) marketPublishStorageDeals(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	var p market.PublishStorageDealsParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	if len(p.Deals) == 0 {
		return nil, abort(exitcode.ErrIllegalArgument, "empty deals parameter")
	}
	s := v.st
	providerAddr := p.Deals[0].Proposal.Provider
	provID, prov, ok := s.actor(providerAddr)
	if !ok || prov.Code != codeMiner {
		return nil, abort(exitcode.ErrNotFound, "provider %s is not a miner", providerAddr)
	}
	if !prov.Miner.isWorkerOrControl(c.caller) {
		return nil, abort(exitcode.ErrForbidden, "caller f0%d is not the worker or a control address of provider f0%d", c.caller, provID)
	}

	type accepted struct {
		index    int
		client   uint64
		proposal market.DealProposal
		pcid     cid.Cid
	}
	var valid []accepted
	clientLock := map[uint64]abi.TokenAmount{}
	clientCap := map[uint64]abi.TokenAmount{} // DataCap tokens used by the batch
	providerLock := big.Zero()
	seen := map[cid.Cid]bool{}
	for i := range p.Deals {
		d := &p.Deals[i]
		clientID, err := v.validateDeal(c.epoch, d, provID)
		if err != nil {
			continue // invalid deals are skipped
		}
		pcid, err := d.Proposal.Cid()
		if err != nil {
			continue
		}
		if _, dup := s.proposals[pcid]; dup || seen[pcid] {
			continue
		}
		// Client funds, counting the deals accepted before in this batch.
		need := big.Add(clientLockOr0(clientLock, clientID), d.Proposal.ClientBalanceRequirement())
		ce := s.Market.Escrow[clientID]
		if ce == nil || big.Sub(ce.Balance, ce.Locked).LessThan(need) {
			continue
		}
		pneed := big.Add(providerLock, d.Proposal.ProviderCollateral)
		pe := s.Market.Escrow[provID]
		if pe == nil || big.Sub(pe.Balance, pe.Locked).LessThan(pneed) {
			continue
		}
		if d.Proposal.VerifiedDeal {
			used := big.Add(clientLockOr0(clientCap, clientID), bytesToTokens(big.NewInt(int64(d.Proposal.PieceSize))))
			if s.datacapBalance(clientID).LessThan(used) {
				continue
			}
			clientCap[clientID] = used
		}
		clientLock[clientID] = need
		providerLock = pneed
		seen[pcid] = true
		valid = append(valid, accepted{index: i, client: clientID, proposal: d.Proposal, pcid: pcid})
	}
	if len(valid) == 0 {
		return nil, abort(exitcode.ErrIllegalArgument, "all %d deals failed validation", len(p.Deals))
	}

	ret := market.PublishStorageDealsReturn{IDs: make([]abi.DealID, 0, len(valid))}
	indices := make([]uint64, 0, len(valid))
	for i, a := range valid {
		ret.IDs = append(ret.IDs, s.NextDealID+abi.DealID(i))
		indices = append(indices, uint64(a.index))
	}
	ret.ValidDeals = bitfield.NewFromSet(indices)
	out, err := encodeReturn(&ret)
	if err != nil {
		return nil, err
	}

	// Verified deals make their allocations with the clients' DataCap, one
	// transfer per client, as the market actor does; a transfer that fails
	// fails the whole message.
	reqs := map[uint64][]int{} // client → indexes in valid
	var clients []uint64
	for i, a := range valid {
		if a.proposal.VerifiedDeal {
			if _, ok := reqs[a.client]; !ok {
				clients = append(clients, a.client)
			}
			reqs[a.client] = append(reqs[a.client], i)
		}
	}
	commit := func() ([]byte, error) {
		allocs := make([]verifreg.AllocationId, len(valid))
		for _, client := range clients {
			deals := make([]*market.DealProposal, 0, len(reqs[client]))
			for _, i := range reqs[client] {
				deals = append(deals, &valid[i].proposal)
			}
			ids, err := v.allocateForDeals(c, client, provID, deals)
			if err != nil {
				return nil, abort(exitcode.ErrIllegalState, "making the allocations of client f0%d's verified deals: %v", client, err)
			}
			for j, i := range reqs[client] {
				allocs[i] = ids[j]
			}
		}
		// Store the deals, lock the funds.
		for i, a := range valid {
			id := s.NextDealID
			s.NextDealID++
			s.Market.Deals[id] = &dealState{
				Proposal: a.proposal, ProposalCid: a.pcid,
				SectorStartEpoch: -1, LastUpdatedEpoch: -1, SlashEpoch: -1,
			}
			s.proposals[a.pcid] = id
			if allocs[i] != verifreg.NoAllocationID {
				s.Market.PendingAllocations[id] = allocs[i]
			}
			ce := s.escrowOf(a.client)
			ce.Locked = big.Add(ce.Locked, a.proposal.ClientBalanceRequirement())
			pe := s.escrowOf(provID)
			pe.Locked = big.Add(pe.Locked, a.proposal.ProviderCollateral)
		}
		return out, nil
	}
	if len(clients) == 0 {
		return commit()
	}
	return v.undoOnFailure(commit)
}

// allocateForDeals transfers the DataCap of a client's verified deals
// with provider provID to the verified registry, with an allocation
// request per deal (the allocation the provider claims when it activates
// the deal), and returns the new allocation IDs in the deals' order.
func (v *vm) allocateForDeals(c *call, client, provID uint64, deals []*market.DealProposal) ([]verifreg.AllocationId, error) {
	n := len(deals)
	reqs := verifreg.AllocationRequests{Allocations: make([]verifreg.AllocationRequest, 0, n), Extensions: []verifreg.ClaimExtensionRequest{}}
	total := big.Zero()
	for _, d := range deals {
		termMin := d.EndEpoch - d.StartEpoch
		reqs.Allocations = append(reqs.Allocations, verifreg.AllocationRequest{
			Provider: abi.ActorID(provID), Data: d.PieceCID, Size: d.PieceSize,
			TermMin: termMin, TermMax: min(termMin+marketAllocationTermBuffer, maxAllocationTerm),
			Expiration: min(d.StartEpoch, c.epoch+maxAllocationExpiration),
		})
		total = big.Add(total, big.NewInt(int64(d.PieceSize)))
	}
	var opData bytes.Buffer
	if err := reqs.MarshalCBOR(&opData); err != nil {
		return nil, fmt.Errorf("encoding allocation requests: %w", err)
	}
	raw, err := v.send(c, idDatacap, builtin.MethodsDatacap.TransferFromExported, &datacap.TransferFromParams{
		From: idAddr(client), To: idAddr(idVerifreg), Amount: bytesToTokens(total), OperatorData: opData.Bytes(),
	})
	if err != nil {
		return nil, err
	}
	var tr datacap.TransferFromReturn
	if err := tr.UnmarshalCBOR(bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("decoding the DataCap transfer's return: %w", err)
	}
	var ar verifreg.AllocationsResponse
	if err := ar.UnmarshalCBOR(bytes.NewReader(tr.RecipientData)); err != nil {
		return nil, fmt.Errorf("decoding the allocations response: %w", err)
	}
	if len(ar.NewAllocations) != n {
		return nil, fmt.Errorf("the registry made %d allocations for %d deals", len(ar.NewAllocations), n)
	}
	return ar.NewAllocations, nil
}

func clientLockOr0(m map[uint64]abi.TokenAmount, id uint64) abi.TokenAmount {
	if v, ok := m[id]; ok {
		return v
	}
	return big.Zero()
}

// validateDeal checks one signed proposal as the market actor does and
// returns the client's actor ID.
func (v *vm) validateDeal(epoch abi.ChainEpoch, d *market.ClientDealProposal, provID uint64) (uint64, error) {
	s := v.st
	p := &d.Proposal
	if id, ok := s.lookupID(p.Provider); !ok || id != provID {
		return 0, fmt.Errorf("deal's provider %s differs from the batch's provider f0%d", p.Provider, provID)
	}
	clientID, client, ok := s.actor(p.Client)
	if !ok || client.Code != codeAccount {
		return 0, fmt.Errorf("client %s is not an account", p.Client)
	}
	var buf bytes.Buffer
	if err := p.MarshalCBOR(&buf); err != nil {
		return 0, fmt.Errorf("encoding proposal: %w", err)
	}
	if err := v.verify(&d.ClientSignature, client.Address, buf.Bytes()); err != nil {
		return 0, fmt.Errorf("client signature: %w", err)
	}
	if err := validateProposal(epoch, p, v.policy); err != nil {
		return 0, err
	}
	return clientID, nil
}

// validateProposal checks the proposal's own fields.
func validateProposal(epoch abi.ChainEpoch, p *market.DealProposal, pol Policy) error {
	if l := p.Label.Length(); l > DealMaxLabelSize {
		return fmt.Errorf("label is %d bytes, more than %d", l, DealMaxLabelSize)
	}
	if err := p.PieceSize.Validate(); err != nil {
		return fmt.Errorf("piece size: %w", err)
	}
	if !isPieceCID(p.PieceCID) {
		return fmt.Errorf("piece CID %s is not a piece commitment", p.PieceCID)
	}
	if p.EndEpoch <= p.StartEpoch {
		return fmt.Errorf("end epoch %d is not after start epoch %d", p.EndEpoch, p.StartEpoch)
	}
	if epoch > p.StartEpoch {
		return fmt.Errorf("start epoch %d has already passed (now %d)", p.StartEpoch, epoch)
	}
	if d := p.Duration(); d < pol.MinDealDuration || d > pol.MaxDealDuration {
		return fmt.Errorf("duration %d outside [%d, %d]", d, pol.MinDealDuration, pol.MaxDealDuration)
	}
	if !inRange(p.StoragePricePerEpoch, big.Zero(), totalFilecoin) {
		return fmt.Errorf("price per epoch %s out of bounds", p.StoragePricePerEpoch)
	}
	min, max := ProviderCollateralBounds(p.PieceSize)
	if !inRange(p.ProviderCollateral, min, max) {
		return fmt.Errorf("provider collateral %s outside [%s, %s]", p.ProviderCollateral, min, max)
	}
	if !inRange(p.ClientCollateral, big.Zero(), totalFilecoin) {
		return fmt.Errorf("client collateral %s out of bounds", p.ClientCollateral)
	}
	return nil
}

func inRange(x, min, max abi.TokenAmount) bool {
	return x.Int != nil && !x.LessThan(min) && !x.GreaterThan(max)
}

// marketCron processes the deals at the end of an epoch: unactivated deals
// past their start time out (client funds unlocked, provider collateral
// burnt), active deals are paid every DealUpdatesInterval epochs, and ended
// deals are paid up, their collaterals unlocked and removed. It reports
// whether it changed anything.
func (v *vm) marketCron(epoch abi.ChainEpoch) (changed bool) {
	s := v.st
	for _, id := range s.sortedDealIDs() {
		d := s.Market.Deals[id]
		p := &d.Proposal
		clientID, _ := s.lookupID(p.Client)
		provID, _ := s.lookupID(p.Provider)
		ce, pe := s.escrowOf(clientID), s.escrowOf(provID)
		if d.SectorStartEpoch < 0 {
			if epoch < p.StartEpoch {
				continue
			}
			// Timed out: never activated.
			ce.Locked = big.Sub(ce.Locked, p.ClientBalanceRequirement())
			pe.Locked = big.Sub(pe.Locked, p.ProviderCollateral)
			pe.Balance = big.Sub(pe.Balance, p.ProviderCollateral)
			s.transfer(idMarket, idBurnt, p.ProviderCollateral)
			v.removeDeal(id)
			changed = true
			continue
		}
		if epoch < p.StartEpoch {
			continue
		}
		if epoch >= p.EndEpoch {
			v.settle(d, p.EndEpoch, ce, pe)
			ce.Locked = big.Sub(ce.Locked, p.ClientCollateral)
			pe.Locked = big.Sub(pe.Locked, p.ProviderCollateral)
			v.removeDeal(id)
			changed = true
			continue
		}
		last := d.LastUpdatedEpoch
		if last < p.StartEpoch {
			last = p.StartEpoch
		}
		if epoch-last >= v.policy.DealUpdatesInterval {
			v.settle(d, epoch, ce, pe)
			changed = true
		}
	}
	return changed
}

// settle pays the provider for the epochs since the last payment, up to to.
func (v *vm) settle(d *dealState, to abi.ChainEpoch, ce, pe *escrow) {
	p := &d.Proposal
	from := d.LastUpdatedEpoch
	if from < p.StartEpoch {
		from = p.StartEpoch
	}
	if to > from {
		pay := big.Mul(p.StoragePricePerEpoch, big.NewInt(int64(to-from)))
		ce.Balance = big.Sub(ce.Balance, pay)
		ce.Locked = big.Sub(ce.Locked, pay)
		pe.Balance = big.Add(pe.Balance, pay)
	}
	d.LastUpdatedEpoch = to
}

// removeDeal deletes a deal, its pending proposal and its pending
// allocation ID (the allocation itself stays until it is claimed or
// removed as expired).
func (v *vm) removeDeal(id abi.DealID) {
	d := v.st.Market.Deals[id]
	delete(v.st.proposals, d.ProposalCid)
	delete(v.st.Market.Deals, id)
	delete(v.st.Market.PendingAllocations, id)
}

// marketSectorContentChanged is the notification a miner sends when it
// proves a sector whose manifest names the market for some pieces: each
// piece's payload is a deal ID (CBOR), and the deal is activated in that
// sector when it is this miner's, not yet in a sector, not past its start,
// ends by the sector's expiration and has the piece's CID and size. Each
// piece is accepted or refused on its own; the return says which.
func (v *vm) marketSectorContentChanged(c *call) ([]byte, error) {
	if err := requireNoValue(c); err != nil {
		return nil, err
	}
	s := v.st
	if a := s.Actors[c.caller]; a == nil || a.Code != codeMiner {
		return nil, abort(exitcode.ErrForbidden, "caller f0%d is not a miner", c.caller)
	}
	var p sectorChangesParams
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	type activation struct {
		deal   abi.DealID
		sector abi.SectorNumber
	}
	var acts []activation
	seen := map[abi.DealID]bool{}
	ret := make(sectorChangesReturn, len(p))
	for i, sec := range p {
		ret[i] = make([]bool, len(sec.Added))
		for j, pc := range sec.Added {
			id, err := chain.ParseDealNotificationPayload(pc.Payload)
			if err != nil || seen[id] {
				continue
			}
			d, ok := s.Market.Deals[id]
			if !ok {
				continue
			}
			if prov, _ := s.lookupID(d.Proposal.Provider); prov != c.caller {
				continue
			}
			if d.PreCommitted || d.SectorStartEpoch >= 0 || c.epoch > d.Proposal.StartEpoch || d.Proposal.EndEpoch > sec.MinimumCommitmentEpoch {
				continue
			}
			if !pc.Data.Equals(d.Proposal.PieceCID) || pc.Size != d.Proposal.PieceSize {
				continue
			}
			seen[id] = true
			ret[i][j] = true
			acts = append(acts, activation{deal: id, sector: sec.Sector})
		}
	}
	out, err := encodeReturn(&ret)
	if err != nil {
		return nil, err
	}
	for _, a := range acts {
		d := s.Market.Deals[a.deal]
		d.SectorNumber, d.SectorStartEpoch = a.sector, c.epoch
		delete(s.Market.PendingAllocations, a.deal)
	}
	return out, nil
}
