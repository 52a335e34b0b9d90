package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain/lotus"
)

var permFlag = &cli.StringFlag{
	Name:     "perm",
	Usage:    "the token's permission: read, write, sign or admin (it also gets every weaker one)",
	Required: true,
}

var chainFlag = &cli.BoolFlag{
	Name:  "chain",
	Usage: "a token for the devnet's chain API (Lotus' API) instead of the operator API",
}

var authCmd = &cli.Command{
	Name:  "auth",
	Usage: "make API tokens, as `lotus auth` does",
	Description: `Tokens carry Lotus' permissions. The operator API (ferryd's own commands)
needs read for what it shows (info, deal list, ask get, …) and admin for what it
changes; a read token suits a dashboard. With --chain the token is for the
devnet's chain API, where write lets a client push messages it signed and use
the faucet, and sign lets a program sign with the keys ferryd holds (the worker's,
the genesis account's): give clients read or write only.`,
	Subcommands: []*cli.Command{
		{
			Name:   "create-token",
			Usage:  "print a new token",
			Flags:  []cli.Flag{permFlag, chainFlag},
			Action: func(cctx *cli.Context) error { return printToken(cctx, false) },
		},
		{
			Name:   "api-info",
			Usage:  "print a new token with the API's address, as FERRY_API_INFO=… (FULLNODE_API_INFO=… with --chain)",
			Flags:  []cli.Flag{permFlag, chainFlag},
			Action: func(cctx *cli.Context) error { return printToken(cctx, true) },
		},
	},
}

// printToken asks the daemon for a token with --perm and prints it, alone
// or as an API info line.
func printToken(cctx *cli.Context, withAddr bool) error {
	p, err := auth.Parse(cctx.String("perm"))
	if err != nil {
		return fmt.Errorf("--perm: %w", err)
	}
	perms, err := auth.UpTo(p)
	if err != nil {
		return err
	}
	return withAPI(cctx, func(f api.Ferry) error {
		var token, addr, env string
		if cctx.Bool("chain") {
			if token, err = f.ChainAuthNew(cctx.Context, perms); err != nil {
				return err
			}
			info, err := f.Info(cctx.Context)
			if err != nil {
				return err
			}
			addr, env = info.ChainAPI, lotus.EnvAPIInfo
		} else {
			if token, err = f.AuthNew(cctx.Context, perms); err != nil {
				return err
			}
			if addr, _, err = api.Target(repoDir(cctx)); err != nil {
				return err
			}
			env = api.EnvAPIInfo
		}
		if withAddr {
			fmt.Printf("%s=%s:%s\n", env, token, addr)
		} else {
			fmt.Println(token)
		}
		return nil
	})
}
