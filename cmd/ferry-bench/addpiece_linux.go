package main

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// alignedBuffers returns n buffers of size bytes each, page-aligned as
// O_DIRECT needs (anonymous mappings start on a page).
func alignedBuffers(n, size int) ([][]byte, error) {
	bufs := make([][]byte, n)
	for i := range bufs {
		b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			return nil, fmt.Errorf("mapping a %d-byte buffer: %w", size, err)
		}
		bufs[i] = b
	}
	return bufs, nil
}

// directWrite writes size bytes (a multiple of the buffers' size) to a new
// file at path with O_DIRECT, the buffers one after another in each
// pwritev, as `dd oflag=direct` does; the last write takes what is left.
func directWrite(path string, size int64, bufs [][]byte) error {
	chunk := int64(len(bufs[0]))
	if size%chunk != 0 {
		return fmt.Errorf("%d bytes is not a multiple of the %d-byte buffers", size, chunk)
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_DIRECT, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s with O_DIRECT: %w", path, err)
	}
	defer unix.Close(fd)
	for off := int64(0); off < size; {
		w := bufs[:min(int64(len(bufs)), (size-off)/chunk)]
		n, err := unix.Pwritev(fd, w, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("writing %s at %d: %w", path, off, err)
		}
		if int64(n) != int64(len(w))*chunk {
			return fmt.Errorf("writing %s at %d: %d of %d bytes written", path, off, n, int64(len(w))*chunk)
		}
		off += int64(n)
	}
	return nil
}

// stealTime is the machine's steal time so far, summed over its CPUs: the
// eighth number of /proc/stat's cpu line, in USER_HZ ticks (100 a second on
// every Linux that Go runs on); 0 when it cannot be read.
func stealTime() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	return parseSteal(b)
}
