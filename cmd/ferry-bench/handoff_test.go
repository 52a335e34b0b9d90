package main

import (
	"context"
	"path/filepath"
	"testing"
)

// TestHandoffWire runs the two passes that price the wire on a file of a
// few MiB (not a whole number of 1 MiB reads): each moved every byte, so
// neither can measure nothing.
func TestHandoffWire(t *testing.T) {
	path := filepath.Join(t.TempDir(), "payload")
	const size = 5<<20 + 12345
	if err := writeRandom(path, size); err != nil {
		t.Fatal(err)
	}
	for name, move := range map[string]func(string) (int64, error){
		"filecopy": readFile,
		"tcp":      func(p string) (int64, error) { return sendFile(context.Background(), p) },
	} {
		n, err := move(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n != size {
			t.Fatalf("%s moved %d bytes of %d", name, n, size)
		}
		if err := moveAll(path, size+1, move); err == nil {
			t.Fatalf("%s: moveAll took %d bytes for %d", name, size, size+1)
		}
	}
}

// BenchmarkHandoff is `ferry-bench handoff` as Go benchmarks: a 1 GiB
// piece into ferryd's sealing, in process (local) and through
// SectorAddPieceToAny over loopback (loopback), and the piece's file read
// from the page cache (filecopy) and sent over loopback TCP (tcp), whose
// difference is what the wire costs. Each local or loopback iteration
// writes a new 1 GiB piece into a sparse 32 GiB sector file.
func BenchmarkHandoff(b *testing.B) {
	ctx := context.Background()
	const payload = 1 << 30 / 128 * 127
	rig, err := newHandoffRig(ctx, b.TempDir(), payload)
	if err != nil {
		b.Fatal(err)
	}
	defer rig.close()
	for _, c := range []struct {
		name  string
		bytes int64
		run   func() error
	}{
		{"local", int64(rig.size.Padded()), func() error { return rig.local(ctx) }},
		{"loopback", int64(rig.size.Padded()), func() error { return rig.remote(ctx) }},
		{"filecopy", payload, func() error { return moveAll(rig.src, payload, readFile) }},
		{"tcp", payload, func() error {
			return moveAll(rig.src, payload, func(p string) (int64, error) { return sendFile(ctx, p) })
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(c.bytes)
			cpu0 := cpuTime()
			for range b.N {
				if err := c.run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric((cpuTime()-cpu0)/float64(b.N)/(float64(c.bytes)/(1<<30)), "CPU-s/GiB")
		})
	}
}
