package vra7

// The vRA 7 client against the strict simulator over real HTTP (and HTTPS), plus the paging loop
// against servers that misbehave in ways the simulator does not. An internal test: the paths, the
// one-call listing and the login answer are unexported.

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/fakeclock"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/logbuf"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

const (
	vra7User     = "configurationadmin"
	vra7Password = "vra7-password-Qm52-do-not-log"
	vra7Tenant   = "vsphere.local"
	vra7Corp     = "corp.example.com"
)

type vra7Env struct {
	sim    *vidmsim.Server
	srv    *httptest.Server
	clock  *fakeclock.Clock
	logs   *logbuf.Buffer
	cfg    httpcore.Config
	client *httpcore.Client
}

// vra7Opt adjusts the simulator's and the client's configuration before either starts.
type vra7Opt func(*vidmsim.Config, *httpcore.Config)

func vra7TestDirectories() []vidmsim.Directory {
	return []vidmsim.Directory{
		{ID: "dir-corp", Name: "Corp AD", Domains: []string{vra7Corp, "corp.local"}},
		{ID: "dir-emea", Name: "EMEA AD", Type: vidmsim.TypeActiveDirectoryIWA, Domains: []string{"emea.example.com"}},
		{ID: "dir-ldap", Name: "Partner LDAP", Type: "OPEN_LDAP", Domains: []string{"partner.example.net"}},
		{ID: "dir-system", Name: "System Directory", Type: vidmsim.TypeLocalDirectory},
	}
}

// newVRA7Env starts the simulator in vra7 flavor on plain HTTP (or HTTPS, trusted through a CA
// file) and a client; both run on one fake clock, so syncs and tokens move only when the test
// says so.
func newVRA7Env(t *testing.T, useTLS bool, opts ...vra7Opt) *vra7Env {
	t.Helper()
	clock := fakeclock.New(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	simCfg := vidmsim.Config{
		Flavor:       vidmsim.FlavorVRA7,
		Tenant:       vra7Tenant,
		Directories:  vra7TestDirectories(),
		Users:        []vidmsim.User{{Username: vra7User, Password: vra7Password}},
		TokenTTL:     time.Hour,
		SyncDuration: 10 * time.Second,
		Now:          clock.Now,
	}
	e := &vra7Env{clock: clock, logs: &logbuf.Buffer{}}
	e.cfg = httpcore.Config{
		Kind:     backend.KindVRA7,
		AuthMode: httpcore.AuthPassword,
		Username: vra7User,
		Password: vra7Password,
		Tenant:   vra7Tenant,
		Retry:    httpcore.RetryPolicy{MaxAttempts: 4, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond},
		Logger:   slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:      clock.Now,
	}
	for _, o := range opts {
		o(&simCfg, &e.cfg)
	}
	sim, err := vidmsim.New(simCfg)
	if err != nil {
		t.Fatal(err)
	}
	e.sim = sim
	e.srv = httptest.NewUnstartedServer(sim)
	e.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are what a TLS test provokes
	if useTLS {
		e.srv.StartTLS()
		e.cfg.CAFile = filepath.Join(t.TempDir(), "ca.pem")
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.srv.Certificate().Raw})
		if err := os.WriteFile(e.cfg.CAFile, pemBytes, 0o600); err != nil {
			t.Fatal(err)
		}
	} else {
		e.srv.Start()
	}
	t.Cleanup(func() { sim.Resume(); e.srv.Close() })
	e.cfg.BaseURL = e.srv.URL
	e.client = newVRA7Client(t, e.cfg)
	return e
}

func newVRA7Client(t *testing.T, cfg httpcore.Config) *httpcore.Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// waitAdvancing polls to a terminal state, moving the fake clock on by step after every poll:
// the sync's progress is driven by the test, not by wall time.
func (e *vra7Env) waitAdvancing(ctx context.Context, domain string, before *httpcore.SyncState, step time.Duration) (httpcore.SyncState, []httpcore.Status, error) {
	var seen []httpcore.Status
	st, err := e.client.WaitForSync(ctx, domain, httpcore.WaitOptions{
		InitialInterval: time.Millisecond, MaxInterval: time.Millisecond, Timeout: time.Hour, Before: before,
		Progress: func(s httpcore.SyncState) { seen = append(seen, s.Status); e.clock.Advance(step) },
	})
	return st, seen, err
}

func TestVRA7SyncToTerminalStatus(t *testing.T) {
	tests := []struct {
		name    string
		dir     vidmsim.Directory
		want    httpcore.Status
		message string
	}{
		{"completed", vidmsim.Directory{ID: "dir-corp", Name: "Corp AD", Domains: []string{vra7Corp}}, httpcore.StatusCompleted, ""},
		{"failed", vidmsim.Directory{ID: "dir-corp", Name: "Corp AD", Domains: []string{vra7Corp}, FailMessage: "LDAP bind failed: invalid credentials"},
			httpcore.StatusFailed, "LDAP bind failed: invalid credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newVRA7Env(t, false)
			if err := e.sim.SetDirectory(tt.dir); err != nil {
				t.Fatal(err)
			}
			ctx := httpcore.WithRequestID(t.Context(), "run-7")
			before, err := e.client.SyncStatus(ctx, vra7Corp)
			if err != nil || before.Status != httpcore.StatusUndefined || before.Message != "" {
				t.Fatalf("status before any sync = %+v, %v; want UNDEFINED", before, err)
			}
			start := e.clock.Now()
			if err := e.client.StartSync(ctx, vra7Corp, false); err != nil {
				t.Fatalf("StartSync: %v", err)
			}
			st, seen, err := e.waitAdvancing(ctx, vra7Corp, &before, 4*time.Second)
			if err != nil {
				t.Fatalf("WaitForSync: %v", err)
			}
			if st.Status != tt.want || st.Message != tt.message {
				t.Fatalf("final state %+v, want %s with message %q", st, tt.want, tt.message)
			}
			// The simulator's dates: start at the POST, end SyncDuration later.
			if !st.StartedAt.Equal(start) || st.FinishedAt.Sub(st.StartedAt) != 10*time.Second {
				t.Fatalf("started %v finished %v; want %v and 10s later", st.StartedAt, st.FinishedAt, start)
			}
			if len(seen) != 4 || seen[0] != httpcore.StatusRunning || seen[2] != httpcore.StatusRunning || seen[3] != tt.want {
				t.Fatalf("polls saw %v, want RUNNING ×3 then %s", seen, tt.want)
			}
			log := e.sim.SyncLog()
			if len(log) != 1 || log[0].DirectoryID != "dir-corp" || log[0].RequestID != "run-7" || log[0].Foreign {
				t.Fatalf("sync log %+v, want the one sync this client started", log)
			}
		})
	}
}

func TestVRA7RunningElsewhereIsNotStartedTwice(t *testing.T) {
	e := newVRA7Env(t, false)
	ctx := t.Context()
	if err := e.sim.StartForeignSync("dir-corp", time.Hour); err != nil {
		t.Fatal(err)
	}
	st, err := e.client.SyncStatus(ctx, vra7Corp)
	if err != nil || st.Status != httpcore.StatusRunning || st.StartedAt.IsZero() || !st.FinishedAt.IsZero() {
		t.Fatalf("status = %+v, %v; want RUNNING with a start and no end", st, err)
	}
	err = e.client.StartSync(ctx, vra7Corp, false)
	var ve *httpcore.Error
	if !errors.Is(err, httpcore.ErrSyncInProgress) || httpcore.IsRetryable(err) || !errors.As(err, &ve) || ve.StatusCode != http.StatusConflict {
		t.Fatalf("StartSync on a running directory = %v, want a permanent 409 ErrSyncInProgress", err)
	}
	if n := len(e.sim.SyncLog()); n != 1 || e.sim.RejectedSyncPostsOnForeign() != 1 || e.sim.MaxConcurrentSyncs("dir-corp") != 1 {
		t.Fatalf("syncs %d, rejected on foreign %d, max concurrent %d; want 1, 1, 1",
			n, e.sim.RejectedSyncPostsOnForeign(), e.sim.MaxConcurrentSyncs("dir-corp"))
	}
	// Once the foreign sync is done the follow-up starts.
	e.clock.Advance(time.Hour)
	if err := e.client.StartSync(ctx, vra7Corp, false); err != nil {
		t.Fatalf("StartSync after the foreign sync ended: %v", err)
	}
}

func TestVRA7StartSyncErrors(t *testing.T) {
	tests := []struct {
		name     string
		domain   string
		want     error
		requests int // sync-start requests that reach the simulator
	}{
		{"unknown domain", "nowhere.example.com", httpcore.ErrDirectoryNotFound, 1},
		{"directory id is not the domain", "dir-corp", httpcore.ErrDirectoryNotFound, 1},
		// Escaped into one segment: the simulator sees .../corp.example.com%2Fsync/sync, an
		// unknown domain, not a second path to corp.example.com.
		{"slash stays in the segment", vra7Corp + "/sync", httpcore.ErrDirectoryNotFound, 1},
		{"empty", "", httpcore.ErrInvalidArgument, 0},
		{"dot", ".", httpcore.ErrInvalidArgument, 0},
		{"dot-dot", "..", httpcore.ErrInvalidArgument, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newVRA7Env(t, false)
			err := e.client.StartSync(t.Context(), tt.domain, false)
			if !errors.Is(err, tt.want) || httpcore.IsRetryable(err) {
				t.Fatalf("StartSync(%q) = %v, want permanent %v", tt.domain, err, tt.want)
			}
			if got := e.sim.Requests(vidmsim.EndpointVRA7SyncStart); got != tt.requests {
				t.Fatalf("sync-start requests = %d, want %d", got, tt.requests)
			}
			if got := e.sim.Requests(""); got != 0 {
				t.Fatalf("%d requests went to paths the simulator does not know", got)
			}
			if _, err := e.client.SyncStatus(t.Context(), tt.domain); !errors.Is(err, tt.want) {
				t.Fatalf("SyncStatus(%q) = %v, want %v", tt.domain, err, tt.want)
			}
			if n := len(e.sim.SyncLog()); n != 0 {
				t.Fatalf("%d syncs started", n)
			}
		})
	}
}

// vRA 7 has no safeguards: the flag is not sent (the simulator refuses any body).
func TestVRA7IgnoreSafeguardsIsNotSent(t *testing.T) {
	e := newVRA7Env(t, false)
	if err := e.client.StartSync(t.Context(), vra7Corp, true); err != nil {
		t.Fatalf("StartSync with ignoreSafeguards: %v", err)
	}
	if log := e.sim.SyncLog(); len(log) != 1 || log[0].IgnoreSafeguards {
		t.Fatalf("sync log %+v, want one sync without ignoreSafeguards", log)
	}
}

func TestVRA7TokenInvalidatedMidRun(t *testing.T) {
	tests := []struct {
		name string
		kill func(*vidmsim.Server)
	}{
		{"expired", (*vidmsim.Server).ExpireTokens},
		{"revoked", (*vidmsim.Server).RevokeTokens},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newVRA7Env(t, false)
			if _, err := e.client.SyncStatus(t.Context(), vra7Corp); err != nil {
				t.Fatal(err)
			}
			tt.kill(e.sim)
			var wg sync.WaitGroup
			errs := make(chan error, 20)
			for range 20 {
				wg.Go(func() {
					if _, err := e.client.SyncStatus(t.Context(), vra7Corp); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("call after the token died: %v", err)
			}
			if e.sim.Logins() != 2 || e.client.Logins() != 2 {
				t.Fatalf("logins: simulator %d, client %d; want 2 (one shared re-login)", e.sim.Logins(), e.client.Logins())
			}
			if got := e.sim.RequestsByStatus(vidmsim.EndpointVRA7SyncStatus)[http.StatusUnauthorized]; got < 1 || got > 20 {
				t.Fatalf("401 answers = %d, want 1 to 20 (each call retries at most once)", got)
			}
		})
	}
}

// The token is replaced before the "expires" vRA gave, so no call meets a 401; the default
// SessionTokenTTL (30m) would have replaced it at 29 minutes instead.
func TestVRA7TokenRefreshedBeforeExpiry(t *testing.T) {
	e := newVRA7Env(t, false, func(_ *vidmsim.Config, c *httpcore.Config) { c.TokenRefreshMargin = time.Minute })
	status := func() {
		t.Helper()
		if _, err := e.client.SyncStatus(t.Context(), vra7Corp); err != nil {
			t.Fatal(err)
		}
	}
	status()
	e.clock.Advance(58 * time.Minute)
	status()
	if e.sim.Logins() != 1 {
		t.Fatalf("logins = %d after 58 of 60 minutes, want 1", e.sim.Logins())
	}
	e.clock.Advance(90 * time.Second)
	status()
	if e.sim.Logins() != 2 {
		t.Fatalf("logins = %d inside the refresh margin, want 2", e.sim.Logins())
	}
	if n := e.sim.RequestsByStatus(vidmsim.EndpointVRA7SyncStatus)[http.StatusUnauthorized]; n != 0 {
		t.Fatalf("%d answers were 401; the refresh should come before expiry", n)
	}
}

func TestVRA7BadCredentials(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(*httpcore.Config)
		want     error
		requests int
	}{
		{"wrong password", func(c *httpcore.Config) { c.Password = "wrong-" + vra7Password }, httpcore.ErrUnauthorized, 1},
		{"wrong user", func(c *httpcore.Config) { c.Username = "nobody" }, httpcore.ErrUnauthorized, 1},
		{"unknown tenant", func(c *httpcore.Config) { c.Tenant = "other.local" }, httpcore.ErrUnauthorized, 1},
		{"tenant that is not a path segment", func(c *httpcore.Config) { c.Tenant = ".." }, httpcore.ErrInvalidArgument, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newVRA7Env(t, false)
			cfg := e.cfg
			tt.mutate(&cfg)
			c := newVRA7Client(t, cfg)
			_, err := c.Directories(t.Context())
			if !errors.Is(err, tt.want) || httpcore.IsRetryable(err) {
				t.Fatalf("error = %v, want permanent %v", err, tt.want)
			}
			if got := e.sim.Requests(vidmsim.EndpointVRA7Login); got != tt.requests {
				t.Fatalf("login requests = %d, want %d (never retried)", got, tt.requests)
			}
			if e.sim.Logins() != 0 || e.sim.Requests(vidmsim.EndpointVRA7Directories) != 0 {
				t.Fatalf("a token was issued (%d) or the list reached (%d)", e.sim.Logins(), e.sim.Requests(vidmsim.EndpointVRA7Directories))
			}
			if _, authErr := c.AuthState(); errors.Is(tt.want, httpcore.ErrUnauthorized) && !errors.Is(authErr, httpcore.ErrUnauthorized) {
				t.Fatalf("AuthState error = %v, want the rejected credentials", authErr)
			}
			if strings.Contains(err.Error(), vra7Password) {
				t.Fatalf("error holds the password: %v", err)
			}
		})
	}
}

// vra7ManyDirectories are n directories with domains, plus one without (not a vRA store).
func vra7ManyDirectories(n int) []vidmsim.Directory {
	dirs := make([]vidmsim.Directory, 0, n+1)
	for i := range n {
		d := vidmsim.Directory{ID: fmt.Sprintf("dir-%03d", i), Name: fmt.Sprintf("AD %03d", i),
			Domains: []string{fmt.Sprintf("d%03d.example.com", i)}}
		if i%2 == 1 {
			d.Type = "OPEN_LDAP"
		}
		dirs = append(dirs, d)
	}
	return append(dirs, vidmsim.Directory{ID: "dir-system", Name: "System Directory", Type: vidmsim.TypeLocalDirectory})
}

func TestVRA7ResolveDirectory(t *testing.T) {
	e := newVRA7Env(t, false, func(s *vidmsim.Config, _ *httpcore.Config) { s.Directories = vra7ManyDirectories(250) })
	tests := []struct {
		ref    string
		wantID string
		want   error
	}{
		{"AD 000", "d000.example.com", nil},
		{"ad 137", "d137.example.com", nil},
		{"AD 249", "d249.example.com", nil},
		{"d120.example.com", "d120.example.com", nil},
		{"D249.EXAMPLE.COM", "d249.example.com", nil},
		{"System Directory", "", httpcore.ErrDirectoryNotFound}, // no domain: not a vRA identity store
		{"d250.example.com", "", httpcore.ErrDirectoryNotFound},
	}
	for _, tt := range tests {
		d, err := e.client.ResolveDirectory(t.Context(), tt.ref)
		if tt.want != nil {
			if !errors.Is(err, tt.want) || httpcore.IsRetryable(err) {
				t.Errorf("ResolveDirectory(%q) = %+v, %v; want permanent %v", tt.ref, d, err, tt.want)
			}
			continue
		}
		if err != nil || d.ID != tt.wantID || len(d.Domains) != 1 || d.Domains[0] != tt.wantID {
			t.Errorf("ResolveDirectory(%q) = %+v, %v; want the store %s", tt.ref, d, err, tt.wantID)
		}
	}
	dirs, err := e.client.Directories(t.Context())
	if err != nil || len(dirs) != 250 {
		t.Fatalf("Directories = %d entries, %v; want 250", len(dirs), err)
	}
	// The resolved ID is what the sync paths take.
	d, err := e.client.ResolveDirectory(t.Context(), "AD 200")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.client.StartSync(t.Context(), d.ID, false); err != nil {
		t.Fatalf("StartSync(%q): %v", d.ID, err)
	}
	if log := e.sim.SyncLog(); len(log) != 1 || log[0].DirectoryID != "dir-200" {
		t.Fatalf("sync log %+v, want dir-200", log)
	}
}

// queryRecorder remembers the query of every directory-list request.
type queryRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	list []string
}

func (q *queryRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/directories") {
		q.mu.Lock()
		q.list = append(q.list, r.URL.RawQuery)
		q.mu.Unlock()
	}
	return q.base.RoundTrip(r)
}

func (q *queryRecorder) queries() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]string(nil), q.list...)
}

func TestVRA7DirectoriesReadsEveryPage(t *testing.T) {
	rec := &queryRecorder{base: http.DefaultTransport}
	e := newVRA7Env(t, false, func(s *vidmsim.Config, c *httpcore.Config) {
		s.Directories = vra7ManyDirectories(250)
		c.Transport = rec
	})
	dirs, err := API{tenant: e.client.Config().Tenant}.Directories(t.Context(), e.client)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"limit=100&page=1", "limit=100&page=2", "limit=100&page=3"}
	if got := rec.queries(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("list queries %v, want %v", got, want)
	}
	if len(dirs) != 250 {
		t.Fatalf("%d directories, want 250", len(dirs))
	}
	for i, d := range dirs {
		dom := fmt.Sprintf("d%03d.example.com", i)
		typ := "AD"
		if i%2 == 1 {
			typ = "LDAP"
		}
		if d.ID != dom || d.Name != fmt.Sprintf("AD %03d", i) || d.Type != typ || len(d.Domains) != 1 || d.Domains[0] != dom {
			t.Fatalf("directory %d = %+v, want %s (%s)", i, d, dom, typ)
		}
	}
}

// vra7PagedServer logs anyone in and answers the directory list with page(n), n counting from 1.
func vra7PagedServer(t *testing.T, page func(n int) string) (*httpcore.Client, *atomic.Int32) {
	t.Helper()
	var lists atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == pathVRA7Tokens:
			io.WriteString(w, `{"id":"opaque-token","expires":"2999-01-01T00:00:00.000Z","tenant":"vsphere.local"}`)
		case r.URL.Path == pathVRA7Tenants+vra7Tenant+"/directories" && r.URL.Query().Get("limit") == "100":
			lists.Add(1)
			n, _ := strconv.Atoi(r.URL.Query().Get("page"))
			io.WriteString(w, page(n))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return newVRA7Client(t, httpcore.Config{Kind: backend.KindVRA7, BaseURL: srv.URL, Username: vra7User, Password: vra7Password,
		Tenant: vra7Tenant, Retry: httpcore.RetryPolicy{MaxAttempts: 1}}), &lists
}

func vra7PageBody(totalPages int, domains ...string) string {
	content := make([]map[string]any, 0, len(domains))
	for _, d := range domains {
		content = append(content, map[string]any{"@type": "IdentityStore", "domain": d, "name": "n-" + d, "type": "AD"})
	}
	b, _ := json.Marshal(map[string]any{"links": []any{}, "content": content,
		"metadata": map[string]any{"size": 100, "totalPages": totalPages, "totalElements": 0, "number": 1, "offset": 0}})
	return string(b)
}

func TestVRA7DirectoriesPagingEdges(t *testing.T) {
	tests := []struct {
		name      string
		page      func(n int) string
		want      []string
		err       error
		retryable bool
		requests  int32
	}{
		{"one page", func(int) string { return vra7PageBody(1, "a", "b") }, []string{"a", "b"}, nil, false, 1},
		{"empty tenant", func(int) string { return vra7PageBody(0) }, []string{}, nil, false, 1},
		{"no metadata: one page", func(int) string { return `{"content":[{"domain":"a","name":"A"}]}` }, []string{"a"}, nil, false, 1},
		{"stores without a domain are skipped", func(int) string {
			return `{"content":[{"name":"no domain"},{"domain":"","name":"empty"},{"domain":"b","name":"B"}],"metadata":{"totalPages":1}}`
		}, []string{"b"}, nil, false, 1},
		{"a store shifted onto the next page is kept once", func(n int) string {
			return map[int]string{1: vra7PageBody(2, "a", "b"), 2: vra7PageBody(2, "b", "c")}[n]
		}, []string{"a", "b", "c"}, nil, false, 2},
		{"an empty page ends the list", func(n int) string {
			return map[int]string{1: vra7PageBody(5, "a"), 2: vra7PageBody(5)}[n]
		}, []string{"a"}, nil, false, 2},
		{"server ignores page", func(int) string { return vra7PageBody(3, "a", "b") }, nil, httpcore.ErrInvalidResponse, false, 2},
		{"totalPages never reached", func(n int) string { return vra7PageBody(1<<30, fmt.Sprintf("p%d", n)) },
			nil, httpcore.ErrInvalidResponse, false, vra7MaxPages},
		{"no content", func(int) string { return `{"metadata":{"totalPages":1}}` }, nil, httpcore.ErrInvalidResponse, true, 1},
		{"HTML page", func(int) string { return `<html>maintenance</html>` }, nil, httpcore.ErrInvalidResponse, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, lists := vra7PagedServer(t, tt.page)
			dirs, err := API{tenant: c.Config().Tenant}.Directories(t.Context(), c)
			if got := lists.Load(); got != tt.requests {
				t.Errorf("list requests = %d, want %d", got, tt.requests)
			}
			if tt.err != nil {
				if !errors.Is(err, tt.err) || httpcore.IsRetryable(err) != tt.retryable {
					t.Fatalf("error = %v (retryable %v), want %v (retryable %v)", err, httpcore.IsRetryable(err), tt.err, tt.retryable)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := make([]string, 0, len(dirs))
			for _, d := range dirs {
				got = append(got, d.ID)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("directories %v, want %v", got, tt.want)
			}
		})
	}
}

// The one-call listing the api interface makes refuses a list with more pages rather than
// returning the first page as if it were all.
func TestVRA7OneCallListingRefusesMorePages(t *testing.T) {
	a := API{tenant: vra7Tenant}
	cl := a.ListDirectories()
	if cl.Method != http.MethodGet || cl.Path != pathVRA7Tenants+vra7Tenant+"/directories" ||
		cl.Query.Get("page") != "1" || cl.Query.Get("limit") != strconv.Itoa(vra7OneCallLimit) || !cl.Bearer || cl.Endpoint != httpcore.EndpointDirectories {
		t.Fatalf("listDirectories() = %+v", cl)
	}
	dirs, err := a.ParseDirectories([]byte(vra7PageBody(1, "a", "b")))
	if err != nil || len(dirs) != 2 {
		t.Fatalf("one page: %v, %v", dirs, err)
	}
	if _, err := a.ParseDirectories([]byte(vra7PageBody(2, "a", "b"))); !errors.Is(err, httpcore.ErrInvalidResponse) || httpcore.IsRetryable(err) {
		t.Fatalf("two pages: error = %v, want permanent ErrInvalidResponse", err)
	}
}

func TestVRA7Paths(t *testing.T) {
	tests := []struct {
		tenant, domain string
		wantPath       string
		wantRaw        string
		wantErr        bool
	}{
		{vra7Tenant, vra7Corp, "/identity/api/tenants/vsphere.local/directories/corp.example.com/sync",
			"/identity/api/tenants/vsphere.local/directories/corp.example.com/sync", false},
		{"my tenant", "a/b c", "/identity/api/tenants/my tenant/directories/a/b c/sync",
			"/identity/api/tenants/my%20tenant/directories/a%2Fb%20c/sync", false},
		{vra7Tenant, "", "", "", true},
		{vra7Tenant, ".", "", "", true},
		{vra7Tenant, "..", "", "", true},
		{"..", vra7Corp, "", "", true},
		{"", vra7Corp, "", "", true},
	}
	for _, tt := range tests {
		a := API{tenant: tt.tenant}
		start, err := a.StartSync(tt.domain, true)
		status, serr := a.SyncStatus(tt.domain)
		if tt.wantErr {
			if !errors.Is(err, httpcore.ErrInvalidArgument) || !errors.Is(serr, httpcore.ErrInvalidArgument) {
				t.Errorf("(%q, %q): errors %v / %v, want ErrInvalidArgument", tt.tenant, tt.domain, err, serr)
			}
			continue
		}
		if err != nil || serr != nil {
			t.Fatalf("(%q, %q): %v / %v", tt.tenant, tt.domain, err, serr)
		}
		if start.Path != tt.wantPath || start.RawPath != tt.wantRaw || start.Method != http.MethodPost ||
			start.Body != nil || start.ContentType != "" || start.Accept != httpcore.MediaJSON || !start.Bearer || start.Endpoint != httpcore.EndpointSyncStart {
			t.Errorf("startSync(%q) = %+v", tt.domain, start)
		}
		wantStatus := strings.TrimSuffix(tt.wantRaw, "/sync") + "/status"
		if status.RawPath != wantStatus || status.Method != http.MethodGet || status.Accept != httpcore.MediaJSON || status.Endpoint != httpcore.EndpointSyncStatus {
			t.Errorf("syncStatus(%q) = %+v", tt.domain, status)
		}
	}
}

// Login reads the token and its expiry; a missing or unusable expiry falls back to
// SessionTokenTTL.
func TestVRA7LoginResponse(t *testing.T) {
	now := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		body    string
		token   string
		expires time.Time
		wantErr bool
	}{
		{"expires", `{"expires":"2026-11-23T17:00:00.000Z","id":"tok-1","tenant":"vsphere.local"}`, "tok-1", now.Add(8 * time.Hour), false},
		{"expires with offset", `{"expires":"2026-11-23T11:00:00+01:00","id":"tok-1"}`, "tok-1", now.Add(time.Hour), false},
		{"no expires", `{"id":"tok-2"}`, "tok-2", now.Add(20 * time.Minute), false},
		{"expires not a time", `{"id":"tok-3","expires":"tomorrow"}`, "tok-3", now.Add(20 * time.Minute), false},
		{"expires in the past", `{"id":"tok-4","expires":"2026-11-23T08:00:00Z"}`, "tok-4", now.Add(20 * time.Minute), false},
		{"no id", `{"expires":"2026-11-23T17:00:00.000Z"}`, "", time.Time{}, true},
		{"not JSON", `<html>login</html>`, "", time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bodies := make(chan map[string]string, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost || r.URL.Path != pathVRA7Tokens || r.Header.Get("Content-Type") != httpcore.MediaJSON || r.Header.Get("Accept") != httpcore.MediaJSON {
					http.Error(w, "unexpected request", http.StatusBadRequest)
					return
				}
				var got map[string]string
				if json.NewDecoder(r.Body).Decode(&got) != nil {
					http.Error(w, "bad body", http.StatusBadRequest)
					return
				}
				bodies <- got
				io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			c := newVRA7Client(t, httpcore.Config{Kind: backend.KindVRA7, BaseURL: srv.URL, Username: vra7User, Password: vra7Password,
				Tenant: vra7Tenant, SessionTokenTTL: 20 * time.Minute, Now: func() time.Time { return now }, Retry: httpcore.RetryPolicy{MaxAttempts: 1}})
			tok, err := API{}.Login(t.Context(), c)
			select {
			case got := <-bodies:
				if want := map[string]string{"username": vra7User, "password": vra7Password, "tenant": vra7Tenant}; fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("login body %v, want %v", got, want)
				}
			default:
				t.Fatalf("the login request was refused or not sent: %v", err)
			}
			if tt.wantErr {
				if !errors.Is(err, httpcore.ErrInvalidResponse) || httpcore.IsRetryable(err) {
					t.Fatalf("error = %v, want permanent ErrInvalidResponse", err)
				}
				return
			}
			if err != nil || tok.Value != tt.token || !tok.Expires.Equal(tt.expires) {
				t.Fatalf("token %q expiring %v, %v; want %q expiring %v", tok.Value, tok.Expires, err, tt.token, tt.expires)
			}
		})
	}
}

func TestVRA7Describe(t *testing.T) {
	e := newVRA7Env(t, false)
	d := e.client.Describe()
	want := backend.Description{Kind: backend.KindVRA7, BaseURL: e.srv.URL}
	if d != want {
		t.Fatalf("Describe() = %+v, want %+v (no safeguards, connectors or delegation)", d, want)
	}
}

// vra7Recorder is an Observer that keeps the endpoint and status of every attempt.
type vra7Recorder struct {
	mu     sync.Mutex
	seen   []string
	tokens int
}

func (r *vra7Recorder) Request(endpoint string, code int, _ error, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, fmt.Sprintf("%s %d", endpoint, code))
}

func (r *vra7Recorder) TokenIssued() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tokens++
}

func TestVRA7ObserverEndpoints(t *testing.T) {
	rec := &vra7Recorder{}
	e := newVRA7Env(t, false, func(_ *vidmsim.Config, c *httpcore.Config) { c.Observer = rec })
	ctx := t.Context()
	if _, err := e.client.Directories(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.client.StartSync(ctx, vra7Corp, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.SyncStatus(ctx, vra7Corp); err != nil {
		t.Fatal(err)
	}
	want := []string{"login 200", "directories 200", "sync_start 204", "sync_status 200"}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if strings.Join(rec.seen, ", ") != strings.Join(want, ", ") || rec.tokens != 1 {
		t.Fatalf("observer saw %v and %d tokens, want %v and 1", rec.seen, rec.tokens, want)
	}
	if ok, authErr := e.client.AuthState(); ok.IsZero() || authErr != nil {
		t.Fatalf("AuthState = %v, %v; want proven good", ok, authErr)
	}
}

func TestVRA7TLS(t *testing.T) {
	e := newVRA7Env(t, true)
	tests := []struct {
		name    string
		mutate  func(*httpcore.Config)
		wantErr bool
	}{
		{"trusted CA file", func(*httpcore.Config) {}, false},
		{"system roots only", func(c *httpcore.Config) { c.CAFile = "" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.cfg
			tt.mutate(&cfg)
			c := newVRA7Client(t, cfg)
			_, err := c.ResolveDirectory(t.Context(), "Corp AD")
			if tt.wantErr {
				if err == nil || httpcore.IsRetryable(err) || !strings.Contains(err.Error(), "certificate") {
					t.Fatalf("error = %v, want a permanent certificate error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := c.StartSync(t.Context(), vra7Corp, false); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(10 * time.Second)
			if st, err := c.SyncStatus(t.Context(), vra7Corp); err != nil || st.Status != httpcore.StatusCompleted {
				t.Fatalf("status over TLS = %+v, %v; want COMPLETED", st, err)
			}
		})
	}
}

// TestVRA7NoSecretInLogsOrErrors drives the login, a dead token, 401s, retries, a conflict, a
// failed sync and bad credentials with debug logging on, and looks for the password and every
// issued token in the output.
func TestVRA7NoSecretInLogsOrErrors(t *testing.T) {
	e := newVRA7Env(t, false)
	ctx := t.Context()
	var errs []error
	keep := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	_, err := e.client.Directories(ctx)
	keep(err)
	e.sim.ExpireTokens()
	_, err = e.client.SyncStatus(ctx, vra7Corp)
	keep(err)
	e.sim.SetFault(vidmsim.EndpointVRA7SyncStatus, vidmsim.Fault{Status: http.StatusUnauthorized, Times: 2})
	_, err = e.client.SyncStatus(ctx, vra7Corp)
	keep(err)
	e.sim.SetFault(vidmsim.EndpointVRA7SyncStart, vidmsim.Fault{Status: http.StatusServiceUnavailable})
	keep(e.client.StartSync(ctx, vra7Corp, false))
	e.sim.ClearFaults()
	keep(e.sim.StartForeignSync("dir-corp", 5*time.Second))
	keep(e.client.StartSync(ctx, vra7Corp, false))
	e.clock.Advance(5 * time.Second)
	keep(e.sim.SetDirectory(vidmsim.Directory{ID: "dir-corp", Name: "Corp AD", Domains: []string{vra7Corp}, FailMessage: "bind failed"}))
	keep(e.client.StartSync(ctx, vra7Corp, false))
	_, _, err = e.waitAdvancing(ctx, vra7Corp, nil, 5*time.Second)
	keep(err)
	bad := e.cfg
	bad.Password = "wrong-" + vra7Password
	_, err = newVRA7Client(t, bad).Directories(ctx)
	keep(err)

	if len(errs) != 4 {
		t.Fatalf("%d errors (%v), want 4: the repeated 401, the 503s, the conflict and the bad password", len(errs), errs)
	}
	out := e.logs.String()
	for _, err := range errs {
		out += "\n" + err.Error()
	}
	secrets := append([]string{vra7Password}, e.sim.IssuedTokens()...)
	if len(secrets) < 4 {
		t.Fatalf("simulator issued %d tokens, want at least 3", len(secrets)-1)
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Fatalf("secret %.8s… found in logs or errors", s)
		}
	}
	for _, want := range []string{"retrying", "logging in again", `"level":"DEBUG"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("the log lacks %q; the test must exercise it:\n%s", want, out)
		}
	}
}
