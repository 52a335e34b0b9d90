package iocount

import (
	"bytes"
	"context"
	"errors"
	"io"
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
