package devnet

import (
	"context"
	"fmt"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"

	"github.com/ferry-fil/ferry/chain"
)

// The verified registry's read methods, with Lotus' semantics: an address
// that resolves to no actor is an error, a missing allocation or claim is
// nil, and the maps are keyed by ID (decimal strings in JSON).

// StateVerifiedRegistryRootKey returns the ID address of the verified
// registry's root key (the devnet's notary of last resort).
func (d *Devnet) StateVerifiedRegistryRootKey(ctx context.Context, tsk chain.TipSetKey) (address.Address, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return address.Undef, err
	}
	defer release()
	return idAddr(st.Verifreg.Root), nil
}

// resolveID is StateLookupID on a state: the actor ID of addr.
func resolveID(st *state, addr address.Address) (uint64, error) {
	id, ok := st.lookupID(addr)
	if !ok {
		return 0, fmt.Errorf("resolution lookup failed (%s): actor not found", addr)
	}
	return id, nil
}

// StateGetAllocation returns a client's allocation, or nil.
func (d *Devnet) StateGetAllocation(ctx context.Context, client address.Address, id chain.AllocationID, tsk chain.TipSetKey) (*chain.Allocation, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	clientID, err := resolveID(st, client)
	if err != nil {
		return nil, err
	}
	a, ok := st.Verifreg.Allocations[clientID][id]
	if !ok {
		return nil, nil
	}
	out := *a
	return &out, nil
}

// StateGetAllocations returns a client's allocations by ID.
func (d *Devnet) StateGetAllocations(ctx context.Context, client address.Address, tsk chain.TipSetKey) (map[chain.AllocationID]chain.Allocation, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	clientID, err := resolveID(st, client)
	if err != nil {
		return nil, err
	}
	out := map[chain.AllocationID]chain.Allocation{}
	for id, a := range st.Verifreg.Allocations[clientID] {
		out[id] = *a
	}
	return out, nil
}

// StateGetAllAllocations returns every allocation by ID.
func (d *Devnet) StateGetAllAllocations(ctx context.Context, tsk chain.TipSetKey) (map[chain.AllocationID]chain.Allocation, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	out := map[chain.AllocationID]chain.Allocation{}
	for _, m := range st.Verifreg.Allocations {
		for id, a := range m {
			out[id] = *a
		}
	}
	return out, nil
}

// StateGetAllocationIdForPendingDeal returns the allocation a published
// verified deal made, until the deal is activated or times out; 0
// (NoAllocationID) otherwise.
func (d *Devnet) StateGetAllocationIdForPendingDeal(ctx context.Context, dealID abi.DealID, tsk chain.TipSetKey) (chain.AllocationID, error) { //nolint:revive // Lotus' name
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return chain.NoAllocationID, err
	}
	defer release()
	return st.Market.PendingAllocations[dealID], nil
}

// StateGetAllocationForPendingDeal returns the allocation of
// StateGetAllocationIdForPendingDeal, or nil when there is none.
func (d *Devnet) StateGetAllocationForPendingDeal(ctx context.Context, dealID abi.DealID, tsk chain.TipSetKey) (*chain.Allocation, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	id := st.Market.PendingAllocations[dealID]
	if id == chain.NoAllocationID {
		return nil, nil
	}
	ds, ok := st.Market.Deals[dealID]
	if !ok {
		return nil, fmt.Errorf("deal %d not found", dealID)
	}
	client, err := resolveID(st, ds.Proposal.Client)
	if err != nil {
		return nil, err
	}
	a, ok := st.Verifreg.Allocations[client][id]
	if !ok {
		return nil, nil
	}
	out := *a
	return &out, nil
}

// StateGetClaim returns a provider's claim, or nil.
func (d *Devnet) StateGetClaim(ctx context.Context, provider address.Address, id chain.ClaimID, tsk chain.TipSetKey) (*chain.Claim, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	pid, err := resolveID(st, provider)
	if err != nil {
		return nil, err
	}
	c, ok := st.Verifreg.Claims[pid][id]
	if !ok {
		return nil, nil
	}
	out := *c
	return &out, nil
}

// StateGetClaims returns a provider's claims by ID.
func (d *Devnet) StateGetClaims(ctx context.Context, provider address.Address, tsk chain.TipSetKey) (map[chain.ClaimID]chain.Claim, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	pid, err := resolveID(st, provider)
	if err != nil {
		return nil, err
	}
	out := map[chain.ClaimID]chain.Claim{}
	for id, c := range st.Verifreg.Claims[pid] {
		out[id] = *c
	}
	return out, nil
}

// StateGetAllClaims returns every claim by ID.
func (d *Devnet) StateGetAllClaims(ctx context.Context, tsk chain.TipSetKey) (map[chain.ClaimID]chain.Claim, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	out := map[chain.ClaimID]chain.Claim{}
	for _, m := range st.Verifreg.Claims {
		for id, c := range m {
			out[id] = *c
		}
	}
	return out, nil
}
