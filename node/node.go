// Package node wires ferryd together: it reads the repo and its config,
// opens the database and wallet, starts the chain (the embedded devnet or a
// Lotus client), the libp2p host, sealing, the market, the piece index and
// the HTTP servers, and stops them in reverse order. Plain constructors, no
// dependency-injection framework.
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
	"github.com/filecoin-project/go-jsonrpc/auth"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/devnet"
	"github.com/ferry-fil/ferry/chain/lotus"
	"github.com/ferry-fil/ferry/chain/sender"
	"github.com/ferry-fil/ferry/cluster"
	"github.com/ferry-fil/ferry/db"
	"github.com/ferry-fil/ferry/index"
	"github.com/ferry-fil/ferry/ipni"
	"github.com/ferry-fil/ferry/market"
	"github.com/ferry-fil/ferry/retrieval"
	"github.com/ferry-fil/ferry/sealing"
	"github.com/ferry-fil/ferry/transfer"
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
	Sender   *sender.Sender
	Sealing  *sealing.Sealing
	Provider *market.Provider
	Index    *index.Service
	IPNI     *ipni.Announcer // nil when IPNI is off
	// Cluster is this node's membership of the nodes sharing its database
	// (one node alone, unless others join).
	Cluster *cluster.Member

	logf    func(string, ...any)
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closers []func() error // run in reverse order by Close
	servers []*http.Server
	apiAddr string

	clusterSecret []byte // signs the requests nodes send each other
	clusterToken  string
}

// Options are choices made on ferryd's command line rather than in the
// config file.
type Options struct {
	// Logf receives the daemon's log lines; nil uses the standard logger.
	Logf func(format string, args ...any)
}

// Start brings up a ferryd on the repo at dir. It returns once every part
// is serving; Close stops them.
func Start(ctx context.Context, dir string, opts Options) (n *Node, err error) {
	logf := opts.Logf
	if logf == nil {
		logf = log.Printf
	}
	repo, err := OpenRepo(dir)
	if err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	n = &Node{Repo: repo, Config: cfg, logf: logf, cancel: cancel}
	defer func() {
		if err != nil {
			n.Close()
			n = nil
		}
	}()

	if n.DB, err = db.Open(ctx, cfg.DatabaseSource(repo)); err != nil {
		return n, err
	}
	n.closers = append(n.closers, n.DB.Close)
	if n.Wallet, err = wallet.Open(repo.Path("keystore")); err != nil {
		return n, fmt.Errorf("opening the keystore: %w", err)
	}
	secret, err := repo.Secret()
	if err != nil {
		return n, err
	}

	// libp2p host with the repo's identity.
	key, err := repo.Libp2pKey()
	if err != nil {
		return n, err
	}
	if key, err = sharedIdentity(ctx, n, key); err != nil {
		return n, err
	}
	n.Host, err = libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings(cfg.Libp2p.ListenAddresses...))
	if err != nil {
		return n, fmt.Errorf("starting libp2p on %v: %w", cfg.Libp2p.ListenAddresses, err)
	}
	n.closers = append(n.closers, n.Host.Close)
	if err := n.joinCluster(ctx); err != nil {
		return n, err
	}

	// The chain and the miner.
	var sectorSize abi.SectorSize
	switch cfg.Chain.Mode {
	case "devnet":
		sectorSize, err = parseSectorSize(cfg.Chain.DevnetSectorSize)
		if err != nil {
			return n, err
		}
		started := time.Now()
		n.Devnet, err = devnet.Open(ctx, devnet.Config{
			Dir:       repo.Path("devnet"),
			BlockTime: cfg.Chain.DevnetBlockTime.Std(),
			Wallet:    n.Wallet,
			Secret:    secret,
			Logf:      logf,
		})
		if err != nil {
			return n, fmt.Errorf("starting the devnet: %w", err)
		}
		n.closers = append(n.closers, n.Devnet.Close)
		n.Chain = n.Devnet
		if err := n.serve(cfg.Chain.DevnetListen, n.Devnet.Handler(), "devnet chain API"); err != nil {
			return n, err
		}
		logf("devnet started in %s; Lotus API at http://%s/rpc/v1", time.Since(started).Round(time.Millisecond), cfg.Chain.DevnetListen)
		dm, err := ensureDevnetMiner(ctx, n.DB, n.Chain, n.Wallet, n.Devnet.GenesisAddress(), sectorSize, n.Host.ID(), logf)
		if err != nil {
			return n, err
		}
		n.Miner, n.Worker, n.Sender = dm.miner, dm.worker, dm.sender
	case "lotus":
		info := cfg.Chain.LotusAPIInfo
		if info == "" {
			info = os.Getenv(lotus.EnvAPIInfo)
		}
		url, token, err := lotus.ParseAPIInfo(info)
		if err != nil {
			return n, fmt.Errorf("reading the Lotus API info (Chain.LotusAPIInfo or %s): %w", lotus.EnvAPIInfo, err)
		}
		node, closer, err := lotus.Dial(ctx, url, token)
		if err != nil {
			return n, err
		}
		n.closers = append(n.closers, func() error { closer(); return nil })
		n.Chain = node
		if n.Miner, err = address.NewFromString(cfg.Chain.Miner); err != nil {
			return n, fmt.Errorf("Chain.Miner %q is not a miner address: %w", cfg.Chain.Miner, err)
		}
		mi, err := node.StateMinerInfo(ctx, n.Miner, chain.EmptyTSK)
		if err != nil {
			return n, fmt.Errorf("reading miner %s: %w", n.Miner, err)
		}
		n.Worker, sectorSize = mi.Worker, mi.SectorSize
		// The worker's key is usually in the Lotus node's wallet (the node
		// signs); in ours when the operator imported it.
		if n.Sender, err = sender.New(ctx, sender.Config{DB: n.DB, Node: n.Chain, From: n.Worker, Keys: n.Wallet, Logf: logf}); err != nil {
			return n, err
		}
		// Say plainly what network mode does not do yet.
		logf("warning: the only sealer back end is the devnet's (no proof of replication); pre-commits on a real network will fail until a lotus-miner back end is configured")
		if cfg.Transfer.AllowPrivateAddresses {
			logf("warning: Transfer.AllowPrivateAddresses is on: clients can make ferryd download from loopback and private addresses; turn it off on a public network")
		}
	}

	// Sealing.
	var policy devnet.Policy // zero on the real network: sealing's defaults are the network's
	var confidence uint64    // sealing's default on the real network, Lotus' 5
	if n.Devnet != nil {
		policy, confidence = n.Devnet.Policy(), 1
	}
	n.Sealing, err = sealing.New(sealing.Config{
		Dir:                       repo.Path("sectors"),
		NodeID:                    n.nodeID(),
		SectorSize:                sectorSize,
		MaxWaitDealsSectors:       cfg.Sealing.MaxWaitDealsSectors,
		MaxSealingSectorsForDeals: cfg.Sealing.MaxSealingSectorsForDeals,
		WaitDealsDelay:            cfg.Sealing.WaitDealsDelay.Std(),
		StartEpochSealingBuffer:   abi.ChainEpoch(cfg.Sealing.StartEpochSealingBuffer),
		AddPieceConcurrency:       cfg.Sealing.AddPieceConcurrency,
		PreCommitChallengeDelay:   policy.PreCommitChallengeDelay,
		MaxProveCommitDuration:    policy.MaxProveCommitDuration,
		MinSectorExpiration:       policy.MinSectorExpiration,
		PollInterval:              cfg.Chain.DevnetBlockTime.Std(),
		MessageConfidence:         confidence,
	}, n.DB, n.Chain, n.Sender, n.Miner, sealing.NewDevnetSealer())
	if err != nil {
		return n, fmt.Errorf("starting sealing: %w", err)
	}
	if n.has(cluster.RoleSealing) {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.Sealing.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				logf("sealing stopped: %v", err)
			}
		}()
	}

	// The piece index and IPNI.
	local := pieceSource(n.Sealing)
	src := n.pieceSource(local)
	n.Index = index.New(n.DB, src)
	retrievalAddr, err := httpMultiaddr(cfg.HTTP.Listen)
	if err != nil {
		return n, fmt.Errorf("HTTP.Listen: %w", err)
	}
	if cfg.HTTP.PublicURL != "" {
		if retrievalAddr, err = ipni.HTTPMultiaddr(cfg.HTTP.PublicURL); err != nil {
			return n, fmt.Errorf("HTTP.PublicURL: %w", err)
		}
	}
	if cfg.IPNI.Enable {
		n.IPNI, err = ipni.New(n.DB, n.Index, ipni.Config{
			PrivKey:        key,
			RetrievalAddrs: []ma.Multiaddr{retrievalAddr},
			AnnounceURLs:   cfg.IPNI.IndexerURLs,
		})
		if err != nil {
			return n, fmt.Errorf("starting IPNI: %w", err)
		}
		n.closers = append(n.closers, n.IPNI.Close)
	}

	// The market.
	mcfg, err := n.marketConfig(retrievalAddr)
	if err != nil {
		return n, err
	}
	mcfg.NodeID = n.nodeID()
	var dealHost host.Host // the deal protocols: market nodes only
	if n.has(cluster.RoleMarket) {
		dealHost = n.Host
	}
	n.Provider, err = market.New(mcfg, market.Deps{
		Node:    n.Chain,
		DB:      n.DB,
		Host:    dealHost,
		Leases:  n.Cluster,
		Does:    n.doesStep,
		Files:   n,
		Sealer:  n.Sealing,
		Indexer: indexer{idx: n.Index, ann: n.IPNI},
		Sender:  n.Sender,
		Downloader: transfer.New(transfer.Config{
			MaxConcurrent:         cfg.Transfer.MaxConcurrent,
			MaxPerHost:            cfg.Transfer.MaxPerHost,
			MaxPerClient:          cfg.Transfer.MaxPerClient,
			StallTimeout:          cfg.Transfer.StallTimeout.Std(),
			MaxRetries:            cfg.Transfer.MaxRetries,
			MinRate:               cfg.Transfer.MinRate,
			RateWindow:            cfg.Transfer.RateWindow.Std(),
			AllowPrivateAddresses: cfg.Transfer.AllowPrivateAddresses,
		}),
		Logf: logf,
	})
	if err != nil {
		return n, fmt.Errorf("starting the market: %w", err)
	}
	if n.has(cluster.RoleMarket) {
		addrs, err := n.marketAddrs(ctx)
		if err != nil {
			return n, err
		}
		if err := ensureMinerAddrs(ctx, n.DB, n.Chain, n.Sender, n.Miner, n.Host.ID(), addrs); err != nil {
			return n, fmt.Errorf("writing the peer ID and addresses to miner %s: %w", n.Miner, err)
		}
	}
	if err := n.Provider.Start(runCtx); err != nil {
		return n, fmt.Errorf("starting the market: %w", err)
	}
	n.closers = append(n.closers, n.Provider.Close)

	// Retrieval and IPNI over HTTP.
	mux := http.NewServeMux()
	rh, err := retrieval.New(n.Index, src)
	if err != nil {
		return n, err
	}
	if n.has(cluster.RoleRetrieval) {
		mux.Handle("/piece/", rh)
		mux.Handle("/ipfs/", rh)
	}
	mux.Handle("/remote/", n.remoteHandler(local))
	if n.IPNI != nil {
		mux.Handle("/ipni/v1/ad/", n.IPNI.Handler())
	}
	if err := n.serve(cfg.HTTP.Listen, mux, "retrieval HTTP"); err != nil {
		return n, err
	}
	if n.IPNI != nil {
		n.IPNI.Start(runCtx) // the head to every indexer, now the chain is served
	}

	// The operator API, last: its api file tells commands the daemon is up.
	if err := n.serveAPI(secret); err != nil {
		return n, err
	}
	return n, nil
}

// announceAddrs are the multiaddrs written to the miner actor.
func (n *Node) announceAddrs() []ma.Multiaddr {
	if len(n.Config.Libp2p.AnnounceAddresses) > 0 {
		var out []ma.Multiaddr
		for _, s := range n.Config.Libp2p.AnnounceAddresses {
			if m, err := ma.NewMultiaddr(s); err == nil {
				out = append(out, m)
			}
		}
		return out
	}
	return n.Host.Addrs()
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
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening for the %s on %s: %w", what, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	n.servers = append(n.servers, srv)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.logf("%s stopped: %v", what, err)
		}
	}()
	return nil
}

// serveAPI serves the operator API (and /metrics) and writes the api and
// token files.
func (n *Node) serveAPI(secret []byte) error {
	rpc := jsonrpc.NewServer()
	rpc.Register("Ferry", api.Permissioned(&nodeAPI{n: n}))
	mux := http.NewServeMux()
	mux.Handle("/rpc/v0", &auth.Handler{
		Verify: func(ctx context.Context, token string) ([]auth.Permission, error) {
			return devnet.VerifyToken(secret, token)
		},
		Next: rpc.ServeHTTP,
	})
	// Counts only, no secrets: served without a token, as Prometheus
	// scrapes (the listener is loopback unless the operator opens it).
	mux.Handle("/metrics", n.metricsHandler())
	if err := n.serve(n.Config.API.Listen, mux, "operator API"); err != nil {
		return err
	}
	token, err := devnet.MintToken(secret, api.AllPermissions...)
	if err != nil {
		return fmt.Errorf("minting the API token: %w", err)
	}
	tcp, err := net.ResolveTCPAddr("tcp", n.Config.API.Listen)
	if err != nil {
		return fmt.Errorf("reading API.Listen: %w", err)
	}
	m, err := manet.FromNetAddr(tcp)
	if err != nil {
		return fmt.Errorf("reading API.Listen: %w", err)
	}
	n.apiAddr = m.String() + "/http"
	if err := writeFileAtomic(n.Repo.Path("token"), []byte(token), 0o600); err != nil {
		return fmt.Errorf("writing the token file: %w", err)
	}
	if err := writeFileAtomic(n.Repo.Path("api"), []byte(n.apiAddr), 0o644); err != nil {
		return fmt.Errorf("writing the api file: %w", err)
	}
	return nil
}

// Close stops every part, newest first, and removes the api file.
func (n *Node) Close() error {
	if n.apiAddr != "" {
		os.Remove(n.Repo.Path("api"))
	}
	for _, srv := range n.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(ctx)
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
