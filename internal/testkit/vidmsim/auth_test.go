package vidmsim_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

func TestOAuthToken(t *testing.T) {
	okHeaders := []string{"Authorization", basic(clientID, clientSecret), "Content-Type", mediaForm}
	tests := []struct {
		name    string
		query   string
		body    string
		headers []string
		status  int
		oauth   string // OAuth error, for 400/401
		code    string // vIDM error code, for the generic refusals
	}{
		{"success", "?grant_type=client_credentials", "", okHeaders, 200, "", ""},
		{"success accept json", "?grant_type=client_credentials", "", append(okHeaders, "Accept", "application/json"), 200, "", ""},
		{"success accept any", "?grant_type=client_credentials", "", append(okHeaders, "Accept", "*/*"), 200, "", ""},
		{"grant in body", "", "grant_type=client_credentials", okHeaders, 200, "", ""},
		{"form content type with charset", "?grant_type=client_credentials", "", []string{
			"Authorization", basic(clientID, clientSecret), "Content-Type", mediaForm + "; charset=UTF-8",
		}, 200, "", ""},
		{"accept html", "?grant_type=client_credentials", "", append(okHeaders, "Accept", "text/html"), 406, "", "http.media.not.acceptable"},
		{"json content type", "?grant_type=client_credentials", "{}", []string{
			"Authorization", basic(clientID, clientSecret), "Content-Type", "application/json",
		}, 415, "", "http.media.unsupported"},
		{"no credentials", "?grant_type=client_credentials", "", []string{"Content-Type", mediaForm}, 401, "invalid_client", ""},
		{"wrong secret", "?grant_type=client_credentials", "", []string{
			"Authorization", basic(clientID, "nope"), "Content-Type", mediaForm,
		}, 401, "invalid_client", ""},
		{"unknown client", "?grant_type=client_credentials", "", []string{
			"Authorization", basic("someone", clientSecret), "Content-Type", mediaForm,
		}, 401, "invalid_client", ""},
		{"bearer instead of basic", "?grant_type=client_credentials", "", []string{
			"Authorization", "Bearer x", "Content-Type", mediaForm,
		}, 401, "invalid_client", ""},
		{"missing grant", "", "", okHeaders, 400, "unsupported_grant_type", ""},
		{"password grant", "?grant_type=password", "", okHeaders, 400, "unsupported_grant_type", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			r := e.do(http.MethodPost, pathOAuth+tc.query, tc.body, tc.headers...)
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, tc.status, r.body)
			}
			switch {
			case tc.status == 200:
				checkOAuthSuccess(t, e, r)
			case tc.oauth != "":
				var oe struct {
					Error       string `json:"error"`
					Description string `json:"error_description"`
				}
				mustUnmarshal(t, r.body, &oe)
				if oe.Error != tc.oauth || oe.Description == "" {
					t.Errorf("OAuth error = %+v, want %s", oe, tc.oauth)
				}
			default:
				if r.errorCode() != tc.code {
					t.Errorf("code = %q, want %q", r.errorCode(), tc.code)
				}
			}
			if wantLogins := map[bool]int{true: 1, false: 0}[tc.status == 200]; e.sim.Logins() != wantLogins {
				t.Errorf("Logins = %d, want %d", e.sim.Logins(), wantLogins)
			}
		})
	}
}

func checkOAuthSuccess(t *testing.T, e *env, r response) {
	t.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
		Scope       string `json:"scope"`
	}
	mustUnmarshal(t, r.body, &tok)
	if tok.TokenType != "Bearer" || tok.ExpiresIn != 3600 || tok.Scope != "admin" || tok.AccessToken == "" {
		t.Fatalf("token response = %s", r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if got := e.sim.IssuedTokens(); len(got) != 1 || got[0] != tok.AccessToken {
		t.Errorf("IssuedTokens = %v", got)
	}
	if rr := e.listDirs(tok.AccessToken); rr.status != 200 {
		t.Errorf("token does not work: %d", rr.status)
	}
}

func TestSystemLogin(t *testing.T) {
	const ok = `{"username":"sync-admin","password":"example-password","issueToken":"true"}`
	jsonCT := []string{"Content-Type", "application/json"}
	tests := []struct {
		name    string
		body    string
		headers []string
		status  int
		code    string
	}{
		{"success", ok, jsonCT, 200, ""},
		{"issueToken bool", `{"username":"sync-admin","password":"example-password","issueToken":true}`, jsonCT, 200, ""},
		{"accept json with charset", ok, append(jsonCT, "Accept", "application/json; charset=utf-8"), 200, ""},
		{"issueToken false", `{"username":"sync-admin","password":"example-password","issueToken":"false"}`, jsonCT, 400, "request.body.invalid"},
		{"issueToken missing", `{"username":"sync-admin","password":"example-password"}`, jsonCT, 400, "request.body.invalid"},
		{"issueToken number", `{"username":"sync-admin","password":"example-password","issueToken":1}`, jsonCT, 400, "request.body.invalid"},
		{"invalid json", `{"username":`, jsonCT, 400, "request.body.invalid"},
		{"username not a string", `{"username":1,"password":"x","issueToken":"true"}`, jsonCT, 400, "request.body.invalid"},
		{"wrong password", `{"username":"sync-admin","password":"nope","issueToken":"true"}`, jsonCT, 401, "auth.login.failed"},
		{"unknown user", `{"username":"root","password":"example-password","issueToken":"true"}`, jsonCT, 401, "auth.login.failed"},
		{"missing password", `{"username":"sync-admin","issueToken":"true"}`, jsonCT, 401, "auth.login.failed"},
		{"form content type", ok, []string{"Content-Type", mediaForm}, 415, "http.media.unsupported"},
		{"accept xml", ok, append(jsonCT, "Accept", "application/xml"), 406, "http.media.not.acceptable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			r := e.do(http.MethodPost, pathLogin, tc.body, tc.headers...)
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, tc.status, r.body)
			}
			if tc.status != 200 {
				if r.errorCode() != tc.code {
					t.Errorf("code = %q, want %q", r.errorCode(), tc.code)
				}
				if e.sim.Logins() != 0 {
					t.Errorf("Logins = %d after a failure", e.sim.Logins())
				}
				return
			}
			var resp map[string]any
			mustUnmarshal(t, r.body, &resp)
			if v, ok := resp["id"]; !ok || v != nil {
				t.Errorf("id = %v (present %v), want null", v, ok)
			}
			tok, _ := resp["sessionToken"].(string)
			if rr := e.listDirs(tok); rr.status != 200 {
				t.Errorf("session token does not work: %d", rr.status)
			}
		})
	}
}

// TestSessionTokenJWT: the client reads exp from the session token to decide when to refresh.
func TestSessionTokenJWT(t *testing.T) {
	const ttl = 90 * time.Minute
	e := newEnv(t, func(c *vidmsim.Config) { c.TokenTTL = ttl })
	r := e.do(http.MethodPost, pathLogin, `{"username":"sync-admin","password":"example-password","issueToken":"true"}`,
		"Content-Type", "application/json")
	var resp struct{ SessionToken string }
	mustUnmarshal(t, r.body, &resp)
	claims := jwtClaims(t, resp.SessionToken)
	if claims.Prn != username || claims.JTI == "" {
		t.Errorf("claims = %+v", claims)
	}
	if claims.IAT != e.clock.Now().Unix() || claims.EXP != claims.IAT+int64(ttl/time.Second) {
		t.Errorf("iat = %d, exp = %d, want iat = %d and exp = iat + %d", claims.IAT, claims.EXP,
			e.clock.Now().Unix(), int64(ttl/time.Second))
	}
	// The OAuth token is JWT-shaped too, with the same exp, and expires_in matches.
	oauth := jwtClaims(t, e.token())
	if oauth.Prn != clientID || oauth.EXP-oauth.IAT != int64(ttl/time.Second) {
		t.Errorf("oauth claims = %+v", oauth)
	}
	if a, b := e.sim.IssuedTokens()[0], e.token(); a == b {
		t.Error("two logins returned the same token")
	}
}

type claims struct {
	JTI string `json:"jti"`
	Prn string `json:"prn"`
	IAT int64  `json:"iat"`
	EXP int64  `json:"exp"`
}

func jwtClaims(t *testing.T, tok string) claims {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[2] == "" {
		t.Fatalf("token is not a signed JWT: %d parts", len(parts))
	}
	hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || !strings.Contains(string(hdr), `"HS256"`) {
		t.Fatalf("header %s: %v", hdr, err)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("payload: %v", err)
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatalf("claims: %v", err)
	}
	return c
}
