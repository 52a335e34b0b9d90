package sealing

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// openDirect opens path for writing with O_DIRECT.
func openDirect(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT, 0)
	if errors.Is(err, syscall.EINVAL) {
		return nil, fmt.Errorf("%s: %w", path, errDirectUnsupported)
	}
	return f, err
}

// writevAt writes bufs one after another at off with as few pwritev calls
// as the kernel allows.
func writevAt(f *os.File, bufs [][]byte, off int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	for len(bufs) > 0 {
		var n int
		var werr error
		if cerr := rc.Write(func(fd uintptr) bool {
			n, werr = unix.Pwritev(int(fd), bufs, off)
			return true
		}); cerr != nil {
			return fmt.Errorf("writing %s: %w", f.Name(), cerr)
		}
		if werr == unix.EINTR {
			continue
		}
		if werr != nil {
			return fmt.Errorf("writing %s at %d: %w", f.Name(), off, werr)
		}
		if n == 0 {
			return fmt.Errorf("writing %s at %d: %w", f.Name(), off, io.ErrShortWrite)
		}
		off += int64(n)
		for n > 0 {
			if n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
			} else {
				bufs[0] = bufs[0][n:]
				n = 0
			}
		}
	}
	return nil
}
