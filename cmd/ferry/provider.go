package main

import (
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/internal/cliutil"
)

var providerCmd = &cli.Command{
	Name:  "provider",
	Usage: "look at a storage provider",
	Subcommands: []*cli.Command{
		{
			Name:      "info",
			Usage:     "the miner's on-chain info: peer ID, addresses, worker, sector size",
			ArgsUsage: "MINER",
			Flags:     []cli.Flag{repoFlag, jsonFlag},
			Action:    providerInfo,
		},
		{
			Name:      "ask",
			Usage:     "the provider's storage ask (price and piece sizes), signature checked",
			ArgsUsage: "MINER",
			Flags:     []cli.Flag{repoFlag, jsonFlag},
			Action:    providerAsk,
		},
		{
			Name:      "transports",
			Usage:     "the provider's retrieval transports",
			ArgsUsage: "MINER",
			Flags:     []cli.Flag{repoFlag, jsonFlag},
			Action:    providerTransports,
		},
	},
}

// withProvider opens the chain, looks up the miner in the first argument
// and, when dial is set, starts a libp2p host.
func withProvider(c *cli.Context, minerArg string, dial bool, f func(n chain.Node, h host.Host, p *client.Provider) error) error {
	miner, err := parseMiner(minerArg)
	if err != nil {
		return err
	}
	r, _ := openRepo(c) // only the chain config is needed; none is fine
	n, closer, err := dialChain(c, r)
	if err != nil {
		return err
	}
	defer closer()
	p, err := client.LookupProvider(c.Context, n, miner)
	if err != nil {
		return err
	}
	var h host.Host
	if dial {
		if h, err = client.NewHost(); err != nil {
			return err
		}
		defer h.Close()
	}
	return f(n, h, p)
}

func providerInfo(c *cli.Context) error {
	return withProvider(c, c.Args().First(), false, func(n chain.Node, _ host.Host, p *client.Provider) error {
		out := struct {
			Miner      string
			PeerID     string
			Multiaddrs []string
			Owner      string
			Worker     string
			SectorSize uint64
		}{Miner: p.Miner.String(), PeerID: p.AddrInfo.ID.String(), Owner: p.Info.Owner.String(), Worker: p.Info.Worker.String(), SectorSize: uint64(p.Info.SectorSize)}
		for _, a := range p.AddrInfo.Addrs {
			out.Multiaddrs = append(out.Multiaddrs, a.String())
		}
		return printResult(c, out, func(w io.Writer) {
			fmt.Fprintf(w, "miner:       %s\n", out.Miner)
			fmt.Fprintf(w, "peer ID:     %s\n", out.PeerID)
			for _, a := range out.Multiaddrs {
				fmt.Fprintf(w, "multiaddr:   %s\n", a)
			}
			fmt.Fprintf(w, "owner:       %s\n", out.Owner)
			fmt.Fprintf(w, "worker:      %s\n", out.Worker)
			fmt.Fprintf(w, "sector size: %s\n", cliutil.HumanBytes(int64(out.SectorSize)))
		})
	})
}

func providerAsk(c *cli.Context) error {
	return withProvider(c, c.Args().First(), true, func(n chain.Node, h host.Host, p *client.Provider) error {
		ask, err := client.QueryAsk(c.Context, n, h, p)
		if err != nil {
			return err
		}
		return printResult(c, ask, func(w io.Writer) {
			fmt.Fprintf(w, "miner:           %s\n", ask.Miner)
			fmt.Fprintf(w, "price:           %s attoFIL/GiB/epoch\n", ask.Price)
			fmt.Fprintf(w, "verified price:  %s attoFIL/GiB/epoch\n", ask.VerifiedPrice)
			fmt.Fprintf(w, "piece sizes:     %s … %s\n", cliutil.HumanBytes(int64(ask.MinPieceSize)), cliutil.HumanBytes(int64(ask.MaxPieceSize)))
			fmt.Fprintf(w, "valid:           epochs %d … %d (seq %d)\n", ask.Timestamp, ask.Expiry, ask.SeqNo)
		})
	})
}

func providerTransports(c *cli.Context) error {
	return withProvider(c, c.Args().First(), true, func(_ chain.Node, h host.Host, p *client.Provider) error {
		resp, err := client.Transports(c.Context, h, p)
		if err != nil {
			return err
		}
		type proto struct {
			Name      string
			Addresses []string
		}
		out := []proto{}
		for _, pr := range resp.Protocols {
			addrs, err := pr.Multiaddrs()
			if err != nil {
				return fmt.Errorf("miner %s: %w", p.Miner, err)
			}
			e := proto{Name: pr.Name, Addresses: []string{}}
			for _, a := range addrs {
				e.Addresses = append(e.Addresses, a.String())
			}
			out = append(out, e)
		}
		return printResult(c, out, func(w io.Writer) {
			for _, e := range out {
				for _, a := range e.Addresses {
					fmt.Fprintf(w, "%-8s %s\n", e.Name, a)
				}
			}
		})
	})
}
