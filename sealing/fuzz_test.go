package sealing

import (
	"encoding/json"
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

// FuzzParseStorageMeta feeds arbitrary bytes to the sectorstore.json
// decoder: it must never panic, and what it accepts has an ID and survives
// a re-encoding.
func FuzzParseStorageMeta(f *testing.F) {
	f.Add([]byte(`{"ID":"d7c6d3c0-0c07-4a7c-9df1-6d1f5b5c9f5e","Weight":10,"CanSeal":true,"CanStore":true,"MaxStorage":0,"Groups":null,"AllowTo":null,"AllowTypes":null,"DenyTypes":null,"AllowMiners":null,"DenyMiners":null}`))
	f.Add([]byte(`{"Weight":10}`))
	f.Add([]byte(`{"ID":""}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseStorageMeta(b)
		if err != nil {
			return
		}
		if m.ID == "" {
			t.Fatal("accepted a storage path without an ID")
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseStorageMeta(again)
		if err != nil || back.ID != m.ID || back.Weight != m.Weight || back.CanSeal != m.CanSeal || back.CanStore != m.CanStore {
			t.Fatalf("re-encoding changed %+v into %+v (%v)", m, back, err)
		}
	})
}
