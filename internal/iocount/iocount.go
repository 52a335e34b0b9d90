// Package iocount counts the bytes read through readers, for the progress
// that long steps report (AddPiece, indexing, import-data) while another
// goroutine watches, and stops long reads when their context ends
// (ContextReader).
package iocount

import (
	"context"
	"io"
	"sync/atomic"
)

// Reader adds the bytes read from R to N.
type Reader struct {
	R io.Reader
	N *atomic.Int64
}

// Read reads from R and counts what it got.
func (c Reader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N.Add(int64(n))
	return n, err
}

// ReaderAt adds the bytes read from R to N.
type ReaderAt struct {
	R io.ReaderAt
	N *atomic.Int64
}

// ReadAt reads from R and counts what it got.
func (c ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.R.ReadAt(p, off)
	c.N.Add(int64(n))
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
