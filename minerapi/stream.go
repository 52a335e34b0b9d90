package minerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
)

// ReaderStream is how a reader parameter travels in a JSON-RPC request:
// Lotus' rpcenc.ReaderStream.
type ReaderStream struct {
	Type StreamType
	Info string
}

// StreamType says where a reader parameter's bytes come from.
type StreamType string

// The reader parameter kinds.
const (
	// StreamPush: the bytes are pushed to the push endpoint; Info is the
	// stream's UUID.
	StreamPush StreamType = "push"
	// StreamNull: Info (decimal) zero bytes.
	StreamNull StreamType = "null"
	// StreamHTTP: the server GETs the URL in Info.
	StreamHTTP StreamType = "http"
)

// StreamWait is how long each side of a push stream waits for the other:
// the RPC call for the stream's first HTTP request, the HTTP request for
// the call to take the stream, the reader for the body once it asked for
// it.
const StreamWait = 30 * time.Second

// maxPendingStreams bounds the push streams a server holds at once; the
// push endpoint answers 503 beyond it.
const maxPendingStreams = 1024

// Errors of push streams.
var (
	errStreamClosed = errors.New("push stream closed by the reader")
	errPusherGone   = errors.New("the client of the push stream went away")
)

// streams pairs the push-stream reader parameters of RPC calls with the
// HTTP requests that carry their bytes. Either may come first.
type streams struct {
	wait time.Duration
	max  int

	mu sync.Mutex
	m  map[uuid.UUID]*stream
}

func newStreams() *streams {
	return &streams{wait: StreamWait, max: maxPendingStreams, m: make(map[uuid.UUID]*stream)}
}

// stream is one push stream. Its channels are closed, once each, as it
// moves on: pushed when its first HTTP request arrives, taken when an RPC
// call takes it, begun at the reader's first Read (a waiting HEAD is then
// answered 200 so the client POSTs), ended when the reader is done.
type stream struct {
	id  uuid.UUID
	reg *streams

	pushed, taken, begun, ended chan struct{}
	bodies                      chan io.Reader // a POST's body, handed to the reader

	mu               sync.Mutex
	head, post       bool // which push requests arrived
	isPushed, isTake bool
	isBegun, isEnd   bool
	endErr           error // why it ended; nil when the body was read to EOF
}

// get returns the stream id, creating it.
func (reg *streams) get(id uuid.UUID) (*stream, error) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if s := reg.m[id]; s != nil {
		return s, nil
	}
	if len(reg.m) >= reg.max {
		return nil, fmt.Errorf("too many push streams pending (%d)", len(reg.m))
	}
	s := &stream{id: id, reg: reg,
		pushed: make(chan struct{}), taken: make(chan struct{}), begun: make(chan struct{}),
		ended: make(chan struct{}), bodies: make(chan io.Reader)}
	reg.m[id] = s
	return s, nil
}

func (reg *streams) drop(s *stream) {
	reg.mu.Lock()
	if reg.m[s.id] == s {
		delete(reg.m, s.id)
	}
	reg.mu.Unlock()
}

func (reg *streams) pending() int {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	return len(reg.m)
}

// arrive records a push request (HEAD or POST). A stream takes one HEAD
// and then one POST, or one POST alone.
func (s *stream) arrive(method string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case method == http.MethodHead && !s.head && !s.post:
		s.head = true
	case method == http.MethodPost && !s.post:
		s.post = true
	default:
		return fmt.Errorf("push stream %s already has its %s request", s.id, method)
	}
	if !s.isPushed {
		s.isPushed = true
		close(s.pushed)
	}
	return nil
}

// take marks the stream as an RPC call's reader.
func (s *stream) take() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.isTake {
		return fmt.Errorf("push stream %s is already the reader of another call", s.id)
	}
	s.isTake = true
	close(s.taken)
	return nil
}

// abandon drops the stream when the other side has not come (ready is
// closed when it has); it reports false when the other side came after
// all, and the caller carries on.
func (s *stream) abandon(ready chan struct{}) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-ready:
		return false
	default:
	}
	s.reg.drop(s) // a late arrival gets a new stream
	return true
}

// begin tells a waiting HEAD to let the client POST.
func (s *stream) begin() {
	s.mu.Lock()
	if !s.isBegun {
		s.isBegun = true
		close(s.begun)
	}
	s.mu.Unlock()
}

// end finishes the stream (once; later calls change nothing) and drops it
// from the registry.
func (s *stream) end(err error) {
	s.mu.Lock()
	if !s.isEnd {
		s.isEnd, s.endErr = true, err
		close(s.ended)
		s.reg.drop(s)
	}
	s.mu.Unlock()
}

func (s *stream) result() (begun bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.isBegun, s.endErr
}

// waitFor waits up to the registry's wait for ready, the other side's
// arrival; it reports false (and drops the stream) when it did not come.
func (s *stream) waitFor(ctx context.Context, ready chan struct{}) bool {
	t := time.NewTimer(s.reg.wait)
	defer t.Stop()
	select {
	case <-ready:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return !s.abandon(ready)
}

// serveHTTP is the push endpoint, /rpc/streams/v0/push/{uuid}: a HEAD
// waits until the call's reader wants the bytes (200: POST them now) or is
// closed unread (204); a POST hands its body to the reader and is answered
// when the reader is done with it (200 after EOF, 204 when it was closed
// without taking the body, 500 when it failed).
func (reg *streams) serveHTTP(w http.ResponseWriter, r *http.Request) {
	id, err := uuid.Parse(path.Base(r.URL.Path))
	if err != nil {
		http.Error(w, fmt.Sprintf("parsing push stream id: %v", err), http.StatusBadRequest)
		return
	}
	if r.Method != http.MethodHead && r.Method != http.MethodPost {
		w.Header().Set("Allow", "HEAD, POST")
		http.Error(w, "push streams take HEAD and POST", http.StatusMethodNotAllowed)
		return
	}
	s, err := reg.get(id)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if err := s.arrive(r.Method); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	ctx := r.Context()
	if !s.waitFor(ctx, s.taken) {
		http.Error(w, fmt.Sprintf("no call took push stream %s within %v", id, reg.wait), http.StatusInternalServerError)
		return
	}
	if r.Method == http.MethodHead {
		select {
		case <-s.begun:
			w.WriteHeader(http.StatusOK)
		case <-s.ended:
			if begun, _ := s.result(); begun {
				w.WriteHeader(http.StatusOK)
			} else {
				w.WriteHeader(http.StatusNoContent)
			}
		case <-ctx.Done():
			s.end(errPusherGone)
		}
		return
	}
	select {
	case s.bodies <- r.Body:
		// The reader reads r.Body until it ends the stream; the body
		// is only valid until this handler returns.
		<-s.ended
		if _, err := s.result(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	case <-s.ended:
		w.WriteHeader(http.StatusNoContent)
	case <-ctx.Done():
		s.end(errPusherGone)
	}
}

// decode is the server's decoder of reader parameters (see ReaderStream).
// A push stream is taken here and waited for (StreamWait) so a call whose
// client never pushes fails with a clear error before it starts; the
// reader is closed when the call ends, whatever the method did with it, so
// the client's push request is always answered.
func (reg *streams) decode(ctx context.Context, b []byte, httpc *http.Client) (reflect.Value, error) {
	var rs ReaderStream
	if err := json.Unmarshal(b, &rs); err != nil {
		return reflect.Value{}, fmt.Errorf("decoding reader parameter: %w", err)
	}
	var r io.Reader
	switch rs.Type {
	case StreamNull:
		n, err := strconv.ParseInt(rs.Info, 10, 64)
		if err != nil || n < 0 {
			return reflect.Value{}, fmt.Errorf("null reader parameter: byte count %q is not a non-negative integer", rs.Info)
		}
		r = io.LimitReader(zeros{}, n)
	case StreamHTTP:
		hr, err := newHTTPReader(ctx, httpc, rs.Info)
		if err != nil {
			return reflect.Value{}, err
		}
		context.AfterFunc(ctx, func() { hr.Close() })
		r = hr
	case StreamPush:
		id, err := uuid.Parse(rs.Info)
		if err != nil {
			return reflect.Value{}, fmt.Errorf("push reader parameter: stream id %q: %w", rs.Info, err)
		}
		sr, err := reg.open(ctx, id)
		if err != nil {
			return reflect.Value{}, err
		}
		context.AfterFunc(ctx, func() { sr.Close() })
		r = sr
	default:
		return reflect.Value{}, fmt.Errorf("reader parameter of unknown type %q", rs.Type)
	}
	return reflect.ValueOf(r), nil
}

// open takes push stream id as a call's reader and waits for its first
// HTTP request.
func (reg *streams) open(ctx context.Context, id uuid.UUID) (*streamReader, error) {
	s, err := reg.get(id)
	if err != nil {
		return nil, fmt.Errorf("push stream %s: %w", id, err)
	}
	if err := s.take(); err != nil {
		return nil, err
	}
	if !s.waitFor(ctx, s.pushed) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("waiting for push stream %s: %w", id, err)
		}
		return nil, fmt.Errorf("no push request for stream %s within %v", id, reg.wait)
	}
	return &streamReader{s: s, ctx: ctx}, nil
}

// streamReader reads a push stream's body. Read is for one goroutine;
// Close may come from another.
type streamReader struct {
	s    *stream
	ctx  context.Context
	body io.Reader
}

func (r *streamReader) Read(p []byte) (int, error) {
	s := r.s
	select {
	case <-s.ended:
		return 0, r.endedErr()
	default:
	}
	if r.body == nil {
		s.begin()
		t := time.NewTimer(s.reg.wait)
		select {
		case r.body = <-s.bodies:
			t.Stop()
		case <-s.ended:
			t.Stop()
			return 0, r.endedErr()
		case <-t.C:
			err := fmt.Errorf("no POST body for push stream %s within %v", s.id, s.reg.wait)
			s.end(err)
			return 0, err
		case <-r.ctx.Done():
			t.Stop()
			err := fmt.Errorf("reading push stream %s: %w", s.id, r.ctx.Err())
			s.end(err)
			return 0, err
		}
	}
	n, err := r.body.Read(p)
	switch {
	case err == io.EOF:
		s.end(nil)
	case err != nil:
		err = fmt.Errorf("reading push stream %s: %w", s.id, err)
		s.end(err)
	}
	return n, err
}

func (r *streamReader) endedErr() error {
	if _, err := r.s.result(); err != nil {
		return err
	}
	return io.EOF
}

// Close ends the stream; a client still waiting to push is told the
// bytes are not wanted.
func (r *streamReader) Close() error {
	r.s.end(errStreamClosed)
	return nil
}

// zeros reads zero bytes forever.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// httpReader GETs its URL at the first Read, not before: the call that
// receives it may be refused before it reads.
type httpReader struct {
	ctx  context.Context
	c    *http.Client
	url  string
	body io.ReadCloser
	mu   sync.Mutex
	done bool
}

func newHTTPReader(ctx context.Context, c *http.Client, rawURL string) (*httpReader, error) {
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("http reader parameter: %w", err)
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return nil, fmt.Errorf("http reader parameter: URL scheme %q is not http or https", req.URL.Scheme)
	}
	return &httpReader{ctx: ctx, c: c, url: rawURL}, nil
}

func (h *httpReader) Read(p []byte) (int, error) {
	h.mu.Lock()
	if h.done {
		h.mu.Unlock()
		return 0, errors.New("http reader parameter closed")
	}
	body := h.body
	h.mu.Unlock()
	if body == nil {
		req, err := http.NewRequestWithContext(h.ctx, http.MethodGet, h.url, nil)
		if err != nil {
			return 0, fmt.Errorf("http reader parameter: %w", err)
		}
		resp, err := h.c.Do(req)
		if err != nil {
			return 0, fmt.Errorf("fetching the http reader parameter: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return 0, fmt.Errorf("fetching the http reader parameter: %s", resp.Status)
		}
		h.mu.Lock()
		if h.done {
			h.mu.Unlock()
			resp.Body.Close()
			return 0, errors.New("http reader parameter closed")
		}
		h.body, body = resp.Body, resp.Body
		h.mu.Unlock()
	}
	return body.Read(p)
}

func (h *httpReader) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.done = true
	if h.body != nil {
		return h.body.Close()
	}
	return nil
}
