package client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/lotus"
)

// DefaultDevnetURL is where ferryd serves its devnet chain.
const DefaultDevnetURL = "http://127.0.0.1:1234/rpc/v1"

// DevnetVersionTag is what a ferry devnet's Version().Version contains;
// `ferry devnet fund` refuses any other chain.
const DevnetVersionTag = "ferry-devnet"

// DevnetTokenFile is the file in ferryd's repo that holds the devnet's
// chain token for clients (read and write: enough to push what the client
// signed and to use the faucet).
const DevnetTokenFile = "devnet-token"

// Endpoint is a chain API address and its token.
type Endpoint struct {
	// URL is the JSON-RPC URL.
	URL string
	// Token is the bearer token; empty for read-only access.
	Token string
	// Source says where the endpoint came from, for messages.
	Source string
}

// ResolveEndpoint finds the chain API the way Lotus tools do:
// FULLNODE_API_INFO, else the config's ChainAPI, else the local devnet with
// the token from FERRY_API_TOKEN or from the client token file ferryd
// writes in its repo ($FERRY_REPO or ~/.ferry, file DevnetTokenFile) when
// it exists. getenv is os.Getenv outside tests.
func ResolveEndpoint(getenv func(string) string, cfg Config) (Endpoint, error) {
	if info := getenv(lotus.EnvAPIInfo); info != "" {
		u, tok, err := lotus.ParseAPIInfo(info)
		if err != nil {
			return Endpoint{}, fmt.Errorf("%s: %w", lotus.EnvAPIInfo, err)
		}
		return Endpoint{URL: u, Token: tok, Source: lotus.EnvAPIInfo}, nil
	}
	if cfg.ChainAPI != "" {
		u, tok, err := lotus.ParseAPIInfo(cfg.ChainAPI)
		if err != nil {
			return Endpoint{}, fmt.Errorf("config ChainAPI: %w", err)
		}
		return Endpoint{URL: u, Token: tok, Source: "config ChainAPI"}, nil
	}
	ep := Endpoint{URL: DefaultDevnetURL, Source: "local devnet"}
	if tok := getenv(EnvAPIToken); tok != "" {
		ep.Token = strings.TrimSpace(tok)
		return ep, nil
	}
	dir := getenv(EnvProviderRepo)
	if dir == "" {
		home := getenv("HOME")
		if home == "" {
			return ep, nil
		}
		dir = filepath.Join(home, ".ferry")
	}
	b, err := os.ReadFile(filepath.Join(dir, DevnetTokenFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return Endpoint{}, fmt.Errorf("reading the devnet token: %w", err)
	default:
		ep.Token = strings.TrimSpace(string(b))
	}
	return ep, nil
}

// Dial connects to the chain at ep and checks that it answers. The closer
// must be called when done.
func Dial(ctx context.Context, ep Endpoint) (chain.FullNode, func(), error) {
	n, closer, err := lotus.Dial(ctx, ep.URL, ep.Token)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to the chain (%s): %w", ep.Source, err)
	}
	if _, err := n.Version(ctx); err != nil {
		closer()
		hint := ""
		if ep.Source == "local devnet" {
			hint = " (is `ferryd run` up? otherwise set FULLNODE_API_INFO)"
		}
		return nil, nil, fmt.Errorf("chain API at %s (%s) does not answer: %w%s", ep.URL, ep.Source, err, hint)
	}
	return n, func() { closer() }, nil
}
