package transfer

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// slots hands out a Downloader's download slots: at most max downloads run
// at once, at most perHost of them from one host:port and perClient for one
// client (zero: no such limit). A download waits without holding any slot,
// so one stuck on a busy host keeps no one else waiting. A free slot goes
// to the waiting download whose client has the fewest downloads running,
// the one that came first among equals: clients take turns, and one with
// many downloads, or stalling ones, cannot starve the others.
type slots struct {
	max, perHost, perClient int

	mu      sync.Mutex
	running int
	hosts   map[string]int // running downloads per host:port; no zero entries
	clients map[string]int // running downloads per client; no zero entries
	waiting []*waiter      // in arrival order
}

// waiter is a download waiting for a slot.
type waiter struct {
	host, client string
	admitted     bool          // guarded by slots.mu
	ready        chan struct{} // closed when admitted
}

func newSlots(max, perHost, perClient int) *slots {
	return &slots{
		max:       max,
		perHost:   perHost,
		perClient: perClient,
		hosts:     make(map[string]int),
		clients:   make(map[string]int),
	}
}

// acquire waits for a slot for a download from host for client, or for ctx
// to end. Call release once the download is over.
func (s *slots) acquire(ctx context.Context, host, client string) (release func(), err error) {
	w := &waiter{host: host, client: client, ready: make(chan struct{})}
	s.mu.Lock()
	s.waiting = append(s.waiting, w)
	s.dispatch()
	s.mu.Unlock()
	select {
	case <-w.ready:
		return func() { s.release(w) }, nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	admitted := w.admitted
	if !admitted {
		s.waiting = slices.DeleteFunc(s.waiting, func(x *waiter) bool { return x == w })
	}
	s.mu.Unlock()
	if admitted { // at the same time as ctx ended
		s.release(w)
	}
	return nil, fmt.Errorf("waiting for a download slot: %w", ctx.Err())
}

// release frees w's slot and hands it on.
func (s *slots) release(w *waiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.running--
	decr(s.hosts, w.host)
	decr(s.clients, w.client)
	s.dispatch()
}

func decr(m map[string]int, k string) {
	if m[k]--; m[k] == 0 {
		delete(m, k)
	}
}

// dispatch admits waiters while slots are free, each time the one that fits
// whose client runs the fewest downloads, the earliest among equals. The
// caller holds mu.
func (s *slots) dispatch() {
	for s.running < s.max {
		best := -1
		for i, w := range s.waiting {
			if (s.perHost > 0 && s.hosts[w.host] >= s.perHost) || (s.perClient > 0 && s.clients[w.client] >= s.perClient) {
				continue
			}
			if best < 0 || s.clients[w.client] < s.clients[s.waiting[best].client] {
				best = i
			}
		}
		if best < 0 {
			return
		}
		w := s.waiting[best]
		s.waiting = slices.Delete(s.waiting, best, best+1)
		s.running++
		s.hosts[w.host]++
		s.clients[w.client]++
		w.admitted = true
		close(w.ready)
	}
}
