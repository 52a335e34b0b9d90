// Package ui is the operator's web UI, served by ferryd on the operator
// API's listener at "/".
//
// Pages are rendered on the server with html/template from the operator
// API (api.Ferry, called in-process: the UI shows what the CLI shows and
// has no data path of its own). Live parts of a page (the overview, the
// first page of deals, a deal's progress) are fragments that htmx, the one
// script the UI loads (vendored in static/, see HACKING.md), fetches again
// every two seconds and swaps in place; everything else, actions included,
// is plain links and forms that work without it.
//
// Access: an operator logs in with an API token (`ferryd auth
// create-token --perm read|admin`). The token is checked once and never
// stored in the browser: the server keeps a session (the token's
// permissions, a CSRF token, an expiry) in the Server value and gives the
// browser a random session ID in an HttpOnly, SameSite=Strict cookie. Every
// API call of a request runs with the session's permissions through the
// API's own permission checks, so a read token sees everything and an
// admin token may also act. Every POST carries the session's CSRF token
// in its form; a POST without it, or with another, is refused before it
// does anything. Nothing secret is ever put in a URL.
package ui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log"
	"net/http"
	"sync"
	"time"

	"github.com/filecoin-project/go-jsonrpc/auth"

	"github.com/ferry-fil/ferry/api"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config is what the UI needs from the daemon.
type Config struct {
	// API is the operator API implementation (not yet permission-checked:
	// the UI wraps it with api.Permissioned and each session's
	// permissions).
	API api.Ferry
	// Verify checks an API token and returns its permissions.
	Verify func(ctx context.Context, token string) ([]auth.Permission, error)
	// SessionTTL is how long a session lasts without use; 0 is 12 hours.
	SessionTTL time.Duration
	// Logf receives the UI's log lines; nil uses the standard logger.
	Logf func(format string, args ...any)
}

// Server serves the UI. Its sessions live in the value: a restart of the
// daemon logs everyone out.
type Server struct {
	cfg    Config
	api    *api.Struct
	pages  map[string]*template.Template
	static http.Handler
	mux    *http.ServeMux
	now    func() time.Time

	mu       sync.Mutex
	sessions map[string]*session
}

// DefaultSessionTTL is how long an unused session lasts.
const DefaultSessionTTL = 12 * time.Hour

// New prepares a UI server.
func New(cfg Config) (*Server, error) {
	if cfg.API == nil || cfg.Verify == nil {
		return nil, errors.New("ui: Config.API and Config.Verify are required")
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.Logf == nil {
		cfg.Logf = log.Printf
	}
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, fmt.Errorf("ui: static files: %w", err)
	}
	s := &Server{
		cfg: cfg, api: api.Permissioned(cfg.API), pages: pages, now: time.Now,
		static:   http.StripPrefix("/static/", http.FileServerFS(sub)),
		sessions: map[string]*session{},
	}
	s.routes()
	return s, nil
}

// Handler serves the UI; mount it at "/".
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) routes() {
	m := http.NewServeMux()
	m.Handle("GET /static/", cacheStatic(s.static))
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.login)
	m.HandleFunc("POST /logout", s.authed(s.logout))

	m.HandleFunc("GET /{$}", s.authed(s.overview))
	m.HandleFunc("GET /overview/live", s.authed(s.overviewLive))
	m.HandleFunc("GET /deals", s.authed(s.deals))
	m.HandleFunc("GET /deals/rows", s.authed(s.dealRows))
	m.HandleFunc("GET /deals/{id}", s.authed(s.deal))
	m.HandleFunc("GET /deals/{id}/live", s.authed(s.dealLive))
	m.HandleFunc("GET /deals/{id}/{action}", s.authed(s.confirmAction))
	m.HandleFunc("POST /deals/{id}/{action}", s.authed(s.dealAction))
	m.HandleFunc("GET /pieces", s.authed(s.pieceSearch))
	m.HandleFunc("GET /pieces/{cid}", s.authed(s.piece))
	m.HandleFunc("POST /pieces/{cid}/check", s.authed(s.pieceCheck))
	m.HandleFunc("GET /sectors", s.authed(s.sectors))
	m.HandleFunc("GET /ask", s.authed(s.ask))
	m.HandleFunc("POST /ask", s.authed(s.setAsk))
	m.HandleFunc("GET /settings", s.authed(s.settings))
	s.mux = m
}

// cacheStatic lets browsers keep the embedded files for an hour.
func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// securityHeaders are sent with every page: no framing, no inline script,
// no referrer leaving the UI.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}
