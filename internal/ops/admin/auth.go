package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	realm         = `Bearer realm="vidm-sync-worker"`
	sessionCookie = "vidm_sync_session"
	// sessionTTL bounds how long a browser stays signed in; logout or a restart ends it sooner.
	sessionTTL = 12 * time.Hour
)

// secret is a configured token, kept as its SHA-256 so that comparisons take the same time
// whatever the length of the guess.
type secret struct {
	sum [sha256.Size]byte
	set bool
}

func newSecret(token string) secret {
	if token == "" {
		return secret{}
	}
	return secret{sum: sha256.Sum256([]byte(token)), set: true}
}

func (s secret) matches(token string) bool {
	got := sha256.Sum256([]byte(token))
	return s.set && subtle.ConstantTimeCompare(got[:], s.sum[:]) == 1
}

// bearer returns the request's bearer token; present is true when an Authorization header was
// sent at all (a wrong scheme counts as a wrong token).
func bearer(r *http.Request) (token string, present bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(tok), true
}

// guard applies the route's access rule before serving it.
func (s *server) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch rt.access {
		case accessRead:
			if !s.canRead(r) {
				s.refuse(w, r, http.StatusUnauthorized, "a valid bearer token (ADMIN_TOKEN or ADMIN_READ_TOKEN) is required; browsers sign in at /login", rt.path == "/")
				return
			}
		case accessWrite:
			if status, msg := s.canWrite(r); status != 0 {
				s.refuse(w, r, status, msg, false)
				return
			}
		}
		rt.serve(s, w, r)
	})
}

func (s *server) canRead(r *http.Request) bool {
	if tok, present := bearer(r); present {
		// A token that was sent must be right, even where none is needed.
		return s.admin.matches(tok) || s.reader.matches(tok)
	}
	return s.cfg.ReadOpen || s.signedIn(r)
}

// canWrite returns 0 when the request may change things, or the status and reason to refuse it.
// The session cookie does not count: a browser sends it with any form another site makes it
// post, bearer headers it does not.
func (s *server) canWrite(r *http.Request) (int, string) {
	if !s.admin.set {
		return http.StatusForbidden, "write access is disabled: ADMIN_TOKEN is not set on the worker"
	}
	tok, present := bearer(r)
	switch {
	case !present:
		return http.StatusUnauthorized, "a bearer token (ADMIN_TOKEN) is required"
	case s.admin.matches(tok):
		return 0, ""
	case s.reader.matches(tok):
		return http.StatusForbidden, "the read-only token cannot request syncs, pause, resume or re-drive; use ADMIN_TOKEN"
	default:
		return http.StatusUnauthorized, "the bearer token is not valid"
	}
}

// refuse answers 401 or 403. The status page answers 401 with the sign-in form, so a browser
// shows something useful.
func (s *server) refuse(w http.ResponseWriter, r *http.Request, status int, msg string, page bool) {
	s.log.InfoContext(r.Context(), "admin request refused", "method", r.Method, "path", r.URL.Path,
		"status", status, "remote", r.RemoteAddr, "reason", msg)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", realm)
	}
	if page {
		s.renderLogin(w, status, "")
		return
	}
	writeError(w, status, msg)
}

// sessions are the status page's signed-in browsers: random ids held in this process, so a
// cookie says nothing about the token it was signed in with, logout ends it, and a restart ends
// them all. Bounded: beyond maxSessions the one closest to expiry is dropped.
type sessions struct {
	mu  sync.Mutex
	now func() time.Time
	ids map[string]session
}

// session is one signed-in browser: until when, and whether it signed in with ADMIN_TOKEN (only
// such a session may send the page's forms).
type session struct {
	expires time.Time
	write   bool
}

// maxSessions bounds the browsers signed in at once (a few hundred bytes each).
const maxSessions = 1024

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, ids: map[string]session{}}
}

// issue starts a session and returns its cookie value: 256 random bits.
func (s *sessions) issue(write bool) (id string, expires time.Time) {
	id = base64.RawURLEncoding.EncodeToString(randomBytes(32))
	now := s.now()
	expires = now.Add(sessionTTL)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ids) >= maxSessions {
		s.evict(now)
	}
	s.ids[id] = session{expires: expires, write: write}
	return id, expires
}

// evict drops the expired sessions, or else the one closest to expiry.
func (s *sessions) evict(now time.Time) {
	var oldest string
	for id, se := range s.ids {
		if !now.Before(se.expires) {
			delete(s.ids, id)
		} else if oldest == "" || se.expires.Before(s.ids[oldest].expires) {
			oldest = id
		}
	}
	if len(s.ids) >= maxSessions {
		delete(s.ids, oldest)
	}
}

// get returns the live session with this id.
func (s *sessions) get(id string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.ids[id]
	return se, ok && s.now().Before(se.expires)
}

func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ids, id)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return b
}

func (s *server) signedIn(r *http.Request) bool {
	_, _, ok := s.session(r)
	return ok
}

// session returns the request's live session and its id.
func (s *server) session(r *http.Request) (id string, se session, ok bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", session{}, false
	}
	se, ok = s.sessions.get(c.Value)
	return c.Value, se, ok
}

// signIns slows down guessing at /login: after freeSignIns failures from one client address,
// each further attempt must wait twice as long as the last, up to maxSignInWait. Per address, so
// a guesser does not lock out everyone (behind a proxy that hides addresses, everyone behind it
// shares one allowance). Bounded: beyond maxClients the least recent failure is forgotten.
type signIns struct {
	mu      sync.Mutex
	now     func() time.Time
	clients map[string]*failures
}

type failures struct {
	n     int
	last  time.Time
	until time.Time // no attempt before this
}

const (
	freeSignIns    = 5
	maxSignInWait  = 5 * time.Minute
	forgetFailures = 15 * time.Minute
	maxClients     = 4096
)

func newSignIns(now func() time.Time) *signIns {
	return &signIns{now: now, clients: map[string]*failures{}}
}

// wait returns how long client must still wait before its next attempt (0: it may try now).
func (g *signIns) wait(client string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	f, ok := g.clients[client]
	if !ok {
		return 0
	}
	return max(f.until.Sub(g.now()), 0)
}

func (g *signIns) failed(client string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	f, ok := g.clients[client]
	if !ok || now.Sub(f.last) > forgetFailures {
		if len(g.clients) >= maxClients {
			g.forget(now)
		}
		f = &failures{}
		g.clients[client] = f
	}
	f.n++
	f.last = now
	if f.n >= freeSignIns {
		f.until = now.Add(min(time.Second<<min(f.n-freeSignIns, 16), maxSignInWait))
	}
}

func (g *signIns) succeeded(client string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.clients, client)
}

// forget drops the clients whose failures are old, or else the least recent one.
func (g *signIns) forget(now time.Time) {
	var oldest string
	for c, f := range g.clients {
		if now.Sub(f.last) > forgetFailures {
			delete(g.clients, c)
		} else if oldest == "" || f.last.Before(g.clients[oldest].last) {
			oldest = c
		}
	}
	if len(g.clients) >= maxClients {
		delete(g.clients, oldest)
	}
}

// clientOf is the address a sign-in attempt is counted against.
func clientOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// overTLS: Secure cookies when the browser reached us over HTTPS, directly or through a proxy
// that says so (a forged header only makes the browser withhold the cookie over plain HTTP).
func overTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func (s *server) loginForm(w http.ResponseWriter, _ *http.Request) {
	s.renderLogin(w, http.StatusOK, "")
}

func (s *server) login(w http.ResponseWriter, r *http.Request) {
	client := clientOf(r)
	if wait := s.signIns.wait(client); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		s.log.WarnContext(r.Context(), "admin sign-in throttled after repeated failures", "remote", r.RemoteAddr, "retry_in", wait)
		s.renderLogin(w, http.StatusTooManyRequests, fmt.Sprintf("Too many failed sign-ins from your address; try again in %d seconds.", secs))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		s.renderLogin(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	tok := r.PostForm.Get("token")
	if !s.admin.matches(tok) && !s.reader.matches(tok) {
		s.signIns.failed(client)
		s.log.InfoContext(r.Context(), "admin sign-in refused", "remote", r.RemoteAddr)
		s.renderLogin(w, http.StatusUnauthorized, "That token is not valid.")
		return
	}
	s.signIns.succeeded(client)
	value, expires := s.sessions.issue(s.admin.matches(tok))
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: value, Path: "/", Expires: expires, MaxAge: int(sessionTTL.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: overTLS(r),
	})
	s.log.InfoContext(r.Context(), "admin sign-in", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.sessions.end(c.Value)
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: overTLS(r),
	})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
