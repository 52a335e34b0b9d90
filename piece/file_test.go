package piece

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

type failWriter struct{ after int }

var errSink = errors.New("disk full")

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errSink
	}
	f.after--
	return len(p), nil
}

func TestCalcSinkError(t *testing.T) {
	c := NewCalcWithSink(&failWriter{after: 1})
	p := randBytes(1, 3*chunkU)
	_, err := c.Write(p)
	if !errors.Is(err, errSink) {
		t.Fatalf("Write: %v", err)
	}
	if _, err := c.Sum(); !errors.Is(err, errSink) {
		t.Fatalf("Sum after sink error: %v", err)
	}
	// A sink failing on the last partial chunk fails Sum.
	c = NewCalcWithSink(&failWriter{after: 0})
	c.Write([]byte("tiny"))
	if _, err := c.Sum(); !errors.Is(err, errSink) {
		t.Fatalf("Sum with failing sink: %v", err)
	}
}

func TestCalcWrittenAndNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	c := NewCalc()
	p := randBytes(2, 5*chunkU+3)
	stop := make(chan struct{})
	polled := make(chan uint64)
	go func() { // progress readers poll Written while the writer writes
		var last uint64
		for {
			select {
			case <-stop:
				polled <- last
				return
			default:
				if w := c.Written(); w < last {
					panic("Written went backwards")
				} else {
					last = w
				}
			}
		}
	}()
	for q := p; len(q) > 0; q = q[min(len(q), 100000):] {
		c.Write(q[:min(len(q), 100000)])
	}
	close(stop)
	<-polled
	if c.Written() != uint64(len(p)) {
		t.Fatalf("Written %d", c.Written())
	}
	// Abandon c: its hashing goroutines must end on their own.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines left behind", n-before)
	}
}

func TestFromFile(t *testing.T) {
	dir := t.TempDir()
	p := randBytes(4, 4*chunkU+17)
	path := filepath.Join(dir, "payload")
	if err := os.WriteFile(path, p, 0o644); err != nil {
		t.Fatal(err)
	}
	var last, total uint64
	cm, err := FromFile(context.Background(), path, func(d, tot uint64) { last, total = d, tot })
	if err != nil {
		t.Fatal(err)
	}
	want, size := oracle(t, p)
	if cm.Root != want || cm.Size != size || last != uint64(len(p)) || total != uint64(len(p)) {
		t.Fatalf("FromFile: %x/%d progress %d/%d", cm.Root, cm.Size, last, total)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := FromReader(ctx, bytes.NewReader(p), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	for _, bad := range []string{filepath.Join(dir, "missing"), dir} {
		if _, err := FromFile(context.Background(), bad, nil); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	if _, err := FromFile(context.Background(), empty, nil); !errors.Is(err, ErrEmptyPayload) {
		t.Errorf("empty: %v", err)
	}
}
