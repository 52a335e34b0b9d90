package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-fil/ferry/piece"
)

// testData returns n reproducible pseudo-random bytes.
func testData(seed uint64, n int) []byte {
	b := make([]byte, n)
	var key [32]byte
	key[0] = byte(seed)
	rand.NewChaCha8(key).Read(b)
	return b
}

// testConfig is fast: small buffer, millisecond backoff, loopback allowed.
func testConfig() Config {
	return Config{
		AllowPrivateAddresses: true,
		BufferSize:            64 << 10,
		BackoffMin:            time.Millisecond,
		BackoffMax:            5 * time.Millisecond,
		StallTimeout:          5 * time.Second,
	}
}

// cutWriter sends at most left body bytes, then aborts the connection.
type cutWriter struct {
	http.ResponseWriter
	left int
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if len(p) > c.left {
		c.ResponseWriter.Write(p[:c.left])
		c.ResponseWriter.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	c.left -= len(p)
	return c.ResponseWriter.Write(p)
}

// rangeServer serves data with Range support; the first len(cuts) responses
// are cut after cuts[i] body bytes. It records every Range header it gets.
type rangeServer struct {
	data        []byte
	cuts        []int
	ignoreRange bool // answer every request with the whole body

	mu       sync.Mutex
	requests int
	ranges   []string
}

func (s *rangeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := s.requests
	s.requests++
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.mu.Unlock()
	if s.ignoreRange {
		r.Header.Del("Range")
	}
	if i < len(s.cuts) {
		w = &cutWriter{ResponseWriter: w, left: s.cuts[i]}
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(s.data))
}

func (s *rangeServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

type result struct {
	err      error
	tee      []byte
	progress []uint64
	file     []byte
}

func download(t *testing.T, d *Downloader, ctx context.Context, req Request, path string) result {
	t.Helper()
	var tee bytes.Buffer
	var res result
	res.err = d.Download(ctx, req, path, &tee, func(n uint64) { res.progress = append(res.progress, n) })
	res.tee = tee.Bytes()
	res.file, _ = os.ReadFile(path)
	return res
}

func checkComplete(t *testing.T, res result, want []byte) {
	t.Helper()
	if res.err != nil {
		t.Fatalf("Download: %v", res.err)
	}
	if !bytes.Equal(res.file, want) {
		t.Fatalf("file has %d bytes, not the %d served", len(res.file), len(want))
	}
	if !bytes.Equal(res.tee, want) {
		t.Fatalf("tee saw %d bytes, not the %d served", len(res.tee), len(want))
	}
	if len(res.progress) == 0 || res.progress[len(res.progress)-1] != uint64(len(want)) {
		t.Fatalf("last progress %v, want %d", res.progress, len(want))
	}
	for i := 1; i < len(res.progress); i++ {
		if res.progress[i] < res.progress[i-1] {
			t.Fatalf("progress went backwards: %v", res.progress)
		}
	}
}

func TestPlain(t *testing.T) {
	data := testData(1, 3<<20+12345)
	srv := &rangeServer{data: data}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	d := New(testConfig())
	defer d.CloseIdleConnections()
	path := filepath.Join(t.TempDir(), "f")
	res := download(t, d, context.Background(), Request{URL: ts.URL + "/x", Size: uint64(len(data))}, path)
	checkComplete(t, res, data)
	if srv.count() != 1 || srv.ranges[0] != "" {
		t.Fatalf("requests %d ranges %q, want one without Range", srv.count(), srv.ranges)
	}
	// A second Download of a complete file replays it and confirms the size
	// with a request for the last byte.
	res = download(t, d, context.Background(), Request{URL: ts.URL + "/x", Size: uint64(len(data))}, path)
	checkComplete(t, res, data)
	if want := fmt.Sprintf("bytes=%d-", len(data)-1); srv.count() != 2 || srv.ranges[1] != want {
		t.Fatalf("requests %d ranges %q, want a second one with Range %s", srv.count(), srv.ranges, want)
	}
}

// A complete file is not taken as done without the server: its size and
// its last byte are confirmed by a server that honours Range and by one that
// resends everything, and a server that is gone fails the Download.
func TestCompleteFileConfirmed(t *testing.T) {
	data := testData(24, 300_000)
	size := uint64(len(data))
	for name, c := range map[string]struct {
		served      []byte
		ignoreRange bool
		want        error // nil: success
	}{
		"same":                              {served: data},
		"same, range ignored":               {served: data, ignoreRange: true},
		"longer":                            {served: append(bytes.Clone(data), 1, 2, 3), want: ErrSizeMismatch},
		"longer, range ignored":             {served: append(bytes.Clone(data), 1, 2, 3), ignoreRange: true, want: ErrSizeMismatch},
		"shorter":                           {served: data[:size-1], want: ErrSizeMismatch},
		"last byte changed":                 {served: append(bytes.Clone(data[:size-1]), data[size-1]^1), want: ErrContentChanged},
		"first byte changed, range ignored": {served: append([]byte{data[0] ^ 1}, data[1:]...), ignoreRange: true, want: ErrContentChanged},
	} {
		t.Run(name, func(t *testing.T) {
			srv := &rangeServer{data: c.served, ignoreRange: c.ignoreRange}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			d := New(testConfig())
			defer d.CloseIdleConnections()
			path := filepath.Join(t.TempDir(), "f")
			os.WriteFile(path, data, 0o644)
			res := download(t, d, context.Background(), Request{URL: ts.URL, Size: size}, path)
			if c.want == nil {
				checkComplete(t, res, data)
			} else if !errors.Is(res.err, c.want) || !IsPermanent(res.err) {
				t.Fatalf("err = %v, want a permanent %v", res.err, c.want)
			}
			if srv.count() != 1 {
				t.Fatalf("%d requests, want 1", srv.count())
			}
			if !bytes.Equal(res.file, data) {
				t.Fatal("the file changed")
			}
		})
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	cfg := testConfig()
	cfg.MaxRetries = 1
	d := New(cfg)
	defer d.CloseIdleConnections()
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, data, 0o644)
	res := download(t, d, context.Background(), Request{URL: closed.URL, Size: size}, path)
	if res.err == nil || IsPermanent(res.err) {
		t.Fatalf("err = %v, want a transient error with the server gone", res.err)
	}
}

func TestDropsMidBody(t *testing.T) {
	data := testData(2, 2<<20+7)
	srv := &rangeServer{data: data, cuts: []int{100_000, 0, 1, 65536, 700_000}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	d := New(testConfig())
	defer d.CloseIdleConnections()
	path := filepath.Join(t.TempDir(), "f")
	res := download(t, d, context.Background(), Request{URL: ts.URL, Size: uint64(len(data))}, path)
	checkComplete(t, res, data)
	want := []string{"", "bytes=100000-", "bytes=100000-", "bytes=100001-", "bytes=165537-", "bytes=865537-"}
	if fmt.Sprint(srv.ranges) != fmt.Sprint(want) {
		t.Fatalf("ranges %q, want %q", srv.ranges, want)
	}
}

func TestGivesUpWithoutProgress(t *testing.T) {
	data := testData(3, 100_000)
	srv := &rangeServer{data: data, cuts: []int{10, 0, 0, 0, 0, 0, 0}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	cfg := testConfig()
	cfg.MaxRetries = 3
	d := New(cfg)
	defer d.CloseIdleConnections()
	path := filepath.Join(t.TempDir(), "f")
	res := download(t, d, context.Background(), Request{URL: ts.URL, Size: uint64(len(data))}, path)
	if res.err == nil || !strings.Contains(res.err.Error(), "giving up") {
		t.Fatalf("err = %v, want giving up", res.err)
	}
	// The first attempt made progress; then 3 retries without.
	if srv.count() != 4 {
		t.Fatalf("%d requests, want 4", srv.count())
	}
	if !bytes.Equal(res.file, data[:10]) || !bytes.Equal(res.tee, data[:10]) {
		t.Fatalf("partial file %d bytes, tee %d, want 10", len(res.file), len(res.tee))
	}
}

// The bytes are what the server sends; the caller's CommP check decides.
func TestWrongBytes(t *testing.T) {
	declared := testData(4, 1<<20)
	served := testData(5, 1<<20)
	srv := &rangeServer{data: served, cuts: []int{300_000}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	d := New(testConfig())
	defer d.CloseIdleConnections()
	path := filepath.Join(t.TempDir(), "f")
	res := download(t, d, context.Background(), Request{URL: ts.URL, Size: uint64(len(declared))}, path)
	checkComplete(t, res, served)
}

func TestMoreBytesThanDeclared(t *testing.T) {
	data := testData(6, 500_000)
	size := uint64(len(data) - 1000)
	cases := map[string]http.HandlerFunc{
		"content-length": func(w http.ResponseWriter, r *http.Request) {
			w.Write(data) // small enough to get a Content-Length
		},
		"chunked": func(w http.ResponseWriter, r *http.Request) {
			for off := 0; off < len(data); off += 10_000 {
				w.Write(data[off : off+10_000])
				w.(http.Flusher).Flush()
			}
		},
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			var requests atomic.Int32
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				h(w, r)
			}))
			defer ts.Close()
			d := New(testConfig())
			defer d.CloseIdleConnections()
			path := filepath.Join(t.TempDir(), "f")
			// Every Download fails, the second one too, which finds the
			// declared size on disk (chunked) and asks the server again.
			for i := int32(1); i <= 2; i++ {
				res := download(t, d, context.Background(), Request{URL: ts.URL, Size: size}, path)
				if !errors.Is(res.err, ErrSizeMismatch) || !IsPermanent(res.err) {
					t.Fatalf("Download %d: err = %v, want a permanent ErrSizeMismatch", i, res.err)
				}
				if uint64(len(res.file)) > size {
					t.Fatalf("file has %d bytes, more than the declared %d", len(res.file), size)
				}
				if requests.Load() != i {
					t.Fatalf("Download %d: %d requests, want %d (one each, not retried)", i, requests.Load(), i)
				}
			}
		})
	}
}

func TestWrongContentLength(t *testing.T) {
	data := testData(7, 200_000)
	srv := &rangeServer{data: data}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	d := New(testConfig())
	defer d.CloseIdleConnections()
	for _, size := range []uint64{uint64(len(data)) + 1, uint64(len(data)) - 1} {
		path := filepath.Join(t.TempDir(), "f")
		res := download(t, d, context.Background(), Request{URL: ts.URL, Size: size}, path)
		if !errors.Is(res.err, ErrSizeMismatch) {
			t.Fatalf("size %d: err = %v, want ErrSizeMismatch", size, res.err)
		}
		if len(res.file) != 0 {
			t.Fatalf("size %d: wrote %d bytes before checking the size", size, len(res.file))
		}
	}
	if srv.count() != 2 {
		t.Fatalf("%d requests, want 2 (no retries)", srv.count())
	}
}

// A partial file bigger than what the server has: the 416 names the size.
func TestPartialBeyondServerSize(t *testing.T) {
	data := testData(8, 1000)
	srv := &rangeServer{data: data}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	d := New(testConfig())
	defer d.CloseIdleConnections()
	path := filepath.Join(t.TempDir(), "f")
	prefix := testData(9, 1500)
	os.WriteFile(path, prefix, 0o644)
	res := download(t, d, context.Background(), Request{URL: ts.URL, Size: 2000}, path)
	if !errors.Is(res.err, ErrSizeMismatch) {
		t.Fatalf("err = %v, want ErrSizeMismatch", res.err)
	}
	if !bytes.Equal(res.file, prefix) {
		t.Fatal("partial file changed")
	}
}

func TestFileLongerThanSize(t *testing.T) {
	srv := &rangeServer{data: testData(10, 100)}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	d := New(testConfig())
	path := filepath.Join(t.TempDir(), "f")
	prefix := testData(11, 150)
	os.WriteFile(path, prefix, 0o644)
	res := download(t, d, context.Background(), Request{URL: ts.URL, Size: 100}, path)
	if res.err == nil || !bytes.Equal(res.file, prefix) || srv.count() != 0 {
		t.Fatalf("err %v, file %d bytes, %d requests; want an error and the file untouched", res.err, len(res.file), srv.count())
	}
}

func TestRangeUnsupported(t *testing.T) {
	data := testData(12, 1<<20+99)
	srv := &rangeServer{data: data, cuts: []int{400_000, 500_000}, ignoreRange: true}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	d := New(testConfig())
	defer d.CloseIdleConnections()
	path := filepath.Join(t.TempDir(), "f")
	res := download(t, d, context.Background(), Request{URL: ts.URL, Size: uint64(len(data))}, path)
	checkComplete(t, res, data)
	if srv.count() != 3 || srv.ranges[1] != "bytes=400000-" {
		t.Fatalf("requests %d, ranges %q", srv.count(), srv.ranges)
	}

	// The same, but the resent start differs from what is on disk.
	changed := bytes.Clone(data)
	changed[10] ^= 1
	prefix := data[:300_000]
	os.WriteFile(path, prefix, 0o644)
	srv2 := &rangeServer{data: changed, ignoreRange: true}
	ts2 := httptest.NewServer(srv2)
	defer ts2.Close()
	res = download(t, d, context.Background(), Request{URL: ts2.URL, Size: uint64(len(data))}, path)
	if !errors.Is(res.err, ErrContentChanged) {
		t.Fatalf("err = %v, want ErrContentChanged", res.err)
	}
	if !bytes.Equal(res.file, prefix) {
		t.Fatal("partial file changed")
	}
}

// blockServer sends data[:half] and then waits for the client to go away;
// later requests are served normally.
type blockServer struct {
	rangeServer
	half int
}

func (s *blockServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	first := s.requests == 0
	s.mu.Unlock()
	if !first {
		s.rangeServer.ServeHTTP(w, r)
		return
	}
	s.rangeServer.ServeHTTP(&blockWriter{ResponseWriter: w, left: s.half, done: r.Context().Done()}, r)
}

// blockWriter sends left bytes, then blocks until done.
type blockWriter struct {
	http.ResponseWriter
	left int
	done <-chan struct{}
}

func (b *blockWriter) Write(p []byte) (int, error) {
	if len(p) >= b.left {
		b.ResponseWriter.Write(p[:b.left])
		b.ResponseWriter.(http.Flusher).Flush()
		select {
		case <-b.done:
		case <-time.After(10 * time.Second):
		}
		panic(http.ErrAbortHandler)
	}
	b.left -= len(p)
	return b.ResponseWriter.Write(p)
}

func waitSize(t *testing.T, path string, size int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if st, err := os.Stat(path); err == nil && st.Size() >= size {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached %d bytes", path, size)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestResumeAfterRestart(t *testing.T) {
	data := testData(13, 2<<20)
	half := 16 * 64 << 10 // a whole number of test buffers
	srv := &blockServer{rangeServer: rangeServer{data: data}, half: half}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	path := filepath.Join(t.TempDir(), "f")
	req := Request{URL: ts.URL, Size: uint64(len(data))}

	d := New(testConfig())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan result)
	go func() { done <- download(t, d, ctx, req, path) }()
	waitSize(t, path, int64(half))
	cancel()
	res := <-done
	if !errors.Is(res.err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", res.err)
	}
	d.CloseIdleConnections()

	// A new Downloader, as after a restart, continues from the file.
	d = New(testConfig())
	defer d.CloseIdleConnections()
	res = download(t, d, context.Background(), req, path)
	checkComplete(t, res, data)
	if res.progress[0] != uint64(half) {
		t.Fatalf("first progress %d, want %d from the file", res.progress[0], half)
	}
	if got := srv.ranges[len(srv.ranges)-1]; got != fmt.Sprintf("bytes=%d-", half) {
		t.Fatalf("resumed with Range %q", got)
	}
}

func TestStall(t *testing.T) {
	data := testData(14, 1<<20)
	srv := &blockServer{rangeServer: rangeServer{data: data}, half: 128 << 10}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	cfg := testConfig()
	cfg.StallTimeout = 50 * time.Millisecond
	d := New(cfg)
	defer d.CloseIdleConnections()
	path := filepath.Join(t.TempDir(), "f")
	res := download(t, d, context.Background(), Request{URL: ts.URL, Size: uint64(len(data))}, path)
	checkComplete(t, res, data)
	if srv.count() != 2 || srv.ranges[1] != "bytes=131072-" {
		t.Fatalf("requests %d, ranges %q", srv.count(), srv.ranges)
	}

	// A server that never answers: ErrStalled once retries run out.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer hang.Close()
	cfg.MaxRetries = 1
	d2 := New(cfg)
	defer d2.CloseIdleConnections()
	res = download(t, d2, context.Background(), Request{URL: hang.URL, Size: 10}, filepath.Join(t.TempDir(), "g"))
	if !errors.Is(res.err, ErrStalled) {
		t.Fatalf("err = %v, want ErrStalled", res.err)
	}
}

// concurrency counts the requests in flight per server.
type concurrency struct {
	mu       sync.Mutex
	now, max int
}

func (c *concurrency) wrap(data []byte, total *concurrency) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, x := range []*concurrency{c, total} {
			x.mu.Lock()
			x.now++
			x.max = max(x.max, x.now)
			x.mu.Unlock()
		}
		time.Sleep(30 * time.Millisecond)
		for _, x := range []*concurrency{c, total} {
			x.mu.Lock()
			x.now--
			x.mu.Unlock()
		}
		w.Write(data)
	})
}

func runMany(t *testing.T, d *Downloader, urls []string, data []byte) {
	t.Helper()
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, len(urls))
	for i, u := range urls {
		wg.Go(func() {
			errs[i] = d.Download(context.Background(), Request{URL: u, Size: uint64(len(data))}, filepath.Join(dir, fmt.Sprint(i)), nil, nil)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestConcurrencyLimit(t *testing.T) {
	data := testData(15, 1000)
	var c, total concurrency
	ts := httptest.NewServer(c.wrap(data, &total))
	defer ts.Close()
	cfg := testConfig()
	cfg.MaxConcurrent = 3
	cfg.MaxPerClient = -1
	d := New(cfg)
	defer d.CloseIdleConnections()
	urls := make([]string, 10)
	for i := range urls {
		urls[i] = ts.URL
	}
	runMany(t, d, urls, data)
	if c.max > 3 || c.max < 2 {
		t.Fatalf("%d requests at once, want 3 (at most)", c.max)
	}
}

func TestPerHostLimit(t *testing.T) {
	data := testData(16, 1000)
	var a, b, total concurrency
	tsA := httptest.NewServer(a.wrap(data, &total))
	defer tsA.Close()
	tsB := httptest.NewServer(b.wrap(data, &total))
	defer tsB.Close()
	cfg := testConfig()
	cfg.MaxConcurrent = 10
	cfg.MaxPerHost = 2
	d := New(cfg)
	defer d.CloseIdleConnections()
	var urls []string
	for range 6 {
		urls = append(urls, tsA.URL, tsB.URL)
	}
	runMany(t, d, urls, data)
	if a.max > 2 || b.max > 2 {
		t.Fatalf("per host at once: %d and %d, want at most 2", a.max, b.max)
	}
	if total.max < 3 {
		t.Fatalf("only %d requests at once over two hosts; the per-host limit acted globally", total.max)
	}
	d.slots.mu.Lock()
	left := len(d.slots.hosts) + len(d.slots.clients) + d.slots.running + len(d.slots.waiting)
	d.slots.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d entries left behind in the slots", left)
	}
}

func TestWaitingForSlotRespectsContext(t *testing.T) {
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.Write([]byte("x"))
	}))
	defer ts.Close()
	defer close(release)
	cfg := testConfig()
	cfg.MaxConcurrent = 1
	d := New(cfg)
	defer d.CloseIdleConnections()
	dir := t.TempDir()
	first := make(chan error)
	go func() {
		first <- d.Download(context.Background(), Request{URL: ts.URL, Size: 1}, filepath.Join(dir, "a"), nil, nil)
	}()
	// Wait until the first holds the slot.
	for running, _ := d.slots.state(); running == 0; running, _ = d.slots.state() {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := d.Download(ctx, Request{URL: ts.URL, Size: 1}, filepath.Join(dir, "b"), nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded while waiting for a slot", err)
	}
	release <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

func TestPrivateAddressRefused(t *testing.T) {
	srv := &rangeServer{data: testData(17, 100)}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	cfg := testConfig()
	cfg.AllowPrivateAddresses = false
	d := New(cfg)
	defer d.CloseIdleConnections()
	port := ts.URL[strings.LastIndexByte(ts.URL, ':'):]
	for _, u := range []string{ts.URL, "http://localhost" + port} {
		res := download(t, d, context.Background(), Request{URL: u, Size: 100}, filepath.Join(t.TempDir(), "f"))
		if !errors.Is(res.err, ErrPrivateAddress) {
			t.Fatalf("%s: err = %v, want ErrPrivateAddress", u, res.err)
		}
	}
	if srv.count() != 0 {
		t.Fatalf("server got %d requests", srv.count())
	}
}

func TestPublicAddr(t *testing.T) {
	for s, want := range map[string]bool{
		"8.8.8.8": true, "1.1.1.1": true, "2606:4700::1111": true, "::ffff:8.8.8.8": true,
		"127.0.0.1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "0.0.0.0": false, "100.64.0.1": false, "198.18.0.1": false,
		"224.0.0.1": false, "255.255.255.255": false, "::1": false, "::": false, "fe80::1": false,
		"fd00::1": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "64:ff9b::a00:1": false,
		"2002:a00:1::": false, "2002:808:808::": true, "ff02::1": false,
		"192.0.2.1": false, "198.51.100.7": false, "203.0.113.9": false, "::7f00:1": false, "::808:808": false,
		"::ffff:0:7f00:1": false, "64:ff9b:1::1": false, "100::1": false, "2001:db8::1": false, "fec0::1": false,
		"fe80::1%eth0": false, "64:ff9b::808:808": true, "203.0.114.1": true,
	} {
		if got := publicAddr(netip.MustParseAddr(s)); got != want {
			t.Errorf("publicAddr(%s) = %v, want %v", s, got, want)
		}
	}
}

func TestHeadersForwarded(t *testing.T) {
	data := testData(18, 1000)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" || r.Header.Get("X-Deal") != "42" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		if r.Header.Get("Accept-Encoding") != "identity" {
			http.Error(w, "want identity encoding", http.StatusBadRequest)
			return
		}
		w.Write(data)
	}))
	defer ts.Close()
	d := New(testConfig())
	defer d.CloseIdleConnections()
	req := Request{URL: ts.URL, Size: uint64(len(data)), Headers: map[string]string{"Authorization": "Bearer secret", "X-Deal": "42"}}
	res := download(t, d, context.Background(), req, filepath.Join(t.TempDir(), "f"))
	checkComplete(t, res, data)

	// Without them: a 403, not retried.
	req.Headers = nil
	res = download(t, d, context.Background(), req, filepath.Join(t.TempDir(), "f"))
	var se *StatusError
	if !errors.As(res.err, &se) || se.Code != http.StatusForbidden {
		t.Fatalf("err = %v, want a 403 StatusError", res.err)
	}
}

func TestServerErrorsRetried(t *testing.T) {
	data := testData(19, 1000)
	var n atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch n.Add(1) {
		case 1:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case 2:
			http.Error(w, "slow down", http.StatusTooManyRequests)
		default:
			w.Write(data)
		}
	}))
	defer ts.Close()
	d := New(testConfig())
	defer d.CloseIdleConnections()
	res := download(t, d, context.Background(), Request{URL: ts.URL, Size: uint64(len(data))}, filepath.Join(t.TempDir(), "f"))
	checkComplete(t, res, data)
	if n.Load() != 3 {
		t.Fatalf("%d requests, want 3", n.Load())
	}
}

func TestBadRequests(t *testing.T) {
	d := New(testConfig())
	path := filepath.Join(t.TempDir(), "f")
	for _, req := range []Request{
		{URL: "ftp://example.com/x", Size: 1},
		{URL: "example.com/x", Size: 1},
		{URL: "http://example.com/x", Size: 0},
		{URL: "http://example.com/x", Size: 1, Headers: map[string]string{"X": "a\r\nInjected: 1"}},
	} {
		if err := d.Download(context.Background(), req, path, nil, nil); err == nil || !IsPermanent(err) {
			t.Errorf("%+v: err = %v, want a permanent error", req, err)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("a refused request created the file")
	}
}

func TestCancelPromptNoLeak(t *testing.T) {
	data := testData(20, 1<<20)
	srv := &blockServer{rangeServer: rangeServer{data: data}, half: 100_000}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	before := runtime.NumGoroutine()
	d := New(testConfig())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	path := filepath.Join(t.TempDir(), "f")
	go func() {
		done <- d.Download(ctx, Request{URL: ts.URL, Size: uint64(len(data))}, path, nil, nil)
	}()
	for srv.count() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Download did not return after cancel")
	}
	d.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestParseContentRange(t *testing.T) {
	for v, want := range map[string][3]int64{
		"bytes 0-9/10":    {0, 9, 10},
		"bytes 5-9/*":     {5, 9, -1},
		"bytes */100":     {0, 0, 100},
		"bytes 100-199/1": {-1},
		"bytes 9-5/10":    {-1},
		"bytes */*":       {-1},
		"bits 0-9/10":     {-1},
		"bytes 0-9":       {-1},
		"bytes -9/10":     {-1},
	} {
		s, e, tot, err := parseContentRange(v)
		if want[0] < 0 {
			if err == nil {
				t.Errorf("%q: no error", v)
			}
			continue
		}
		if err != nil || int64(s) != want[0] || int64(e) != want[1] || tot != want[2] {
			t.Errorf("%q: %d %d %d %v, want %v", v, s, e, tot, err, want)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes 5-9/*", "bytes */100", "bytes 9-5/10", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, e, tot, err := parseContentRange(v)
		if err != nil {
			return
		}
		if v[len(v)-1] == '*' != (tot < 0) || (!strings.Contains(v, "*/") && e < s) || (tot >= 0 && e >= uint64(tot) && !strings.Contains(v, "*/")) {
			t.Fatalf("%q: inconsistent %d %d %d", v, s, e, tot)
		}
	})
}

// BenchmarkDownload fetches a 128 MiB file from a loopback file server: plain
// (io.Copy of the body into a file), Download without a tee, and Download
// with piece.Calc as the tee. ferry-bench transfer runs the 1 GiB comparison.
func BenchmarkDownload(b *testing.B) {
	const size = 128 << 20
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	os.Mkdir(src, 0o755)
	if err := os.WriteFile(filepath.Join(src, "data"), testData(21, size), 0o644); err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(http.FileServer(http.Dir(src)))
	defer ts.Close()
	url := ts.URL + "/data"
	dst := filepath.Join(dir, "dst")

	b.Run("plain", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			os.Remove(dst)
			resp, err := http.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			f, _ := os.Create(dst)
			if _, err := io.Copy(f, resp.Body); err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			f.Sync()
			f.Close()
		}
	})
	d := New(Config{AllowPrivateAddresses: true})
	defer d.CloseIdleConnections()
	for _, commp := range []bool{false, true} {
		b.Run(map[bool]string{false: "download", true: "download+commp"}[commp], func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				os.Remove(dst)
				var tee io.Writer
				var calc *piece.Calc
				if commp {
					calc = piece.NewCalc()
					tee = calc
				}
				if err := d.Download(context.Background(), Request{URL: url, Size: size}, dst, tee, nil); err != nil {
					b.Fatal(err)
				}
				if calc != nil {
					if _, err := calc.Sum(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// slowWriter takes its time over every write.
type slowWriter struct {
	bytes.Buffer
	delay time.Duration
}

func (w *slowWriter) Write(p []byte) (int, error) {
	time.Sleep(w.delay)
	return w.Buffer.Write(p)
}

// Time the file and tee take does not count as the server stalling, nor as
// the server falling below the minimum rate.
func TestSlowTeeIsNotAStall(t *testing.T) {
	data := testData(22, 6*64<<10) // two more buffers than the Download has
	srv := &rangeServer{data: data}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	cfg := testConfig()
	cfg.StallTimeout = 100 * time.Millisecond
	cfg.MaxRetries = -1
	cfg.MinRate = 1 << 30
	cfg.RateWindow = cfg.StallTimeout
	d := New(cfg)
	defer d.CloseIdleConnections()
	tee := &slowWriter{delay: 2 * cfg.StallTimeout}
	path := filepath.Join(t.TempDir(), "f")
	if err := d.Download(context.Background(), Request{URL: ts.URL, Size: uint64(len(data))}, path, tee, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tee.Bytes(), data) || srv.count() != 1 {
		t.Fatalf("tee %d bytes, %d requests", tee.Len(), srv.count())
	}
}

// A server that caps every range is followed part by part, without retries.
func TestCappedRanges(t *testing.T) {
	data := testData(23, 1<<20+5)
	const limit = 100_000
	var ranges []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := 0
		fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &start)
		end := min(start+limit, len(data)) - 1
		r.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", start, end))
		ranges = append(ranges, r.Header.Get("Range"))
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	defer ts.Close()
	cfg := testConfig()
	cfg.MaxRetries = -1
	d := New(cfg)
	defer d.CloseIdleConnections()
	res := download(t, d, context.Background(), Request{URL: ts.URL, Size: uint64(len(data))}, filepath.Join(t.TempDir(), "f"))
	checkComplete(t, res, data)
	if len(ranges) != (len(data)+limit-1)/limit {
		t.Fatalf("%d requests: %q", len(ranges), ranges)
	}
}

// Cancelling during the backoff between attempts ends the Download at once.
func TestCancelDuringBackoff(t *testing.T) {
	var requests atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Retry-After", "3600")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer ts.Close()
	cfg := testConfig()
	cfg.BackoffMin, cfg.BackoffMax = time.Hour, time.Hour
	d := New(cfg)
	defer d.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- d.Download(ctx, Request{URL: ts.URL, Size: 10}, filepath.Join(t.TempDir(), "f"), nil, nil)
	}()
	for requests.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Download kept waiting after cancel")
	}
	if requests.Load() != 1 {
		t.Fatalf("%d requests", requests.Load())
	}
}

// A full disk ends the download at once with the device's error, not
// after the retries meant for the network.
func TestDiskFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full here")
	}
	data := testData(3, 1<<20)
	srv := &rangeServer{data: data}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	d := New(testConfig())
	defer d.CloseIdleConnections()
	path := filepath.Join(t.TempDir(), "f")
	if err := os.Symlink("/dev/full", path); err != nil {
		t.Fatal(err)
	}
	// Not download(): reading /dev/full back never ends.
	err := d.Download(context.Background(), Request{URL: ts.URL, Size: uint64(len(data))}, path, nil, nil)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("err = %v, want ENOSPC", err)
	}
	if n := srv.count(); n != 1 {
		t.Fatalf("%d requests: a full disk was retried", n)
	}
	t.Log(err)
}

// stingyServer serves size bytes of zeros, honouring Range: each response
// sends at most chunk bytes, one every gap (at once when gap is zero), and
// then goes silent until the client hangs up. It counts its requests and
// how many are in flight.
type stingyServer struct {
	size, chunk int
	gap         time.Duration

	mu               sync.Mutex
	requests, active int
}

func (s *stingyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	s.active++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.active--
		s.mu.Unlock()
	}()
	start := 0
	if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &start); err == nil {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, s.size-1, s.size))
		w.Header().Set("Content-Length", fmt.Sprint(s.size-start))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.Header().Set("Content-Length", fmt.Sprint(s.size))
	}
	for i := 0; i < s.chunk; i++ {
		if i > 0 && s.gap > 0 {
			select {
			case <-time.After(s.gap):
			case <-r.Context().Done():
				return
			}
		}
		w.Write([]byte{0})
		w.(http.Flusher).Flush()
		if s.gap == 0 {
			w.Write(make([]byte, s.chunk-1))
			w.(http.Flusher).Flush()
			break
		}
	}
	<-r.Context().Done()
}

func (s *stingyServer) counts() (requests, active int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, s.active
}

// A server that sends a little and then goes silent, on every request, for
// ever: each attempt makes progress, and the retry budget still runs out.
func TestLittleThenSilentForever(t *testing.T) {
	srv := &stingyServer{size: 1 << 30, chunk: 1000}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	cfg := testConfig()
	cfg.StallTimeout = 20 * time.Millisecond
	cfg.MaxRetries = 4
	cfg.MinRate = -1 // the retry budget alone
	d := New(cfg)
	defer d.CloseIdleConnections()
	// The deadline only keeps a failing test from running for ever.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res := download(t, d, ctx, Request{URL: ts.URL, Size: uint64(srv.size)}, filepath.Join(t.TempDir(), "f"))
	if !errors.Is(res.err, ErrStalled) || !strings.Contains(res.err.Error(), "giving up after 5 failed attempts") || IsPermanent(res.err) {
		t.Fatalf("err = %v, want a transient ErrStalled after 5 attempts", res.err)
	}
	if n, _ := srv.counts(); n != 5 {
		t.Fatalf("%d requests, want 5", n)
	}
	// Each attempt that got its bytes before the stall timeout made
	// progress; on a loaded machine some may not have.
	if len(res.file) > 5000 {
		t.Fatalf("%d bytes on disk, more than the server sent", len(res.file))
	}
	t.Logf("%d bytes on disk after 5 attempts", len(res.file))
}

// A server that trickles bytes, never silent for the stall timeout, falls
// below the minimum rate and ends the Download.
func TestTooSlow(t *testing.T) {
	srv := &stingyServer{size: 1 << 30, chunk: 1 << 30, gap: 2 * time.Millisecond}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	cfg := testConfig()
	cfg.MaxRetries = 1000
	cfg.MinRate = 1 << 30 // far above one byte every 2ms
	cfg.RateWindow = 30 * time.Millisecond
	d := New(cfg)
	defer d.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res := download(t, d, ctx, Request{URL: ts.URL, Size: uint64(srv.size)}, filepath.Join(t.TempDir(), "f"))
	if !errors.Is(res.err, ErrTooSlow) || IsPermanent(res.err) {
		t.Fatalf("err = %v, want a transient ErrTooSlow", res.err)
	}
	if n, _ := srv.counts(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

// The rate bounds the Download across attempts and the waits between them:
// a server answering 503 with a long Retry-After ends with ErrTooSlow
// before the retries run out.
func TestTooSlowAcrossRetries(t *testing.T) {
	var requests atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Retry-After", "3600")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	defer ts.Close()
	cfg := testConfig()
	cfg.BackoffMin, cfg.BackoffMax = time.Hour, time.Hour
	cfg.MinRate = 1000
	cfg.RateWindow = 30 * time.Millisecond
	d := New(cfg)
	defer d.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res := download(t, d, ctx, Request{URL: ts.URL, Size: 10}, filepath.Join(t.TempDir(), "f"))
	if !errors.Is(res.err, ErrTooSlow) || ctx.Err() != nil {
		t.Fatalf("err = %v, want ErrTooSlow during the backoff", res.err)
	}
	if requests.Load() != 1 {
		t.Fatalf("%d requests", requests.Load())
	}
}

// Progress comes at least every 64 KiB: a counting callback sees every
// multiple of 64 KiB, whatever the size of the reads and buffers.
func TestProgressEvery64KiB(t *testing.T) {
	data := testData(25, 3<<20+12345)
	srv := &rangeServer{data: data, cuts: []int{1<<20 + 1000}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	cfg := testConfig()
	cfg.BufferSize = 0 // the default, 1 MiB
	d := New(cfg)
	defer d.CloseIdleConnections()
	res := download(t, d, context.Background(), Request{URL: ts.URL, Size: uint64(len(data))}, filepath.Join(t.TempDir(), "f"))
	checkComplete(t, res, data)
	if min := (len(data) + progressBytes - 1) / progressBytes; len(res.progress) < min {
		t.Fatalf("%d progress calls for %d bytes, want at least %d", len(res.progress), len(data), min)
	}
	last := uint64(0)
	for _, p := range res.progress {
		if p-last > progressBytes {
			t.Fatalf("progress went from %d to %d: %v", last, p, res.progress)
		}
		last = p
	}
}

// Progress comes at least every second: bytes that arrive before the
// server goes silent are reported during the silence.
func TestProgressEverySecond(t *testing.T) {
	data := testData(26, 100_000)
	seen := make(chan struct{})
	var once sync.Once
	released := make(chan bool, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data[:10])
		w.(http.Flusher).Flush()
		select {
		case <-seen:
			released <- true
		case <-time.After(10 * time.Second):
			released <- false
		}
		w.Write(data[10:])
	}))
	defer ts.Close()
	cfg := testConfig()
	cfg.StallTimeout = time.Minute // longer than the server's silence
	d := New(cfg)
	defer d.CloseIdleConnections()
	var calls []uint64
	err := d.Download(context.Background(), Request{URL: ts.URL, Size: uint64(len(data))}, filepath.Join(t.TempDir(), "f"), nil, func(n uint64) {
		calls = append(calls, n)
		if n == 10 {
			once.Do(func() { close(seen) })
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !<-released {
		t.Fatalf("the first 10 bytes were not reported while the server was silent: %v", calls)
	}
}
