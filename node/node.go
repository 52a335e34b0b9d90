// Package node wires ferryd together. Start reads the repo and its config
// and brings the parts up in this order, each in its own small function,
// those of a subsystem only when config.toml's Subsystems enable it
// (markets, sealing; both by default):
//
//	store      the database, the keystore, the API secrets, the peer
//	           identity
//	libp2p     markets: the host clients propose deals to, with the deal
//	           protocols' limits (libp2p.go)
//	chain      the embedded devnet or a Lotus node; the miner and the
//	           worker's message sender
//	sealing    sealing: ferryd's sectors, with the sealer back end the
//	           chain accepts (on a real network none: ferryd stops there,
//	           sending nothing)
//	sealer     markets: the market's sealer, ferryd's sealing or the
//	           lotus-miner API of Sealing.MinerAPIInfo (handoff.go)
//	index      markets: the piece index and IPNI
//	market     markets: the peer ID and addresses on the miner actor, the
//	           deal protocols and the deal pipeline
//	HTTP       markets: retrievals, IPNI advertisements and Curio's HTTP
//	           deal APIs (httpdeal.go)
//	miner API  sealing: lotus-miner's API over ferryd's sealing, on
//	           Sealing.MinerAPIListen with tokens of its own (handoff.go)
//	API        the operator API and /metrics, last: its api file tells
//	           ferryd's commands that the daemon is up
//
// Close stops them in reverse order. Plain constructors, no
// dependency-injection framework; config.go turns the config file into each
// part's Config, index.go gives the market the piece index.
package node

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-jsonrpc"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/devnet"
	"github.com/ferry-fil/ferry/chain/lotus"
	"github.com/ferry-fil/ferry/chain/sender"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/cluster"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/ipni"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/minerapi"
	"github.com/ferry-fil/ferry/retrieval"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/transfer"
	"github.com/ferry-fil/ferry/ui"
	"github.com/ferry-fil/ferry/wallet"
)

// Node is a running ferryd.
type Node struct {
	Repo   *Repo
	Config Config

	DB     *sql.DB
	Wallet *wallet.Wallet
	Chain  chain.FullNode
	Devnet *devnet.Devnet // nil on the real network
	Host   host.Host
	Miner  address.Address
	Worker address.Address
	// Sender sends every message from the worker (the market's publish
	// messages, sealing's pre-commits and commits, the miner's addresses).
	Sender *sender.Sender
	// Sealing is ferryd's own sealing; nil unless Subsystems.EnableSealing.
	Sealing *sealing.Sealing
	// MinerAPI is the lotus-miner the market hands pieces to; nil unless
	// Sealing.Backend = "lotus-miner".
	MinerAPI *minerapi.Client
	Provider *market.Provider // nil unless Subsystems.EnableMarkets
	Index    *index.Service   // nil unless Subsystems.EnableMarkets
	IPNI     *ipni.Announcer  // nil when IPNI is off
	// Cluster is this node's membership of the nodes sharing its database
	// (one node alone, unless others join).
	Cluster *cluster.Member

	logf          func(string, ...any)
	runCtx        context.Context // the parts' goroutines run until Close
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	closers       []func() error // run in reverse order by Close
	servers       []*http.Server
	secret        []byte         // signs the operator API's tokens
	minerSecret   []byte         // signs the tokens of the lotus-miner API ferryd serves
	libp2pKey     crypto.PrivKey // the peer identity, also IPNI's signing key
	peerID        peer.ID
	dealHost      host.Host // Host with the proposal limit, for the market
	sectorSize    abi.SectorSize
	marketSealer  market.Sealer     // the market's: Sealing, or remoteSealer over remote
	remote        *minerapi.Sealer  // the market's sealer over MinerAPI (lotus-miner back end)
	pieces        index.PieceSource // where the market's pieces are read back: this node's, then other nodes'
	localPieces   index.PieceSource // this node's sealer's pieces only (own sealing or lotus-miner)
	clusterSecret []byte            // signs the requests nodes send each other
	clusterToken  string
	retrievalAddr ma.Multiaddr // where clients retrieve, as announced
	apiAddr       string
	minerAPIAddr  string // the served lotus-miner API as a multiaddr, for MINER_API_INFO
	minerAPIURL   string // and as a URL
}

// Options are choices made on ferryd's command line rather than in the
// config file.
type Options struct {
	// Logf receives the daemon's log lines; nil uses the standard logger.
	Logf func(format string, args ...any)
}

// Start brings up a ferryd on the repo at dir, part by part (see the
// package doc). It returns once every part is serving; Close stops them.
// When a part fails to start, those started before it are stopped again.
func Start(ctx context.Context, dir string, opts Options) (*Node, error) {
	repo, err := OpenRepo(dir)
	if err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	n := &Node{Repo: repo, Config: cfg, logf: opts.Logf}
	if n.logf == nil {
		n.logf = log.Printf
	}
	n.runCtx, n.cancel = context.WithCancel(context.Background())
	markets, sealing := cfg.Subsystems.EnableMarkets, cfg.Subsystems.EnableSealing
	for _, part := range []struct {
		on    bool
		start func(context.Context) error
	}{
		{true, n.startStore},
		{markets, n.startLibp2p},
		{true, n.joinCluster},
		{true, n.startChain},
		{sealing, n.startSealing},
		{markets, n.startSealer},
		{markets, n.startIndex},
		{markets, n.startMarket},
		{markets, n.startHTTP},
		{sealing, n.startMinerAPI},
		{true, n.startAPI},
	} {
		if !part.on {
			continue
		}
		if err := part.start(ctx); err != nil {
			n.Close()
			return nil, err
		}
	}
	return n, nil
}

// startStore opens the database, the keystore, the API secrets and the
// peer identity (the miner's peer ID is made from it on the devnet, even
// when this ferryd runs no libp2p host).
func (n *Node) startStore(ctx context.Context) (err error) {
	if n.DB, err = db.Open(ctx, n.Config.DatabaseSource(n.Repo)); err != nil {
		return err
	}
	n.closers = append(n.closers, n.DB.Close)
	if n.Wallet, err = wallet.Open(n.Repo.Path("keystore")); err != nil {
		return fmt.Errorf("opening the keystore: %w", err)
	}
	if n.secret, err = n.Repo.Secret(); err != nil {
		return err
	}
	if n.libp2pKey, err = n.Repo.Libp2pKey(); err != nil {
		return err
	}
	if n.libp2pKey, err = sharedIdentity(ctx, n, n.libp2pKey); err != nil {
		return err
	}
	if n.peerID, err = peer.IDFromPrivateKey(n.libp2pKey); err != nil {
		return fmt.Errorf("reading the peer ID of the libp2p identity: %w", err)
	}
	return nil
}

// startLibp2p starts the host with the repo's identity.
func (n *Node) startLibp2p(ctx context.Context) (err error) {
	if n.Host, err = newHost(n.libp2pKey, n.Config.Libp2p); err != nil {
		return err
	}
	n.closers = append(n.closers, n.Host.Close)
	n.dealHost = limitProposals(n.Host, n.Config.Libp2p.ProposalsPerPeer)
	return nil
}

// startChain starts the devnet or connects to the Lotus node, and finds
// (on the devnet: makes) the miner and its worker's sender.
func (n *Node) startChain(ctx context.Context) error {
	if n.Config.Chain.Mode == "devnet" {
		return n.startDevnet(ctx)
	}
	return n.connectLotus(ctx)
}

// startDevnet runs the embedded chain, serves its Lotus API and makes this
// repo's miner on it at first start.
func (n *Node) startDevnet(ctx context.Context) (err error) {
	c := n.Config.Chain
	if n.sectorSize, err = parseSectorSize(c.DevnetSectorSize); err != nil {
		return err
	}
	started := time.Now()
	n.Devnet, err = devnet.Open(ctx, devnet.Config{Dir: n.Repo.Path("devnet"), BlockTime: c.DevnetBlockTime.Std(), Wallet: n.Wallet, Logf: n.logf})
	if err != nil {
		return fmt.Errorf("starting the devnet: %w", err)
	}
	n.closers = append(n.closers, n.Devnet.Close)
	n.Chain = n.Devnet
	if err := n.serve(c.DevnetListen, n.Devnet.Handler(), "devnet chain API"); err != nil {
		return err
	}
	n.logf("devnet started in %s; Lotus API at http://%s/rpc/v1", time.Since(started).Round(time.Millisecond), c.DevnetListen)
	dm, err := ensureDevnetMiner(ctx, n.DB, n.Chain, n.Wallet, n.Devnet.GenesisAddress(), n.sectorSize, n.peerID, c.DevnetBlockTime.Std(), n.logf)
	if err != nil {
		return err
	}
	n.Miner, n.Worker, n.Sender = dm.miner, dm.worker, dm.sender
	return nil
}

// connectLotus dials the Lotus node and reads the operator's miner.
func (n *Node) connectLotus(ctx context.Context) error {
	c := n.Config.Chain
	info := c.LotusAPIInfo
	if info == "" {
		info = os.Getenv(lotus.EnvAPIInfo)
	}
	url, token, err := lotus.ParseAPIInfo(info)
	if err != nil {
		return fmt.Errorf("reading the Lotus API info (Chain.LotusAPIInfo or %s): %w", lotus.EnvAPIInfo, err)
	}
	node, closer, err := lotus.Dial(ctx, url, token)
	if err != nil {
		return err
	}
	n.closers = append(n.closers, func() error { closer(); return nil })
	n.Chain = node
	if n.Miner, err = address.NewFromString(c.Miner); err != nil {
		return fmt.Errorf("Chain.Miner %q is not a miner address: %w", c.Miner, err)
	}
	mi, err := node.StateMinerInfo(ctx, n.Miner, chain.EmptyTSK)
	if err != nil {
		return fmt.Errorf("reading miner %s: %w", n.Miner, err)
	}
	n.Worker, n.sectorSize = mi.Worker, mi.SectorSize
	// The worker's key is usually in the Lotus node's wallet (the node
	// signs); in ours when the operator imported it.
	if n.Sender, err = sender.New(ctx, sender.Config{DB: n.DB, Node: n.Chain, From: n.Worker, Keys: n.Wallet, Logf: n.logf}); err != nil {
		return err
	}
	if n.Config.allowPrivate() {
		n.logf("warning: Transfer.AllowPrivateAddresses is on: clients can make ferryd download from loopback and private addresses; turn it off on a public network")
	}
	return nil
}

// startSealing starts ferryd's own sealing with the back end the chain
// accepts.
func (n *Node) startSealing(ctx context.Context) error {
	sealer, err := n.sealer(ctx)
	if err != nil {
		return err
	}
	var policy devnet.Policy // zero on the real network: sealing's defaults are the network's
	var confidence uint64    // sealing's default on the real network, Lotus' 5
	if n.Devnet != nil {
		policy, confidence = n.Devnet.Policy(), 1
	}
	scfg := n.Config.sealingConfig(n.Repo.Path("sectors"), n.sectorSize, policy, confidence)
	scfg.NodeID = n.nodeID()
	n.Sealing, err = sealing.New(scfg, n.DB, n.Chain, n.Sender, n.Miner, sealer)
	if err != nil {
		return fmt.Errorf("starting sealing: %w", err)
	}
	if !n.has(cluster.RoleSealing) {
		return nil // other nodes seal; this one reads their unsealed copies
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.Sealing.Run(n.runCtx); err != nil && !errors.Is(err, context.Canceled) {
			n.logf("sealing stopped: %v", err)
		}
	}()
	return nil
}

// sealer is the sealing back end of ferryd's own sealing for the chain.
// It makes the devnet's placeholder proofs, which only a Ferry devnet
// accepts (embedded, or reached as a Lotus node); on a real network the
// sectors are lotus-miner's (Sealing.Backend = "lotus-miner").
func (n *Node) sealer(ctx context.Context) (sealing.Sealer, error) {
	name, err := n.Chain.StateNetworkName(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the chain's network name: %w", err)
	}
	if name != devnet.NetworkName {
		return nil, fmt.Errorf("no sealer back end for network %q in ferryd: its own sealer makes the devnet's placeholder proofs, which a real network refuses; "+
			"seal with lotus-miner instead (Sealing.Backend = %q, Sealing.MinerAPIInfo, Subsystems.EnableSealing = false)", name, BackendLotusMiner)
	}
	return sealing.NewDevnetSealer(), nil
}

// startSealer gives the market its sealer and the source its pieces are
// read back from: ferryd's own sealing, or lotus-miner's API.
func (n *Node) startSealer(ctx context.Context) error {
	if n.Config.Sealing.Backend == BackendLotusMiner {
		return n.connectMiner(ctx)
	}
	n.marketSealer, n.localPieces = n.Sealing, pieceSource(n.Sealing)
	return nil
}

// startIndex opens the piece index over the unsealed sectors and, when
// IPNI is on, the announcer.
func (n *Node) startIndex(ctx context.Context) (err error) {
	n.pieces = n.pieceSource(n.localPieces)
	n.Index = index.New(n.DB, n.pieces)
	if n.retrievalAddr, err = n.Config.retrievalAddr(); err != nil {
		return err
	}
	if !n.Config.IPNI.Enable {
		return nil
	}
	n.IPNI, err = ipni.New(n.DB, n.Index, ipni.Config{
		PrivKey:        n.libp2pKey,
		RetrievalAddrs: []ma.Multiaddr{n.retrievalAddr},
		AnnounceURLs:   n.Config.IPNI.IndexerURLs,
	})
	if err != nil {
		return fmt.Errorf("starting IPNI: %w", err)
	}
	n.closers = append(n.closers, n.IPNI.Close)
	return nil
}

// startMarket writes the peer ID and addresses clients find the market at
// to the miner actor, and starts the deal protocols and the deal pipeline.
func (n *Node) startMarket(ctx context.Context) error {
	var dealHost host.Host // the deal protocols: market nodes only
	if n.has(cluster.RoleMarket) {
		addrs, err := n.marketAddrs(ctx)
		if err != nil {
			return err
		}
		if err := ensureMinerAddrs(ctx, n.DB, n.Chain, n.Sender, n.Miner, n.peerID, n.chainAddrs(addrs)); err != nil {
			return fmt.Errorf("writing the peer ID and addresses to miner %s: %w", n.Miner, err)
		}
		dealHost = n.dealHost
	}
	mcfg, err := n.Config.marketConfig(n.Miner, n.Repo.Path("staging"), n.retrievalAddr, n.Devnet != nil)
	if err != nil {
		return err
	}
	mcfg.NodeID = n.nodeID()
	n.Provider, err = market.New(mcfg, market.Deps{
		Node:       n.Chain,
		DB:         n.DB,
		Host:       dealHost,
		Leases:     n.Cluster,
		Does:       n.doesStep,
		Files:      n,
		Sealer:     n.marketSealer,
		Indexer:    indexer{idx: n.Index, ann: n.IPNI},
		Sender:     n.Sender,
		Downloader: transfer.New(n.Config.transferConfig()),
		Logf:       n.logf,
	})
	if err != nil {
		return fmt.Errorf("starting the market: %w", err)
	}
	if err := n.Provider.Start(n.runCtx); err != nil {
		return fmt.Errorf("starting the market: %w", err)
	}
	n.closers = append(n.closers, n.Provider.Close)
	return nil
}

// startHTTP serves retrievals, IPNI advertisements and Curio's HTTP deal
// APIs (httpdeal.go).
func (n *Node) startHTTP(ctx context.Context) error {
	mux := http.NewServeMux()
	rh, err := retrieval.New(n.Index, n.pieces)
	if err != nil {
		return err
	}
	if n.has(cluster.RoleRetrieval) {
		mux.Handle("/piece/", rh)
		mux.Handle("/ipfs/", rh)
	}
	mux.Handle("/remote/", n.remoteHandler(n.localPieces))
	if n.IPNI != nil {
		mux.Handle("/ipni/v1/ad/", n.IPNI.Handler())
	}
	if err := n.mountHTTPDeals(ctx, mux); err != nil {
		return err
	}
	if err := n.serve(n.Config.HTTP.Listen, mux, "retrieval HTTP"); err != nil {
		return err
	}
	if n.IPNI != nil {
		n.IPNI.Start(n.runCtx) // the head to every indexer, now the chain is served
	}
	return nil
}

// startAPI serves the operator API (and /metrics) and writes the api file,
// the operator's admin token and, on the devnet, the clients' chain token.
func (n *Node) startAPI(ctx context.Context) error {
	impl := &nodeAPI{n: n, secret: n.secret}
	rpc := jsonrpc.NewServer()
	rpc.Register("Ferry", api.Permissioned(impl))
	mux := http.NewServeMux()
	mux.Handle("/rpc/v0", auth.RequireToken(n.secret, rpc))
	// The web UI, on the same API and tokens.
	web, err := ui.New(ui.Config{
		API: impl,
		Verify: func(_ context.Context, token string) ([]auth.Permission, error) {
			return auth.Verify(n.secret, token)
		},
		Logf: n.logf,
	})
	if err != nil {
		return err
	}
	mux.Handle("/", web.Handler())
	// Counts only, no secrets: served without a token, as Prometheus
	// scrapes (the listener is loopback unless the operator opens it).
	mux.Handle("/metrics", n.metricsHandler())
	if err := n.serve(n.Config.API.Listen, mux, "operator API"); err != nil {
		return err
	}
	token, err := auth.Mint(n.secret, auth.All()...)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(n.Repo.Path("token"), []byte(token), 0o600); err != nil {
		return fmt.Errorf("writing the token file: %w", err)
	}
	if n.Devnet != nil {
		// Clients may read the chain, push what they signed and ask the
		// faucet for funds; they may not sign with the keys ferryd holds
		// (the worker's, the genesis account's).
		ct, err := n.Devnet.Token(ClientChainPermissions()...)
		if err != nil {
			return err
		}
		if err := writeFileAtomic(n.Repo.Path(client.DevnetTokenFile), []byte(ct), 0o600); err != nil {
			return fmt.Errorf("writing the devnet token file: %w", err)
		}
	}
	addr, err := APIMultiaddr(n.Config.API.Listen)
	if err != nil {
		return fmt.Errorf("reading API.Listen: %w", err)
	}
	if err := writeFileAtomic(n.Repo.Path("api"), []byte(addr), 0o644); err != nil {
		return fmt.Errorf("writing the api file: %w", err)
	}
	n.apiAddr = addr
	return nil
}

// ClientChainPermissions are those of the devnet chain token ferryd gives
// clients: read and write, never sign or admin.
func ClientChainPermissions() []auth.Permission { return []auth.Permission{auth.Read, auth.Write} }

// APIMultiaddr writes host:port as the multiaddr Lotus' API info strings
// use, /ip4/…/tcp/…/http.
func APIMultiaddr(hostport string) (string, error) {
	tcp, err := net.ResolveTCPAddr("tcp", hostport)
	if err != nil {
		return "", err
	}
	m, err := manet.FromNetAddr(tcp)
	if err != nil {
		return "", err
	}
	return m.String() + "/http", nil
}

// announceAddrs are the multiaddrs written to the miner actor.
func (n *Node) announceAddrs() []ma.Multiaddr {
	if len(n.Config.Libp2p.AnnounceAddresses) > 0 {
		var out []ma.Multiaddr
		for _, s := range n.Config.Libp2p.AnnounceAddresses {
			if m, err := ma.NewMultiaddr(s); err == nil { // checked by LoadConfig
				out = append(out, m)
			}
		}
		return out
	}
	if n.Host == nil {
		return nil // no market: no libp2p
	}
	return n.Host.Addrs()
}

// chainAddrs are the multiaddrs written to the miner actor: the libp2p
// ones, then the HTTP listener's, from which Curio's clients derive the
// provider's HTTP base URL. libp2p clients (ferry's, Boost's) dial what
// they can of them and skip the HTTP one, which no libp2p transport
// takes.
func (n *Node) chainAddrs(libp2p []ma.Multiaddr) []ma.Multiaddr {
	addrs := append([]ma.Multiaddr(nil), libp2p...)
	if n.retrievalAddr != nil {
		addrs = append(addrs, n.retrievalAddr)
	}
	return addrs
}

// RetrievalURL is where clients fetch pieces and blocks.
func (n *Node) RetrievalURL() string {
	if n.Config.HTTP.PublicURL != "" {
		return n.Config.HTTP.PublicURL
	}
	return "http://" + n.Config.HTTP.Listen
}

// serve starts an HTTP server on addr in the background.
func (n *Node) serve(addr string, h http.Handler, what string) error {
	l, err := listen(addr, what)
	if err != nil {
		return err
	}
	n.serveOn(l, h, what)
	return nil
}

// listen opens the TCP listener of the what on addr.
func listen(addr, what string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for the %s on %s: %w", what, addr, err)
	}
	return l, nil
}

// serveOn serves h on l in the background until Close.
func (n *Node) serveOn(l net.Listener, h http.Handler, what string) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	n.servers = append(n.servers, srv)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logf("%s stopped: %v", what, err)
		}
	}()
}

// Close stops every part, newest first, and removes the api file.
func (n *Node) Close() error {
	if n.apiAddr != "" {
		os.Remove(n.Repo.Path("api"))
	}
	for _, srv := range n.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if srv.Shutdown(ctx) != nil {
			srv.Close() // a request still running (a piece streaming in): cut it
		}
		cancel()
	}
	n.cancel()
	n.wg.Wait()
	var errs []error
	for i := len(n.closers) - 1; i >= 0; i-- {
		if err := n.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
