package main

import (
	"context"
	"testing"
)

// BenchmarkHandoff is `ferry-bench handoff` as Go benchmarks: a 1 GiB
// piece into ferryd's sealing, in process (local) and through
// SectorAddPieceToAny over loopback (loopback). Each iteration writes a
// new 1 GiB piece into a sparse 32 GiB sector file.
func BenchmarkHandoff(b *testing.B) {
	ctx := context.Background()
	rig, err := newHandoffRig(ctx, b.TempDir(), 1<<30/128*127)
	if err != nil {
		b.Fatal(err)
	}
	defer rig.close()
	for _, c := range []struct {
		name string
		run  func(context.Context) (int64, error)
	}{
		{"local", func(ctx context.Context) (int64, error) { d, err := rig.local(ctx); return int64(d), err }},
		{"loopback", func(ctx context.Context) (int64, error) { d, err := rig.remote(ctx); return int64(d), err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(rig.size.Padded()))
			for range b.N {
				if _, err := c.run(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
