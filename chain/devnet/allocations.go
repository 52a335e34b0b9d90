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

// The verified registry keeps allocations by client and claims by provider:
// byActor maps an actor ID to its entries by their ID. entryOf, entriesOf
// and allEntries read either, returning copies so that callers cannot
// change the state.

// entryOf returns a copy of the entry id of the actor addr, or nil when
// the actor has no such entry; addr must resolve to an actor.
func entryOf[K comparable, V any](st *state, byActor map[uint64]map[K]*V, addr address.Address, id K) (*V, error) {
	actor, err := resolveID(st, addr)
	if err != nil {
		return nil, err
	}
	e, ok := byActor[actor][id]
	if !ok {
		return nil, nil
	}
	out := *e
	return &out, nil
}

// entriesOf returns copies of the entries of the actor addr by ID; addr
// must resolve to an actor.
func entriesOf[K comparable, V any](st *state, byActor map[uint64]map[K]*V, addr address.Address) (map[K]V, error) {
	actor, err := resolveID(st, addr)
	if err != nil {
		return nil, err
	}
	out := map[K]V{}
	for id, e := range byActor[actor] {
		out[id] = *e
	}
	return out, nil
}

// allEntries returns copies of every actor's entries by ID.
func allEntries[K comparable, V any](byActor map[uint64]map[K]*V) map[K]V {
	out := map[K]V{}
	for _, m := range byActor {
		for id, e := range m {
			out[id] = *e
		}
	}
	return out
}

// StateGetAllocation returns a client's allocation, or nil.
func (d *Devnet) StateGetAllocation(ctx context.Context, client address.Address, id chain.AllocationID, tsk chain.TipSetKey) (*chain.Allocation, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	return entryOf(st, st.Verifreg.Allocations, client, id)
}

// StateGetAllocations returns a client's allocations by ID.
func (d *Devnet) StateGetAllocations(ctx context.Context, client address.Address, tsk chain.TipSetKey) (map[chain.AllocationID]chain.Allocation, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	return entriesOf(st, st.Verifreg.Allocations, client)
}

// StateGetAllAllocations returns every allocation by ID.
func (d *Devnet) StateGetAllAllocations(ctx context.Context, tsk chain.TipSetKey) (map[chain.AllocationID]chain.Allocation, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	return allEntries(st.Verifreg.Allocations), nil
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
	return entryOf(st, st.Verifreg.Allocations, ds.Proposal.Client, id)
}

// StateGetClaim returns a provider's claim, or nil.
func (d *Devnet) StateGetClaim(ctx context.Context, provider address.Address, id chain.ClaimID, tsk chain.TipSetKey) (*chain.Claim, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	return entryOf(st, st.Verifreg.Claims, provider, id)
}

// StateGetClaims returns a provider's claims by ID.
func (d *Devnet) StateGetClaims(ctx context.Context, provider address.Address, tsk chain.TipSetKey) (map[chain.ClaimID]chain.Claim, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	return entriesOf(st, st.Verifreg.Claims, provider)
}

// StateGetAllClaims returns every claim by ID.
func (d *Devnet) StateGetAllClaims(ctx context.Context, tsk chain.TipSetKey) (map[chain.ClaimID]chain.Claim, error) {
	st, _, release, err := d.stateAt(ctx, tsk)
	if err != nil {
		return nil, err
	}
	defer release()
	return allEntries(st.Verifreg.Claims), nil
}
