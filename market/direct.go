package market

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	miner13 "github.com/filecoin-project/go-state-types/builtin/v13/miner"
	verifreg13 "github.com/filecoin-project/go-state-types/builtin/v13/verifreg"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/transfer"
)

// Direct data onboarding (FIP-0076): a client turned DataCap into a
// verified allocation for this provider and a piece; the provider takes
// the piece (ImportDirect) and claims the allocation when it proves the
// sector holding it. No deal is published. Boost's `boostd import-direct`
// and Curio's ddo_v1 product are the models.

// Direct deal defaults and bounds, as Boost's import-direct has them.
const (
	// DefaultDirectStartDelay is how long after the chain head a direct
	// deal starts when no start epoch is given: 2 days.
	DefaultDirectStartDelay = abi.ChainEpoch(2 * 2880)
	// SealRandomnessLookback is how far back a pre-commit's ticket may be
	// drawn (chain finality): a direct deal's TermMin must leave room for
	// it within MaxSectorExpirationExtension.
	SealRandomnessLookback = abi.ChainEpoch(900)
)

// Transfer types of direct deals besides Boost's "http": transferFile, a
// file on this machine read where it is (its CommP checked), and
// transferStaged, a file in staging that a front end received and checked
// (an mk20 upload), taken over as it is.
const (
	transferFile   = "file"
	transferStaged = "staged"
)

// ErrDirectDealRejected is wrapped by ImportDirect's errors for a deal that
// is refused as it was asked for (the allocation, the piece, the epochs,
// the data), as opposed to the provider failing to check it.
var ErrDirectDealRejected = errors.New("direct deal rejected")

// DirectDeal is a direct data onboarding deal as ImportDirect takes it:
// the allocation to claim, the piece, when to start, and where the data
// comes from.
type DirectDeal struct {
	// UUID names the deal; uuid.Nil makes a new one.
	UUID uuid.UUID `json:"uuid"`
	// Client is the allocation's client (any address form).
	Client address.Address `json:"client"`
	// AllocationID is the client's allocation for this provider and piece.
	AllocationID chain.AllocationID `json:"allocationId"`
	// PieceCID is the piece, v1 or v2 (FRC-0069); a v2 CID carries the
	// piece's size and its payload's, which the data must have.
	PieceCID cid.Cid `json:"pieceCid"`
	// StartEpoch is when the piece must be in a proven sector; 0 is the
	// chain head + DefaultDirectStartDelay. The deal ends StartEpoch +
	// Duration.
	StartEpoch abi.ChainEpoch `json:"startEpoch"`
	// Duration is how long the sector must keep the piece, from the
	// allocation's TermMin to its TermMax; 0 is TermMin (as Boost's
	// import-direct has it).
	Duration abi.ChainEpoch `json:"duration,omitempty"`
	// Data is where the piece's payload comes from.
	Data DirectData `json:"data"`
	// RemoveUnsealedCopy drops the unsealed copy once the sector is proven
	// (the piece can then not be retrieved from this provider).
	RemoveUnsealedCopy bool `json:"removeUnsealedCopy"`
	// SkipIPNIAnnounce indexes the piece but does not announce it.
	SkipIPNIAnnounce bool `json:"skipIpniAnnounce"`
	// Source says who asked for the deal (an operator's import-direct, an
	// HTTP client), for the deal's log; informational.
	Source string `json:"source"`
	// Reservation, if set, names the staging reservation (ReserveStaging)
	// the front end made for this deal's data: the deal takes it over as
	// its staging tag when it is recorded, and is refused when it is gone.
	Reservation string `json:"reservation,omitempty"`
}

// DirectData is where a direct deal's payload comes from: exactly one of a
// file on this machine (read where it is, and removed once the piece is in
// a sector when DeleteAfterImport is set), an HTTP download into staging
// (the Request's URL, headers and Size), an upload into staging, which
// waits at Accepted for ImportData with the deal's staging file
// (DealInfo.DataPath) once the bytes are there, or a file already in
// staging whose CommP the front end that received it checked against the
// piece CID v2 (Staged): the market takes it over where it is, as its own
// staging file, and does not read it a second time before sealing
// (which checks the commitment again while it writes the piece).
type DirectData struct {
	File              string            `json:"file,omitempty"`
	DeleteAfterImport bool              `json:"deleteAfterImport,omitempty"`
	HTTP              *transfer.Request `json:"http,omitempty"`
	Upload            bool              `json:"upload,omitempty"`
	Staged            string            `json:"staged,omitempty"`
}

// rejectDirect is a direct deal refused as asked.
func rejectDirect(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrDirectDealRejected, fmt.Sprintf(format, args...))
}

// ImportDirect takes a direct data onboarding deal after Boost's
// import-direct checks: the allocation exists on chain and is this
// miner's, for this piece and padded size, its Expiration is not before
// the deal's start, the start leaves StartEpochSealingBuffer after the
// chain head, the allocation's TermMin fits a sector (at most
// MaxSectorExpirationExtension − SealRandomnessLookback), the piece fits
// the miner's sectors, the data is there and not larger than the piece, and
// no other deal that has not failed claims the same (client, allocation).
// The deal ends at start + its Duration (TermMin unless given). It is
// recorded at Accepted, with its staging tag (taking over the deal's
// Reservation, if it names one), and runs the direct pipeline: the data's
// CommP checked (a file read where it is, a download, or an upload
// continued by ImportData; a Staged file was checked by whoever received
// it), the piece added to a sector with its PieceActivationManifest,
// indexed and announced, and Complete once the sector is proven and the
// claim is on chain. Refusals wrap ErrDirectDealRejected.
func (p *Provider) ImportDirect(ctx context.Context, dd DirectDeal) (*DealInfo, error) {
	nd, err := p.validateDirect(ctx, &dd)
	if err != nil {
		return nil, err
	}
	p.admitMu.Lock()
	err = p.store.admitDirect(ctx, nd, func(space uint64) error {
		if c := p.cfg.StagingCapacity; c > 0 && space+nd.space > c {
			return rejectDirect("not enough staging space for %d bytes at the moment (%d of %d in use)", nd.space, space, c)
		}
		return nil
	})
	p.admitMu.Unlock()
	if err != nil {
		return nil, err
	}
	p.d.Logf("market: direct deal %s accepted from %s (allocation %d of %s, piece %s)", nd.id, dd.Source, dd.AllocationID, nd.clientKey, nd.manifest.CID)
	p.hook(nd.id, Accepted.String())
	// Read before the pipeline starts, so the answer is the deal as
	// admitted.
	d, err := p.store.deal(ctx, nd.id)
	p.kick(nd.id)
	if err != nil {
		return nil, err
	}
	info := p.info(d)
	return &info, nil
}

// CheckDirect makes ImportDirect's checks of a deal without taking it, so
// that a front end can refuse a deal before its client sends the data
// (errors as ImportDirect's). A Staged source is checked as an Upload: the
// file is not there yet.
func (p *Provider) CheckDirect(ctx context.Context, dd DirectDeal) error {
	if dd.Data.Staged != "" {
		dd.Data.Staged, dd.Data.Upload = "", true
	}
	nd, err := p.validateDirect(ctx, &dd)
	if err != nil {
		return err
	}
	return p.store.checkDirect(ctx, nd)
}

// ErrStagingFull is returned by ReserveStaging when the bytes do not fit
// in Config.StagingCapacity beside those held.
var ErrStagingFull = errors.New("staging area full")

// ReserveStaging reserves n bytes of staging under id (a front end's name
// for a deal it is receiving) until ImportDirect takes the reservation over
// as the deal's tag (DirectDeal.Reservation) or ReleaseStaging drops it.
// Reservations and deals draw on the one Config.StagingCapacity; it fails
// with ErrStagingFull when the bytes do not fit. Reserving again under the
// same id changes nothing.
func (p *Provider) ReserveStaging(ctx context.Context, id string, n uint64) error {
	if id == "" {
		return errors.New("reserving staging: no id")
	}
	p.admitMu.Lock()
	defer p.admitMu.Unlock()
	return p.store.reserveStaging(ctx, id, n, func(used uint64) error {
		if c := p.cfg.StagingCapacity; c > 0 && used+n > c {
			return fmt.Errorf("%w: %d bytes do not fit (%d of %d in use)", ErrStagingFull, n, used, c)
		}
		return nil
	})
}

// ReleaseStaging drops the reservation under id; one that is gone (taken
// over by a deal, or released before) is no error.
func (p *Provider) ReleaseStaging(ctx context.Context, id string) error {
	return p.store.releaseStaging(ctx, id)
}

// StagingReservations lists the ids holding a staging reservation, for a
// front end to release those of deals that died before their hand-off.
func (p *Provider) StagingReservations(ctx context.Context) ([]string, error) {
	return p.store.stagingReservations(ctx)
}

// newDirectDeal is a direct deal admission records.
type newDirectDeal struct {
	id           uuid.UUID
	clientKey    address.Address // the client's key address (its ID when it has none)
	allocationID chain.AllocationID
	manifest     miner13.PieceActivationManifest
	start, end   abi.ChainEpoch
	source       string
	transferType string
	params       []byte // an HTTP download's parameters
	size         uint64 // the payload's size, when known
	staging      string // the data file: the operator's, or a staging file
	stagingNode  string // the cluster node holding a staged file ("" for this one on a single node)
	owned        bool   // the market creates the data file (a download, an upload)
	deleteAfter  bool
	offline      bool
	space        uint64 // staging bytes tagged until the piece is in a sector
	reservation  string // the staging reservation the tag takes over
	keepUnsealed bool
	skipIPNI     bool
}

// validateDirect runs ImportDirect's checks and returns what admission
// records.
func (p *Provider) validateDirect(ctx context.Context, dd *DirectDeal) (*newDirectDeal, error) {
	nd := &newDirectDeal{id: dd.UUID, allocationID: dd.AllocationID, source: dd.Source, reservation: dd.Reservation,
		keepUnsealed: !dd.RemoveUnsealedCopy, skipIPNI: dd.SkipIPNIAnnounce}
	if nd.id == uuid.Nil {
		nd.id = uuid.New()
	}
	pc, size, payload, err := piece.ParseAnyCID(dd.PieceCID)
	if err != nil {
		return nil, rejectDirect("%v", err)
	}
	if dd.Client == address.Undef {
		return nil, rejectDirect("no client address")
	}
	if dd.AllocationID == chain.NoAllocationID {
		return nil, rejectDirect("no allocation ID")
	}

	head, err := p.d.Node.ChainHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the chain head: %w", err)
	}
	h := head.Height()
	nd.start = dd.StartEpoch
	if nd.start == 0 {
		nd.start = h + DefaultDirectStartDelay
	}
	if nd.start < h+p.cfg.StartEpochSealingBuffer {
		return nil, rejectDirect("the start epoch %d is less than the sealing buffer of %d epochs after the current epoch %d", nd.start, p.cfg.StartEpochSealingBuffer, h)
	}

	clientID, err := p.d.Node.StateLookupID(ctx, dd.Client, chain.TipSetKey{})
	if err != nil {
		return nil, rejectDirect("the client %s is not on chain: %v", dd.Client, err)
	}
	clientActor, err := address.IDFromAddress(clientID)
	if err != nil {
		return nil, fmt.Errorf("client %s: %w", clientID, err)
	}
	nd.clientKey = clientID
	if key, err := p.d.Node.StateAccountKey(ctx, clientID, chain.TipSetKey{}); err == nil {
		nd.clientKey = key
	}
	alloc, err := p.d.Node.StateGetAllocation(ctx, clientID, dd.AllocationID, chain.TipSetKey{})
	if err != nil {
		return nil, fmt.Errorf("reading allocation %d of client %s: %w", dd.AllocationID, dd.Client, err)
	}
	minerID, err := address.IDFromAddress(p.cfg.Miner)
	if err != nil {
		return nil, fmt.Errorf("miner %s: %w", p.cfg.Miner, err)
	}
	switch {
	case alloc == nil:
		return nil, rejectDirect("client %s has no allocation %d (never made, claimed or expired)", dd.Client, dd.AllocationID)
	case uint64(alloc.Provider) != minerID:
		return nil, rejectDirect("allocation %d is for provider f0%d, not this provider %s", dd.AllocationID, alloc.Provider, p.cfg.Miner)
	case !alloc.Data.Equals(pc):
		return nil, rejectDirect("allocation %d is for piece %s, not %s", dd.AllocationID, alloc.Data, pc)
	case size != 0 && alloc.Size != size:
		return nil, rejectDirect("allocation %d is for a piece of %d bytes, the piece CID v2 says %d", dd.AllocationID, alloc.Size, size)
	case alloc.Expiration < nd.start:
		return nil, rejectDirect("allocation %d expires at epoch %d, before the deal's start epoch %d", dd.AllocationID, alloc.Expiration, nd.start)
	case alloc.TermMin > MaxSectorExpirationExtension-SealRandomnessLookback:
		return nil, rejectDirect("allocation %d's TermMin %d is longer than a sector can be committed for (%d epochs)", dd.AllocationID, alloc.TermMin, MaxSectorExpirationExtension-SealRandomnessLookback)
	}
	v2 := size != 0
	size = alloc.Size
	mi, err := p.d.Node.StateMinerInfo(ctx, p.cfg.Miner, chain.TipSetKey{})
	if err != nil {
		return nil, fmt.Errorf("reading miner %s info: %w", p.cfg.Miner, err)
	}
	if uint64(size) > uint64(mi.SectorSize) {
		return nil, rejectDirect("the piece of %d bytes does not fit this provider's %d-byte sectors", size, mi.SectorSize)
	}
	duration := dd.Duration
	switch {
	case duration == 0:
		duration = alloc.TermMin
	case duration < alloc.TermMin || duration > alloc.TermMax:
		return nil, rejectDirect("the duration of %d epochs is outside allocation %d's terms (%d to %d epochs)", duration, dd.AllocationID, alloc.TermMin, alloc.TermMax)
	case duration > MaxSectorExpirationExtension-SealRandomnessLookback:
		return nil, rejectDirect("the duration of %d epochs is longer than a sector can be committed for (%d epochs)", duration, MaxSectorExpirationExtension-SealRandomnessLookback)
	}
	nd.end = nd.start + duration
	nd.manifest = miner13.PieceActivationManifest{CID: pc, Size: size,
		VerifiedAllocationKey: &miner13.VerifiedAllocationKey{Client: abi.ActorID(clientActor), ID: verifreg13.AllocationId(dd.AllocationID)}}

	if err := p.directData(ctx, nd, dd, v2, payload); err != nil {
		return nil, err
	}
	return nd, nil
}

// directData checks where a direct deal's data comes from and records it
// in nd. payload is the payload size the piece CID gave, if it is a v2.
func (p *Provider) directData(ctx context.Context, nd *newDirectDeal, dd *DirectDeal, v2 bool, payload uint64) error {
	src := dd.Data
	n := 0
	for _, set := range []bool{src.File != "", src.HTTP != nil, src.Upload, src.Staged != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return rejectDirect("give exactly one source of the data: a file, an HTTP URL, an upload or a staged file")
	}
	capacity := uint64(nd.manifest.Size.Unpadded())
	switch {
	case src.File != "":
		if !filepath.IsAbs(src.File) {
			return rejectDirect("the file %q is not an absolute path on the provider's machine", src.File)
		}
		st, err := os.Stat(src.File)
		if err != nil {
			return rejectDirect("reading the file: %v", err)
		}
		if !st.Mode().IsRegular() {
			return rejectDirect("%s is not a regular file", src.File)
		}
		nd.size = uint64(st.Size())
		nd.transferType, nd.staging, nd.deleteAfter, nd.offline = transferFile, src.File, src.DeleteAfterImport, true
	case src.HTTP != nil:
		req := *src.HTTP
		for _, u := range req.Sources() {
			if err := transfer.CheckURL(ctx, p.d.Resolver, u.URL, p.cfg.AllowPrivateAddresses); err != nil {
				if transfer.IsPermanent(err) {
					return rejectDirect("the URL is refused: %v", err)
				}
				return fmt.Errorf("resolving the host of %s: %w", transfer.Redact(u.URL), err)
			}
		}
		if req.Size == 0 && v2 {
			req.Size = payload
		}
		if req.Size == 0 {
			return rejectDirect("the download's size is not given (neither by the request nor by a piece CID v2)")
		}
		params, err := transfer.EncodeHTTPParams(req)
		if err != nil {
			return rejectDirect("%v", err)
		}
		nd.size, nd.params, nd.transferType = req.Size, params, "http"
		nd.staging, nd.owned, nd.space = filepath.Join(p.cfg.StagingDir, nd.id.String()+".car"), true, req.Size
	case src.Staged != "":
		// The market removes the file once the piece is in a sector (or
		// the deal failed): only a file in staging may be given.
		if filepath.Dir(src.Staged) != filepath.Clean(p.cfg.StagingDir) {
			return rejectDirect("the staged file %q is not in the staging directory", src.Staged)
		}
		if !v2 {
			return rejectDirect("a staged file needs a piece CID v2, which says its size")
		}
		st, err := os.Stat(src.Staged)
		if err != nil {
			return rejectDirect("reading the staged file: %v", err)
		}
		if !st.Mode().IsRegular() {
			return rejectDirect("%s is not a regular file", src.Staged)
		}
		nd.size = uint64(st.Size())
		nd.transferType, nd.staging, nd.owned, nd.space = transferStaged, src.Staged, true, nd.size
		nd.stagingNode = p.cfg.NodeID // nodes doing later steps read it from here
	case src.Upload:
		if err := os.MkdirAll(p.cfg.StagingDir, 0o755); err != nil {
			return fmt.Errorf("creating staging directory: %w", err)
		}
		nd.staging, nd.owned, nd.offline, nd.space = filepath.Join(p.cfg.StagingDir, nd.id.String()+".car"), true, true, capacity
		if v2 {
			nd.size, nd.space = payload, payload
		}
	}
	switch {
	case nd.size > capacity:
		return rejectDirect("the data is %d bytes, more than the %d-byte piece holds (%d)", nd.size, nd.manifest.Size, capacity)
	case v2 && nd.size != payload:
		return rejectDirect("the data is %d bytes, the piece CID v2 says %d", nd.size, payload)
	}
	return nil
}
