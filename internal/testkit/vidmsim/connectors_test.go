package vidmsim_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// connectorStatus is the poll answer's connector part, read from the raw body so that a missing
// "attempts" key is told apart from an empty one.
type connectorStatus struct {
	Status    string            `json:"status"`
	Message   string            `json:"message"`
	Connector *string           `json:"connector"`
	Attempts  []vidmsim.Attempt `json:"attempts"`
	raw       map[string]json.RawMessage
}

func (e *env) connectorStatus(tok, id string) connectorStatus {
	e.t.Helper()
	r := e.do(http.MethodGet, syncPath(id), "", "Authorization", "Bearer "+tok, "Accept", mediaV1)
	if r.status != http.StatusOK {
		e.t.Fatalf("sync status: %d %s", r.status, r.body)
	}
	var st connectorStatus
	mustUnmarshal(e.t, r.body, &st)
	mustUnmarshal(e.t, r.body, &st.raw)
	return st
}

func unavailable(c string) vidmsim.Attempt {
	return vidmsim.Attempt{Connector: c, Status: vidmsim.StatusFailed, Message: "connector " + c + " unavailable"}
}

func TestSyncConnectorFailover(t *testing.T) {
	tests := []struct {
		name          string
		dir           vidmsim.Directory
		wantConnector string // "" when no connector could run it
		wantAttempts  []vidmsim.Attempt
		wantStatus    string // final
		wantMessage   string // contained in the final message
		wantRunning   bool   // the sync is RUNNING until its duration passes
	}{
		{
			name:          "no sync connectors list: as before 19.03",
			dir:           vidmsim.Directory{ID: corpID, Name: "Corp AD"},
			wantConnector: "connector-1", wantStatus: vidmsim.StatusCompleted, wantRunning: true,
		},
		{
			name:          "down connectors without a list are ignored",
			dir:           vidmsim.Directory{ID: corpID, Name: "Corp AD", DownConnectors: []string{"connector-1"}},
			wantConnector: "connector-1", wantStatus: vidmsim.StatusCompleted, wantRunning: true,
		},
		{
			name:          "first connector up: no failover, no attempts",
			dir:           vidmsim.Directory{ID: corpID, Name: "Corp AD", Connectors: []string{"c1", "c2"}, DownConnectors: []string{"c2"}},
			wantConnector: "c1", wantStatus: vidmsim.StatusCompleted, wantRunning: true,
		},
		{
			name:          "first down: fails over to the second",
			dir:           vidmsim.Directory{ID: corpID, Name: "Corp AD", Connectors: []string{"c1", "c2", "c3"}, DownConnectors: []string{"c1"}},
			wantConnector: "c2",
			wantAttempts:  []vidmsim.Attempt{unavailable("c1"), {Connector: "c2", Status: vidmsim.StatusCompleted}},
			wantStatus:    vidmsim.StatusCompleted, wantRunning: true,
		},
		{
			name:          "failover order is the list's, not the down list's",
			dir:           vidmsim.Directory{ID: corpID, Name: "Corp AD", Connectors: []string{"c3", "c1", "c2"}, DownConnectors: []string{"c1", "c3"}},
			wantConnector: "c2",
			wantAttempts:  []vidmsim.Attempt{unavailable("c3"), unavailable("c1"), {Connector: "c2", Status: vidmsim.StatusCompleted}},
			wantStatus:    vidmsim.StatusCompleted, wantRunning: true,
		},
		{
			name: "failover, then the directory's own failure",
			dir: vidmsim.Directory{ID: corpID, Name: "Corp AD", Connectors: []string{"c1", "c2"}, DownConnectors: []string{"c1"},
				FailMessage: "LDAP bind failed"},
			wantConnector: "c2",
			wantAttempts:  []vidmsim.Attempt{unavailable("c1"), {Connector: "c2", Status: vidmsim.StatusFailed, Message: "LDAP bind failed"}},
			wantStatus:    vidmsim.StatusFailed, wantMessage: "LDAP bind failed", wantRunning: true,
		},
		{
			name:         "all down: fails at once, naming them",
			dir:          vidmsim.Directory{ID: corpID, Name: "Corp AD", Connectors: []string{"c1", "c2"}, DownConnectors: []string{"c2", "c1"}},
			wantAttempts: []vidmsim.Attempt{unavailable("c1"), unavailable("c2")},
			wantStatus:   vidmsim.StatusFailed, wantMessage: "c1, c2",
		},
	}
	for _, tt := range tests {
		for _, flavor := range []vidmsim.Flavor{vidmsim.FlavorVIDM, vidmsim.FlavorVRACloud} {
			t.Run(string(flavor)+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t, func(c *vidmsim.Config) {
					c.Flavor = flavor
					c.RefreshTokens = []string{apiToken}
					c.Directories = []vidmsim.Directory{tt.dir}
				})
				tok := e.flavorToken(flavor)
				if r := e.startSync(tok, corpID, false); r.status != http.StatusOK {
					t.Fatalf("start: %d %s", r.status, r.body)
				}
				if tt.wantRunning {
					st := e.connectorStatus(tok, corpID)
					want := runningAttempts(tt.wantAttempts)
					if st.Status != vidmsim.StatusRunning || !reflect.DeepEqual(st.Attempts, want) || deref(st.Connector) != tt.wantConnector {
						t.Fatalf("while running: %+v; want RUNNING on %q with attempts %+v", st, tt.wantConnector, want)
					}
					e.clock.Advance(10 * time.Second)
				}
				st := e.connectorStatus(tok, corpID)
				if st.Status != tt.wantStatus || !strings.Contains(st.Message, tt.wantMessage) {
					t.Fatalf("final: %+v; want %s with message containing %q", st, tt.wantStatus, tt.wantMessage)
				}
				if !reflect.DeepEqual(st.Attempts, tt.wantAttempts) {
					t.Fatalf("attempts = %+v, want %+v", st.Attempts, tt.wantAttempts)
				}
				if _, has := st.raw["attempts"]; has != (tt.wantAttempts != nil) {
					t.Fatalf("body has an attempts key: %v, want %v (only after a failover)", has, tt.wantAttempts != nil)
				}
				if tt.wantConnector == "" {
					if st.Connector != nil {
						t.Fatalf("connector = %q although none ran the sync", *st.Connector)
					}
				} else if deref(st.Connector) != tt.wantConnector {
					t.Fatalf("connector = %q, want %q", deref(st.Connector), tt.wantConnector)
				}
				log := e.sim.SyncLog()
				if len(log) != 1 || log[0].Connector != tt.wantConnector || !reflect.DeepEqual(log[0].Attempts, tt.wantAttempts) {
					t.Fatalf("sync log = %+v", log)
				}
			})
		}
	}
}

// runningAttempts is the attempts list while the sync runs: the last attempt is RUNNING.
func runningAttempts(final []vidmsim.Attempt) []vidmsim.Attempt {
	if len(final) == 0 {
		return nil
	}
	out := append([]vidmsim.Attempt(nil), final...)
	out[len(out)-1].Status, out[len(out)-1].Message = vidmsim.StatusRunning, ""
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// flavorToken logs in the way the flavor allows.
func (e *env) flavorToken(f vidmsim.Flavor) string {
	e.t.Helper()
	if f != vidmsim.FlavorVRACloud {
		return e.token()
	}
	r := e.authorize(apiToken)
	if r.status != http.StatusOK {
		e.t.Fatalf("authorize: %d %s", r.status, r.body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	mustUnmarshal(e.t, r.body, &tok)
	return tok.AccessToken
}

// A connector going down or coming back affects the next sync, never the one under way.
func TestSetConnectorDown(t *testing.T) {
	e := newEnv(t, func(c *vidmsim.Config) {
		c.Directories = []vidmsim.Directory{{ID: corpID, Name: "Corp AD", Connectors: []string{"c1", "c2"}}}
	})
	tok := e.token()
	sync := func() {
		t.Helper()
		if r := e.startSync(tok, corpID, false); r.status != http.StatusOK {
			t.Fatalf("start: %d %s", r.status, r.body)
		}
	}
	sync()
	if err := e.sim.SetConnectorDown(corpID, "c1", true); err != nil {
		t.Fatal(err)
	}
	if st := e.connectorStatus(tok, corpID); deref(st.Connector) != "c1" || st.Attempts != nil {
		t.Fatalf("running sync rewritten by SetConnectorDown: %+v", st)
	}
	e.clock.Advance(10 * time.Second)
	sync()
	st := e.connectorStatus(tok, corpID)
	if deref(st.Connector) != "c2" || !reflect.DeepEqual(st.Attempts, []vidmsim.Attempt{unavailable("c1"), {Connector: "c2", Status: vidmsim.StatusRunning}}) {
		t.Fatalf("second sync: %+v, want a failover to c2", st)
	}
	logBefore := e.sim.SyncLog()
	if err := e.sim.SetConnectorDown(corpID, "c2", true); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(10 * time.Second)
	// The record handed out earlier is not changed by the run finishing.
	if logBefore[1].Attempts[1].Status != vidmsim.StatusRunning {
		t.Fatalf("a record handed out was modified: %+v", logBefore[1])
	}
	sync()
	if st := e.connectorStatus(tok, corpID); st.Status != vidmsim.StatusFailed || st.Connector != nil || len(st.Attempts) != 2 {
		t.Fatalf("third sync with both down: %+v", st)
	}
	if err := e.sim.SetConnectorDown(corpID, "c1", false); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetConnectorDown(corpID, "c1", false); err != nil { // idempotent
		t.Fatal(err)
	}
	sync() // the failed one ended at once, so this starts without waiting
	if st := e.connectorStatus(tok, corpID); deref(st.Connector) != "c1" || st.Attempts != nil {
		t.Fatalf("fourth sync with c1 back: %+v", st)
	}
	log := e.sim.SyncLog()
	got := make([]string, len(log))
	for i, r := range log {
		got[i] = r.Connector + ":" + r.Status
	}
	if want := []string{"c1:COMPLETED", "c2:COMPLETED", ":FAILED", "c1:RUNNING"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("sync log = %v, want %v", got, want)
	}

	for _, bad := range []struct{ dir, conn string }{{"dir-nope", "c1"}, {corpID, "c9"}, {corpID, ""}} {
		if err := e.sim.SetConnectorDown(bad.dir, bad.conn, true); err == nil {
			t.Errorf("SetConnectorDown(%q, %q) succeeded", bad.dir, bad.conn)
		}
	}
}

func TestDirectoryListSyncConnectors(t *testing.T) {
	e := newEnv(t, func(c *vidmsim.Config) {
		c.Directories = []vidmsim.Directory{
			{ID: corpID, Name: "Corp AD", Connectors: []string{"c2", "c1"}, DownConnectors: []string{"c2"}},
			{ID: "dir-plain", Name: "Plain"},
		}
	})
	r := e.listDirs(e.token())
	if r.status != http.StatusOK {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	var list struct {
		Items []map[string]json.RawMessage `json:"items"`
	}
	mustUnmarshal(t, r.body, &list)
	if len(list.Items) != 2 {
		t.Fatalf("items = %s", r.body)
	}
	if got := string(list.Items[0]["syncConnectors"]); got != `[{"name":"c2"},{"name":"c1"}]` {
		t.Fatalf("syncConnectors = %s, want both in failover order (down ones too)", got)
	}
	if _, has := list.Items[1]["syncConnectors"]; has {
		t.Fatalf("a directory without a list has syncConnectors: %s", r.body)
	}
}
