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
	addr, arg, err := devnetArgs(c, "devnet fund", "FIL")
	if err != nil {
		return err
	}
	amount, err := chain.ParseFIL(arg)
	if err != nil {
		return fmt.Errorf("devnet fund: %w", err)
	}
	if amount.Sign() <= 0 {
		return fmt.Errorf("devnet fund: the amount must be positive")
	}
	n, ep, closer, err := dialDevnet(c)
	if err != nil {
		return err
	}
	defer closer()
	mc, err := client.FundFromDevnet(c.Context, n, ep, addr, amount)
	if err != nil {
		return fmt.Errorf("devnet fund: %w", err)
	}
	return waitAndReport(c, n, mc, func(w io.Writer) {
		fmt.Fprintf(w, "sent %s to %s\n", chain.FormatFIL(amount), addr)
	})
}

// devnetArgs reads the arguments of the devnet command cmd, ADDRESS and
// then one of the kind value, returning the address and the value's text.
func devnetArgs(c *cli.Context, cmd, value string) (address.Address, string, error) {
	if c.NArg() != 2 {
		return address.Undef, "", fmt.Errorf("%s: give ADDRESS and %s", cmd, value)
	}
	addr, err := address.NewFromString(c.Args().Get(0))
	if err != nil {
		return address.Undef, "", fmt.Errorf("%s: %q is not an address: %w", cmd, c.Args().Get(0), err)
	}
	return addr, c.Args().Get(1), nil
}

// dialDevnet connects to the chain and returns also its endpoint, whose
// token the devnet's own methods need. A client repo is read only for its
// chain settings; there need not be one.
func dialDevnet(c *cli.Context) (n chain.FullNode, ep client.Endpoint, closer func(), err error) {
	r, _ := openRepo(c)
	if ep, err = chainEndpoint(r); err != nil {
		return nil, client.Endpoint{}, nil, err
	}
	if n, closer, err = dialChain(c, r); err != nil {
		return nil, client.Endpoint{}, nil, err
	}
	return n, ep, closer, nil
}
