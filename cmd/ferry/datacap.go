package main

import (
	"fmt"
	"io"

	"github.com/filecoin-project/go-state-types/big"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/internal/cliutil"
)

// devnetDatacapCmd is `ferry devnet datacap`: a notary's grant of DataCap
// on the devnet.
var devnetDatacapCmd = &cli.Command{
	Name:      "datacap",
	Usage:     "give an address DataCap from the devnet's verified registry root key (refused on any other chain)",
	ArgsUsage: "ADDRESS SIZE (bytes, or with a unit: 1MiB, 32GiB)",
	Description: "Asks the devnet to send AddVerifiedClient from the root key, which it holds: it needs a\n" +
		"devnet token with the write permission, like `ferry devnet fund`. Refuses unless the chain's\n" +
		"network name is " + client.DevnetNetworkName + ". The smallest grant is 1 MiB.",
	Flags:  []cli.Flag{jsonFlag, noWaitFlag},
	Action: devnetDatacap,
}

func devnetDatacap(c *cli.Context) error {
	addr, arg, err := devnetArgs(c, "devnet datacap", "SIZE")
	if err != nil {
		return err
	}
	size, err := cliutil.ParseBytes(arg)
	if err != nil {
		return fmt.Errorf("devnet datacap: %w", err)
	}
	n, ep, closer, err := dialDevnet(c)
	if err != nil {
		return err
	}
	defer closer()
	mc, err := client.GrantDevnetDataCap(c.Context, n, ep, addr, big.NewInt(size))
	if err != nil {
		return fmt.Errorf("devnet datacap: %w", err)
	}
	return waitAndReport(c, n, mc, func(w io.Writer) {
		fmt.Fprintf(w, "granted %s (%d bytes) of DataCap to %s\n", cliutil.HumanBytes(size), size, addr)
	})
}
