package main

import (
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/internal/cliutil"
	"github.com/ferry-fil/ferry/wire"
)

var providerCmd = &cli.Command{
	Name:  "provider",
	Usage: "look at a storage provider",
	Subcommands: []*cli.Command{
		{
			Name:      "info",
			Usage:     "the miner's on-chain info: peer ID, addresses, worker, sector size",
			ArgsUsage: "MINER",
			Flags:     []cli.Flag{jsonFlag},
			Action:    providerInfo,
		},
		{
			Name:      "ask",
			Usage:     "the provider's storage ask (price and piece sizes), signature checked",
			ArgsUsage: "MINER",
			Flags:     []cli.Flag{jsonFlag},
			Action:    providerAsk,
		},
		{
			Name:      "transports",
			Usage:     "the provider's retrieval transports",
			ArgsUsage: "MINER",
			Flags:     []cli.Flag{jsonFlag},
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
		out := newProviderOutput(p)
		return cliutil.Print(c, out, func(w io.Writer) {
			fmt.Fprintf(w, "miner:       %s\n", out.Provider)
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

// providerOutput is what `ferry provider info` prints.
type providerOutput struct {
	Provider   string   `json:"provider"`
	PeerID     string   `json:"peerId"`
	Multiaddrs []string `json:"multiaddrs"`
	Owner      string   `json:"owner"`
	Worker     string   `json:"worker"`
	SectorSize uint64   `json:"sectorSize"`
}

func newProviderOutput(p *client.Provider) providerOutput {
	out := providerOutput{Provider: p.Miner.String(), PeerID: p.AddrInfo.ID.String(), Multiaddrs: []string{},
		Owner: p.Info.Owner.String(), Worker: p.Info.Worker.String(), SectorSize: uint64(p.Info.SectorSize)}
	for _, a := range p.AddrInfo.Addrs {
		out.Multiaddrs = append(out.Multiaddrs, a.String())
	}
	return out
}

func providerAsk(c *cli.Context) error {
	return withProvider(c, c.Args().First(), true, func(n chain.Node, h host.Host, p *client.Provider) error {
		ask, err := client.QueryAsk(c.Context, n, h, p)
		if err != nil {
			return err
		}
		out := cliutil.NewAsk(ask)
		return cliutil.Print(c, out, out.WriteText)
	})
}

func providerTransports(c *cli.Context) error {
	return withProvider(c, c.Args().First(), true, func(_ chain.Node, h host.Host, p *client.Provider) error {
		resp, err := client.Transports(c.Context, h, p)
		if err != nil {
			return err
		}
		out, err := newTransports(resp)
		if err != nil {
			return fmt.Errorf("miner %s: %w", p.Miner, err)
		}
		return cliutil.Print(c, out, func(w io.Writer) {
			for _, pr := range resp.Protocols {
				for _, a := range out[pr.Name] {
					fmt.Fprintf(w, "%-8s %s\n", pr.Name, a.Multiaddr)
				}
				delete(out, pr.Name) // printed
			}
		})
	})
}

// transportAddr is one address of a retrieval transport: the multiaddr
// and, for HTTP, its URL.
type transportAddr struct {
	Multiaddr string `json:"multiaddr"`
	Address   string `json:"address,omitempty"`
}

// newTransports is what `ferry provider transports --json` prints, shaped
// as `boost provider retrieval-transports --json`: the addresses of each
// transport under its name.
func newTransports(resp *wire.QueryResponse) (map[string][]transportAddr, error) {
	out := map[string][]transportAddr{}
	for _, pr := range resp.Protocols {
		addrs, err := pr.Multiaddrs()
		if err != nil {
			return nil, err
		}
		e := []transportAddr{}
		for _, a := range addrs {
			u, _ := client.HTTPURL(a) // empty unless HTTP
			e = append(e, transportAddr{Multiaddr: a.String(), Address: u})
		}
		out[pr.Name] = append(out[pr.Name], e...)
	}
	return out, nil
}
