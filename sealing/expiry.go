package sealing

import (
	"context"
	"fmt"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"

	"github.com/ferry-fil/ferry/chain"
)

// A sector's expiration, chosen when it is pre-committed at head h, must
// satisfy the miner actor and every piece in it:
//
//   - the miner: at least MinSectorExpiration after the latest activation
//     the pre-commit allows (h + MaxProveCommitDuration), and at most
//     maxSectorExpiration after h;
//   - each deal: not before its end epoch (a market deal's EndEpoch, a
//     direct piece's start + its allocation's TermMin), so a sector
//     activated by the deal's start lives at least the deal's duration,
//     which a verified allocation checks as TermMin;
//   - each verified allocation (a direct piece's, or the one a verified
//     market deal made at publish, whose TermMax is the deal's duration +
//     90 days): at most TermMax after activation, which is after h.
//
// So the sector expires at the latest of the lower bounds, and no later
// than h + the shortest TermMax. Packing puts a piece only into a sector
// where these bounds still meet (expiryBounds.fits); as h grows the upper
// bound moves with it while the deals' ends stay, so a sector whose bounds
// meet when a piece is placed still has an expiration when it is
// pre-committed.

// maxSectorExpiration is the longest a sector may be committed for
// (builtin-actors' max_sector_expiration_extension: 1278 days).
const maxSectorExpiration = abi.ChainEpoch(1278 * 2880)

// expirationMargin is added to the miner's lower bound: the day a
// pre-commit may wait to be included.
const expirationMargin = abi.ChainEpoch(2880)

// expiryBounds are the limits a sector's pieces set on its expiration: not
// before MinEnd, and at most TermMax after activation (0: no allocation
// bounds it).
type expiryBounds struct {
	MinEnd  abi.ChainEpoch
	TermMax abi.ChainEpoch
}

// with returns the bounds with one more piece's.
func (b expiryBounds) with(o expiryBounds) expiryBounds {
	b.MinEnd = max(b.MinEnd, o.MinEnd)
	if o.TermMax > 0 && (b.TermMax == 0 || o.TermMax < b.TermMax) {
		b.TermMax = o.TermMax
	}
	return b
}

// window returns the earliest and latest expiration a sector with bounds b
// may have when pre-committed at head h.
func (s *Sealing) window(h abi.ChainEpoch, b expiryBounds) (lo, hi abi.ChainEpoch) {
	lo = max(h+s.cfg.MaxProveCommitDuration+s.cfg.MinSectorExpiration+expirationMargin, b.MinEnd)
	hi = h + maxSectorExpiration
	if b.TermMax > 0 {
		hi = min(hi, h+b.TermMax)
	}
	return lo, hi
}

// fits reports whether a sector with bounds b has an expiration at head h.
func (s *Sealing) fits(h abi.ChainEpoch, b expiryBounds) bool {
	lo, hi := s.window(h, b)
	return lo <= hi
}

// expiration is the expiration of a sector with bounds b pre-committed at
// head h: the earliest that satisfies every bound.
func (s *Sealing) expiration(h abi.ChainEpoch, b expiryBounds) (abi.ChainEpoch, error) {
	lo, hi := s.window(h, b)
	if lo > hi {
		return 0, fmt.Errorf("no expiration fits: the sector must live until epoch %d but an allocation's TermMax %d ends it by epoch %d", lo, b.TermMax, hi)
	}
	return lo, nil
}

// allocationTerms reads the verified allocation a deal's piece claims: a
// direct piece's (its manifest's key), or the one a verified market deal
// made when it was published. It checks that the allocation is this
// miner's, for this piece. A piece that claims none has a zero claim.
func (s *Sealing) allocationTerms(ctx context.Context, d *Deal) (pieceClaim, error) {
	var c pieceClaim
	switch {
	case d.IsDirect():
		k := d.PieceActivationManifest.VerifiedAllocationKey
		if k == nil {
			return c, nil
		}
		c.Client, c.ID = k.Client, chain.AllocationID(k.ID)
	case d.Proposal.VerifiedDeal:
		id, err := s.node.StateGetAllocationIdForPendingDeal(ctx, d.DealID, chain.EmptyTSK)
		if err != nil {
			return c, fmt.Errorf("reading the allocation of chain deal %d: %w", d.DealID, err)
		}
		if id == chain.NoAllocationID {
			return c, nil // activated already, or made none
		}
		client, err := s.node.StateLookupID(ctx, d.Proposal.Client, chain.EmptyTSK)
		if err != nil {
			return c, fmt.Errorf("looking up client %s of chain deal %d: %w", d.Proposal.Client, d.DealID, err)
		}
		clientID, err := address.IDFromAddress(client)
		if err != nil {
			return c, fmt.Errorf("client %s of chain deal %d: %w", client, d.DealID, err)
		}
		c.Client, c.ID = abi.ActorID(clientID), id
	default:
		return c, nil
	}
	caddr, err := address.NewIDAddress(uint64(c.Client))
	if err != nil {
		return c, fmt.Errorf("allocation client f0%d: %w", c.Client, err)
	}
	a, err := s.node.StateGetAllocation(ctx, caddr, c.ID, chain.EmptyTSK)
	if err != nil {
		return c, fmt.Errorf("reading allocation %d of client %s: %w", c.ID, caddr, err)
	}
	switch {
	case a == nil:
		return c, fmt.Errorf("allocation %d of client %s is not on chain (claimed, or expired)", c.ID, caddr)
	case a.Provider != s.miner:
		return c, fmt.Errorf("allocation %d of client %s is for provider f0%d, not this miner f0%d", c.ID, caddr, a.Provider, s.miner)
	case !a.Data.Equals(d.PieceCID()) || a.Size != d.PieceSize():
		return c, fmt.Errorf("allocation %d of client %s is for piece %s of %d bytes, not %s of %d", c.ID, caddr, a.Data, a.Size, d.PieceCID(), d.PieceSize())
	}
	c.TermMax = a.TermMax
	return c, nil
}

// pieceClaim is the verified allocation a piece claims when its sector is
// proven (ID 0: none) and the longest its sector may then live.
type pieceClaim struct {
	Client  abi.ActorID
	ID      chain.AllocationID
	TermMax abi.ChainEpoch
}
