package main

import (
	"fmt"
	"os"

	"github.com/filecoin-project/go-address"
	"github.com/urfave/cli/v2"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/client"
)

// repoFlag selects the client repo.
var repoFlag = &cli.StringFlag{
	Name:    "repo",
	Usage:   "client repo directory (default ~/.ferry-client)",
	EnvVars: []string{client.EnvRepo},
}

// walletFlag selects the client wallet address.
var walletFlag = &cli.StringFlag{Name: "wallet", Usage: "client wallet address (default: the default wallet)"}

func repoDir(c *cli.Context) (string, error) {
	if d := c.String("repo"); d != "" {
		return d, nil
	}
	return client.DefaultRepoDir()
}

func openRepo(c *cli.Context) (*client.Repo, error) {
	dir, err := repoDir(c)
	if err != nil {
		return nil, err
	}
	return client.OpenRepo(dir)
}

// dialChain connects to the chain the repo's config and the environment
// name.
func dialChain(c *cli.Context, r *client.Repo) (chain.FullNode, func(), error) {
	ep, err := chainEndpoint(r)
	if err != nil {
		return nil, nil, err
	}
	return client.Dial(c.Context, ep)
}

// chainEndpoint is the chain API the repo's config and the environment
// name (r may be nil).
func chainEndpoint(r *client.Repo) (client.Endpoint, error) {
	var cfg client.Config
	if r != nil {
		cfg = r.Config
	}
	return client.ResolveEndpoint(os.Getenv, cfg)
}

// openWallet opens the client repo, picks the wallet a command sends from
// (clientAddress) and connects to the chain: what the commands that send
// the client's own messages need first. The caller calls closer.
func openWallet(c *cli.Context) (r *client.Repo, from address.Address, n chain.FullNode, closer func(), err error) {
	if r, err = openRepo(c); err != nil {
		return nil, address.Undef, nil, nil, err
	}
	if from, err = clientAddress(c, r); err != nil {
		return nil, address.Undef, nil, nil, err
	}
	if n, closer, err = dialChain(c, r); err != nil {
		return nil, address.Undef, nil, nil, err
	}
	return r, from, n, closer, nil
}

// clientAddress is --wallet, or the wallet's default.
func clientAddress(c *cli.Context, r *client.Repo) (address.Address, error) {
	if s := c.String("wallet"); s != "" {
		a, err := address.NewFromString(s)
		if err != nil {
			return address.Undef, fmt.Errorf("--wallet %q: %w", s, err)
		}
		if has, err := r.Wallet.Has(a); err != nil || !has {
			return address.Undef, fmt.Errorf("--wallet %s is not in the client keystore (%s)", a, r.Wallet.Dir())
		}
		return a, nil
	}
	a, err := r.Wallet.Default()
	if err != nil {
		return address.Undef, fmt.Errorf("no client wallet: %w (run `ferry wallet new` or give --wallet)", err)
	}
	return a, nil
}

// parseMiner reads a miner address argument.
func parseMiner(s string) (address.Address, error) {
	if s == "" {
		return address.Undef, fmt.Errorf("no provider given (--provider f0…)")
	}
	a, err := address.NewFromString(s)
	if err != nil {
		return address.Undef, fmt.Errorf("provider %q is not an address: %w", s, err)
	}
	if a.Protocol() != address.ID {
		return address.Undef, fmt.Errorf("provider %s is not a miner ID address (f0…)", a)
	}
	return a, nil
}
