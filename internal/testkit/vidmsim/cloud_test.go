package vidmsim_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

const (
	pathCSPAuthorize = "/csp/gateway/am/api/auth/api-tokens/authorize"
	apiToken         = "csp-api-token-Qm41-example"
	otherAPIToken    = "csp-api-token-Wz07-example"
)

func newCloudEnv(t *testing.T) *env {
	t.Helper()
	return newEnv(t, func(c *vidmsim.Config) {
		c.Flavor = vidmsim.FlavorVRACloud
		c.RefreshTokens = []string{apiToken, otherAPIToken}
	})
}

func formBody(refresh string) string { return url.Values{"refresh_token": {refresh}}.Encode() }

// authorize exchanges an API token the way a well-behaved client does.
func (e *env) authorize(refresh string) response {
	e.t.Helper()
	return e.do(http.MethodPost, pathCSPAuthorize, formBody(refresh), "Content-Type", mediaForm, "Accept", "application/json")
}

func TestCSPAuthorizeStrictness(t *testing.T) {
	good := formBody(apiToken)
	tests := []struct {
		name        string
		method      string
		path        string
		body        string
		headers     []string
		wantStatus  int
		wantMessage string // prefix of CSP's message, for its 400s
	}{
		{"GET", http.MethodGet, pathCSPAuthorize, "", []string{"Accept", "application/json"}, 405, ""},
		{"PUT", http.MethodPut, pathCSPAuthorize, good, []string{"Content-Type", mediaForm, "Accept", "application/json"}, 405, ""},
		{"JSON body", http.MethodPost, pathCSPAuthorize, `{"refresh_token":"` + apiToken + `"}`,
			[]string{"Content-Type", "application/json", "Accept", "application/json"}, 415, ""},
		{"no content type", http.MethodPost, pathCSPAuthorize, good, []string{"Accept", "application/json"}, 415, ""},
		{"Accept HTML", http.MethodPost, pathCSPAuthorize, good, []string{"Content-Type", mediaForm, "Accept", "text/html"}, 406, ""},
		{"no Accept", http.MethodPost, pathCSPAuthorize, good, []string{"Content-Type", mediaForm}, 406, ""},
		{"no refresh_token", http.MethodPost, pathCSPAuthorize, "grant_type=refresh_token",
			[]string{"Content-Type", mediaForm, "Accept", "application/json"}, 400, "invalid_request"},
		{"refresh_token in the URL", http.MethodPost, pathCSPAuthorize + "?refresh_token=" + apiToken, "",
			[]string{"Content-Type", mediaForm, "Accept", "application/json"}, 400, "invalid_request"},
		{"refresh_token in the URL and the body", http.MethodPost, pathCSPAuthorize + "?refresh_token=" + apiToken, good,
			[]string{"Content-Type", mediaForm, "Accept", "application/json"}, 400, "invalid_request"},
		{"unknown API token", http.MethodPost, pathCSPAuthorize, formBody("not-a-token"),
			[]string{"Content-Type", mediaForm, "Accept", "application/json"}, 400, "invalid_grant: Invalid refresh token"},
		{"good", http.MethodPost, pathCSPAuthorize, good,
			[]string{"Content-Type", mediaForm + "; charset=utf-8", "Accept", "application/json"}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCloudEnv(t)
			r := e.do(tt.method, tt.path, tt.body, tt.headers...)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			switch {
			case tt.wantStatus == 405 && r.header.Get("Allow") != http.MethodPost:
				t.Fatalf("Allow = %q, want POST", r.header.Get("Allow"))
			case tt.wantStatus == 400:
				var ce struct {
					StatusCode int    `json:"statusCode"`
					Message    string `json:"message"`
					RequestID  string `json:"requestId"`
				}
				mustUnmarshal(t, r.body, &ce)
				if ce.StatusCode != 400 || !strings.HasPrefix(ce.Message, tt.wantMessage) || ce.RequestID == "" {
					t.Fatalf("body = %s, want CSP's error shape with message %q…", r.body, tt.wantMessage)
				}
			}
			if tt.wantStatus != 200 && e.sim.Logins() != 0 {
				t.Fatal("a refused exchange issued a token")
			}
			if strings.Contains(string(r.body), "not-a-token") {
				t.Fatal("the refused token is echoed in the error")
			}
		})
	}
}

func TestCSPAuthorizeIssuesUsableTokens(t *testing.T) {
	e := newCloudEnv(t)
	r := e.authorize(apiToken)
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("authorize: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	var tok struct {
		AccessToken  string `json:"access_token"`
		TokenType    string `json:"token_type"`
		ExpiresIn    int64  `json:"expires_in"`
		RefreshToken string `json:"refresh_token"`
		Scope        string `json:"scope"`
		IDToken      string `json:"id_token"`
	}
	mustUnmarshal(t, r.body, &tok)
	// ExampleConfig's TokenTTL is an hour.
	if tok.AccessToken == "" || tok.TokenType != "bearer" || tok.ExpiresIn != 3600 || tok.RefreshToken != apiToken ||
		tok.Scope == "" || tok.IDToken == "" {
		t.Fatalf("token response = %s", r.body)
	}
	if got := e.listDirs(tok.AccessToken); got.status != http.StatusOK {
		t.Fatalf("directories with the CSP token: %d %s", got.status, got.body)
	}
	if got := e.listDirs(tok.IDToken); got.status != http.StatusUnauthorized {
		t.Fatalf("the id_token was accepted as a bearer token: %d", got.status)
	}
	if got := e.startSync(tok.AccessToken, corpID, false); got.status != http.StatusOK {
		t.Fatalf("start sync: %d %s", got.status, got.body)
	}
	if st := e.syncStatus(tok.AccessToken, corpID); st.Status != vidmsim.StatusRunning {
		t.Fatalf("status = %+v", st)
	}
	if e.sim.Requests(vidmsim.EndpointCSPAuthorize) != 1 || e.sim.Logins() != 1 {
		t.Fatalf("authorize requests = %d, logins = %d; want 1 and 1", e.sim.Requests(vidmsim.EndpointCSPAuthorize), e.sim.Logins())
	}
	// The API token is not readable from the access token's claims.
	for part := range strings.SplitSeq(tok.AccessToken, ".") {
		if strings.Contains(part, apiToken) {
			t.Fatal("the access token carries the API token")
		}
	}
}

func TestRevokeRefreshToken(t *testing.T) {
	e := newCloudEnv(t)
	first := e.authorize(apiToken)
	if first.status != http.StatusOK {
		t.Fatalf("authorize: %d %s", first.status, first.body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	mustUnmarshal(t, first.body, &tok)
	e.sim.RevokeRefreshToken(apiToken)
	if r := e.authorize(apiToken); r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "invalid_grant") {
		t.Fatalf("revoked API token: %d %s, want 400 invalid_grant", r.status, r.body)
	}
	if r := e.authorize(otherAPIToken); r.status != http.StatusOK {
		t.Fatalf("another API token after a revocation: %d %s", r.status, r.body)
	}
	// Revoking the API token does not end the access tokens it produced: they expire on their own.
	if r := e.listDirs(tok.AccessToken); r.status != http.StatusOK {
		t.Fatalf("access token after its API token was revoked: %d", r.status)
	}
}

// vRA Cloud exposes none of vIDM's own token endpoints, and vIDM has no CSP exchange.
func TestFlavorTokenEndpoints(t *testing.T) {
	tests := []struct {
		name    string
		flavor  vidmsim.Flavor
		path    string
		body    string
		headers []string
		want    int
	}{
		{"cloud: OAuth token", vidmsim.FlavorVRACloud, pathOAuth + "?grant_type=client_credentials", "",
			[]string{"Authorization", basic(clientID, clientSecret), "Content-Type", mediaForm, "Accept", "application/json"}, 404},
		{"cloud: system login", vidmsim.FlavorVRACloud, pathLogin,
			`{"username":"` + username + `","password":"` + password + `","issueToken":"true"}`,
			[]string{"Content-Type", "application/json", "Accept", "application/json"}, 404},
		{"cloud: CSP authorize", vidmsim.FlavorVRACloud, pathCSPAuthorize, formBody(apiToken),
			[]string{"Content-Type", mediaForm, "Accept", "application/json"}, 200},
		{"vidm: OAuth token", vidmsim.FlavorVIDM, pathOAuth + "?grant_type=client_credentials", "",
			[]string{"Authorization", basic(clientID, clientSecret), "Content-Type", mediaForm, "Accept", "application/json"}, 200},
		{"vidm: CSP authorize", vidmsim.FlavorVIDM, pathCSPAuthorize, formBody(apiToken),
			[]string{"Content-Type", mediaForm, "Accept", "application/json"}, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *vidmsim.Config) {
				c.Flavor = tt.flavor
				c.RefreshTokens = []string{apiToken}
			})
			r := e.do(http.MethodPost, tt.path, tt.body, tt.headers...)
			if r.status != tt.want {
				t.Fatalf("status = %d, want %d: %s", r.status, tt.want, r.body)
			}
			if tt.want == 404 && (r.errorCode() != "http.not.found" || e.sim.Logins() != 0) {
				t.Fatalf("404 body = %s, logins = %d", r.body, e.sim.Logins())
			}
		})
	}
}

// A fault on the CSP endpoint applies like on any other, so clients' retry paths can be tested.
func TestCSPAuthorizeFault(t *testing.T) {
	e := newCloudEnv(t)
	e.sim.SetFault(vidmsim.EndpointCSPAuthorize, vidmsim.Fault{Status: http.StatusServiceUnavailable, Times: 1})
	if r := e.authorize(apiToken); r.status != http.StatusServiceUnavailable {
		t.Fatalf("faulted authorize: %d", r.status)
	}
	r := e.authorize(apiToken)
	var tok map[string]any
	if r.status != http.StatusOK || json.Unmarshal(r.body, &tok) != nil {
		t.Fatalf("authorize after the fault: %d %s", r.status, r.body)
	}
	if got := e.sim.RequestsByStatus(vidmsim.EndpointCSPAuthorize); got[503] != 1 || got[200] != 1 {
		t.Fatalf("answers = %v", got)
	}
}
