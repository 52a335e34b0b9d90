package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
)

// TestIngest runs the ingest bench on a small devnet (two deals of 4 MiB
// pieces into one 8 MiB sector): every deal reaches AddedPiece, its
// checkpoints read from its log in order, and the report gives the rate,
// the limit and the ratio.
func TestIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a devnet ferryd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := runIngest(ctx, ingestParams{
		Deals: 2, PieceSize: 4 << 20, SectorSize: "8MiB", Rounds: 1, PublishPeriod: 100 * time.Millisecond, Dir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.rounds) != 1 || len(res.rounds[0].deals) != 2 {
		t.Fatalf("%d rounds, want 1 with 2 deals", len(res.rounds))
	}
	if want := uint64(2 * abi.PaddedPieceSize(4<<20).Unpadded()); res.dealBytes > want || res.dealBytes < want-2*100 {
		t.Fatalf("%d deal bytes; the CARs should fill their pieces (%d bytes)", res.dealBytes, want)
	}
	round := res.rounds[0]
	for i, d := range round.deals {
		steps := []time.Time{d.proposed, d.accepted, d.transferred, d.published, d.confirmed, d.added}
		for k, at := range steps {
			if at.IsZero() {
				t.Fatalf("deal %d: checkpoint %d has no time in the log", i, k)
			}
			if k > 0 && at.Before(steps[k-1]) {
				t.Fatalf("deal %d: checkpoint %d at %v, before the one before it at %v", i, k, at, steps[k-1])
			}
		}
	}
	if round.wall() <= 0 || res.rate() <= 0 {
		t.Fatalf("round took %v, rate %f", round.wall(), res.rate())
	}
	if limit, disk, commp := res.limit(); limit <= 0 || limit != min(disk, commp) {
		t.Fatalf("limit %f of disk/2 %f and CommP %f", limit, disk, commp)
	}
	if res.pageNew.wall <= 0 || res.pageReuse.wall <= 0 {
		t.Fatalf("page cache passes took %v and %v", res.pageNew.wall, res.pageReuse.wall)
	}
	var out bytes.Buffer
	res.print(&out)
	for _, want := range []string{"ingest:", "limit:", "ratio:", "CPU:", "budget:", "page cache:", "PublishConfirmed -> AddedPiece", "peak RSS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// BenchmarkIngest is `ferry-bench ingest --rounds 1` with its defaults:
// 8 concurrent deals of 256 MiB pieces into 512 MiB sectors, proposal to
// AddedPiece; it reports deal MiB/s and the percentage of the machine's
// limit measured beside it.
func BenchmarkIngest(b *testing.B) {
	for range b.N {
		res, err := runIngest(context.Background(), ingestParams{
			Deals: 8, PieceSize: 256 << 20, SectorSize: "512MiB", Rounds: 1, PublishPeriod: time.Second, Dir: b.TempDir(),
		})
		if err != nil {
			b.Fatal(err)
		}
		limit, _, _ := res.limit()
		b.ReportMetric(res.rate(), "MiB/s")
		b.ReportMetric(100*res.rate()/limit, "%limit")
		b.ReportMetric(res.rounds[0].maxRSS/(1<<20), "MiB-RSS")
	}
}
