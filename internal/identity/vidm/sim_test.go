package vidm_test

// The client against the strict simulator, over real HTTPS: the behaviour a platform engineer
// relies on when vIDM misbehaves.

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/vidm"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/fakeclock"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/identitytest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/logbuf"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

const (
	testClientID     = "worker-client"
	testClientSecret = "oauth-secret-Zq81-do-not-log"
	testUser         = "sync-admin"
	testPassword     = "system-password-Hk27-do-not-log"
)

type simEnv struct {
	sim    *vidmsim.Server
	srv    *httptest.Server
	caFile string
	logs   *logbuf.Buffer
	client *httpcore.Client
	cfg    httpcore.Config
}

type envOption struct {
	sim    func(*vidmsim.Config)
	client func(*httpcore.Config)
}

func withSim(f func(*vidmsim.Config)) envOption     { return envOption{sim: f} }
func withClient(f func(*httpcore.Config)) envOption { return envOption{client: f} }

// newSimEnv starts the simulator on HTTPS and a client that trusts it through a CA file.
func newSimEnv(t *testing.T, opts ...envOption) *simEnv {
	t.Helper()
	simCfg := vidmsim.Config{
		Directories:  identitytest.Directories(),
		Clients:      []vidmsim.Client{{ID: testClientID, Secret: testClientSecret}},
		Users:        []vidmsim.User{{Username: testUser, Password: testPassword}},
		TokenTTL:     time.Hour,
		SyncDuration: 150 * time.Millisecond,
	}
	for _, o := range opts {
		if o.sim != nil {
			o.sim(&simCfg)
		}
	}
	sim, err := vidmsim.New(simCfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(sim)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are what the TLS tests provoke
	srv.StartTLS()
	t.Cleanup(func() { sim.Resume(); srv.Close() })

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	e := &simEnv{sim: sim, srv: srv, caFile: caFile, logs: &logbuf.Buffer{}}
	e.cfg = httpcore.Config{
		BaseURL:      srv.URL,
		AuthMode:     httpcore.AuthOAuth,
		ClientID:     testClientID,
		ClientSecret: testClientSecret,
		Username:     testUser,
		Password:     testPassword,
		CAFile:       caFile,
		Retry:        httpcore.RetryPolicy{MaxAttempts: 4, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond},
		Logger:       slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range opts {
		if o.client != nil {
			o.client(&e.cfg)
		}
	}
	e.client = e.newClient(t, e.cfg)
	return e
}

func (e *simEnv) newClient(t *testing.T, cfg httpcore.Config) *httpcore.Client {
	t.Helper()
	c, err := vidm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestAuthFlows(t *testing.T) {
	tests := []struct {
		name      string
		mode      httpcore.AuthMode
		endpoint  vidmsim.Endpoint
		badSecret func(*httpcore.Config)
	}{
		{"oauth client credentials", httpcore.AuthOAuth, vidmsim.EndpointOAuthToken, func(c *httpcore.Config) { c.ClientSecret = "wrong-secret" }},
		{"system login", httpcore.AuthSystem, vidmsim.EndpointSystemLogin, func(c *httpcore.Config) { c.Password = "wrong-password" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSimEnv(t, withClient(func(c *httpcore.Config) { c.AuthMode = tt.mode }))
			dirs, err := e.client.Directories(context.Background())
			if err != nil {
				t.Fatalf("Directories: %v", err)
			}
			if len(dirs) != len(identitytest.Directories()) {
				t.Fatalf("got %d directories, want %d", len(dirs), len(identitytest.Directories()))
			}
			if _, err := e.client.SyncStatus(context.Background(), "dir-corp"); err != nil {
				t.Fatalf("SyncStatus: %v", err)
			}
			if e.sim.Logins() != 1 || e.sim.Requests(tt.endpoint) != 1 {
				t.Fatalf("logins = %d, %s requests = %d; want one login for both calls", e.sim.Logins(), tt.endpoint, e.sim.Requests(tt.endpoint))
			}

			bad := e.cfg
			tt.badSecret(&bad)
			before := e.sim.Requests(tt.endpoint)
			_, err = e.newClient(t, bad).Directories(context.Background())
			if !errors.Is(err, httpcore.ErrUnauthorized) || httpcore.IsRetryable(err) {
				t.Fatalf("bad credentials: error = %v, want permanent ErrUnauthorized", err)
			}
			if got := e.sim.Requests(tt.endpoint) - before; got != 1 {
				t.Fatalf("bad credentials were tried %d times, want 1 (never retried)", got)
			}
		})
	}
}

func TestOneLoginServesConcurrentCalls(t *testing.T) {
	for _, mode := range []httpcore.AuthMode{httpcore.AuthOAuth, httpcore.AuthSystem} {
		t.Run(string(mode), func(t *testing.T) {
			e := newSimEnv(t, withClient(func(c *httpcore.Config) { c.AuthMode = mode }))
			identitytest.RunConcurrently(t, 50, func() error {
				_, err := e.client.SyncStatus(context.Background(), "dir-corp")
				return err
			})
			if e.sim.Logins() != 1 {
				t.Fatalf("50 concurrent calls caused %d logins, want 1", e.sim.Logins())
			}
			if got := e.sim.Requests(vidmsim.EndpointSyncStatus); got != 50 {
				t.Fatalf("sync-status requests = %d, want 50", got)
			}
		})
	}
}

func TestTokenInvalidatedMidRun(t *testing.T) {
	tests := []struct {
		name string
		kill func(*vidmsim.Server)
	}{
		{"expired", (*vidmsim.Server).ExpireTokens},
		{"revoked", (*vidmsim.Server).RevokeTokens},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSimEnv(t)
			if _, err := e.client.SyncStatus(context.Background(), "dir-corp"); err != nil {
				t.Fatal(err)
			}
			tt.kill(e.sim)
			identitytest.RunConcurrently(t, 50, func() error {
				_, err := e.client.SyncStatus(context.Background(), "dir-corp")
				return err
			})
			if e.sim.Logins() != 2 {
				t.Fatalf("logins = %d, want 2: one at start, one shared re-login after the token died", e.sim.Logins())
			}
			if got := e.sim.RequestsByStatus(vidmsim.EndpointSyncStatus)[http.StatusUnauthorized]; got < 1 || got > 50 {
				t.Fatalf("401 answers = %d, want between 1 and 50 (each call retries at most once)", got)
			}
		})
	}
}

func TestTokenRefreshedBeforeExpiry(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	for _, mode := range []httpcore.AuthMode{httpcore.AuthOAuth, httpcore.AuthSystem} {
		t.Run(string(mode), func(t *testing.T) {
			e := newSimEnv(t,
				withSim(func(c *vidmsim.Config) { c.Now = clock.Now; c.TokenTTL = time.Hour }),
				withClient(func(c *httpcore.Config) { c.Now = clock.Now; c.AuthMode = mode; c.TokenRefreshMargin = time.Minute }))
			status := func() {
				t.Helper()
				if _, err := e.client.SyncStatus(context.Background(), "dir-corp"); err != nil {
					t.Fatal(err)
				}
			}
			status()
			clock.Advance(58 * time.Minute)
			status()
			if e.sim.Logins() != 1 {
				t.Fatalf("logins = %d after 58 of 60 minutes, want 1", e.sim.Logins())
			}
			clock.Advance(90 * time.Second) // inside the one-minute margin, token still valid at vIDM
			status()
			if e.sim.Logins() != 2 {
				t.Fatalf("logins = %d inside the refresh margin, want 2", e.sim.Logins())
			}
			if n := e.sim.RequestsByStatus(vidmsim.EndpointSyncStatus)[http.StatusUnauthorized]; n != 0 {
				t.Fatalf("vIDM answered 401 %d times; the refresh should come before expiry", n)
			}
		})
	}
}

func TestUnauthorizedRetriedOnce(t *testing.T) {
	tests := []struct {
		name         string
		times        int
		wantErr      bool
		wantRequests int
	}{
		{"one 401 then a fresh token works", 1, false, 2},
		{"401 again with the fresh token is final", 5, true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSimEnv(t)
			e.sim.SetFault(vidmsim.EndpointSyncStatus, vidmsim.Fault{Status: http.StatusUnauthorized, Times: tt.times})
			_, err := e.client.SyncStatus(context.Background(), "dir-corp")
			if tt.wantErr != (err != nil) {
				t.Fatalf("error = %v, want error: %v", err, tt.wantErr)
			}
			if tt.wantErr && (!errors.Is(err, httpcore.ErrUnauthorized) || httpcore.IsRetryable(err)) {
				t.Fatalf("error = %v, want permanent ErrUnauthorized", err)
			}
			if got := e.sim.Requests(vidmsim.EndpointSyncStatus); got != tt.wantRequests {
				t.Fatalf("sync-status requests = %d, want %d", got, tt.wantRequests)
			}
			if e.sim.Logins() != 2 {
				t.Fatalf("logins = %d, want 2", e.sim.Logins())
			}
		})
	}
}

func TestRetryClassification(t *testing.T) {
	tests := []struct {
		name         string
		fault        vidmsim.Fault
		wantErr      bool
		retryable    bool
		wantRequests int
		minElapsed   time.Duration
	}{
		{"503 twice then success", vidmsim.Fault{Status: 503, Times: 2}, false, false, 3, 0},
		{"500 on every attempt", vidmsim.Fault{Status: 500}, true, true, 4, 0},
		{"connection reset twice then success", vidmsim.Fault{Reset: true, Times: 2}, false, false, 3, 0},
		{"429 with Retry-After honoured", vidmsim.Fault{Status: 429, RetryAfter: time.Second, Times: 1}, false, false, 2, time.Second},
		{"503 with Retry-After honoured", vidmsim.Fault{Status: 503, RetryAfter: time.Second, Times: 1}, false, false, 2, time.Second},
		{"403 not retried", vidmsim.Fault{Status: 403, Times: 1}, true, false, 1, 0},
		{"400 not retried", vidmsim.Fault{Status: 400, Times: 1}, true, false, 1, 0},
		{"404 not retried", vidmsim.Fault{Status: 404, Times: 1}, true, false, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSimEnv(t)
			if _, err := e.client.Directories(context.Background()); err != nil { // log in first
				t.Fatal(err)
			}
			e.sim.SetFault(vidmsim.EndpointSyncStart, tt.fault)
			start := time.Now()
			err := e.client.StartSync(context.Background(), "dir-corp", false)
			elapsed := time.Since(start)
			if tt.wantErr != (err != nil) {
				t.Fatalf("error = %v, want error: %v", err, tt.wantErr)
			}
			if err != nil && httpcore.IsRetryable(err) != tt.retryable {
				t.Fatalf("IsRetryable(%v) = %v, want %v", err, !tt.retryable, tt.retryable)
			}
			if got := e.sim.Requests(vidmsim.EndpointSyncStart); got != tt.wantRequests {
				t.Fatalf("sync-start requests = %d, want %d", got, tt.wantRequests)
			}
			if elapsed < tt.minElapsed {
				t.Fatalf("returned after %v; Retry-After asked for %v", elapsed, tt.minElapsed)
			}
			if !tt.wantErr && len(e.sim.SyncLog()) != 1 {
				t.Fatalf("sync log has %d entries, want 1", len(e.sim.SyncLog()))
			}
		})
	}
}

func TestRetryAfterBeyondCapIsLeftToTheCaller(t *testing.T) {
	e := newSimEnv(t, withClient(func(c *httpcore.Config) { c.Retry.MaxRetryAfter = time.Second }))
	e.sim.SetFault(vidmsim.EndpointDirectories, vidmsim.Fault{Status: 429, RetryAfter: 2 * time.Minute})
	_, err := e.client.Directories(context.Background())
	if !httpcore.IsRetryable(err) || httpcore.RetryAfterOf(err) != 2*time.Minute {
		t.Fatalf("error = %v (retry after %v), want retryable with Retry-After 2m", err, httpcore.RetryAfterOf(err))
	}
	if got := e.sim.Requests(vidmsim.EndpointDirectories); got != 1 {
		t.Fatalf("directories requests = %d, want 1", got)
	}
}

func TestRequestTimeout(t *testing.T) {
	e := newSimEnv(t, withClient(func(c *httpcore.Config) {
		c.RequestTimeout = 100 * time.Millisecond
		c.Retry.MaxAttempts = 2
	}))
	e.sim.SetFault(vidmsim.EndpointSyncStatus, vidmsim.Fault{Hang: true})
	_, err := e.client.SyncStatus(context.Background(), "dir-corp")
	if !httpcore.IsRetryable(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want a retryable timeout", err)
	}
	if got := e.sim.Requests(vidmsim.EndpointSyncStatus); got != 2 {
		t.Fatalf("sync-status requests = %d, want 2 (each attempt timed out)", got)
	}
}

func TestResolveDirectory(t *testing.T) {
	e := newSimEnv(t)
	ctx := context.Background()
	tests := []struct {
		ref        string
		wantID     string
		wantErr    error
		candidates int
	}{
		{"Corp AD", "dir-corp", nil, 0},
		{"corp ad", "dir-corp", nil, 0},
		{"CORP.example.com", "dir-corp", nil, 0},
		{"corp.local", "dir-corp", nil, 0},
		{"emea.example.com", "dir-emea", nil, 0},
		{"Lab Two", "dir-lab-2", nil, 0}, // a name wins over the shared domain
		{"lab.example.com", "", httpcore.ErrAmbiguousDirectory, 2},
		{"apac.example.com", "", httpcore.ErrDirectoryNotFound, 0},
		{"  ", "", httpcore.ErrDirectoryNotFound, 0},
	}
	for _, tt := range tests {
		d, err := e.client.ResolveDirectory(ctx, tt.ref)
		if tt.wantErr == nil {
			if err != nil || d.ID != tt.wantID {
				t.Errorf("ResolveDirectory(%q) = %q, %v; want %q", tt.ref, d.ID, err, tt.wantID)
			}
			continue
		}
		var de *httpcore.DirectoryError
		if !errors.Is(err, tt.wantErr) || !errors.As(err, &de) || len(de.Candidates) != tt.candidates || httpcore.IsRetryable(err) {
			t.Errorf("ResolveDirectory(%q) error = %v, want permanent %v with %d candidates", tt.ref, err, tt.wantErr, tt.candidates)
		}
	}
	// One list call answered them all: the list is younger than DirectoryMissRefresh, so misses
	// do not refresh it (TestResolveDirectoryRefreshesOnMiss covers the refresh).
	if got := e.sim.Requests(vidmsim.EndpointDirectories); got != 1 {
		t.Fatalf("directory list requests = %d, want 1", got)
	}
}

func TestResolveDirectoryRefreshesOnMiss(t *testing.T) {
	clock := fakeclock.New(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	e := newSimEnv(t, withClient(func(c *httpcore.Config) {
		c.Now = clock.Now
		c.DirectoryCacheTTL = time.Hour
		c.DirectoryMissRefresh = 30 * time.Second
	}))
	ctx := context.Background()
	if _, err := e.client.ResolveDirectory(ctx, "Corp AD"); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetDirectory(vidmsim.Directory{ID: "dir-apac", Name: "APAC AD", Domains: []string{"apac.example.com"}}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(31 * time.Second)
	d, err := e.client.ResolveDirectory(ctx, "apac.example.com")
	if err != nil || d.ID != "dir-apac" {
		t.Fatalf("new directory not found after a refresh: %q, %v", d.ID, err)
	}
	for range 20 {
		if _, err := e.client.ResolveDirectory(ctx, "nowhere.example.com"); !errors.Is(err, httpcore.ErrDirectoryNotFound) {
			t.Fatalf("error = %v, want ErrDirectoryNotFound", err)
		}
	}
	if got := e.sim.Requests(vidmsim.EndpointDirectories); got != 2 {
		t.Fatalf("directory list requests = %d, want 2: a flood of unknown names must not hammer vIDM", got)
	}
	clock.Advance(31 * time.Second)
	if _, err := e.client.ResolveDirectory(ctx, "nowhere.example.com"); !errors.Is(err, httpcore.ErrDirectoryNotFound) {
		t.Fatal(err)
	}
	if got := e.sim.Requests(vidmsim.EndpointDirectories); got != 3 {
		t.Fatalf("directory list requests = %d, want 3 once the miss interval passed", got)
	}
}

func TestSyncToTerminalStatus(t *testing.T) {
	tests := []struct {
		name        string
		dir         vidmsim.Directory
		ignore      bool
		want        httpcore.Status
		wantMessage string
	}{
		{"completed", vidmsim.Directory{ID: "dir-corp", Name: "Corp AD", Domains: []string{"corp.example.com"}}, false, httpcore.StatusCompleted, ""},
		{"failed", vidmsim.Directory{ID: "dir-corp", Name: "Corp AD", FailMessage: "LDAP bind failed: invalid credentials"}, false, httpcore.StatusFailed, "LDAP bind failed"},
		{"safeguard violation", vidmsim.Directory{ID: "dir-corp", Name: "Corp AD", SafeguardViolation: true}, false, httpcore.StatusFailed, "safeguard"},
		{"safeguards ignored", vidmsim.Directory{ID: "dir-corp", Name: "Corp AD", SafeguardViolation: true}, true, httpcore.StatusCompleted, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSimEnv(t)
			if err := e.sim.SetDirectory(tt.dir); err != nil {
				t.Fatal(err)
			}
			ctx := httpcore.WithTraceparent(httpcore.WithRequestID(context.Background(), "run-42"), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			before, err := e.client.SyncStatus(ctx, "dir-corp")
			if err != nil || before.Status != httpcore.StatusUndefined {
				t.Fatalf("status before any sync = %+v, %v; want UNDEFINED", before, err)
			}
			if err := e.client.StartSync(ctx, "dir-corp", tt.ignore); err != nil {
				t.Fatalf("StartSync: %v", err)
			}
			var seen []httpcore.Status
			opts := identitytest.FastWait()
			opts.Before = &before
			opts.Progress = func(s httpcore.SyncState) { seen = append(seen, s.Status) }
			st, err := e.client.WaitForSync(ctx, "dir-corp", opts)
			if err != nil {
				t.Fatalf("WaitForSync: %v", err)
			}
			if st.Status != tt.want || !strings.Contains(st.Message, tt.wantMessage) {
				t.Fatalf("final state %+v, want %s with message containing %q", st, tt.want, tt.wantMessage)
			}
			if st.StartedAt.IsZero() || st.FinishedAt.Before(st.StartedAt) {
				t.Fatalf("final state has no usable times: %+v", st)
			}
			if len(seen) < 2 || seen[0] != httpcore.StatusRunning || seen[len(seen)-1] != tt.want {
				t.Fatalf("progress saw %v, want RUNNING … %s", seen, tt.want)
			}
			log := e.sim.SyncLog()
			if len(log) != 1 || log[0].RequestID != "run-42" || log[0].Traceparent == "" || log[0].IgnoreSafeguards != tt.ignore {
				t.Fatalf("sync log = %+v, want one sync started by run-42", log)
			}
		})
	}
}

func TestRunningSyncIsNotStartedTwice(t *testing.T) {
	e := newSimEnv(t)
	ctx := context.Background()
	if err := e.sim.StartForeignSync("dir-corp", time.Hour); err != nil {
		t.Fatal(err)
	}
	st, err := e.client.SyncStatus(ctx, "dir-corp")
	if err != nil || st.Status != httpcore.StatusRunning {
		t.Fatalf("status = %+v, %v; want RUNNING", st, err)
	}
	err = e.client.StartSync(ctx, "dir-corp", false)
	if !errors.Is(err, httpcore.ErrSyncInProgress) || httpcore.IsRetryable(err) {
		t.Fatalf("StartSync on a running directory = %v, want permanent ErrSyncInProgress", err)
	}
	if n := len(e.sim.SyncLog()); n != 1 {
		t.Fatalf("sync log has %d syncs, want 1", n)
	}
	if e.sim.MaxConcurrentSyncs("dir-corp") != 1 || e.sim.RejectedSyncPosts() != 1 {
		t.Fatalf("max concurrent = %d, rejected posts = %d; want 1 and 1", e.sim.MaxConcurrentSyncs("dir-corp"), e.sim.RejectedSyncPosts())
	}
	if err := e.client.StartSync(ctx, "dir-nope", false); !errors.Is(err, httpcore.ErrDirectoryNotFound) || httpcore.IsRetryable(err) {
		t.Fatalf("StartSync on an unknown directory = %v, want permanent ErrDirectoryNotFound", err)
	}
}

func TestWaitForSyncDeadline(t *testing.T) {
	e := newSimEnv(t)
	if err := e.sim.StartForeignSync("dir-corp", time.Hour); err != nil {
		t.Fatal(err)
	}
	opts := identitytest.FastWait()
	opts.Timeout = 150 * time.Millisecond
	st, err := e.client.WaitForSync(context.Background(), "dir-corp", opts)
	if !errors.Is(err, httpcore.ErrSyncTimeout) || !httpcore.IsRetryable(err) {
		t.Fatalf("error = %v, want retryable ErrSyncTimeout", err)
	}
	if st.Status != httpcore.StatusRunning || !strings.Contains(err.Error(), "RUNNING") {
		t.Fatalf("state %+v / error %q should report the last status RUNNING", st, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	opts.Timeout = time.Hour
	opts.Progress = func(httpcore.SyncState) { cancel() }
	if _, err := e.client.WaitForSync(ctx, "dir-corp", opts); !errors.Is(err, context.Canceled) || httpcore.IsRetryable(err) {
		t.Fatalf("cancelled wait = %v, want permanent context.Canceled", err)
	}
}

func TestWaitForSyncRidesOutAnOutage(t *testing.T) {
	e := newSimEnv(t, withClient(func(c *httpcore.Config) { c.Retry.MaxAttempts = 1 }))
	if err := e.client.StartSync(context.Background(), "dir-corp", false); err != nil {
		t.Fatal(err)
	}
	e.sim.SetFault(vidmsim.EndpointSyncStatus, vidmsim.Fault{Status: 503, Times: 3})
	st, err := e.client.WaitForSync(context.Background(), "dir-corp", identitytest.FastWait())
	if err != nil || st.Status != httpcore.StatusCompleted {
		t.Fatalf("WaitForSync = %+v, %v; want COMPLETED after the 503s passed", st, err)
	}
	if got := e.sim.RequestsByStatus(vidmsim.EndpointSyncStatus)[503]; got != 3 {
		t.Fatalf("503 answers = %d, want 3", got)
	}
}

func TestTLSVerification(t *testing.T) {
	e := newSimEnv(t)
	_, otherCA, err := vidmsim.SelfSignedCert("localhost")
	if err != nil {
		t.Fatal(err)
	}
	wrongCA := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(wrongCA, otherCA, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		mutate   func(*httpcore.Config)
		wantErr  bool
		wantWarn bool
	}{
		{"trusted CA file", func(*httpcore.Config) {}, false, false},
		{"wrong CA file", func(c *httpcore.Config) { c.CAFile = wrongCA }, true, false},
		{"system roots only", func(c *httpcore.Config) { c.CAFile = "" }, true, false},
		{"insecure switch", func(c *httpcore.Config) { c.CAFile = ""; c.InsecureSkipVerify = true }, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logbuf.Buffer{}
			cfg := e.cfg
			cfg.Logger = slog.New(slog.NewJSONHandler(logs, nil))
			tt.mutate(&cfg)
			_, err := e.newClient(t, cfg).Directories(context.Background())
			if tt.wantErr {
				if err == nil || httpcore.IsRetryable(err) || !strings.Contains(err.Error(), "certificate") {
					t.Fatalf("error = %v, want a permanent certificate error", err)
				}
			} else if err != nil {
				t.Fatalf("Directories: %v", err)
			}
			if warned := strings.Contains(logs.String(), `"level":"WARN"`) && strings.Contains(logs.String(), "TLS verification"); warned != tt.wantWarn {
				t.Fatalf("warning logged = %v, want %v: %s", warned, tt.wantWarn, logs.String())
			}
		})
	}
}

// TestNoSecretInLogsOrErrors drives every path that logs or fails — both logins, bad credentials,
// 401s, retries, failed syncs — with debug logging on, and looks for every secret in the output.
func TestNoSecretInLogsOrErrors(t *testing.T) {
	for _, mode := range []httpcore.AuthMode{httpcore.AuthOAuth, httpcore.AuthSystem} {
		t.Run(string(mode), func(t *testing.T) {
			e := newSimEnv(t, withClient(func(c *httpcore.Config) { c.AuthMode = mode }))
			ctx := context.Background()
			var errs []error
			keep := func(err error) {
				if err != nil {
					errs = append(errs, err)
				}
			}
			_, err := e.client.Directories(ctx)
			keep(err)
			e.sim.ExpireTokens()
			_, err = e.client.SyncStatus(ctx, "dir-corp")
			keep(err)
			e.sim.SetFault(vidmsim.EndpointSyncStatus, vidmsim.Fault{Status: http.StatusUnauthorized, Times: 2})
			_, err = e.client.SyncStatus(ctx, "dir-corp")
			keep(err)
			e.sim.SetFault(vidmsim.EndpointSyncStart, vidmsim.Fault{Status: 503})
			keep(e.client.StartSync(ctx, "dir-corp", false))
			e.sim.ClearFaults()
			keep(e.sim.SetDirectory(vidmsim.Directory{ID: "dir-corp", Name: "Corp AD", FailMessage: "bind failed"}))
			keep(e.client.StartSync(ctx, "dir-corp", false))
			_, err = e.client.WaitForSync(ctx, "dir-corp", identitytest.FastWait())
			keep(err)
			bad := e.cfg
			bad.ClientSecret, bad.Password = "wrong-"+testClientSecret, "wrong-"+testPassword
			_, err = e.newClient(t, bad).Directories(ctx)
			keep(err)

			if len(errs) < 3 {
				t.Fatalf("only %d errors were produced; the test must exercise failures", len(errs))
			}
			out := e.logs.String()
			for _, err := range errs {
				out += "\n" + err.Error()
			}
			secrets := append([]string{testClientSecret, testPassword}, e.sim.IssuedTokens()...)
			if len(secrets) < 4 {
				t.Fatalf("simulator issued %d tokens, want at least 2", len(secrets)-2)
			}
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Fatalf("secret %.8s… found in logs or errors", s)
				}
			}
			if !strings.Contains(out, "retrying") {
				t.Fatalf("expected retry warnings in the debug log; got:\n%s", out)
			}
		})
	}
}
