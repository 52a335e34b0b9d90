package client

import (
	"context"
	"fmt"
	"sort"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/lotus"
)

// AllocationReader reads a client's allocations and claims (chain.FullNode
// has these methods).
type AllocationReader interface {
	StateLookupID(ctx context.Context, addr address.Address, tsk chain.TipSetKey) (address.Address, error)
	StateGetAllocations(ctx context.Context, client address.Address, tsk chain.TipSetKey) (map[chain.AllocationID]chain.Allocation, error)
	StateGetClaims(ctx context.Context, provider address.Address, tsk chain.TipSetKey) (map[chain.ClaimID]chain.Claim, error)
	StateGetAllClaims(ctx context.Context, tsk chain.TipSetKey) (map[chain.ClaimID]chain.Claim, error)
}

// AllocationInfo is an allocation as `ferry allocate` and `ferry
// allocations` print it.
type AllocationInfo struct {
	AllocationID uint64         `json:"allocationId"`
	Client       string         `json:"client"`
	Provider     string         `json:"provider"`
	PieceCID     string         `json:"pieceCid"`
	PieceSize    uint64         `json:"pieceSize"`
	TermMin      abi.ChainEpoch `json:"termMin"`
	TermMax      abi.ChainEpoch `json:"termMax"`
	Expiration   abi.ChainEpoch `json:"expiration"`
}

// NewAllocationInfo describes allocation id.
func NewAllocationInfo(id chain.AllocationID, a *chain.Allocation) AllocationInfo {
	return AllocationInfo{
		AllocationID: uint64(id), Client: actorAddr(a.Client), Provider: actorAddr(a.Provider),
		PieceCID: a.Data.String(), PieceSize: uint64(a.Size), TermMin: a.TermMin, TermMax: a.TermMax, Expiration: a.Expiration,
	}
}

// ClaimInfo is a claim as `ferry allocations --claims` prints it.
type ClaimInfo struct {
	ClaimID   uint64         `json:"claimId"`
	Client    string         `json:"client"`
	Provider  string         `json:"provider"`
	PieceCID  string         `json:"pieceCid"`
	PieceSize uint64         `json:"pieceSize"`
	TermMin   abi.ChainEpoch `json:"termMin"`
	TermMax   abi.ChainEpoch `json:"termMax"`
	TermStart abi.ChainEpoch `json:"termStart"`
	Sector    uint64         `json:"sector"`
}

// actorAddr is the f0 address of an actor ID.
func actorAddr(id abi.ActorID) string {
	a, err := address.NewIDAddress(uint64(id))
	if err != nil {
		return fmt.Sprint(id)
	}
	return a.String()
}

// ListAllocations returns client's allocations in ID order, only those for
// one of providers when any are given.
func ListAllocations(ctx context.Context, n AllocationReader, client address.Address, providers []address.Address) ([]AllocationInfo, error) {
	as, err := n.StateGetAllocations(ctx, client, chain.EmptyTSK)
	if err != nil {
		return nil, fmt.Errorf("reading the allocations of %s: %w", client, err)
	}
	want, err := actorIDs(providers)
	if err != nil {
		return nil, err
	}
	out := make([]AllocationInfo, 0, len(as))
	for id, a := range as {
		if len(want) > 0 && !want[a.Provider] {
			continue
		}
		out = append(out, NewAllocationInfo(id, &a))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AllocationID < out[j].AllocationID })
	return out, nil
}

// ListClaims returns the claims of client's allocations in ID order: those
// of the given providers, or of every provider when none is given (which
// reads every claim on the chain: slow on mainnet).
func ListClaims(ctx context.Context, n AllocationReader, client address.Address, providers []address.Address) ([]ClaimInfo, error) {
	ida, err := n.StateLookupID(ctx, client, chain.EmptyTSK)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", client, err)
	}
	clientID, err := address.IDFromAddress(ida)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", client, err)
	}
	var all []map[chain.ClaimID]chain.Claim
	if len(providers) == 0 {
		m, err := n.StateGetAllClaims(ctx, chain.EmptyTSK)
		if err != nil {
			return nil, fmt.Errorf("reading the claims: %w", err)
		}
		all = append(all, m)
	}
	for _, p := range providers {
		m, err := n.StateGetClaims(ctx, p, chain.EmptyTSK)
		if err != nil {
			return nil, fmt.Errorf("reading the claims of %s: %w", p, err)
		}
		all = append(all, m)
	}
	var out []ClaimInfo
	for _, m := range all {
		for id, c := range m {
			if uint64(c.Client) != clientID {
				continue
			}
			out = append(out, ClaimInfo{
				ClaimID: uint64(id), Client: actorAddr(c.Client), Provider: actorAddr(c.Provider), PieceCID: c.Data.String(),
				PieceSize: uint64(c.Size), TermMin: c.TermMin, TermMax: c.TermMax, TermStart: c.TermStart, Sector: uint64(c.Sector),
			})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Provider != out[j].Provider {
			return out[i].Provider < out[j].Provider
		}
		return out[i].ClaimID < out[j].ClaimID
	})
	return out, nil
}

// actorIDs turns miner ID addresses into a set of actor IDs.
func actorIDs(as []address.Address) (map[abi.ActorID]bool, error) {
	out := map[abi.ActorID]bool{}
	for _, a := range as {
		id, err := address.IDFromAddress(a)
		if err != nil {
			return nil, fmt.Errorf("provider %s is not a miner ID address (f0…)", a)
		}
		out[abi.ActorID(id)] = true
	}
	return out, nil
}

// DevnetNotary is the chain API a devnet DataCap grant checks.
type DevnetNotary interface {
	StateNetworkName(ctx context.Context) (chain.NetworkName, error)
}

// DevnetNetworkName is the network name of a ferry devnet; `ferry devnet
// datacap` refuses any other chain.
const DevnetNetworkName = "ferry-devnet"

// GrantDevnetDataCap gives addr size bytes of DataCap on a ferry devnet: the
// devnet at ep (its own API beside Lotus', lotus.DevnetNamespace) sends an
// AddVerifiedClient message from the verified registry's root key, which it
// holds; the token needs the write permission, as the one ferryd gives
// clients has. It refuses unless n, the same chain, says its network name is
// the devnet's, so it can never be tried on a real network.
func GrantDevnetDataCap(ctx context.Context, n DevnetNotary, ep Endpoint, addr address.Address, size abi.StoragePower) (cid.Cid, error) {
	name, err := n.StateNetworkName(ctx)
	if err != nil {
		return cid.Undef, fmt.Errorf("reading the network name: %w", err)
	}
	if name != DevnetNetworkName {
		return cid.Undef, fmt.Errorf("%w: the chain is %q; `ferry devnet datacap` only works on the devnet ferryd runs", ErrNotDevnet, name)
	}
	if size.LessThan(big.NewInt(int64(MinAllocationSize))) {
		return cid.Undef, fmt.Errorf("%s bytes of DataCap is below the registry's minimum grant of %d bytes (1 MiB)", size, MinAllocationSize)
	}
	notary, closer, err := lotus.DialDevnet(ctx, ep.URL, ep.Token)
	if err != nil {
		return cid.Undef, err
	}
	defer closer()
	c, err := notary.GrantDataCap(ctx, addr, size)
	if err != nil {
		return cid.Undef, tokenHint(fmt.Errorf("asking the devnet for %s bytes of DataCap: %w", size, err))
	}
	return c, nil
}
