package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestAddPieceBench runs the addpiece bench on an 8 MiB piece: every pass
// ran each round, the fused pass agreed with the plain one on CommP, and
// the report names the disk's rate, the ceiling and the ratios.
func TestAddPieceBench(t *testing.T) {
	res, err := runAddPieceBench(context.Background(), addPieceParams{Dir: t.TempDir(), Size: 8 << 20 / 128 * 127, Rounds: 2})
	if err != nil {
		t.Fatal(err)
	}
	for name, ps := range map[string][]pass{"disk": res.disk, "commp": res.commp, "addpiece": res.addpiece, "both": res.both} {
		if len(ps) != 2 {
			t.Fatalf("%s: %d passes, want 2", name, len(ps))
		}
		for _, p := range ps {
			if p.wall <= 0 {
				t.Fatalf("%s: a pass took %v", name, p.wall)
			}
		}
	}
	if res.written != 8<<20 {
		t.Fatalf("the disk pass writes %d bytes, AddPiece %d", res.written, 8<<20)
	}
	var out bytes.Buffer
	res.print(&out)
	for _, want := range []string{"disk (O_DIRECT", "commp (plain", "addpiece (fr32", "ceiling:", "ratio addpiece/commp", "addpiece/both-at-once", "steal "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// BenchmarkAddPiece is `ferry-bench addpiece --rounds 1` on a 1 GiB piece:
// it reports AddPiece's throughput as a percentage of a plain CommP pass's
// and of the ceiling (the slower of CommP and the disk).
func BenchmarkAddPiece(b *testing.B) {
	for range b.N {
		res, err := runAddPieceBench(context.Background(), addPieceParams{Dir: b.TempDir(), Size: 1 << 30 / 128 * 127, Rounds: 1})
		if err != nil {
			b.Fatal(err)
		}
		commp, fused, disk := res.commp[0].wall, res.addpiece[0].wall, res.disk[0].wall
		b.ReportMetric(100*commp.Seconds()/fused.Seconds(), "%commp")
		b.ReportMetric(100*max(commp, disk).Seconds()/fused.Seconds(), "%ceiling")
	}
}

func TestParseSteal(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"cpu  20150 0 4392 1458392 1686 0 109 582 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n": 5820 * time.Millisecond,
		"cpu  1 2 3 4 5 6 7\n":       0, // a kernel without steal
		"cpu0 1 2 3 4 5 6 7 8 0 0\n": 0, // not the aggregate line
		"cpu  1 2 3 4 5 6 7 x 0 0\n": 0,
		"":                           0,
	} {
		if got := parseSteal([]byte(in)); got != want {
			t.Errorf("parseSteal(%q) = %v, want %v", in, got, want)
		}
	}
}
