package minerapi

import (
	"context"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"runtime"
	"sync"
	"testing"

	"github.com/filecoin-project/go-state-types/abi"
)

// patternReader gives n bytes cheaply: a random block, repeated, each
// repetition shifted so no two blocks are alike.
type patternReader struct {
	block []byte
	off   int64
	n     int64
}

func newPatternReader(n int64) *patternReader {
	return &patternReader{block: randomBytes(1<<20+1, 9), n: n}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	k := 0
	for k < len(b) {
		i := int(p.off % int64(len(p.block)))
		c := copy(b[k:], p.block[i:])
		k += c
		p.off += int64(c)
	}
	return k, nil
}

// TestStreamBigPieceFlatMemory pushes a 4 GiB piece (32 GiB with
// FERRY_LONG_TESTS=1) through SectorAddPieceToAny over loopback and checks
// that the heap stays small all the way: the bytes stream, nothing buffers
// them.
func TestStreamBigPieceFlatMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("streams 4 GiB; skipped with -short and under the race detector")
	}
	const ssize = abi.SectorSize(32 << 30)
	ps := abi.PaddedPieceSize(4 << 30)
	if os.Getenv("FERRY_LONG_TESTS") != "" {
		ps = abi.PaddedPieceSize(ssize)
	}
	size := ps.Unpadded()

	table := crc32.MakeTable(crc32.Castagnoli)
	fs := newFakeSealing(t, ssize)
	fs.newHash = func() hash.Hash { return crc32.New(table) }
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var mu sync.Mutex
	var peak uint64
	var samples int
	fs.reading = func(n int64) error {
		if n/(256<<20) == int64(samples) {
			return nil
		}
		samples++
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		mu.Lock()
		peak = max(peak, ms.HeapInuse)
		mu.Unlock()
		return nil
	}
	ts := startTestServer(t, fs, ssize)
	c := ts.dial(t, adminToken)
	d := testDeal(1, ps)
	if _, err := c.SectorAddPieceToAny(context.Background(), size, newPatternReader(int64(size)), dealInfo(d)); err != nil {
		t.Fatal(err)
	}
	want := crc32.New(table)
	if _, err := io.CopyBuffer(want, newPatternReader(int64(size)), make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if got := fs.digests[DealUUID(d.PublishCid, d.DealID)]; string(got) != string(want.Sum(nil)) {
		t.Fatal("the server got other bytes than sent")
	}
	if samples < 10 {
		t.Fatalf("only %d memory samples", samples)
	}
	// Both ends run in this process: client, server and the fake
	// together hold a few MiB of buffers.
	if growth := int64(peak) - int64(base.HeapInuse); growth > 64<<20 {
		t.Fatalf("heap grew by %d MiB while streaming a %d GiB piece", growth>>20, ps>>30)
	}
	t.Logf("%d memory samples; peak heap in use %d MiB (%d MiB before)", samples, peak>>20, base.HeapInuse>>20)
}
