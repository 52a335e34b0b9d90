package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/lotus"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/internal/cliutil"
	"github.com/ferry-fil/ferry/internal/procs"
	"github.com/ferry-fil/ferry/node"
)

var runCmd = &cli.Command{
	Name:  "run",
	Usage: "run the provider (the embedded devnet chain by default)",
	Description: `Starts everything ferryd does: the chain (the embedded devnet unless
config.toml says Chain.Mode = "lotus"), the deal protocols on libp2p, sealing
(with lotus-miner's API for markets elsewhere), the piece index and the HTTP
server for retrievals; config.toml's Subsystems may leave out the market or
sealing, and Sealing.Backend = "lotus-miner" hands pieces to a lotus-miner
instead. On first start it creates the repo, its config.toml with every
default, a worker key and, on the devnet, a funded miner. Stop it with Ctrl-C;
it resumes every deal where it stopped.`,
	Action: func(cctx *cli.Context) error {
		runtime.GOMAXPROCS(procs.Ferryd()) // a spare P for the sector writer
		ctx, stop := signal.NotifyContext(cctx.Context, os.Interrupt, syscall.SIGTERM)
		defer stop()
		n, err := node.Start(ctx, repoDir(cctx), node.Options{})
		if err != nil {
			return err
		}
		defer n.Close()
		printStarted(n)
		<-ctx.Done()
		fmt.Fprintln(os.Stderr, "ferryd: stopping")
		return nil
	},
}

// printStarted tells the operator where everything is.
func printStarted(n *node.Node) {
	fmt.Printf("ferryd %s is running\n", n.Config.Chain.Mode)
	fmt.Printf("  miner       %s (worker %s)\n", n.Miner, n.Worker)
	if n.Host != nil {
		fmt.Printf("  peer        %s\n", n.Host.ID())
		for _, a := range n.Host.Addrs() {
			fmt.Printf("  libp2p      %s\n", a)
		}
		fmt.Printf("  retrieval   %s\n", n.RetrievalURL())
	}
	if n.MinerAPI != nil {
		fmt.Printf("  sealer      lotus-miner at %s\n", n.MinerAPI.URL())
	}
	if u := n.MinerAPIURL(); u != "" {
		fmt.Printf("  miner API   %s (lotus-miner's; ferryd auth api-info --miner --perm admin)\n", u)
	}
	fmt.Printf("  operator    http://%s/rpc/v0 (token in %s; metrics at /metrics)\n", n.Config.API.Listen, n.Repo.Path("token"))
	if n.Devnet != nil {
		token, _ := os.ReadFile(n.Repo.Path(client.DevnetTokenFile))
		addr, _ := node.APIMultiaddr(n.Config.Chain.DevnetListen)
		fmt.Printf("  chain API   http://%s/rpc/v1\n", n.Config.Chain.DevnetListen)
		fmt.Printf("\nClients on this machine find the devnet by themselves; elsewhere (read and\n")
		fmt.Printf("write: enough to send their own messages and use the devnet's faucet):\n")
		fmt.Printf("  export %s=%s:%s\n", lotus.EnvAPIInfo, token, addr)
	}
}

var infoCmd = &cli.Command{
	Name:  "info",
	Usage: "show the miner, peer ID, addresses, funds and chain head",
	Flags: []cli.Flag{jsonFlag},
	Action: func(cctx *cli.Context) error {
		return withAPI(cctx, func(f api.Ferry) error {
			info, err := f.Info(cctx.Context)
			if err != nil {
				return err
			}
			return cliutil.Print(cctx, info, func(w io.Writer) {
				fmt.Fprintf(w, "Miner:          %s (%s sectors)\n", info.Miner, info.SectorSize.ShortString())
				fmt.Fprintf(w, "Worker:         %s (%s)\n", info.Worker, chain.FormatFIL(info.WorkerFunds))
				fmt.Fprintf(w, "Market escrow:  %s (locked %s)\n", chain.FormatFIL(info.MarketEscrow), chain.FormatFIL(info.MarketLocked))
				fmt.Fprintf(w, "Subsystems:     %s\n", strings.Join(info.Subsystems, ", "))
				if info.PeerID != "" {
					fmt.Fprintf(w, "Peer ID:        %s\n", info.PeerID)
				}
				for _, a := range info.Addresses {
					fmt.Fprintf(w, "Address:        %s\n", a)
				}
				if info.RetrievalURL != "" {
					fmt.Fprintf(w, "Retrieval:      %s\n", info.RetrievalURL)
				}
				if info.SealerAPI != "" {
					fmt.Fprintf(w, "Sealer:         lotus-miner at %s\n", info.SealerAPI)
				}
				if info.MinerAPI != "" {
					fmt.Fprintf(w, "Miner API:      %s (lotus-miner's, served)\n", info.MinerAPI)
				}
				fmt.Fprintf(w, "Chain:          %s, head %d\n", info.ChainMode, info.ChainHead)
				if info.ChainAPI != "" {
					fmt.Fprintf(w, "Chain API:      %s\n", info.ChainAPI)
				}
				fmt.Fprintf(w, "Version:        %s\n", info.Version)
			})
		})
	},
}

// withAPI runs fn with a client of the daemon running on the repo.
func withAPI(cctx *cli.Context, fn func(a api.Ferry) error) error {
	f, closer, err := api.Dial(cctx.Context, repoDir(cctx))
	if err != nil {
		return err
	}
	defer closer()
	return fn(f)
}
