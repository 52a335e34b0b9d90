package sealing

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// openDirect opens path for writing with O_DIRECT.
func openDirect(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT, 0)
	if errors.Is(err, syscall.EINVAL) {
		return nil, fmt.Errorf("%s: %w", path, errDirectUnsupported)
	}
	return f, err
}
