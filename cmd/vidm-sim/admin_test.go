package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/systems"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// Provider ids of vidmsim.ExampleVCFConfig.
const (
	oktaProviderID     = "159498c4-6e0e-4757-ae4b-dcb6aaa93216"
	entraProviderID    = "aadd13f5-c05e-491b-9312-23e743175904"
	embeddedProviderID = "3262279b-09b0-44eb-a3be-f4bded4f0851"
)

// connectorConfig has one directory with a Sync Connectors list. Its syncs last a nanosecond, so
// that every sync has ended by the time the next request is served and a second one can start.
func connectorConfig() vidmsim.Config {
	cfg := vidmsim.ExampleConfig()
	cfg.Directories = []vidmsim.Directory{{ID: "dir-ha", Name: "HA AD", Domains: []string{"ha.example.com"},
		Connectors: []string{"conn-a", "conn-b"}, SyncDuration: time.Nanosecond}}
	return cfg
}

// compactJSON is body without the indentation writeJSON adds.
func compactJSON(t *testing.T, body []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, body); err != nil {
		t.Fatalf("not JSON: %s", body)
	}
	return b.String()
}

func newClient(t *testing.T, cfg httpcore.Config) *httpcore.Client {
	t.Helper()
	cfg.Retry = httpcore.RetryPolicy{MaxAttempts: 1} // each answer is the one under test
	c, err := systems.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestControlConnectorDown: a connector set down makes the next sync fail over past it, as the
// worker's client then reads from the status; set up again, the next sync runs on it.
func TestControlConnectorDown(t *testing.T) {
	p := startPlain(t, nil, "-config", writeConfig(t, connectorConfig()))
	c := newClient(t, httpcore.Config{Kind: backend.KindVIDM, BaseURL: p.base,
		ClientID: exampleClientID, ClientSecret: exampleClientSecret})
	steps := []struct {
		name          string
		control       string
		wantEcho      string
		wantConnector string
		wantAttempts  []contract.Attempt
	}{
		{
			name:     "first connector down: fails over",
			control:  `{"directoryId":"dir-ha","connector":"conn-a","down":true}`,
			wantEcho: `{"directoryId":"dir-ha","connector":"conn-a","down":true}`, wantConnector: "conn-b",
			wantAttempts: []contract.Attempt{
				{Connector: "conn-a", Status: "FAILED", Message: "connector conn-a unavailable"},
				{Connector: "conn-b", Status: "COMPLETED"},
			},
		},
		{
			name:     "up again: no failover",
			control:  `{"directoryId":"dir-ha","connector":"conn-a","down":false}`,
			wantEcho: `{"directoryId":"dir-ha","connector":"conn-a","down":false}`, wantConnector: "conn-a",
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			r := p.control(t, "/_sim/connector-down", st.control)
			if r.status != http.StatusOK || compactJSON(t, r.body) != st.wantEcho {
				t.Fatalf("control: %d %s", r.status, r.body)
			}
			if err := c.StartSync(t.Context(), "dir-ha", false); err != nil {
				t.Fatalf("StartSync: %v", err)
			}
			state, err := c.SyncStatus(t.Context(), "dir-ha")
			if err != nil {
				t.Fatalf("SyncStatus: %v", err)
			}
			if state.Status != backend.StatusCompleted || state.Connector != st.wantConnector ||
				!reflect.DeepEqual(state.Attempts, st.wantAttempts) {
				t.Errorf("state = %+v, want connector %s attempts %+v", state, st.wantConnector, st.wantAttempts)
			}
		})
	}
}

// TestControlRevokeRefreshToken: after the control, the token exchange refuses the token with
// 400 invalid_grant, which the worker's client takes as permanent; access tokens already issued
// keep working until they expire, as with CSP.
func TestControlRevokeRefreshToken(t *testing.T) {
	p := startPlain(t, nil, "-flavor", "vra-cloud")
	cfg := httpcore.Config{Kind: backend.KindVRACloud, BaseURL: p.base, TokenURL: p.base + pathCSPAuthorize,
		RefreshToken: exampleRefreshToken}
	before := newClient(t, cfg)
	if _, err := before.Directories(t.Context()); err != nil {
		t.Fatalf("Directories before the revocation: %v", err)
	}

	for i := range 2 { // revoking is idempotent
		if r := p.control(t, "/_sim/revoke-refresh-token", `{"token":"`+exampleRefreshToken+`"}`); r.status != http.StatusOK ||
			compactJSON(t, r.body) != `{"revoked":true}` {
			t.Fatalf("revoke #%d: %d %s", i+1, r.status, r.body)
		}
	}

	r := p.do(t, http.MethodPost, pathCSPAuthorize, url.Values{"refresh_token": {exampleRefreshToken}}.Encode(),
		"Content-Type", "application/x-www-form-urlencoded", "Accept", "application/json")
	var csp struct {
		StatusCode int    `json:"statusCode"`
		Message    string `json:"message"`
	}
	mustJSON(t, r.body, &csp)
	if r.status != http.StatusBadRequest || csp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(csp.Message, "invalid_grant") {
		t.Errorf("exchange after the revocation: %d %s", r.status, r.body)
	}
	_, err := newClient(t, cfg).Directories(t.Context())
	if !errors.Is(err, httpcore.ErrUnauthorized) || httpcore.IsRetryable(err) {
		t.Errorf("a new client after the revocation: %v, want a permanent ErrUnauthorized", err)
	}
	// The cached directory list would hide a refused token: a sync status call needs the API.
	if _, err := before.SyncStatus(t.Context(), "dir-corp-ad"); err != nil {
		t.Errorf("the access token issued before the revocation: %v", err)
	}
}

// TestControlSyncClientTokenExpiry: the control moves a broker's sync-client token expiry, and
// null removes the token, as VCF's provider body and the worker's client then report.
func TestControlSyncClientTokenExpiry(t *testing.T) {
	p := startPlain(t, nil, "-flavor", "vcf")
	c := newClient(t, httpcore.Config{Kind: backend.KindVCF, BaseURL: p.base, Username: exampleVCFUser, Password: examplePassword})
	entraExpiry := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) // ExampleVCFConfig's, left alone
	steps := []struct {
		name     string
		control  string
		wantEcho string
		want     map[string]time.Time // provider id → expiry the client reports; absent: no token
	}{
		{
			name:     "moved, with milliseconds",
			control:  `{"providerId":"` + oktaProviderID + `","expireAt":"2027-01-02T04:04:05.250+01:00"}`,
			wantEcho: `{"providerId":"` + oktaProviderID + `","expireAt":"2027-01-02T03:04:05.25Z"}`,
			want: map[string]time.Time{oktaProviderID: time.Date(2027, 1, 2, 3, 4, 5, 250e6, time.UTC),
				entraProviderID: entraExpiry},
		},
		{
			name:     "null removes the token",
			control:  `{"providerId":"` + oktaProviderID + `","expireAt":null}`,
			wantEcho: `{"providerId":"` + oktaProviderID + `","expireAt":null}`,
			want:     map[string]time.Time{entraProviderID: entraExpiry},
		},
		{
			name:     "a new token after none",
			control:  `{"providerId":"` + oktaProviderID + `","expireAt":"2026-11-30T00:00:00Z"}`,
			wantEcho: `{"providerId":"` + oktaProviderID + `","expireAt":"2026-11-30T00:00:00Z"}`,
			want: map[string]time.Time{oktaProviderID: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC),
				entraProviderID: entraExpiry},
		},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			r := p.control(t, "/_sim/sync-client-token-expiry", st.control)
			if r.status != http.StatusOK || compactJSON(t, r.body) != st.wantEcho {
				t.Fatalf("control: %d %s", r.status, r.body)
			}
			tokens, err := c.SyncClientTokens(t.Context())
			if err != nil {
				t.Fatalf("SyncClientTokens: %v", err)
			}
			got := map[string]time.Time{}
			for _, tok := range tokens {
				got[tok.ProviderID] = tok.ExpiresAt
			}
			if !reflect.DeepEqual(got, st.want) {
				t.Errorf("sync-client tokens = %v, want %v", got, st.want)
			}
		})
	}
}

// TestControlsRefuse: the controls refuse what they cannot do, saying why, and change nothing.
func TestControlsRefuse(t *testing.T) {
	sims := map[string]*simProcess{
		"vidm":      startPlain(t, nil, "-config", writeConfig(t, connectorConfig())),
		"vra-cloud": startPlain(t, nil, "-flavor", "vra-cloud"),
		"vcf":       startPlain(t, nil, "-flavor", "vcf"),
	}
	const (
		down   = "/_sim/connector-down"
		revoke = "/_sim/revoke-refresh-token"
		expiry = "/_sim/sync-client-token-expiry"
	)
	tests := []struct {
		name        string
		sim         string
		method      string // default POST
		path        string
		contentType string // default application/json
		body        string
		wantStatus  int
		wantError   string // in the error body
	}{
		{"connector: unknown directory", "vidm", "", down, "", `{"directoryId":"nope","connector":"conn-a","down":true}`,
			http.StatusUnprocessableEntity, `unknown directory \"nope\"`},
		{"connector: not in the directory's list", "vidm", "", down, "", `{"directoryId":"dir-ha","connector":"conn-z","down":true}`,
			http.StatusUnprocessableEntity, `no sync connector \"conn-z\"`},
		{"connector: down missing", "vidm", "", down, "", `{"directoryId":"dir-ha","connector":"conn-a"}`,
			http.StatusBadRequest, "directoryId, connector and down are required"},
		{"connector: misspelt field", "vidm", "", down, "", `{"directoryId":"dir-ha","connector":"conn-a","isDown":true}`,
			http.StatusBadRequest, `unknown field \"isDown\"`},
		{"connector: trailing data", "vidm", "", down, "", `{"directoryId":"dir-ha","connector":"conn-a","down":true} {}`,
			http.StatusBadRequest, "trailing data"},
		{"connector: not JSON", "vidm", "", down, "", `directoryId=dir-ha`, http.StatusBadRequest, "body:"},
		{"connector: form content type", "vidm", "", down, "application/x-www-form-urlencoded", `{"directoryId":"dir-ha"}`,
			http.StatusUnsupportedMediaType, "application/json"},
		{"connector: GET", "vidm", http.MethodGet, down, "", "", http.StatusMethodNotAllowed, ""},
		{"revoke: a token the config never had", "vra-cloud", "", revoke, "", `{"token":"typo-refresh-token"}`,
			http.StatusUnprocessableEntity, "not one of the config's refreshTokens"},
		{"revoke: no token", "vra-cloud", "", revoke, "", `{}`, http.StatusBadRequest, "token is required"},
		{"revoke: in a flavor without refresh tokens", "vidm", "", revoke, "", `{"token":"` + exampleRefreshToken + `"}`,
			http.StatusUnprocessableEntity, "not one of the config's refreshTokens"},
		{"expiry: unknown provider", "vcf", "", expiry, "", `{"providerId":"nope","expireAt":null}`,
			http.StatusUnprocessableEntity, `no VCF identity provider \"nope\"`},
		{"expiry: not a broker", "vcf", "", expiry, "", `{"providerId":"` + embeddedProviderID + `","expireAt":"2027-01-01T00:00:00Z"}`,
			http.StatusUnprocessableEntity, "it has no sync-client token"},
		{"expiry: expireAt missing", "vcf", "", expiry, "", `{"providerId":"` + oktaProviderID + `"}`,
			http.StatusBadRequest, "expireAt null removes the token"},
		{"expiry: not RFC 3339", "vcf", "", expiry, "", `{"providerId":"` + oktaProviderID + `","expireAt":"2027-01-01"}`,
			http.StatusBadRequest, "RFC 3339"},
		{"expiry: epoch number", "vcf", "", expiry, "", `{"providerId":"` + oktaProviderID + `","expireAt":1798761600}`,
			http.StatusBadRequest, "RFC 3339"},
		{"expiry: in a flavor without providers", "vidm", "", expiry, "", `{"providerId":"` + oktaProviderID + `","expireAt":null}`,
			http.StatusUnprocessableEntity, "no VCF identity provider"},
		{"unknown control", "vidm", "", "/_sim/expire-tokens", "", `{}`, http.StatusNotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := sims[tc.sim]
			method, ct := tc.method, tc.contentType
			if method == "" {
				method = http.MethodPost
			}
			if ct == "" {
				ct = "application/json"
			}
			r := p.do(t, method, tc.path, tc.body, "Content-Type", ct)
			if r.status != tc.wantStatus || !strings.Contains(string(r.body), tc.wantError) {
				t.Fatalf("%s %s: %d %s, want %d with %q", method, tc.path, r.status, r.body, tc.wantStatus, tc.wantError)
			}
			if tc.wantError != "" && r.header.Get("Content-Type") != "application/json" {
				t.Errorf("error Content-Type = %q", r.header.Get("Content-Type"))
			}
		})
	}

	// Nothing refused above changed anything: a sync runs on the first connector, the example
	// refresh token still works, and the brokers keep their tokens.
	c := newClient(t, httpcore.Config{Kind: backend.KindVIDM, BaseURL: sims["vidm"].base,
		ClientID: exampleClientID, ClientSecret: exampleClientSecret})
	if err := c.StartSync(t.Context(), "dir-ha", false); err != nil {
		t.Fatal(err)
	}
	if st, err := c.SyncStatus(t.Context(), "dir-ha"); err != nil || st.Connector != "conn-a" || st.Attempts != nil {
		t.Errorf("sync after the refusals: %+v, %v", st, err)
	}
	cloud := newClient(t, httpcore.Config{Kind: backend.KindVRACloud, BaseURL: sims["vra-cloud"].base,
		TokenURL: sims["vra-cloud"].base + pathCSPAuthorize, RefreshToken: exampleRefreshToken})
	if _, err := cloud.Directories(t.Context()); err != nil {
		t.Errorf("refresh token after the refusals: %v", err)
	}
	vcf := newClient(t, httpcore.Config{Kind: backend.KindVCF, BaseURL: sims["vcf"].base, Username: exampleVCFUser, Password: examplePassword})
	if tokens, err := vcf.SyncClientTokens(t.Context()); err != nil || len(tokens) != 2 {
		t.Errorf("sync-client tokens after the refusals: %+v, %v", tokens, err)
	}
}
