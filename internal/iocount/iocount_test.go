package iocount

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"sync/atomic"
	"testing"
)

func TestCounts(t *testing.T) {
	data := bytes.Repeat([]byte("ferry"), 1000)
	var n atomic.Int64
	got, err := io.ReadAll(Reader{R: bytes.NewReader(data), N: &n})
	if err != nil || !bytes.Equal(got, data) || n.Load() != int64(len(data)) {
		t.Fatalf("Reader: %d bytes read, %d counted, %v", len(got), n.Load(), err)
	}
	var m atomic.Int64
	ra := ReaderAt{R: bytes.NewReader(data), N: &m}
	buf := make([]byte, 100)
	if k, err := ra.ReadAt(buf, int64(len(data))-40); k != 40 || err != io.EOF || m.Load() != 40 {
		t.Fatalf("ReadAt at the end: %d, %v; counted %d", k, err, m.Load())
	}
}

func TestContextReader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := ContextReader{Ctx: ctx, R: bytes.NewReader([]byte("ferry"))}
	buf := make([]byte, 2)
	if n, err := r.Read(buf); n != 2 || err != nil {
		t.Fatalf("before cancel: %d, %v", n, err)
	}
	cancel()
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %d, %v", n, err)
	}
}

func TestProgress(t *testing.T) {
	data := bytes.Repeat([]byte("ferry"), 1000)
	var read atomic.Int64
	var seen []int64
	r := Reader{R: bytes.NewReader(data), N: &read, Progress: func(total int64) { seen = append(seen, total) }}
	buf := make([]byte, 1500)
	for {
		if _, err := r.Read(buf); err != nil {
			break
		}
	}
	// 5000 bytes in reads of 1500: progress after each read that got bytes,
	// never for the empty read at EOF.
	if want := []int64{1500, 3000, 4500, 5000}; !slices.Equal(seen, want) {
		t.Fatalf("Reader progress %v, want %v", seen, want)
	}

	var written atomic.Int64
	var last int64
	var out bytes.Buffer
	w := Writer{W: &out, N: &written, Progress: func(total int64) { last = total }}
	if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if written.Load() != int64(len(data)) || last != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("Writer: counted %d, last progress %d, %d bytes out", written.Load(), last, out.Len())
	}
}
