package ui

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"math/big"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/filecoin-project/go-state-types/abi"
	fbig "github.com/filecoin-project/go-state-types/big"
)

// page is what every template gets.
type page struct {
	Title   string
	Nav     string // the menu entry to highlight
	Session *session
	Clock   clock
	Data    any
	Problem string // an error to show above the content
	Notice  string // a confirmation to show above the content
}

// CSRF is the session's form token.
func (p *page) CSRF() string {
	if p.Session == nil {
		return ""
	}
	return p.Session.csrf
}

// CanAct says whether the session may use actions.
func (p *page) CanAct() bool { return p.Session != nil && p.Session.canAct() }

// clock places chain epochs in time from the head's epoch and timestamp.
type clock struct {
	Head     abi.ChainEpoch
	HeadTime time.Time
	Delay    time.Duration
}

// At is when epoch e happened or will happen.
func (c clock) At(e abi.ChainEpoch) time.Time {
	return c.HeadTime.Add(time.Duration(e-c.Head) * c.Delay)
}

// EpochAt is the epoch of time t.
func (c clock) EpochAt(t time.Time) abi.ChainEpoch {
	if c.Delay <= 0 {
		return c.Head
	}
	return c.Head + abi.ChainEpoch(t.Sub(c.HeadTime)/c.Delay)
}

// Known says whether the clock was read from the chain.
func (c clock) Known() bool { return !c.HeadTime.IsZero() && c.Delay > 0 }

// parseTemplates parses each page with the layout and the shared parts.
func parseTemplates() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	base := template.New("").Funcs(funcs)
	shared := []string{"templates/layout.html", "templates/parts.html"}
	if base, err = base.ParseFS(templateFS, shared...); err != nil {
		return nil, fmt.Errorf("ui: parsing templates: %w", err)
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" || name == "parts" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("ui: parsing %s: %w", n, err)
		}
		out[name] = t
	}
	return out, nil
}

// render writes the page name whole.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	s.renderPart(w, r, status, name, "layout", p)
}

// renderPart writes one template (the whole layout, or a live fragment) of
// the page name. The output is built first, so an error in a template
// never leaves half a page.
func (s *Server) renderPart(w http.ResponseWriter, r *http.Request, status int, name, part string, p *page) {
	t := s.pages[name]
	if t == nil {
		http.Error(w, "no such page", http.StatusNotFound)
		return
	}
	if p.Session == nil {
		p.Session = sessionFrom(r.Context())
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, part, p); err != nil {
		s.cfg.Logf("ui: rendering %s/%s: %v", name, part, err)
		http.Error(w, "the page could not be shown: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

var funcs = template.FuncMap{
	"bytes":    fmtBytes,
	"fil":      filHTML,
	"when":     when,
	"epoch":    epochAt,
	"epochOf":  epochOf,
	"short":    short,
	"pct":      pct,
	"duration": fmtDuration,
	"rate":     func(bps float64) string { return fmtBytes(uint64(bps)) + "/s" },
	"chart":    barChart,
	"deref":    func(p *uint64) uint64 { return *p },
	"add":      func(a, b int) int { return a + b },
	"sub64":    func(a, b uint64) uint64 { return a - b },
	"u64":      toU64,
	"list":     func(v ...any) []any { return v },
	"lower":    strings.ToLower,
}

// fmtBytes writes n in IEC units ("1.5 GiB").
func fmtBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// fmtFIL writes an attoFIL amount exactly, in FIL without trailing zeros.
func fmtFIL(a fbig.Int) string {
	if a.Int == nil {
		return "–"
	}
	r := new(big.Rat).SetFrac(a.Int, big.NewInt(1_000_000_000_000_000_000))
	s := strings.TrimRight(strings.TrimRight(r.FloatString(18), "0"), ".")
	return s + " FIL"
}

// filHTML writes an amount short enough for a table (FIL to 4 decimals,
// nanoFIL or attoFIL for small amounts), the exact amount as its title.
func filHTML(a fbig.Int) template.HTML {
	if a.Int == nil {
		return "–"
	}
	abs := new(big.Int).Abs(a.Int)
	var short string
	switch {
	case abs.Sign() == 0:
		short = "0 FIL"
	case abs.Cmp(big.NewInt(1_000_000_000_000_000)) >= 0: // ≥ 0.001 FIL
		f, _ := new(big.Rat).SetFrac(a.Int, big.NewInt(1_000_000_000_000_000_000)).Float64()
		short = strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.4f", f), "0"), ".") + " FIL"
	case abs.Cmp(big.NewInt(1_000_000_000)) >= 0: // ≥ 1 nanoFIL
		f, _ := new(big.Rat).SetFrac(a.Int, big.NewInt(1_000_000_000)).Float64()
		short = strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", f), "0"), ".") + " nanoFIL"
	default:
		short = a.String() + " attoFIL"
	}
	return template.HTML(fmt.Sprintf(`<span title="%s">%s</span>`, template.HTMLEscapeString(fmtFIL(a)), template.HTMLEscapeString(short)))
}

// when writes t as a <time> element: UTC in the page, turned into the
// browser's local time by ui.js.
func when(t time.Time) template.HTML {
	if t.IsZero() {
		return "–"
	}
	u := t.UTC()
	return template.HTML(fmt.Sprintf(`<time datetime="%s">%s</time>`, u.Format(time.RFC3339), u.Format("2006-01-02 15:04:05 UTC")))
}

// epochAt writes an epoch with the local time it stands for beside it.
func epochAt(c clock, e any) template.HTML {
	var ep abi.ChainEpoch
	switch v := e.(type) {
	case abi.ChainEpoch:
		ep = v
	case int64:
		ep = abi.ChainEpoch(v)
	case int:
		ep = abi.ChainEpoch(v)
	}
	if !c.Known() {
		return template.HTML(fmt.Sprintf(`<span class="epoch">%d</span>`, ep))
	}
	return template.HTML(fmt.Sprintf(`<span class="epoch">%d</span> <span class="dim">%s</span>`, ep, when(c.At(ep))))
}

// epochOf writes a time with the epoch it falls in beside it.
func epochOf(c clock, t time.Time) template.HTML {
	if !c.Known() || t.IsZero() {
		return when(t)
	}
	return template.HTML(fmt.Sprintf(`%s <span class="dim epoch">epoch %d</span>`, when(t), c.EpochAt(t)))
}

// short abbreviates a long identifier: its start and end.
func short(s string) string {
	if len(s) <= 20 {
		return s
	}
	return s[:10] + "…" + s[len(s)-6:]
}

func pct(part, whole uint64) float64 {
	if whole == 0 {
		return 0
	}
	return float64(part) * 100 / float64(whole)
}

func fmtDuration(seconds int64) string {
	if seconds <= 0 {
		return "–"
	}
	return (time.Duration(seconds) * time.Second).String()
}

// toU64 converts the size types of the API to uint64 for fmtBytes.
func toU64(v any) uint64 {
	switch n := v.(type) {
	case abi.PaddedPieceSize:
		return uint64(n)
	case abi.SectorSize:
		return uint64(n)
	case abi.UnpaddedPieceSize:
		return uint64(n)
	case uint64:
		return n
	case int64:
		return uint64(n)
	}
	return 0
}
