package freeport

import (
	"fmt"
	"net"
	"testing"
)

func TestPortsAreFreeDistinctAndBelowEphemeral(t *testing.T) {
	var p Ports
	seen := map[int]bool{}
	// One port taken by a listener of ours is skipped.
	first, err := p.Get()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", first+1))
	if err == nil {
		defer l.Close()
	}
	seen[first] = true
	for range 50 {
		port, err := p.Get()
		if err != nil {
			t.Fatal(err)
		}
		if seen[port] || port < low || port >= high {
			t.Fatalf("port %d: handed out before, or outside [%d, %d)", port, low, high)
		}
		if l != nil && port == first+1 {
			t.Fatalf("port %d handed out while listened on", port)
		}
		seen[port] = true
		pl, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatalf("port %d is not free: %v", port, err)
		}
		pl.Close()
	}
}
