package market

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/db"
)

// After Complete the provider keeps watching its deals until they end on
// chain. Every PollInterval it reads the chain head and marks the deals
// whose end epoch it passed as expired (one indexed SQL query, no chain
// reads); every DealEndCheckInterval it also looks up on chain the
// EndChecksPerPass active deals checked longest ago, to notice slashing or
// a deal the chain dropped. An ended deal is recorded first (ended_at,
// end_reason), then its piece is released through the indexer's
// PieceRemover and piece_released is set, so a restart between the two
// finishes the release and never repeats a finished one. A deal that fails
// after AddedPiece releases its piece the same way: nothing will keep the
// piece for it any more.

// watchEnds runs end checks until ctx ends.
func (p *Provider) watchEnds(ctx context.Context) {
	t := time.NewTicker(p.pollEvery)
	defer t.Stop()
	var lastFull time.Time
	for {
		full := time.Since(lastFull) >= p.endEvery
		if err := p.checkEnds(ctx, full); err != nil {
			if ctx.Err() != nil {
				return
			}
			p.d.Logf("market: watching deal ends: %v", err)
		} else if full {
			lastFull = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watchedDeal is a Complete deal that has not ended.
type watchedDeal struct {
	id     uuid.UUID
	dealID abi.DealID
}

// checkEnds records the deals that ended, reading each one's chain state
// when full, then releases the pieces of ended deals.
func (p *Provider) checkEnds(ctx context.Context, full bool) error {
	head, err := p.d.Node.ChainHead(ctx)
	if err != nil {
		return fmt.Errorf("reading chain head: %w", err)
	}
	now := head.Height()
	expired, err := p.watchedDeals(ctx, sqlExpiredDeals, int64(now))
	if err != nil {
		return err
	}
	for _, w := range expired {
		if err := p.recordEnd(ctx, w.id, EndExpired, now); err != nil {
			return err
		}
	}
	if full {
		active, err := p.watchedDeals(ctx, sqlDealsToCheck, p.cfg.EndChecksPerPass)
		if err != nil {
			return err
		}
		var errs []error
		var checked []uuid.UUID
		for _, w := range active {
			reason, err := p.chainEnd(ctx, w.dealID, head.Key())
			if err == nil {
				checked = append(checked, w.id)
				if reason != "" {
					err = p.recordEnd(ctx, w.id, reason, now)
				}
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				errs = append(errs, err) // the other deals are still checked
			}
		}
		if err := p.markEndChecked(ctx, checked); err != nil {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			return errors.Join(err, p.releaseEnded(ctx))
		}
	}
	return p.releaseEnded(ctx)
}

// markEndChecked records that the deals were just looked up on chain.
func (p *Provider) markEndChecked(ctx context.Context, ids []uuid.UUID) error {
	if len(ids) == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	err := db.InTx(ctx, p.d.DB, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE market_deals SET end_checked_at = ? WHERE uuid = ?`, now, id.String()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording deal end checks: %w", err)
	}
	return nil
}

// The watcher's queries; the indexes of migration 0032 serve them (a test
// checks the plans).
const (
	// sqlExpiredDeals lists the Complete deals not yet ended whose end
	// epoch the head (?) reached.
	sqlExpiredDeals = `SELECT uuid, chain_deal_id FROM market_deals
		WHERE checkpoint = 'Complete' AND ended_at = 0 AND end_epoch <= ? ORDER BY end_epoch`
	// sqlDealsToCheck lists up to ? Complete deals not yet ended, those
	// looked up on chain longest ago first. (The deals past their end
	// epoch were marked expired just before.)
	sqlDealsToCheck = `SELECT uuid, chain_deal_id FROM market_deals
		WHERE checkpoint = 'Complete' AND ended_at = 0 ORDER BY end_checked_at LIMIT ?`
	// sqlUnreleased lists the deals that ended, or failed after AddedPiece,
	// whose piece is not yet released. Its first two terms are those of the
	// partial index market_deals_unreleased, written alike so SQLite uses it.
	sqlUnreleased = `SELECT uuid FROM market_deals WHERE piece_released = 0
		AND (ended_at != 0 OR retry = 'fatal')
		AND (ended_at != 0 OR checkpoint IN ('AddedPiece', 'IndexedAndAnnounced', 'Complete'))`
)

// watchedDeals runs one of the watcher's queries of deals to watch.
func (p *Provider) watchedDeals(ctx context.Context, query string, args ...any) ([]watchedDeal, error) {
	rows, err := p.d.DB.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing active deals: %w", err)
	}
	defer rows.Close()
	var out []watchedDeal
	for rows.Next() {
		var s string
		var id int64
		if err := rows.Scan(&s, &id); err != nil {
			return nil, fmt.Errorf("listing active deals: %w", err)
		}
		u, err := uuid.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("deal row %q: %w", s, err)
		}
		out = append(out, watchedDeal{id: u, dealID: abi.DealID(id)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing active deals: %w", err)
	}
	return out, nil
}

// chainEnd reads an active deal on chain and says why it ended, or "".
// The deal was active (it is Complete), so the chain no longer knowing it
// means it ended; any other error is only an error.
func (p *Provider) chainEnd(ctx context.Context, id abi.DealID, tsk chain.TipSetKey) (string, error) {
	md, err := p.d.Node.StateMarketStorageDeal(ctx, id, tsk)
	if err != nil {
		if isDealNotFound(err, id) {
			return EndRemoved, nil
		}
		return "", fmt.Errorf("reading chain deal %d: %w", id, err)
	}
	if md.State.SlashEpoch > -1 {
		return EndSlashed, nil
	}
	return "", nil
}

// isDealNotFound recognises the "deal N not found" error of Lotus and the
// devnet (over JSON-RPC only the message survives).
func isDealNotFound(err error, id abi.DealID) bool {
	return strings.Contains(err.Error(), fmt.Sprintf("deal %d not found", id))
}

// recordEnd marks a deal ended, once.
func (p *Provider) recordEnd(ctx context.Context, id uuid.UUID, reason string, epoch abi.ChainEpoch) error {
	var changed bool
	err := db.InTx(ctx, p.d.DB, func(tx *sql.Tx) error {
		now := time.Now().UnixNano()
		res, err := tx.ExecContext(ctx, `UPDATE market_deals SET ended_at = ?, end_reason = ?, updated_at = ? WHERE uuid = ? AND ended_at = 0`,
			now, reason, now, id.String())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 {
			return err
		}
		changed = true
		return addLog(ctx, tx, id, "deal ended on chain: %s (noticed at epoch %d)", reason, epoch)
	})
	if err != nil {
		return fmt.Errorf("recording the end of deal %s: %w", id, err)
	}
	if changed {
		p.d.Logf("market: deal %s ended: %s", id, reason)
		p.hook(id, "Ended")
	}
	return nil
}

// releaseEnded releases the piece of every ended deal, and every deal
// failed after AddedPiece, not yet released.
func (p *Provider) releaseEnded(ctx context.Context) error {
	rows, err := p.d.DB.QueryContext(ctx, sqlUnreleased)
	if err != nil {
		return fmt.Errorf("listing ended deals: %w", err)
	}
	var ids []uuid.UUID
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return fmt.Errorf("listing ended deals: %w", err)
		}
		id, err := uuid.Parse(s)
		if err != nil {
			rows.Close()
			return fmt.Errorf("deal row %q: %w", s, err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing ended deals: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := p.releasePiece(ctx, id); err != nil {
			errs = append(errs, err) // the next pass tries again
		}
	}
	return errors.Join(errs...)
}

// releasePiece tells the indexer that an ended or failed deal no longer
// holds its piece, with whether other deals still do, then records it.
func (p *Provider) releasePiece(ctx context.Context, id uuid.UUID) error {
	d, err := p.loadDeal(ctx, id)
	if err != nil {
		return err
	}
	prop := &d.Proposal.Proposal
	text := "piece released (no index to update)"
	if rm, ok := p.d.Indexer.(PieceRemover); ok {
		// Deals holding the piece in a sector; a deal before AddedPiece
		// indexes and announces the piece again when it gets there.
		var holders, announcing int
		err := p.d.DB.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(skip_ipni = 0), 0) FROM market_deals
			WHERE piece_cid = ? AND uuid != ? AND ended_at = 0 AND retry != ?
			AND checkpoint IN (?, ?, ?)`, prop.PieceCID.String(), id.String(), RetryFatal,
			AddedPiece, IndexedAndAnnounced, Complete).Scan(&holders, &announcing)
		if err != nil {
			return fmt.Errorf("finding other deals of piece %s: %w", prop.PieceCID, err)
		}
		reason := d.EndReason
		if reason == "" {
			reason = EndFailed
		}
		req := RemoveRequest{
			IndexRequest: IndexRequest{
				DealUUID: d.UUID, PieceCID: prop.PieceCID, PieceSize: prop.PieceSize, ChainDealID: d.ChainDealID,
				DataRoot: d.DataRoot, Sector: sectorNum(d.Sector), Offset: paddedSize(d.SectorOffset),
				SkipIPNIAnnounce: d.SkipIPNI, KeepUnsealed: d.KeepUnsealed,
			},
			EndReason: reason, KeepIndex: holders > 0, KeepAnnounced: announcing > 0,
		}
		if err := rm.RemovePiece(ctx, req); err != nil {
			return fmt.Errorf("removing piece %s of ended deal %s: %w", prop.PieceCID, id, err)
		}
		switch {
		case holders == 0:
			text = "piece removed from the index and IPNI"
		case announcing == 0:
			text = fmt.Sprintf("piece kept in the index for %d other deal(s), removed from IPNI", holders)
		default:
			text = fmt.Sprintf("piece kept in the index and IPNI for %d other deal(s)", holders)
		}
	}
	err = db.InTx(ctx, p.d.DB, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE market_deals SET piece_released = 1, updated_at = ? WHERE uuid = ?`,
			time.Now().UnixNano(), id.String()); err != nil {
			return err
		}
		return addLog(ctx, tx, id, "%s", text)
	})
	if err != nil {
		return fmt.Errorf("recording the piece release of deal %s: %w", id, err)
	}
	p.hook(id, "PieceReleased")
	return nil
}
