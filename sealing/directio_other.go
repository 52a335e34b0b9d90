//go:build !linux

package sealing

import "os"

// openDirect reports that this platform writes through the page cache.
func openDirect(path string) (*os.File, error) { return nil, errDirectUnsupported }

// writevAt writes bufs one after another at off.
func writevAt(f *os.File, bufs [][]byte, off int64) error {
	for _, b := range bufs {
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
		off += int64(len(b))
	}
	return nil
}
