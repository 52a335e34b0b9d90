package transfer

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// state is how many downloads run and wait.
func (s *slots) state() (running, waiting int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running, len(s.waiting)
}

// waitState polls until s has running and waiting downloads.
func waitState(t *testing.T, s *slots, running, waiting int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, w := s.state()
		if r == running && w == waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d running and %d waiting, want %d and %d", r, w, running, waiting)
		}
		time.Sleep(time.Millisecond)
	}
}

// acquirer takes slots in goroutines and tells who got one, in order.
type acquirer struct {
	s   *slots
	got chan string
	wg  sync.WaitGroup

	mu       sync.Mutex
	releases map[string]func()
}

func newAcquirer(s *slots) *acquirer {
	return &acquirer{s: s, got: make(chan string, 100), releases: make(map[string]func())}
}

// start has name (client c, host h) wait for a slot.
func (a *acquirer) start(ctx context.Context, name, host, client string) {
	a.wg.Go(func() {
		release, err := a.s.acquire(ctx, host, client)
		if err != nil {
			a.got <- name + ": " + err.Error()
			return
		}
		a.mu.Lock()
		a.releases[name] = release
		a.mu.Unlock()
		a.got <- name
	})
}

func (a *acquirer) release(name string) {
	a.mu.Lock()
	r := a.releases[name]
	delete(a.releases, name)
	a.mu.Unlock()
	r()
}

func (a *acquirer) next(t *testing.T) string {
	t.Helper()
	select {
	case n := <-a.got:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no download got a slot")
		return ""
	}
}

// A freed slot goes to the client with the fewest running downloads, not
// to the one that queued first.
func TestSlotsTakeTurns(t *testing.T) {
	s := newSlots(2, 0, 0)
	a := newAcquirer(s)
	ctx := context.Background()
	a.start(ctx, "A1", "h", "A")
	a.start(ctx, "A2", "h", "A")
	waitState(t, s, 2, 0)
	a.next(t)
	a.next(t)
	a.start(ctx, "A3", "h", "A")
	waitState(t, s, 2, 1)
	a.start(ctx, "A4", "h", "A")
	waitState(t, s, 2, 2)
	a.start(ctx, "B1", "h", "B")
	waitState(t, s, 2, 3)

	a.release("A1") // A runs 1, B none: B1 goes first
	if got := a.next(t); got != "B1" {
		t.Fatalf("%s got the slot, want B1", got)
	}
	a.release("A2") // A runs 0, B 1: A's first waiter
	if got := a.next(t); got != "A3" {
		t.Fatalf("%s got the slot, want A3", got)
	}
	a.release("B1")
	if got := a.next(t); got != "A4" {
		t.Fatalf("%s got the slot, want A4", got)
	}
	a.release("A3")
	a.release("A4")
	a.wg.Wait()
	checkEmpty(t, s)
}

// A download waiting for its host holds no slot: another host's download
// runs meanwhile. The per-client cap leaves slots for other clients.
func TestSlotsHostAndClientCaps(t *testing.T) {
	s := newSlots(3, 1, 2)
	a := newAcquirer(s)
	ctx := context.Background()
	a.start(ctx, "A1", "h1", "A")
	a.next(t)
	a.start(ctx, "A2", "h1", "A") // h1 is full
	waitState(t, s, 1, 1)
	a.start(ctx, "A3", "h2", "A")
	if got := a.next(t); got != "A3" {
		t.Fatalf("%s got the slot, want A3", got)
	}
	a.start(ctx, "A4", "h3", "A") // A is at its cap of 2
	waitState(t, s, 2, 2)
	a.start(ctx, "B1", "h3", "B")
	if got := a.next(t); got != "B1" {
		t.Fatalf("%s got the slot, want B1", got)
	}
	waitState(t, s, 3, 2)
	a.release("A1") // A2 may run now (h1 free, A at 1)
	if got := a.next(t); got != "A2" {
		t.Fatalf("%s got the slot, want A2", got)
	}
	a.release("B1") // h3 free, but A is at its cap again
	waitState(t, s, 2, 1)
	a.release("A3")
	if got := a.next(t); got != "A4" {
		t.Fatalf("%s got the slot, want A4", got)
	}
	a.release("A2")
	a.release("A4")
	a.wg.Wait()
	checkEmpty(t, s)
}

func TestSlotsCancelWhileWaiting(t *testing.T) {
	s := newSlots(1, 0, 0)
	a := newAcquirer(s)
	a.start(context.Background(), "A1", "h", "A")
	a.next(t)
	ctx, cancel := context.WithCancel(context.Background())
	a.start(ctx, "B1", "h", "B")
	waitState(t, s, 1, 1)
	cancel()
	if got := a.next(t); got != "B1: waiting for a download slot: context canceled" {
		t.Fatalf("got %q", got)
	}
	waitState(t, s, 1, 0)
	a.release("A1")
	a.wg.Wait()
	checkEmpty(t, s)
}

func checkEmpty(t *testing.T, s *slots) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running != 0 || len(s.waiting) != 0 || len(s.hosts) != 0 || len(s.clients) != 0 {
		t.Fatalf("slots not empty: %d running, %d waiting, hosts %v, clients %v", s.running, len(s.waiting), s.hosts, s.clients)
	}
}

// Fifteen stalling downloads of one client and twenty slots: the client
// holds at most its share, the others wait, and another client's download
// is let in and completes while they stall.
func TestStallingClientDoesNotStarveOthers(t *testing.T) {
	stalling := &stingyServer{size: 1 << 20, chunk: 100}
	tsA := httptest.NewServer(stalling)
	defer tsA.Close()
	data := testData(40, 10_000)
	honest := &rangeServer{data: data}
	tsB := httptest.NewServer(honest)
	defer tsB.Close()

	cfg := testConfig()
	cfg.MaxConcurrent = 20
	cfg.MaxPerHost = 20
	cfg.StallTimeout = time.Hour // they hold their slots for the whole test
	d := New(cfg)
	defer d.CloseIdleConnections()
	dir := t.TempDir()

	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	var wg sync.WaitGroup
	errs := make(chan error, 15)
	for i := range 15 {
		wg.Go(func() {
			errs <- d.Download(ctxA, Request{URL: tsA.URL, Size: uint64(stalling.size), Client: "12D3KooWClientA"}, filepath.Join(dir, fmt.Sprint("a", i)), nil, nil)
		})
	}
	waitState(t, d.slots, 10, 5)
	waitActive(t, stalling, 10)

	res := download(t, d, context.Background(), Request{URL: tsB.URL, Size: uint64(len(data)), Client: "f1clientbwallet"}, filepath.Join(dir, "b"))
	checkComplete(t, res, data)
	if n, active := stalling.counts(); n != 10 || active != 10 {
		t.Fatalf("the stalling client made %d requests (%d running), want its 10", n, active)
	}
	cancelA()
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("stalling download: %v", err)
		}
	}
	checkEmpty(t, d.slots)
}

func waitActive(t *testing.T, s *stingyServer, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, active := s.counts(); active == n {
			return
		}
		if time.Now().After(deadline) {
			_, active := s.counts()
			t.Fatalf("%d requests in flight, want %d", active, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// The per-host limit counts a numeric host once however it is spelled.
func TestHostKeyNumericForms(t *testing.T) {
	want := "127.0.0.1:8080"
	for _, raw := range []string{"http://127.0.0.1:8080/", "http://127.1:8080/", "http://2130706433:8080/", "http://0x7f000001:8080/x", "http://0177.0.0.1:8080/"} {
		u, err := parseURL(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := hostKey(u); got != want {
			t.Errorf("hostKey(%s) = %s, want %s", raw, got, want)
		}
	}
	for raw, want := range map[string]string{"http://Example.COM/": "example.com:80", "https://example.com/": "example.com:443", "http://[::1]:9/": "[::1]:9"} {
		u, err := parseURL(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := hostKey(u); got != want {
			t.Errorf("hostKey(%s) = %s, want %s", raw, got, want)
		}
	}
}
