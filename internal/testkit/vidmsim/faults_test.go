package vidmsim_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

func TestFaultStatusTimes(t *testing.T) {
	tests := []struct {
		name       string
		fault      vidmsim.Fault
		wantStatus int
		wantRetry  string
		wantCode   string
	}{
		{"503 with Retry-After rounded up", vidmsim.Fault{Status: 503, RetryAfter: 1500 * time.Millisecond, Times: 2}, 503, "2", "service.unavailable"},
		{"429 whole seconds", vidmsim.Fault{Status: 429, RetryAfter: 3 * time.Second, Times: 2}, 429, "3", "request.throttled"},
		{"500 without Retry-After", vidmsim.Fault{Status: 500, Times: 2}, 500, "", "server.error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			tok := e.token()
			e.sim.SetFault(vidmsim.EndpointDirectories, tc.fault)
			for i := range 2 {
				r := e.listDirs(tok)
				if r.status != tc.wantStatus || r.header.Get("Retry-After") != tc.wantRetry || r.errorCode() != tc.wantCode {
					t.Fatalf("request %d: %d Retry-After %q %s", i, r.status, r.header.Get("Retry-After"), r.body)
				}
			}
			if r := e.listDirs(tok); r.status != http.StatusOK {
				t.Fatalf("after the fault is spent: %d", r.status)
			}
			got := e.sim.RequestsByStatus(vidmsim.EndpointDirectories)
			if got[tc.wantStatus] != 2 || got[200] != 1 || e.sim.Requests(vidmsim.EndpointDirectories) != 3 {
				t.Errorf("RequestsByStatus = %v", got)
			}
		})
	}
}

// TestFaultBeforeChecks: faults hit before routing checks, and only their endpoint.
func TestFaultBeforeChecks(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	e.sim.SetFault(vidmsim.EndpointSyncStart, vidmsim.Fault{Status: 500})
	if r := e.do(http.MethodPost, syncPath("nope"), "garbage"); r.status != 500 {
		t.Fatalf("unauthenticated POST to unknown directory: %d, want the fault's 500", r.status)
	}
	if st := e.syncStatus(tok, corpID); st.Status != "UNDEFINED" {
		t.Fatalf("GET on the same path is another endpoint: %s", st.Status)
	}
	e.sim.ClearFaults()
	if r := e.startSync(tok, corpID, false); r.status != http.StatusOK {
		t.Fatalf("after ClearFaults: %d", r.status)
	}
	if e.sim.Requests(vidmsim.EndpointSyncStart) != 2 {
		t.Errorf("Requests = %d", e.sim.Requests(vidmsim.EndpointSyncStart))
	}
}

func TestFaultReset(t *testing.T) {
	tests := []struct {
		name  string
		start func(h http.Handler) *httptest.Server
	}{
		{"http", httptest.NewServer},
		{"tls", httptest.NewTLSServer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim, err := vidmsim.New(vidmsim.ExampleConfig())
			if err != nil {
				t.Fatal(err)
			}
			srv := tc.start(sim)
			t.Cleanup(srv.Close)
			sim.SetFault(vidmsim.EndpointOAuthToken, vidmsim.Fault{Reset: true, Times: 1})
			c := srv.Client()
			c.Transport.(*http.Transport).DisableKeepAlives = true // a fresh connection: no transparent retry
			e := &env{t: t, sim: sim, srv: srv}
			r, err := e.send(c, http.MethodPost, pathOAuth+"?grant_type=client_credentials", "",
				"Authorization", basic(clientID, clientSecret), "Content-Type", mediaForm)
			if err == nil {
				t.Fatalf("reset: got a response %d", r.status)
			}
			// The client may see the reset before the handler has recorded it.
			poll.Until(t, 5*time.Second, "the reset to be recorded as status 0", func() bool {
				return sim.RequestsByStatus(vidmsim.EndpointOAuthToken)[0] == 1
			})
			r, err = e.send(c, http.MethodPost, pathOAuth+"?grant_type=client_credentials", "",
				"Authorization", basic(clientID, clientSecret), "Content-Type", mediaForm)
			if err != nil || r.status != http.StatusOK {
				t.Fatalf("after the reset: %v %d", err, r.status)
			}
		})
	}
}

func TestFaultResetHTTP2(t *testing.T) {
	sim, err := vidmsim.New(vidmsim.ExampleConfig())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(sim)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	sim.SetFault(vidmsim.EndpointDirectories, vidmsim.Fault{Reset: true})
	e := &env{t: t, sim: sim, srv: srv}
	if _, err := e.send(srv.Client(), http.MethodGet, pathDirs, ""); err == nil {
		t.Fatal("HTTP/2 reset: got a response")
	}
	poll.Until(t, 5*time.Second, "the reset to be recorded as status 0", func() bool {
		return sim.RequestsByStatus(vidmsim.EndpointDirectories)[0] == 1
	})
}

func TestFaultHang(t *testing.T) {
	t.Run("released by Resume", func(t *testing.T) {
		e := newEnv(t, nil)
		tok := e.token()
		e.sim.SetFault(vidmsim.EndpointDirectories, vidmsim.Fault{Hang: true})
		done := make(chan response, 2)
		for range 2 {
			go func() {
				r, err := e.send(e.srv.Client(), http.MethodGet, pathDirs, "", "Authorization", "Bearer "+tok, "Accept", mediaList)
				if err != nil {
					r.status = -1
				}
				done <- r
			}()
		}
		poll.Until(t, 5*time.Second, "both requests to arrive", func() bool { return e.sim.Requests(vidmsim.EndpointDirectories) == 2 })
		select {
		case r := <-done:
			t.Fatalf("answered while hung: %d", r.status)
		default:
		}
		e.sim.Resume()
		for range 2 {
			if r := <-done; r.status != http.StatusOK {
				t.Fatalf("after Resume: %d", r.status)
			}
		}
		if r := e.listDirs(tok); r.status != http.StatusOK { // Resume turned Hang off
			t.Fatalf("next request: %d", r.status)
		}
	})
	t.Run("then status", func(t *testing.T) {
		e := newEnv(t, nil)
		e.sim.SetFault(vidmsim.EndpointSystemLogin, vidmsim.Fault{Hang: true, Status: 502, Times: 1})
		done := make(chan int, 1)
		go func() {
			r, err := e.send(e.srv.Client(), http.MethodPost, pathLogin, "{}")
			if err != nil {
				r.status = -1
			}
			done <- r.status
		}()
		poll.Until(t, 5*time.Second, "the request to arrive", func() bool { return e.sim.Requests(vidmsim.EndpointSystemLogin) == 1 })
		e.sim.Resume()
		if got := <-done; got != 502 {
			t.Fatalf("status = %d, want 502", got)
		}
	})
	t.Run("released by request cancel", func(t *testing.T) {
		e := newEnv(t, nil)
		e.sim.SetFault(vidmsim.EndpointDirectories, vidmsim.Fault{Hang: true})
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+pathDirs, nil)
			resp, err := e.srv.Client().Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		poll.Until(t, 5*time.Second, "the request to arrive", func() bool { return e.sim.Requests(vidmsim.EndpointDirectories) == 1 })
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("client error = %v", err)
		}
		// The handler has left its wait once it has recorded the (empty) answer.
		poll.Until(t, 5*time.Second, "the handler to return", func() bool {
			return e.sim.RequestsByStatus(vidmsim.EndpointDirectories)[0] == 1
		})
	})
}

func TestFaultLatency(t *testing.T) {
	const latency = 50 * time.Millisecond
	e := newEnv(t, nil)
	tok := e.token()
	e.sim.SetFault(vidmsim.EndpointDirectories, vidmsim.Fault{Latency: latency, Times: 1})
	start := time.Now()
	if r := e.listDirs(tok); r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	if d := time.Since(start); d < latency {
		t.Fatalf("took %v, want >= %v", d, latency)
	}
	e.sim.SetFault(vidmsim.EndpointDirectories, vidmsim.Fault{Latency: latency, Status: 503})
	start = time.Now()
	if r := e.listDirs(tok); r.status != 503 || time.Since(start) < latency {
		t.Fatalf("latency+status: %d after %v", r.status, time.Since(start))
	}
}

func TestFaultRateReproducible(t *testing.T) {
	run := func(seed int64) []int {
		e := newEnv(t, func(c *vidmsim.Config) { c.Seed = seed })
		tok := e.token()
		e.sim.SetFault(vidmsim.EndpointDirectories, vidmsim.Fault{Status: 500, Rate: 0.5})
		var got []int
		for range 40 {
			got = append(got, e.listDirs(tok).status)
		}
		return got
	}
	a, b, c := run(42), run(42), run(7)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different outcomes:\n%v\n%v", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("different seeds, same outcomes: %v", a)
	}
	fails := 0
	for _, s := range a {
		if s == 500 {
			fails++
		}
	}
	if fails < 8 || fails > 32 {
		t.Errorf("%d of 40 failed at rate 0.5: %v", fails, a)
	}
}

func TestFaultRateWithTimes(t *testing.T) {
	e := newEnv(t, func(c *vidmsim.Config) { c.Seed = 1 })
	tok := e.token()
	e.sim.SetFault(vidmsim.EndpointDirectories, vidmsim.Fault{Status: 500, Rate: 0.3, Times: 3})
	for range 200 {
		e.listDirs(tok)
	}
	if got := e.sim.RequestsByStatus(vidmsim.EndpointDirectories); got[500] != 3 || got[200] != 197 {
		t.Fatalf("RequestsByStatus = %v, want exactly 3 failures", got)
	}
}
