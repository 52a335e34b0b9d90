//go:build !linux

package sealing

import "os"

// openDirect reports that this platform writes through the page cache.
func openDirect(path string) (*os.File, error) { return nil, errDirectUnsupported }
