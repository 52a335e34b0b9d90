//go:build !linux

package transfer

import "os"

// startWriteback does nothing here: the sync at the end of a Download
// writes everything.
func startWriteback(*os.File, uint64, uint64) error { return nil }
