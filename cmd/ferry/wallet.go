package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/filecoin-project/go-address"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/wallet"
)

var walletCmd = &cli.Command{
	Name:  "wallet",
	Usage: "manage the client's keys",
	Subcommands: []*cli.Command{
		{
			Name:      "new",
			Usage:     "make a new key and print its address",
			ArgsUsage: "[secp256k1|bls]",
			Flags:     []cli.Flag{repoFlag, jsonFlag},
			Action:    walletNew,
		},
		{
			Name:   "list",
			Usage:  "list the wallet's addresses (the default is marked)",
			Flags:  []cli.Flag{repoFlag, jsonFlag},
			Action: walletList,
		},
		{
			Name:      "balance",
			Usage:     "show an address' balance on chain",
			ArgsUsage: "[ADDRESS]",
			Flags:     []cli.Flag{repoFlag, jsonFlag},
			Action:    walletBalance,
		},
		{
			Name:      "default",
			Usage:     "show the default address, or set it",
			ArgsUsage: "[ADDRESS]",
			Flags:     []cli.Flag{repoFlag, jsonFlag},
			Action:    walletDefault,
		},
		{
			Name:      "export",
			Usage:     "print a key in Lotus' export format (hex of the key JSON)",
			ArgsUsage: "ADDRESS",
			Flags:     []cli.Flag{repoFlag},
			Action:    walletExport,
		},
		{
			Name:      "import",
			Usage:     "import a key exported by `lotus wallet export` or `ferry wallet export`",
			ArgsUsage: "[FILE|-]",
			Flags:     []cli.Flag{repoFlag, jsonFlag, &cli.BoolFlag{Name: "as-default", Usage: "make the imported key the default"}},
			Action:    walletImport,
		},
		{
			Name:      "sign",
			Usage:     "sign hex-encoded bytes; prints the signature as hex (type byte, then the signature)",
			ArgsUsage: "ADDRESS HEX",
			Flags:     []cli.Flag{repoFlag},
			Action:    walletSign,
		},
	},
}

func walletNew(c *cli.Context) error {
	typ := wallet.TypeSecp256k1
	if c.NArg() > 1 {
		return fmt.Errorf("wallet new: at most one argument, the key type")
	}
	if c.NArg() == 1 {
		typ = c.Args().First()
	}
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	a, err := r.Wallet.New(typ)
	if err != nil {
		return fmt.Errorf("wallet new: %w", err)
	}
	return printResult(c, map[string]string{"Address": a.String(), "Type": typ}, func(w io.Writer) { fmt.Fprintln(w, a) })
}

func walletList(c *cli.Context) error {
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	addrs, err := r.Wallet.List()
	if err != nil {
		return fmt.Errorf("wallet list: %w", err)
	}
	def, _ := r.Wallet.Default()
	type entry struct {
		Address string
		Default bool
	}
	out := []entry{}
	for _, a := range addrs {
		out = append(out, entry{a.String(), a == def})
	}
	return printResult(c, out, func(w io.Writer) {
		for _, e := range out {
			mark := ""
			if e.Default {
				mark = "  (default)"
			}
			fmt.Fprintf(w, "%s%s\n", e.Address, mark)
		}
	})
}

func walletBalance(c *cli.Context) error {
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	var a address.Address
	if c.NArg() > 0 {
		if a, err = address.NewFromString(c.Args().First()); err != nil {
			return fmt.Errorf("wallet balance: %q is not an address: %w", c.Args().First(), err)
		}
	} else if a, err = clientAddress(c, r); err != nil {
		return err
	}
	n, closer, err := dialChain(c, r)
	if err != nil {
		return err
	}
	defer closer()
	bal, err := n.WalletBalance(c.Context, a)
	if err != nil {
		return fmt.Errorf("wallet balance of %s: %w", a, err)
	}
	out := map[string]string{"Address": a.String(), "Balance": bal.String(), "FIL": client.FILNumber(bal)}
	return printResult(c, out, func(w io.Writer) { fmt.Fprintln(w, chain.FormatFIL(bal)) })
}

func walletDefault(c *cli.Context) error {
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	if c.NArg() > 0 {
		a, err := address.NewFromString(c.Args().First())
		if err != nil {
			return fmt.Errorf("wallet default: %q is not an address: %w", c.Args().First(), err)
		}
		if err := r.Wallet.SetDefault(a); err != nil {
			return fmt.Errorf("wallet default: %w", err)
		}
	}
	a, err := r.Wallet.Default()
	if err != nil {
		return fmt.Errorf("wallet default: %w", err)
	}
	return printResult(c, map[string]string{"Address": a.String()}, func(w io.Writer) { fmt.Fprintln(w, a) })
}

func walletExport(c *cli.Context) error {
	if c.NArg() != 1 {
		return fmt.Errorf("wallet export: give the ADDRESS to export")
	}
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	a, err := address.NewFromString(c.Args().First())
	if err != nil {
		return fmt.Errorf("wallet export: %q is not an address: %w", c.Args().First(), err)
	}
	ki, err := r.Wallet.Export(a)
	if err != nil {
		return fmt.Errorf("wallet export: %w", err)
	}
	fmt.Fprintln(c.App.Writer, wallet.ExportKey(ki))
	return nil
}

func walletImport(c *cli.Context) error {
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	var in io.Reader = os.Stdin
	if c.NArg() > 0 && c.Args().First() != "-" {
		f, err := os.Open(c.Args().First())
		if err != nil {
			return fmt.Errorf("wallet import: %w", err)
		}
		defer f.Close()
		in = f
	}
	b, err := io.ReadAll(io.LimitReader(in, 1<<16))
	if err != nil {
		return fmt.Errorf("wallet import: reading the key: %w", err)
	}
	ki, err := wallet.ImportKey(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("wallet import: %w", err)
	}
	a, err := r.Wallet.Import(ki)
	if err != nil {
		return fmt.Errorf("wallet import: %w", err)
	}
	if c.Bool("as-default") {
		if err := r.Wallet.SetDefault(a); err != nil {
			return fmt.Errorf("wallet import: %w", err)
		}
	}
	return printResult(c, map[string]string{"Address": a.String()}, func(w io.Writer) { fmt.Fprintf(w, "imported %s\n", a) })
}

func walletSign(c *cli.Context) error {
	if c.NArg() != 2 {
		return fmt.Errorf("wallet sign: give ADDRESS and HEX")
	}
	r, err := openRepo(c)
	if err != nil {
		return err
	}
	a, err := address.NewFromString(c.Args().Get(0))
	if err != nil {
		return fmt.Errorf("wallet sign: %q is not an address: %w", c.Args().Get(0), err)
	}
	data, err := hex.DecodeString(strings.TrimPrefix(c.Args().Get(1), "0x"))
	if err != nil {
		return fmt.Errorf("wallet sign: the data is not hex: %w", err)
	}
	sig, err := r.Wallet.Sign(a, data)
	if err != nil {
		return fmt.Errorf("wallet sign: %w", err)
	}
	b, err := sig.MarshalBinary()
	if err != nil {
		return fmt.Errorf("wallet sign: %w", err)
	}
	fmt.Fprintln(c.App.Writer, hex.EncodeToString(b))
	return nil
}
