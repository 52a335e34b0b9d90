package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/filecoin-project/go-address"
	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v9/verifreg"
	"github.com/filecoin-project/go-state-types/crypto"
	"github.com/ipfs/go-cid"
	"github.com/oklog/ulid/v2"

	"github.com/ferry-fil/ferry/httpdeal/mk20"
)

// mk20Path is where a provider serves Curio's Market 2.0 API.
const mk20Path = "/market/mk20"

// DefaultUploadChunk is the chunk size of Upload: Curio's minimum, so that
// a resumed upload resends little.
const DefaultUploadChunk = 16 << 20

// MK20Error is a provider's non-200 answer: Curio's code and reason.
type MK20Error struct {
	Code   int
	Reason string
}

func (e *MK20Error) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("provider answered %d %s", e.Code, http.StatusText(e.Code))
	}
	return fmt.Sprintf("provider answered %d: %s", e.Code, e.Reason)
}

// MK20Client speaks Curio's Market 2.0 API to one provider, signing every
// request with CurioAuth.
type MK20Client struct {
	// BaseURL is the provider's HTTP server, e.g. http://127.0.0.1:7777.
	BaseURL string
	// Client is the signing wallet address, the deals' client.
	Client address.Address
	// Sign signs with Client's key (wallet.Wallet.Signer).
	Sign func(data []byte) (*crypto.Signature, error)
	// HTTP is the client used; nil is http.DefaultClient.
	HTTP *http.Client
	// Now is the clock of the signatures; nil is time.Now.
	Now func() time.Time
}

// do sends a signed request and returns the answer when it is 200, an
// *MK20Error otherwise.
func (c *MK20Client) do(ctx context.Context, method, path string, body io.Reader, size int64, contentType string) (*http.Response, error) {
	u, err := url.Parse(c.BaseURL + mk20Path + path)
	if err != nil {
		return nil, fmt.Errorf("mk20 URL: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("mk20 %s %s: %w", method, path, err)
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", contentType)
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	auth, err := mk20.SignAuth(c.Sign, c.Client, method, u.EscapedPath(), now())
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", auth)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mk20 %s %s: %w", method, path, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	why := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(b)), "Reason:"))
	return nil, &MK20Error{Code: resp.StatusCode, Reason: why}
}

// call sends a JSON body (nil: none) and decodes a JSON answer into out
// (nil: ignored).
func (c *MK20Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	var size int64
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding mk20 request: %w", err)
		}
		body, size = bytes.NewReader(b), int64(len(b))
	}
	resp, err := c.do(ctx, method, path, body, size, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, mk20.MaxBodySize)).Decode(out); err != nil {
		return fmt.Errorf("decoding the provider's answer to %s %s: %w", method, path, err)
	}
	return nil
}

// MakeDeal proposes the deal (POST /deal). A refusal is an *MK20Error.
func (c *MK20Client) MakeDeal(ctx context.Context, d *mk20.Deal) error {
	return c.call(ctx, http.MethodPost, "/deal", d, nil)
}

// Status returns a deal's status (GET /status/{id}).
func (c *MK20Client) Status(ctx context.Context, id ulid.ULID) (*mk20.ProductStatus, error) {
	var st mk20.ProductStatus
	if err := c.call(ctx, http.MethodGet, "/status/"+id.String(), nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Products lists what the provider offers (GET /products).
func (c *MK20Client) Products(ctx context.Context) ([]mk20.ProductName, error) {
	var pl mk20.ProductList
	err := c.call(ctx, http.MethodGet, "/products", nil, &pl)
	return pl.Products, err
}

// StartUpload starts a chunked upload (POST /uploads/{id}).
func (c *MK20Client) StartUpload(ctx context.Context, id ulid.ULID, rawSize uint64, chunkSize int64) error {
	return c.call(ctx, http.MethodPost, "/uploads/"+id.String(), mk20.StartUpload{RawSize: rawSize, ChunkSize: chunkSize}, nil)
}

// UploadStatus returns which chunks the provider has (GET /uploads/{id}).
func (c *MK20Client) UploadStatus(ctx context.Context, id ulid.ULID) (*mk20.UploadStatus, error) {
	var st mk20.UploadStatus
	if err := c.call(ctx, http.MethodGet, "/uploads/"+id.String(), nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// PutChunk uploads chunk n (from 1) of size bytes (PUT /uploads/{id}/{n}).
func (c *MK20Client) PutChunk(ctx context.Context, id ulid.ULID, n int, r io.Reader, size int64) error {
	resp, err := c.do(ctx, http.MethodPut, "/uploads/"+id.String()+"/"+strconv.Itoa(n), r, size, "application/octet-stream")
	if err != nil {
		return fmt.Errorf("uploading chunk %d: %w", n, err)
	}
	resp.Body.Close()
	return nil
}

// Finalize ends a chunked upload (POST /uploads/finalize/{id}), with no
// deal body.
func (c *MK20Client) Finalize(ctx context.Context, id ulid.ULID) error {
	resp, err := c.do(ctx, http.MethodPost, "/uploads/finalize/"+id.String(), nil, 0, "")
	if err != nil {
		return fmt.Errorf("finalizing the upload: %w", err)
	}
	resp.Body.Close()
	return nil
}

// Upload sends the file at path as the deal's chunked upload: it starts the
// upload (or finds it started), sends the chunks the provider is missing,
// in order, and finalizes. Run again after a failure it sends only what is
// missing. progress, if not nil, gets the bytes the provider has.
func (c *MK20Client) Upload(ctx context.Context, id ulid.ULID, path string, chunkSize int64, progress func(done, total uint64)) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening the upload: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("opening the upload: %w", err)
	}
	total := uint64(st.Size())
	if chunkSize <= 0 {
		chunkSize = DefaultUploadChunk
	}
	var me *MK20Error
	if err := c.StartUpload(ctx, id, total, chunkSize); err != nil && !(errors.As(err, &me) && me.Code == http.StatusConflict) {
		return fmt.Errorf("starting the upload: %w", err)
	}
	us, err := c.UploadStatus(ctx, id)
	if err != nil {
		return fmt.Errorf("reading the upload's status: %w", err)
	}
	if want := int((total + uint64(chunkSize) - 1) / uint64(chunkSize)); us.TotalChunks != want {
		return fmt.Errorf("the upload was started with %d chunks, not the %d of %d-byte chunks: use the chunk size it was started with", us.TotalChunks, want, chunkSize)
	}
	chunkLen := func(n int) int64 { return min(chunkSize, int64(total)-int64(n-1)*chunkSize) }
	done := total
	for _, n := range us.MissingChunks {
		done -= uint64(chunkLen(n))
	}
	if progress != nil {
		progress(done, total)
	}
	for _, n := range us.MissingChunks {
		off, size := int64(n-1)*chunkSize, chunkLen(n)
		if err := c.PutChunk(ctx, id, n, io.NewSectionReader(f, off, size), size); err != nil {
			return err
		}
		done += uint64(size)
		if progress != nil {
			progress(done, total)
		}
	}
	return c.Finalize(ctx, id)
}

// DDORequest is an mk20 ddo_v1 deal as the user gives it.
type DDORequest struct {
	// ID names the deal; the zero ULID means a new one.
	ID ulid.ULID
	// Client is the client's wallet address.
	Client address.Address
	// Provider is the miner.
	Provider address.Address
	// PieceCID is the piece CID v2 of the payload.
	PieceCID cid.Cid
	// Raw marks a payload that is not a CAR (then it is not indexed).
	Raw bool
	// URL is where the provider downloads the payload; "" means the client
	// uploads it.
	URL string
	// Headers go with the download.
	Headers map[string]string
	// FallbackURLs are other places of the same payload, tried in order
	// when URL fails for good or runs out of retries (Market 2.0's
	// fallback URLs). Headers are not sent to them.
	FallbackURLs []string
	// StartEpoch, if not 0, is when the piece must be proven.
	StartEpoch abi.ChainEpoch
	// Duration is the deal's length (at least mk20.MinDuration without an
	// allocation); 0 means DefaultDuration.
	Duration abi.ChainEpoch
	// AllocationID, if not 0, is the client's verified allocation.
	AllocationID verifreg.AllocationId
	// SkipIPNIAnnounce asks the provider not to announce the payload.
	SkipIPNIAnnounce bool
}

// Deal makes the mk20.Deal of the request.
func (r *DDORequest) Deal() *mk20.Deal {
	id := r.ID
	if id == (ulid.ULID{}) {
		id = ulid.Make()
	}
	d := &mk20.Deal{Identifier: id, Client: r.Client.String(), Data: &mk20.DataSource{PieceCID: r.PieceCID}}
	if r.Raw {
		d.Data.Format.Raw = &mk20.FormatBytes{}
	} else {
		d.Data.Format.Car = &mk20.FormatCar{}
	}
	if r.URL == "" {
		d.Data.SourceHTTPPut = &mk20.DataSourceHTTPPut{}
	} else {
		u := mk20.HTTPURL{URL: r.URL, Headers: http.Header{}}
		for k, v := range r.Headers {
			u.Headers.Set(k, v)
		}
		d.Data.SourceHTTP = &mk20.DataSourceHTTP{URLs: []mk20.HTTPURL{u}}
		for i, f := range r.FallbackURLs {
			d.Data.SourceHTTP.URLs = append(d.Data.SourceHTTP.URLs, mk20.HTTPURL{URL: f, Priority: i, Fallback: true})
		}
	}
	ddo := &mk20.DDOV1{Provider: r.Provider, Duration: r.Duration}
	if ddo.Duration == 0 {
		ddo.Duration = DefaultDuration
	}
	if r.StartEpoch != 0 {
		s := r.StartEpoch
		ddo.StartEpoch = &s
	}
	if r.AllocationID != 0 {
		a := r.AllocationID
		ddo.AllocationID = &a
	}
	d.Products.DDOV1 = ddo
	d.Products.RetrievalV1 = &mk20.RetrievalV1{Indexing: !r.Raw, AnnouncePayload: !r.Raw && !r.SkipIPNIAnnounce}
	return d
}

// FindMK20 returns the first of the base URLs (DealBaseURLs) whose Market
// 2.0 API answers GET /products, with a client for it.
func FindMK20(ctx context.Context, bases []string, c MK20Client) (*MK20Client, error) {
	var errs []error
	for _, b := range bases {
		cc := c
		cc.BaseURL = b
		tctx, cancel := context.WithTimeout(ctx, readTimeout)
		_, err := cc.Products(tctx)
		cancel()
		if err == nil {
			return &cc, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, fmt.Errorf("%s: %w", b, err))
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("%w: the miner has no TCP address", ErrNoHTTPDeals)
	}
	return nil, fmt.Errorf("%w: %w", ErrNoHTTPDeals, errors.Join(errs...))
}
