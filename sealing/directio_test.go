package sealing

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

func TestDirectWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sector")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(8 << 20); err != nil {
		t.Fatal(err)
	}
	const off = 1 << 20
	w, err := newDirectWriter(path, off)
	if errors.Is(err, errDirectUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	// Random bytes, a buffer's worth of zeros (skipped), more bytes and a
	// tail that is not a whole block, written in odd-sized pieces.
	want := make([]byte, 0, 4<<20)
	r := rand.New(rand.NewSource(1))
	chunk := func(n int, zero bool) []byte {
		b := make([]byte, n)
		if !zero {
			r.Read(b)
		}
		return b
	}
	want = append(want, chunk(directBufSize+12345, false)...)
	want = append(want, chunk(2*directBufSize-12345, true)...)
	want = append(want, chunk(directBufSize+100, false)...)
	for p := want; len(p) > 0; {
		n := min(len(p), 1+r.Intn(300000))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(f); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes read back differ from those written")
	}
	// Nothing before the offset was touched.
	head := make([]byte, off)
	f.ReadAt(head, 0)
	if !bytes.Equal(head, make([]byte, off)) {
		t.Fatal("bytes before the offset were written")
	}
}

func TestDirectWriterRefusesUnalignedOffset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sector")
	os.WriteFile(path, nil, 0o644)
	if _, err := newDirectWriter(path, 100); err == nil {
		t.Fatal("unaligned offset accepted")
	}
}
