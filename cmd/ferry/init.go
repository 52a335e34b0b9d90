package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/client"
	"github.com/ferry-fil/ferry/internal/cliutil"
	"github.com/ferry-fil/ferry/wallet"
)

var initCmd = &cli.Command{
	Name:  "init",
	Usage: "create the client repo (config and keystore) and a default wallet",
	Description: "Creates ~/.ferry-client (or --repo / $FERRY_CLIENT_REPO) with config.toml and\n" +
		"keystore/. When the keystore has no key, makes a secp256k1 key and makes it\n" +
		"the default. Running it again changes nothing.",
	Flags: []cli.Flag{jsonFlag},
	Action: func(c *cli.Context) error {
		dir, err := repoDir(c)
		if err != nil {
			return err
		}
		r, created, err := client.InitRepo(dir)
		if err != nil {
			return fmt.Errorf("init: %w", err)
		}
		addrs, err := r.Wallet.List()
		if err != nil {
			return fmt.Errorf("init: %w", err)
		}
		newKey := false
		if len(addrs) == 0 {
			if _, err := r.Wallet.New(wallet.TypeSecp256k1); err != nil {
				return fmt.Errorf("init: making the default wallet: %w", err)
			}
			newKey = true
		}
		def, err := r.Wallet.Default()
		if err != nil {
			return fmt.Errorf("init: %w", err)
		}
		out := struct {
			Repo          string `json:"repo"`
			Created       bool   `json:"created"`
			DefaultWallet string `json:"defaultWallet"`
			NewWallet     bool   `json:"newWallet"`
		}{dir, created, def.String(), newKey}
		return cliutil.Print(c, out, func(w io.Writer) {
			if created {
				fmt.Fprintf(w, "created client repo %s\n", dir)
			} else {
				fmt.Fprintf(w, "client repo %s already exists\n", dir)
			}
			if newKey {
				fmt.Fprintf(w, "new default wallet %s\n", def)
			} else {
				fmt.Fprintf(w, "default wallet %s\n", def)
			}
		})
	},
}
