// Package procs holds ferryd's choice of GOMAXPROCS.
//
// ferryd runs with one P more than Go's default. AddPiece writes the sector
// file with O_DIRECT from a goroutine that blocks in pwritev while the other
// goroutines hash. While it blocks, the runtime hands its P to them; when
// the write returns and every P is busy hashing, the writer waits in the
// global run queue, which a busy P looks at only every 61 scheduling ticks,
// and the disk idles meanwhile. A spare P lets the writer issue its next
// write at once. On our 2-core VM this took AddPiece from 64-68% to 70-75%
// of CommP's throughput (`ferry-bench addpiece`, CommP at Go's default);
// CommP itself runs as fast with the spare P as without.
package procs

import (
	"os"
	"runtime"
	"strconv"
)

// Ferryd returns the GOMAXPROCS ferryd runs with: the value of the
// GOMAXPROCS environment variable when it sets one, else Go's default (the
// current value, if nothing changed it) plus one.
func Ferryd() int {
	if n, err := strconv.Atoi(os.Getenv("GOMAXPROCS")); err == nil && n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0) + 1
}
