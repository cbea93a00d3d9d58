package vracloud_test

// vRA Cloud with an on-premises connector: vIDM's API under the cloud base URL, with access
// tokens from VMware Cloud Services' API-token exchange. The simulator serves both on one
// HTTPS server (FlavorVRACloud) and every request it receives is recorded, so the tests can
// prove where the API token went and where it did not.

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/vracloud"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/fakeclock"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/identitytest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/logbuf"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

const (
	cloudSyncDuration = 10 * time.Second
	cloudTokenTTL     = 30 * time.Minute // CSP's access tokens live 1799 s
)

// seenRequest is one request as the simulator's server received it.
type seenRequest struct {
	method, uri, path string
	header            http.Header
	body              []byte
}

// requestLog records every request before the simulator handles it.
type requestLog struct {
	mu   sync.Mutex
	reqs []seenRequest
}

func (l *requestLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20)) // test bodies are tiny
		r.Body = io.NopCloser(bytes.NewReader(b))
		l.mu.Lock()
		l.reqs = append(l.reqs, seenRequest{method: r.Method, uri: r.RequestURI, path: r.URL.Path, header: r.Header.Clone(), body: b})
		l.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (l *requestLog) all() []seenRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]seenRequest(nil), l.reqs...)
}

func (l *requestLog) to(path string) []seenRequest {
	var out []seenRequest
	for _, r := range l.all() {
		if r.path == path {
			out = append(out, r)
		}
	}
	return out
}

type cloudEnv struct {
	t      *testing.T
	sim    *vidmsim.Server
	srv    *httptest.Server
	clock  *fakeclock.Clock
	seen   *requestLog
	logs   *logbuf.Buffer // client and simulator, at Debug
	cfg    httpcore.Config
	client *httpcore.Client
}

// newCloudEnv starts the simulator in FlavorVRACloud on HTTPS with a fake clock, and a vRA Cloud
// client whose token URL is the simulator's CSP endpoint.
func newCloudEnv(t *testing.T, mutate ...func(*httpcore.Config)) *cloudEnv {
	t.Helper()
	e := &cloudEnv{
		t:     t,
		clock: fakeclock.New(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)),
		seen:  &requestLog{},
		logs:  &logbuf.Buffer{},
	}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sim, err := vidmsim.New(vidmsim.Config{
		Flavor:        vidmsim.FlavorVRACloud,
		RefreshTokens: []string{identitytest.CloudAPIToken},
		Directories:   identitytest.Directories(),
		TokenTTL:      cloudTokenTTL,
		SyncDuration:  cloudSyncDuration,
		Now:           e.clock.Now,
		Logger:        logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.sim = sim
	e.srv = httptest.NewUnstartedServer(e.seen.wrap(sim))
	e.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the reset faults make the server complain
	e.srv.StartTLS()
	t.Cleanup(func() { sim.Resume(); e.srv.Close() })
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cfg = httpcore.Config{
		Kind:         backend.KindVRACloud,
		BaseURL:      e.srv.URL,
		RefreshToken: identitytest.CloudAPIToken,
		TokenURL:     e.srv.URL + identitytest.CloudPathAuthz,
		CAFile:       caFile,
		Retry:        httpcore.RetryPolicy{MaxAttempts: 4, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
		Logger:       logger,
		Now:          e.clock.Now,
	}
	for _, m := range mutate {
		m(&e.cfg)
	}
	e.client = e.newClient(t, e.cfg)
	return e
}

func (e *cloudEnv) newClient(t *testing.T, cfg httpcore.Config) *httpcore.Client {
	t.Helper()
	c, err := vracloud.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func (e *cloudEnv) authorizations() int { return e.sim.Requests(vidmsim.EndpointCSPAuthorize) }

func TestCloudDefaultTokenURL(t *testing.T) {
	if vracloud.DefaultTokenURL != "https://console.cloud.vmware.com/csp/gateway/am/api/auth/api-tokens/authorize" {
		t.Fatalf("DefaultTokenURL = %q", vracloud.DefaultTokenURL)
	}
	// A client configured without a token URL asks the console: proven with a transport that
	// answers in place of the internet.
	var mu sync.Mutex
	var urls []string
	stub := identitytest.StubTransport(func(r *http.Request) (int, string) {
		mu.Lock()
		urls = append(urls, r.Method+" "+r.URL.String())
		mu.Unlock()
		if r.URL.Host == "console.cloud.vmware.com" {
			return 200, `{"access_token":"at-1","token_type":"bearer","expires_in":1799,"refresh_token":"` + identitytest.CloudAPIToken + `","scope":"","id_token":"x"}`
		}
		return 200, `{"items":[{"type":"ACTIVE_DIRECTORY_LDAP","name":"Corp AD","directoryId":"d1"}]}`
	})
	c, err := vracloud.New(httpcore.Config{Kind: backend.KindVRACloud, BaseURL: "https://api.mgmt.cloud.vmware.com", RefreshToken: identitytest.CloudAPIToken, Transport: stub})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Directories(context.Background()); err != nil {
		t.Fatalf("Directories: %v", err)
	}
	want := []string{
		"POST " + vracloud.DefaultTokenURL,
		"GET https://api.mgmt.cloud.vmware.com/SAAS/jersey/manager/api/connectormanagement/directoryconfigs",
	}
	if strings.Join(urls, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(urls, "\n"), strings.Join(want, "\n"))
	}
}

// The whole path of a worker's run against vRA Cloud: one token exchange, the directory list, a
// sync started and polled to COMPLETED with the access token.
func TestCloudSyncEndToEnd(t *testing.T) {
	e := newCloudEnv(t)
	ctx := context.Background()
	dirs, err := e.client.Directories(ctx)
	if err != nil || len(dirs) != len(identitytest.Directories()) {
		t.Fatalf("Directories = %d, %v", len(dirs), err)
	}
	d, err := e.client.ResolveDirectory(ctx, "corp.example.com")
	if err != nil || d.ID != "dir-corp" {
		t.Fatalf("ResolveDirectory = %+v, %v", d, err)
	}
	before, err := e.client.SyncStatus(ctx, d.ID)
	if err != nil || before.Status != httpcore.StatusUndefined {
		t.Fatalf("status before = %+v, %v", before, err)
	}
	if err := e.client.StartSync(ctx, d.ID, false); err != nil {
		t.Fatalf("StartSync: %v", err)
	}
	opts := identitytest.FastWait()
	opts.Now = time.Now // the deadline is real time; the fake clock moves only the simulator's syncs
	opts.Before = &before
	var seen []httpcore.Status
	opts.Progress = func(st httpcore.SyncState) {
		seen = append(seen, st.Status)
		if st.Status == httpcore.StatusRunning {
			e.clock.Advance(cloudSyncDuration) // the simulator's sync ends on its clock, not ours
		}
	}
	st, err := e.client.WaitForSync(ctx, d.ID, opts)
	if err != nil || st.Status != httpcore.StatusCompleted || st.Connector != "connector-1" {
		t.Fatalf("WaitForSync = %+v, %v; want COMPLETED", st, err)
	}
	if len(seen) < 2 || seen[0] != httpcore.StatusRunning {
		t.Fatalf("progress saw %v, want RUNNING … COMPLETED", seen)
	}
	if e.authorizations() != 1 || e.client.Logins() != 1 || e.sim.Logins() != 1 {
		t.Fatalf("authorize requests = %d, client logins = %d, tokens issued = %d; want one of each",
			e.authorizations(), e.client.Logins(), e.sim.Logins())
	}
	if lastOK, authErr := e.client.AuthState(); lastOK.IsZero() || authErr != nil {
		t.Fatalf("AuthState = %v, %v; want proven good", lastOK, authErr)
	}

	// The exchange as CSP wants it: a form body, JSON answers, no bearer token, nothing in the URL.
	authz := e.seen.to(identitytest.CloudPathAuthz)
	if len(authz) != 1 {
		t.Fatalf("%d authorize requests recorded", len(authz))
	}
	r := authz[0]
	form, err := url.ParseQuery(string(r.body))
	if r.method != http.MethodPost || r.uri != identitytest.CloudPathAuthz || err != nil || form.Get("refresh_token") != identitytest.CloudAPIToken || len(form) != 1 {
		t.Fatalf("authorize request %s %s body %q", r.method, r.uri, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" || r.header.Get("Accept") != "application/json" || r.header.Get("Authorization") != "" {
		t.Fatalf("authorize headers = %v", r.header)
	}
	for _, r := range e.seen.all() {
		if r.path != identitytest.CloudPathAuthz && !strings.HasPrefix(r.header.Get("Authorization"), "Bearer ") {
			t.Fatalf("%s %s without the bearer token", r.method, r.uri)
		}
	}
}

func TestCloudAccessTokenRenewal(t *testing.T) {
	tests := []struct {
		name string
		// kill makes the current access token unusable (or nearly so) between two calls.
		kill     func(*cloudEnv)
		want401s int
	}{
		{"expired at CSP mid-run: 401, one new exchange", func(e *cloudEnv) { e.sim.ExpireTokens() }, 1},
		{"near its expires_in: renewed before any 401", func(e *cloudEnv) { e.clock.Advance(cloudTokenTTL - 30*time.Second) }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCloudEnv(t)
			ctx := context.Background()
			if _, err := e.client.SyncStatus(ctx, "dir-corp"); err != nil {
				t.Fatal(err)
			}
			tt.kill(e)
			identitytest.RunConcurrently(t, 20, func() error {
				_, err := e.client.SyncStatus(ctx, "dir-corp")
				return err
			})
			if e.authorizations() != 2 || e.client.Logins() != 2 {
				t.Fatalf("authorize requests = %d, logins = %d; want 2: the first and one shared renewal", e.authorizations(), e.client.Logins())
			}
			if got := e.sim.RequestsByStatus(vidmsim.EndpointSyncStatus)[http.StatusUnauthorized]; (got == 0) != (tt.want401s == 0) {
				t.Fatalf("401 answers = %d, want %d or more", got, tt.want401s)
			}
			for _, r := range e.seen.to(identitytest.CloudPathAuthz) {
				if form, _ := url.ParseQuery(string(r.body)); form.Get("refresh_token") != identitytest.CloudAPIToken {
					t.Fatalf("renewal sent body %q, want the same API token", r.body)
				}
			}
		})
	}
}

func TestCloudRefreshTokenRefused(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(*cloudEnv) *httpcore.Client // returns the client to call with
		wantUnaut bool                             // errors.Is ErrUnauthorized
		wantRetry bool
		wantErr   bool
		wantTries int // authorize requests
	}{
		{"unknown API token: 400 invalid_grant", func(e *cloudEnv) *httpcore.Client {
			cfg := e.cfg
			cfg.RefreshToken = "csp-api-token-unknown-0000"
			return e.newClientT(cfg)
		}, true, false, true, 1},
		{"revoked while the worker runs", func(e *cloudEnv) *httpcore.Client {
			if _, err := e.client.Directories(context.Background()); err != nil {
				e.t.Fatal(err)
			}
			e.sim.RevokeRefreshToken(identitytest.CloudAPIToken)
			e.sim.ExpireTokens()
			return e.client
		}, true, false, true, 2},
		{"401 from CSP", func(e *cloudEnv) *httpcore.Client {
			e.sim.SetFault(vidmsim.EndpointCSPAuthorize, vidmsim.Fault{Status: 401})
			return e.client
		}, true, false, true, 1},
		{"403 from CSP", func(e *cloudEnv) *httpcore.Client {
			e.sim.SetFault(vidmsim.EndpointCSPAuthorize, vidmsim.Fault{Status: 403})
			return e.client
		}, true, false, true, 1},
		{"another 400 is permanent but says nothing of the token", func(e *cloudEnv) *httpcore.Client {
			e.sim.SetFault(vidmsim.EndpointCSPAuthorize, vidmsim.Fault{Status: 400})
			return e.client
		}, false, false, true, 1},
		{"CSP down throughout: retryable", func(e *cloudEnv) *httpcore.Client {
			e.sim.SetFault(vidmsim.EndpointCSPAuthorize, vidmsim.Fault{Status: 503})
			return e.client
		}, false, true, true, 4},
		{"429 then success", func(e *cloudEnv) *httpcore.Client {
			e.sim.SetFault(vidmsim.EndpointCSPAuthorize, vidmsim.Fault{Status: 429, Times: 1})
			return e.client
		}, false, false, false, 2},
		{"connection reset twice then success", func(e *cloudEnv) *httpcore.Client {
			e.sim.SetFault(vidmsim.EndpointCSPAuthorize, vidmsim.Fault{Reset: true, Times: 2})
			return e.client
		}, false, false, false, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCloudEnv(t)
			c := tt.setup(e)
			_, err := c.SyncStatus(context.Background(), "dir-corp")
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error: %v", err, tt.wantErr)
			}
			if err != nil {
				var ve *httpcore.Error
				if errors.Is(err, httpcore.ErrUnauthorized) != tt.wantUnaut || httpcore.IsRetryable(err) != tt.wantRetry || !errors.As(err, &ve) {
					t.Fatalf("error = %v (unauthorized %v, retryable %v); want unauthorized %v, retryable %v",
						err, errors.Is(err, httpcore.ErrUnauthorized), httpcore.IsRetryable(err), tt.wantUnaut, tt.wantRetry)
				}
				if _, authErr := c.AuthState(); (authErr != nil) != tt.wantUnaut {
					t.Fatalf("AuthState error = %v; a refused API token must make the worker unready", authErr)
				}
			}
			if got := e.authorizations(); got != tt.wantTries {
				t.Fatalf("authorize requests = %d, want %d", got, tt.wantTries)
			}
		})
	}
}

// newClientT is newClient for table setups, which get the env only.
func (e *cloudEnv) newClientT(cfg httpcore.Config) *httpcore.Client { return e.newClient(e.t, cfg) }

func TestCloudTokenURLRejected(t *testing.T) {
	tests := []struct{ name, url string }{
		{"not https", "ftp://console.cloud.vmware.com/csp/gateway/am/api/auth/api-tokens/authorize"},
		{"plain http to a remote host", "http://console.cloud.vmware.com/csp/gateway/am/api/auth/api-tokens/authorize"},
		{"credentials", "https://user:pw@console.cloud.vmware.com/csp/gateway/am/api/auth/api-tokens/authorize"},
		{"a query would be dropped", "https://console.cloud.vmware.com/authorize?refresh_token=pasted-" + identitytest.CloudAPIToken},
		{"fragment", "https://console.cloud.vmware.com/authorize#x"},
		{"no host", "https:///csp/gateway/am/api/auth/api-tokens/authorize"},
		{"not a URL", "https://console.cloud.vmware.com:port\x7f/"},
		{"relative", "/csp/gateway/am/api/auth/api-tokens/authorize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newCloudEnv(t, func(c *httpcore.Config) { c.TokenURL = tt.url })
			_, err := e.client.Directories(context.Background())
			if !errors.Is(err, httpcore.ErrInvalidArgument) || httpcore.IsRetryable(err) {
				t.Fatalf("error = %v, want permanent ErrInvalidArgument", err)
			}
			if strings.Contains(err.Error(), identitytest.CloudAPIToken) || strings.Contains(err.Error(), "pasted") {
				t.Fatalf("error quotes the URL: %v", err)
			}
			if n := len(e.seen.all()); n != 0 {
				t.Fatalf("%d requests were sent", n)
			}
		})
	}
}

// Plain http is fine to a loopback simulator (tests and dev stacks), nowhere else.
func TestCloudTokenURLLoopbackHTTP(t *testing.T) {
	sim, err := vidmsim.New(vidmsim.Config{Flavor: vidmsim.FlavorVRACloud, RefreshTokens: []string{identitytest.CloudAPIToken}, Directories: identitytest.Directories()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	defer srv.Close()
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Skipf("test server is not on 127.0.0.1: %s", srv.URL)
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		tokenURL := strings.Replace(srv.URL, "127.0.0.1", host, 1) + identitytest.CloudPathAuthz
		c, err := vracloud.New(httpcore.Config{Kind: backend.KindVRACloud, BaseURL: srv.URL, RefreshToken: identitytest.CloudAPIToken, TokenURL: tokenURL})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Directories(context.Background()); err != nil {
			t.Fatalf("token URL %s: %v", tokenURL, err)
		}
		c.Close()
	}
}

// TestCloudNoSecretLeaks drives every path that logs or fails with the API token in play, with
// debug logging on in the client and the simulator, and looks for the token everywhere but the
// one place it belongs: the body of the exchange.
func TestCloudNoSecretLeaks(t *testing.T) {
	e := newCloudEnv(t)
	ctx := context.Background()
	var errs []error
	keep := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	_, err := e.client.Directories(ctx)
	keep(err)
	e.sim.SetFault(vidmsim.EndpointCSPAuthorize, vidmsim.Fault{Status: 503, Times: 2}) // retry warnings
	e.sim.ExpireTokens()
	_, err = e.client.SyncStatus(ctx, "dir-corp")
	keep(err)
	e.sim.SetFault(vidmsim.EndpointCSPAuthorize, vidmsim.Fault{Status: 503}) // retries exhausted
	e.sim.ExpireTokens()
	_, err = e.client.SyncStatus(ctx, "dir-corp")
	keep(err)
	e.sim.ClearFaults()
	e.sim.RevokeRefreshToken(identitytest.CloudAPIToken)
	_, err = e.client.SyncStatus(ctx, "dir-corp") // no token left: the exchange says invalid_grant
	keep(err)

	// A token service that echoes the token in its message is redacted, not quoted.
	echo := identitytest.StubTransport(func(*http.Request) (int, string) {
		return 400, `{"statusCode":400,"message":"invalid_grant: Invalid refresh token ` + identitytest.CloudAPIToken + `","requestId":"r1"}`
	})
	cfg := e.cfg
	cfg.Transport = echo
	_, err = e.newClient(t, cfg).Directories(ctx)
	if !errors.Is(err, httpcore.ErrUnauthorized) || !strings.Contains(err.Error(), "[redacted]") {
		t.Fatalf("echoing service: error = %v, want ErrUnauthorized with the token redacted", err)
	}
	keep(err)

	if len(errs) < 3 {
		t.Fatalf("only %d errors were produced; the test must exercise failures", len(errs))
	}
	out := e.logs.String()
	for _, err := range errs {
		out += "\n" + err.Error()
	}
	if !strings.Contains(out, "retrying") || !strings.Contains(out, "invalid_grant") {
		t.Fatalf("the debug log and errors lack the retries and the refusal; got:\n%s", out)
	}
	secrets := append([]string{identitytest.CloudAPIToken, url.QueryEscape(identitytest.CloudAPIToken)}, e.sim.IssuedTokens()...)
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Fatalf("secret %.12s… found in logs or errors", s)
		}
	}
	inBody := 0
	for _, r := range e.seen.all() {
		if strings.Contains(r.uri, identitytest.CloudAPIToken) || strings.Contains(r.uri, url.QueryEscape(identitytest.CloudAPIToken)) {
			t.Fatalf("the API token is in the request URL %s", r.uri)
		}
		for name, vals := range r.header {
			if strings.Contains(strings.Join(vals, " "), identitytest.CloudAPIToken) {
				t.Fatalf("the API token is in the %s header", name)
			}
		}
		if strings.Contains(string(r.body), identitytest.CloudAPIToken) {
			if r.path != identitytest.CloudPathAuthz {
				t.Fatalf("the API token was sent to %s", r.path)
			}
			inBody++
		}
	}
	if inBody == 0 || inBody != e.authorizations() {
		t.Fatalf("the API token was in %d bodies, want every one of the %d exchanges", inBody, e.authorizations())
	}
}
