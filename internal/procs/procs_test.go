package procs

import (
	"runtime"
	"testing"
)

func TestFerryd(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	if got, want := Ferryd(), runtime.GOMAXPROCS(0)+1; got != want {
		t.Fatalf("without the variable: %d, want %d", got, want)
	}
	t.Setenv("GOMAXPROCS", "7")
	if got := Ferryd(); got != 7 {
		t.Fatalf("GOMAXPROCS=7: %d", got)
	}
	t.Setenv("GOMAXPROCS", "many")
	if got, want := Ferryd(), runtime.GOMAXPROCS(0)+1; got != want {
		t.Fatalf("a bad value: %d, want %d", got, want)
	}
}
