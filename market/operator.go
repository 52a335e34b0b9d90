package market

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/ferry-fil/ferry/db"
)

// DealInfo is one deal as the operator API shows it (JSON-friendly). Sizes
// are bytes, epochs chain epochs; Checkpoint is the last step finished,
// Retry/Retries/Error describe a pending retry or a failure, and Sector and
// SealingState appear once the piece is in a sector. Ended and EndedAt
// appear once a Complete deal ended on chain (its checkpoint stays
// Complete).
type DealInfo struct {
	UUID          string     `json:"uuid"`
	CreatedAt     time.Time  `json:"createdAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
	ClientPeer    string     `json:"clientPeer"`
	Client        string     `json:"client"`
	PieceCID      string     `json:"pieceCid"`
	PieceSize     uint64     `json:"pieceSize"`
	DataRoot      string     `json:"dataRoot"`
	StartEpoch    int64      `json:"startEpoch"`
	EndEpoch      int64      `json:"endEpoch"`
	Verified      bool       `json:"verified"`
	IsOffline     bool       `json:"isOffline"`
	TransferSize  uint64     `json:"transferSize"`
	BytesReceived uint64     `json:"bytesReceived"`
	AddPieceBytes uint64     `json:"addPieceBytes,omitempty"` // at PublishConfirmed: staged bytes AddPiece has read into a sector so far
	Checkpoint    string     `json:"checkpoint"`
	Retry         string     `json:"retry,omitempty"`
	Retries       int        `json:"retries,omitempty"`
	Error         string     `json:"error,omitempty"`
	PublishCID    string     `json:"publishCid,omitempty"`
	ChainDealID   uint64     `json:"chainDealId"` // valid from PublishConfirmed on (0 is a valid deal ID)
	Sector        *uint64    `json:"sector,omitempty"`
	SealingState  string     `json:"sealingState,omitempty"`
	SignedCID     string     `json:"signedCid"`
	Ended         string     `json:"ended,omitempty"`   // EndExpired, EndSlashed or EndRemoved
	EndedAt       *time.Time `json:"endedAt,omitempty"` // when the provider noticed the end
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

func (p *Provider) info(d *dealRow) DealInfo {
	prop := &d.Proposal.Proposal
	di := DealInfo{
		UUID: d.UUID.String(), CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, ClientPeer: d.ClientPeer,
		Client: prop.Client.String(), PieceCID: prop.PieceCID.String(), PieceSize: uint64(prop.PieceSize),
		DataRoot: cidString(d.DataRoot), StartEpoch: int64(prop.StartEpoch), EndEpoch: int64(prop.EndEpoch),
		Verified: prop.VerifiedDeal, IsOffline: d.IsOffline, TransferSize: d.TransferSize, BytesReceived: p.received(d),
		Checkpoint: d.Checkpoint, Retry: d.Retry, Retries: d.Retries, Error: d.Error, PublishCID: cidString(d.PublishCid),
		ChainDealID: uint64(d.ChainDealID), SealingState: d.SealingState, SignedCID: d.SignedCID.String(),
		AddPieceBytes: p.addedBytes(d),
	}
	if d.Sector >= 0 {
		s := uint64(d.Sector)
		di.Sector = &s
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

// DealFilter selects the deals Deals lists.
type DealFilter struct {
	// State is StateActive, StateFailed, StateComplete, StateEnded, or ""
	// for every deal.
	State string
	// Limit bounds how many deals are listed; 0 lists them all.
	Limit int
	// Offset skips that many of the matching deals, newest first, for
	// paging.
	Offset int
}

// Deals lists the deals f selects, newest first.
func (p *Provider) Deals(ctx context.Context, f DealFilter) ([]DealInfo, error) {
	var where string
	switch f.State {
	case "":
	case StateActive:
		where = `WHERE retry != 'fatal' AND checkpoint != 'Complete'`
	case StateFailed:
		where = `WHERE retry = 'fatal'`
	case StateComplete:
		where = `WHERE checkpoint = 'Complete' AND ended_at = 0`
	case StateEnded:
		where = `WHERE ended_at != 0`
	default:
		return nil, fmt.Errorf("listing deals: state %q is not one of %s, %s, %s, %s", f.State, StateActive, StateFailed, StateComplete, StateEnded)
	}
	if f.Limit < 0 || f.Offset < 0 {
		return nil, fmt.Errorf("listing deals: negative limit %d or offset %d", f.Limit, f.Offset)
	}
	limit := f.Limit
	if limit == 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := p.d.DB.QueryContext(ctx, `SELECT `+dealColumns+` FROM market_deals `+where+` ORDER BY created_at DESC LIMIT ? OFFSET ?`, limit, f.Offset)
	if err != nil {
		return nil, fmt.Errorf("listing deals: %w", err)
	}
	defer rows.Close()
	out := []DealInfo{}
	for rows.Next() {
		d, err := scanDeal(rows)
		if err != nil {
			return nil, fmt.Errorf("listing deals: %w", err)
		}
		out = append(out, p.info(d))
	}
	return out, rows.Err()
}

// Deal returns one deal with its log.
func (p *Provider) Deal(ctx context.Context, id uuid.UUID) (*DealDetail, error) {
	d, err := p.loadDeal(ctx, id)
	if err != nil {
		return nil, err
	}
	out := &DealDetail{DealInfo: p.info(d), Logs: []DealLog{}}
	rows, err := p.d.DB.QueryContext(ctx, `SELECT at, text FROM market_deal_logs WHERE uuid = ? ORDER BY id`, id.String())
	if err != nil {
		return nil, fmt.Errorf("reading log of deal %s: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var at int64
		var l DealLog
		if err := rows.Scan(&at, &l.Text); err != nil {
			return nil, fmt.Errorf("reading log of deal %s: %w", id, err)
		}
		l.At = time.Unix(0, at)
		out.Logs = append(out.Logs, l)
	}
	return out, rows.Err()
}

// Retry resumes a deal that waits for an operator or for its automatic
// retry, now. Failed deals cannot be retried.
func (p *Provider) Retry(ctx context.Context, id uuid.UUID) error {
	d, err := p.loadDeal(ctx, id)
	if err != nil {
		return err
	}
	switch d.Retry {
	case RetryFatal:
		return fmt.Errorf("deal %s has failed (%s) and cannot be retried", id, d.Error)
	case RetryNone:
		return fmt.Errorf("deal %s is not waiting for a retry (checkpoint %s)", id, d.Checkpoint)
	}
	err = db.InTx(ctx, p.d.DB, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE market_deals SET retry = '', retries = 0, retry_after = 0, updated_at = ? WHERE uuid = ?`,
			time.Now().UnixNano(), id.String()); err != nil {
			return err
		}
		return addLog(ctx, tx, id, "retry requested by the operator")
	})
	if err != nil {
		return fmt.Errorf("retrying deal %s: %w", id, err)
	}
	p.stopRunning(id) // a goroutine sleeping for its back-off restarts now
	p.kick(id)
	return nil
}

// Fail fails a deal for good at the operator's request, releasing its
// funds, staging space and staging file. A deal already published stays
// on chain; only its local processing stops.
func (p *Provider) Fail(ctx context.Context, id uuid.UUID) error {
	d, err := p.loadDeal(ctx, id)
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
// for data or for a publish batch) and fails it.
func (p *Provider) Cancel(ctx context.Context, id uuid.UUID) error {
	d, err := p.loadDeal(ctx, id)
	if err != nil {
		return err
	}
	if d.Retry == RetryFatal {
		return fmt.Errorf("deal %s has already failed", id)
	}
	if d.Checkpoint != Accepted && d.Checkpoint != Transferred {
		return fmt.Errorf("deal %s is past publishing (checkpoint %s) and can no longer be cancelled; use fail", id, d.Checkpoint)
	}
	p.stopRunning(id)
	// The publisher may have taken the deal in the meantime: only a deal
	// still before Published is cancelled.
	var cp string
	if err := p.d.DB.QueryRowContext(ctx, `SELECT checkpoint FROM market_deals WHERE uuid = ?`, id.String()).Scan(&cp); err != nil {
		return fmt.Errorf("cancelling deal %s: %w", id, err)
	}
	if cp != Accepted && cp != Transferred {
		return fmt.Errorf("deal %s was published while being cancelled", id)
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
	d, err := p.loadDeal(ctx, id)
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
		_ = addLog(ctx, p.d.DB, id, "import of %s refused: %v", path, err)
		return fmt.Errorf("importing data of deal %s: %w", id, err)
	}
	p.kick(id)
	return nil
}

// DealCount is how many deals are in one state and checkpoint.
type DealCount struct {
	State      string // StateActive, StateFailed, StateComplete or StateEnded
	Checkpoint string
	N          int64
}

// DealCounts counts the deals by state and checkpoint, for metrics.
func (p *Provider) DealCounts(ctx context.Context) ([]DealCount, error) {
	rows, err := p.d.DB.QueryContext(ctx, `SELECT CASE
			WHEN retry = 'fatal' THEN ?
			WHEN ended_at != 0 THEN ?
			WHEN checkpoint = 'Complete' THEN ?
			ELSE ? END AS state, checkpoint, count(*)
		FROM market_deals GROUP BY state, checkpoint ORDER BY state, checkpoint`,
		StateFailed, StateEnded, StateComplete, StateActive)
	if err != nil {
		return nil, fmt.Errorf("counting deals: %w", err)
	}
	defer rows.Close()
	var out []DealCount
	for rows.Next() {
		var c DealCount
		if err := rows.Scan(&c.State, &c.Checkpoint, &c.N); err != nil {
			return nil, fmt.Errorf("counting deals: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
