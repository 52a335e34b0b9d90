package market

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
)

// This file is how the market shares its work with other ferryd nodes on
// one database (Deps.Leases, Deps.Does). With neither set, this process
// does all of it.
//
// A deal is worked on by the node holding its lease ("deal/<uuid>"): a
// deal's goroutine takes the lease before it reads the deal's row and
// gives it up when it stops, and does only the steps Deps.Does gives this
// node; a step it does not do is left for a node that does. Every node
// looks, every poll interval, for unfinished deals at its steps that no
// live node holds (their node died, or another node finished its step
// and left the next one) and takes them. The publisher and the deal-end
// watcher run on one node at a time, the holder of "market.publisher"
// and "market.ends", among the nodes that do the publish step.

// Lease names.
const (
	leasePublisher = "market.publisher"
	leaseEnds      = "market.ends"
)

func dealLease(id uuid.UUID) string { return "deal/" + id.String() }

// does reports whether this node does the step from cp.
func (p *Provider) does(cp Checkpoint) bool { return p.d.Does == nil || p.d.Does(cp) }

// holdDeal takes the deal's lease; false when another node works on it.
func (p *Provider) holdDeal(ctx context.Context, id uuid.UUID) bool {
	if p.d.Leases == nil {
		return true
	}
	ok, err := p.d.Leases.Acquire(ctx, dealLease(id))
	if err != nil && ctx.Err() == nil {
		p.d.Logf("market: deal %s: %v", id, err)
	}
	return ok && err == nil
}

// letGoDeal gives the deal's lease up.
func (p *Provider) letGoDeal(id uuid.UUID) {
	if p.d.Leases == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.d.Leases.Release(ctx, dealLease(id)); err != nil {
		p.d.Logf("market: deal %s: %v", id, err)
	}
}

// leads reports whether this node runs the singleton named lease now,
// taking or renewing its lease (always, without a cluster).
func (p *Provider) leads(ctx context.Context, lease string) bool {
	if p.d.Leases == nil {
		return true
	}
	if !p.does(Transferred) {
		return false
	}
	ok, err := p.d.Leases.Acquire(ctx, lease)
	if err != nil && ctx.Err() == nil {
		p.d.Logf("market: %v", err)
	}
	return ok && err == nil
}

// errNotLeader: the publisher runs on another node.
var errNotLeader = errors.New("market: the publisher runs on another node of the cluster (the holder of lease " + leasePublisher + ")")

// claim takes, every poll interval, the unfinished deals at this node's
// steps that no live node holds, and runs them.
func (p *Provider) claim(ctx context.Context) {
	t := time.NewTicker(p.pollEvery)
	defer t.Stop()
	var mine []Checkpoint
	for _, st := range pipeline() {
		if st.advance != nil && p.does(st.checkpoint) {
			mine = append(mine, st.checkpoint)
		}
	}
	for pass := 0; ; pass++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if pass%100 == 0 {
			p.sweepStaging(ctx)
		}
		ids, err := p.store.claimable(ctx, mine, p.d.Leases, 100)
		if err != nil {
			if ctx.Err() == nil {
				p.d.Logf("market: looking for deals to take: %v", err)
			}
			continue
		}
		for _, id := range ids {
			p.kick(id)
		}
	}
}

// sweepStaging removes the files of this node's staging directory whose
// deal no longer needs them: its piece is in a sector (added by another
// node, which read the file from here) and indexed, or it failed. The node that adds a
// piece removes its own file at once; this catches the files it read from
// others.
func (p *Provider) sweepStaging(ctx context.Context) {
	entries, err := os.ReadDir(p.cfg.StagingDir)
	if err != nil {
		return // nothing staged yet
	}
	byDeal := map[uuid.UUID]string{}
	for _, e := range entries {
		id, err := uuid.Parse(strings.TrimSuffix(e.Name(), filepath.Ext(e.Name())))
		if err == nil && !e.IsDir() {
			byDeal[id] = filepath.Join(p.cfg.StagingDir, e.Name())
		}
	}
	if len(byDeal) == 0 {
		return
	}
	ids := make([]uuid.UUID, 0, len(byDeal))
	for id := range byDeal {
		ids = append(ids, id)
	}
	done, err := p.store.stagingDone(ctx, ids)
	if err != nil {
		if ctx.Err() == nil {
			p.d.Logf("market: sweeping the staging directory: %v", err)
		}
		return
	}
	for _, id := range done {
		if err := os.Remove(byDeal[id]); err != nil && !errors.Is(err, os.ErrNotExist) {
			p.d.Logf("market: removing staging file of deal %s: %v", id, err)
		}
	}
}
