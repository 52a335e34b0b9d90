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
	"github.com/ferry-fil/ferry/internal/cliutil"
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
			Flags:     []cli.Flag{jsonFlag},
			Action:    walletNew,
		},
		{
			Name:   "list",
			Usage:  "list the wallet's addresses (the default is marked)",
			Flags:  []cli.Flag{jsonFlag},
			Action: walletList,
		},
		{
			Name:      "balance",
			Usage:     "show an address' balance on chain",
			ArgsUsage: "[ADDRESS]",
			Flags:     []cli.Flag{jsonFlag},
			Action:    walletBalance,
		},
		{
			Name:      "default",
			Usage:     "show the default address, or set it",
			ArgsUsage: "[ADDRESS]",
			Flags:     []cli.Flag{jsonFlag},
			Action:    walletDefault,
		},
		{
			Name:      "export",
			Usage:     "print a key in Lotus' export format (hex of the key JSON)",
			ArgsUsage: "ADDRESS",
			Flags:     []cli.Flag{jsonFlag},
			Action:    walletExport,
		},
		{
			Name:      "import",
			Usage:     "import a key exported by `lotus wallet export` or `ferry wallet export`",
			ArgsUsage: "[FILE|-]",
			Flags:     []cli.Flag{jsonFlag, &cli.BoolFlag{Name: "as-default", Usage: "make the imported key the default"}},
			Action:    walletImport,
		},
		{
			Name:      "sign",
			Usage:     "sign hex-encoded bytes; prints the signature as hex (type byte, then the signature)",
			ArgsUsage: "ADDRESS HEX",
			Flags:     []cli.Flag{jsonFlag},
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
	out := struct {
		Address string `json:"address"`
		Type    string `json:"type"`
	}{a.String(), typ}
	return cliutil.Print(c, out, func(w io.Writer) { fmt.Fprintln(w, a) })
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
		Address string `json:"address"`
		Default bool   `json:"default"`
	}
	out := []entry{}
	for _, a := range addrs {
		out = append(out, entry{a.String(), a == def})
	}
	return cliutil.Print(c, out, func(w io.Writer) {
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
	// "balance" is written as Boost writes it ("1.5 FIL").
	out := struct {
		Address string `json:"address"`
		Balance string `json:"balance"`
		AttoFIL string `json:"attoFil"`
	}{a.String(), chain.FormatFIL(bal), bal.String()}
	return cliutil.Print(c, out, func(w io.Writer) { fmt.Fprintln(w, out.Balance) })
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
	return cliutil.Print(c, addressOutput{a.String()}, func(w io.Writer) { fmt.Fprintln(w, a) })
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
	key := wallet.ExportKey(ki)
	out := struct {
		Key string `json:"key"` // as Boost's wallet export --json
	}{key}
	return cliutil.Print(c, out, func(w io.Writer) { fmt.Fprintln(w, key) })
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
	return cliutil.Print(c, addressOutput{a.String()}, func(w io.Writer) { fmt.Fprintf(w, "imported %s\n", a) })
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
	out := struct {
		Signature string `json:"signature"` // as Boost's wallet sign --json
	}{hex.EncodeToString(b)}
	return cliutil.Print(c, out, func(w io.Writer) { fmt.Fprintln(w, out.Signature) })
}

// addressOutput is what the wallet commands that name one address print.
type addressOutput struct {
	Address string `json:"address"`
}
