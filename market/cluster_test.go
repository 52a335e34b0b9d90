package market

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/sender"
	"github.com/ferry-fil/ferry/cluster"
	"github.com/ferry-fil/ferry/wire"
)

// dyingLeases are the leases of a node that can be killed: once dead it
// takes, renews and gives up nothing, as a killed process, so the leases
// it held stay in the database until they expire.
type dyingLeases struct {
	*cluster.Member
	dead atomic.Bool
}

func (l *dyingLeases) Acquire(ctx context.Context, name string) (bool, error) {
	if l.dead.Load() {
		return false, nil
	}
	return l.Member.Acquire(ctx, name)
}

func (l *dyingLeases) Release(ctx context.Context, name string) error {
	if l.dead.Load() {
		return nil
	}
	return l.Member.Release(ctx, name)
}

// testClock is the cluster's clock, moved by the test.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Two nodes on one database: node a admits six deals and dies while
// downloading them (its leases left behind, as a SIGKILL leaves them).
// Once a's leases expire, node b takes every deal over from its
// checkpoint, downloads into its own staging directory and completes
// them: each deal in one publish message (of at most three), one piece
// write per deal.
func TestClusterTakesOverADeadNode(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	h := newHarness(t, dir, func(c *Config) { c.MaxDealsPerPublishMsg = 3; c.NodeID = "a" })
	clk := &testClock{now: time.Now()}
	join := func(id string) *cluster.Member {
		m, err := cluster.Join(ctx, cluster.Config{DB: h.deps.DB, NodeID: id, LeaseTimeout: time.Minute, Heartbeat: time.Hour,
			Now: clk.Now, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	a := &dyingLeases{Member: join("a")}
	h.deps.Leases = a
	block := make(chan struct{})
	h.dl.block = block
	h.start()
	var ids []uuid.UUID
	for i := range 6 {
		params := h.deal(fmt.Sprintf("c%d.car", i), 2000+i, int64(100+i), nil)
		if r := h.p.Propose(ctx, params, "cluster-test"); !r.Accepted {
			t.Fatal(r.Message)
		}
		ids = append(ids, params.DealUUID)
	}
	for {
		h.dl.mu.Lock()
		started := h.dl.calls
		h.dl.mu.Unlock()
		if started == len(ids) {
			break
		}
		time.Sleep(time.Millisecond)
	}

	// a dies mid-download.
	a.dead.Store(true)
	h.p.Close()
	h.dl.mu.Lock()
	h.dl.block = nil
	h.dl.mu.Unlock()
	close(block)

	b := join("b")
	bcfg := h.cfg
	bcfg.NodeID, bcfg.StagingDir = "b", filepath.Join(dir, "staging-b")
	bdeps := h.deps
	bdeps.Host, bdeps.Leases = nil, b
	mi, err := h.deps.Node.StateMinerInfo(ctx, h.cfg.Miner, chain.TipSetKey{})
	if err != nil {
		t.Fatal(err)
	}
	if bdeps.Sender, err = sender.New(ctx, sender.Config{DB: h.deps.DB, Node: h.deps.Node.(sender.Node), From: mi.Worker, Keys: h.keys, Logf: t.Logf}); err != nil {
		t.Fatal(err)
	}
	pb, err := New(bcfg, bdeps)
	if err != nil {
		t.Fatal(err)
	}
	if err := pb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pb.Close() })
	clk.add(2 * time.Minute) // a's leases expire
	if err := b.Beat(ctx); err != nil {
		t.Fatal(err)
	}
	h.p = pb
	for _, id := range ids {
		d := h.waitFor(id, complete, Complete)
		if d.Error != "" && d.Retry != RetryNone {
			t.Fatalf("deal %s: %+v", id, d)
		}
	}

	h.fc.mu.Lock()
	publishes, published := 0, 0
	for _, m := range h.fc.st.Msgs {
		if m.Method == 4 {
			publishes++
			published += m.Deals
		}
	}
	h.fc.mu.Unlock()
	// Batches fill as the downloads end (or go at the publish period):
	// however many messages, each deal is in exactly one.
	if publishes < 2 || published != len(ids) {
		t.Fatalf("%d publish messages with %d deals, want at least 2 with %d", publishes, published, len(ids))
	}
	h.sealer.mu.Lock()
	defer h.sealer.mu.Unlock()
	for _, id := range ids {
		if n := h.sealer.st.Writes[id.String()]; n != 1 {
			t.Fatalf("deal %s written %d times", id, n)
		}
	}
	for _, id := range ids {
		row, err := pb.store.deal(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if row.StagingNode != "b" || filepath.Dir(row.StagingPath) != bcfg.StagingDir {
			t.Fatalf("deal %s staged at %s on node %q", id, row.StagingPath, row.StagingNode)
		}
	}
}

// The staging sweep removes the files of deals whose piece is in a sector
// and indexed (a node that read the file from here added it) and keeps
// those still needed (also while the piece is indexed from it) and files
// that are not a deal's.
func TestSweepStaging(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, t.TempDir(), func(c *Config) { c.MaxDealsPerPublishMsg = 1 })
	h.start()
	done := h.deal("done.car", 1000, 1, nil)
	if r := h.p.Propose(ctx, done, "sweep"); !r.Accepted {
		t.Fatal(r.Message)
	}
	h.waitFor(done.DealUUID, complete, Complete)

	indexing := h.deal("indexing.car", 1000, 3, nil)
	entered, hold := make(chan struct{}), make(chan struct{})
	h.idx.mu.Lock()
	h.idx.onIndex = func(r IndexRequest) error {
		if r.DealUUID == indexing.DealUUID {
			close(entered)
			<-hold
		}
		return nil
	}
	h.idx.mu.Unlock()
	if r := h.p.Propose(ctx, indexing, "sweep"); !r.Accepted {
		t.Fatal(r.Message)
	}
	<-entered
	defer close(hold)
	indexingFile := filepath.Join(h.cfg.StagingDir, indexing.DealUUID.String()+".car")

	block := make(chan struct{})
	defer close(block)
	h.dl.mu.Lock()
	h.dl.block = block
	h.dl.mu.Unlock()
	waiting := h.deal("waiting.car", 1000, 2, nil)
	if r := h.p.Propose(ctx, waiting, "sweep"); !r.Accepted {
		t.Fatal(r.Message)
	}
	files := map[string]bool{ // name: kept
		done.DealUUID.String() + ".car":    false,
		waiting.DealUUID.String() + ".car": true,
		uuid.NewString() + ".car":          true, // no such deal
		"notes.txt":                        true,
	}
	for name := range files {
		if err := os.WriteFile(filepath.Join(h.cfg.StagingDir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h.p.sweepStaging(ctx)
	for name, kept := range files {
		_, err := os.Stat(filepath.Join(h.cfg.StagingDir, name))
		if (err == nil) != kept {
			t.Errorf("%s: kept %v, want %v", name, err == nil, kept)
		}
	}
	if _, err := os.Stat(indexingFile); err != nil {
		t.Errorf("the file of a deal being indexed from it was swept: %v", err)
	}
	// An index step that failed lets the file go with its tag.
	if err := h.p.store.releaseStagingTag(ctx, indexing.DealUUID); err != nil {
		t.Fatal(err)
	}
	h.p.sweepStaging(ctx)
	if _, err := os.Stat(indexingFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file of a deal at AddedPiece without its staging tag was kept: %v", err)
	}
}

// All market nodes of a cluster serve one libp2p identity on their own
// addresses, which the miner actor lists together. A client proposing
// deals one after the other while one market node dies goes on with the
// other: it dials the same peer ID, libp2p finds the node still there
// among the addresses, and every proposal is admitted once.
func TestMarketFailoverWhileProposing(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, t.TempDir(), nil)
	clk := &testClock{now: time.Now()}
	join := func(id string) *cluster.Member {
		m, err := cluster.Join(ctx, cluster.Config{DB: h.deps.DB, NodeID: id, LeaseTimeout: time.Minute, Heartbeat: time.Hour,
			Now: clk.Now, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serve := func() host.Host {
		hst, err := libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { hst.Close() })
		return hst
	}
	hostA, hostB := serve(), serve()
	h.deps.Host, h.deps.Leases = hostA, &dyingLeases{Member: join("a")}
	h.start()
	pa := h.p
	bdeps := h.deps
	bdeps.Host, bdeps.Leases = hostB, join("b")
	mi, err := h.deps.Node.StateMinerInfo(ctx, h.cfg.Miner, chain.TipSetKey{})
	if err != nil {
		t.Fatal(err)
	}
	if bdeps.Sender, err = sender.New(ctx, sender.Config{DB: h.deps.DB, Node: h.deps.Node.(sender.Node), From: mi.Worker, Keys: h.keys, Logf: t.Logf}); err != nil {
		t.Fatal(err)
	}
	pb, err := New(h.cfg, bdeps)
	if err != nil {
		t.Fatal(err)
	}
	if err := pb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pb.Close() })

	// The client knows the provider as the miner actor shows it: one peer
	// ID, both nodes' addresses.
	client := newHost(t)
	client.Peerstore().AddAddrs(hostA.ID(), append(hostA.Addrs(), hostB.Addrs()...), time.Hour)
	const proposals, dieAt = 12, 5
	var accepted []uuid.UUID
	for i := range proposals {
		if i == dieAt {
			// Node a dies: its deal protocols stop and its host is gone.
			h.deps.Leases.(*dyingLeases).dead.Store(true)
			pa.Close()
			hostA.Close()
		}
		params := h.deal(fmt.Sprintf("f%d.car", i), 1000+i, int64(200+i), func(_ *market.DealProposal, p *wire.DealParams) { p.IsOffline = true })
		var resp wire.DealResponse
		err := exchange(t, client, hostA.ID(), wire.DealProtocolv121, params, &resp)
		if err != nil {
			// The stream was on the dead node's connection: a client tries
			// again, and libp2p dials the node that is left.
			err = exchange(t, client, hostA.ID(), wire.DealProtocolv121, params, &resp)
		}
		if err != nil || !resp.Accepted {
			t.Fatalf("proposal %d (node a dead: %v): %v %+v", i, i >= dieAt, err, resp)
		}
		accepted = append(accepted, params.DealUUID)
	}
	ds, err := pb.Deals(ctx, DealFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != proposals {
		t.Fatalf("%d deals recorded for %d proposals accepted", len(ds), proposals)
	}
	for _, id := range accepted {
		if _, err := pb.Deal(ctx, id); err != nil {
			t.Fatalf("accepted deal %s: %v", id, err)
		}
	}
	if conns := client.Network().ConnsToPeer(hostA.ID()); len(conns) != 1 ||
		!slices.ContainsFunc(hostB.Addrs(), func(a ma.Multiaddr) bool { return a.Equal(conns[0].RemoteMultiaddr()) }) {
		t.Fatalf("the client's connections after the failover: %v", conns)
	}
}
