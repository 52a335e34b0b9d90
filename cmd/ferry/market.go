package main

import (
	"fmt"
	"io"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/big"
	"github.com/ipfs/go-cid"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/internal/cliutil"
)

var marketCmd = &cli.Command{
	Name:  "market",
	Usage: "the client's funds in the storage market actor (escrow that pays for deals)",
	Subcommands: []*cli.Command{
		{
			Name:      "add-balance",
			Usage:     "move FIL from the wallet into market escrow",
			ArgsUsage: "AMOUNT (FIL, e.g. 1.5)",
			Flags:     []cli.Flag{walletFlag, jsonFlag, noWaitFlag},
			Action:    func(c *cli.Context) error { return marketMove(c, true) },
		},
		{
			Name:      "withdraw",
			Usage:     "move available FIL from market escrow back to the wallet",
			ArgsUsage: "AMOUNT (FIL, e.g. 1.5)",
			Flags:     []cli.Flag{walletFlag, jsonFlag, noWaitFlag},
			Action:    func(c *cli.Context) error { return marketMove(c, false) },
		},
		{
			Name:      "balance",
			Usage:     "show escrow and locked funds",
			ArgsUsage: "[ADDRESS]",
			Flags:     []cli.Flag{walletFlag, jsonFlag},
			Action:    marketBalance,
		},
	},
}

var noWaitFlag = &cli.BoolFlag{Name: "no-wait", Usage: "print the message CID and do not wait for it to execute"}

func marketMove(c *cli.Context, add bool) error {
	verb := "withdraw"
	if add {
		verb = "add-balance"
	}
	if c.NArg() != 1 {
		return fmt.Errorf("market %s: give the AMOUNT of FIL", verb)
	}
	amount, err := chain.ParseFIL(c.Args().First())
	if err != nil {
		return fmt.Errorf("market %s: %w", verb, err)
	}
	r, addr, n, closer, err := openWallet(c)
	if err != nil {
		return err
	}
	defer closer()
	var mc cid.Cid
	if add {
		mc, err = client.AddBalance(c.Context, n, r, addr, amount)
	} else {
		mc, err = client.WithdrawBalance(c.Context, n, r, addr, amount)
	}
	if err != nil {
		return fmt.Errorf("market %s: %w", verb, err)
	}
	return waitAndReport(c, n, mc, func(w io.Writer) {
		if add {
			fmt.Fprintf(w, "added %s to the market escrow of %s\n", chain.FormatFIL(amount), addr)
		} else {
			fmt.Fprintf(w, "withdrew %s from the market escrow of %s\n", chain.FormatFIL(amount), addr)
		}
	})
}

// waitAndReport prints the message CID, waits for it (unless --no-wait) and
// reports the exit code.
func waitAndReport(c *cli.Context, n chain.Node, mc cid.Cid, ok func(w io.Writer)) error {
	type result struct {
		MessageCID string `json:"messageCid"`
		Executed   bool   `json:"executed"`
		Height     int64  `json:"height,omitempty"`
		ExitCode   int64  `json:"exitCode"`
	}
	res := result{MessageCID: mc.String()}
	if !c.Bool("json") {
		fmt.Fprintf(c.App.ErrWriter, "message %s sent, waiting…\n", mc)
	}
	if c.Bool("no-wait") {
		return cliutil.Print(c, res, func(w io.Writer) { fmt.Fprintln(w, mc) })
	}
	ml, err := client.WaitMessage(c.Context, n, mc)
	if ml != nil {
		res.Executed, res.Height, res.ExitCode = true, int64(ml.Height), int64(ml.Receipt.ExitCode)
	}
	if err != nil {
		if c.Bool("json") {
			_ = cliutil.Print(c, res, nil)
		}
		return err
	}
	return cliutil.Print(c, res, func(w io.Writer) {
		ok(w)
		fmt.Fprintf(w, "message %s executed at epoch %d, exit code 0\n", mc, ml.Height)
	})
}

func marketBalance(c *cli.Context) error {
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	var addr address.Address
	if c.NArg() > 0 {
		if addr, err = address.NewFromString(c.Args().First()); err != nil {
			return fmt.Errorf("market balance: %q is not an address: %w", c.Args().First(), err)
		}
	} else if addr, err = clientAddress(c, r); err != nil {
		return err
	}
	n, closer, err := dialChain(c, r)
	if err != nil {
		return err
	}
	defer closer()
	mb, err := n.StateMarketBalance(c.Context, addr, chain.EmptyTSK)
	if err != nil {
		return fmt.Errorf("market balance of %s: %w", addr, err)
	}
	avail := big.Sub(mb.Escrow, mb.Locked)
	out := struct {
		Address   string `json:"address"`
		Escrow    string `json:"escrow"` // attoFIL
		Locked    string `json:"locked"`
		Available string `json:"available"`
	}{addr.String(), mb.Escrow.String(), mb.Locked.String(), avail.String()}
	return cliutil.Print(c, out, func(w io.Writer) {
		fmt.Fprintf(w, "escrow:    %s\n", chain.FormatFIL(mb.Escrow))
		fmt.Fprintf(w, "locked:    %s\n", chain.FormatFIL(mb.Locked))
		fmt.Fprintf(w, "available: %s\n", chain.FormatFIL(avail))
	})
}
