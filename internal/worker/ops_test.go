package worker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/control"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/worker"
)

const (
	adminToken = "admin-token-Zq81-of-at-least-32-characters"
	readToken  = "read-token-Pm42-of-at-least-32-characters"
)

// opsEnv is the harness environment with both admin tokens set.
func opsEnv(extra map[string]string) map[string]string {
	env := map[string]string{"ADMIN_TOKEN": adminToken, "ADMIN_READ_TOKEN": readToken}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// startOpsWorker starts a worker whose admin port the test knows; it returns the port's base URL.
func (h *harness) startOpsWorker(name string, opts ...worker.Option) string {
	h.t.Helper()
	base := h.StartWorker(name, opts...).AdminURL
	poll.Until(h.t, 10*time.Second, "the admin API to be up", func() bool {
		code, _ := call(h.t, "GET", base+"/api/v1/directories", readToken, nil)
		return code == http.StatusOK
	})
	return base
}

// call makes one admin request and returns the status and body.
func call(t *testing.T, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// callJSON makes a request that must answer want, and decodes the answer into out.
func callJSON(t *testing.T, method, url, token string, body any, want int, out any) {
	t.Helper()
	code, b := call(t, method, url, token, body)
	if code != want {
		t.Fatalf("%s %s = %d %s, want %d", method, url, code, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, b)
		}
	}
}

// conflictAnswer is the admin API's 409 body.
type conflictAnswer struct {
	Error      string
	Reason     string
	CurrentRun *control.Run
}

func directory(t *testing.T, base, id string) control.Directory {
	t.Helper()
	var d control.Directory
	callJSON(t, "GET", base+"/api/v1/directories/default/"+id, readToken, nil, http.StatusOK, &d)
	return d
}

func TestPausedDirectoryKeepsItsTriggersAndSyncsThemOnResume(t *testing.T) {
	h := newHarness(t, 100*time.Millisecond, opsEnv(nil))
	base := h.startOpsWorker("w1")
	corp := base + "/api/v1/directories/default/" + corpID

	var d control.Directory
	callJSON(t, "POST", corp+"/pause", adminToken, map[string]string{"reason": "AD migration"}, http.StatusOK, &d)
	if d.State != control.StatePaused || d.Paused == nil || d.Paused.Reason != "AD migration" {
		t.Fatalf("after pause: %+v", d)
	}
	var ids []string
	for i := range 3 {
		ids = append(ids, h.publish(group("corp.example.com", fmt.Sprintf("proj-%d-admins", i))))
	}
	poll.Until(t, 10*time.Second, "3 pending triggers on the paused directory", func() bool {
		d = directory(t, base, corpID)
		return d.PendingTriggers == 3
	})
	if d.State != control.StatePaused {
		t.Fatalf("state %q with pending triggers while paused, want paused", d.State)
	}
	// A trigger for another directory, published after them, syncs: the engine is running, and
	// it has seen the paused directory's triggers and held them back.
	h.waitReported(10*time.Second, h.publish(group("emea.example.com", "emea-admins")))
	if n := len(h.syncsOf(corpID)); n != 0 {
		t.Fatalf("%d syncs of a paused directory", n)
	}

	callJSON(t, "POST", corp+"/resume", adminToken, nil, http.StatusOK, &d)
	rs := terminal(h.waitReported(10*time.Second, ids...))
	if n := len(h.syncsOf(corpID)); n != 1 {
		t.Fatalf("%d syncs after resume, want 1 covering the 3 held triggers", n)
	}
	var runs struct{ Runs []control.Run }
	callJSON(t, "GET", corp+"/runs", readToken, nil, http.StatusOK, &runs)
	if len(runs.Runs) != 1 || runs.Runs[0].Status != control.RunCompleted || runs.Runs[0].TriggerCount != 3 {
		t.Fatalf("runs = %+v", runs.Runs)
	}
	var groups []string
	for _, tr := range runs.Runs[0].Triggers {
		groups = append(groups, tr.Group)
	}
	if got := strings.Join(groups, ","); !strings.Contains(got, "proj-0-admins") || len(groups) != 3 {
		t.Fatalf("run lists groups %s", got)
	}
	if runs.Runs[0].RunID != rs[len(rs)-1].Data.RunID && runs.Runs[0].RunID != rs[0].Data.RunID {
		t.Fatalf("history run %s is not a reported run", runs.Runs[0].RunID)
	}
	// The run is forgotten just after its result is published (its markers first): idle soon.
	poll.Until(t, 10*time.Second, "the directory to be idle after the run", func() bool {
		d = directory(t, base, corpID)
		return d.State == control.StateIdle
	})
	if d.LastRun == nil || d.LastRun.Status != control.RunCompleted || d.CurrentRun != nil {
		t.Fatalf("after the run: %+v", d)
	}
}

func TestSyncRequestedThroughTheAdminAPI(t *testing.T) {
	h := newHarness(t, 1500*time.Millisecond, opsEnv(nil))
	base := h.startOpsWorker("w1")
	corp := base + "/api/v1/directories/default/" + corpID

	var first control.SyncRequest
	callJSON(t, "POST", corp+"/sync", adminToken, map[string]string{"reason": "group created by hand"}, http.StatusAccepted, &first)
	poll.Until(t, 10*time.Second, "the requested sync to run", func() bool {
		d := directory(t, base, corpID)
		return d.CurrentRun != nil && d.CurrentRun.Status == control.RunRunning
	})
	var conflict conflictAnswer
	callJSON(t, "POST", corp+"/sync", adminToken, nil, http.StatusConflict, &conflict)
	if conflict.Reason != "running" || conflict.CurrentRun == nil || !strings.Contains(conflict.Error, "queue=true") {
		t.Fatalf("409 body = %+v", conflict)
	}
	var queued control.SyncRequest
	callJSON(t, "POST", corp+"/sync?queue=true", adminToken, nil, http.StatusAccepted, &queued)
	if !queued.Queued {
		t.Fatalf("queued request = %+v", queued)
	}
	h.waitReported(20*time.Second, first.EventID, queued.EventID)
	if n := len(h.syncsOf(corpID)); n != 2 {
		t.Fatalf("%d syncs, want 2 (the request, then the queued follow-up)", n)
	}
	callJSON(t, "POST", base+"/api/v1/directories/default/no-such-dir/sync", adminToken, nil, http.StatusNotFound, nil)

	// The default tenant does not let publishers ignore safeguards; the admin API may.
	var granted control.SyncRequest
	callJSON(t, "POST", corp+"/sync?queue=true", adminToken, map[string]any{"ignoreSafeguards": true}, http.StatusAccepted, &granted)
	h.waitReported(20*time.Second, granted.EventID)
	syncs := h.syncsOf(corpID)
	if len(syncs) != 3 || !syncs[2].IgnoreSafeguards || syncs[0].IgnoreSafeguards {
		t.Fatalf("syncs = %+v; want a third one ignoring safeguards", syncs)
	}
}

func TestDeadLettersAreListedAndRedriven(t *testing.T) {
	h := newHarness(t, 100*time.Millisecond, opsEnv(nil))
	base := h.startOpsWorker("w1")

	id := h.publish(group("new.example.com", "new-admins"))
	var dl control.DeadLetters
	poll.Until(t, 10*time.Second, "the trigger for an unknown directory to be dead-lettered", func() bool {
		callJSON(t, "GET", base+"/api/v1/dead-letters", readToken, nil, http.StatusOK, &dl)
		return dl.Total == 1
	})
	if it := dl.Items[0]; it.EventID != id || it.Code != "UNKNOWN_DIRECTORY" || it.OriginalSubject != "dirsync.trigger.test" {
		t.Fatalf("dead letter = %+v", it)
	}
	// The operator creates the directory in vIDM, then re-drives.
	if err := h.Dev.Sim.SetDirectory(vidmsim.Directory{ID: "dir-new", Name: "New AD", Domains: []string{"new.example.com"}}); err != nil {
		t.Fatal(err)
	}
	var res control.RedriveResult
	callJSON(t, "POST", base+"/api/v1/dead-letters/redrive", adminToken, map[string]any{"sequences": []uint64{dl.Items[0].Seq}}, http.StatusOK, &res)
	if len(res.Redriven) != 1 || len(res.Failed) != 0 {
		t.Fatalf("redrive = %+v", res)
	}
	h.waitReported(10*time.Second, id)
	callJSON(t, "GET", base+"/api/v1/dead-letters", readToken, nil, http.StatusOK, &dl)
	if dl.Total != 0 {
		t.Fatalf("%d dead letters left after the re-drive", dl.Total)
	}
}

// A message too large to dead-letter whole is kept as a stub: listed with what was left out, its
// size and digest, and refused by re-drive with the reason (there is nothing to publish again).
func TestStubDeadLetterIsListedButNotRedriven(t *testing.T) {
	h := newHarnessWith(t, 100*time.Millisecond, opsEnv(nil), 64<<10)
	base := h.startOpsWorker("w1")
	m := nats.NewMsg("dirsync.trigger.test")
	m.Data = []byte(strings.Repeat("x", 64<<10-200))
	h.publishMsg(m)
	var dl control.DeadLetters
	poll.Until(t, 10*time.Second, "the oversized message to be dead-lettered", func() bool {
		callJSON(t, "GET", base+"/api/v1/dead-letters", readToken, nil, http.StatusOK, &dl)
		return dl.Total == 1
	})
	sum := sha256.Sum256(m.Data)
	if it := dl.Items[0]; it.Omitted != "payload" || it.OriginalSize != len(m.Data) || it.OriginalSHA256 != hex.EncodeToString(sum[:]) || it.Size != 0 {
		t.Fatalf("dead letter = %+v", it)
	}
	var res control.RedriveResult
	callJSON(t, "POST", base+"/api/v1/dead-letters/redrive", adminToken, map[string]any{"sequences": []uint64{dl.Items[0].Seq}}, http.StatusOK, &res)
	if len(res.Redriven) != 0 || len(res.Failed) != 1 || !strings.Contains(res.Failed[0].Error, "too large to keep") {
		t.Fatalf("redrive = %+v", res)
	}
}

func TestAdminPortAuthentication(t *testing.T) {
	h := newHarness(t, 100*time.Millisecond, opsEnv(nil))
	base := h.startOpsWorker("w1")
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/api/v1/directories", "", http.StatusUnauthorized},
		{"GET", "/api/v1/directories", "wrong", http.StatusUnauthorized},
		{"GET", "/api/v1/directories", readToken, http.StatusOK},
		{"GET", "/api/v1/directories", adminToken, http.StatusOK},
		{"POST", "/api/v1/directories/default/" + corpID + "/pause", readToken, http.StatusForbidden},
		{"POST", "/api/v1/directories/default/" + corpID + "/pause", "", http.StatusUnauthorized},
		{"GET", "/", "", http.StatusUnauthorized},
		{"GET", "/metrics", "", http.StatusOK},
		{"GET", "/healthz", "", http.StatusOK},
		{"GET", "/readyz", "", http.StatusOK},
	} {
		if code, body := call(t, tc.method, base+tc.path, tc.token, nil); code != tc.want {
			t.Errorf("%s %s with token %q = %d %s, want %d", tc.method, tc.path, tc.token, code, body, tc.want)
		}
	}
	if d := directory(t, base, corpID); d.Paused != nil {
		t.Fatalf("a refused pause paused the directory: %+v", d)
	}
}

func TestReadinessFollowsNATSAndVIDM(t *testing.T) {
	h := newHarness(t, 100*time.Millisecond, opsEnv(map[string]string{"READY_VIDM_INTERVAL": "1s"}))
	base := h.startOpsWorker("w1")
	ready := func() bool { code, _ := call(t, "GET", base+"/readyz", "", nil); return code == http.StatusOK }
	notReady := func() bool {
		code, _ := call(t, "GET", base+"/readyz", "", nil)
		return code == http.StatusServiceUnavailable
	}
	poll.Until(t, 10*time.Second, "ready", ready)

	h.Dev.NATS.Stop()
	poll.Until(t, 10*time.Second, "not ready without NATS", notReady)
	if code, _ := call(t, "GET", base+"/healthz", "", nil); code != http.StatusOK {
		t.Fatalf("/healthz = %d without NATS; liveness must not follow dependencies", code)
	}
	if err := h.Dev.NATS.Resume(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "ready again with NATS back", ready)

	h.Dev.Sim.SetFault(vidmsim.EndpointDirectories, vidmsim.Fault{Status: http.StatusServiceUnavailable})
	h.Dev.Sim.SetFault(vidmsim.EndpointOAuthToken, vidmsim.Fault{Status: http.StatusServiceUnavailable})
	poll.Until(t, 20*time.Second, "not ready without vIDM", notReady)
	_, body := call(t, "GET", base+"/readyz", "", nil)
	if !strings.Contains(string(body), "vidm") {
		t.Fatalf("/readyz does not name vIDM: %s", body)
	}
	h.Dev.Sim.ClearFaults()
	poll.Until(t, 20*time.Second, "ready again with vIDM back", ready)
}

// scrape reads the admin port's metrics into name{labels} → value.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	code, body := call(t, "GET", base+"/metrics", "", nil)
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[name+"_count{"+strings.Join(labels, ",")+"}"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestMetricsOfALiveWorker(t *testing.T) {
	h := newHarness(t, 100*time.Millisecond, opsEnv(nil))
	base := h.startOpsWorker("w1")
	id := h.publish(group("corp.example.com", "proj-alpha-admins"))
	h.publish(group("nowhere.example.com", "lost-admins"))
	h.waitReported(10*time.Second, id)
	var m map[string]float64
	want := map[string]float64{
		"dirsync_triggers_received_total{}":                                        2,
		"dirsync_triggers_accepted_total{type=ad.group.created}":                   1,
		"dirsync_triggers_dead_lettered_total{reason=UNKNOWN_DIRECTORY}":           1,
		"dirsync_syncs_started_total{directory=Corp AD,tenant=default}":            1,
		"dirsync_syncs_completed_total{directory=Corp AD,tenant=default}":          1,
		"dirsync_sync_duration_seconds_count{status=COMPLETED}":                    1,
		"dirsync_trigger_to_result_seconds_count{}":                                1,
		"dirsync_vidm_requests_total{code=200,endpoint=sync_start,tenant=default}": 1,
		"dirsync_vidm_token_refreshes_total{tenant=default}":                       1,
		"dirsync_dead_letters{}":                                                   1,
		"dirsync_consumer_pending_messages{}":                                      0,
		"dirsync_leases_held{}":                                                    0,
		"dirsync_build_info{go_version=" + goVersion(t, base) + ",version=dev}":    1,
	}
	poll.Until(t, 10*time.Second, "metrics to show the sync and the dead letter", func() bool {
		m = scrape(t, base)
		for k, v := range want {
			if m[k] != v {
				return false
			}
		}
		return true
	})
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
}

// goVersion reads the go_version label the build info carries.
func goVersion(t *testing.T, base string) string {
	t.Helper()
	for k := range scrape(t, base) {
		if rest, ok := strings.CutPrefix(k, "dirsync_build_info{go_version="); ok {
			v, _, _ := strings.Cut(rest, ",")
			return v
		}
	}
	t.Fatal("no dirsync_build_info")
	return ""
}

func TestHTTPIngressOfALiveWorker(t *testing.T) {
	const ingressToken = "ingress-token-Hx93-of-at-least-32-characters"
	h := newHarness(t, 100*time.Millisecond, opsEnv(map[string]string{"INGRESS_ENABLED": "true", "INGRESS_TOKEN": ingressToken}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.startOpsWorker("w1", worker.WithIngressListener(l))
	post := func(token, query, body string) (int, http.Header, []byte) {
		req, err := http.NewRequestWithContext(context.Background(), "POST", "http://"+l.Addr().String()+"/events"+query, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/cloudevents+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, b
	}
	event := `{"specversion":"1.0","id":"vro-42","source":"urn:vro:workflow","type":"ad.group.created",
		"datacontenttype":"application/json","data":{"domain":"corp.example.com","group":{"name":"proj-alpha-admins"}}}`

	if code, _, body := post("wrong", "", event); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d %s", code, body)
	}
	code, hdr, body := post(ingressToken, "?wait=20s", event)
	if code != http.StatusOK || hdr.Get("Dirsync-Result-Status") != "COMPLETED" {
		t.Fatalf("POST ?wait = %d %v %s", code, hdr, body)
	}
	var res struct {
		Type string
		Data struct{ Triggers []struct{ ID, Group string } }
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	if res.Type != "vidm.directory.sync.completed" || len(res.Data.Triggers) != 1 || res.Data.Triggers[0].ID != "vro-42" {
		t.Fatalf("result = %s", body)
	}
	if code, _, body := post(ingressToken, "", strings.Replace(event, `"vro-42"`, `"vro-43"`, 1)); code != http.StatusAccepted {
		t.Fatalf("POST without wait = %d %s", code, body)
	}
	h.waitReported(10*time.Second, "vro-43")
}

// A running sync's progress, as the identity system reports it, shows in the runs API, and a
// finished run keeps none.
func TestRunningSyncShowsItsProgress(t *testing.T) {
	h := newHarness(t, 3*time.Second, opsEnv(nil))
	base := h.startOpsWorker("w1")
	corp := base + "/api/v1/directories/default/" + corpID
	id := h.publish(group("corp.example.com", "proj-progress"))
	var seen int
	poll.Until(t, 10*time.Second, "the running run's progress", func() bool {
		var runs struct{ Runs []control.Run }
		callJSON(t, "GET", corp+"/runs", readToken, nil, http.StatusOK, &runs)
		for _, r := range runs.Runs {
			if r.Status == control.RunRunning && r.Progress != nil && *r.Progress > 0 && *r.Progress < 100 {
				seen = *r.Progress
				return true
			}
		}
		return false
	})
	h.waitReported(15*time.Second, id)
	var runs struct{ Runs []control.Run }
	callJSON(t, "GET", corp+"/runs", readToken, nil, http.StatusOK, &runs)
	if len(runs.Runs) != 1 || runs.Runs[0].Status != control.RunCompleted || runs.Runs[0].Progress != nil {
		t.Fatalf("after the sync (progress %d%% seen while running): %+v, want one completed run without progress", seen, runs.Runs)
	}
}

// TestCancelReportsPendingTriggersWithoutASync: an operator cancels a paused directory's pending
// triggers; each is reported failed CANCELLED, naming who and why, and vIDM is never asked. A
// trigger sent after the order is synced as usual.
func TestCancelReportsPendingTriggersWithoutASync(t *testing.T) {
	h := newHarness(t, 100*time.Millisecond, opsEnv(nil))
	base := h.startOpsWorker("w1")
	corp := base + "/api/v1/directories/default/" + corpID
	cancelBody := map[string]string{"by": "alice", "reason": "groups created in the wrong OU"}

	var conflict conflictAnswer
	callJSON(t, "POST", corp+"/cancel", adminToken, cancelBody, http.StatusConflict, &conflict)
	if conflict.Reason != "nothing_pending" {
		t.Fatalf("cancel with nothing pending: reason %q", conflict.Reason)
	}
	callJSON(t, "POST", corp+"/pause", adminToken, map[string]string{"reason": "AD migration"}, http.StatusOK, nil)
	var ids []string
	for i := range 3 {
		ids = append(ids, h.publish(group("corp.example.com", fmt.Sprintf("proj-%d-admins", i))))
	}
	poll.Until(t, 10*time.Second, "3 pending triggers", func() bool { return directory(t, base, corpID).PendingTriggers == 3 })

	var c control.Cancellation
	callJSON(t, "POST", corp+"/cancel", adminToken, cancelBody, http.StatusAccepted, &c)
	if c.Triggers != 3 || c.By != "alice (admin API)" {
		t.Fatalf("cancellation: %+v", c)
	}
	rs := terminal(h.waitReported(10*time.Second, ids...))
	for _, r := range rs {
		e := r.Data.Error
		if r.Type != contract.TypeFailed || e == nil || e.Code != contract.CodeCancelled || e.Retryable ||
			!strings.Contains(e.Message, "alice (admin API)") || !strings.Contains(e.Message, "groups created in the wrong OU") {
			t.Fatalf("result %s: type %s, error %+v", r.ID, r.Type, e)
		}
	}
	if n := len(h.syncsOf(corpID)); n != 0 {
		t.Fatalf("%d syncs of a cancelled directory", n)
	}
	m := scrape(t, base)
	if v := m[`dirsync_triggers_cancelled_total{directory=Corp AD,tenant=default}`]; v != 3 {
		t.Errorf("dirsync_triggers_cancelled_total = %v, want 3", v)
	}
	if v := m[`dirsync_syncs_failed_total{code=CANCELLED,directory=Corp AD,tenant=default}`]; v != 1 {
		t.Errorf("dirsync_syncs_failed_total{code=CANCELLED} = %v, want 1", v)
	}
	var runs struct{ Runs []control.Run }
	callJSON(t, "GET", corp+"/runs", readToken, nil, http.StatusOK, &runs)
	if len(runs.Runs) != 1 || runs.Runs[0].Status != control.RunFailed || runs.Runs[0].Error == nil ||
		runs.Runs[0].Error.Code != contract.CodeCancelled || runs.Runs[0].StartedAt != nil || runs.Runs[0].TriggerCount != 3 {
		t.Fatalf("runs after the cancellation: %+v", runs.Runs)
	}

	// Sent after the order, still paused: kept, then synced on resume.
	late := h.publish(group("corp.example.com", "proj-late-admins"))
	poll.Until(t, 10*time.Second, "the late trigger pending", func() bool { return directory(t, base, corpID).PendingTriggers == 1 })
	callJSON(t, "POST", corp+"/resume", adminToken, nil, http.StatusOK, nil)
	for _, r := range terminal(h.waitReported(10*time.Second, late)) {
		if reported([]resultEvent{r})[late] != nil && r.Type != contract.TypeCompleted {
			t.Fatalf("the trigger sent after the cancellation: %s %+v", r.Type, r.Data.Error)
		}
	}
	if n := len(h.syncsOf(corpID)); n != 1 {
		t.Fatalf("%d syncs after resume, want 1", n)
	}
}

// TestCancelLeavesAStartedSyncAlone: a run whose sync vIDM started keeps its triggers (409 when
// nothing else is pending); a trigger that arrives meanwhile can still be cancelled, and is.
func TestCancelLeavesAStartedSyncAlone(t *testing.T) {
	h := newHarness(t, 2*time.Second, opsEnv(nil))
	base := h.startOpsWorker("w1")
	corp := base + "/api/v1/directories/default/" + corpID
	cancelBody := map[string]string{"by": "bob", "reason": "duplicate request"}

	first := h.publish(group("corp.example.com", "proj-a-admins"))
	poll.Until(t, 10*time.Second, "the sync to start", func() bool {
		d := directory(t, base, corpID)
		return d.CurrentRun != nil && d.CurrentRun.StartedAt != nil
	})
	var conflict conflictAnswer
	callJSON(t, "POST", corp+"/cancel", adminToken, cancelBody, http.StatusConflict, &conflict)
	if conflict.Reason != "started" || conflict.CurrentRun == nil || !strings.Contains(conflict.Error, "cannot be cancelled") {
		t.Fatalf("cancel of a started sync: %+v", conflict)
	}

	// Paused, so that no follow-up run can take the second trigger before the order does.
	callJSON(t, "POST", corp+"/pause", adminToken, map[string]string{"reason": "hold"}, http.StatusOK, nil)
	second := h.publish(group("corp.example.com", "proj-b-admins"))
	poll.Until(t, 10*time.Second, "the second trigger pending beside the run", func() bool {
		return directory(t, base, corpID).PendingTriggers == 1
	})
	var c control.Cancellation
	callJSON(t, "POST", corp+"/cancel", adminToken, cancelBody, http.StatusAccepted, &c)
	if c.Triggers != 1 || c.CurrentRun == nil {
		t.Fatalf("cancellation beside a started sync: %+v", c)
	}
	rep := reported(h.waitReported(15*time.Second, first, second))
	if r := rep[first]; len(r) != 1 || r[0].Type != contract.TypeCompleted {
		t.Fatalf("the started sync's trigger: %+v", r)
	}
	if r := rep[second]; len(r) != 1 || r[0].Data.Error == nil || r[0].Data.Error.Code != contract.CodeCancelled {
		t.Fatalf("the cancelled trigger: %+v", r)
	}
	if n := len(h.syncsOf(corpID)); n != 1 {
		t.Fatalf("%d syncs, want the one started before the cancellation", n)
	}
}
