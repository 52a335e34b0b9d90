package transfer

import (
	"os"
	"path/filepath"
	"testing"
)

// TestStartWriteback: the writeback of a range of a file being written
// starts without an error, and a closed file's is refused.
func TestStartWriteback(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "staging"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 3<<20)); err != nil {
		t.Fatal(err)
	}
	if err := startWriteback(f, 1<<20, 2<<20); err != nil {
		t.Fatalf("starting writeback: %v", err)
	}
	f.Close()
	if err := startWriteback(f, 0, 1<<20); err == nil {
		t.Fatal("writeback of a closed file started")
	}
}
