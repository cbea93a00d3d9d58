package admin

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	realm         = `Bearer realm="vidm-sync-worker"`
	sessionCookie = "vidm_sync_session"
	// sessionTTL bounds how long a browser stays signed in; rotating the token it signed in
	// with ends its sessions at once.
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

// sessions issues and checks the status page's session cookies: "<expiry>.<mac>", the MAC keyed
// by the token the browser signed in with. They need no server-side store, survive restarts,
// work on every replica with the same tokens, and die with a rotated token.
type sessions struct {
	now  func() time.Time
	keys map[string][]byte // token → MAC key; only tokens that are set
}

func newSessions(now func() time.Time, tokens ...string) sessions {
	s := sessions{now: now, keys: map[string][]byte{}}
	for _, t := range tokens {
		if t != "" {
			m := hmac.New(sha256.New, []byte(t))
			m.Write([]byte("vidm-sync-worker admin session v1"))
			s.keys[t] = m.Sum(nil)
		}
	}
	return s
}

func mac(key []byte, exp string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s sessions) issue(key []byte) (value string, expires time.Time) {
	expires = s.now().Add(sessionTTL)
	exp := strconv.FormatInt(expires.Unix(), 10)
	return exp + "." + mac(key, exp), expires
}

func (s sessions) valid(value string) bool {
	exp, sum, ok := strings.Cut(value, ".")
	if !ok {
		return false
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || !s.now().Before(time.Unix(unix, 0)) {
		return false
	}
	valid := false
	for _, key := range s.keys {
		valid = hmac.Equal([]byte(mac(key, exp)), []byte(sum)) || valid
	}
	return valid
}

func (s *server) signedIn(r *http.Request) bool {
	c, err := r.Cookie(sessionCookie)
	return err == nil && s.sessions.valid(c.Value)
}

// keyFor returns the session key of the token typed into the login form, or nil.
func (s *server) keyFor(token string) []byte {
	switch {
	case s.admin.matches(token):
		return s.sessions.keys[s.cfg.Token]
	case s.reader.matches(token):
		return s.sessions.keys[s.cfg.ReadToken]
	}
	return nil
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
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		s.renderLogin(w, http.StatusBadRequest, "The form could not be read.")
		return
	}
	key := s.keyFor(r.PostForm.Get("token"))
	if key == nil {
		s.log.InfoContext(r.Context(), "admin sign-in refused", "remote", r.RemoteAddr)
		s.renderLogin(w, http.StatusUnauthorized, "That token is not valid.")
		return
	}
	value, expires := s.sessions.issue(key)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: value, Path: "/", Expires: expires, MaxAge: int(sessionTTL.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: overTLS(r),
	})
	s.log.InfoContext(r.Context(), "admin sign-in", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: overTLS(r),
	})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
