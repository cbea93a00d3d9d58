package vidm_test

// Sync connectors (vIDM 19.03+, reference 003): a directory's connectors in failover order, and
// which connectors a sync was tried on, read from the directory list and the sync status.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/systems"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/vidm"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/fakeclock"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/identitytest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

func connUnavailable(c string) contract.Attempt {
	return contract.Attempt{Connector: c, Status: "FAILED", Message: "connector " + c + " unavailable"}
}

func TestSyncConnectorsThroughClient(t *testing.T) {
	tests := []struct {
		name          string
		connectors    []string
		down          []string
		wantConnector string
		wantAttempts  []contract.Attempt // final
		wantStatus    httpcore.Status
		wantMessage   string
	}{
		{"no sync connectors list: unchanged", nil, nil, "connector-1", nil, httpcore.StatusCompleted, ""},
		{"first connector up: no attempts", []string{"c1", "c2"}, nil, "c1", nil, httpcore.StatusCompleted, ""},
		{"c1 down: ran on c2", []string{"c1", "c2"}, []string{"c1"}, "c2",
			[]contract.Attempt{connUnavailable("c1"), {Connector: "c2", Status: "COMPLETED"}}, httpcore.StatusCompleted, ""},
		{"all down: FAILED with an attempt for each", []string{"c1", "c2", "c3"}, []string{"c1", "c2", "c3"}, "",
			[]contract.Attempt{connUnavailable("c1"), connUnavailable("c2"), connUnavailable("c3")}, httpcore.StatusFailed, "c1, c2, c3"},
	}
	for _, tt := range tests {
		for _, kind := range []backend.Kind{backend.KindVIDM, backend.KindVRACloud} {
			t.Run(string(kind)+"/"+tt.name, func(t *testing.T) {
				clock := fakeclock.New(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
				dir := vidmsim.Directory{ID: "dir-corp", Name: "Corp AD", Domains: []string{"corp.example.com"},
					Connectors: tt.connectors, DownConnectors: tt.down}
				c := connectorsClient(t, kind, clock, dir)
				ctx := context.Background()
				dirs, err := c.Directories(ctx)
				if err != nil || len(dirs) != 1 || !reflect.DeepEqual(dirs[0].Connectors, tt.connectors) {
					t.Fatalf("Directories = %+v, %v; want connectors %v", dirs, err, tt.connectors)
				}
				if err := c.StartSync(ctx, "dir-corp", false); err != nil {
					t.Fatalf("StartSync: %v", err)
				}
				st, err := c.SyncStatus(ctx, "dir-corp")
				if err != nil {
					t.Fatal(err)
				}
				if tt.wantStatus != httpcore.StatusFailed {
					// While running, the last attempt is RUNNING on the connector doing the work.
					want := running(tt.wantAttempts)
					if st.Status != httpcore.StatusRunning || st.Connector != tt.wantConnector || !reflect.DeepEqual(st.Attempts, want) {
						t.Fatalf("running: %+v; want RUNNING on %q with %+v", st, tt.wantConnector, want)
					}
					clock.Advance(time.Minute)
					if st, err = c.SyncStatus(ctx, "dir-corp"); err != nil {
						t.Fatal(err)
					}
				}
				if st.Status != tt.wantStatus || st.Connector != tt.wantConnector || !reflect.DeepEqual(st.Attempts, tt.wantAttempts) ||
					!strings.Contains(st.Message, tt.wantMessage) {
					t.Fatalf("final: %+v; want %s on %q with %+v, message containing %q",
						st, tt.wantStatus, tt.wantConnector, tt.wantAttempts, tt.wantMessage)
				}
			})
		}
	}
}

func running(final []contract.Attempt) []contract.Attempt {
	if final == nil {
		return nil
	}
	out := append([]contract.Attempt(nil), final...)
	out[len(out)-1].Status = "RUNNING"
	return out
}

// connectorsClient is a client of kind against a plain simulator of that flavor with one directory.
func connectorsClient(t *testing.T, kind backend.Kind, clock *fakeclock.Clock, dir vidmsim.Directory) *httpcore.Client {
	t.Helper()
	simCfg := vidmsim.Config{Directories: []vidmsim.Directory{dir}, SyncDuration: time.Minute, Now: clock.Now,
		Clients: []vidmsim.Client{{ID: testClientID, Secret: testClientSecret}}}
	if kind == backend.KindVRACloud {
		simCfg.Flavor, simCfg.RefreshTokens = vidmsim.FlavorVRACloud, []string{identitytest.CloudAPIToken}
	}
	sim, err := vidmsim.New(simCfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := newLoopbackServer(t, sim)
	cfg := httpcore.Config{Kind: kind, BaseURL: srv, ClientID: testClientID, ClientSecret: testClientSecret, Now: clock.Now}
	if kind == backend.KindVRACloud {
		cfg.RefreshToken, cfg.TokenURL = identitytest.CloudAPIToken, srv+identitytest.CloudPathAuthz
	}
	c, err := systems.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestDirectoryConnectorsParsing feeds directory lists in the shapes vIDM versions might send; the
// list's body is not publicly documented, so every plausible spelling is read and none breaks the
// list.
func TestDirectoryConnectorsParsing(t *testing.T) {
	many := make([]string, 40)
	for i := range many {
		many[i] = fmt.Sprintf(`"c%02d"`, i)
	}
	long := strings.Repeat("x", 300)
	tests := []struct {
		name  string
		extra string // the entry's connector fields, JSON without braces
		want  []string
	}{
		{"none", ``, nil},
		{"syncConnectors objects with name", `"syncConnectors":[{"name":"c1"},{"name":"c2"}]`, []string{"c1", "c2"}},
		{"objects with host, hostname, connectorId", `"syncConnectors":[{"host":"conn1.corp"},{"hostname":"conn2.corp"},{"connectorId":"id-3"}]`,
			[]string{"conn1.corp", "conn2.corp", "id-3"}},
		{"name wins over host", `"syncConnectors":[{"host":"h","name":"n"}]`, []string{"n"}},
		{"keys in any case", `"SyncConnectors":[{"Name":"c1"},{"HostName":"c2"}]`, []string{"c1", "c2"}},
		{"connectors as strings", `"connectors":["c2","c1"]`, []string{"c2", "c1"}},
		{"mixed strings and objects", `"connectors":["c1",{"name":"c2"}]`, []string{"c1", "c2"}},
		{"syncConnectors wins over connectors", `"connectors":["a"],"syncConnectors":[{"name":"b"}]`, []string{"b"}},
		{"connectors when syncConnectors is empty", `"syncConnectors":[],"connectors":["a"]`, []string{"a"}},
		{"unreadable items, blanks and repeats skipped", `"connectors":["c1",7,null,"  ",{"id":"x"},{"name":""},"c1",[1],"c2"]`, []string{"c1", "c2"}},
		{"not an array", `"syncConnectors":{"name":"c1"}`, nil},
		{"a number", `"connectors":5`, nil},
		{"bounded to 32", `"connectors":[` + strings.Join(many, ",") + `]`, func() []string {
			out := make([]string, 32)
			for i := range out {
				out[i] = fmt.Sprintf("c%02d", i)
			}
			return out
		}()},
		{"names clipped", `"connectors":["` + long + `"]`, []string{strings.Repeat("x", 127) + "…"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entry := `{"type":"ACTIVE_DIRECTORY_LDAP","name":"Corp AD","directoryId":"d1"`
			if tt.extra != "" {
				entry += "," + tt.extra
			}
			body := `{"items":[` + entry + `}, {"name":"Other","directoryId":"d2"}]}`
			dirs, err := stubListClient(t, body).Directories(context.Background())
			if err != nil {
				t.Fatalf("Directories: %v", err)
			}
			if len(dirs) != 2 || dirs[0].ID != "d1" || dirs[1].Connectors != nil {
				t.Fatalf("directories = %+v", dirs)
			}
			if !reflect.DeepEqual(dirs[0].Connectors, tt.want) {
				t.Fatalf("connectors = %q, want %q", dirs[0].Connectors, tt.want)
			}
		})
	}
}

// stubListClient is a vIDM client whose transport answers the token request and then list.
func stubListClient(t *testing.T, list string) *httpcore.Client {
	t.Helper()
	stub := identitytest.StubTransport(func(r *http.Request) (int, string) {
		if strings.HasSuffix(r.URL.Path, "/oauthtoken") {
			return 200, `{"access_token":"at","token_type":"bearer","expires_in":3600}`
		}
		return 200, list
	})
	c, err := vidm.New(httpcore.Config{BaseURL: "https://vidm.example.com", ClientID: "id", ClientSecret: "secret", Transport: stub})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestParseSyncStateAttempts(t *testing.T) {
	c1Failed := contract.Attempt{Connector: "c1", Status: "FAILED", Message: "connector c1 unavailable"}
	tests := []struct {
		name          string
		body          string
		wantConnector string
		want          []contract.Attempt
	}{
		{
			name:          "simulator shape",
			body:          `{"status":"COMPLETED","connector":"c2","attempts":[{"connector":"c1","status":"FAILED","message":"connector c1 unavailable"},{"connector":"c2","status":"COMPLETED"}]}`,
			wantConnector: "c2",
			want:          []contract.Attempt{c1Failed, {Connector: "c2", Status: "COMPLETED"}},
		},
		{
			name:          "connectorAttempts with connectorName and errorMessage",
			body:          `{"status":"RUNNING","connectorAttempts":[{"connectorName":"c1","status":"FAILED","errorMessage":"connector c1 unavailable"},{"connectorName":"c2","status":"RUNNING"}]}`,
			wantConnector: "c2", // the last attempt, which is not a failure, ran it
			want:          []contract.Attempt{c1Failed, {Connector: "c2", Status: "RUNNING"}},
		},
		{
			name:          "syncLog with connectorHost and errorDetails",
			body:          `{"Status":"Completed","SyncLog":[{"ConnectorHost":"conn1.corp","Status":"Error","ErrorDetails":[{"description":"host unreachable"}]},{"ConnectorHost":"conn2.corp","Status":"Success"}]}`,
			wantConnector: "conn2.corp",
			want: []contract.Attempt{{Connector: "conn1.corp", Status: "FAILED", Message: "host unreachable"},
				{Connector: "conn2.corp", Status: "COMPLETED"}},
		},
		{
			name:          "connectorHistory with host and name, connector given as an object",
			body:          `{"status":"COMPLETED","connector":{"name":"c2"},"connectorHistory":[{"host":"c1","status":"FAILED"},{"name":"c2","status":"COMPLETED","message":"done"}]}`,
			wantConnector: "c2",
			want:          []contract.Attempt{{Connector: "c1", Status: "FAILED"}, {Connector: "c2", Status: "COMPLETED", Message: "done"}},
		},
		{
			name: "all failed: no connector ran it",
			body: `{"status":"FAILED","attempts":[{"connector":"c1","status":"FAILED","message":"connector c1 unavailable"},{"connector":"c2","status":"FAILED"}]}`,
			want: []contract.Attempt{c1Failed, {Connector: "c2", Status: "FAILED"}},
		},
		{
			name:          "nested under vRA's syncStatus",
			body:          `{"syncStatus":{"status":"RUNNING","attempts":[{"connector":"c1","status":"FAILED","message":"connector c1 unavailable"},{"connector":"c2","status":"RUNNING"}]}}`,
			wantConnector: "c2",
			want:          []contract.Attempt{c1Failed, {Connector: "c2", Status: "RUNNING"}},
		},
		{
			name:          "bare names, unknown status kept raw, items without a connector skipped",
			body:          `{"status":"RUNNING","attempts":["c1",{"status":"FAILED"},{"connector":"c2","status":"WAITING_FOR_HOST"},7,null]}`,
			wantConnector: "c2",
			want:          []contract.Attempt{{Connector: "c1"}, {Connector: "c2", Status: "WAITING_FOR_HOST"}},
		},
		{
			name:          "first list that has attempts wins",
			body:          `{"status":"COMPLETED","attempts":[],"syncLog":[{"connector":"c9","status":"COMPLETED"}]}`,
			wantConnector: "c9",
			want:          []contract.Attempt{{Connector: "c9", Status: "COMPLETED"}},
		},
		{
			name: "not a list",
			body: `{"status":"COMPLETED","attempts":{"connector":"c1"},"syncLog":"c1 failed"}`,
		},
		{
			name:          "no attempts: one connector",
			body:          `{"status":"COMPLETED","connector":"connector-1"}`,
			wantConnector: "connector-1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := httpcore.ParseSyncState([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if st.Connector != tt.wantConnector || !reflect.DeepEqual(st.Attempts, tt.want) {
				t.Fatalf("connector %q attempts %+v; want %q %+v", st.Connector, st.Attempts, tt.wantConnector, tt.want)
			}
		})
	}
}

func TestParseSyncStateAttemptsBounded(t *testing.T) {
	items := make([]string, 40)
	for i := range items {
		items[i] = fmt.Sprintf(`{"connector":"c%02d","status":"FAILED","message":%q}`, i, strings.Repeat("m", 2000))
	}
	items[39] = `{"connector":"` + strings.Repeat("h", 500) + `","status":"` + strings.Repeat("S", 500) + `"}`
	st, err := httpcore.ParseSyncState([]byte(`{"status":"RUNNING","attempts":[` + strings.Join(items, ",") + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Attempts) != 16 || st.Attempts[0].Connector != "c24" {
		t.Fatalf("%d attempts starting at %q; want the last 16", len(st.Attempts), st.Attempts[0].Connector)
	}
	for _, a := range st.Attempts {
		if len(a.Connector) > 132 || len(a.Status) > 68 || len(a.Message) > 516 {
			t.Fatalf("unbounded attempt: %d/%d/%d bytes", len(a.Connector), len(a.Status), len(a.Message))
		}
	}
}

// newLoopbackServer serves h on plain HTTP on the loopback interface (where the client accepts an
// http token URL) and returns its URL.
func newLoopbackServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
