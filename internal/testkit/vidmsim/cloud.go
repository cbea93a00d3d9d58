package vidmsim

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
)

// EndpointCSPAuthorize is VMware Cloud Services' API-token exchange, which FlavorVRACloud serves
// on the same server so that tests can point the client's token URL at it.
const EndpointCSPAuthorize Endpoint = "csp-authorize" // POST /csp/gateway/am/api/auth/api-tokens/authorize

const pathCSPAuthorize = "/csp/gateway/am/api/auth/api-tokens/authorize"

// classifyCloud resolves vRA Cloud's routes: vIDM's directory and sync routes through the
// connector, plus the CSP token exchange. vIDM's own token endpoints are not exposed by vRA
// Cloud and answer 404, so a client that still uses them fails here as it would there.
func (s *Server) classifyCloud(r *http.Request) route {
	switch r.URL.EscapedPath() {
	case pathCSPAuthorize:
		return route{endpoint: EndpointCSPAuthorize, allow: http.MethodPost,
			methodOK: r.Method == http.MethodPost, handle: s.handleCSPAuthorize}
	case pathOAuthToken, pathSystemLogin:
		return route{}
	}
	return classify(r)
}

// cspError is the body CSP answers a refused token exchange with; it is not OAuth's error shape.
type cspError struct {
	StatusCode int    `json:"statusCode"`
	Message    string `json:"message"`
	RequestID  string `json:"requestId"`
}

type cspTokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	IDToken      string `json:"id_token"`
}

func writeCSPError(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusBadRequest, mediaJSON, cspError{StatusCode: http.StatusBadRequest, Message: msg, RequestID: newUUID()})
}

// handleCSPAuthorize exchanges an API token (refresh_token, form body) for an access token.
// Stricter than CSP: Accept must name application/json, and a refresh_token in the URL is
// refused, since a client that puts it there leaks it to every proxy log on the way.
func (s *Server) handleCSPAuthorize(w http.ResponseWriter, r *http.Request) {
	if !checkMedia(w, r, mediaJSON, false, mediaForm) {
		return
	}
	if r.URL.Query().Has("refresh_token") {
		writeCSPError(w, "invalid_request: refresh_token must be sent in the form body, not in the URL")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeCSPError(w, "invalid_request: malformed form body")
		return
	}
	refresh := r.PostForm.Get("refresh_token")
	if refresh == "" {
		writeCSPError(w, "invalid_request: refresh_token is required")
		return
	}
	idx, ok := s.refreshTokenIndex(refresh)
	if !ok {
		writeCSPError(w, "invalid_grant: Invalid refresh token")
		return
	}
	// The principal names the API token by its position, never by its value: JWT claims are
	// readable by anyone holding the token.
	principal := fmt.Sprintf("api-token-%d", idx)
	tok, secs := s.issueToken(principal, "csp:org_member")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, mediaJSON, cspTokenResponse{
		AccessToken: tok, TokenType: "bearer", ExpiresIn: secs, RefreshToken: refresh,
		Scope: "csp:org_member openid", IDToken: idToken(principal),
	})
}

// idToken is a stand-in OpenID id_token: CSP sends one, the client must not need it, and it is
// not a bearer token the simulator accepts.
func idToken(principal string) string {
	return jwtHeader + "." + base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, `{"sub":%q,"aud":"vidm-sim"}`, principal)) + ".c2lt"
}

// refreshTokenIndex finds an accepted API token, comparing each in constant time.
func (s *Server) refreshTokenIndex(tok string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	found := -1
	for i, want := range s.refresh {
		if subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1 {
			found = i
		}
	}
	return found, found >= 0
}

// RevokeRefreshToken makes the token exchange refuse tok (400 invalid_grant) from now on, as CSP
// does for a revoked API token. Access tokens already issued stay valid until they expire.
func (s *Server) RevokeRefreshToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// s.refresh is read and replaced only under s.mu (here and in refreshTokenIndex); a new
	// slice keeps positions of other tokens, and thus their principals, unchanged.
	s.refresh = slices.Clone(s.refresh)
	for i, have := range s.refresh {
		if have == tok {
			s.refresh[i] = ""
		}
	}
}
