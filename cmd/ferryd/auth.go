package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/api"
	"github.com/ferry-fil/ferry/auth"
	"github.com/ferry-fil/ferry/chain/lotus"
	"github.com/ferry-fil/ferry/internal/cliutil"
	"github.com/ferry-fil/ferry/minerapi"
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

var minerFlag = &cli.BoolFlag{
	Name:  "miner",
	Usage: "a token for the lotus-miner API ferryd's sealing serves (Sealing.MinerAPIListen) instead of the operator API",
}

var authCmd = &cli.Command{
	Name:  "auth",
	Usage: "make API tokens, as `lotus auth` does",
	Description: `Tokens carry Lotus' permissions. The operator API (ferryd's own commands)
needs read for what it shows (info, deal list, ask get, …) and admin for what it
changes; a read token suits a dashboard. With --chain the token is for the
devnet's chain API, where write lets a client push messages it signed and use
the faucet, and sign lets a program sign with the keys ferryd holds (the worker's,
the genesis account's): give clients read or write only. With --miner the token
is for the lotus-miner API ferryd's sealing serves, as lotus-miner's own: a
market that hands pieces over (a market-only ferryd, Boost) needs admin, and
api-info prints the MINER_API_INFO line it is configured with.`,
	Subcommands: []*cli.Command{
		{
			Name:   "create-token",
			Usage:  "print a new token",
			Flags:  []cli.Flag{permFlag, chainFlag, minerFlag, jsonFlag},
			Action: func(cctx *cli.Context) error { return printToken(cctx, false) },
		},
		{
			Name:   "api-info",
			Usage:  "print a new token with the API's address, as FERRY_API_INFO=… (FULLNODE_API_INFO=… with --chain, MINER_API_INFO=… with --miner)",
			Flags:  []cli.Flag{permFlag, chainFlag, minerFlag, jsonFlag},
			Action: func(cctx *cli.Context) error { return printToken(cctx, true) },
		},
	},
}

// tokenOutput is what `ferryd auth … --json` prints.
type tokenOutput struct {
	Token   string `json:"token"`
	Name    string `json:"name,omitempty"`    // the variable api-info sets
	APIInfo string `json:"apiInfo,omitempty"` // <token>:<multiaddr>
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
	if cctx.Bool("chain") && cctx.Bool("miner") {
		return fmt.Errorf("--chain and --miner name two APIs: choose one")
	}
	return withAPI(cctx, func(f api.Ferry) error {
		var out tokenOutput
		var addr string
		switch {
		case cctx.Bool("chain"):
			if out.Token, err = f.ChainAuthNew(cctx.Context, perms); err != nil {
				return err
			}
			info, err := f.Info(cctx.Context)
			if err != nil {
				return err
			}
			addr, out.Name = info.ChainAPI, lotus.EnvAPIInfo
		case cctx.Bool("miner"):
			if out.Token, err = f.MinerAuthNew(cctx.Context, perms); err != nil {
				return err
			}
			info, err := f.Info(cctx.Context)
			if err != nil {
				return err
			}
			addr, out.Name = info.MinerAPI, minerapi.EnvAPIInfo
		default:
			if out.Token, err = f.AuthNew(cctx.Context, perms); err != nil {
				return err
			}
			if addr, _, err = api.Target(repoDir(cctx)); err != nil {
				return err
			}
			out.Name = api.EnvAPIInfo
		}
		if !withAddr {
			return cliutil.Print(cctx, tokenOutput{Token: out.Token}, func(w io.Writer) { fmt.Fprintln(w, out.Token) })
		}
		out.APIInfo = out.Token + ":" + addr
		return cliutil.Print(cctx, out, func(w io.Writer) { fmt.Fprintf(w, "%s=%s\n", out.Name, out.APIInfo) })
	})
}
