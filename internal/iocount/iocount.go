// Package iocount counts the bytes read or written through readers and
// writers, for the progress that long steps report (AddPiece, indexing, import-data) while another
// goroutine watches, and stops long reads when their context ends
// (ContextReader).
package iocount

import (
	"context"
	"io"
	"sync/atomic"
)

// Reader adds the bytes read from R to N and, when Progress is set, calls
// it with the new total after every read that got bytes.
type Reader struct {
	R        io.Reader
	N        *atomic.Int64
	Progress func(total int64)
}

// Read reads from R and counts what it got.
func (c Reader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.count(n)
	return n, err
}

func (c Reader) count(n int) { count(c.N, n, c.Progress) }

// Writer adds the bytes written to W to N and, when Progress is set, calls
// it with the new total after every write of some bytes.
type Writer struct {
	W        io.Writer
	N        *atomic.Int64
	Progress func(total int64)
}

// Write writes to W and counts what it took.
func (c Writer) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	count(c.N, n, c.Progress)
	return n, err
}

func count(total *atomic.Int64, n int, progress func(int64)) {
	if n <= 0 {
		return
	}
	t := total.Add(int64(n))
	if progress != nil {
		progress(t)
	}
}

// ReaderAt adds the bytes read from R to N.
type ReaderAt struct {
	R io.ReaderAt
	N *atomic.Int64
}

// ReadAt reads from R and counts what it got.
func (c ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.R.ReadAt(p, off)
	count(c.N, n, nil)
	return n, err
}

// ContextReader reads from R until Ctx ends; from then on Read returns
// Ctx's error without reading.
type ContextReader struct {
	Ctx context.Context
	R   io.Reader
}

// Read reads from R unless Ctx has ended.
func (c ContextReader) Read(p []byte) (int, error) {
	if err := c.Ctx.Err(); err != nil {
		return 0, err
	}
	return c.R.Read(p)
}
