package cliutil

import (
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// Progress prints a one-line status to stderr at most every 200 ms, when
// stderr is a terminal; otherwise it prints nothing.
type Progress struct {
	mu   sync.Mutex
	on   bool
	last time.Time
	used bool
}

// NewProgress returns a Progress that prints nothing when quiet (or when
// stderr is no terminal).
func NewProgress(quiet bool) *Progress {
	return &Progress{on: !quiet && IsTerminal(os.Stderr)}
}

// Show prints the line if enough time passed since the last one.
func (p *Progress) Show(format string, args ...any) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.used = true
	fmt.Fprintf(os.Stderr, "\r\033[K"+format, args...)
}

// Done clears the progress line.
func (p *Progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used {
		fmt.Fprint(os.Stderr, "\r\033[K")
		p.used = false
	}
}

// HumanBytes formats n with binary units.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
