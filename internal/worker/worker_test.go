package worker_test

// Each test asserts one guarantee of DESIGN.md against a real embedded JetStream server and the
// vIDM simulator over HTTPS.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natsdev"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/worker"
)

func TestSingleTriggerOneSyncStartedAndCompleted(t *testing.T) {
	h := newHarness(t, 200*time.Millisecond, nil)
	h.startWorker("a")
	tr := group("corp.example.com", "proj-alpha-admins")
	tr.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	id := h.publish(tr)

	rs := h.waitReported(15*time.Second, id)
	if len(rs) != 2 || rs[0].Type != contract.TypeStarted || rs[1].Type != contract.TypeCompleted {
		t.Fatalf("results = %+v, want started then completed", rs)
	}
	done := rs[1].Data
	if done.Status != "COMPLETED" || done.DirectoryID != corpID || done.DirectoryName != "Corp AD" || done.Tenant != "default" || done.Error != nil {
		t.Fatalf("completed data = %+v", done)
	}
	if len(done.Triggers) != 1 || done.Triggers[0].ID != id || done.Triggers[0].Group != "proj-alpha-admins" || done.Triggers[0].Type != "ad.group.created" {
		t.Fatalf("triggers = %+v, want the one trigger", done.Triggers)
	}
	if rs[0].Data.RunID != done.RunID || rs[1].ID != done.RunID+".result" {
		t.Fatalf("run ids differ: started %q, result %q (id %q)", rs[0].Data.RunID, done.RunID, rs[1].ID)
	}
	syncs := h.syncsOf(corpID)
	if len(syncs) != 1 || syncs[0].RequestID != done.RunID || syncs[0].Traceparent != tr.Traceparent {
		t.Fatalf("simulator syncs = %+v, want one started by run %s with the trigger's traceparent", syncs, done.RunID)
	}
	if done.FinishedAt.Before(done.StartedAt) || done.DurationMs != done.FinishedAt.Sub(done.StartedAt).Milliseconds() {
		t.Fatalf("times inconsistent: %+v", done)
	}
}

func TestBurstOf500CostsAtMostTwoSyncs(t *testing.T) {
	h := newHarness(t, 300*time.Millisecond, nil)
	h.startWorker("a")
	var sent []string
	for i := range 500 {
		sent = append(sent, h.publish(group("corp.example.com", fmt.Sprintf("burst-%03d", i))))
	}
	rs := h.waitReported(60*time.Second, sent...)
	if n := len(h.syncsOf(corpID)); n < 1 || n > 2 {
		t.Fatalf("%d syncs for a burst of 500, want 1 or 2", n)
	}
	for id, rr := range reported(rs) {
		if len(rr) != 1 {
			t.Fatalf("trigger %s reported %d times", id, len(rr))
		}
	}
	if got := len(reported(rs)); got != 500 {
		t.Fatalf("%d triggers reported, want 500", got)
	}
	if h.Dev.Sim.RejectedSyncPosts() != 0 {
		t.Fatalf("%d POSTs hit a running sync", h.Dev.Sim.RejectedSyncPosts())
	}
}

func TestDirectoriesSyncInParallelOneAtATimeEach(t *testing.T) {
	h := newHarness(t, 600*time.Millisecond, nil)
	h.startWorker("a")
	var sent []string
	for _, dom := range []string{"corp.example.com", "emea.example.com", "lab.example.com"} {
		for i := range 5 {
			sent = append(sent, h.publish(group(dom, fmt.Sprintf("g-%d", i))))
		}
	}
	h.waitReported(20*time.Second, sent...)
	var latestStart, earliestEnd time.Time
	for _, dir := range []string{corpID, emeaID, labID} {
		if m := h.Dev.Sim.MaxConcurrentSyncs(dir); m != 1 {
			t.Fatalf("%s had %d syncs at once", dir, m)
		}
		first := h.syncsOf(dir)[0]
		if first.StartedAt.After(latestStart) {
			latestStart = first.StartedAt
		}
		if earliestEnd.IsZero() || first.FinishedAt.Before(earliestEnd) {
			earliestEnd = first.FinishedAt
		}
	}
	if !latestStart.Before(earliestEnd) {
		t.Fatalf("the three directories' syncs did not overlap (last start %v, first end %v)", latestStart, earliestEnd)
	}
}

func TestTriggerDuringSyncIsReportedByTheFollowUp(t *testing.T) {
	h := newHarness(t, time.Second, nil)
	h.startWorker("a")
	first := h.publish(group("corp.example.com", "early"))
	poll.Until(t, 10*time.Second, "the first sync to run", func() bool {
		s := h.syncsOf(corpID)
		return len(s) == 1 && s[0].Status == "RUNNING"
	})
	second := h.publish(group("corp.example.com", "late"))
	rs := h.waitReported(20*time.Second, first, second)
	rep := reported(rs)
	if len(rep[first]) != 1 || len(rep[second]) != 1 {
		t.Fatalf("each trigger must be reported once: %v", rep)
	}
	if rep[first][0].Data.RunID == rep[second][0].Data.RunID {
		t.Fatal("the trigger that arrived during the sync was reported by that sync")
	}
	syncs := h.syncsOf(corpID)
	if len(syncs) != 2 || syncs[1].StartedAt.Before(syncs[0].FinishedAt) {
		t.Fatalf("syncs = %+v, want a follow-up after the first finished", syncs)
	}
	if !slices.Equal(ids(rep[second][0].Data.Triggers), []string{second}) {
		t.Fatalf("follow-up covered %v, want only the late trigger", ids(rep[second][0].Data.Triggers))
	}
}

func TestForeignRunningSyncIsWaitedFor(t *testing.T) {
	h := newHarness(t, 200*time.Millisecond, nil)
	if err := h.Dev.Sim.StartForeignSync(corpID, 800*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	h.startWorker("a")
	id := h.publish(group("corp.example.com", "g"))
	h.waitReported(15*time.Second, id)
	if n := h.Dev.Sim.RejectedSyncPosts(); n != 0 {
		t.Fatalf("%d POSTs while the foreign sync ran, want 0", n)
	}
	syncs := h.syncsOf(corpID)
	if len(syncs) != 2 || !syncs[0].Foreign || syncs[1].Foreign || syncs[1].StartedAt.Before(syncs[0].FinishedAt) {
		t.Fatalf("syncs = %+v, want the foreign one, then ours after it", syncs)
	}
}

func TestFailedSyncGivesFailedResult(t *testing.T) {
	h := newHarness(t, 100*time.Millisecond, nil)
	if err := h.Dev.Sim.SetDirectory(vidmsim.Directory{ID: corpID, Name: "Corp AD", Domains: []string{"corp.example.com"},
		FailMessage: "LDAP bind failed: invalid credentials"}); err != nil {
		t.Fatal(err)
	}
	h.startWorker("a")
	id := h.publish(group("corp.example.com", "g"))
	rs := terminal(h.waitReported(15*time.Second, id))
	if len(rs) != 1 || rs[0].Type != contract.TypeFailed {
		t.Fatalf("results = %+v, want one failed", rs)
	}
	e := rs[0].Data.Error
	if rs[0].Data.Status != "FAILED" || e == nil || e.Code != contract.CodeSyncFailed || !strings.Contains(e.Message, "LDAP bind failed") || e.Retryable {
		t.Fatalf("failed data = %+v, error %+v", rs[0].Data, e)
	}
}

func TestBadInputIsDeadLetteredAndTheWorkerGoesOn(t *testing.T) {
	h := newHarness(t, 100*time.Millisecond, nil)
	h.startWorker("a")
	binary := func(hdr map[string]string, data string) *nats.Msg {
		m := nats.NewMsg("dirsync.trigger.test")
		for k, v := range hdr {
			m.Header.Set(k, v)
		}
		m.Data = []byte(data)
		return m
	}
	ce := func(typ string) map[string]string {
		return map[string]string{"ce-specversion": "1.0", "ce-id": "bad-" + typ, "ce-source": "urn:test", "ce-type": typ, "Content-Type": "application/json"}
	}
	cases := []struct {
		name string
		msg  *nats.Msg
		code string
	}{
		{"unknown directory", binary(ce("ad.group.created"), `{"domain":"nowhere.example.com","group":{"name":"g"}}`), contract.CodeUnknownDirectory},
		{"bad JSON", binary(ce("ad.group.created"), `{"domain":`), "MALFORMED"},
		{"not a CloudEvent", binary(nil, `hello`), "MALFORMED"},
		{"missing ce-id", binary(map[string]string{"ce-specversion": "1.0", "ce-source": "urn:test", "ce-type": "ad.group.created"}, `{"domain":"corp.example.com","group":{"name":"g"}}`), "MALFORMED"},
		{"unknown type", binary(ce("ad.computer.created"), `{"domain":"corp.example.com"}`), "UNKNOWN_TYPE"},
		{"schema violation", binary(ce("ad.group.deleted"), `{"domain":"corp.example.com","group":{"name":"`+strings.Repeat("x", 300)+`"}}`), "SCHEMA_VIOLATION"},
		{"unknown tenant", binary(ce("ad.group.renamed"), `{"domain":"corp.example.com","tenant":"other","group":{"name":"g"}}`), contract.CodeUnknownTenant},
		{"deeply nested JSON", binary(ce("ad.group.created"), strings.Repeat(`{"a":`, 5000)+`1`+strings.Repeat(`}`, 5000)), "MALFORMED"},
		{"invalid UTF-8", binary(ce("ad.group.created"), "{\"domain\":\"corp.example.com\",\"group\":{\"name\":\"\xff\xfe\"}}"), "MALFORMED"},
		{"header with a control character", binary(map[string]string{"ce-specversion": "1.0", "ce-id": "x\u0007y", "ce-source": "urn:test", "ce-type": "ad.group.created"}, `{"domain":"corp.example.com","group":{"name":"g"}}`), "MALFORMED"},
	}
	// Intake decides messages concurrently, so dead letters are matched to their cases by the
	// trigger stream sequence they carry, not by their order.
	bySeq := map[string]int{}
	for i, c := range cases {
		ack, err := h.JS.PublishMsg(context.Background(), c.msg)
		if err != nil {
			t.Fatal(err)
		}
		bySeq[strconv.FormatUint(ack.Sequence, 10)] = i
	}
	good := h.publish(group("corp.example.com", "after-the-bad-ones"))
	h.waitReported(15*time.Second, good)

	var dead []*nats.Msg
	poll.Until(t, 10*time.Second, "every bad message dead-lettered", func() bool {
		dead = dead[:0]
		for _, m := range h.streamMsgs(h.Cfg.DeadStream) {
			dead = append(dead, &nats.Msg{Header: m.Header, Data: m.Data})
		}
		return len(dead) == len(cases)
	})
	seen := map[int]bool{}
	for _, d := range dead {
		i, ok := bySeq[d.Header.Get(contract.HeaderDeadSeq)]
		if !ok || seen[i] {
			t.Errorf("dead letter for sequence %q matches no case, or a case twice", d.Header.Get(contract.HeaderDeadSeq))
			continue
		}
		seen[i] = true
		c := cases[i]
		got := d.Header.Get(contract.HeaderDeadCode)
		reason := d.Header.Get(contract.HeaderDeadReason)
		if got != c.code || reason == "" || string(d.Data) != string(c.msg.Data) {
			t.Errorf("%s: dead letter code %q reason %q, want %q with the original data", c.name, got, reason, c.code)
		}
	}
	cons, err := h.JS.Consumer(context.Background(), h.Cfg.TriggerStream, h.Cfg.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "nothing left pending or unacknowledged", func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
	})
}

func TestTwoWorkersOneSyncPerDirectoryNothingTwice(t *testing.T) {
	h := newHarness(t, 300*time.Millisecond, nil)
	h.startWorker("a")
	h.startWorker("b")
	var sent []string
	for i := range 200 {
		dom := []string{"corp.example.com", "emea.example.com", "lab.example.com"}[i%3]
		sent = append(sent, h.publish(group(dom, fmt.Sprintf("g-%d", i))))
	}
	rs := h.waitReported(60*time.Second, sent...)
	for id, rr := range reported(rs) {
		if len(rr) != 1 {
			t.Fatalf("trigger %s reported %d times", id, len(rr))
		}
	}
	for _, dir := range []string{corpID, emeaID, labID} {
		if m := h.Dev.Sim.MaxConcurrentSyncs(dir); m != 1 {
			t.Fatalf("%s had %d syncs at once across two workers", dir, m)
		}
		if n := len(h.syncsOf(dir)); n > 2 {
			t.Fatalf("%s: %d syncs for one burst, want at most 2", dir, n)
		}
	}
	if h.Dev.Sim.RejectedSyncPosts() != 0 {
		t.Fatalf("%d POSTs hit a running sync", h.Dev.Sim.RejectedSyncPosts())
	}
}

func TestWorkerKilledMidSyncIsResumedByAnother(t *testing.T) {
	h := newHarness(t, 1500*time.Millisecond, nil)
	crash := h.startCrashableWorker("doomed")
	id := h.publish(group("corp.example.com", "survivor"))
	poll.Until(t, 10*time.Second, "the sync to run", func() bool {
		s := h.syncsOf(corpID)
		return len(s) == 1 && s[0].Status == "RUNNING"
	})
	crash()
	h.startWorker("fresh")
	rs := h.waitReported(30*time.Second, id)
	if rep := reported(rs); len(rep[id]) != 1 || rep[id][0].Data.Status != "COMPLETED" {
		t.Fatalf("trigger reported %d times: %+v", len(rep[id]), rep[id])
	}
	if n := len(h.syncsOf(corpID)); n != 1 {
		t.Fatalf("%d syncs; the fresh worker should adopt the running one, not start another", n)
	}
}

func TestNoSecretInWorkerLogs(t *testing.T) {
	h := newHarness(t, 100*time.Millisecond, opsEnv(map[string]string{"LOG_LEVEL": "debug"}))
	h.startWorker("a")
	h.Dev.Sim.ExpireTokens()
	id := h.publish(group("corp.example.com", "g"))
	rs := h.waitReported(15*time.Second, id)
	// The log line follows the result event.
	poll.Until(t, 5*time.Second, "the run's log line", func() bool { return strings.Contains(h.Logs.String(), "sync reported") })
	out := h.Logs.String()
	for _, r := range rs {
		out += fmt.Sprintf("%+v", r)
	}
	for _, s := range append([]string{testSecret, adminToken, readToken}, h.Dev.Sim.IssuedTokens()...) {
		if strings.Contains(out, s) {
			t.Fatalf("secret %.8s… found in logs or events", s)
		}
	}
	if !strings.Contains(out, "sync reported") {
		t.Fatal("expected the worker's logs to be captured")
	}
}

// TestGracefulStopHandsTheRunBack: SIGTERM mid-sync releases the lease at once (no waiting for its
// TTL) and leaves the run record, so the next worker adopts the running sync and reports it.
func TestGracefulStopHandsTheRunBack(t *testing.T) {
	h := newHarness(t, 1500*time.Millisecond, map[string]string{"LEASE_TTL": "60s", "RESULT_DUPLICATE_WINDOW": "5m"})
	stop := h.startWorker("leaving")
	id := h.publish(group("corp.example.com", "handed-over"))
	poll.Until(t, 10*time.Second, "the sync to run", func() bool {
		s := h.syncsOf(corpID)
		return len(s) == 1 && s[0].Status == "RUNNING"
	})
	stop()
	leases, err := h.JS.KeyValue(context.Background(), h.Cfg.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := leases.ListKeys(context.Background()); err == nil {
		for k := range keys.Keys() {
			t.Fatalf("lease %s still held after a graceful stop", k)
		}
	}
	runs, err := h.JS.KeyValue(context.Background(), h.Cfg.RunsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runs.Get(context.Background(), "default."+corpID); err != nil {
		t.Fatalf("run record gone after a graceful stop mid-sync: %v", err)
	}
	h.startWorker("arriving")
	rs := h.waitReported(20*time.Second, id)
	if rep := reported(rs); len(rep[id]) != 1 {
		t.Fatalf("trigger reported %d times", len(rep[id]))
	}
	if n := len(h.syncsOf(corpID)); n != 1 {
		t.Fatalf("%d syncs; the arriving worker should adopt the running one", n)
	}
}

// TestVIDMUnreachableAtIntakeLosesNothing: while vIDM cannot resolve the directory the trigger is
// not accepted (no ack, no dead letter) but handed back; once vIDM answers it is synced and reported.
func TestVIDMUnreachableAtIntakeLosesNothing(t *testing.T) {
	h := newHarness(t, 100*time.Millisecond, nil)
	h.Dev.Sim.SetFault(vidmsim.EndpointDirectories, vidmsim.Fault{Status: 503})
	h.startWorker("a")
	id := h.publish(group("corp.example.com", "during-outage"))
	cons, err := h.JS.Consumer(context.Background(), h.Cfg.TriggerStream, h.Cfg.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "the trigger to be handed back at least once", func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumRedelivered >= 1 && h.Dev.Sim.Requests(vidmsim.EndpointDirectories) >= 4
	})
	if n := len(h.streamMsgs(h.Cfg.DeadStream)); n != 0 {
		t.Fatalf("%d dead letters during a vIDM outage; the trigger must wait, not be rejected", n)
	}
	if n := len(h.Dev.Sim.SyncLog()); n != 0 {
		t.Fatalf("%d syncs while vIDM could not even list directories", n)
	}
	h.Dev.Sim.ClearFaults()
	rs := h.waitReported(30*time.Second, id)
	if rep := reported(rs); len(rep[id]) != 1 || rep[id][0].Data.Status != "COMPLETED" {
		t.Fatalf("after the outage: %+v", rep[id])
	}
}

// TestNATSRestartLosesNothing restarts the (file-stored) JetStream server while triggers are
// pending and a sync runs: the worker reconnects and every trigger is still reported.
func TestNATSRestartLosesNothing(t *testing.T) {
	h := newHarness(t, 800*time.Millisecond, nil)
	h.startWorker("a")
	var sent []string
	for i := range 20 {
		sent = append(sent, h.publish(group("corp.example.com", fmt.Sprintf("before-%d", i))))
	}
	poll.Until(t, 10*time.Second, "a sync to run", func() bool { return len(h.syncsOf(corpID)) >= 1 })
	if err := h.Dev.NATS.Restart(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 15*time.Second, "the test's connection to come back", func() bool { return h.NC.IsConnected() })
	for i := range 20 {
		sent = append(sent, h.publish(group("emea.example.com", fmt.Sprintf("after-%d", i))))
	}
	rs := h.waitReported(60*time.Second, sent...)
	for id, rr := range reported(rs) {
		if len(rr) != 1 {
			t.Fatalf("trigger %s reported %d times", id, len(rr))
		}
	}
}

// TestSyncThatNeverEndsIsReportedFailed: past SYNC_DEADLINE the run is reported failed with a
// retryable VIDM_SYNC_TIMEOUT and the directory is released; a later trigger that finds the stuck
// sync still running is reported the same way instead of waiting forever.
func TestSyncThatNeverEndsIsReportedFailed(t *testing.T) {
	h := newHarness(t, 100*time.Millisecond, map[string]string{"SYNC_DEADLINE": "1s"})
	if err := h.Dev.Sim.SetDirectory(vidmsim.Directory{ID: corpID, Name: "Corp AD", Domains: []string{"corp.example.com"}, SyncDuration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	h.startWorker("a")
	first := h.publish(group("corp.example.com", "stuck-1"))
	rs := terminal(h.waitReported(20*time.Second, first))
	if len(rs) != 1 || rs[0].Type != contract.TypeFailed || rs[0].Data.Error == nil ||
		rs[0].Data.Error.Code != contract.CodeSyncTimeout || !rs[0].Data.Error.Retryable {
		t.Fatalf("results = %+v, want one retryable VIDM_SYNC_TIMEOUT", rs)
	}
	second := h.publish(group("corp.example.com", "stuck-2"))
	other := h.publish(group("emea.example.com", "unaffected"))
	rs = h.waitReported(20*time.Second, second, other)
	rep := reported(rs)
	if e := rep[second][0].Data.Error; e == nil || e.Code != contract.CodeSyncTimeout {
		t.Fatalf("second trigger: %+v, want VIDM_SYNC_TIMEOUT", rep[second][0].Data)
	}
	if rep[other][0].Data.Status != "COMPLETED" {
		t.Fatalf("another directory was held up: %+v", rep[other][0].Data)
	}
	if n := len(h.syncsOf(corpID)); n != 1 {
		t.Fatalf("%d syncs of the stuck directory, want 1 (no POST into a running sync)", n)
	}
	leases, err := h.JS.KeyValue(context.Background(), h.Cfg.LeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "the leases to be released", func() bool {
		_, err := leases.Get(context.Background(), "default."+corpID)
		return err != nil
	})
}

// TestWorkerStartedBeforeNATSWaitsForIt (found by the chaos run: a replica started during a broker
// restart exited): the worker starts while no server listens, waits, and works once one does.
func TestWorkerStartedBeforeNATSWaitsForIt(t *testing.T) {
	h := newHarness(t, 100*time.Millisecond, nil)
	store := h.Dev.NATS.StoreDir()
	port := strings.TrimPrefix(h.Cfg.NATSURL, "nats://127.0.0.1:")
	h.NC.Close()
	h.Dev.NATS.Shutdown()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- worker.Run(ctx, h.Cfg, h.logger("early")) }()
	t.Cleanup(func() { cancel(); <-done })
	poll.Until(t, 10*time.Second, "the worker to report that it waits", func() bool {
		return strings.Contains(h.Logs.String(), "JetStream not reachable yet") || strings.Contains(h.Logs.String(), "NATS disconnected")
	})
	select {
	case err := <-done:
		t.Fatalf("the worker gave up while NATS was down: %v", err)
	default:
	}

	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	ns := natstest.Server(t, natsdev.Options{StoreDir: store, Port: p})
	h.NC, h.JS = natstest.Connect(t, ns.URL())
	h.waitConsumer()
	id := h.publish(group("corp.example.com", "after-nats-came-up"))
	h.waitReported(30*time.Second, id)
}

// TestFloodOfUnknownDirectoriesDoesNotHammerVIDM: 200 triggers naming directories vIDM does not
// have are all dead-lettered, at the cost of at most two directory-list calls (the negative answer
// is cached for DirectoryMissRefresh), and a valid trigger after them is still synced.
func TestFloodOfUnknownDirectoriesDoesNotHammerVIDM(t *testing.T) {
	h := newHarness(t, 100*time.Millisecond, nil)
	h.startWorker("a")
	for i := range 200 {
		h.publish(group(fmt.Sprintf("unknown-%d.example.com", i), "g"))
	}
	good := h.publish(group("corp.example.com", "after-the-flood"))
	h.waitReported(30*time.Second, good)
	poll.Until(t, 10*time.Second, "200 dead letters", func() bool { return len(h.streamMsgs(h.Cfg.DeadStream)) == 200 })
	if n := h.Dev.Sim.Requests(vidmsim.EndpointDirectories); n > 2 {
		t.Fatalf("%d directory-list calls for 200 unknown directories, want at most 2", n)
	}
}

// TestStopDuringStartUpIsClean: a worker told to stop while it is still setting up its streams
// (a pod deleted right after it started) stops without an error.
func TestStopDuringStartUpIsClean(t *testing.T) {
	h := newHarness(t, 100*time.Millisecond, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := worker.Run(ctx, h.Cfg, h.logger("short-lived")); err != nil {
		t.Fatalf("Run with a cancelled context = %v, want a clean stop", err)
	}
}
