package market

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"
	"github.com/filecoin-project/go-state-types/builtin/v9/market"

	"github.com/ferry-fil/ferry/wire"
)

// BenchmarkPropose measures validation and admission of offline deals (no
// transfer) over the fake chain, with parallel proposers.
func BenchmarkPropose(b *testing.B) {
	h := newHarness(b, b.TempDir(), nil)
	h.deps.Logf = func(string, ...any) {}
	h.start()
	deals := make([]*wire.DealParams, b.N)
	for i := range deals {
		deals[i] = h.deal(fmt.Sprintf("b%d", i%8), 1000, int64(i%8), func(p *market.DealProposal, d *wire.DealParams) {
			p.StartEpoch += abi.ChainEpoch(i)
			p.EndEpoch += abi.ChainEpoch(i)
			d.IsOffline, d.Transfer = true, wire.Transfer{}
		})
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d := deals[next.Add(1)-1]
			if r := h.p.Propose(context.Background(), d, "bench"); !r.Accepted {
				b.Error(r.Message)
			}
		}
	})
}
