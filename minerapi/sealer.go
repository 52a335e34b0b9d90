package minerapi

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-jsonrpc"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	ferryauth "github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/sealing"
)

// DealStates reads where deals are on chain: published deals, and the
// claims of direct pieces; chain.Node satisfies it.
type DealStates interface {
	StateMarketStorageDeal(ctx context.Context, dealID abi.DealID, tsk chain.TipSetKey) (*chain.MarketDeal, error)
	StateGetClaim(ctx context.Context, provider address.Address, id chain.ClaimID, tsk chain.TipSetKey) (*chain.Claim, error)
}

// Sealer is the market's sealer when sealing runs in lotus-miner (or in a
// ferryd serving its API): it hands pieces over with SectorAddPieceToAny
// and follows their sectors. It never places a deal twice (see the package
// doc for the lookup); a miner that cannot be reached gives an error
// wrapping ErrUnavailable, which is transient.
type Sealer struct {
	c       *Client
	chain   DealStates
	store   *dealStore
	miner   address.Address
	minerID abi.ActorID
	ssize   abi.SectorSize

	// StatusMaxAge is how long one SectorsStatus answer serves every deal
	// of its sector: a market follows each deal's sealing every block, and
	// a sector holds many small deals. Zero asks the miner every time. Set
	// it before the first SectorStatus.
	StatusMaxAge time.Duration

	// unsealPiece is UnsealPiece; tests stand in for a slow miner here.
	unsealPiece func(ctx context.Context, pieceCid cid.Cid) error
	now         func() time.Time
	ctx         context.Context // the background unseals run until Close
	cancel      context.CancelFunc
	wg          sync.WaitGroup

	mu       sync.Mutex
	inflight map[uuid.UUID]chan struct{} // deals with an AddPieceToAny running here
	unseals  map[cid.Cid]*unseal         // background unseals, by piece
	statuses map[abi.SectorNumber]sectorStatus
	// statusSweep is the size of statuses at which old answers are dropped.
	statusSweep int
	closed      bool
}

// sectorStatus is a sector's state as the miner last reported it.
type sectorStatus struct {
	at    time.Time
	state SectorState
	id    abi.SectorNumber
}

// NewSealer returns a Sealer over c for miner, keeping its records in
// sqldb (migrated by db.Open). It checks that the API seals for miner,
// that c's token may hand pieces over (admin), and reads the sector size.
// Close it to stop the unseals it runs.
func NewSealer(ctx context.Context, c *Client, miner address.Address, chainDeals DealStates, sqldb *sql.DB) (*Sealer, error) {
	id, err := address.IDFromAddress(miner)
	if err != nil {
		return nil, fmt.Errorf("miner %s is not an ID address: %w", miner, err)
	}
	got, err := c.ActorAddress(ctx)
	if err != nil {
		return nil, fmt.Errorf("checking the miner API at %s: %w", c.URL(), err)
	}
	if got != miner {
		return nil, fmt.Errorf("the miner API at %s seals for %s, not for this market's miner %s", c.URL(), got, miner)
	}
	perms, err := c.Permissions(ctx)
	if err != nil {
		return nil, fmt.Errorf("checking the token of the miner API at %s: %w", c.URL(), err)
	}
	if !slices.Contains(perms, ferryauth.Admin) {
		return nil, fmt.Errorf("the token for the miner API at %s has %v, and handing pieces over needs admin (lotus-miner auth api-info --perm admin)", c.URL(), perms)
	}
	ssize, err := c.ActorSectorSize(ctx, miner)
	if err != nil {
		return nil, fmt.Errorf("checking the miner API at %s: %w", c.URL(), err)
	}
	s := &Sealer{c: c, chain: chainDeals, store: &dealStore{db: sqldb, now: time.Now},
		miner: miner, minerID: abi.ActorID(id), ssize: ssize, now: time.Now,
		inflight: make(map[uuid.UUID]chan struct{}), unseals: make(map[cid.Cid]*unseal),
		statuses: make(map[abi.SectorNumber]sectorStatus)}
	s.unsealPiece = s.UnsealPiece
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Close stops the unseals ReadPiece started (the miner may carry on with
// them) and waits for them. It does not close the Client.
func (s *Sealer) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// SectorSize is the miner's sector size.
func (s *Sealer) SectorSize() abi.SectorSize { return s.ssize }

// AddPieceToAny hands a deal's piece to the miner and returns where it was
// placed: data is the payload, at most size bytes (zero-filled to size).
// A deal already placed, by an earlier call or one that failed half way,
// returns that placement without reading data.
func (s *Sealer) AddPieceToAny(ctx context.Context, size abi.UnpaddedPieceSize, data io.Reader, d sealing.Deal) (sealing.Placement, error) {
	if err := piece.ValidateUnpadded(size); err != nil {
		return sealing.Placement{}, fmt.Errorf("adding piece of deal %s: %w", d.UUID, err)
	}
	if d.UUID == uuid.Nil {
		return sealing.Placement{}, errors.New("adding piece: deal UUID is not set")
	}
	if err := checkDeal(size, d); err != nil {
		return sealing.Placement{}, fmt.Errorf("adding piece of deal %s: %w", d.UUID, err)
	}
	release, err := s.claim(ctx, d.UUID)
	if err != nil {
		return sealing.Placement{}, err
	}
	defer release()

	h, ok, err := s.store.get(ctx, d.UUID)
	if err != nil {
		return sealing.Placement{}, err
	}
	if ok && h.Placed {
		return h.Placement, nil
	}
	if err := s.store.begin(ctx, d); err != nil {
		return sealing.Placement{}, err
	}
	pl, found, err := s.find(ctx, d)
	if err != nil {
		return sealing.Placement{}, fmt.Errorf("adding piece of deal %s: looking up whether it is already in a sector: %w", d.UUID, err)
	}
	if !found {
		off, err := s.c.SectorAddPieceToAny(ctx, size, data, dealInfo(d))
		if err != nil {
			// The miner may have placed the piece before the call
			// broke (a restart, a timeout): look again.
			var ferr error
			if pl, found, ferr = s.find(ctx, d); ferr != nil || !found {
				return sealing.Placement{}, fmt.Errorf("adding piece of deal %s: %w", d.UUID, err)
			}
		} else {
			pl = sealing.Placement{Sector: off.Sector, Offset: off.Offset, Size: size.Padded()}
		}
	}
	if err := s.store.placed(ctx, d.UUID, pl); err != nil {
		return sealing.Placement{}, err
	}
	return pl, nil
}

// claim makes sure one AddPieceToAny per deal runs in this process; a
// second call waits for the first and then sees its record.
func (s *Sealer) claim(ctx context.Context, id uuid.UUID) (func(), error) {
	for {
		s.mu.Lock()
		ch := s.inflight[id]
		if ch == nil {
			ch = make(chan struct{})
			s.inflight[id] = ch
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				delete(s.inflight, id)
				s.mu.Unlock()
				close(ch)
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for another hand-off of deal %s: %w", id, ctx.Err())
		}
	}
}

// checkDeal checks that d can be handed to lotus-miner as a piece of
// size: a builtin-market deal with its chain deal ID, publish CID and
// proposal, or a direct piece with its manifest and schedule, as Lotus'
// PieceDealInfo needs them.
func checkDeal(size abi.UnpaddedPieceSize, d sealing.Deal) error {
	if m := d.PieceActivationManifest; m != nil {
		switch {
		case d.Proposal != nil:
			return errors.New("the deal has both a proposal and a piece activation manifest")
		case m.Size != size.Padded():
			return fmt.Errorf("piece size %d does not match the manifest's %d", size.Padded(), m.Size)
		case !m.CID.Defined():
			return errors.New("the manifest has no piece CID")
		case d.DealSchedule.StartEpoch <= 0 || d.DealSchedule.EndEpoch <= d.DealSchedule.StartEpoch:
			return fmt.Errorf("the direct piece's schedule %d to %d is not a range of epochs", d.DealSchedule.StartEpoch, d.DealSchedule.EndEpoch)
		}
		return nil
	}
	switch {
	case d.Proposal == nil:
		return errors.New("the deal has neither a proposal nor a piece activation manifest")
	case !d.PublishCid.Defined():
		return errors.New("the publish CID is needed to hand a piece to lotus-miner")
	case d.Proposal.PieceSize != size.Padded():
		return fmt.Errorf("piece size %d does not match the proposal's %d", size.Padded(), d.Proposal.PieceSize)
	case !d.Proposal.PieceCID.Defined():
		return errors.New("the proposal has no piece CID")
	}
	return nil
}

// dealInfo is the PieceDealInfo of a deal: a builtin-market deal's
// publish CID, deal ID and proposal, or a direct piece's manifest, as
// Lotus' market passes them.
func dealInfo(d sealing.Deal) PieceDealInfo {
	if d.IsDirect() {
		return PieceDealInfo{
			DealSchedule:            DealSchedule{StartEpoch: d.DealSchedule.StartEpoch, EndEpoch: d.DealSchedule.EndEpoch},
			PieceActivationManifest: d.PieceActivationManifest,
			KeepUnsealed:            d.KeepUnsealed,
		}
	}
	publish, prop := d.PublishCid, d.Proposal
	return PieceDealInfo{
		PublishCid:   &publish,
		DealID:       d.DealID,
		DealProposal: prop,
		DealSchedule: DealSchedule{StartEpoch: prop.StartEpoch, EndEpoch: prop.EndEpoch},
		KeepUnsealed: d.KeepUnsealed,
	}
}

// find looks for deal d's piece at the miner: first in every sector that
// holds pieces not yet active on chain (placedStates), newest first, then,
// if the chain says the deal is active (a direct piece: its allocation is
// claimed), in the sector the chain names. In that order a sector that
// goes on to prove between the two looks is seen by one of them.
func (s *Sealer) find(ctx context.Context, d sealing.Deal) (sealing.Placement, bool, error) {
	nums, err := s.c.SectorsListInStates(ctx, placedStates)
	if err != nil {
		return sealing.Placement{}, false, err
	}
	slices.SortFunc(nums, func(a, b abi.SectorNumber) int { return cmp.Compare(b, a) })
	for _, n := range nums {
		si, err := s.c.SectorsStatus(ctx, n, false)
		var rpcErr *jsonrpc.JSONRPCError
		if errors.As(err, &rpcErr) {
			continue // the miner answered: the sector went away since the list
		}
		if err != nil {
			return sealing.Placement{}, false, err
		}
		if pl, ok := pieceIn(si, d); ok {
			return pl, true, nil
		}
	}
	sector, active, err := s.activeSector(ctx, d)
	if err != nil || !active {
		return sealing.Placement{}, false, err
	}
	si, err := s.c.SectorsStatus(ctx, sector, false)
	if err != nil {
		return sealing.Placement{}, false, fmt.Errorf("%s is active on chain in sector %d: %w", dealName(d), sector, err)
	}
	if pl, ok := pieceIn(si, d); ok {
		return pl, true, nil
	}
	return sealing.Placement{}, false, fmt.Errorf("%s is active on chain in sector %d, but the miner lists no such piece in it", dealName(d), sector)
}

// activeSector returns the sector the chain has deal d active in: a
// market deal's sector, a direct piece's claim's. A direct piece that
// claims no allocation leaves nothing on chain to find.
func (s *Sealer) activeSector(ctx context.Context, d sealing.Deal) (abi.SectorNumber, bool, error) {
	if m := d.PieceActivationManifest; m != nil {
		if m.VerifiedAllocationKey == nil {
			return 0, false, nil
		}
		id := m.VerifiedAllocationKey.ID
		cl, err := s.chain.StateGetClaim(ctx, s.miner, chain.ClaimID(id), chain.EmptyTSK)
		if err != nil {
			return 0, false, fmt.Errorf("reading claim %d on chain: %w", id, err)
		}
		if cl == nil || cl.Client != m.VerifiedAllocationKey.Client || !cl.Data.Equals(m.CID) {
			return 0, false, nil
		}
		return cl.Sector, true, nil
	}
	md, err := s.chain.StateMarketStorageDeal(ctx, d.DealID, chain.EmptyTSK)
	if err != nil {
		return 0, false, fmt.Errorf("reading deal %d on chain: %w", d.DealID, err)
	}
	return md.State.SectorNumber, md.State.SectorStartEpoch > 0, nil
}

// dealName names a deal in errors: its chain deal ID, or a direct piece's
// allocation.
func dealName(d sealing.Deal) string {
	if m := d.PieceActivationManifest; m != nil {
		if k := m.VerifiedAllocationKey; k != nil {
			return fmt.Sprintf("the claim of allocation %d", k.ID)
		}
		return fmt.Sprintf("direct piece %s", m.CID)
	}
	return fmt.Sprintf("deal %d", d.DealID)
}

// pieceIn finds deal d's piece in a sector: the piece with d's deal ID and
// piece CID (and publish CID, when the miner reports one), or, for a
// direct piece, the piece whose manifest has d's piece CID, size and
// allocation (and, claiming none, d's schedule). A piece without deal
// info matches by Deals' entry, never for deal ID 0, which Deals gives
// fillers. Its offset is the sum of the sizes of the pieces before it.
func pieceIn(si SectorInfo, d sealing.Deal) (sealing.Placement, bool) {
	var off abi.PaddedPieceSize
	for i, p := range si.Pieces {
		var match bool
		if d.IsDirect() {
			match = p.DealInfo != nil && sameDirectPiece(p.DealInfo, d)
		} else {
			dealID, known := abi.DealID(0), false
			var publish *cid.Cid
			if p.DealInfo != nil {
				dealID, publish, known = p.DealInfo.DealID, p.DealInfo.PublishCid, true
			} else if len(si.Deals) == len(si.Pieces) {
				dealID, known = si.Deals[i], si.Deals[i] != 0
			}
			match = known && dealID == d.DealID && p.Piece.PieceCID.Equals(d.Proposal.PieceCID) && (publish == nil || publish.Equals(d.PublishCid))
		}
		if match {
			return sealing.Placement{Sector: si.SectorID, Offset: off, Size: p.Piece.Size}, true
		}
		off += p.Piece.Size
	}
	return sealing.Placement{}, false
}

// sameDirectPiece reports whether the miner's piece info is direct piece
// d's: the same piece CID, size and allocation, or, with no allocation to
// tell two deals of one piece apart, the same schedule.
func sameDirectPiece(info *PieceDealInfo, d sealing.Deal) bool {
	got, want := info.PieceActivationManifest, d.PieceActivationManifest
	if got == nil || !got.CID.Equals(want.CID) || got.Size != want.Size {
		return false
	}
	gk, wk := got.VerifiedAllocationKey, want.VerifiedAllocationKey
	switch {
	case gk != nil && wk != nil:
		return *gk == *wk
	case gk == nil && wk == nil:
		return info.DealSchedule.StartEpoch == d.DealSchedule.StartEpoch && info.DealSchedule.EndEpoch == d.DealSchedule.EndEpoch
	}
	return false
}

// SectorStatus returns the sector of a deal handed over by AddPieceToAny
// and its state at the miner; sealing.ErrUnknownDeal when the deal has no
// known placement.
func (s *Sealer) SectorStatus(ctx context.Context, dealUUID uuid.UUID) (sealing.DealSectorStatus, error) {
	h, ok, err := s.store.get(ctx, dealUUID)
	if err != nil {
		return sealing.DealSectorStatus{}, err
	}
	if !ok || !h.Placed {
		return sealing.DealSectorStatus{}, fmt.Errorf("deal %s: %w", dealUUID, sealing.ErrUnknownDeal)
	}
	st, err := s.sectorState(ctx, h.Placement.Sector)
	if err != nil {
		return sealing.DealSectorStatus{}, fmt.Errorf("reading the sector of deal %s: %w", dealUUID, err)
	}
	return sealing.DealSectorStatus{Sector: st.id, State: st.state, Proven: proven(st.state)}, nil
}

// sectorState is sector n's state from the miner, or from its answer of
// less than StatusMaxAge ago.
func (s *Sealer) sectorState(ctx context.Context, n abi.SectorNumber) (sectorStatus, error) {
	now := s.now()
	s.mu.Lock()
	st, ok := s.statuses[n]
	s.mu.Unlock()
	if ok && now.Sub(st.at) < s.StatusMaxAge {
		return st, nil
	}
	si, err := s.c.SectorsStatus(ctx, n, false)
	if err != nil {
		return sectorStatus{}, err
	}
	st = sectorStatus{at: now, state: si.State, id: si.SectorID}
	if s.StatusMaxAge > 0 {
		s.mu.Lock()
		if len(s.statuses) >= s.statusSweep { // forget sectors no deal asks for
			for k, old := range s.statuses {
				if now.Sub(old.at) >= s.StatusMaxAge {
					delete(s.statuses, k)
				}
			}
			s.statusSweep = max(1024, 2*len(s.statuses))
		}
		s.statuses[n] = st
		s.mu.Unlock()
	}
	return st, nil
}

// ReadPiece opens a piece handed over by AddPieceToAny for reading from
// the miner's unsealed copy, over /remote. When no sector holding it has
// an unsealed copy of it at the miner, ReadPiece has the miner make one
// (UnsealPiece, in the background: lotus-miner takes hours for a 32 GiB
// sector) and fails with ErrUnsealing, saying since when, while that runs.
// An unseal that failed is reported, wrapping sealing.ErrNoUnsealedCopy
// (or ErrUnavailable), for UnsealRetryAfter; the next read after that asks
// again. A piece of no deal handed over fails with
// sealing.ErrNoUnsealedCopy.
func (s *Sealer) ReadPiece(ctx context.Context, pieceCid cid.Cid) (sealing.PieceReader, error) {
	r, recs, err := s.openUnsealed(ctx, pieceCid)
	if errors.Is(err, sealing.ErrNoUnsealedCopy) && len(recs) > 0 {
		return nil, s.unsealing(pieceCid, recs[0].Placement.Sector)
	}
	return r, err
}

// OpenUnsealed is ReadPiece without the unseal: it fails with
// sealing.ErrNoUnsealedCopy when the miner keeps no unsealed copy of the
// piece.
func (s *Sealer) OpenUnsealed(ctx context.Context, pieceCid cid.Cid) (sealing.PieceReader, error) {
	r, _, err := s.openUnsealed(ctx, pieceCid)
	return r, err
}

// openUnsealed opens the piece in the first sector holding it that has an
// unsealed copy of it at the miner, and returns the placed records of the
// piece.
func (s *Sealer) openUnsealed(ctx context.Context, pieceCid cid.Cid) (sealing.PieceReader, []handoff, error) {
	recs, err := s.store.placedPiece(ctx, pieceCid)
	if err != nil {
		return nil, nil, err
	}
	if len(recs) == 0 {
		return nil, nil, fmt.Errorf("piece %s: no deal of it was handed to the miner: %w", pieceCid, sealing.ErrNoUnsealedCopy)
	}
	for _, h := range recs {
		r, err := s.c.OpenPiece(ctx, abi.SectorID{Miner: s.minerID, Number: h.Placement.Sector}, s.ssize, h.Placement.Offset, h.Placement.Size)
		if errors.Is(err, sealing.ErrNoUnsealedCopy) {
			continue
		}
		if err != nil {
			return nil, recs, fmt.Errorf("opening piece %s: %w", pieceCid, err)
		}
		return r, recs, nil
	}
	return nil, recs, fmt.Errorf("piece %s: the miner keeps no unsealed copy of it: %w", pieceCid, sealing.ErrNoUnsealedCopy)
}

// ErrUnsealing is wrapped by ReadPiece's error while the miner makes an
// unsealed copy of the piece: read it again later.
var ErrUnsealing = errors.New("the miner is unsealing the piece")

// UnsealRetryAfter is how long ReadPiece reports a failed unseal before it
// asks the miner again.
const UnsealRetryAfter = time.Minute

// unseal is an UnsealPiece call ReadPiece started in the background.
type unseal struct {
	sector  abi.SectorNumber
	started time.Time
	ended   time.Time // zero while it runs
	err     error
}

// unsealing starts an unseal of the piece in sector n unless one runs or
// failed lately, and returns what a reader of the piece is told meanwhile.
func (s *Sealer) unsealing(pieceCid cid.Cid, n abi.SectorNumber) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if u := s.unseals[pieceCid]; u != nil {
		if u.ended.IsZero() {
			return fmt.Errorf("piece %s: the miner has no unsealed copy, and is unsealing sector %d for it (for %s so far): %w",
				pieceCid, u.sector, now.Sub(u.started).Round(time.Second), ErrUnsealing)
		}
		if now.Sub(u.ended) < UnsealRetryAfter {
			kind := sealing.ErrNoUnsealedCopy
			if errors.Is(u.err, ErrUnavailable) {
				kind = ErrUnavailable
			}
			return fmt.Errorf("piece %s: the miner has no unsealed copy, and unsealing sector %d failed %s ago: %v: %w",
				pieceCid, u.sector, now.Sub(u.ended).Round(time.Second), u.err, kind)
		}
	}
	if s.closed {
		return fmt.Errorf("piece %s: the miner has no unsealed copy: %w", pieceCid, sealing.ErrNoUnsealedCopy)
	}
	u := &unseal{sector: n, started: now}
	s.unseals[pieceCid] = u
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := s.unsealPiece(s.ctx, pieceCid)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err == nil {
			delete(s.unseals, pieceCid) // the copy exists: readers find it
			return
		}
		u.ended, u.err = s.now(), err
	}()
	return fmt.Errorf("piece %s: the miner has no unsealed copy: unsealing sector %d for it: %w", pieceCid, n, ErrUnsealing)
}

// UnsealPiece asks the miner to make an unsealed copy of a piece handed
// over by AddPieceToAny (SectorsUnsealPiece); it returns when the copy
// exists.
func (s *Sealer) UnsealPiece(ctx context.Context, pieceCid cid.Cid) error {
	recs, err := s.store.placedPiece(ctx, pieceCid)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return fmt.Errorf("piece %s: no deal of it was handed to the miner: %w", pieceCid, sealing.ErrUnknownDeal)
	}
	pl := recs[0].Placement
	si, err := s.c.SectorsStatus(ctx, pl.Sector, false)
	if err != nil {
		return fmt.Errorf("unsealing piece %s: %w", pieceCid, err)
	}
	ref := SectorRef{ID: abi.SectorID{Miner: s.minerID, Number: pl.Sector}, ProofType: si.SealProof}
	if err := s.c.SectorsUnsealPiece(ctx, ref, UnpaddedByteIndex(pl.Offset.Unpadded()), pl.Size.Unpadded(), si.Ticket.Value, si.CommD); err != nil {
		return fmt.Errorf("unsealing piece %s in sector %d: %w", pieceCid, pl.Sector, err)
	}
	return nil
}
