package ui

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/filecoin-project/go-jsonrpc/auth"
)

// Cookie names. The session cookie holds only a random session ID; the
// login cookie a random value the login form must repeat (a login POST
// from another site cannot know it).
const (
	sessionCookie = "ferry_session"
	loginCookie   = "ferry_login"
)

// session is one logged-in browser.
type session struct {
	perms   []auth.Permission
	csrf    string
	expires time.Time
}

// canAct says whether the session may use the operator's actions.
func (ss *session) canAct() bool { return slices.Contains(ss.perms, "admin") }

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// cookie builds a cookie the UI sets: HttpOnly, SameSite=Strict, Secure
// when the request came over TLS.
func cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
}

// sessionOf returns the request's live session, or nil.
func (s *Server) sessionOf(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.sessions[c.Value]
	if ss == nil {
		return nil
	}
	now := s.now()
	if now.After(ss.expires) {
		delete(s.sessions, c.Value)
		return nil
	}
	ss.expires = now.Add(s.cfg.SessionTTL)
	return ss
}

// newSession records a session with perms and returns its ID.
func (s *Server) newSession(perms []auth.Permission) (string, *session) {
	id := randomToken()
	ss := &session{perms: perms, csrf: randomToken(), expires: s.now().Add(s.cfg.SessionTTL)}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, old := range s.sessions { // forget expired sessions as new ones come
		if now.After(old.expires) {
			delete(s.sessions, k)
		}
	}
	s.sessions[id] = ss
	return id, ss
}

// sessionKey carries the request's session in its context.
type sessionKey struct{}

// authed wraps a page: without a session a GET goes to the login page and
// anything else gets 401; a POST must carry the session's CSRF token. The
// handler's context carries the session's permissions for the API.
func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		ss := s.sessionOf(r)
		if ss == nil {
			if r.Method == http.MethodGet && r.Header.Get("HX-Request") == "" {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			w.Header().Set("HX-Redirect", "/login")
			http.Error(w, "not logged in", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost && !validCSRF(r, ss.csrf) {
			http.Error(w, "this form has expired or did not come from this page: reload the page and try again", http.StatusForbidden)
			return
		}
		ctx := auth.WithPerm(context.WithValue(r.Context(), sessionKey{}, ss), ss.perms)
		h(w, r.WithContext(ctx))
	}
}

// validCSRF checks the csrf form field against want in constant time.
func validCSRF(r *http.Request, want string) bool {
	got := r.PostFormValue("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// sessionFrom returns the session authed put in ctx.
func sessionFrom(ctx context.Context) *session {
	ss, _ := ctx.Value(sessionKey{}).(*session)
	return ss
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	if s.sessionOf(r) != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.showLogin(w, r, "", http.StatusOK)
}

func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, problem string, status int) {
	nonce := randomToken()
	http.SetCookie(w, cookie(r, loginCookie, nonce, 600))
	s.render(w, r, status, "login", &page{Title: "Log in", Data: map[string]string{"Nonce": nonce, "Problem": problem}})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	c, err := r.Cookie(loginCookie)
	nonce := r.PostFormValue("nonce")
	if err != nil || nonce == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(nonce)) != 1 {
		s.showLogin(w, r, "The login form expired; please try again.", http.StatusForbidden)
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	perms, err := s.cfg.Verify(r.Context(), token)
	if err != nil || !slices.Contains(perms, "read") {
		s.cfg.Logf("ui: refused a login from %s: %v", r.RemoteAddr, err)
		s.showLogin(w, r, "That token is not valid for this ferryd (create one with `ferryd auth create-token --perm read` or `--perm admin`).", http.StatusUnauthorized)
		return
	}
	id, _ := s.newSession(perms)
	http.SetCookie(w, cookie(r, loginCookie, "", -1))
	http.SetCookie(w, cookie(r, sessionCookie, id, 0))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.mu.Lock()
		delete(s.sessions, c.Value)
		s.mu.Unlock()
	}
	http.SetCookie(w, cookie(r, sessionCookie, "", -1))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
