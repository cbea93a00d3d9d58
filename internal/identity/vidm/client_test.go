package vidm_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/vidm"
)

// fakeVIDM is a loose stand-in for the cases the strict simulator has no reason to produce:
// hostile paths, huge or echoing bodies, redirects. It issues tokens and hands everything else to
// the test's handler.
type fakeVIDM struct {
	mu    sync.Mutex
	paths []string
	api   http.HandlerFunc
}

func (f *fakeVIDM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/SAAS/auth/oauthtoken" {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"fake-token","token_type":"Bearer","expires_in":3600}`)
		return
	}
	f.mu.Lock()
	f.paths = append(f.paths, r.URL.EscapedPath())
	f.mu.Unlock()
	f.api(w, r)
}

func (f *fakeVIDM) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.paths...)
}

func newFakeClient(t *testing.T, api http.HandlerFunc, mutate ...func(*httpcore.Config)) (*httpcore.Client, *fakeVIDM) {
	t.Helper()
	f := &fakeVIDM{api: api}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg := httpcore.Config{
		BaseURL: srv.URL, AuthMode: httpcore.AuthOAuth, ClientID: "worker", ClientSecret: "s3cret-client-secret",
		Retry: httpcore.RetryPolicy{MaxAttempts: 2, InitialBackoff: 1, MaxBackoff: 1},
	}
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := vidm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, f
}

func TestDirectoryIDIsOneEscapedSegment(t *testing.T) {
	c, f := newFakeClient(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"status":"COMPLETED"}`)
	})
	const prefix = "/SAAS/jersey/manager/api/connectormanagement/directoryconfigs/"
	tests := []struct{ id, wantSegment string }{
		{"7f2b-11", "7f2b-11"},
		{"a/b", "a%2Fb"},
		{"../../admin", "..%2F..%2Fadmin"},
		{"x?y=1#z", "x%3Fy=1%23z"},
		{"sp ace", "sp%20ace"},
	}
	for _, tt := range tests {
		if _, err := c.SyncStatus(context.Background(), tt.id); err != nil {
			t.Fatalf("SyncStatus(%q): %v", tt.id, err)
		}
		seen := f.seen()
		if got, want := seen[len(seen)-1], prefix+tt.wantSegment+"/syncprofile/sync"; got != want {
			t.Errorf("id %q requested %q, want %q", tt.id, got, want)
		}
	}
	for _, id := range []string{"", ".", ".."} {
		before := len(f.seen())
		if err := c.StartSync(context.Background(), id, false); !errors.Is(err, httpcore.ErrInvalidArgument) {
			t.Errorf("StartSync(%q) = %v, want ErrInvalidArgument", id, err)
		}
		if len(f.seen()) != before {
			t.Errorf("StartSync(%q) sent a request", id)
		}
	}
}

func TestBadResponseBodies(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		retryable bool
	}{
		{"larger than the limit", `{"items":[` + strings.Repeat(`{"directoryId":"x","name":"n"},`, 40000) + `{}]}`, false},
		{"HTML page", `<html><body>Maintenance</body></html>`, true},
		{"empty", ``, true},
		{"no items", `{"elements":[]}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newFakeClient(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, tt.body) })
			_, err := c.Directories(context.Background())
			if !errors.Is(err, httpcore.ErrInvalidResponse) {
				t.Fatalf("Directories error = %v, want ErrInvalidResponse", err)
			}
			if httpcore.IsRetryable(err) != tt.retryable {
				t.Fatalf("IsRetryable = %v, want %v", !tt.retryable, tt.retryable)
			}
		})
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	var elsewhere sync.Mutex
	hit := false
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Lock()
		hit = true
		elsewhere.Unlock()
	}))
	defer other.Close()
	c, _ := newFakeClient(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusFound)
	})
	_, err := c.Directories(context.Background())
	var e *httpcore.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusFound || httpcore.IsRetryable(err) {
		t.Fatalf("error = %v, want a permanent HTTP 302 error", err)
	}
	elsewhere.Lock()
	defer elsewhere.Unlock()
	if hit {
		t.Fatal("the client followed a redirect with its token")
	}
}

func TestServerMessagesAreRedacted(t *testing.T) {
	var logs strings.Builder
	c, _ := newFakeClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"errors":[{"code":"denied","message":"client s3cret-client-secret is not allowed"}]}`)
	}, func(cfg *httpcore.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	_, err := c.Directories(context.Background())
	if err == nil || httpcore.IsRetryable(err) {
		t.Fatalf("error = %v, want a permanent error", err)
	}
	for _, s := range []string{err.Error(), logs.String()} {
		if strings.Contains(s, "s3cret-client-secret") || strings.Contains(s, "fake-token") {
			t.Fatalf("secret leaked: %s", s)
		}
	}
	if !strings.Contains(err.Error(), "[redacted]") || !strings.Contains(err.Error(), "HTTP 403") {
		t.Fatalf("error %q should keep the status and the redacted message", err)
	}
}

func TestCancelledCallIsNotRetryable(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c, _ := newFakeClient(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // the server notices a closed connection only once the body is read
		cancel()
		<-r.Context().Done()
	})
	err := c.StartSync(ctx, "dir-1", false)
	if !errors.Is(err, context.Canceled) || httpcore.IsRetryable(err) {
		t.Fatalf("error = %v, want a permanent context.Canceled", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	ok := httpcore.Config{BaseURL: "https://vidm.example.com", ClientID: "id", ClientSecret: "secret"}
	tests := []struct {
		name   string
		mutate func(*httpcore.Config)
	}{
		{"no scheme", func(c *httpcore.Config) { c.BaseURL = "vidm.example.com" }},
		{"ftp", func(c *httpcore.Config) { c.BaseURL = "ftp://vidm.example.com" }},
		{"no host", func(c *httpcore.Config) { c.BaseURL = "https://" }},
		{"credentials in URL", func(c *httpcore.Config) { c.BaseURL = "https://u:p@vidm.example.com" }},
		{"query", func(c *httpcore.Config) { c.BaseURL = "https://vidm.example.com/?x=1" }},
		{"oauth without secret", func(c *httpcore.Config) { c.ClientSecret = "" }},
		{"system without password", func(c *httpcore.Config) { c.AuthMode = httpcore.AuthSystem; c.Username = "u" }},
		{"unknown auth mode", func(c *httpcore.Config) { c.AuthMode = "kerberos" }},
		{"missing CA file", func(c *httpcore.Config) { c.CAFile = "/nonexistent/ca.pem" }},
		{"CA file without PEM", func(c *httpcore.Config) { c.CAFile = "testdata/not-a-cert.pem" }},
	}
	if _, err := vidm.New(ok); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mutate(&cfg)
			_, err := vidm.New(cfg)
			if !errors.Is(err, httpcore.ErrInvalidArgument) {
				t.Fatalf("New = %v, want ErrInvalidArgument", err)
			}
			if strings.Contains(err.Error(), "secret") && tt.name != "oauth without secret" {
				t.Fatalf("error %q mentions the secret", err)
			}
		})
	}
}

func TestConfigLogValueMasksSecrets(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewJSONHandler(&b, nil))
	log.Info("config", "vidm", httpcore.Config{BaseURL: "https://v", ClientID: "id", ClientSecret: "client-secret-value", Username: "u", Password: "password-value"})
	if strings.Contains(b.String(), "client-secret-value") || strings.Contains(b.String(), "password-value") {
		t.Fatalf("secrets logged: %s", b.String())
	}
	if !strings.Contains(b.String(), `"client_id":"id"`) {
		t.Fatalf("non-secret fields missing: %s", b.String())
	}
}

// TestWaitForSyncSkipsThePreviousResult: right after a POST, a vIDM may still report the previous
// sync's COMPLETED. WaitForSync must wait for the new sync, told apart by vIDM's own start time.
func TestWaitForSyncSkipsThePreviousResult(t *testing.T) {
	answers := []string{
		`{"status":"COMPLETED","syncStartDate":1795428000000,"syncEndDate":1795428060000}`, // previous sync
		`{"status":"COMPLETED","syncStartDate":1795428000000,"syncEndDate":1795428060000}`,
		`{"status":"RUNNING","syncStartDate":1795431600000}`,
		`{"status":"FAILED","syncStartDate":1795431600000,"syncEndDate":1795431660000,"message":"bind failed"}`,
	}
	var mu sync.Mutex
	polls := 0
	c, _ := newFakeClient(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		io.WriteString(w, answers[min(polls, len(answers)-1)])
		polls++
	})
	before, err := httpcore.ParseSyncState([]byte(answers[0]))
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.WaitForSync(context.Background(), "dir-1", httpcore.WaitOptions{
		InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond, Timeout: 5 * time.Second, Before: &before,
	})
	if err != nil || st.Status != httpcore.StatusFailed || st.Message != "bind failed" {
		t.Fatalf("WaitForSync = %+v, %v; want the new sync's FAILED", st, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if polls != 4 {
		t.Fatalf("polled %d times, want 4", polls)
	}
}
