package market

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"

	"github.com/ferry-fil/ferry/chain"
)

// publisher batches transferred deals into PublishStorageDeals messages,
// sends each through the MessageSender as the batch's message id, and
// confirms the deals when it lands. It runs one loop, and one goroutine
// per batch in flight; the provider starts it (run) and stops it (by
// ending run's context).
//
// A batch is recorded, with its deals moved to Published, before its
// message is sent: after a crash the batch is sent again under the same id,
// which the sender recognises, so a publish message is never sent twice.
type publisher struct {
	cfg    *Config
	store  *store
	chain  Chain
	sender MessageSender
	worker address.Address
	logf   func(format string, args ...any)
	hook   func(id uuid.UUID, point string)
	// fail fails a deal for good (the provider's failDeal).
	fail func(ctx context.Context, id uuid.UUID, reason string) error
	// confirmed is told each deal that reached PublishConfirmed.
	confirmed func(id uuid.UUID)
	// leads reports whether this node publishes now (one node of a
	// cluster does); nil: always.
	leads func(ctx context.Context) bool

	mu        sync.Mutex
	following map[int64]bool // the batches a goroutine follows

	wake    chan struct{}
	force   chan chan error
	stopped chan struct{} // closed when run returns
	wg      sync.WaitGroup
}

func newPublisher(p *publisher) *publisher {
	p.wake = make(chan struct{}, 1)
	p.force = make(chan chan error)
	p.stopped = make(chan struct{})
	p.following = map[int64]bool{}
	return p
}

// queueForPublish puts a transferred deal in the publish queue.
func (p *Provider) queueForPublish(ctx context.Context, d *dealRow, _ *runningDeal) error {
	if d.PublishQueued == 0 {
		if err := p.store.queueForPublish(ctx, d.UUID); err != nil {
			return err
		}
	}
	p.pub.wakeUp()
	return errWait
}

// awaitPublisher leaves a published deal to the publisher, which confirms
// it when its message lands. A deal still Published when its batch has
// landed was rejected by the market actor (the publisher stopped before
// failing it); one whose batch failed fails with it.
func (p *Provider) awaitPublisher(ctx context.Context, d *dealRow, _ *runningDeal) error {
	if !d.BatchID.Valid {
		return errWait
	}
	bt, err := p.store.batch(ctx, d.BatchID.Int64)
	if err != nil {
		return err
	}
	switch bt.state {
	case batchLanded:
		// d was read before the batch was: the landing may have confirmed
		// it in between (the landing records both at once).
		cp, err := p.store.checkpoint(ctx, d.UUID)
		if err != nil {
			return err
		}
		if cp != Published {
			return nil // moved on: read it again
		}
		return fatalf("the market actor rejected the deal when message %s published it", bt.msgCid)
	case batchFailed:
		return fatalError{errors.New(bt.err)}
	}
	return errWait
}

// wakeUp makes the publisher look at its queue now.
func (b *publisher) wakeUp() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// publishNow publishes the queued deals without waiting for the batch to
// fill or its period to pass.
func (b *publisher) publishNow(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case b.force <- done:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.stopped:
		return errors.New("market: provider is stopped")
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run publishes until ctx ends, then waits for the batches it follows.
// In a cluster it publishes only while this node leads; the node that
// starts to lead first follows the batches sent before (by itself before
// a restart, or by the node that led before).
func (b *publisher) run(ctx context.Context) {
	defer close(b.stopped)
	defer b.wg.Wait()
	tick := time.NewTicker(min(b.cfg.PublishMsgPeriod, time.Second))
	defer tick.Stop()
	leading := false
	for first := true; ; first = false {
		var done chan error
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-b.wake:
			case <-tick.C:
			case done = <-b.force:
			}
		}
		if b.leads != nil && !b.leads(ctx) {
			leading = false
			if done != nil {
				done <- errNotLeader
			}
			continue
		}
		if !leading {
			leading = true
			b.resume(ctx)
			if first {
				continue // as before a cluster: the queue waits for the first tick
			}
		}
		err := b.publishDue(ctx, done != nil)
		if err != nil && ctx.Err() == nil {
			b.logf("market: publishing deals: %v", err)
		}
		if done != nil {
			done <- err
		}
	}
}

// publishDue sends batches while a full batch is queued, the oldest queued
// deal has waited PublishMsgPeriod, or force is set.
func (b *publisher) publishDue(ctx context.Context, force bool) error {
	for {
		ids, oldest, err := b.store.publishQueue(ctx, b.cfg.MaxDealsPerPublishMsg)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		due := force || len(ids) >= b.cfg.MaxDealsPerPublishMsg || time.Since(oldest) >= b.cfg.PublishMsgPeriod
		if !due {
			return nil
		}
		if err := b.publishBatch(ctx, ids); err != nil {
			return err
		}
		force = false // one forced batch; full ones continue
		if len(ids) < b.cfg.MaxDealsPerPublishMsg {
			return nil
		}
	}
}

// publishBatch checks each deal, records a batch of those that pass and
// starts sending it.
func (b *publisher) publishBatch(ctx context.Context, ids []uuid.UUID) error {
	check, err := b.precheck(ctx)
	if err != nil {
		return err
	}
	var deals []uuid.UUID
	for _, id := range ids {
		d, err := b.store.deal(ctx, id)
		if err != nil {
			return err
		}
		reason, err := check(&d.Proposal.Proposal)
		if err != nil {
			return err
		}
		if reason != "" {
			if err := b.fail(ctx, id, reason); err != nil {
				return err
			}
			continue
		}
		deals = append(deals, id)
	}
	if len(deals) == 0 {
		return nil
	}
	batchID, err := b.store.recordBatch(ctx, uuid.New(), deals)
	if err != nil {
		return err
	}
	for _, d := range deals {
		b.hook(d, Published.String())
	}
	b.logf("market: publishing %d deal(s) in batch %d", len(deals), batchID)
	b.follow(ctx, batchID)
	return nil
}

// precheck returns a check of deals against the chain as it is now, as
// Boost's publisher checks each deal just before it builds a batch, so a
// deal that can no longer be published fails alone instead of sinking the
// message: its start epoch must leave time to seal, and the client's and
// the provider's available market escrow must cover it, on top of the
// deals of the batch checked before it. The check returns why a deal
// cannot be published, or "".
func (b *publisher) precheck(ctx context.Context) (func(prop *market.DealProposal) (string, error), error) {
	head, err := b.chain.ChainHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading chain head: %w", err)
	}
	avail := map[address.Address]abi.TokenAmount{} // what is left of each escrow
	escrow := func(a address.Address) (abi.TokenAmount, error) {
		if v, ok := avail[a]; ok {
			return v, nil
		}
		bal, err := b.chain.StateMarketBalance(ctx, a, head.Key())
		if err != nil {
			return big.Zero(), fmt.Errorf("reading the market balance of %s: %w", a, err)
		}
		avail[a] = big.Sub(bal.Escrow, bal.Locked)
		return avail[a], nil
	}
	return func(prop *market.DealProposal) (string, error) {
		if head.Height()+b.cfg.StartEpochSealingBuffer >= prop.StartEpoch {
			return fmt.Sprintf("the deal's start epoch %d is too close (current epoch %d) to publish and seal it", prop.StartEpoch, head.Height()), nil
		}
		client, err := escrow(prop.Client)
		if err != nil {
			return "", err
		}
		provider, err := escrow(b.cfg.Miner)
		if err != nil {
			return "", err
		}
		if need := prop.ClientBalanceRequirement(); client.LessThan(need) {
			return fmt.Sprintf("the client's available market escrow %s no longer covers the %s the deal needs", client, need), nil
		}
		if provider.LessThan(prop.ProviderCollateral) {
			return fmt.Sprintf("the provider's available market escrow %s no longer covers the deal's collateral %s", provider, prop.ProviderCollateral), nil
		}
		avail[prop.Client] = big.Sub(client, prop.ClientBalanceRequirement())
		avail[b.cfg.Miner] = big.Sub(provider, prop.ProviderCollateral)
		return "", nil
	}, nil
}

// resume follows the batches sent and not landed that no goroutine
// follows.
func (b *publisher) resume(ctx context.Context) {
	ids, err := b.store.sendingBatches(ctx)
	if err != nil && ctx.Err() == nil {
		b.logf("market: resuming publish batches: %v", err)
	}
	for _, id := range ids {
		b.follow(ctx, id)
	}
}

// follow sends a batch and waits for it in its own goroutine, retrying
// until ctx ends; a batch followed already is left to its goroutine.
func (b *publisher) follow(ctx context.Context, id int64) {
	b.mu.Lock()
	if b.following[id] {
		b.mu.Unlock()
		return
	}
	b.following[id] = true
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer func() {
			b.mu.Lock()
			delete(b.following, id)
			b.mu.Unlock()
		}()
		backoff := time.Second
		for ctx.Err() == nil {
			err := b.settle(ctx, id)
			if err == nil || ctx.Err() != nil {
				return
			}
			b.logf("market: publish batch %d: %v (retrying in %s)", id, err, backoff)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, time.Minute)
		}
	}()
}

// message builds the PublishStorageDeals message of a batch from its deals'
// proposals, in batch order.
func (b *publisher) message(ctx context.Context, bt *batchRow) (*chain.Message, error) {
	var params market.PublishStorageDealsParams
	for _, id := range bt.deals {
		d, err := b.store.deal(ctx, id)
		if err != nil {
			return nil, err
		}
		params.Deals = append(params.Deals, d.Proposal)
	}
	var enc bytes.Buffer
	if err := params.MarshalCBOR(&enc); err != nil {
		return nil, fmt.Errorf("encoding publish params: %w", err)
	}
	return &chain.Message{
		To:     builtin.StorageMarketActorAddr,
		From:   b.worker,
		Value:  big.Zero(),
		Method: builtin.MethodsMarket.PublishStorageDeals,
		Params: enc.Bytes(),
	}, nil
}

// send sends a batch's message (again, after a restart: the sender knows
// it by its id) and waits for it to execute.
func (b *publisher) send(ctx context.Context, bt *batchRow) (*chain.MsgLookup, error) {
	if bt.msgID == uuid.Nil {
		// Signed and pushed before batches had message ids: follow it on
		// chain.
		lookup, err := b.chain.StateWaitMsg(ctx, bt.msgCid, b.cfg.PublishConfidence, -1, true)
		if err != nil {
			return nil, fmt.Errorf("waiting for publish message %s: %w", bt.msgCid, err)
		}
		return lookup, nil
	}
	msg, err := b.message(ctx, bt)
	if err != nil {
		return nil, err
	}
	sent, err := b.sender.Send(ctx, bt.msgID, msg, &chain.MessageSendSpec{MaxFee: b.cfg.MaxPublishDealsFee})
	if err != nil {
		return nil, fmt.Errorf("sending publish message: %w", err)
	}
	if !bt.msgCid.Equals(sent) {
		if err := b.store.setBatchSent(ctx, bt, sent); err != nil {
			return nil, err
		}
		b.hook(uuid.Nil, "PublishSent")
	}
	lookup, err := b.sender.Wait(ctx, bt.msgID, b.cfg.PublishConfidence)
	if err != nil {
		return nil, fmt.Errorf("waiting for publish message %s: %w", sent, err)
	}
	return lookup, nil
}

// settle gets a batch's message on chain and applies its result.
func (b *publisher) settle(ctx context.Context, id int64) error {
	bt, err := b.store.batch(ctx, id)
	if err != nil {
		return err
	}
	if bt.state != batchSending {
		return nil
	}
	lookup, err := b.send(ctx, bt)
	if err != nil {
		return err
	}
	final := lookup.Message
	if code := lookup.Receipt.ExitCode; code != 0 {
		reason := fmt.Sprintf("publish message %s failed on chain with exit code %d", final, code)
		for _, d := range bt.deals {
			if err := b.fail(ctx, d, reason); err != nil {
				return err
			}
		}
		return b.store.failBatch(ctx, id, reason)
	}
	var ret market.PublishStorageDealsReturn
	if err := ret.UnmarshalCBOR(bytes.NewReader(lookup.Receipt.Return)); err != nil {
		return fmt.Errorf("decoding publish return of %s: %w", final, err)
	}
	valid, err := ret.ValidDeals.All(uint64(len(bt.deals)))
	if err != nil {
		return fmt.Errorf("reading valid deals of %s: %w", final, err)
	}
	if len(valid) != len(ret.IDs) {
		return fmt.Errorf("publish return of %s has %d deal IDs for %d valid deals", final, len(ret.IDs), len(valid))
	}
	dealIDs := make(map[int]abi.DealID, len(valid))
	for k, i := range valid {
		if i >= uint64(len(bt.deals)) {
			return fmt.Errorf("publish return of %s marks deal %d valid in a batch of %d", final, i, len(bt.deals))
		}
		dealIDs[int(i)] = ret.IDs[k]
	}
	confirmed, invalid, err := b.store.landBatch(ctx, bt, final, dealIDs)
	if err != nil {
		return err
	}
	// A crash here leaves the invalid deals Published in a landed batch,
	// which their step (awaitPublisher) fails at the next start.
	for _, d := range invalid {
		if err := b.fail(ctx, d, fmt.Sprintf("the market actor rejected the deal when message %s published it", final)); err != nil {
			return err
		}
	}
	for _, d := range confirmed {
		b.hook(d, PublishConfirmed.String())
		b.confirmed(d)
	}
	return nil
}
