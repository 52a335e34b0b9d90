// Package freeport hands tests loopback TCP ports for servers they start in
// another process (a ferryd run by an end-to-end test), which must be told
// its ports before it binds them.
//
// A port the kernel picks for a listener on ":0" comes from the ephemeral
// range, the range outgoing connections take their local ports from too:
// between the pick and the child's bind, any connection on the machine may
// take it ("address already in use"). So ports are picked below that range
// (Linux's default starts at 32768), from a starting point that differs
// between processes (test binaries of several packages run at once), each
// checked free by binding it, and never handed out twice by one Ports.
package freeport

import (
	"fmt"
	"net"
	"os"
	"sync"
)

// The ports handed out: [low, high), below the ephemeral range.
const (
	low  = 20000
	high = 32768
)

// Ports hands out ports; a test binary keeps one. The zero value is
// ready.
type Ports struct {
	mu   sync.Mutex
	next int // the next port to try; 0: not started
}

// Get returns a loopback TCP port that nothing listens on now and that
// no earlier Get of p returned.
func (p *Ports) Get() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next == 0 {
		p.next = low + os.Getpid()*211%(high-low)
	}
	for range high - low {
		port := p.next
		p.next++
		if p.next == high {
			p.next = low
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free loopback port in [%d, %d)", low, high)
}
