package transfer

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing the n bytes of f at off
// to the disk now, without waiting for them (sync_file_range with
// SYNC_FILE_RANGE_WRITE). It is advice, and a Download ignores its error:
// the sync at the end reports what fails.
func startWriteback(f *os.File, off, n uint64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	if cerr := rc.Control(func(fd uintptr) {
		err = unix.SyncFileRange(int(fd), int64(off), int64(n), unix.SYNC_FILE_RANGE_WRITE)
	}); cerr != nil {
		return cerr
	}
	return err
}
