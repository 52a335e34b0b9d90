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
			Description: "Uses MpoolPushMessage, which needs the devnet's admin token: the one in\n" +
				"~/.ferry/token (or $FERRY_REPO/token), $FERRY_API_TOKEN, or FULLNODE_API_INFO as\n" +
				"`ferryd run` prints it. Refuses unless the chain's version says ferry-devnet.",
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
	mc, err := client.FundFromDevnet(c.Context, n, addr, amount)
	if err != nil {
		return fmt.Errorf("devnet fund: %w", err)
	}
	return waitAndReport(c, n, mc, func(w io.Writer) {
		fmt.Fprintf(w, "sent %s to %s\n", chain.FormatFIL(amount), addr)
	})
}
