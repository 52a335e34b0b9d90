package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/filecoin-project/go-state-types/builtin"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/node"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/wallet"
	"github.com/ferry-fil/ferry/wire"
)

// acceptTarget is the target for proposals accepted per second.
const acceptTarget = 500.0

// acceptCommand measures how many deal proposals a ferryd accepts per second
// when many libp2p clients propose at once.
func acceptCommand() *cli.Command {
	return &cli.Command{
		Name:  "accept",
		Usage: "deal proposals accepted per second by a devnet ferryd, from many concurrent libp2p clients on loopback",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "deals", Value: 2000, Usage: "proposals to send"},
			&cli.IntFlag{Name: "clients", Value: 8, Usage: "libp2p client hosts"},
			&cli.IntFlag{Name: "concurrency", Value: 64, Usage: "proposals in flight at once, over all clients"},
			&cli.StringFlag{Name: "repo", Usage: "ferryd repo directory to use (default: a new temporary one)"},
			&cli.BoolFlag{Name: "verbose", Usage: "show the daemon's log"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the proposing phase to this file"},
		},
		Action: func(c *cli.Context) error {
			n, conc, clients := c.Int("deals"), c.Int("concurrency"), c.Int("clients")
			if n < 1 || conc < 1 || clients < 1 {
				return errors.New("accept: --deals, --clients and --concurrency must be at least 1")
			}
			dir := c.String("repo")
			if dir == "" {
				tmp, err := os.MkdirTemp("", "ferry-bench-accept-*")
				if err != nil {
					return fmt.Errorf("accept: %w", err)
				}
				defer os.RemoveAll(tmp)
				dir = tmp
			}
			return benchAccept(c.Context, c.App.Writer, dir, n, clients, conc, c.Bool("verbose"), c.String("cpuprofile"))
		},
	}
}

func benchAccept(ctx context.Context, out io.Writer, dir string, n, nClients, conc int, verbose bool, cpuprofile string) error {
	// A daemon on loopback with ephemeral ports, an affordable publish fee
	// reservation (offline deals are never published here) and its own
	// devnet.
	cfg := node.DefaultConfig()
	cfg.Chain.DevnetListen = "127.0.0.1:0"
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.API.Listen = "127.0.0.1:0"
	cfg.Sealing.MinerAPIListen = "127.0.0.1:0"
	cfg.Libp2p.ListenAddresses = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.Market.MaxPublishDealsFee = "0.000001"
	if _, err := os.Stat(filepath.Join(dir, "config.toml")); errors.Is(err, os.ErrNotExist) {
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
			return fmt.Errorf("accept: encoding config: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "config.toml"), buf.Bytes(), 0o600); err != nil {
			return fmt.Errorf("accept: writing config: %w", err)
		}
	}
	logf := func(string, ...any) {}
	if verbose {
		logf = func(f string, a ...any) { fmt.Fprintf(out, "ferryd: "+f+"\n", a...) }
	}
	fmt.Fprintf(out, "starting a devnet ferryd in %s\n", dir)
	d, err := node.Start(ctx, dir, node.Options{Logf: logf})
	if err != nil {
		return fmt.Errorf("accept: starting ferryd: %w", err)
	}
	defer d.Close()
	if d.Devnet == nil {
		return errors.New("accept: the repo is not in devnet mode")
	}

	client, clientID, err := acceptFundClient(ctx, d)
	if err != nil {
		return err
	}
	deals, err := acceptProposals(ctx, d, client, clientID, n)
	if err != nil {
		return err
	}

	hosts := make([]host.Host, nClients)
	for i := range hosts {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
		if err != nil {
			return fmt.Errorf("accept: client host: %w", err)
		}
		defer h.Close()
		if err := h.Connect(ctx, peer.AddrInfo{ID: d.Host.ID(), Addrs: d.Host.Addrs()}); err != nil {
			return fmt.Errorf("accept: connecting to ferryd: %w", err)
		}
		hosts[i] = h
	}

	fmt.Fprintf(out, "proposing %d offline deals from %d clients, %d in flight\n", n, nClients, conc)
	lat := make([]time.Duration, n)
	var next, accepted atomic.Int64
	var firstReject atomic.Value
	var wg sync.WaitGroup
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return fmt.Errorf("accept: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("accept: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := hosts[w%nClients]
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				resp, err := acceptPropose(ctx, h, d.Host.ID(), deals[i])
				lat[i] = time.Since(t0)
				switch {
				case err != nil:
					firstReject.CompareAndSwap(nil, err.Error())
				case resp.Accepted:
					accepted.Add(1)
				default:
					firstReject.CompareAndSwap(nil, resp.Message)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	rate := float64(accepted.Load()) / elapsed.Seconds()
	fmt.Fprintf(out, "accepted %d of %d proposals in %s\n", accepted.Load(), n, elapsed.Round(time.Millisecond))
	if r := firstReject.Load(); r != nil {
		fmt.Fprintf(out, "first rejection or error: %s\n", r)
	}
	fmt.Fprintf(out, "ferry:  %.0f proposals accepted/s, latency p50 %s, p99 %s\n", rate,
		lat[len(lat)/2].Round(time.Microsecond), lat[min(len(lat)-1, len(lat)*99/100)].Round(time.Microsecond))
	fmt.Fprintf(out, "target: %.0f proposals accepted/s\nratio:  %.2f\n", acceptTarget, rate/acceptTarget)
	return nil
}

// acceptFundClient makes a client key in the daemon's wallet, funds it from
// genesis and puts escrow in the market for it.
func acceptFundClient(ctx context.Context, d *node.Node) (key, id address.Address, err error) {
	key, err = d.Wallet.New(wallet.TypeSecp256k1)
	if err != nil {
		return address.Undef, address.Undef, fmt.Errorf("accept: client key: %w", err)
	}
	if err := acceptPushWait(ctx, d.Chain, &chain.Message{From: d.Devnet.GenesisAddress(), To: key, Value: chain.FIL(1000)}); err != nil {
		return address.Undef, address.Undef, fmt.Errorf("accept: funding the client: %w", err)
	}
	var params bytes.Buffer
	if err := key.MarshalCBOR(&params); err != nil {
		return address.Undef, address.Undef, err
	}
	if err := acceptPushWait(ctx, d.Chain, &chain.Message{From: key, To: builtin.StorageMarketActorAddr, Method: builtin.MethodsMarket.AddBalance,
		Params: params.Bytes(), Value: chain.FIL(500)}); err != nil {
		return address.Undef, address.Undef, fmt.Errorf("accept: client market escrow: %w", err)
	}
	id, err = d.Chain.StateLookupID(ctx, key, chain.TipSetKey{})
	if err != nil {
		return address.Undef, address.Undef, fmt.Errorf("accept: client ID: %w", err)
	}
	return key, id, nil
}

func acceptPushWait(ctx context.Context, c chain.Node, msg *chain.Message) error {
	if msg.Value.Int == nil {
		msg.Value = big.Zero()
	}
	sm, err := c.MpoolPushMessage(ctx, msg, nil)
	if err != nil {
		return err
	}
	mc, err := sm.Cid()
	if err != nil {
		return err
	}
	lk, err := c.StateWaitMsg(ctx, mc, 1, -1, true)
	if err != nil {
		return err
	}
	if lk.Receipt.ExitCode != 0 {
		return fmt.Errorf("message %s failed with exit code %d", mc, lk.Receipt.ExitCode)
	}
	return nil
}

// acceptProposals signs n distinct offline proposals for one 2 KiB piece.
func acceptProposals(ctx context.Context, d *node.Node, key, id address.Address, n int) ([]*wire.DealParams, error) {
	payload := make([]byte, 2032)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	calc := piece.NewCalc()
	if _, err := calc.Write(payload); err != nil {
		return nil, err
	}
	comm, err := calc.SumAs(2048)
	if err != nil {
		return nil, err
	}
	head, err := d.Chain.ChainHead(ctx)
	if err != nil {
		return nil, err
	}
	bounds, err := d.Chain.StateDealProviderCollateralBounds(ctx, 2048, false, chain.TipSetKey{})
	if err != nil {
		return nil, err
	}
	ask, err := d.Provider.Ask(ctx)
	if err != nil {
		return nil, err
	}
	price := big.Add(big.Div(big.Mul(ask.Ask.Price, big.NewInt(2048)), big.NewInt(1<<30)), big.NewInt(1))
	v, err := d.Chain.Version(ctx)
	if err != nil {
		return nil, err
	}
	blockDelay := max(time.Duration(v.BlockDelay)*time.Second, time.Second)
	firstStart := head.Height() + abi.ChainEpoch(d.Config.Market.ExpectedSealDuration.Std()/blockDelay) + 200
	root, _ := cid.Decode("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi")
	deals := make([]*wire.DealParams, n)
	for i := range deals {
		label, _ := market.NewLabelFromString(root.String())
		prop := market.DealProposal{
			PieceCID: comm.CID(), PieceSize: 2048, Client: id, Provider: d.Miner, Label: label,
			StartEpoch: firstStart + abi.ChainEpoch(i), EndEpoch: firstStart + abi.ChainEpoch(i) + 180*2880,
			StoragePricePerEpoch: price, ProviderCollateral: bounds.Min, ClientCollateral: big.Zero(),
		}
		var buf bytes.Buffer
		if err := prop.MarshalCBOR(&buf); err != nil {
			return nil, err
		}
		sig, err := d.Wallet.Sign(key, buf.Bytes())
		if err != nil {
			return nil, fmt.Errorf("accept: signing a proposal: %w", err)
		}
		deals[i] = &wire.DealParams{DealUUID: uuid.New(), IsOffline: true, DealDataRoot: root,
			ClientDealProposal: market.ClientDealProposal{Proposal: prop, ClientSignature: *sig}, SkipIPNIAnnounce: true}
	}
	return deals, nil
}

func acceptPropose(ctx context.Context, h host.Host, p peer.ID, params *wire.DealParams) (*wire.DealResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	s, err := h.NewStream(ctx, p, protocol.ID(wire.DealProtocolv121))
	if err != nil {
		return nil, fmt.Errorf("opening a deal stream: %w", err)
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(time.Minute))
	if err := wire.Write(s, params); err != nil {
		s.Reset()
		return nil, err
	}
	var resp wire.DealResponse
	if err := wire.Read(s, &resp, 0); err != nil {
		s.Reset()
		return nil, err
	}
	return &resp, nil
}
