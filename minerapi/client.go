package minerapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-jsonrpc"
	"github.com/filecoin-project/go-jsonrpc/auth"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/google/uuid"
	"github.com/ipfs/go-cid"

	"github.com/ferry-fil/ferry/chain"
	"github.com/ferry-fil/ferry/chain/lotus"
	"github.com/ferry-fil/ferry/piece"
)

// EnvAPIInfo is the environment variable Lotus tools read lotus-miner's
// address and token from.
const EnvAPIInfo = "MINER_API_INFO"

// APIPath is where lotus-miner serves its API.
const APIPath = "/rpc/v0"

// Errors callers may test for with errors.Is.
var (
	// ErrUnavailable: the miner API could not be reached or the
	// connection broke during the call (down, restarting, network). It
	// is transient: try again later.
	ErrUnavailable = errors.New("lotus-miner API unavailable")
	// ErrUnauthorized: the miner refused the token (HTTP 401 or 403).
	ErrUnauthorized = errors.New("lotus-miner API refused the token")
)

// ParseAPIInfo splits MINER_API_INFO-style text (token:multiaddr, a
// multiaddr or a URL) into the URL of the API and the token.
func ParseAPIInfo(s string) (apiURL, token string, err error) {
	return lotus.ParseAPIInfoPath(s, APIPath)
}

// Client calls a lotus-miner API (or a ferryd serving it). Create it with
// Dial or DialURL; it is safe for concurrent use. Errors say which method
// failed; a miner that cannot be reached gives ErrUnavailable.
type Client struct {
	api     proxy
	closer  jsonrpc.ClientCloser
	apiURL  string
	pushURL *url.URL // <api>/../streams/v0/push
	token   string
	httpc   *http.Client // push streams and /remote reads; follows no redirects itself
}

// Dial connects to the API named by apiInfo (see ParseAPIInfo), or by
// MINER_API_INFO when apiInfo is empty.
func Dial(ctx context.Context, apiInfo string) (*Client, error) {
	if apiInfo == "" {
		apiInfo = os.Getenv(EnvAPIInfo)
		if apiInfo == "" {
			return nil, fmt.Errorf("no lotus-miner API given and %s is not set", EnvAPIInfo)
		}
	}
	u, token, err := ParseAPIInfo(apiInfo)
	if err != nil {
		return nil, fmt.Errorf("lotus-miner API info: %w", err)
	}
	return DialURL(ctx, u, token)
}

// DialURL connects to the API at apiURL (http(s)://host:port/rpc/v0, or
// ws(s)://) with token (may be empty: read-only access). Nothing is sent
// until the first call.
func DialURL(ctx context.Context, apiURL, token string) (*Client, error) {
	push, err := pushURLFor(apiURL)
	if err != nil {
		return nil, err
	}
	c := &Client{apiURL: apiURL, pushURL: push, token: token}
	c.httpc = &http.Client{
		Transport: &authRoundTripper{next: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	header := http.Header{}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	c.closer, err = jsonrpc.NewMergeClient(ctx, apiURL, "Filecoin", []interface{}{&c.api.Internal}, header,
		jsonrpc.WithHTTPClient(c.httpc),
		jsonrpc.WithParamEncoder(new(io.Reader), c.encodeReader))
	if err != nil {
		c.httpc.CloseIdleConnections()
		return nil, fmt.Errorf("connecting to lotus-miner API at %s: %w", apiURL, err)
	}
	return c, nil
}

// pushURLFor is where push streams of the API at apiURL go, as Lotus'
// client derives it: <api>/../streams/v0/push, over http(s).
func pushURLFor(apiURL string) (*url.URL, error) {
	u, err := url.Parse(apiURL)
	if err != nil {
		return nil, fmt.Errorf("parsing lotus-miner API URL: %w", err)
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	case "http", "https":
	default:
		return nil, fmt.Errorf("lotus-miner API URL %q: scheme %q is not http, https, ws or wss", apiURL, u.Scheme)
	}
	u.Path = path.Join(u.Path, "../streams/v0/push")
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""
	return u, nil
}

// Close ends the client's connections.
func (c *Client) Close() {
	c.closer()
	c.httpc.CloseIdleConnections()
}

// URL is the API's URL.
func (c *Client) URL() string { return c.apiURL }

// statusError is an HTTP refusal of the token, typed so that it survives
// go-jsonrpc's wrapping.
type statusError struct{ status string }

func (e *statusError) Error() string { return ErrUnauthorized.Error() + " (HTTP " + e.status + ")" }
func (e *statusError) Is(target error) bool {
	return target == ErrUnauthorized
}

// authRoundTripper turns 401 and 403 answers into errors that say so.
type authRoundTripper struct{ next *http.Transport }

func (t *authRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		resp.Body.Close()
		return nil, &statusError{resp.Status}
	}
	return resp, nil
}

func (t *authRoundTripper) CloseIdleConnections() { t.next.CloseIdleConnections() }

// wrap says which method failed and classifies the failure: an error the
// miner answered stays as it is, a caller's cancellation too; anything
// else means the miner could not be reached (ErrUnavailable) or refused
// the token (ErrUnauthorized).
func wrap(method string, err error) error {
	var rpcErr *jsonrpc.JSONRPCError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &rpcErr), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, ErrUnauthorized):
		return fmt.Errorf("lotus-miner %s: %w", method, err)
	}
	return fmt.Errorf("lotus-miner %s: %w: %w", method, ErrUnavailable, err)
}

// Version returns the API's version.
func (c *Client) Version(ctx context.Context) (chain.APIVersion, error) {
	v, err := c.api.Internal.Version(ctx)
	return v, wrap("Version", err)
}

// AuthVerify returns the permissions token holds at the miner.
func (c *Client) AuthVerify(ctx context.Context, token string) ([]auth.Permission, error) {
	v, err := c.api.Internal.AuthVerify(ctx, token)
	return v, wrap("AuthVerify", err)
}

// Permissions returns the permissions of the client's own token (none
// without a token: the miner then allows reads only).
func (c *Client) Permissions(ctx context.Context) ([]auth.Permission, error) {
	if c.token == "" {
		return nil, nil
	}
	return c.AuthVerify(ctx, c.token)
}

// ActorAddress returns the miner actor the API seals for.
func (c *Client) ActorAddress(ctx context.Context) (address.Address, error) {
	v, err := c.api.Internal.ActorAddress(ctx)
	return v, wrap("ActorAddress", err)
}

// ActorSectorSize returns the sector size of miner maddr.
func (c *Client) ActorSectorSize(ctx context.Context, maddr address.Address) (abi.SectorSize, error) {
	v, err := c.api.Internal.ActorSectorSize(ctx, maddr)
	return v, wrap("ActorSectorSize", err)
}

// SectorsStatus returns sector n with its pieces.
func (c *Client) SectorsStatus(ctx context.Context, n abi.SectorNumber, showOnChainInfo bool) (SectorInfo, error) {
	v, err := c.api.Internal.SectorsStatus(ctx, n, showOnChainInfo)
	return v, wrap("SectorsStatus", err)
}

// SectorsList lists the sectors.
func (c *Client) SectorsList(ctx context.Context) ([]abi.SectorNumber, error) {
	v, err := c.api.Internal.SectorsList(ctx)
	return v, wrap("SectorsList", err)
}

// SectorsListInStates lists the sectors in any of states.
func (c *Client) SectorsListInStates(ctx context.Context, states []SectorState) ([]abi.SectorNumber, error) {
	v, err := c.api.Internal.SectorsListInStates(ctx, states)
	return v, wrap("SectorsListInStates", err)
}

// SectorsSummary counts the sectors in each state.
func (c *Client) SectorsSummary(ctx context.Context) (map[SectorState]int, error) {
	v, err := c.api.Internal.SectorsSummary(ctx)
	return v, wrap("SectorsSummary", err)
}

// SectorsUnsealPiece makes sure an unsealed copy of the range exists,
// unsealing it if needed (admin).
func (c *Client) SectorsUnsealPiece(ctx context.Context, sector SectorRef, offset UnpaddedByteIndex, size abi.UnpaddedPieceSize, randomness abi.SealRandomness, commd *cid.Cid) error {
	return wrap("SectorsUnsealPiece", c.api.Internal.SectorsUnsealPiece(ctx, sector, offset, size, randomness, commd))
}

// StorageFindSector lists the storage paths holding sector files of kind
// ft (admin).
func (c *Client) StorageFindSector(ctx context.Context, sector abi.SectorID, ft SectorFileType, ssize abi.SectorSize, allowFetch bool) ([]SectorStorageInfo, error) {
	v, err := c.api.Internal.StorageFindSector(ctx, sector, ft, ssize, allowFetch)
	return v, wrap("StorageFindSector", err)
}

// StorageList lists the sector files of each storage path (admin).
func (c *Client) StorageList(ctx context.Context) (map[StorageID][]Decl, error) {
	v, err := c.api.Internal.StorageList(ctx)
	return v, wrap("StorageList", err)
}

// StorageInfo describes storage path id (admin).
func (c *Client) StorageInfo(ctx context.Context, id StorageID) (StorageInfo, error) {
	v, err := c.api.Internal.StorageInfo(ctx, id)
	return v, wrap("StorageInfo", err)
}

// SectorAddPieceToAny hands a piece to the miner (admin): size is the
// unpadded piece size and data its payload, at most size bytes (a shorter
// payload is zero-filled to size, as the piece commitment assumes). The
// bytes are streamed while the call runs (a push stream), never held in
// memory. The miner's call is not idempotent: see Sealer for the lookup
// that keeps a retry from placing a piece twice.
func (c *Client) SectorAddPieceToAny(ctx context.Context, size abi.UnpaddedPieceSize, data io.Reader, d PieceDealInfo) (SectorOffset, error) {
	if err := piece.ValidateUnpadded(size); err != nil {
		return SectorOffset{}, fmt.Errorf("lotus-miner SectorAddPieceToAny: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	up := &upload{c: c, ctx: ctx, id: uuid.New(), size: int64(size),
		body: &exactReader{r: data, left: int64(size), size: int64(size)}, done: make(chan error, 1)}
	off, err := c.api.Internal.SectorAddPieceToAny(ctx, size, up, d)
	// The call's answer is the truth: once it is in, the push is over
	// (a miner may answer without reading, e.g. for a deal it already
	// has pending).
	cancel()
	perr := up.wait()
	if err != nil {
		var derr *dataError
		if errors.As(perr, &derr) {
			return SectorOffset{}, fmt.Errorf("lotus-miner SectorAddPieceToAny: %w (the miner answered: %v)", perr, err)
		}
		if perr != nil && !errors.Is(perr, context.Canceled) {
			err = fmt.Errorf("%w (push stream: %v)", err, perr)
		}
		return SectorOffset{}, wrap("SectorAddPieceToAny", err)
	}
	return off, nil
}

// upload is the reader parameter of one SectorAddPieceToAny call: the
// param encoder starts its push, the call joins it.
type upload struct {
	c       *Client
	ctx     context.Context
	id      uuid.UUID
	size    int64
	body    *exactReader
	started atomic.Bool
	done    chan error
}

// Read makes upload an io.Reader for go-jsonrpc's encoder; its bytes only
// ever travel through the push stream.
func (u *upload) Read([]byte) (int, error) {
	return 0, errors.New("a push stream's reader is read by its push, not directly")
}

// encodeReader is the client's encoder of reader parameters: it starts the
// push of an upload and sends the stream's id in its place.
func (c *Client) encodeReader(v reflect.Value) (reflect.Value, error) {
	u, ok := v.Interface().(*upload)
	if !ok || u.c != c {
		return reflect.Value{}, fmt.Errorf("reader parameters are sent through Client.SectorAddPieceToAny (got %T)", v.Interface())
	}
	if u.started.Swap(true) {
		return reflect.Value{}, errors.New("a push stream's reader was encoded twice")
	}
	go func() { u.done <- u.push() }()
	return reflect.ValueOf(ReaderStream{Type: StreamPush, Info: u.id.String()}), nil
}

// wait returns the push's outcome once it has finished (nil if it never
// started, or when the miner did not want the bytes).
func (u *upload) wait() error {
	if !u.started.Load() {
		return nil
	}
	return <-u.done
}

// push sends the bytes the way Lotus' client does: HEAD the stream's URL,
// following 302s, until the miner is ready (200) or does not want them
// (204), then POST them.
func (u *upload) push() error {
	target := u.c.pushURL.JoinPath(u.id.String())
	for hops := 0; ; hops++ {
		if hops > 10 {
			return fmt.Errorf("push stream %s: more than 10 redirects", u.id)
		}
		resp, err := u.c.pushRequest(u.ctx, http.MethodHead, target, nil, 0)
		if err != nil {
			return err
		}
		resp.Body.Close()
		switch resp.StatusCode {
		case http.StatusOK:
		case http.StatusFound:
			next, err := resp.Location()
			if err != nil {
				return fmt.Errorf("push stream %s: redirect: %w", u.id, err)
			}
			target = next
			continue
		case http.StatusNoContent:
			return nil // closed unread: the call's answer says why
		default:
			return fmt.Errorf("push stream %s: HEAD answered %s", u.id, resp.Status)
		}
		break
	}
	resp, err := u.c.pushRequest(u.ctx, http.MethodPost, target, u.body, u.size)
	if derr := u.body.failed.Load(); derr != nil {
		// The payload's own fault, whatever the transport made of the
		// aborted request (it may report the broken connection instead).
		if err == nil {
			resp.Body.Close()
		}
		return derr
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("push stream %s: POST answered %s: %s", u.id, resp.Status, strings.TrimSpace(string(msg)))
}

func (c *Client) pushRequest(ctx context.Context, method string, target *url.URL, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, target.String(), body)
	if err != nil {
		return nil, fmt.Errorf("push stream request: %w", err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if body != nil {
		req.ContentLength = size
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.httpc.Do(req)
	if err != nil {
		var derr *dataError
		if errors.As(err, &derr) {
			return nil, derr
		}
		return nil, fmt.Errorf("push stream %s %s: %w", method, target.Redacted(), err)
	}
	return resp, nil
}

// dataError is a failure of the piece's own data (not of the miner).
type dataError struct{ err error }

func (e *dataError) Error() string { return e.err.Error() }
func (e *dataError) Unwrap() error { return e.err }

// exactReader gives exactly size bytes: r's, then zeros. More than size
// bytes in r is an error, found before the last byte is given so the
// miner never sees a whole body.
type exactReader struct {
	r      io.Reader
	left   int64
	size   int64
	zeros  bool
	failed atomic.Pointer[dataError] // the error that ended the payload, read after the POST
}

func (e *exactReader) fail(err error) *dataError {
	d := &dataError{err}
	e.failed.Store(d)
	return d
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	if e.zeros {
		clear(p)
		e.left -= int64(len(p))
		return len(p), nil
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case err == io.EOF:
		e.zeros = true
		if n == 0 {
			return e.Read(p)
		}
	case err != nil:
		return n, e.fail(fmt.Errorf("reading piece data: %w", err))
	case e.left == 0:
		var b [1]byte
		if k, _ := io.ReadFull(e.r, b[:]); k > 0 {
			return 0, e.fail(fmt.Errorf("piece data is longer than the piece's %d unpadded bytes", e.size))
		}
	}
	return n, nil
}
