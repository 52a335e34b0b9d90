// Package iocount counts the bytes read through readers, for the progress
// that long steps report (AddPiece, indexing) while another goroutine
// watches.
package iocount

import (
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
