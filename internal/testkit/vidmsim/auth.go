package vidmsim

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// tokenState is why a token stopped working, if it did.
type tokenState int

const (
	tokenValid tokenState = iota
	tokenExpired
	tokenRevoked
)

type token struct {
	expiresAt time.Time
	state     tokenState
}

// jwtClaims are the claims of the tokens the simulator issues; vIDM's session tokens carry the
// same names (prn is the principal).
type jwtClaims struct {
	JTI   string `json:"jti"`
	Prn   string `json:"prn"`
	IAT   int64  `json:"iat"`
	EXP   int64  `json:"exp"`
	Scope string `json:"scp,omitempty"`
}

// jwtHeader is base64url(`{"alg":"HS256","typ":"JWT"}`).
const jwtHeader = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

// issueToken mints and records a signed JWT for principal. It returns the token and its lifetime
// in whole seconds (rounded up, so exp is never earlier than the real expiry).
func (s *Server) issueToken(principal, scope string) (string, int64) {
	now, ttl := s.now(), s.tokenTTL
	secs := int64((ttl + time.Second - 1) / time.Second)
	claims := jwtClaims{JTI: rand.Text(), Prn: principal, IAT: now.Unix(), EXP: now.Unix() + secs, Scope: scope}
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(fmt.Sprintf("vidmsim: marshal claims: %v", err)) // plain struct: cannot fail
	}
	unsigned := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, s.signKey)
	mac.Write([]byte(unsigned))
	tok := unsigned + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[tok] = &token{expiresAt: now.Add(ttl)}
	s.issued = append(s.issued, tok)
	s.logins++
	return tok, secs
}

// authorize checks the Authorization header of an API request and answers 401 when it fails.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		writeUnauthorized(w, "auth.required", "Authentication is required: send Authorization: Bearer <token>.")
		return false
	}
	now := s.now()
	s.mu.Lock()
	t := s.tokens[tok]
	state := tokenValid
	if t != nil {
		state = t.state
		if state == tokenValid && !now.Before(t.expiresAt) {
			state = tokenExpired
		}
	}
	s.mu.Unlock()
	switch {
	case t == nil:
		writeUnauthorized(w, "auth.token.invalid", "The access token is not valid.")
	case state == tokenRevoked:
		writeUnauthorized(w, "auth.token.revoked", "The access token has been revoked.")
	case state == tokenExpired:
		writeUnauthorized(w, "auth.token.expired", "The access token has expired.")
	default:
		return true
	}
	return false
}

// bearerToken extracts the token of "Bearer <token>" or "HZN <token>" (scheme case-insensitive).
func bearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || (!strings.EqualFold(scheme, "Bearer") && !strings.EqualFold(scheme, "HZN")) {
		return "", false
	}
	if tok == "" || strings.ContainsAny(tok, " \t") {
		return "", false
	}
	return tok, true
}

func writeUnauthorized(w http.ResponseWriter, code, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="vidm-sim"`)
	writeError(w, http.StatusUnauthorized, code, msg)
}

// oauthError is the OAuth 2.0 error body (RFC 6749 §5.2) the token endpoint answers with.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

type oauthTokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
}

// handleOAuthToken implements the client credentials grant with HTTP Basic client authentication.
func (s *Server) handleOAuthToken(w http.ResponseWriter, r *http.Request) {
	if !checkMedia(w, r, mediaJSON, true, mediaForm) {
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, mediaJSON, oauthError{"invalid_request", "malformed form body"})
		return
	}
	id, secret, ok := basicClient(r)
	if !ok || !s.clientOK(id, secret) {
		w.Header().Set("WWW-Authenticate", `Basic realm="vidm-sim"`)
		writeJSON(w, http.StatusUnauthorized, mediaJSON, oauthError{"invalid_client", "Bad client credentials"})
		return
	}
	grant := r.URL.Query().Get("grant_type")
	if grant == "" {
		grant = r.PostForm.Get("grant_type")
	}
	if grant != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, mediaJSON,
			oauthError{"unsupported_grant_type", "Only grant_type=client_credentials is supported"})
		return
	}
	tok, secs := s.issueToken(id, "admin")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, mediaJSON, oauthTokenResponse{
		AccessToken: tok, TokenType: "Bearer", ExpiresIn: secs, Scope: "admin",
	})
}

// basicClient reads client credentials from HTTP Basic auth. RFC 6749 §2.3.1 has clients
// form-encode id and secret first, so they are decoded (raw when they do not decode).
func basicClient(r *http.Request) (string, string, bool) {
	id, secret, ok := r.BasicAuth()
	if !ok || id == "" {
		return "", "", false
	}
	if v, err := url.QueryUnescape(id); err == nil {
		id = v
	}
	if v, err := url.QueryUnescape(secret); err == nil {
		secret = v
	}
	return id, secret, true
}

func (s *Server) clientOK(id, secret string) bool {
	want, ok := s.clients[id]
	return ok && subtle.ConstantTimeCompare([]byte(secret), []byte(want)) == 1
}

func (s *Server) userOK(name, password string) bool {
	want, ok := s.users[name]
	return ok && subtle.ConstantTimeCompare([]byte(password), []byte(want)) == 1
}

type loginRequest struct {
	Username   *string         `json:"username"`
	Password   *string         `json:"password"`
	IssueToken json.RawMessage `json:"issueToken"`
}

type loginResponse struct {
	ID           *string `json:"id"` // always null, as vIDM answers
	SessionToken string  `json:"sessionToken"`
}

// handleSystemLogin implements the local-account login that returns a session token.
func (s *Server) handleSystemLogin(w http.ResponseWriter, r *http.Request) {
	if !checkMedia(w, r, mediaJSON, true, mediaJSON) {
		return
	}
	req, err := parseLogin(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "request.body.invalid", err.Error())
		return
	}
	if req.Username == nil || req.Password == nil || !s.userOK(*req.Username, *req.Password) {
		writeError(w, http.StatusUnauthorized, "auth.login.failed", "Bad username or password.")
		return
	}
	tok, _ := s.issueToken(*req.Username, "")
	writeJSON(w, http.StatusOK, mediaJSON, loginResponse{SessionToken: tok})
}

// parseLogin decodes the login body; issueToken must be "true" or true, because without it vIDM
// sets a session cookie instead of returning a token.
func parseLogin(r *http.Request) (loginRequest, error) {
	b, err := readBody(r)
	if err != nil {
		return loginRequest{}, err
	}
	var req loginRequest
	if err := decodeOneObject(b, &req, false); err != nil {
		return loginRequest{}, fmt.Errorf("body must be a JSON object with username, password and issueToken: %w", err)
	}
	switch it := string(bytes.TrimSpace(req.IssueToken)); it {
	case `"true"`, `true`:
		return req, nil
	default:
		return loginRequest{}, fmt.Errorf("issueToken must be \"true\" (got %s)", orMissing(it))
	}
}

func orMissing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// decodeOneObject decodes exactly one JSON object (not null, not followed by more data); strict
// refuses unknown fields.
func decodeOneObject(b []byte, v any, strict bool) error {
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		return errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// ExpireTokens makes every token issued so far answer 401 auth.token.expired.
func (s *Server) ExpireTokens() { s.setTokenState(tokenExpired) }

// RevokeTokens makes every token issued so far answer 401 auth.token.revoked.
func (s *Server) RevokeTokens() { s.setTokenState(tokenRevoked) }

func (s *Server) setTokenState(st tokenState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		t.state = st
	}
}

// IssuedTokens returns every token ever issued, in issue order, so tests can prove none leaks.
func (s *Server) IssuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.issued...)
}

// Logins returns the number of tokens issued by either flow.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}
