//go:build !linux

package main

import (
	"errors"
	"time"
)

var errNoDirect = errors.New("the disk pass needs O_DIRECT (Linux)")

func alignedBuffers(n, size int) ([][]byte, error)             { return nil, errNoDirect }
func directWrite(path string, size int64, bufs [][]byte) error { return errNoDirect }

// stealTime is 0 where /proc/stat is not there.
func stealTime() time.Duration { return 0 }
