package httpdeal

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// DefaultRateLimit is how many requests per second one IP address may make
// to one route, Curio's limit for its deal routes.
const DefaultRateLimit = 50

// rateLimiter counts the requests of each IP address in the current second
// and refuses those beyond limit with 429, as Curio's per-route limiter does.
// The counts start again every second, so its memory is bounded by the
// addresses seen in one second.
type rateLimiter struct {
	limit int
	now   func() time.Time
	// peer, when set, reports whether a request was forwarded by another
	// node of the cluster (it carries the cluster's token): such a request
	// counts under its client's address, not the forwarding node's.
	peer func(*http.Request) bool

	mu     sync.Mutex
	second int64              // the Unix second counts is for; guarded by mu
	counts map[netip.Addr]int // guarded by mu
}

func newRateLimiter(limit int, now func() time.Time) *rateLimiter {
	if limit <= 0 {
		limit = DefaultRateLimit
	}
	if now == nil {
		now = time.Now
	}
	return &rateLimiter{limit: limit, now: now, counts: make(map[netip.Addr]int)}
}

// allow records a request from ip and reports whether it is within the limit.
func (l *rateLimiter) allow(ip netip.Addr) bool {
	sec := l.now().Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	if sec != l.second {
		l.second = sec
		clear(l.counts)
	}
	if l.counts[ip] >= l.limit {
		return false
	}
	l.counts[ip]++
	return true
}

// wrap answers 429 Too Many Requests, before reading anything, to a request
// beyond the limit of its remote address.
func (l *rateLimiter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.allow(l.clientIP(r)) {
			http.Error(w, http.StatusText(http.StatusTooManyRequests), http.StatusTooManyRequests)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// clientIP is the address a request came from: its remote address, or,
// for a request another node of the cluster forwarded (l.peer), the last
// address of its X-Forwarded-For, the one that node added. Forwarding
// headers are trusted from nowhere else: anyone can set them, and the
// addresses before the last are the client's own say. An unparsable
// address (not one net/http produces) counts as the zero address.
func (l *rateLimiter) clientIP(r *http.Request) netip.Addr {
	if l.peer != nil && l.peer(r) {
		if hops := r.Header.Values("X-Forwarded-For"); len(hops) > 0 {
			last := hops[len(hops)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if ip, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
				return ip.Unmap()
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap()
}
