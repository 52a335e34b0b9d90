package sealing

import (
	"testing"
)

// FuzzDecodeTrailer feeds arbitrary bytes to the unsealed-file trailer
// decoder: it must never panic, must keep spans inside the sector, and what
// it accepts must survive a re-encoding.
func FuzzDecodeTrailer(f *testing.F) {
	for _, spans := range [][]span{nil, {{0, 2048}}, {{0, 128}, {256, 256}}, {{1024, 1024}}} {
		b, err := encodeTrailer(spans)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		spans, err := decodeTrailer(b, 2048)
		if err != nil {
			return
		}
		for _, s := range spans {
			if uint64(s.Offset)+uint64(s.Size) > 2048 {
				t.Fatalf("span %v past the sector", s)
			}
		}
		again, err := encodeTrailer(spans)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeTrailer(again, 2048)
		if err != nil || !sameCoverage(back, spans) {
			t.Fatalf("re-encoding changed the allocation: %v → %v (%v)", spans, back, err)
		}
	})
}
