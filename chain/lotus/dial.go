package lotus

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/filecoin-project/go-jsonrpc"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/ferry-fil/ferry/chain"
)

// EnvAPIInfo is the environment variable Lotus tools read the full node's
// address and token from.
const EnvAPIInfo = "FULLNODE_API_INFO"

// apiPath is where Lotus serves its v1 API.
const apiPath = "/rpc/v1"

// Dial connects to a Lotus full-node API at url (http://, https://, ws:// or
// wss://, e.g. "ws://127.0.0.1:1234/rpc/v1"). A non-empty token is sent as
// "Authorization: Bearer <token>". Over http(s) each call is one request and
// nothing is sent until the first call; over ws(s) the connection is opened
// now. Call the closer when done. The result serves chain.FullNode; its
// ChainNotify needs a ws(s) URL.
func Dial(ctx context.Context, url string, token string) (chain.FullNode, jsonrpc.ClientCloser, error) {
	header := http.Header{}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	var s FullNodeStruct
	closer, err := jsonrpc.NewMergeClient(ctx, url, "Filecoin", s.internals(), header)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to Lotus API at %s: %w", url, err)
	}
	return &s, closer, nil
}

// ParseAPIInfo splits a Lotus API info string into the URL to Dial and the
// token. It accepts what Lotus writes into FULLNODE_API_INFO:
//
//	<token>:/ip4/127.0.0.1/tcp/1234/http   → http://127.0.0.1:1234/rpc/v1
//	/ip4/127.0.0.1/tcp/1234                → http://127.0.0.1:1234/rpc/v1
//	<token>:ws://host:1234/rpc/v1          → ws://host:1234/rpc/v1
//	https://host                           → https://host/rpc/v1
//
// A multiaddr ending in /ws, /wss or /https selects that scheme; otherwise
// http. A URL without a path gets Lotus' /rpc/v1.
func ParseAPIInfo(s string) (apiURL, token string, err error) {
	return ParseAPIInfoPath(s, apiPath)
}

// ParseAPIInfoPath is ParseAPIInfo for an API served at defaultPath (a
// multiaddr, or a URL without a path, gets it): lotus-miner's
// MINER_API_INFO names an API at /rpc/v0.
func ParseAPIInfoPath(s, defaultPath string) (apiURL, token string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", "", fmt.Errorf("empty API info")
	}
	addr := s
	if !strings.HasPrefix(s, "/") && !hasScheme(s) {
		i := strings.IndexByte(s, ':')
		if i < 0 {
			return "", "", fmt.Errorf("API info %q is neither token:address, a multiaddr nor a URL", s)
		}
		token, addr = s[:i], s[i+1:]
		if token == "" {
			return "", "", fmt.Errorf("API info %q has an empty token", s)
		}
	}
	if strings.HasPrefix(addr, "/") {
		apiURL, err = multiaddrURL(addr, defaultPath)
		if err != nil {
			return "", "", fmt.Errorf("parsing API info: %w", err)
		}
		return apiURL, token, nil
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", "", fmt.Errorf("parsing API address %q: %w", addr, err)
	}
	switch u.Scheme {
	case "http", "https", "ws", "wss":
	default:
		return "", "", fmt.Errorf("API address %q: unsupported scheme %q (want http, https, ws or wss)", addr, u.Scheme)
	}
	if u.Host == "" {
		return "", "", fmt.Errorf("API address %q has no host", addr)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = defaultPath
	}
	return u.String(), token, nil
}

// hasScheme reports whether s starts like a URL with one of the schemes
// the API is served over.
func hasScheme(s string) bool {
	for _, p := range []string{"http://", "https://", "ws://", "wss://"} {
		if strings.HasPrefix(strings.ToLower(s), p) {
			return true
		}
	}
	return false
}

// multiaddrURL turns /ip4/…/tcp/…[/http|/https|/ws|/wss] into the URL of
// the API at apiPath.
func multiaddrURL(s, apiPath string) (string, error) {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return "", fmt.Errorf("multiaddr %q: %w", s, err)
	}
	if _, err := m.ValueForProtocol(ma.P_TCP); err != nil {
		return "", fmt.Errorf("multiaddr %q: the API is served over TCP", s)
	}
	scheme := "http"
	for _, p := range []struct {
		code   int
		scheme string
	}{{ma.P_WSS, "wss"}, {ma.P_HTTPS, "https"}, {ma.P_WS, "ws"}, {ma.P_HTTP, "http"}} {
		if _, err := m.ValueForProtocol(p.code); err == nil {
			scheme = p.scheme
			break
		}
	}
	// Strip the application protocols so DialArgs sees only host and port.
	var hostPort ma.Multiaddr
	for _, c := range m {
		switch c.Protocol().Code {
		case ma.P_HTTP, ma.P_HTTPS, ma.P_WS, ma.P_WSS, ma.P_TLS:
			continue
		}
		hostPort = append(hostPort, c)
	}
	_, hp, err := manet.DialArgs(hostPort)
	if err != nil {
		return "", fmt.Errorf("multiaddr %q: %w", s, err)
	}
	return scheme + "://" + hp + apiPath, nil
}

// FromEnv dials the node named by FULLNODE_API_INFO.
func FromEnv(ctx context.Context) (chain.FullNode, jsonrpc.ClientCloser, error) {
	info := os.Getenv(EnvAPIInfo)
	if info == "" {
		return nil, nil, fmt.Errorf("%s is not set", EnvAPIInfo)
	}
	u, tok, err := ParseAPIInfo(info)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", EnvAPIInfo, err)
	}
	return Dial(ctx, u, tok)
}
