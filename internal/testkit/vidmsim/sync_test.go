package vidmsim_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

func TestDirectoryList(t *testing.T) {
	e := newEnv(t, nil)
	r := e.listDirs(e.token())
	if r.status != http.StatusOK || r.header.Get("Content-Type") != mediaList {
		t.Fatalf("list: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	var body struct {
		Items []map[string]any `json:"items"`
		Links map[string]any   `json:"_links"`
	}
	mustUnmarshal(t, r.body, &body)
	if body.Links == nil || len(body.Items) != 4 {
		t.Fatalf("body = %s", r.body)
	}
	want := []struct{ id, name, typ, domain string }{
		{"dir-corp-ad", "Corp AD", "ACTIVE_DIRECTORY_LDAP", "corp.example.com"},
		{"dir-emea-ad", "EMEA AD", "ACTIVE_DIRECTORY_LDAP", "emea.example.com"},
		{"dir-lab-iwa", "Lab IWA", "ACTIVE_DIRECTORY_IWA", "lab.example.com"},
		{"dir-system", "System Directory", "LOCAL_DIRECTORY", ""},
	}
	for i, w := range want {
		it := body.Items[i]
		if it["directoryId"] != w.id || it["name"] != w.name || it["type"] != w.typ ||
			it["syncConfigurationEnabled"] != true || it["_links"] == nil {
			t.Errorf("item %d = %v", i, it)
		}
		domains, has := it["domains"].([]any)
		switch {
		case w.domain == "" && has:
			t.Errorf("item %d: local directory has domains %v", i, domains)
		case w.domain != "" && (len(domains) != 1 || domains[0] != w.domain):
			t.Errorf("item %d: domains = %v", i, it["domains"])
		}
	}
}

func TestSyncLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()

	r := e.do(http.MethodGet, syncPath(corpID), "", "Authorization", "Bearer "+tok, "Accept", mediaV1)
	if strings.TrimSpace(string(r.body)) != `{"directoryId":"dir-corp-ad","status":"UNDEFINED"}` {
		t.Fatalf("before any sync: %s", r.body)
	}
	start := e.clock.Now()
	r = e.startSync(tok, corpID, false)
	if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != "{}" || r.header.Get("Content-Type") != mediaV1 {
		t.Fatalf("start: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}

	steps := []struct {
		advance  time.Duration
		status   string
		progress int
		ended    bool
	}{
		{0, "RUNNING", 0, false},
		{4 * time.Second, "RUNNING", 40, false},
		{5999 * time.Millisecond, "RUNNING", 99, false},
		{time.Millisecond, "COMPLETED", 100, true},
		{30 * time.Minute, "COMPLETED", 100, true},
	}
	for _, s := range steps {
		e.clock.Advance(s.advance)
		st := e.syncStatus(tok, corpID)
		if st.Status != s.status || *st.ProgressPercentage != s.progress || st.Connector != "connector-1" ||
			st.DirectoryID != corpID || *st.SyncStartDate != start.UnixMilli() || st.Message == nil {
			t.Fatalf("after %v: %+v (progress %d)", s.advance, st, *st.ProgressPercentage)
		}
		if got := st.SyncEndDate != nil; got != s.ended {
			t.Fatalf("after %v: syncEndDate present = %v", s.advance, got)
		}
		if s.ended && *st.SyncEndDate != start.Add(10*time.Second).UnixMilli() {
			t.Errorf("syncEndDate = %d, want start+10s", *st.SyncEndDate)
		}
	}
	log := e.sim.SyncLog()
	if len(log) != 1 || log[0].Status != "COMPLETED" || log[0].DirectoryName != "Corp AD" || log[0].RunID == "" ||
		!log[0].StartedAt.Equal(start) || !log[0].FinishedAt.Equal(start.Add(10*time.Second)) || log[0].Foreign {
		t.Fatalf("SyncLog = %+v", log)
	}
}

func TestSyncOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		dir     vidmsim.Directory
		ignore  bool
		status  string
		message string
	}{
		{"plain", vidmsim.Directory{ID: corpID, Name: "Corp AD"}, false, "COMPLETED", ""},
		{"fail message", vidmsim.Directory{ID: corpID, Name: "Corp AD", FailMessage: "LDAP bind failed"}, false, "FAILED", "LDAP bind failed"},
		{"fail message wins over ignore", vidmsim.Directory{ID: corpID, Name: "Corp AD", FailMessage: "boom", SafeguardViolation: true}, true, "FAILED", "boom"},
		{"safeguard, not ignored", vidmsim.Directory{ID: corpID, Name: "Corp AD", SafeguardViolation: true}, false, "FAILED", "sync safeguard thresholds exceeded"},
		{"safeguard, ignored", vidmsim.Directory{ID: corpID, Name: "Corp AD", SafeguardViolation: true}, true, "COMPLETED", ""},
		{"own duration", vidmsim.Directory{ID: corpID, Name: "Corp AD", SyncDuration: 3 * time.Second}, false, "COMPLETED", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			if err := e.sim.SetDirectory(tc.dir); err != nil {
				t.Fatal(err)
			}
			tok := e.token()
			if r := e.startSync(tok, corpID, tc.ignore); r.status != http.StatusOK {
				t.Fatalf("start: %d %s", r.status, r.body)
			}
			dur := 10 * time.Second
			if tc.dir.SyncDuration > 0 {
				dur = tc.dir.SyncDuration
			}
			e.clock.Advance(dur - time.Millisecond)
			if st := e.syncStatus(tok, corpID); st.Status != "RUNNING" {
				t.Fatalf("before the end: %s", st.Status)
			}
			e.clock.Advance(time.Millisecond)
			st := e.syncStatus(tok, corpID)
			if st.Status != tc.status || !strings.HasPrefix(*st.Message, tc.message) || (tc.message == "" && *st.Message != "") {
				t.Fatalf("status = %s %q, want %s %q", st.Status, *st.Message, tc.status, tc.message)
			}
			rec := e.sim.SyncLog()[0]
			if rec.Status != tc.status || rec.Message != *st.Message || rec.IgnoreSafeguards != tc.ignore {
				t.Errorf("record = %+v", rec)
			}
		})
	}
}

// TestOutcomeFixedAtStart: changing a directory does not rewrite a run already under way.
func TestOutcomeFixedAtStart(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	e.startSync(tok, corpID, false)
	if err := e.sim.SetDirectory(vidmsim.Directory{ID: corpID, Name: "Corp AD", FailMessage: "broken"}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(10 * time.Second)
	if st := e.syncStatus(tok, corpID); st.Status != "COMPLETED" {
		t.Fatalf("first run = %s", st.Status)
	}
	e.startSync(tok, corpID, false)
	e.clock.Advance(10 * time.Second)
	if st := e.syncStatus(tok, corpID); st.Status != "FAILED" || *st.Message != "broken" {
		t.Fatalf("second run = %s %q", st.Status, *st.Message)
	}
}

func TestSyncInProgress(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	if r := e.startSync(tok, corpID, false); r.status != http.StatusOK {
		t.Fatalf("first: %d", r.status)
	}
	for range 3 {
		e.clock.Advance(time.Second)
		r := e.startSync(tok, corpID, true)
		if r.status != http.StatusConflict || r.errorCode() != "connector.directory.sync.in.progress" {
			t.Fatalf("while running: %d %s", r.status, r.body)
		}
	}
	// Another directory is independent.
	if r := e.startSync(tok, "dir-emea-ad", false); r.status != http.StatusOK {
		t.Fatalf("other directory: %d", r.status)
	}
	if n := len(e.sim.SyncLog()); n != 2 {
		t.Fatalf("SyncLog has %d records, want 2", n)
	}
	if e.sim.RejectedSyncPosts() != 3 || e.sim.MaxConcurrentSyncs(corpID) != 1 || e.sim.MaxConcurrentSyncs("nope") != 0 {
		t.Fatalf("rejected = %d, max = %d", e.sim.RejectedSyncPosts(), e.sim.MaxConcurrentSyncs(corpID))
	}
	e.clock.Advance(7 * time.Second) // the first run ends exactly now
	if r := e.startSync(tok, corpID, false); r.status != http.StatusOK {
		t.Fatalf("after completion: %d %s", r.status, r.body)
	}
	log := e.sim.SyncLog()
	if len(log) != 3 || log[0].Status != "COMPLETED" || log[2].Status != "RUNNING" || log[2].FinishedAt != (time.Time{}) {
		t.Fatalf("SyncLog = %+v", log)
	}
	if e.sim.MaxConcurrentSyncs(corpID) != 1 {
		t.Fatalf("MaxConcurrentSyncs = %d", e.sim.MaxConcurrentSyncs(corpID))
	}
}

func TestForeignSync(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	if err := e.sim.StartForeignSync(corpID, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.StartForeignSync(corpID, 0); err == nil {
		t.Error("second foreign sync while running: no error")
	}
	if err := e.sim.StartForeignSync("nope", 0); err == nil {
		t.Error("unknown directory: no error")
	}
	if st := e.syncStatus(tok, corpID); st.Status != "RUNNING" {
		t.Fatalf("status = %s", st.Status)
	}
	if r := e.startSync(tok, corpID, false); r.status != http.StatusConflict {
		t.Fatalf("POST during a foreign sync: %d", r.status)
	}
	e.clock.Advance(29 * time.Second)
	if st := e.syncStatus(tok, corpID); st.Status != "RUNNING" || *st.ProgressPercentage != 96 {
		t.Fatalf("status = %s %d", st.Status, *st.ProgressPercentage)
	}
	e.clock.Advance(time.Second)
	if r := e.startSync(tok, corpID, false, "X-Request-Id", "req-42", "traceparent",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"); r.status != http.StatusOK {
		t.Fatalf("POST after the foreign sync: %d", r.status)
	}
	log := e.sim.SyncLog()
	if len(log) != 2 || !log[0].Foreign || log[0].Status != "COMPLETED" || log[1].Foreign {
		t.Fatalf("SyncLog = %+v", log)
	}
	if log[0].RequestID != "" || log[1].RequestID != "req-42" ||
		log[1].Traceparent != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("request ids = %q/%q, traceparent %q", log[0].RequestID, log[1].RequestID, log[1].Traceparent)
	}
	if e.sim.MaxConcurrentSyncs(corpID) != 1 {
		t.Errorf("MaxConcurrentSyncs = %d", e.sim.MaxConcurrentSyncs(corpID))
	}
}

func TestSetDirectory(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name    string
		dir     vidmsim.Directory
		wantErr bool
	}{
		{"add", vidmsim.Directory{ID: "dir-new", Name: "New AD", Domains: []string{"new.example.com"}}, false},
		{"replace", vidmsim.Directory{ID: corpID, Name: "Corp AD renamed"}, false},
		{"duplicate name", vidmsim.Directory{ID: "dir-other", Name: "emea ad"}, true},
		{"empty id", vidmsim.Directory{Name: "X"}, true},
		{"dot id", vidmsim.Directory{ID: "..", Name: "X"}, true},
		{"empty name", vidmsim.Directory{ID: "x"}, true},
		{"negative duration", vidmsim.Directory{ID: "x", Name: "X", SyncDuration: -time.Second}, true},
	}
	for _, tc := range tests {
		if err := e.sim.SetDirectory(tc.dir); (err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v, want error %v", tc.name, err, tc.wantErr)
		}
	}
	var body struct {
		Items []struct{ DirectoryID, Name, Type string } `json:"items"`
	}
	mustUnmarshal(t, e.listDirs(e.token()).body, &body)
	if len(body.Items) != 5 || body.Items[0].Name != "Corp AD renamed" || body.Items[4].DirectoryID != "dir-new" ||
		body.Items[4].Type != "ACTIVE_DIRECTORY_LDAP" {
		t.Fatalf("items = %+v", body.Items)
	}
}
