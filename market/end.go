package market

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"

	"github.com/ferry-fil/ferry/chain"
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

// endWatcher watches Complete deals until they end on chain and releases
// the pieces of ended deals and of deals failed after AddedPiece. The
// provider starts it (run) and stops it (by ending run's context).
type endWatcher struct {
	store   *store
	chain   Chain
	miner   address.Address // whose claims direct deals have
	remover PieceRemover    // nil: pieces are released without an index to update
	// poll is how often expiry is checked; full how often active deals are
	// looked up on chain, perPass of them at most.
	poll, full time.Duration
	perPass    int
	logf       func(format string, args ...any)
	hook       func(id uuid.UUID, point string)
	// leads reports whether this node watches now (one node of a cluster
	// does); nil: always.
	leads func(ctx context.Context) bool
}

// run runs end checks until ctx ends.
func (w *endWatcher) run(ctx context.Context) {
	t := time.NewTicker(w.poll)
	defer t.Stop()
	var lastFull time.Time
	for {
		full := time.Since(lastFull) >= w.full
		if w.leads != nil && !w.leads(ctx) {
			// Another node of the cluster watches.
		} else if err := w.check(ctx, full); err != nil {
			if ctx.Err() != nil {
				return
			}
			w.logf("market: watching deal ends: %v", err)
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

// check records the deals that ended, reading each one's chain state
// when full, then releases the pieces of ended deals.
func (w *endWatcher) check(ctx context.Context, full bool) error {
	head, err := w.chain.ChainHead(ctx)
	if err != nil {
		return fmt.Errorf("reading chain head: %w", err)
	}
	now := head.Height()
	expired, err := w.store.expired(ctx, now)
	if err != nil {
		return err
	}
	for _, d := range expired {
		if err := w.recordEnd(ctx, d.id, EndExpired, now); err != nil {
			return err
		}
	}
	if full {
		active, err := w.store.toCheck(ctx, w.perPass)
		if err != nil {
			return err
		}
		var errs []error
		var checked []uuid.UUID
		for _, d := range active {
			reason, err := w.chainEnd(ctx, d, head.Key())
			if err == nil {
				checked = append(checked, d.id)
				if reason != "" {
					err = w.recordEnd(ctx, d.id, reason, now)
				}
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				errs = append(errs, err) // the other deals are still checked
			}
		}
		if err := w.store.markEndChecked(ctx, checked); err != nil {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			return errors.Join(err, w.releaseEnded(ctx))
		}
	}
	return w.releaseEnded(ctx)
}

// chainEnd reads an active deal on chain and says why it ended, or "".
// The deal was active (it is Complete), so the chain no longer knowing it
// (its chain deal, or a direct deal's claim) means it ended; any other
// error is only an error.
func (w *endWatcher) chainEnd(ctx context.Context, d watchedDeal, tsk chain.TipSetKey) (string, error) {
	if d.kind == KindDirect {
		cl, err := w.chain.StateGetClaim(ctx, w.miner, d.claim, tsk)
		if err != nil {
			return "", fmt.Errorf("reading claim %d: %w", d.claim, err)
		}
		if cl == nil {
			return EndRemoved, nil
		}
		return "", nil
	}
	id := d.dealID
	md, err := w.chain.StateMarketStorageDeal(ctx, id, tsk)
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
func (w *endWatcher) recordEnd(ctx context.Context, id uuid.UUID, reason string, epoch abi.ChainEpoch) error {
	changed, err := w.store.recordEnd(ctx, id, reason, epoch)
	if err != nil {
		return err
	}
	if changed {
		w.logf("market: deal %s ended: %s", id, reason)
		w.hook(id, "Ended")
	}
	return nil
}

// releaseEnded releases the piece of every ended deal, and every deal
// failed after AddedPiece, not yet released.
func (w *endWatcher) releaseEnded(ctx context.Context) error {
	ids, err := w.store.unreleased(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := w.releasePiece(ctx, id); err != nil {
			errs = append(errs, err) // the next pass tries again
		}
	}
	return errors.Join(errs...)
}

// releasePiece tells the indexer that an ended or failed deal no longer
// holds its piece, with whether other deals still do, then records it.
func (w *endWatcher) releasePiece(ctx context.Context, id uuid.UUID) error {
	d, err := w.store.deal(ctx, id)
	if err != nil {
		return err
	}
	text := "piece released (no index to update)"
	if w.remover != nil {
		// Deals holding the piece in a sector; a deal before AddedPiece
		// indexes and announces the piece again when it gets there.
		holders, announcing, err := w.store.pieceHolders(ctx, d.PieceCID, id)
		if err != nil {
			return err
		}
		reason := d.EndReason
		if reason == "" {
			reason = EndFailed
		}
		req := RemoveRequest{IndexRequest: d.indexRequest(), EndReason: reason, KeepIndex: holders > 0, KeepAnnounced: announcing > 0}
		if err := w.remover.RemovePiece(ctx, req); err != nil {
			return fmt.Errorf("removing piece %s of ended deal %s: %w", d.PieceCID, id, err)
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
	if err := w.store.markReleased(ctx, id, text); err != nil {
		return err
	}
	w.hook(id, "PieceReleased")
	return nil
}
