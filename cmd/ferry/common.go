package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// jsonFlag asks a command for JSON on stdout instead of text.
var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print the result as JSON"}

// printResult prints v as JSON when --json was given, else calls human.
func printResult(c *cli.Context, v any, human func(w io.Writer)) error {
	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("printing JSON: %w", err)
		}
		return nil
	}
	human(w)
	return nil
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// progress prints a one-line status to stderr at most every 200 ms, when
// stderr is a terminal; otherwise it prints nothing.
type progress struct {
	mu   sync.Mutex
	on   bool
	last time.Time
	used bool
}

func newProgress(quiet bool) *progress {
	return &progress{on: !quiet && isTerminal(os.Stderr)}
}

// show prints the line if enough time passed since the last one.
func (p *progress) show(format string, args ...any) {
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

// done clears the progress line.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.used {
		fmt.Fprint(os.Stderr, "\r\033[K")
		p.used = false
	}
}

// humanBytes formats n with binary units.
func humanBytes(n int64) string {
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
