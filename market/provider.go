package market

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/google/uuid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/transfer"
	"github.com/ferry-fil/ferry/wire"
)

// Deps are the parts the provider works with.
type Deps struct {
	// Node is the chain.
	Node Chain
	// DB is Ferry's database (db.Open), with the market migrations applied.
	DB *sql.DB
	// Host is the libp2p host the protocol handlers are registered on.
	Host host.Host
	// Sealer places pieces in sectors.
	Sealer Sealer
	// Downloader fetches online deals' data.
	Downloader Downloader
	// Resolver resolves the host of a proposal's transfer URL, to refuse
	// one that leads to a private address; nil is net.DefaultResolver.
	Resolver transfer.Resolver
	// Indexer indexes and announces pieces; nil skips the step.
	Indexer PieceIndexer
	// Sender sends the publish messages from the worker (chain/sender).
	Sender MessageSender
	// Logf receives operational log lines; nil uses the standard logger.
	Logf func(format string, args ...any)
	// OnCheckpoint, when set, is called after a deal's checkpoint (or a
	// publish batch's "PublishSent", the sender having returned its
	// message's CID, or a deal's "Ended" and "PieceReleased" steps after
	// Complete) is persisted, and with "Waiting" when a deal's goroutine
	// stops to wait for an import or the publisher. Fault-injection tests
	// use it to kill the process, or hold a goroutine, at a chosen point.
	OnCheckpoint func(id uuid.UUID, checkpoint string)
	// Leases, when set, share the work with the other nodes of a cluster
	// (cluster.go); nil: this process does all of it.
	Leases Leases
	// Does reports whether this node does the step from a checkpoint (the
	// publish step, from Transferred, includes the publisher and the
	// deal-end watcher); nil: every step.
	Does func(from Checkpoint) bool
	// Files reads the staging files of other nodes; nil: every file is
	// on this node.
	Files Files
}

// Provider is the storage provider. Create it with New, then Start it.
type Provider struct {
	cfg   Config
	d     Deps
	store *store
	pub   *publisher
	ends  *endWatcher

	worker     address.Address
	blockDelay time.Duration
	pollEvery  time.Duration
	ask        atomic.Pointer[wire.SignedStorageAsk]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	running map[uuid.UUID]*runningDeal  // guarded by mu
	imports map[uuid.UUID]*atomic.Int64 // bytes hashed by a running import-data; guarded by mu
	started bool                        // guarded by mu
	askMu   sync.Mutex                  // serialises SetAsk
	admitMu sync.Mutex                  // one admission transaction at a time in this process
}

type runningDeal struct {
	cancel   context.CancelFunc
	received atomic.Uint64
	added    atomic.Int64 // staged bytes AddPiece has read so far
	again    bool         // kicked while running: run once more before exiting (guarded by Provider.mu)
}

// New checks the configuration and returns a provider that is not yet
// serving; call Start.
func New(cfg Config, d Deps) (*Provider, error) {
	cfg.setDefaults()
	switch {
	case cfg.Miner == address.Undef:
		return nil, errors.New("market: Config.Miner is not set")
	case cfg.StagingDir == "":
		return nil, errors.New("market: Config.StagingDir is not set")
	case d.Node == nil || d.DB == nil:
		return nil, errors.New("market: Deps.Node and Deps.DB are required")
	case d.Sealer == nil || d.Downloader == nil:
		return nil, errors.New("market: Deps.Sealer and Deps.Downloader are required")
	case d.Sender == nil:
		return nil, errors.New("market: Deps.Sender is required")
	}
	if d.Logf == nil {
		d.Logf = log.Printf
	}
	if d.Resolver == nil {
		d.Resolver = net.DefaultResolver
	}
	p := &Provider{
		cfg:     cfg,
		d:       d,
		store:   &store{db: d.DB},
		running: make(map[uuid.UUID]*runningDeal),
		imports: make(map[uuid.UUID]*atomic.Int64),
	}
	p.pub = newPublisher(&publisher{
		cfg: &p.cfg, store: p.store, chain: d.Node, sender: d.Sender, logf: d.Logf, hook: p.hook,
		fail: p.failDeal, confirmed: p.kick,
		leads: func(ctx context.Context) bool { return p.leads(ctx, leasePublisher) },
	})
	return p, nil
}

// Start reads the miner's worker from the chain, makes the first ask if
// there is none, registers the protocol handlers on the host (when one was
// given), starts the publisher and resumes every unfinished deal. The
// provider runs until ctx ends or Close is called.
func (p *Provider) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return errors.New("market: provider already started")
	}
	p.started = true
	p.mu.Unlock()

	mi, err := p.d.Node.StateMinerInfo(ctx, p.cfg.Miner, chain.TipSetKey{})
	if err != nil {
		return fmt.Errorf("market: reading miner %s info: %w", p.cfg.Miner, err)
	}
	p.worker = mi.Worker
	p.pub.worker = mi.Worker
	p.blockDelay = p.cfg.BlockDelay
	if p.blockDelay == 0 {
		v, err := p.d.Node.Version(ctx)
		if err != nil {
			return fmt.Errorf("market: reading block delay: %w", err)
		}
		p.blockDelay = time.Duration(v.BlockDelay) * time.Second
		if p.blockDelay == 0 {
			p.blockDelay = DefaultBlockDelay
		}
	}
	p.pollEvery = p.cfg.PollInterval
	if p.pollEvery == 0 {
		p.pollEvery = p.blockDelay
	}
	endEvery := p.cfg.DealEndCheckInterval
	if endEvery == 0 {
		endEvery = 10 * p.pollEvery
	}
	p.ends = &endWatcher{
		store: p.store, chain: p.d.Node, miner: p.cfg.Miner, poll: p.pollEvery, full: endEvery, perPass: p.cfg.EndChecksPerPass,
		logf: p.d.Logf, hook: p.hook, leads: func(ctx context.Context) bool { return p.leads(ctx, leaseEnds) },
	}
	p.ends.remover, _ = p.d.Indexer.(PieceRemover)
	if err := p.loadAsk(ctx); err != nil {
		return err
	}
	if err := p.store.releaseStaleTags(ctx); err != nil {
		return fmt.Errorf("market: %w", err)
	}

	p.ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		select {
		case <-ctx.Done():
			p.cancel()
		case <-p.ctx.Done():
		}
	}()

	if h := p.d.Host; h != nil {
		h.SetStreamHandler(protocol.ID(wire.DealProtocolv121), p.handleDeal)
		h.SetStreamHandler(protocol.ID(wire.DealProtocolv120), p.handleDeal)
		h.SetStreamHandler(protocol.ID(wire.DealStatusProtocol), p.handleStatus)
		h.SetStreamHandler(protocol.ID(wire.AskProtocol), p.handleAsk)
		h.SetStreamHandler(protocol.ID(wire.TransportsProtocol), p.handleTransports)
	}

	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		p.pub.run(p.ctx)
	}()
	go func() {
		defer p.wg.Done()
		p.ends.run(p.ctx)
	}()
	if p.d.Leases != nil {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.claim(p.ctx)
		}()
	}
	if err := p.resume(p.ctx); err != nil {
		p.Close()
		return err
	}
	return nil
}

// Close removes the protocol handlers, stops the pipeline and waits for its
// goroutines. Deals continue from their checkpoints at the next Start.
func (p *Provider) Close() error {
	if h := p.d.Host; h != nil {
		for _, id := range []string{wire.DealProtocolv121, wire.DealProtocolv120, wire.DealStatusProtocol, wire.AskProtocol, wire.TransportsProtocol} {
			h.RemoveStreamHandler(protocol.ID(id))
		}
	}
	// Cancelling under mu orders it with kick's check-and-Add, so no
	// goroutine is added once Wait has begun.
	p.mu.Lock()
	if p.cancel != nil {
		p.cancel()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// serve runs one request/response exchange on a stream.
func serve[Req any, PReq interface {
	*Req
	wire.Message
}](p *Provider, s network.Stream, handle func(ctx context.Context, req *Req) wire.Message) {
	defer s.Close()
	_ = s.SetReadDeadline(time.Now().Add(p.cfg.ReadTimeout))
	var req Req
	if err := wire.Read(s, PReq(&req), 0); err != nil {
		p.d.Logf("market: %s from %s: %v", s.Protocol(), s.Conn().RemotePeer(), err)
		_ = s.Reset()
		return
	}
	_ = s.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.ReadTimeout+p.cfg.WriteTimeout)
	defer cancel()
	resp := handle(ctx, &req)
	_ = s.SetWriteDeadline(time.Now().Add(p.cfg.WriteTimeout))
	if err := wire.Write(s, resp); err != nil {
		p.d.Logf("market: answering %s to %s: %v", s.Protocol(), s.Conn().RemotePeer(), err)
		_ = s.Reset()
	}
}

func (p *Provider) handleDeal(s network.Stream) {
	peerID := s.Conn().RemotePeer().String()
	serve[wire.DealParams](p, s, func(ctx context.Context, req *wire.DealParams) wire.Message {
		resp := p.Propose(ctx, req, peerID)
		return &resp
	})
}

func (p *Provider) handleStatus(s network.Stream) {
	serve[wire.DealStatusRequest](p, s, func(ctx context.Context, req *wire.DealStatusRequest) wire.Message {
		resp := p.Status(ctx, req)
		return &resp
	})
}

func (p *Provider) handleAsk(s network.Stream) {
	serve[wire.AskRequest](p, s, func(ctx context.Context, req *wire.AskRequest) wire.Message {
		var resp wire.AskResponse
		if req.Miner == p.cfg.Miner {
			resp.Ask = p.ask.Load()
		}
		return &resp
	})
}

func (p *Provider) handleTransports(s network.Stream) {
	defer s.Close()
	resp := wire.QueryResponse{Protocols: []wire.Protocol{}}
	if len(p.cfg.RetrievalAddrs) > 0 {
		resp.Protocols = append(resp.Protocols, wire.NewProtocol("http", p.cfg.RetrievalAddrs...))
	}
	_ = s.SetWriteDeadline(time.Now().Add(p.cfg.WriteTimeout))
	if err := wire.Write(s, &resp); err != nil {
		p.d.Logf("market: answering transports query: %v", err)
		_ = s.Reset()
	}
}

// Propose validates and admits a deal proposal; it is what the deal
// protocol handler runs, exported for in-process clients and benchmarks.
// clientPeer is the proposing peer's ID (informational).
//
// A rejection's reason goes to the client; the operator's log gets it with
// the deal's UUID and, when something of the provider's own failed, the
// cause.
func (p *Provider) Propose(ctx context.Context, params *wire.DealParams, clientPeer string) wire.DealResponse {
	info, rej := p.validate(ctx, params)
	if rej == nil {
		rej = p.admit(ctx, info, clientPeer)
	}
	if rej != nil {
		if rej.cause != nil {
			p.d.Logf("market: deal %s from peer %s: %s (%v)", params.DealUUID, clientPeer, rej.reason, rej.cause)
		} else {
			p.d.Logf("market: deal %s from peer %s: %s", params.DealUUID, clientPeer, rej.reason)
		}
		return wire.DealResponse{Message: rej.reason}
	}
	p.kick(params.DealUUID)
	return wire.DealResponse{Accepted: true}
}
