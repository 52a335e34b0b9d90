package market

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/transfer"
	"github.com/ferry-fil/ferry/wire"
)

// DealInfo is one deal as the operator API shows it (JSON-friendly). Sizes
// are bytes, epochs chain epochs; Checkpoint is the last step finished,
// Retry/Retries/Error describe a pending retry or a failure, and Sector and
// SealingState appear once the piece is in a sector. Ended and EndedAt
// appear once a Complete deal ended on chain (its checkpoint stays
// Complete). A direct deal (Kind "direct") has its AllocationID, and its
// ClaimID once Complete; it has no publish message or chain deal ID.
// PieceCID is v1; PieceCIDv2 appears once the payload's size is known.
type DealInfo struct {
	UUID          string    `json:"uuid"`
	Kind          DealKind  `json:"kind"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
	ClientPeer    string    `json:"clientPeer"`
	Client        string    `json:"client"`
	PieceCID      string    `json:"pieceCid"`
	PieceCIDv2    string    `json:"pieceCidV2,omitempty"`
	PieceSize     uint64    `json:"pieceSize"`
	AllocationID  uint64    `json:"allocationId,omitempty"`
	ClaimID       uint64    `json:"claimId,omitempty"`
	DataPath      string    `json:"dataPath,omitempty"` // where the data is until the piece is in a sector`
	DataRoot      string    `json:"dataRoot"`
	StartEpoch    int64     `json:"startEpoch"`
	EndEpoch      int64     `json:"endEpoch"`
	Verified      bool      `json:"verified"`
	IsOffline     bool      `json:"isOffline"`
	TransferSize  uint64    `json:"transferSize"`
	BytesReceived uint64    `json:"bytesReceived"`
	// TransferURL is where an online deal's data is downloaded from until
	// Transferred, its query and user info hidden; TransferFallbacks
	// counts the URLs left to try after it.
	TransferURL       string     `json:"transferUrl,omitempty"`
	TransferFallbacks int        `json:"transferFallbacks,omitempty"`
	AddPieceBytes     uint64     `json:"addPieceBytes,omitempty"` // while the piece is added: staged bytes AddPiece has read into a sector so far
	Checkpoint        Checkpoint `json:"checkpoint"`
	Retry             RetryState `json:"retry,omitempty"`
	Retries           int        `json:"retries,omitempty"`
	Error             string     `json:"error,omitempty"`
	PublishCID        string     `json:"publishCid,omitempty"`
	ChainDealID       uint64     `json:"chainDealId"` // valid from PublishConfirmed on (0 is a valid deal ID)
	Sector            *uint64    `json:"sector,omitempty"`
	SectorOffset      *uint64    `json:"sectorOffset,omitempty"` // padded offset of the piece in its sector
	SealingState      string     `json:"sealingState,omitempty"`
	SignedCID         string     `json:"signedCid,omitempty"`
	Ended             string     `json:"ended,omitempty"`   // EndExpired, EndSlashed or EndRemoved
	EndedAt           *time.Time `json:"endedAt,omitempty"` // when the provider noticed the end
}

// DealLog is one line of a deal's log.
type DealLog struct {
	At   time.Time `json:"at"`
	Text string    `json:"text"`
}

// DealDetail is a deal with its log.
type DealDetail struct {
	DealInfo
	Logs []DealLog `json:"logs"`
}

// CheckpointTime is when a deal reached a checkpoint.
type CheckpointTime struct {
	Checkpoint Checkpoint `json:"checkpoint"`
	At         time.Time  `json:"at"`
}

// Timeline is when the deal reached each checkpoint: Accepted when it was
// created, the later ones read from its log, in order (a step done twice,
// after a restart, appears once, at its last time).
func (d *DealDetail) Timeline() []CheckpointTime {
	out := []CheckpointTime{{Checkpoint: Accepted, At: d.CreatedAt}}
	for _, l := range d.Logs {
		for _, cp := range Accepted.andLater() {
			if l.Text != checkpointLog(cp) {
				continue
			}
			out = slices.DeleteFunc(out, func(c CheckpointTime) bool { return c.Checkpoint == cp })
			out = append(out, CheckpointTime{Checkpoint: cp, At: l.At})
		}
	}
	return out
}

func (p *Provider) info(d *dealRow) DealInfo {
	di := DealInfo{
		UUID: d.UUID.String(), Kind: d.Kind, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, ClientPeer: d.ClientPeer,
		Client: d.client().String(), PieceCID: d.PieceCID.String(), PieceSize: uint64(d.PieceSize),
		DataRoot: cidString(d.DataRoot), StartEpoch: int64(d.StartEpoch), EndEpoch: int64(d.EndEpoch),
		Verified: d.Verified, IsOffline: d.IsOffline, TransferSize: d.TransferSize, BytesReceived: p.received(d),
		Checkpoint: d.Checkpoint, Retry: d.Retry, Retries: d.Retries, Error: d.Error, PublishCID: cidString(d.PublishCid),
		ChainDealID: uint64(d.ChainDealID), SealingState: d.SealingState, SignedCID: cidString(d.SignedCID),
		AddPieceBytes: p.addedBytes(d), AllocationID: uint64(d.AllocationID),
	}
	if d.Checkpoint >= Transferred {
		if v2, err := piece.V1ToV2(d.PieceCID, d.TransferSize, d.PieceSize); err == nil {
			di.PieceCIDv2 = v2.String()
		}
	}
	if d.Kind == KindDirect && d.Checkpoint == Complete {
		di.ClaimID = uint64(d.AllocationID) // a claim keeps its allocation's ID
	}
	if d.Checkpoint < AddedPiece {
		di.DataPath = d.StagingPath
	}
	if d.Checkpoint < Transferred && d.TransferType == wire.TransferHTTP && !d.IsOffline {
		if req, err := transfer.ParseHTTPParams(d.TransferParams); err == nil {
			di.TransferURL, di.TransferFallbacks = transfer.Redact(req.URL), len(req.Fallbacks)
		}
	}
	if d.Sector >= 0 {
		s, off := uint64(d.Sector), d.SectorOffset
		di.Sector, di.SectorOffset = &s, &off
	}
	if !d.EndedAt.IsZero() {
		at := d.EndedAt
		di.Ended, di.EndedAt = d.EndReason, &at
	}
	return di
}

// Deal states a DealFilter selects.
const (
	StateActive   = "active"   // in the pipeline: neither Complete nor failed
	StateFailed   = "failed"   // failed for good
	StateComplete = "complete" // Complete and not ended on chain
	StateEnded    = "ended"    // ended on chain after Complete
)

// DealFilter selects the deals Deals lists. Every field set narrows the
// selection; the zero filter lists every deal.
type DealFilter struct {
	// State is StateActive, StateFailed, StateComplete, StateEnded, or ""
	// for every deal.
	State string `json:"state,omitempty"`
	// Checkpoint selects the deals whose last finished step is this one
	// (Accepted … Complete).
	Checkpoint string `json:"checkpoint,omitempty"`
	// Client selects one client's deals: its wallet's key address or its
	// libp2p peer ID.
	Client string `json:"client,omitempty"`
	// PieceCID selects the deals of one piece (CID v1 or v2).
	PieceCID string `json:"pieceCid,omitempty"`
	// CreatedFrom and CreatedTo bound when the proposal was accepted:
	// from inclusive, to exclusive; zero leaves that side open.
	CreatedFrom time.Time `json:"createdFrom,omitzero"`
	CreatedTo   time.Time `json:"createdTo,omitzero"`
	// Search finds deals by deal UUID, piece CID (v1 or v2), payload (data
	// root) CID or chain deal ID, whichever the text is.
	Search string `json:"search,omitempty"`
	// After continues a listing: only the deals listed after this one
	// (older, or as old with a smaller UUID). Paging by After stays as
	// fast on the last page as on the first, unlike Offset.
	After *DealCursor `json:"after,omitempty"`
	// Limit bounds how many deals are listed; 0 lists them all.
	Limit int `json:"limit,omitempty"`
	// Offset skips that many of the matching deals, newest first, for
	// paging.
	Offset int `json:"offset,omitempty"`
}

// DealCursor is a deal's place in the listing order (newest first, then
// by UUID): the Cursor of the last deal of a page is the After of the
// next.
type DealCursor struct {
	CreatedAt time.Time `json:"createdAt"`
	UUID      string    `json:"uuid"`
}

// Cursor is the deal's place in the listing order.
func (d DealInfo) Cursor() DealCursor { return DealCursor{CreatedAt: d.CreatedAt, UUID: d.UUID} }

// Deals lists the deals f selects, newest first.
func (p *Provider) Deals(ctx context.Context, f DealFilter) ([]DealInfo, error) {
	rows, err := p.store.list(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("listing deals: %w", err)
	}
	out := make([]DealInfo, len(rows))
	for i, d := range rows {
		out[i] = p.info(d)
	}
	return out, nil
}

// Deal returns one deal with its log.
func (p *Provider) Deal(ctx context.Context, id uuid.UUID) (*DealDetail, error) {
	d, err := p.store.deal(ctx, id)
	if err != nil {
		return nil, err
	}
	logs, err := p.store.logs(ctx, id)
	if err != nil {
		return nil, err
	}
	return &DealDetail{DealInfo: p.info(d), Logs: logs}, nil
}

// Retry resumes a deal that waits for an operator or for its automatic
// retry, now. Failed deals cannot be retried.
func (p *Provider) Retry(ctx context.Context, id uuid.UUID) error {
	d, err := p.store.deal(ctx, id)
	if err != nil {
		return err
	}
	switch d.Retry {
	case RetryFatal:
		return fmt.Errorf("deal %s has failed (%s) and cannot be retried", id, d.Error)
	case RetryNone:
		return fmt.Errorf("deal %s is not waiting for a retry (checkpoint %s)", id, d.Checkpoint)
	}
	if err := p.store.clearRetry(ctx, id, "retry requested by the operator"); err != nil {
		return err
	}
	p.stopRunning(id) // a goroutine sleeping for its back-off restarts now
	p.kick(id)
	return nil
}

// Fail fails a deal for good at the operator's request, releasing its
// funds, staging space and staging file. A deal already published stays
// on chain; only its local processing stops.
func (p *Provider) Fail(ctx context.Context, id uuid.UUID) error {
	d, err := p.store.deal(ctx, id)
	if err != nil {
		return err
	}
	if d.Checkpoint == Complete {
		return fmt.Errorf("deal %s is complete and cannot be failed", id)
	}
	if d.Retry == RetryFatal {
		return fmt.Errorf("deal %s has already failed", id)
	}
	p.stopRunning(id)
	return p.failDeal(ctx, id, "failed by the operator")
}

// Cancel stops a deal that is not yet published (its transfer, or its wait
// for data or for a publish batch) and fails it; a direct deal, which is
// never published, can be cancelled until its data is checked.
func (p *Provider) Cancel(ctx context.Context, id uuid.UUID) error {
	d, err := p.store.deal(ctx, id)
	if err != nil {
		return err
	}
	if d.Retry == RetryFatal {
		return fmt.Errorf("deal %s has already failed", id)
	}
	until := Published
	if d.Kind == KindDirect {
		until = Transferred
	}
	if d.Checkpoint >= until {
		return fmt.Errorf("deal %s is at checkpoint %s and can no longer be cancelled; use fail", id, d.Checkpoint)
	}
	p.stopRunning(id)
	// The publisher (or the data check) may have moved the deal on in the
	// meantime: only a deal still before that checkpoint is cancelled.
	cp, err := p.store.checkpoint(ctx, id)
	if err != nil {
		return fmt.Errorf("cancelling deal %s: %w", id, err)
	}
	if cp >= until {
		return fmt.Errorf("deal %s reached checkpoint %s while being cancelled", id, cp)
	}
	return p.failDeal(ctx, id, "cancelled by the operator")
}

// stopRunning stops a deal's goroutine and waits for it to end.
func (p *Provider) stopRunning(id uuid.UUID) {
	for {
		p.mu.Lock()
		rd := p.running[id]
		p.mu.Unlock()
		if rd == nil {
			return
		}
		rd.cancel()
		time.Sleep(5 * time.Millisecond)
	}
}

// ImportData gives an offline deal its data: the file's piece commitment
// must match the proposal. The file is read where it is and not deleted.
func (p *Provider) ImportData(ctx context.Context, id uuid.UUID, path string) error {
	d, err := p.store.deal(ctx, id)
	if err != nil {
		return err
	}
	if !d.IsOffline {
		return fmt.Errorf("deal %s is not an offline deal", id)
	}
	if d.Retry == RetryFatal {
		return fmt.Errorf("deal %s has failed (%s)", id, d.Error)
	}
	if d.Checkpoint != Accepted {
		return fmt.Errorf("deal %s already has its data (checkpoint %s)", id, d.Checkpoint)
	}
	if err := p.importData(ctx, d, path); err != nil {
		_ = p.store.log(ctx, id, "import of %s refused: %v", path, err)
		return fmt.Errorf("importing data of deal %s: %w", id, err)
	}
	p.kick(id)
	return nil
}

// DealCount is how many deals are in one state and checkpoint.
type DealCount struct {
	State      string     `json:"state"` // StateActive, StateFailed, StateComplete or StateEnded
	Checkpoint Checkpoint `json:"checkpoint"`
	N          int64      `json:"n"`
}

// DealCounts counts the deals by state and checkpoint, for metrics.
func (p *Provider) DealCounts(ctx context.Context) ([]DealCount, error) {
	return p.store.counts(ctx)
}

// PublishNow publishes the queued deals without waiting for the batch to
// fill or its period to pass.
func (p *Provider) PublishNow(ctx context.Context) error { return p.pub.publishNow(ctx) }

// Ingested sums the bytes of the deals whose data arrived (checkpoint
// Transferred) since since, by period of length every, oldest first;
// periods with nothing are included, so the result is a regular series.
func (p *Provider) Ingested(ctx context.Context, since time.Time, every time.Duration) ([]IngestBucket, error) {
	return p.store.ingested(ctx, since, every)
}

// Reserved sums what the staging and funds tags hold back.
func (p *Provider) Reserved(ctx context.Context) (Reserved, error) {
	r, err := p.store.reserved(ctx)
	r.StagingCapacity = p.cfg.StagingCapacity
	return r, err
}
