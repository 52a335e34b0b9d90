package client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/ferry-fil/ferry/internal/iocount"
	"github.com/ferry-fil/ferry/piece"
	"github.com/ferry-fil/ferry/retrieval"
	"github.com/ferry-fil/ferry/wire"
)

// ErrNoHTTPTransport is returned when a provider serves no HTTP retrieval.
var ErrNoHTTPTransport = errors.New("no HTTP retrieval transport")

// HTTPURL turns a transport multiaddr such as /ip4/127.0.0.1/tcp/7777/http
// (or /dns/host/tcp/443/https, /…/tls/http) into a base URL such as
// http://127.0.0.1:7777.
func HTTPURL(a multiaddr.Multiaddr) (string, error) {
	scheme := ""
	tls := false
	var hostPort multiaddr.Multiaddr
	for _, c := range a {
		switch c.Protocol().Code {
		case multiaddr.P_HTTP:
			scheme = "http"
		case multiaddr.P_HTTPS:
			scheme = "https"
		case multiaddr.P_TLS:
			tls = true
		default:
			if scheme != "" {
				return "", fmt.Errorf("transport address %s: unexpected %s after the scheme", a, c.Protocol().Name)
			}
			hostPort = append(hostPort, c)
		}
	}
	if scheme == "" {
		return "", fmt.Errorf("transport address %s: not an HTTP address", a)
	}
	if tls {
		scheme = "https"
	}
	network, hp, err := manet.DialArgs(hostPort)
	if err != nil {
		return "", fmt.Errorf("transport address %s: %w", a, err)
	}
	if !strings.HasPrefix(network, "tcp") {
		return "", fmt.Errorf("transport address %s: HTTP is served over TCP", a)
	}
	u := scheme + "://" + hp
	if pu, err := url.Parse(u); err != nil || pu.Host != hp || pu.Port() == "" {
		return "", fmt.Errorf("transport address %s: %q is not a usable host and port", a, hp)
	}
	return u, nil
}

// HTTPBaseURL picks the first usable address of the "http" transport in a
// transports answer and returns it as a base URL.
func HTTPBaseURL(resp *wire.QueryResponse) (string, error) {
	var errs []error
	for _, p := range resp.Protocols {
		if p.Name != "http" {
			continue
		}
		addrs, err := p.Multiaddrs()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, a := range addrs {
			u, err := HTTPURL(a)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			return u, nil
		}
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("%w: %v", ErrNoHTTPTransport, errors.Join(errs...))
	}
	return "", ErrNoHTTPTransport
}

// ProviderHTTPURL asks the provider for its retrieval transports over
// libp2p and returns the base URL of its HTTP one.
func ProviderHTTPURL(ctx context.Context, h host.Host, p *Provider) (string, error) {
	resp, err := Transports(ctx, h, p)
	if err != nil {
		return "", err
	}
	u, err := HTTPBaseURL(resp)
	if err != nil {
		return "", fmt.Errorf("miner %s: %w", p.Miner, err)
	}
	return u, nil
}

// RetrieveRequest says what to get back and where to put it.
type RetrieveRequest struct {
	// BaseURL is the provider's HTTP retrieval server, e.g.
	// http://127.0.0.1:7777.
	BaseURL string
	// Source names the provider in error messages (the miner address);
	// empty means BaseURL.
	Source string
	// CID is a piece CID when Piece is set, else a payload (DAG root) CID.
	CID cid.Cid
	// Piece fetches the piece's bytes (/piece/{cid}) instead of a DAG.
	Piece bool
	// Path is a UnixFS path under a payload CID ("dir/file.txt"): the file
	// or directory it names is retrieved instead of the whole DAG. The
	// path is resolved over blocks the client checks itself.
	Path string
	// Out is the file (or, with Extract, the file or directory) to write.
	// It must not exist.
	Out string
	// Extract writes the UnixFS files of the DAG to Out instead of a CAR.
	Extract bool
	// Progress, when set, is called with the number of bytes received so
	// far.
	Progress func(received int64)
	// HTTPClient is the client to use; nil means http.DefaultClient.
	HTTPClient *http.Client
}

// RetrieveResult describes a finished retrieval.
type RetrieveResult struct {
	// URL is the base URL the data came from.
	URL string `json:"url"`
	// CID is the piece or payload CID retrieved.
	CID string `json:"cid"`
	// Bytes is the number of bytes received (and verified).
	Bytes int64 `json:"bytes"`
	// Out is where the data was written.
	Out string `json:"out"`
}

// PartialSuffix is appended to Out while a retrieval is writing it.
const PartialSuffix = ".partial"

// Retrieve downloads a piece or a DAG from the provider's HTTP server,
// verifying it as it streams (the piece commitment, or every block's hash
// and the DAG's completeness). It writes Out+".partial" and renames it to Out
// only once everything checked out; on any failure nothing is left at
// either path. Verification failures wrap retrieval.ErrVerification.
func Retrieve(ctx context.Context, req RetrieveRequest) (*RetrieveResult, error) {
	source := req.Source
	if source == "" {
		source = req.BaseURL
	}
	if req.BaseURL == "" {
		return nil, errors.New("retrieval: no provider URL")
	}
	if !req.CID.Defined() {
		return nil, errors.New("retrieval: no CID")
	}
	if req.Out == "" {
		return nil, errors.New("retrieval: no output path")
	}
	if req.Piece && req.Extract {
		return nil, errors.New("retrieval: a piece cannot be extracted; retrieve its payload CID instead")
	}
	if req.Piece && strings.Trim(req.Path, "/") != "" {
		return nil, errors.New("retrieval: a piece has no paths; give its payload CID with the path")
	}
	if req.Piece {
		if _, _, _, err := piece.ParseAnyCID(req.CID); err != nil {
			return nil, fmt.Errorf("retrieval: %s: %w", req.CID, err)
		}
	}
	if _, err := os.Lstat(req.Out); err == nil {
		return nil, fmt.Errorf("retrieval: %s already exists", req.Out)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("retrieval: %w", err)
	}
	partial := req.Out + PartialSuffix
	if fi, err := os.Lstat(partial); err == nil {
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("retrieval: %s exists (left by an interrupted retrieval?); remove it first", partial)
		}
		// A stale partial file of ours: it is overwritten below.
	}

	var opts []retrieval.FetchOption
	if req.HTTPClient != nil {
		opts = append(opts, retrieval.WithHTTPClient(req.HTTPClient))
	}
	res := &RetrieveResult{URL: req.BaseURL, CID: req.CID.String(), Out: req.Out}
	fail := func(err error) (*RetrieveResult, error) {
		if errors.Is(err, retrieval.ErrVerification) {
			return nil, &VerificationError{Source: source, Err: err}
		}
		return nil, fmt.Errorf("retrieval from %s: %w", source, err)
	}
	if !req.Piece && strings.Trim(req.Path, "/") != "" {
		c, err := retrieval.ResolvePath(ctx, req.BaseURL, req.CID, req.Path, opts...)
		if err != nil {
			return fail(err)
		}
		req.CID = c
		res.CID = c.String()
	}

	if !req.Extract {
		n, err := fetchToFile(ctx, partial, req, opts)
		res.Bytes = n
		if err != nil {
			os.Remove(partial)
			return fail(err)
		}
		if err := os.Rename(partial, req.Out); err != nil {
			os.Remove(partial)
			return nil, fmt.Errorf("retrieval: %w", err)
		}
		return res, nil
	}

	// Extract: the CAR goes to a temporary file next to Out, the files to
	// Out.partial, which becomes Out.
	if err := os.Remove(partial); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("retrieval: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(req.Out), "."+filepath.Base(req.Out)+".*.car")
	if err != nil {
		return nil, fmt.Errorf("retrieval: creating the temporary CAR file: %w", err)
	}
	carPath := tmp.Name()
	tmp.Close()
	defer os.Remove(carPath)
	n, err := fetchToFile(ctx, carPath, req, opts)
	res.Bytes = n
	if err != nil {
		return fail(err)
	}
	if err := retrieval.ExtractCAR(ctx, carPath, req.CID, partial); err != nil {
		os.RemoveAll(partial)
		return nil, fmt.Errorf("retrieval: extracting %s: %w", req.CID, err)
	}
	if err := os.Rename(partial, req.Out); err != nil {
		os.RemoveAll(partial)
		return nil, fmt.Errorf("retrieval: %w", err)
	}
	return res, nil
}

// fetchToFile streams the piece or CAR into path (created or truncated),
// synced before it returns, and returns the bytes received.
func fetchToFile(ctx context.Context, path string, req RetrieveRequest, opts []retrieval.FetchOption) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, fmt.Errorf("creating %s: %w", path, err)
	}
	var written atomic.Int64
	cw := iocount.Writer{W: f, N: &written, Progress: req.Progress}
	if req.Piece {
		err = retrieval.FetchPiece(ctx, req.BaseURL, req.CID, cw, opts...)
	} else {
		err = retrieval.FetchCAR(ctx, req.BaseURL, req.CID, cw, opts...)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("writing %s: %w", path, cerr)
	}
	return written.Load(), err
}

// VerificationError is a retrieval whose data did not match the CID asked
// for. It unwraps to retrieval.ErrVerification.
type VerificationError struct {
	// Source names the provider (miner address or URL).
	Source string
	// Err is the fetch error, wrapping retrieval.ErrVerification.
	Err error
}

func (e *VerificationError) Error() string {
	// Say "failed verification" once: drop the sentinel's own words from the
	// detail.
	detail := strings.Replace(e.Err.Error(), retrieval.ErrVerification.Error()+": ", "", 1)
	return fmt.Sprintf("retrieval from %s failed verification: %s", e.Source, detail)
}

// Unwrap returns the fetch error.
func (e *VerificationError) Unwrap() error { return e.Err }
