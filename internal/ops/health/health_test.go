package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/vidm"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/health"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/fakeclock"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natsdev"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// get serves one request through h and decodes the JSON answer.
func get(t *testing.T, h http.Handler) (int, health.Report) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var rep health.Report
	body, _ := io.ReadAll(rec.Body)
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatalf("answer %q is not JSON: %v", body, err)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	return rec.Code, rep
}

func TestHealthz(t *testing.T) {
	h := health.New(health.Options{Checks: []health.Check{
		{Name: "broken", Run: func(context.Context) error { return errors.New("down") }},
	}})
	rec := httptest.NewRecorder()
	h.Healthz().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
		t.Fatalf("healthz = %d %q; want 200 {\"status\":\"ok\"} whatever readiness says", rec.Code, rec.Body.String())
	}
}

func TestReadyz(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	ok := func(context.Context) error { return nil }
	fail := func(context.Context) error { return errors.New("broker gone") }
	deaf := func(context.Context) error { <-release; return nil } // ignores its context
	tests := []struct {
		name     string
		checks   []health.Check
		wantCode int
		want     map[string]health.CheckResult
	}{
		{"no checks", nil, 200, map[string]health.CheckResult{}},
		{"all pass", []health.Check{{Name: "nats", Run: ok}, {Name: "vidm", Run: ok}}, 200,
			map[string]health.CheckResult{"nats": {OK: true}, "vidm": {OK: true}}},
		{"one fails", []health.Check{{Name: "nats", Run: ok}, {Name: "jetstream", Run: fail}}, 503,
			map[string]health.CheckResult{"nats": {OK: true}, "jetstream": {Error: "broker gone"}}},
		{"one never answers", []health.Check{{Name: "nats", Run: ok}, {Name: "vidm", Run: deaf}}, 503,
			map[string]health.CheckResult{"nats": {OK: true}, "vidm": {Error: "no answer within 100ms: context deadline exceeded"}}},
		{"one panics", []health.Check{{Name: "nats", Run: func(context.Context) error { panic("bug") }}}, 503,
			map[string]health.CheckResult{"nats": {Error: "check panicked: bug"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := health.New(health.Options{Checks: tt.checks, Timeout: 100 * time.Millisecond})
			code, rep := get(t, h.Readyz())
			wantStatus := map[int]string{200: "ready", 503: "not ready"}[tt.wantCode]
			if code != tt.wantCode || rep.Status != wantStatus {
				t.Errorf("readyz = %d %q, want %d %q", code, rep.Status, tt.wantCode, wantStatus)
			}
			if len(rep.Checks) != len(tt.want) {
				t.Errorf("checks %v, want %v", rep.Checks, tt.want)
			}
			for name, w := range tt.want {
				if rep.Checks[name] != w {
					t.Errorf("check %s = %+v, want %+v", name, rep.Checks[name], w)
				}
			}
		})
	}
}

func TestReadyzJSONShape(t *testing.T) {
	h := health.New(health.Options{Checks: []health.Check{
		{Name: "nats", Run: func(context.Context) error { return nil }},
		{Name: "jetstream", Run: func(context.Context) error { return errors.New("x") }},
	}})
	rec := httptest.NewRecorder()
	h.Readyz().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	want := `{"status":"not ready","checks":{"jetstream":{"ok":false,"error":"x"},"nats":{"ok":true}}}`
	if got := strings.TrimSpace(rec.Body.String()); got != want {
		t.Fatalf("body %s\nwant %s", got, want)
	}
}

func TestReadinessFollowsNATS(t *testing.T) {
	srv := natstest.Server(t, natsdev.Options{})
	nc, err := nats.Connect(srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	h := health.New(health.Options{Checks: []health.Check{
		health.NATSConnected(nc),
		health.JetStreamStarting(),
	}})
	ready := h.Readyz()

	code, rep := get(t, ready)
	if code != 503 || rep.Checks["jetstream"].Error != health.ErrNotBound.Error() || !rep.Checks["nats"].OK {
		t.Fatalf("before binding: %d %+v; want 503 with jetstream not bound, nats ok", code, rep)
	}

	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "T", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	h.Set(health.JetStreamBound(cons.Info))
	if code, rep := get(t, ready); code != 200 {
		t.Fatalf("bound and connected: %d %+v, want 200", code, rep)
	}

	srv.Stop()
	poll.Until(t, 10*time.Second, "readyz 503 with NATS down", func() bool {
		code, rep := get(t, ready)
		return code == 503 && !rep.Checks["nats"].OK && strings.HasPrefix(rep.Checks["nats"].Error, "NATS connection is ")
	})

	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "readyz 200 with NATS back", func() bool {
		code, _ := get(t, ready)
		return code == 200
	})
}

func TestJetStreamCheckFailsWhenTheConsumerIsGone(t *testing.T) {
	srv := natstest.Server(t, natsdev.Options{})
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, "T", jetstream.ConsumerConfig{Durable: "c"}); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	check := health.JetStreamBound(func(ctx context.Context) (*jetstream.ConsumerInfo, error) {
		calls.Add(1)
		c, err := js.Consumer(ctx, "T", "c") // a lookup each time: the consumer may have been deleted
		if err != nil {
			return nil, err
		}
		return c.CachedInfo(), nil
	}).Run
	for range 3 {
		if err := check(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("consumer info asked %d times for 3 checks within 5 s, want 1 (cached success)", calls.Load())
	}
	// Deleted by an operator: noticed once the cached success has expired.
	if err := js.DeleteConsumer(ctx, "T", "c"); err != nil {
		t.Fatal(err)
	}
	var err2 error
	poll.Until(t, 15*time.Second, "the check to notice the deleted consumer", func() bool {
		err2 = check(ctx)
		return err2 != nil
	})
	if !errors.Is(err2, jetstream.ErrConsumerNotFound) {
		t.Fatalf("check with the consumer deleted: %v, want ErrConsumerNotFound", err2)
	}
}

const (
	clientID     = "worker"
	clientSecret = "health-test-secret-Qx81-do-not-log"
)

type vidmEnv struct {
	sim    *vidmsim.Server
	client *httpcore.Client
	clock  *fakeclock.Clock
}

// newVIDM starts the simulator on HTTPS and a client on a fake clock, so that the test decides
// when the last proof of good credentials is stale.
func newVIDM(t *testing.T) *vidmEnv {
	t.Helper()
	clock := fakeclock.New(time.Now())
	sim, err := vidmsim.New(vidmsim.Config{
		Directories: []vidmsim.Directory{{ID: "dir-corp", Name: "Corp AD", Domains: []string{"corp.example.com"}}},
		Clients:     []vidmsim.Client{{ID: clientID, Secret: clientSecret}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(sim)
	t.Cleanup(func() { sim.Resume(); srv.Close() })
	c, err := vidm.New(httpcore.Config{
		BaseURL: srv.URL, ClientID: clientID, ClientSecret: clientSecret,
		Transport: srv.Client().Transport, Now: clock.Now,
		Retry: httpcore.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &vidmEnv{sim: sim, client: c, clock: clock}
}

func TestReadinessFollowsVIDM(t *testing.T) {
	const interval = time.Minute
	tests := []struct {
		name    string
		breakIt func(*vidmsim.Server)
		wantErr string
	}{
		{"directory list answers 503", func(s *vidmsim.Server) {
			s.SetFault(vidmsim.EndpointDirectories, vidmsim.Fault{Status: http.StatusServiceUnavailable})
		}, "vIDM unreachable: "},
		{"directory list hangs", func(s *vidmsim.Server) {
			s.SetFault(vidmsim.EndpointDirectories, vidmsim.Fault{Hang: true})
		}, "vIDM unreachable: "},
		{"token endpoint hangs while a new token is needed", func(s *vidmsim.Server) {
			s.ExpireTokens()
			s.SetFault(vidmsim.EndpointOAuthToken, vidmsim.Fault{Hang: true})
		}, "vIDM unreachable: "},
		{"credentials revoked", func(s *vidmsim.Server) {
			s.RevokeTokens()
			s.SetFault(vidmsim.EndpointOAuthToken, vidmsim.Fault{Status: http.StatusUnauthorized})
		}, "vIDM credentials rejected: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newVIDM(t)
			h := health.New(health.Options{Timeout: 300 * time.Millisecond, Checks: []health.Check{
				health.VIDM(e.client, interval, e.clock.Now),
			}})
			ready := h.Readyz()
			if code, rep := get(t, ready); code != 200 {
				t.Fatalf("vIDM healthy: %d %+v, want 200 after a first probe", code, rep)
			}
			lists := e.sim.Requests(vidmsim.EndpointDirectories)
			if code, _ := get(t, ready); code != 200 || e.sim.Requests(vidmsim.EndpointDirectories) != lists {
				t.Fatal("a check within the interval of a proven response probed vIDM again")
			}

			tt.breakIt(e.sim)
			e.clock.Advance(interval + time.Second) // the last proof is now stale
			var rep health.Report
			poll.Until(t, 10*time.Second, "readyz 503 naming the cause", func() bool {
				var code int
				code, rep = get(t, ready)
				return code == 503 && strings.HasPrefix(rep.Checks["vidm"].Error, tt.wantErr)
			})
			if strings.Contains(rep.Checks["vidm"].Error, clientSecret) {
				t.Fatalf("readiness error %q contains the client secret", rep.Checks["vidm"].Error)
			}

			// Failing: no new probe before interval/4, the failure is repeated.
			probes := e.sim.Requests(vidmsim.EndpointDirectories) + e.sim.Requests(vidmsim.EndpointOAuthToken)
			for range 3 {
				if code, again := get(t, ready); code != 503 || again.Checks["vidm"] != rep.Checks["vidm"] {
					t.Fatalf("repeated check: %d %+v, want the same failure", code, again)
				}
			}
			if got := e.sim.Requests(vidmsim.EndpointDirectories) + e.sim.Requests(vidmsim.EndpointOAuthToken); got != probes {
				t.Fatalf("%d requests reached vIDM within interval/4 of a failed probe, want 0", got-probes)
			}

			e.sim.ClearFaults()
			e.sim.Resume()
			e.clock.Advance(interval/4 + time.Second)
			poll.Until(t, 10*time.Second, "readyz 200 with vIDM back", func() bool {
				code, _ := get(t, ready)
				return code == 200
			})
		})
	}
}

func TestVIDMProbesOneAtATime(t *testing.T) {
	e := newVIDM(t)
	if err := e.client.Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.sim.SetFault(vidmsim.EndpointDirectories, vidmsim.Fault{Hang: true})
	e.clock.Advance(2 * time.Minute)
	before := e.sim.Requests(vidmsim.EndpointDirectories)
	check := health.VIDM(e.client, time.Minute, e.clock.Now).Run
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			errs <- check(ctx)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil || !strings.HasPrefix(err.Error(), "vIDM unreachable: ") {
			t.Fatalf("check during a hung probe: %v, want vIDM unreachable", err)
		}
	}
	if got := e.sim.Requests(vidmsim.EndpointDirectories) - before; got != 1 {
		t.Fatalf("20 concurrent checks sent %d probes, want 1", got)
	}
}

func TestVIDMCheckUsesRecentTraffic(t *testing.T) {
	e := newVIDM(t)
	// The worker's own traffic proves the credentials: no probe needed.
	if _, err := e.client.SyncStatus(context.Background(), "dir-corp"); err != nil {
		t.Fatal(err)
	}
	check := health.VIDM(e.client, time.Minute, e.clock.Now).Run
	if err := check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := e.sim.Requests(vidmsim.EndpointDirectories); got != 0 {
		t.Fatalf("%d directory list probes after fresh traffic, want 0", got)
	}
	// Credentials rejected by the worker's own traffic: not ready at once, even within the interval.
	e.sim.RevokeTokens()
	e.sim.SetFault(vidmsim.EndpointOAuthToken, vidmsim.Fault{Status: http.StatusUnauthorized})
	if _, err := e.client.SyncStatus(context.Background(), "dir-corp"); !errors.Is(err, httpcore.ErrUnauthorized) {
		t.Fatalf("SyncStatus with revoked credentials: %v", err)
	}
	if err := check(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "vIDM credentials rejected: ") {
		t.Fatalf("check after the worker's credentials were rejected: %v, want credentials rejected", err)
	}
}

// With several tenants /readyz stays ready while one answers; ?verbose and the observer (the
// dirsync_tenant_up gauge) say which one is down and why.
func TestReadinessPerTenant(t *testing.T) {
	good, bad := newVIDM(t), newVIDM(t)
	bad.sim.SetFault(vidmsim.EndpointDirectories, vidmsim.Fault{Status: http.StatusServiceUnavailable})
	var mu sync.Mutex
	var observed map[string]error
	h := health.New(health.Options{Timeout: 2 * time.Second, Checks: []health.Check{
		health.Backends(func() map[string]health.VIDMState {
			return map[string]health.VIDMState{"good": good.client, "bad": bad.client}
		}, time.Minute, good.clock.Now, func(m map[string]error) { mu.Lock(); observed = m; mu.Unlock() }),
	}})
	rec := httptest.NewRecorder()
	h.Readyz().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz?verbose", nil))
	var rep health.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 200 || !rep.Tenants["good"].OK || rep.Tenants["bad"].OK || !strings.Contains(rep.Tenants["bad"].Error, "vIDM unreachable") {
		t.Fatalf("verbose readiness %d %+v: want ready, tenant bad down with its cause", rec.Code, rep)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(observed) != 2 || observed["good"] != nil || observed["bad"] == nil {
		t.Fatalf("observed %v, want good up and bad down", observed)
	}
	if _, plain := get(t, h.Readyz()); plain.Tenants != nil {
		t.Errorf("plain /readyz lists tenants %+v; only ?verbose does", plain.Tenants)
	}
}
