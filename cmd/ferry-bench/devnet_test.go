package main

import (
	"context"
	"testing"
)

func TestDevnetBenchScenario(t *testing.T) {
	rep, err := benchDevnet(context.Background(), t.TempDir(), 20, 8)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sends != 20 || rep.Deals != 8 || rep.MineSends <= 0 || rep.MinePublish <= 0 {
		t.Fatalf("report %+v", rep)
	}
}

func BenchmarkDevnet(b *testing.B) {
	for i := 0; i < b.N; i++ {
		rep, err := benchDevnet(context.Background(), b.TempDir(), 1000, 256)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(rep.MineSends.Microseconds())/1000, "ms/block-1000-sends")
		b.ReportMetric(float64(rep.MinePublish.Microseconds())/1000, "ms/block-psd-256")
		b.ReportMetric(float64(rep.PushSends.Microseconds())/1000, "ms/push-1000-sends")
	}
}
