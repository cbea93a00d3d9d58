package naive

// The script against the strict simulator over HTTPS: what it costs vIDM must be exactly what the
// simulator counted, and it must never claim a sync it did not see finish.

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

const (
	testUser     = "sync-admin"
	testPassword = "system-password-Hk27"
)

func startSim(t *testing.T, edit func(*vidmsim.Config)) (*vidmsim.Server, *httptest.Server) {
	t.Helper()
	cfg := vidmsim.Config{
		Directories: []vidmsim.Directory{
			{ID: "dir-corp", Name: "Corp AD", Domains: []string{"corp.example.com", "corp.local"}},
			{ID: "dir-emea", Name: "EMEA AD", Domains: []string{"emea.example.com"}},
			{ID: "dir-system", Name: "System Directory", Type: vidmsim.TypeLocalDirectory},
		},
		Users:        []vidmsim.User{{Username: testUser, Password: testPassword}},
		SyncDuration: 120 * time.Millisecond,
	}
	if edit != nil {
		edit(&cfg)
	}
	sim, err := vidmsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(sim)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(func() { sim.Resume(); srv.Close() })
	return sim, srv
}

func options(srv *httptest.Server, triggers []Trigger, concurrency int) Options {
	return Options{
		BaseURL: srv.URL, HTTPClient: srv.Client(), Username: testUser, Password: testPassword,
		Triggers: triggers, Concurrency: concurrency, PollInterval: 15 * time.Millisecond,
	}
}

func sixTriggers() []Trigger {
	return []Trigger{
		{"corp.example.com", "g1"}, {"emea.example.com", "g2"}, {"CORP.LOCAL", "g3"},
		{"emea.example.com", "g4"}, {"corp.example.com", "g5"}, {"emea.example.com", "g6"},
	}
}

func endpoints() map[string]vidmsim.Endpoint {
	return map[string]vidmsim.Endpoint{
		ReqLogin: vidmsim.EndpointSystemLogin, ReqDirectories: vidmsim.EndpointDirectories,
		ReqSyncStart: vidmsim.EndpointSyncStart, ReqSyncStatus: vidmsim.EndpointSyncStatus,
	}
}

// checkAgainstSim: the script's own counts are the simulator's, request for request.
func checkAgainstSim(t *testing.T, st Stats, sim *vidmsim.Server) {
	t.Helper()
	total := 0
	for kind, ep := range endpoints() {
		if got, want := st.Requests[kind], sim.Requests(ep); got != want {
			t.Errorf("Requests[%s] = %d, simulator counted %d", kind, got, want)
		}
		total += sim.Requests(ep)
	}
	if st.Total != total {
		t.Errorf("Total = %d, simulator counted %d", st.Total, total)
	}
	if sim.Requests(vidmsim.EndpointOAuthToken) != 0 {
		t.Errorf("the script used the OAuth endpoint")
	}
	if got := sim.RequestsByStatus(vidmsim.EndpointSyncStart)[http.StatusConflict]; st.Conflicts != got || sim.RejectedSyncPosts() != got {
		t.Errorf("Conflicts = %d, simulator answered 409 %d times (rejected %d)", st.Conflicts, got, sim.RejectedSyncPosts())
	}
}

// checkSuccessSeen: every success rests on a COMPLETED sync of its directory that finished after
// the script started and before it read the terminal status.
func checkSuccessSeen(t *testing.T, outs []outcome, sim *vidmsim.Server) {
	t.Helper()
	for _, o := range outs {
		if !o.ok() {
			continue
		}
		found := false
		for _, r := range sim.SyncLog() {
			if r.DirectoryID == o.DirectoryID && r.Status == vidmsim.StatusCompleted &&
				!r.FinishedAt.Before(o.Started) && !r.FinishedAt.After(o.Seen) {
				found = true
			}
		}
		if !found {
			t.Errorf("trigger %+v reported success without a sync of %s finishing in its window", o.Trigger, o.DirectoryID)
		}
	}
}

func TestRunCountsMatchSimulator(t *testing.T) {
	for _, tc := range []struct {
		name        string
		concurrency int
	}{{"one at a time", 1}, {"all at once", 0}, {"three at once", 3}} {
		t.Run(tc.name, func(t *testing.T) {
			sim, srv := startSim(t, nil)
			triggers := sixTriggers()
			st, outs, err := run(context.Background(), options(srv, triggers, tc.concurrency))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", st)
			n := len(triggers)
			if st.Failed != 0 {
				t.Fatalf("Failed = %d, want 0: %+v", st.Failed, outs)
			}
			// Each script logs in, lists and POSTs exactly once, and polls at least once.
			for _, kind := range []string{ReqLogin, ReqDirectories, ReqSyncStart} {
				if st.Requests[kind] != n {
					t.Errorf("Requests[%s] = %d, want %d (one per trigger)", kind, st.Requests[kind], n)
				}
			}
			if st.Requests[ReqSyncStatus] < n {
				t.Errorf("Requests[sync_status] = %d, want at least %d", st.Requests[ReqSyncStatus], n)
			}
			checkAgainstSim(t, st, sim)
			if got := len(sim.SyncLog()) + st.Conflicts; got != n {
				t.Errorf("syncs run %d + conflicts %d != %d triggers", len(sim.SyncLog()), st.Conflicts, n)
			}
			if tc.concurrency == 1 && st.Conflicts != 0 {
				t.Errorf("one script at a time had %d conflicts; each waits for its sync to end", st.Conflicts)
			}
			conflicts := 0
			for _, o := range outs {
				if o.Conflict {
					conflicts++
				}
			}
			if conflicts != st.Conflicts {
				t.Errorf("outcomes have %d conflicts, Stats %d", conflicts, st.Conflicts)
			}
			checkSuccessSeen(t, outs, sim)
			for _, id := range []string{"dir-corp", "dir-emea"} {
				if m := sim.MaxConcurrentSyncs(id); m > 1 {
					t.Errorf("%s ran %d syncs at once", id, m)
				}
			}
			if st.Duration <= 0 {
				t.Errorf("Duration = %v", st.Duration)
			}
		})
	}
}

func TestRunNeverClaimsUnseenSuccess(t *testing.T) {
	tests := []struct {
		name     string
		sim      func(*vidmsim.Config)
		setup    func(*vidmsim.Server)
		opts     func(*Options)
		timeout  time.Duration
		failed   int
		requests map[string]int // exact, when set
	}{
		{
			name: "failing directory",
			sim: func(c *vidmsim.Config) {
				c.Directories[1].FailMessage = "LDAP bind failed"
			},
			failed: 3, // the three emea triggers
		},
		{
			name: "safeguard violation",
			sim: func(c *vidmsim.Config) {
				c.Directories[0].SafeguardViolation = true
			},
			failed: 3, // the three corp triggers
		},
		{
			name:     "wrong password",
			opts:     func(o *Options) { o.Password = "wrong" },
			failed:   6,
			requests: map[string]int{ReqLogin: 6, ReqDirectories: 0, ReqSyncStart: 0, ReqSyncStatus: 0},
		},
		{
			name:     "unknown domain",
			opts:     func(o *Options) { o.Triggers = []Trigger{{"nowhere.example.com", "g"}} },
			failed:   1,
			requests: map[string]int{ReqLogin: 1, ReqDirectories: 1, ReqSyncStart: 0, ReqSyncStatus: 0},
		},
		{
			name: "status endpoint down",
			setup: func(s *vidmsim.Server) {
				s.SetFault(vidmsim.EndpointSyncStatus, vidmsim.Fault{Status: http.StatusServiceUnavailable})
			},
			failed: 6,
		},
		// The two context cases end the scripts where no request is on its way (asleep, or
		// waiting for an answer the simulator has counted), so the counts stay exact.
		{
			name:     "sync outlasts the context",
			sim:      func(c *vidmsim.Config) { c.SyncDuration = time.Hour },
			opts:     func(o *Options) { o.PollInterval = time.Minute },
			timeout:  time.Second,
			failed:   6,
			requests: map[string]int{ReqLogin: 6, ReqDirectories: 6, ReqSyncStart: 6, ReqSyncStatus: 0},
		},
		{
			name:     "status answer never comes",
			setup:    func(s *vidmsim.Server) { s.SetFault(vidmsim.EndpointSyncStatus, vidmsim.Fault{Hang: true}) },
			timeout:  time.Second,
			failed:   6,
			requests: map[string]int{ReqLogin: 6, ReqDirectories: 6, ReqSyncStart: 6, ReqSyncStatus: 6},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, srv := startSim(t, tt.sim)
			if tt.setup != nil {
				tt.setup(sim)
			}
			o := options(srv, sixTriggers(), 0)
			if tt.opts != nil {
				tt.opts(&o)
			}
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			st, outs, err := run(ctx, o)
			if tt.timeout > 0 {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err = %v, want the context's deadline", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if st.Failed != tt.failed {
				t.Errorf("Failed = %d, want %d: %+v", st.Failed, tt.failed, outs)
			}
			for k, want := range tt.requests {
				if st.Requests[k] != want {
					t.Errorf("Requests[%s] = %d, want %d", k, st.Requests[k], want)
				}
			}
			checkAgainstSim(t, st, sim)
			checkSuccessSeen(t, outs, sim)
			for _, o := range outs {
				if !o.ok() && o.Status == "" && o.Err == nil {
					t.Errorf("%+v: failed without a reason", o.Trigger)
				}
			}
		})
	}
}

func TestRunRefusesMissingBaseURL(t *testing.T) {
	if _, err := Run(context.Background(), Options{}); err == nil {
		t.Fatal("Run without BaseURL: no error")
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		body, want string
		wantErr    bool
	}{
		{`{"directoryId":"d","status":"RUNNING","syncEndDate":null}`, "RUNNING", false},
		{`{"Status":"completed"}`, "COMPLETED", false},
		{`{"syncStatus":{"status":"FAILED"}}`, "FAILED", false},
		{`{"syncState":" running "}`, "RUNNING", false},
		{`{"progressStatus":"COMPLETED","x":1}`, "COMPLETED", false},
		{`{"directoryId":"d"}`, "", true},
		{`null`, "", true},
		{`<html>`, "", true},
	}
	for _, tt := range tests {
		got, err := parseStatus([]byte(tt.body))
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseStatus(%s) = %q, %v; want %q, error %v", tt.body, got, err, tt.want, tt.wantErr)
		}
	}
}

// A sync already running (vIDM's scheduler started it) refuses the POST; the script waits for that
// sync to end instead of reporting success at once or giving up.
func TestRunWaitsForTheRunningSyncAfterConflict(t *testing.T) {
	sim, srv := startSim(t, nil)
	// Long enough to still run when the script's POST comes after its login and directory list
	// on a busy machine (at 200 ms it sometimes ended first, and there was no conflict to see).
	if err := sim.StartForeignSync("dir-corp", 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	st, outs, err := run(context.Background(), options(srv, []Trigger{{"corp.example.com", "g1"}}, 1))
	if err != nil {
		t.Fatal(err)
	}
	if st.Conflicts != 1 || st.Failed != 0 || !outs[0].Conflict {
		t.Fatalf("stats %+v, outcome %+v; want one conflict and a success", st, outs[0])
	}
	log := sim.SyncLog()
	if len(log) != 1 || !log[0].Foreign || outs[0].Seen.Before(log[0].FinishedAt) {
		t.Fatalf("sync log %+v; the script must have seen the foreign sync end (seen at %v)", log, outs[0].Seen)
	}
	if st.Requests[ReqSyncStatus] < 2 {
		t.Errorf("sync_status = %d; a 1.5 s sync polled every 15 ms needs several polls", st.Requests[ReqSyncStatus])
	}
	checkAgainstSim(t, st, sim)
}
