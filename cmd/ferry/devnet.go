package main

import (
	"fmt"
	"io"

	"github.com/filecoin-project/go-address"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/client"
)

var devnetCmd = &cli.Command{
	Name:  "devnet",
	Usage: "helpers for the local devnet that ferryd runs",
	Subcommands: []*cli.Command{
		{
			Name:      "fund",
			Usage:     "send FIL from the devnet's genesis wallet (refused on any other chain)",
			ArgsUsage: "ADDRESS FIL",
			Description: "Asks the devnet's faucet, which needs a devnet token with the write permission:\n" +
				"the one in ~/.ferry/devnet-token (or $FERRY_REPO/devnet-token), $FERRY_API_TOKEN, or\n" +
				"FULLNODE_API_INFO as `ferryd run` prints it. Refuses unless the chain's version says\n" +
				"ferry-devnet.",
			Flags:  []cli.Flag{jsonFlag, noWaitFlag},
			Action: devnetFund,
		},
		devnetDatacapCmd,
	},
}

func devnetFund(c *cli.Context) error {
	if c.NArg() != 2 {
		return fmt.Errorf("devnet fund: give ADDRESS and FIL")
	}
	addr, err := address.NewFromString(c.Args().Get(0))
	if err != nil {
		return fmt.Errorf("devnet fund: %q is not an address: %w", c.Args().Get(0), err)
	}
	amount, err := chain.ParseFIL(c.Args().Get(1))
	if err != nil {
		return fmt.Errorf("devnet fund: %w", err)
	}
	if amount.Sign() <= 0 {
		return fmt.Errorf("devnet fund: the amount must be positive")
	}
	r, _ := openRepo(c) // only for the chain settings; none is fine
	n, closer, err := dialChain(c, r)
	if err != nil {
		return err
	}
	defer closer()
	ep, err := chainEndpoint(r)
	if err != nil {
		return err
	}
	mc, err := client.FundFromDevnet(c.Context, n, ep, addr, amount)
	if err != nil {
		return fmt.Errorf("devnet fund: %w", err)
	}
	return waitAndReport(c, n, mc, func(w io.Writer) {
		fmt.Fprintf(w, "sent %s to %s\n", chain.FormatFIL(amount), addr)
	})
}
