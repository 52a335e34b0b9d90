package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/ipni/go-libipni/maurl"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/wire"
)

// Routes of Curio's mk12 over HTTP (httpdeal serves them), relative to a
// provider's base URL.
const (
	mk12StorePath  = "/market/mk12/store"
	mk12StatusPath = "/market/mk12/status"
	mk12AskPath    = "/market/mk12/ask"
)

// ErrNoHTTPDeals is returned when none of a provider's addresses answered
// an mk12 request over HTTP.
var ErrNoHTTPDeals = errors.New("no HTTP deal endpoint answered")

// DealBaseURLs turns a miner's on-chain multiaddrs into the base URLs its
// HTTP deal APIs may answer at, as Curio's sptool does: each TCP address
// becomes a URL (/dns/h/tcp/443/https → https://h:443, /ip4/a/tcp/p →
// http://a:p), ws becomes http and wss https. Addresses that name an HTTP
// protocol (http, https, ws, wss, tls) come first, in their order; the
// others follow. Addresses that are not TCP are left out.
func DealBaseURLs(addrs []multiaddr.Multiaddr) []string {
	var named, plain []string
	for _, a := range addrs {
		network, _, err := manet.DialArgs(a)
		if err != nil || !strings.HasPrefix(network, "tcp") {
			continue
		}
		u, err := maurl.ToURL(a)
		if err != nil {
			continue
		}
		switch u.Scheme {
		case "ws":
			u.Scheme = "http"
		case "wss":
			u.Scheme = "https"
		}
		isHTTP := false
		for _, c := range a {
			switch c.Protocol().Code {
			case multiaddr.P_HTTP, multiaddr.P_HTTPS, multiaddr.P_WS, multiaddr.P_WSS, multiaddr.P_TLS:
				isHTTP = true
			}
		}
		if isHTTP {
			named = append(named, u.String())
		} else {
			plain = append(plain, u.String())
		}
	}
	return append(named, plain...)
}

// mk12Call sends req as CBOR to path at each base URL in turn and decodes
// the first 200 answer into resp, returning the base URL that answered.
// Like sptool it goes on to the next URL after a failure to connect or any
// other status.
func mk12Call(ctx context.Context, hc *http.Client, bases []string, method, path string, req wire.Message, resp wire.Message) (string, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	var body bytes.Buffer
	if err := wire.Write(&body, req); err != nil {
		return "", err
	}
	var errs []error
	for _, base := range bases {
		err := mk12Once(ctx, hc, base+path, method, body.Bytes(), resp)
		if err == nil {
			return base, nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return "", fmt.Errorf("%w: the miner has no TCP address", ErrNoHTTPDeals)
	}
	return "", fmt.Errorf("%w: %w", ErrNoHTTPDeals, errors.Join(errs...))
}

func mk12Once(ctx context.Context, hc *http.Client, url, method string, body []byte, resp wire.Message) error {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	hreq.Header.Set("Content-Type", "application/cbor")
	hresp, err := hc.Do(hreq)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer hresp.Body.Close()
	if hresp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(hresp.Body, 4096))
		return fmt.Errorf("%s %s: HTTP %s", method, url, hresp.Status)
	}
	if err := wire.Read(hresp.Body, resp, 0); err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	return nil
}

// ProposeHTTP sends a deal proposal to Curio's mk12 store route at each of
// the base URLs in turn (see DealBaseURLs) and returns the first answer and
// the URL that gave it.
func ProposeHTTP(ctx context.Context, hc *http.Client, bases []string, params *wire.DealParams) (*wire.DealResponse, string, error) {
	var resp wire.DealResponse
	base, err := mk12Call(ctx, hc, bases, http.MethodPost, mk12StorePath, params, &resp)
	if err != nil {
		return nil, "", fmt.Errorf("proposing the deal over HTTP: %w", err)
	}
	return &resp, base, nil
}

// DealStatusHTTP sends a signed deal status request (GET with a CBOR body,
// as Curio's client does) to each base URL in turn.
func DealStatusHTTP(ctx context.Context, hc *http.Client, bases []string, req *wire.DealStatusRequest) (*wire.DealStatusResponse, error) {
	var resp wire.DealStatusResponse
	if _, err := mk12Call(ctx, hc, bases, http.MethodGet, mk12StatusPath, req, &resp); err != nil {
		return nil, fmt.Errorf("querying the deal status over HTTP: %w", err)
	}
	return &resp, nil
}

// QueryAskHTTP asks for the provider's storage ask (GET with a CBOR body)
// at each base URL in turn and checks it as QueryAsk does.
func QueryAskHTTP(ctx context.Context, n chain.Node, hc *http.Client, bases []string, p *Provider) (*wire.StorageAsk, error) {
	var resp wire.AskResponse
	if _, err := mk12Call(ctx, hc, bases, http.MethodGet, mk12AskPath, &wire.AskRequest{Miner: p.Miner}, &resp); err != nil {
		return nil, fmt.Errorf("querying the ask over HTTP: %w", err)
	}
	return checkAsk(ctx, n, p, &resp)
}

// proposeAny proposes over HTTP first, as sptool does, then over libp2p
// when no HTTP address answers.
func proposeAny(ctx context.Context, h host.Host, p *Provider, params *wire.DealParams) (*wire.DealResponse, error) {
	if bases := DealBaseURLs(p.AddrInfo.Addrs); len(bases) > 0 {
		resp, _, err := ProposeHTTP(ctx, nil, bases, params)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return Propose(ctx, h, p, params)
}
