package market

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/db"
)

// Batch states.
const (
	batchSigned = "signed" // recorded, maybe pushed before a crash
	batchPushed = "pushed"
	batchLanded = "landed"
	batchFailed = "failed"
)

func sectorNum(n int64) abi.SectorNumber      { return abi.SectorNumber(max(n, 0)) }
func paddedSize(n uint64) abi.PaddedPieceSize { return abi.PaddedPieceSize(n) }

// queueForPublish puts a transferred deal in the publish queue.
func (p *Provider) queueForPublish(ctx context.Context, d *dealRow, _ *runningDeal) error {
	if d.PublishQueued == 0 {
		if _, err := p.d.DB.ExecContext(ctx, `UPDATE market_deals SET publish_queued = ?, updated_at = ? WHERE uuid = ? AND checkpoint = ?`,
			time.Now().UnixNano(), time.Now().UnixNano(), d.UUID.String(), Transferred); err != nil {
			return fmt.Errorf("queueing for publish: %w", err)
		}
		if err := addLog(ctx, p.d.DB, d.UUID, "waiting for a publish batch"); err != nil {
			return err
		}
	}
	p.wakePublisher()
	return errWait
}

// awaitPublisher leaves a published deal to the publisher, which confirms
// it when its message lands.
func (p *Provider) awaitPublisher(context.Context, *dealRow, *runningDeal) error { return errWait }

func (p *Provider) wakePublisher() {
	select {
	case p.pubWake <- struct{}{}:
	default:
	}
}

// PublishNow publishes the queued deals without waiting for the batch to
// fill or its period to pass.
func (p *Provider) PublishNow(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case p.pubForce <- done:
	case <-ctx.Done():
		return ctx.Err()
	case <-p.ctx.Done():
		return errors.New("market: provider is stopped")
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// publisher batches queued deals into PublishStorageDeals messages and
// follows the batches it sent.
func (p *Provider) publisher(ctx context.Context) {
	// Batches signed or pushed before a restart are followed first.
	if err := p.resumeBatches(ctx); err != nil && ctx.Err() == nil {
		p.d.Logf("market: resuming publish batches: %v", err)
	}
	tick := time.NewTicker(min(p.cfg.PublishMsgPeriod, time.Second))
	defer tick.Stop()
	for {
		var done chan error
		select {
		case <-ctx.Done():
			return
		case <-p.pubWake:
		case <-tick.C:
		case done = <-p.pubForce:
		}
		err := p.publishDue(ctx, done != nil)
		if err != nil && ctx.Err() == nil {
			p.d.Logf("market: publishing deals: %v", err)
		}
		if done != nil {
			done <- err
		}
	}
}

// publishDue sends batches while a full batch is queued, the oldest queued
// deal has waited PublishMsgPeriod, or force is set.
func (p *Provider) publishDue(ctx context.Context, force bool) error {
	for {
		rows, err := p.d.DB.QueryContext(ctx, `SELECT uuid, publish_queued FROM market_deals
			WHERE publish_queued > 0 AND checkpoint = ? AND retry IN ('', 'auto') ORDER BY publish_queued, uuid LIMIT ?`,
			Transferred, p.cfg.MaxDealsPerPublishMsg)
		if err != nil {
			return fmt.Errorf("reading the publish queue: %w", err)
		}
		var ids []uuid.UUID
		var oldest int64
		for rows.Next() {
			var s string
			var q int64
			if err := rows.Scan(&s, &q); err != nil {
				rows.Close()
				return err
			}
			id, err := uuid.Parse(s)
			if err != nil {
				rows.Close()
				return err
			}
			if oldest == 0 {
				oldest = q
			}
			ids = append(ids, id)
		}
		rows.Close()
		if len(ids) == 0 {
			return nil
		}
		due := force || len(ids) >= p.cfg.MaxDealsPerPublishMsg || time.Since(time.Unix(0, oldest)) >= p.cfg.PublishMsgPeriod
		if !due {
			return nil
		}
		if err := p.publishBatch(ctx, ids); err != nil {
			return err
		}
		force = false // one forced batch; full ones continue
		if len(ids) < p.cfg.MaxDealsPerPublishMsg {
			return nil
		}
	}
}

// publishBatch checks each deal, signs one message for those that pass,
// records it, pushes it and starts following it.
func (p *Provider) publishBatch(ctx context.Context, ids []uuid.UUID) error {
	head, err := p.d.Node.ChainHead(ctx)
	if err != nil {
		return fmt.Errorf("reading chain head: %w", err)
	}
	var deals []*dealRow
	var params market.PublishStorageDealsParams
	for _, id := range ids {
		d, err := p.loadDeal(ctx, id)
		if err != nil {
			return err
		}
		prop := &d.Proposal.Proposal
		// The deal must still be publishable: not started, and with room to
		// seal before it starts.
		if head.Height()+p.cfg.StartEpochSealingBuffer >= prop.StartEpoch {
			if err := p.failDeal(ctx, id, fmt.Sprintf("the deal's start epoch %d is too close (current epoch %d) to publish and seal it", prop.StartEpoch, head.Height())); err != nil {
				return err
			}
			continue
		}
		deals = append(deals, d)
		params.Deals = append(params.Deals, d.Proposal)
	}
	if len(deals) == 0 {
		return nil
	}
	var enc bytes.Buffer
	if err := params.MarshalCBOR(&enc); err != nil {
		return fmt.Errorf("encoding publish params: %w", err)
	}

	p.signMu.Lock()
	defer p.signMu.Unlock()
	msg := &chain.Message{
		To:     builtin.StorageMarketActorAddr,
		From:   p.worker,
		Value:  big.Zero(),
		Method: builtin.MethodsMarket.PublishStorageDeals,
		Params: enc.Bytes(),
	}
	est, err := p.d.Node.GasEstimateMessageGas(ctx, msg, &chain.MessageSendSpec{MaxFee: p.cfg.MaxPublishDealsFee}, chain.TipSetKey{})
	if err != nil {
		return fmt.Errorf("estimating publish gas: %w", err)
	}
	msg = est
	if msg.Nonce, err = p.d.Node.MpoolGetNonce(ctx, p.worker); err != nil {
		return fmt.Errorf("reading worker nonce: %w", err)
	}
	smsg, mcid, err := p.d.SignMessage(ctx, msg)
	if err != nil {
		return fmt.Errorf("signing publish message: %w", err)
	}
	sjson, err := smsg.Serialize()
	if err != nil {
		return fmt.Errorf("encoding signed publish message: %w", err)
	}
	dealIDs := make([]string, len(deals))
	for i, d := range deals {
		dealIDs[i] = d.UUID.String()
	}
	djson, _ := json.Marshal(dealIDs)

	// Written down before it is pushed: after a crash the batch is looked
	// up and pushed again as the same signed message, never re-signed.
	var batchID int64
	err = db.InTx(ctx, p.d.DB, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO market_publish_batches (created_at, msg_cid, signed_msg, deals, state) VALUES (?, ?, ?, ?, ?)`,
			time.Now().UnixNano(), mcid.String(), sjson, string(djson), batchSigned)
		if err != nil {
			return fmt.Errorf("recording publish batch: %w", err)
		}
		if batchID, err = res.LastInsertId(); err != nil {
			return err
		}
		for _, d := range deals {
			if err := p.setCheckpointTx(ctx, tx, d.UUID, Published, `publish_queued = 0, batch_id = ?, publish_cid = ?`, batchID, mcid.String()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range deals {
		p.hook(d.UUID, Published.String())
	}
	p.hook(uuid.Nil, "PublishSigned")
	p.d.Logf("market: publishing %d deal(s) in message %s", len(deals), mcid)
	p.followBatch(batchID)
	return nil
}

type batchRow struct {
	id    int64
	cid   cid.Cid
	smsg  chain.SignedMessage
	deals []uuid.UUID
	state string
}

func (p *Provider) loadBatch(ctx context.Context, id int64) (*batchRow, error) {
	var b batchRow
	var c, ds string
	var sm []byte
	b.id = id
	err := p.d.DB.QueryRowContext(ctx, `SELECT msg_cid, signed_msg, deals, state FROM market_publish_batches WHERE id = ?`, id).Scan(&c, &sm, &ds, &b.state)
	if err != nil {
		return nil, fmt.Errorf("reading publish batch %d: %w", id, err)
	}
	if b.cid, err = cid.Decode(c); err != nil {
		return nil, fmt.Errorf("publish batch %d: %w", id, err)
	}
	if err := b.smsg.UnmarshalCBOR(bytes.NewReader(sm)); err != nil {
		return nil, fmt.Errorf("publish batch %d message: %w", id, err)
	}
	var ss []string
	if err := json.Unmarshal([]byte(ds), &ss); err != nil {
		return nil, fmt.Errorf("publish batch %d deals: %w", id, err)
	}
	for _, s := range ss {
		u, err := uuid.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("publish batch %d deals: %w", id, err)
		}
		b.deals = append(b.deals, u)
	}
	return &b, nil
}

func (p *Provider) resumeBatches(ctx context.Context) error {
	rows, err := p.d.DB.QueryContext(ctx, `SELECT id FROM market_publish_batches WHERE state IN (?, ?)`, batchSigned, batchPushed)
	if err != nil {
		return err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		p.followBatch(id)
	}
	return rows.Err()
}

// followBatch pushes (if needed) and waits for a batch in its own goroutine,
// retrying until the provider stops.
func (p *Provider) followBatch(id int64) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		backoff := time.Second
		for p.ctx.Err() == nil {
			err := p.settleBatch(p.ctx, id)
			if err == nil || p.ctx.Err() != nil {
				return
			}
			p.d.Logf("market: publish batch %d: %v (retrying in %s)", id, err, backoff)
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Minute)
		}
	}()
}

// settleBatch gets a batch's message on chain and applies its result.
func (p *Provider) settleBatch(ctx context.Context, id int64) error {
	b, err := p.loadBatch(ctx, id)
	if err != nil {
		return err
	}
	if b.state == batchSigned {
		found, err := p.d.Node.StateSearchMsg(ctx, chain.TipSetKey{}, b.cid, -1, true)
		if err != nil {
			return fmt.Errorf("looking up publish message %s: %w", b.cid, err)
		}
		if found == nil {
			if _, err := p.d.Node.MpoolPush(ctx, &b.smsg); err != nil && !alreadyKnown(err) {
				// Refused: if another message took its nonce (the worker is
				// shared with sealing), this one can never land and the
				// deals go back to the queue to be signed again.
				next, nerr := p.d.Node.MpoolGetNonce(ctx, b.smsg.Message.From)
				if nerr == nil && next > b.smsg.Message.Nonce {
					if again, serr := p.d.Node.StateSearchMsg(ctx, chain.TipSetKey{}, b.cid, -1, true); serr == nil && again == nil {
						return p.requeueBatch(ctx, b, fmt.Sprintf("push refused (%v) and nonce %d taken by another message", err, b.smsg.Message.Nonce))
					}
				}
				return fmt.Errorf("pushing publish message %s: %w", b.cid, err)
			}
		}
		if _, err := p.d.DB.ExecContext(ctx, `UPDATE market_publish_batches SET state = ? WHERE id = ?`, batchPushed, id); err != nil {
			return fmt.Errorf("recording push of %s: %w", b.cid, err)
		}
		p.hook(uuid.Nil, "PublishPushed")
	}
	lookup, err := p.d.Node.StateWaitMsg(ctx, b.cid, p.cfg.PublishConfidence, -1, true)
	if err != nil {
		return fmt.Errorf("waiting for publish message %s: %w", b.cid, err)
	}
	final := b.cid
	if lookup.Message.Defined() {
		final = lookup.Message
	}
	if code := lookup.Receipt.ExitCode; code != 0 {
		reason := fmt.Sprintf("publish message %s failed on chain with exit code %d", final, code)
		for _, d := range b.deals {
			if err := p.failDeal(ctx, d, reason); err != nil {
				return err
			}
		}
		_, err := p.d.DB.ExecContext(ctx, `UPDATE market_publish_batches SET state = ?, error = ? WHERE id = ?`, batchFailed, reason, id)
		return err
	}
	var ret market.PublishStorageDealsReturn
	if err := ret.UnmarshalCBOR(bytes.NewReader(lookup.Receipt.Return)); err != nil {
		return fmt.Errorf("decoding publish return of %s: %w", final, err)
	}
	valid, err := ret.ValidDeals.All(uint64(len(b.deals)))
	if err != nil {
		return fmt.Errorf("reading valid deals of %s: %w", final, err)
	}
	if len(valid) != len(ret.IDs) {
		return fmt.Errorf("publish return of %s has %d deal IDs for %d valid deals", final, len(ret.IDs), len(valid))
	}
	dealID := make(map[int]abi.DealID, len(valid))
	for k, i := range valid {
		if i >= uint64(len(b.deals)) {
			return fmt.Errorf("publish return of %s marks deal %d valid in a batch of %d", final, i, len(b.deals))
		}
		dealID[int(i)] = ret.IDs[k]
	}
	var confirmed, invalid []uuid.UUID
	err = db.InTx(ctx, p.d.DB, func(tx *sql.Tx) error {
		for i, d := range b.deals {
			var cp Checkpoint
			var retry RetryState
			if err := tx.QueryRowContext(ctx, `SELECT checkpoint, retry FROM market_deals WHERE uuid = ?`, d.String()).Scan(&cp, &retry); err != nil {
				return err
			}
			if err := releaseTagsTx(ctx, tx, d, true, false); err != nil {
				return err
			}
			if cp != Published || retry == RetryFatal {
				continue // failed by an operator meanwhile, or already confirmed
			}
			id, ok := dealID[i]
			if !ok {
				invalid = append(invalid, d)
				continue
			}
			if err := p.setCheckpointTx(ctx, tx, d, PublishConfirmed, `chain_deal_id = ?, publish_cid = ?`, int64(id), final.String()); err != nil {
				return err
			}
			confirmed = append(confirmed, d)
		}
		_, err := tx.ExecContext(ctx, `UPDATE market_publish_batches SET state = ? WHERE id = ?`, batchLanded, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("recording publish result of %s: %w", final, err)
	}
	for _, d := range invalid {
		if err := p.failDeal(ctx, d, fmt.Sprintf("the market actor rejected the deal when message %s published it", final)); err != nil {
			return err
		}
	}
	for _, d := range confirmed {
		p.hook(d, PublishConfirmed.String())
		p.kick(d)
	}
	return nil
}

// alreadyKnown reports whether a push failed only because the pool has the
// message already.
func alreadyKnown(err error) bool {
	s := err.Error()
	return strings.Contains(s, "already in mpool") || strings.Contains(s, "already known") || strings.Contains(s, "already exists")
}

// requeueBatch abandons a batch whose message can never land and puts its
// deals back in the publish queue.
func (p *Provider) requeueBatch(ctx context.Context, b *batchRow, reason string) error {
	now := time.Now().UnixNano()
	err := db.InTx(ctx, p.d.DB, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE market_publish_batches SET state = ?, error = ? WHERE id = ?`, batchFailed, reason, b.id); err != nil {
			return err
		}
		for _, d := range b.deals {
			res, err := tx.ExecContext(ctx, `UPDATE market_deals SET checkpoint = ?, publish_queued = ?, batch_id = NULL, publish_cid = '', updated_at = ?
				WHERE uuid = ? AND checkpoint = ? AND retry != 'fatal'`, Transferred, now, now, d.String(), Published)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				if err := addLog(ctx, tx, d, "publish message %s abandoned (%s); back in the publish queue", b.cid, reason); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("re-queueing deals of publish batch %d: %w", b.id, err)
	}
	p.d.Logf("market: publish message %s abandoned: %s", b.cid, reason)
	p.wakePublisher()
	return nil
}
