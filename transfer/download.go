package transfer

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultMaxConcurrent = 20
	DefaultStallTimeout  = 5 * time.Minute
	DefaultMaxRetries    = 10
	DefaultMinRate       = 32 << 10 // bytes per second
	DefaultRateWindow    = 10 * time.Minute
	DefaultBackoffMin    = time.Second
	DefaultBackoffMax    = time.Minute
	DefaultBufferSize    = 1 << 20

	// buffers is how many buffers of Config.BufferSize one Download uses:
	// the network fills some while the file and tee take others.
	buffers = 4

	// Progress is reported whenever progressBytes more are on disk, and
	// every progressEvery while fewer came.
	progressBytes = 64 << 10
	progressEvery = time.Second

	// writebackBytes is how much a Download writes before it starts the
	// writeback of what it wrote.
	writebackBytes = 8 << 20
)

// Errors a Download may wrap; test them with errors.Is.
var (
	// ErrSizeMismatch: the server's size differs from the declared size, or
	// the server sent more bytes than declared. Not retried.
	ErrSizeMismatch = errors.New("transfer: server size differs from the declared size")
	// ErrPrivateAddress: the URL leads to a loopback, private, link-local or
	// otherwise non-public address and the Config does not allow those. Not
	// retried.
	ErrPrivateAddress = errors.New("transfer: refusing to connect to a non-public address")
	// ErrStalled: an attempt received no bytes for the stall timeout. Retried.
	ErrStalled = errors.New("transfer: stalled")
	// ErrTooSlow: the server sent less than the minimum rate over the rate
	// window. It ends the Download but is not permanent.
	ErrTooSlow = errors.New("transfer: slower than the minimum rate")
	// ErrContentChanged: bytes the server sent again — from the start, when
	// it ignored a Range request, or the last byte of a complete file —
	// differ from the ones already on disk. Not retried.
	ErrContentChanged = errors.New("transfer: content differs from the bytes already downloaded")
)

// StatusError is an HTTP response status that ended an attempt.
type StatusError struct {
	Code   int    // HTTP status code
	Status string // status line text, such as "404 Not Found"
}

func (e *StatusError) Error() string { return "transfer: HTTP status " + e.Status }

// retryable reports whether a later attempt may succeed: request timeouts,
// rate limiting and server errors.
func (e *StatusError) retryable() bool {
	return e.Code == http.StatusRequestTimeout || e.Code == http.StatusTooManyRequests || e.Code >= 500
}

// IsPermanent reports whether err, returned by Download or CheckURL, is one
// no retry can fix: the server's size differs from the declared one (or its
// body is longer), the URL is invalid or leads to a non-public address, the
// content changed under a resumed download, the server broke the Range
// protocol, or an HTTP status of 4xx other than 408 and 429. Everything else
// — server errors, resets, stalls, a full disk — may pass, and a later
// Download resumes from the bytes on disk.
func IsPermanent(err error) bool {
	var p permanentError
	if errors.As(err, &p) || errors.Is(err, ErrSizeMismatch) || errors.Is(err, ErrPrivateAddress) ||
		errors.Is(err, ErrContentChanged) || errors.Is(err, ErrInvalidURL) {
		return true
	}
	var se *StatusError
	return errors.As(err, &se) && !se.retryable()
}

// Config sets the limits and policies of a Downloader. Zero fields take the
// defaults documented on each.
type Config struct {
	// MaxConcurrent bounds the downloads running at once (default 20).
	// Download waits for a slot, or for its context to end. A free slot
	// goes to the waiting download whose client (Request.Client) has the
	// fewest running, the longest waiting among equals.
	MaxConcurrent int
	// MaxPerHost bounds the downloads running at once from one host
	// (host:port of the URL); zero means only MaxConcurrent applies.
	MaxPerHost int
	// MaxPerClient bounds the downloads running at once for one client, so
	// that one client's stalling downloads leave slots for the others
	// (default half of MaxConcurrent, rounded up; negative: only
	// MaxConcurrent applies).
	MaxPerClient int
	// StallTimeout aborts and retries an attempt that receives no bytes for
	// this long, waiting for the response headers included (default 5m).
	StallTimeout time.Duration
	// MaxRetries is how many times in all one Download retries after a
	// failed attempt before it gives up (default 10; negative: no retries).
	// Progress does not reset the count: a server that sends a little and
	// then stalls, again and again, does not hold a slot for ever. (A
	// response that ends early but where it said it would, as servers that
	// cap ranges do, is no failure.)
	MaxRetries int
	// BackoffMin and BackoffMax bound the wait between attempts, which
	// doubles after each failure (defaults 1s and 1m), with jitter. A
	// server's Retry-After is honoured up to BackoffMax.
	BackoffMin, BackoffMax time.Duration
	// MinRate and RateWindow bound a whole Download, retries and the waits
	// between them included: a Download whose server sent fewer than
	// MinRate × RateWindow bytes in a RateWindow ends with ErrTooSlow
	// (defaults 32 KiB/s and 10m; a negative MinRate turns the check off).
	// Windows in which the file or tee kept the Download from reading are
	// not judged.
	MinRate    int64
	RateWindow time.Duration
	// AllowPrivateAddresses allows connecting to loopback, private (RFC 1918,
	// RFC 4193), link-local and other non-public addresses. Keep it false on
	// mainnet; the devnet and tests set it since everything is loopback.
	AllowPrivateAddresses bool
	// Client, when set, is used for requests as is: its transport is then
	// responsible for the address policy, proxies and compression (Download
	// asks for identity encoding). When nil, New builds a client whose
	// dialer enforces AllowPrivateAddresses and which uses no proxy.
	Client *http.Client
	// BufferSize is the size of each of the 4 buffers a Download cycles
	// through: one goroutine reads the response into them while the
	// Download's goroutine writes them to the file and the tee (default
	// 1 MiB, so 4 MiB per running Download).
	BufferSize int
}

// Downloader runs HTTP downloads under the limits of its Config. It is safe
// for concurrent use.
type Downloader struct {
	cfg    Config
	client *http.Client
	slots  *slots
}

// Request names what to download.
type Request struct {
	// URL is an absolute http or https URL.
	URL string
	// Headers are sent with every request (Boost clients put credentials
	// here). Range and Accept-Encoding are set by the Downloader.
	Headers map[string]string
	// Size is the declared size in bytes: the server must agree and the file
	// never grows beyond it.
	Size uint64
	// Client names who the download is for: the deal client's peer ID or
	// wallet address. Slots are shared fairly among clients (see
	// Config.MaxConcurrent and MaxPerClient); requests without one count as
	// one client.
	Client string
	// Fallbacks are other places of the same bytes, in the order to try
	// them. The Downloader fetches from URL only; a caller whose download
	// failed for good (or ran out of retries) goes on with Next.
	Fallbacks []Source
}

// Source is one place to download from.
type Source struct {
	URL     string
	Headers map[string]string `json:",omitempty"`
}

// Sources are the request's URL and its fallbacks, in order.
func (r Request) Sources() []Source {
	return append([]Source{{URL: r.URL, Headers: r.Headers}}, r.Fallbacks...)
}

// Next is the request for the first fallback, with the rest as its
// fallbacks, or false when there is none.
func (r Request) Next() (Request, bool) {
	if len(r.Fallbacks) == 0 {
		return Request{}, false
	}
	next := r
	next.URL, next.Headers, next.Fallbacks = r.Fallbacks[0].URL, r.Fallbacks[0].Headers, r.Fallbacks[1:]
	return next, true
}

// New returns a Downloader with cfg's zero fields set to their defaults.
func New(cfg Config) *Downloader {
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.MaxPerHost < 0 {
		cfg.MaxPerHost = 0
	}
	if cfg.MaxPerClient == 0 {
		cfg.MaxPerClient = (cfg.MaxConcurrent + 1) / 2
	} else if cfg.MaxPerClient < 0 {
		cfg.MaxPerClient = 0
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = DefaultStallTimeout
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = DefaultMaxRetries
	} else if cfg.MaxRetries < 0 {
		cfg.MaxRetries = 0
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = cfg.BackoffMin
	}
	if cfg.BufferSize <= 0 {
		cfg.BufferSize = DefaultBufferSize
	}
	if cfg.MinRate == 0 {
		cfg.MinRate = DefaultMinRate
	}
	if cfg.RateWindow <= 0 {
		cfg.RateWindow = DefaultRateWindow
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Transport: newTransport(cfg)}
	}
	return &Downloader{
		cfg:    cfg,
		client: client,
		slots:  newSlots(cfg.MaxConcurrent, cfg.MaxPerHost, cfg.MaxPerClient),
	}
}

// newTransport builds the default transport: the address policy at dial time,
// no proxy, no transparent decompression.
func newTransport(cfg Config) *http.Transport {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if !cfg.AllowPrivateAddresses {
		dialer.Control = refusePrivate
	}
	dial := dialContext(dialer)
	perHost := cfg.MaxPerHost
	if perHost == 0 {
		perHost = cfg.MaxConcurrent
	}
	return &http.Transport{
		Proxy:               nil,
		DialContext:         dial,
		TLSHandshakeTimeout: 30 * time.Second,
		MaxIdleConns:        cfg.MaxConcurrent,
		MaxIdleConnsPerHost: perHost,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ReadBufferSize:      64 << 10,
	}
}

// CloseIdleConnections closes the kept-alive connections of the Downloader's
// client; call it when the Downloader is no longer used.
func (d *Downloader) CloseIdleConnections() { d.client.CloseIdleConnections() }

// hostKey is the host:port a URL connects to, for the per-host limit; a
// numeric host in any spelling is the address it names.
func hostKey(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if strings.EqualFold(u.Scheme, "https") {
			port = "443"
		}
	}
	host := strings.ToLower(u.Hostname())
	if ip, numeric, err := hostAddr(host); numeric && err == nil {
		host = ip.String()
	}
	return net.JoinHostPort(host, port)
}

// Download fetches req into the file at path, resuming from what is already
// there (Range: bytes=N-). Every byte from offset 0 is written to tee in
// order, the existing prefix replayed from the file first, so tee can compute
// CommP in the same pass; tee may be nil. Give each call a fresh tee: a
// failed call leaves its tee partway. progress, when not nil, is called with
// the bytes on disk (and through tee): once the file's bytes are replayed,
// then whenever 64 KiB more are on disk or a second has passed with fewer
// new ones, whichever comes first, and once at the end. The calls are one at
// a time, not always from the caller's goroutine, and none comes after
// Download returns. The file is fsynced before Download returns nil.
//
// A server that answers a Range request with the whole file (200) is read
// from the start: the bytes already on disk are compared with the ones
// received, not rewritten, and a difference is ErrContentChanged. Nothing on
// disk is ever truncated: a file longer than req.Size is an error.
//
// Download succeeds only once a response of this call has ended exactly at
// the declared size, so a server that sends more than declared fails every
// Download, not only the first. A file already holding req.Size bytes is
// therefore confirmed with a request for its last byte (Range: bytes=N-1-),
// whose answer must show the declared size and the same byte.
//
// Errors are wrapped with the URL as Redact shows it. Permanent errors
// (IsPermanent), local write or tee errors and TLS certificate errors end the
// Download at once; other failures are retried as Config says.
//
// Two Downloads must not write the same path at the same time.
func (d *Downloader) Download(ctx context.Context, req Request, path string, tee io.Writer, progress func(received uint64)) error {
	u, err := parseURL(req.URL)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	name := Redact(req.URL)
	if req.Size == 0 || req.Size > math.MaxInt64 {
		return permanent(fmt.Errorf("download %s: declared size %d out of range", name, req.Size))
	}
	for k, v := range req.Headers {
		if !validHeaderName(k) || !validHeaderValue(v) {
			return permanent(fmt.Errorf("download %s: invalid header %q", name, k))
		}
	}
	release, err := d.slots.acquire(ctx, hostKey(u), req.Client)
	if err != nil {
		return fmt.Errorf("download %s: %w", name, err)
	}
	defer release()

	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("download %s: opening %s: %w", name, path, err)
	}
	s := &session{
		d:        d,
		req:      req,
		name:     name,
		f:        f,
		tee:      tee,
		bufs:     make([][]byte, buffers),
		progress: progress,
	}
	for i := range s.bufs {
		s.bufs[i] = make([]byte, d.cfg.BufferSize)
	}
	err = s.run(ctx)
	if cerr := f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("download %s: closing %s: %w", name, path, cerr)
	}
	return err
}

// session is one Download call.
type session struct {
	d    *Downloader
	req  Request
	name string
	f    *os.File
	tee  io.Writer
	bufs [][]byte // buffers; bufs[0] and bufs[1] also serve replay and compare
	have uint64   // bytes on disk, all of them written to tee
	// flushed is where the file's writeback was last started: the bytes
	// before it are on their way to the disk, so the sync at the end of
	// the Download waits for the last few MiB, not for the whole file
	// held dirty in memory.
	flushed uint64

	retryAfter time.Duration // from the last response, if it said so

	progress func(uint64)
	pmu      sync.Mutex // serializes progress calls
	onDisk   uint64     // have, for the progress ticker; guarded by pmu
	reported uint64     // the value of the last progress call; guarded by pmu

	// received counts the body bytes read from the server. local counts
	// the entries into and exits from the phases in which the Download
	// waits for its own file and tee, not for the server — the reader
	// waiting for a free buffer, the writer finishing after the reader
	// stopped — so it is odd during one. The rate check reads both.
	received, local atomic.Uint64
}

func (s *session) run(ctx context.Context) error {
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("download %s: %w", s.name, err)
	}
	if st.Size() < 0 || uint64(st.Size()) > s.req.Size {
		return fmt.Errorf("download %s: %s holds %d bytes, more than the declared size %d", s.name, s.f.Name(), st.Size(), s.req.Size)
	}
	if err := s.replay(ctx, uint64(st.Size())); err != nil {
		return fmt.Errorf("download %s: %w", s.name, err)
	}
	s.report(true)
	if err := s.fetch(ctx); err != nil {
		s.report(false)
		return err
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("download %s: syncing %s: %w", s.name, s.f.Name(), err)
	}
	s.report(true)
	return nil
}

// fetch makes attempts until one ends at the declared size, within the
// retry budget and the minimum rate.
func (s *session) fetch(ctx context.Context) error {
	// The monitor reports progress on time and can end the whole
	// Download, between attempts too.
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { s.monitor(stop, cancel) })
	defer func() {
		close(stop)
		wg.Wait()
	}()
	// ended is the error of a Download whose context ended.
	ended := func() error {
		if ctx.Err() != nil {
			return fmt.Errorf("download %s: %w", s.name, ctx.Err())
		}
		return fmt.Errorf("download %s at byte %d: %w", s.name, s.have, context.Cause(sctx))
	}

	failures := 0
	for {
		s.retryAfter = 0
		err := s.attempt(sctx)
		if err == nil {
			if s.have == s.req.Size {
				break // the response ended at the declared size
			}
			continue // a partial response: ask for the rest
		}
		if sctx.Err() != nil {
			return ended()
		}
		if final(err) {
			return fmt.Errorf("download %s at byte %d: %w", s.name, s.have, err)
		}
		if failures >= s.d.cfg.MaxRetries {
			return fmt.Errorf("download %s at byte %d: giving up after %d failed attempts: %w", s.name, s.have, failures+1, err)
		}
		failures++
		if err := s.wait(sctx, failures); err != nil {
			return ended()
		}
	}
	return nil
}

// replay writes the first n bytes of the file to tee.
func (s *session) replay(ctx context.Context, n uint64) error {
	defer func() { s.onDisk, s.flushed = s.have, s.have }() // before the monitor starts
	if s.tee == nil {
		s.have = n
		return nil
	}
	for s.have < n {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := s.bufs[0][:min(uint64(len(s.bufs[0])), n-s.have)]
		if _, err := s.f.ReadAt(chunk, int64(s.have)); err != nil {
			return fmt.Errorf("replaying %s at byte %d: %w", s.f.Name(), s.have, err)
		}
		if _, err := s.tee.Write(chunk); err != nil {
			return fmt.Errorf("replaying %s into tee: %w", s.f.Name(), err)
		}
		s.have += uint64(len(chunk))
	}
	return nil
}

// monitor runs beside the attempts until stop is closed. Every second it
// reports progress not yet reported. After each rate window it ends the
// Download through cancel with ErrTooSlow if the server sent less than the
// minimum in it; a window in which the Download waited for its file or tee
// (s.local) is not judged.
func (s *session) monitor(stop <-chan struct{}, cancel context.CancelCauseFunc) {
	cfg := s.d.cfg
	progress := time.NewTicker(progressEvery)
	defer progress.Stop()
	var window <-chan time.Time // nil: no rate check
	if cfg.MinRate > 0 {
		t := time.NewTicker(cfg.RateWindow)
		defer t.Stop()
		window = t.C
	}
	least := max(1, uint64(float64(cfg.MinRate)*cfg.RateWindow.Seconds()))
	var lastReceived, lastLocal uint64
	for {
		select {
		case <-stop:
			return
		case <-progress.C:
			s.report(false)
			continue
		case <-window:
		}
		received, local := s.received.Load(), s.local.Load()
		if local == lastLocal && local%2 == 0 && received-lastReceived < least {
			cancel(fmt.Errorf("%w: %d bytes in %s, less than %d bytes/s", ErrTooSlow, received-lastReceived, cfg.RateWindow, cfg.MinRate))
			return
		}
		lastReceived, lastLocal = received, local
	}
}

// wait sleeps before attempt number failures+1.
func (s *session) wait(ctx context.Context, failures int) error {
	cfg := s.d.cfg
	delay := cfg.BackoffMin << min(failures-1, 30)
	if delay <= 0 || delay > cfg.BackoffMax {
		delay = cfg.BackoffMax
	}
	delay = delay/2 + rand.N(delay/2+1) // jitter in [delay/2, delay]
	if s.retryAfter > delay {
		delay = min(s.retryAfter, cfg.BackoffMax)
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// advanced notes that s.have bytes are on disk and reports them when they
// reach a multiple of progressBytes, which write never steps over: two
// reports are never more than progressBytes apart. Only the writer calls
// it.
func (s *session) advanced() {
	if s.progress == nil {
		return
	}
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.onDisk = s.have
	if s.have%progressBytes == 0 && s.reported != s.have {
		s.reported = s.have
		s.progress(s.have)
	}
}

// report calls progress with the bytes on disk if they were not reported
// yet, or in any case if always.
func (s *session) report(always bool) {
	if s.progress == nil {
		return
	}
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if always || s.onDisk != s.reported {
		s.reported = s.onDisk
		s.progress(s.onDisk)
	}
}

// permanentError marks an error that another attempt would not fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

// localError marks a failure of this machine (the file, the tee): the
// network is not to blame, so the Download stops instead of retrying, but
// the error is not permanent.
type localError struct{ err error }

func (e localError) Error() string { return e.err.Error() }
func (e localError) Unwrap() error { return e.err }

// final reports whether err ends a Download without another attempt:
// permanent errors, local errors and a certificate the server will present
// again.
func final(err error) bool {
	var l localError
	var cv *tls.CertificateVerificationError
	return IsPermanent(err) || errors.As(err, &l) || errors.As(err, &cv)
}

// attempt makes one request and copies its body to the file and tee until
// the declared size is reached or the attempt fails.
func (s *session) attempt(ctx context.Context) error {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(s.d.cfg.StallTimeout, func() { cancel(ErrStalled) })
	defer stall.Stop()
	// cause turns an error seen after a stall into ErrStalled.
	cause := func(err error) error {
		if c := context.Cause(actx); errors.Is(c, ErrStalled) && ctx.Err() == nil {
			return fmt.Errorf("%w: no bytes for %s", ErrStalled, s.d.cfg.StallTimeout)
		}
		return err
	}

	hreq, err := http.NewRequestWithContext(actx, http.MethodGet, s.req.URL, nil)
	if err != nil {
		return permanent(fmt.Errorf("building request: %w", err))
	}
	for k, v := range s.req.Headers {
		hreq.Header.Set(k, v)
	}
	hreq.Header.Set("Accept-Encoding", "identity")
	// Ask from the first byte not on disk; for a complete file, from its
	// last byte, so that the answer confirms the size.
	from := min(s.have, s.req.Size-1)
	if from > 0 {
		hreq.Header.Set("Range", "bytes="+strconv.FormatUint(from, 10)+"-")
	}
	resp, err := s.d.client.Do(hreq)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = Redact(ue.URL) // the request's URL, or a redirect's
		}
		return cause(err)
	}
	defer resp.Body.Close()

	var start uint64    // the offset of the body's first byte
	var rangeEnd uint64 // for a partial response, the offset after its last byte
	switch resp.StatusCode {
	case http.StatusOK:
		if resp.ContentLength >= 0 && uint64(resp.ContentLength) != s.req.Size {
			return permanent(fmt.Errorf("%w: Content-Length %d, declared %d", ErrSizeMismatch, resp.ContentLength, s.req.Size))
		}
	case http.StatusPartialContent:
		first, end, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return permanent(err)
		}
		if total >= 0 && uint64(total) != s.req.Size {
			return permanent(fmt.Errorf("%w: Content-Range total %d, declared %d", ErrSizeMismatch, total, s.req.Size))
		}
		if first != from {
			return permanent(fmt.Errorf("server sent range from byte %d, asked from %d", first, from))
		}
		if end >= s.req.Size {
			return permanent(fmt.Errorf("%w: server sent a range up to byte %d, declared size %d", ErrSizeMismatch, end, s.req.Size))
		}
		start, rangeEnd = first, end+1
	case http.StatusRequestedRangeNotSatisfiable:
		if _, _, total, err := parseContentRange(resp.Header.Get("Content-Range")); err == nil && total >= 0 {
			return permanent(fmt.Errorf("%w: server has %d bytes, declared %d, range from %d not satisfiable", ErrSizeMismatch, total, s.req.Size, from))
		}
		return permanent(fmt.Errorf("range from byte %d not satisfiable: %w", from, &StatusError{Code: resp.StatusCode, Status: resp.Status}))
	default:
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			if secs, err := strconv.Atoi(ra); err == nil && secs > 0 {
				s.retryAfter = time.Duration(secs) * time.Second
			}
		}
		return &StatusError{Code: resp.StatusCode, Status: resp.Status}
	}

	body := &bodyReader{r: resp.Body, timer: stall, timeout: s.d.cfg.StallTimeout, received: &s.received}
	if start < s.have {
		if err := s.compare(body, start, s.have-start); err != nil {
			return cause(err)
		}
	}
	// One goroutine reads the body into free buffers; this one writes them
	// to the file and tee in order. On return, stop the reader (cancelling
	// the request unblocks a read) and wait for it before the body closes.
	free := make(chan []byte, len(s.bufs))
	for _, b := range s.bufs {
		free <- b
	}
	full := make(chan filled, len(s.bufs)+1) // every buffer and the final check
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { s.pump(body, s.have, free, full, done) })
	defer func() {
		close(done)
		cancel(nil)
		wg.Wait()
		s.local.Add(1) // the writer is done too: see pump
	}()
	for c := range full {
		if len(c.data) > 0 {
			if err := s.write(c.data); err != nil {
				return err
			}
		}
		switch {
		case c.err == nil:
			free <- c.data[:cap(c.data)]
		case final(c.err):
			return c.err
		case (errors.Is(c.err, io.EOF) || errors.Is(c.err, io.ErrUnexpectedEOF)) && s.have == rangeEnd:
			// The server sent less than asked, but all it said it would
			// (some cap the length of a range): ask for the next part.
			return nil
		case errors.Is(c.err, io.EOF) || errors.Is(c.err, io.ErrUnexpectedEOF):
			return fmt.Errorf("server closed the body at byte %d of %d: %w", s.have, s.req.Size, io.ErrUnexpectedEOF)
		default:
			return cause(fmt.Errorf("reading body: %w", c.err))
		}
	}
	return nil
}

// filled is a buffer read from the body, and the error that ended the read.
type filled struct {
	data []byte
	err  error
}

// pump reads the body from offset off up to the declared size into buffers
// taken from free and sends them on full, in order, until the size is
// reached, a read fails or done is closed; it closes full when it returns.
// At the declared size it checks that the body ends there, and sends an
// error if it does not. Waiting for a free buffer does not count towards
// the stall timeout.
func (s *session) pump(body *bodyReader, off uint64, free <-chan []byte, full chan<- filled, done <-chan struct{}) {
	defer close(full)
	defer s.local.Add(1) // from here the writer finishes on its own: a local phase until attempt ends it
	for off < s.req.Size {
		var buf []byte
		select {
		case buf = <-free:
		default:
			body.timer.Stop()
			s.local.Add(1)
			select {
			case buf = <-free:
			case <-done:
				s.local.Add(1)
				return
			}
			s.local.Add(1)
			body.timer.Reset(body.timeout)
		}
		// One read per buffer: what arrived goes to disk (and shows in
		// the progress) at once. When the writer lags, bytes pile up in
		// the connection and the next read takes more.
		var n int
		var err error
		for n == 0 && err == nil {
			n, err = body.Read(buf[:min(uint64(len(buf)), s.req.Size-off)])
		}
		off += uint64(n)
		if errors.Is(err, io.EOF) && off == s.req.Size {
			full <- filled{buf[:n], nil}
			return // the body ended right at the declared size
		}
		full <- filled{buf[:n], err} // never blocks: full holds every buffer
		if err != nil {
			return
		}
	}
	var extra [1]byte
	switch k, err := io.ReadFull(body, extra[:]); {
	case k > 0:
		full <- filled{err: permanent(fmt.Errorf("%w: server sent more than the declared %d bytes", ErrSizeMismatch, s.req.Size))}
	case !errors.Is(err, io.EOF):
		// Not knowing where the body ends, the size is not confirmed.
		full <- filled{err: fmt.Errorf("checking that the body ends at the declared %d bytes: %w", s.req.Size, err)}
	}
}

// write appends p to the file and to tee in steps that end at each
// multiple of progressBytes, for advanced to report.
func (s *session) write(p []byte) error {
	for len(p) > 0 {
		step := p[:min(uint64(len(p)), progressBytes-s.have%progressBytes)]
		if _, err := s.f.WriteAt(step, int64(s.have)); err != nil {
			return localError{err} // a *PathError: "write PATH: no space left on device"
		}
		if s.tee != nil {
			if _, err := s.tee.Write(step); err != nil {
				return localError{fmt.Errorf("writing to tee: %w", err)}
			}
		}
		s.have += uint64(len(step))
		p = p[len(step):]
		s.advanced()
		if s.have-s.flushed >= writebackBytes {
			_ = startWriteback(s.f, s.flushed, s.have-s.flushed) // advice; the sync reports errors
			s.flushed = s.have
		}
	}
	return nil
}

// compare reads the next n bytes of body, which start at offset start of
// the data, and checks that they equal the bytes on disk there.
func (s *session) compare(body io.Reader, start, n uint64) error {
	got, disk := s.bufs[0], s.bufs[1]
	for off := start; off < start+n; {
		k := min(uint64(len(got)), start+n-off)
		if _, err := io.ReadFull(body, got[:k]); err != nil {
			return fmt.Errorf("reading the resent bytes of the body at byte %d: %w", off, err)
		}
		if _, err := s.f.ReadAt(disk[:k], int64(off)); err != nil {
			return localError{fmt.Errorf("reading %s at byte %d: %w", s.f.Name(), off, err)}
		}
		if !bytes.Equal(got[:k], disk[:k]) {
			return permanent(fmt.Errorf("%w: the server resent different bytes near byte %d", ErrContentChanged, off))
		}
		off += k
	}
	return nil
}

// bodyReader counts the bytes of a response body as they arrive and pushes
// the stall deadline back.
type bodyReader struct {
	r        io.Reader
	timer    *time.Timer
	timeout  time.Duration
	received *atomic.Uint64
}

func (r *bodyReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.timer.Reset(r.timeout)
		r.received.Add(uint64(n))
	}
	return n, err
}

// parseContentRange parses "bytes start-end/total" and "bytes */total";
// total is -1 when the server wrote "*", start and end are zero for "*/total".
func parseContentRange(v string) (start, end uint64, total int64, err error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	total = -1
	if tot != "*" {
		t, err := strconv.ParseUint(tot, 10, 63)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("bad Content-Range total in %q", v)
		}
		total = int64(t)
	}
	if rng == "*" {
		if total < 0 {
			return 0, 0, 0, fmt.Errorf("bad Content-Range %q", v)
		}
		return 0, 0, total, nil
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	if start, err = strconv.ParseUint(a, 10, 64); err != nil {
		return 0, 0, 0, fmt.Errorf("bad Content-Range start in %q", v)
	}
	if end, err = strconv.ParseUint(b, 10, 64); err != nil {
		return 0, 0, 0, fmt.Errorf("bad Content-Range end in %q", v)
	}
	if end < start || (total >= 0 && end >= uint64(total)) {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	return start, end, total, nil
}
