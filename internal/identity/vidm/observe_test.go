package vidm_test

// The observer and readiness hooks against the simulator over HTTPS: every HTTP attempt is seen
// with its endpoint and status, every token obtained is counted, and AuthState/Probe tell a
// worker whose credentials work from one whose credentials were revoked.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

type observed struct {
	endpoint string
	code     int
	err      error
}

// recorder is a httpcore.Observer that keeps what it hears.
type recorder struct {
	mu       sync.Mutex
	requests []observed
	tokens   int
}

func (r *recorder) Request(endpoint string, code int, err error, d time.Duration) {
	if d < 0 {
		panic("negative request duration")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, observed{endpoint, code, err})
}

func (r *recorder) TokenIssued() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tokens++
}

// count returns how many attempts to endpoint ended with code.
func (r *recorder) count(endpoint string, code int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, o := range r.requests {
		if o.endpoint == endpoint && o.code == code {
			n++
		}
	}
	return n
}

func (r *recorder) tokenCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tokens
}

func withRecorder(rec *recorder, mode httpcore.AuthMode) envOption {
	return withClient(func(c *httpcore.Config) {
		c.Observer = rec
		c.AuthMode = mode
		c.Retry = httpcore.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
	})
}

func TestObserverClassifiesEveryAttempt(t *testing.T) {
	tests := []struct {
		mode      httpcore.AuthMode
		loginName string
	}{
		{httpcore.AuthOAuth, httpcore.EndpointToken},
		{httpcore.AuthSystem, httpcore.EndpointLogin},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			rec := &recorder{}
			e := newSimEnv(t, withRecorder(rec, tt.mode))
			ctx := context.Background()
			if _, err := e.client.Directories(ctx); err != nil {
				t.Fatal(err)
			}
			before, err := e.client.SyncStatus(ctx, "dir-corp")
			if err != nil {
				t.Fatal(err)
			}
			if err := e.client.StartSync(ctx, "dir-corp", false); err != nil {
				t.Fatal(err)
			}
			if _, err := e.client.WaitForSync(ctx, "dir-corp", httpcore.WaitOptions{Before: &before, InitialInterval: 10 * time.Millisecond, Timeout: 10 * time.Second}); err != nil {
				t.Fatal(err)
			}
			// A 503 answered, then an answer that never came (reset): both seen, the second as code 0.
			e.sim.SetFault(vidmsim.EndpointDirectories, vidmsim.Fault{Status: http.StatusServiceUnavailable, Times: 1})
			if err := e.client.Probe(ctx); err != nil {
				t.Fatalf("probe after one 503 (retried): %v", err)
			}
			e.sim.SetFault(vidmsim.EndpointSyncStart, vidmsim.Fault{Reset: true})
			if err := e.client.StartSync(ctx, "dir-corp", false); err == nil {
				t.Fatal("StartSync through resets succeeded")
			}

			want := []struct {
				endpoint string
				code     int
				n        int
			}{
				{tt.loginName, http.StatusOK, 1},
				{httpcore.EndpointDirectories, http.StatusOK, 2},
				{httpcore.EndpointDirectories, http.StatusServiceUnavailable, 1},
				{httpcore.EndpointSyncStart, http.StatusOK, 1},
				{httpcore.EndpointSyncStart, 0, 2},
			}
			for _, w := range want {
				if got := rec.count(w.endpoint, w.code); got != w.n {
					t.Errorf("%s %d: %d attempts observed, want %d (all: %+v)", w.endpoint, w.code, got, w.n, rec.requests)
				}
			}
			if got, polls := rec.count(httpcore.EndpointSyncStatus, http.StatusOK), e.sim.Requests(vidmsim.EndpointSyncStatus); got != polls || got < 2 {
				t.Errorf("sync_status 200: %d observed, simulator answered %d (want equal, >= 2)", got, polls)
			}
			for _, o := range rec.requests {
				if (o.code == 0) != (o.err != nil) {
					t.Errorf("%s: code %d with err %v; want code 0 exactly when no response arrived", o.endpoint, o.code, o.err)
				}
				if o.endpoint == httpcore.EndpointOther {
					t.Errorf("an attempt was classified %q", o.endpoint)
				}
			}
			if rec.tokenCount() != 1 {
				t.Errorf("TokenIssued %d times, want 1", rec.tokenCount())
			}
		})
	}
}

func TestObserverCountsEveryNewToken(t *testing.T) {
	rec := &recorder{}
	e := newSimEnv(t, withRecorder(rec, httpcore.AuthOAuth))
	ctx := context.Background()
	if _, err := e.client.SyncStatus(ctx, "dir-corp"); err != nil {
		t.Fatal(err)
	}
	e.sim.RevokeTokens()
	if _, err := e.client.SyncStatus(ctx, "dir-corp"); err != nil {
		t.Fatal(err)
	}
	if rec.tokenCount() != 2 || e.sim.Logins() != 2 {
		t.Fatalf("TokenIssued %d, simulator logins %d; want 2 and 2", rec.tokenCount(), e.sim.Logins())
	}
	if got := rec.count(httpcore.EndpointSyncStatus, http.StatusUnauthorized); got != 1 {
		t.Fatalf("sync_status 401 observed %d times, want 1", got)
	}
}

func TestAuthStateFollowsCredentials(t *testing.T) {
	for _, mode := range []httpcore.AuthMode{httpcore.AuthOAuth, httpcore.AuthSystem} {
		t.Run(string(mode), func(t *testing.T) {
			e := newSimEnv(t, withRecorder(&recorder{}, mode))
			ctx := context.Background()
			if ok, err := e.client.AuthState(); !ok.IsZero() || err != nil {
				t.Fatalf("AuthState before any call = %v, %v; want zero, nil", ok, err)
			}
			if err := e.client.Probe(ctx); err != nil {
				t.Fatal(err)
			}
			firstOK, err := e.client.AuthState()
			if firstOK.IsZero() || err != nil {
				t.Fatalf("AuthState after a good probe = %v, %v; want a time, nil", firstOK, err)
			}

			// Credentials revoked in vIDM: the token dies and no new one is issued.
			e.sim.RevokeTokens()
			loginEndpoint := vidmsim.EndpointOAuthToken
			if mode == httpcore.AuthSystem {
				loginEndpoint = vidmsim.EndpointSystemLogin
			}
			e.sim.SetFault(loginEndpoint, vidmsim.Fault{Status: http.StatusUnauthorized})
			err = e.client.Probe(ctx)
			if !errors.Is(err, httpcore.ErrUnauthorized) {
				t.Fatalf("probe with revoked credentials: %v, want ErrUnauthorized", err)
			}
			lastOK, authErr := e.client.AuthState()
			if !errors.Is(authErr, httpcore.ErrUnauthorized) || !lastOK.Equal(firstOK) {
				t.Fatalf("AuthState after revocation = %v, %v; want the earlier time and ErrUnauthorized", lastOK, authErr)
			}
			for _, secret := range []string{testClientSecret, testPassword} {
				if strings.Contains(authErr.Error(), secret) {
					t.Fatalf("auth error %q contains a secret", authErr)
				}
			}

			e.sim.ClearFaults()
			if err := e.client.Probe(ctx); err != nil {
				t.Fatalf("probe after the credentials work again: %v", err)
			}
			if lastOK, authErr = e.client.AuthState(); authErr != nil || lastOK.Before(firstOK) {
				t.Fatalf("AuthState after recovery = %v, %v; want a time not before %v, nil", lastOK, authErr, firstOK)
			}
		})
	}
}

func TestTransientTokenRejectionIsNotAnAuthFailure(t *testing.T) {
	e := newSimEnv(t)
	ctx := context.Background()
	if _, err := e.client.SyncStatus(ctx, "dir-corp"); err != nil {
		t.Fatal(err)
	}
	e.sim.ExpireTokens() // a 401 that a new login cures says nothing against the credentials
	if _, err := e.client.SyncStatus(ctx, "dir-corp"); err != nil {
		t.Fatal(err)
	}
	if _, authErr := e.client.AuthState(); authErr != nil {
		t.Fatalf("AuthState error after an expired token was replaced: %v", authErr)
	}
}

func TestProbeBypassesAndRefreshesTheCache(t *testing.T) {
	e := newSimEnv(t)
	ctx := context.Background()
	for range 2 {
		if _, err := e.client.Directories(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.sim.Requests(vidmsim.EndpointDirectories); got != 1 {
		t.Fatalf("directory list requests = %d, want 1 (cached)", got)
	}
	if err := e.sim.SetDirectory(vidmsim.Directory{ID: "dir-new", Name: "New AD", Domains: []string{"new.example.com"}}); err != nil {
		t.Fatal(err)
	}
	if err := e.client.Probe(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.sim.Requests(vidmsim.EndpointDirectories); got != 2 {
		t.Fatalf("directory list requests after Probe = %d, want 2 (uncached)", got)
	}
	d, err := e.client.ResolveDirectory(ctx, "New AD")
	if err != nil || d.ID != "dir-new" {
		t.Fatalf("ResolveDirectory after Probe = %+v, %v; want dir-new from the refreshed cache", d, err)
	}
	if got := e.sim.Requests(vidmsim.EndpointDirectories); got != 2 {
		t.Fatalf("directory list requests = %d, want 2: the probe refreshed the cache", got)
	}
}

func TestProbeGivesUpWithItsContext(t *testing.T) {
	e := newSimEnv(t)
	if err := e.client.Probe(context.Background()); err != nil { // logged in; only the list hangs
		t.Fatal(err)
	}
	e.sim.SetFault(vidmsim.EndpointDirectories, vidmsim.Fault{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := e.client.Probe(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("probe of a hanging vIDM: %v, want DeadlineExceeded", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("probe returned after %s, long after its context ended", waited)
	}
}
