package intake_test

// Intake on a real embedded JetStream server, resolving directories against the vIDM simulator:
// what the observer hears and what the logs carry for accepted, dead-lettered and deferred
// triggers.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/registry"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/tenants"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/vidm"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/logging"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/streams"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirstate"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/intake"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/logbuf"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natsdev"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// testGrants signs as the admin API of the worker under test does.
var testGrants = trigger.NewGrants("intake-test-admin-token-of-32-characters", nil)

// recorder is an intake.Observer that keeps what it hears.
type recorder struct {
	mu       sync.Mutex
	received int
	accepted []dirsync.Trigger
	dead     []string
	reported int
}

func (r *recorder) Received() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.received++
}

func (r *recorder) Accepted(t dirsync.Trigger) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.accepted = append(r.accepted, t)
}

func (r *recorder) DeadLettered(code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dead = append(r.dead, code)
}

func (r *recorder) AlreadyReported() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reported++
}

func (r *recorder) alreadyReported() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reported
}

func (r *recorder) snapshot() (int, []dirsync.Trigger, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.received, slices.Clone(r.accepted), slices.Clone(r.dead)
}

type env struct {
	js    jetstream.JetStream
	res   *streams.Resources
	store *dirstate.Store
	sim   *vidmsim.Server
	rec   *recorder
	logs  *logbuf.Buffer
	spans *tracetest.SpanRecorder // with setup.traced
}

// start runs intake until the test ends.
func start(t *testing.T) *env {
	t.Helper()
	return startWith(t, setup{maxAckPending: 10})
}

// setup is what a test may change about the broker and the consumer.
type setup struct {
	maxPayload    int32 // 0: NATS's default
	maxAckPending int   // MAX_IN_FLIGHT
	traced        bool  // record spans (env.spans); else tracing is off
}

func startWith(t *testing.T, su setup) *env {
	t.Helper()
	js := natstest.JetStreamWith(t, natsdev.Options{MaxPayload: su.maxPayload})
	res, err := streams.Ensure(context.Background(), js, streams.Names{
		TriggerStream: "T", TriggerSubjects: []string{"t.>"}, ResultStream: "R", ResultSubjectPrefix: "r",
		DeadStream: "D", DeadSubject: "d", Consumer: "c", PendingBucket: "P", RunsBucket: "RU", LeaseBucket: "L", HistoryBucket: "H", ControlBucket: "CT",
	}, streams.Settings{Replicas: 1, ResultDuplicateWindow: time.Minute, LeaseTTL: 5 * time.Second, HistoryMaxAge: time.Hour, AckWait: 30 * time.Second, MaxAckPending: su.maxAckPending})
	if err != nil {
		t.Fatal(err)
	}
	sim, err := vidmsim.New(vidmsim.Config{
		Directories: []vidmsim.Directory{{ID: "dir-corp", Name: "Corp AD", Domains: []string{"corp.example.com"}}},
		Clients:     []vidmsim.Client{{ID: "worker", Secret: "intake-test-secret"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(sim)
	t.Cleanup(func() { sim.Resume(); srv.Close() })
	vc, err := vidm.New(httpcore.Config{BaseURL: srv.URL, ClientID: "worker", ClientSecret: "intake-test-secret",
		Transport: srv.Client().Transport, Retry: httpcore.RetryPolicy{MaxAttempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vc.Close)
	dec, err := trigger.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{js: js, res: res, store: dirstate.New(dirstate.Buckets{Pending: res.Pending, Runs: res.Runs, Leases: res.Leases, Reported: res.History}, dirstate.Options{}), sim: sim, rec: &recorder{}, logs: &logbuf.Buffer{}}
	reg, err := registry.New(tenants.File{DefaultTenant: "default", Tenants: map[string]tenants.Tenant{
		"default": {Name: "default", Backend: tenants.KindVIDM},
		// A second tenant limited to one directory: its allow-list decides what intake accepts.
		"lab": {Name: "lab", Backend: tenants.KindVIDM, Directories: []string{"Lab AD"}},
		// A tenant whose publishers may ask vIDM to ignore its safeguards.
		"trusted": {Name: "trusted", Backend: tenants.KindVIDM, AllowIgnoreSafeguards: true},
	}}, func(tenants.Tenant) (registry.Backend, error) { return vc, nil })
	if err != nil {
		t.Fatal(err)
	}
	cfg := intake.Config{
		DeadSubject: "d", Observer: e.rec, MaxPayload: js.Conn().MaxPayload(), Grants: testGrants,
		Logger: slog.New(logging.WithTrace(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
	}
	if su.traced {
		e.spans = tracetest.NewSpanRecorder()
		cfg.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.spans))
	}
	in := intake.New(cfg, js, res.Consumer, dec, reg, e.store, func(dirsync.DirKey) {})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("intake Run: %v", err)
		}
	})
	return e
}

func (e *env) publish(t *testing.T, tr trigger.Trigger) string {
	t.Helper()
	ev, err := trigger.NewEvent(tr)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cenats.EncodeBinary("t.test", ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	return ev.ID()
}

// logLines returns the JSON log records whose msg is msg.
func (e *env) logLines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(e.logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func group(dir, name string) trigger.Trigger {
	return trigger.Trigger{Type: "ad.group.created", Source: "urn:test", Directory: dir, Group: name, Traceparent: traceparent}
}

func TestObserverHearsEveryFate(t *testing.T) {
	e := start(t)
	goodID := e.publish(t, group("Corp AD", "proj-a"))
	unknownID := e.publish(t, group("Nowhere AD", "proj-b"))
	if _, err := e.js.Publish(context.Background(), "t.test", []byte("not an event")); err != nil {
		t.Fatal(err)
	}

	poll.Until(t, 10*time.Second, "three messages handled", func() bool {
		_, acc, dead := e.rec.snapshot()
		return len(acc) == 1 && len(dead) == 2
	})
	received, acc, dead := e.rec.snapshot()
	if received != 3 {
		t.Errorf("Received %d times, want 3", received)
	}
	if acc[0].ID != goodID || acc[0].Type != "ad.group.created" || acc[0].DirectoryName != "Corp AD" || acc[0].AcceptedAt.IsZero() {
		t.Errorf("Accepted %+v, want trigger %s of Corp AD with its acceptance time", acc[0], goodID)
	}
	pending, err := e.store.Pending(context.Background(), dirsync.NewDirKey("default", "dir-corp"))
	if err != nil || len(pending) != 1 {
		t.Errorf("pending after Accepted = %d entries, %v; want the trigger recorded", len(pending), err)
	}
	// The codes heard are the codes stored on the dead letters.
	var stored []string
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := e.res.Dead.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, m.Header.Get(contract.HeaderDeadCode))
	}
	slices.Sort(stored)
	slices.Sort(dead)
	if !slices.Equal(stored, dead) || !slices.Contains(dead, contract.CodeUnknownDirectory) {
		t.Errorf("DeadLettered codes %v, stored dead letters %v; want the same, UNKNOWN_DIRECTORY among them", dead, stored)
	}

	accLog := e.logLines(t, "trigger accepted")
	if len(accLog) != 1 || accLog[0]["trigger_id"] != goodID || accLog[0]["directory"] != "Corp AD" ||
		accLog[0]["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("accepted log %v, want trigger_id, directory and trace_id", accLog)
	}
	var unknownLogged bool
	for _, l := range e.logLines(t, "trigger dead-lettered") {
		if l["trigger_id"] == unknownID {
			unknownLogged = l["directory"] == "Nowhere AD" && l["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
		}
	}
	if !unknownLogged {
		t.Errorf("dead-letter log of %s lacks directory or trace_id: %s", unknownID, e.logs.String())
	}
}

// With tracing on, every message has an "intake" span: a trigger's is a child of its traceparent
// and is stored with the trigger for the run to link to, its log lines name it, and a dead
// letter's says so; an undecodable message's starts a trace of its own.
func TestIntakeSpans(t *testing.T) {
	e := startWith(t, setup{maxAckPending: 10, traced: true})
	goodID := e.publish(t, group("Corp AD", "proj-a"))
	unknownID := e.publish(t, group("Nowhere AD", "proj-b"))
	if _, err := e.js.Publish(context.Background(), "t.test", []byte("not an event")); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "three intake spans", func() bool { return len(e.spans.Ended()) == 3 })
	publisher := dirsync.SpanContext(traceparent)
	byEvent := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range e.spans.Ended() {
		if s.Name() != "intake" || s.SpanKind().String() != "consumer" {
			t.Fatalf("span %q kind %s", s.Name(), s.SpanKind())
		}
		byEvent[attr(s, "cloudevents.event_id")] = s
	}
	good, unknown, garbage := byEvent[goodID], byEvent[unknownID], byEvent[""]
	if good == nil || unknown == nil || garbage == nil {
		t.Fatalf("spans by event id: %v", byEvent)
	}
	for _, s := range []sdktrace.ReadOnlySpan{good, unknown} {
		if s.Parent().SpanID() != publisher.SpanID() || s.SpanContext().TraceID() != publisher.TraceID() || !s.Parent().IsRemote() {
			t.Fatalf("span of %s: parent %v, want the publisher's %v", attr(s, "cloudevents.event_id"), s.Parent(), publisher)
		}
	}
	if garbage.Parent().IsValid() || attr(garbage, "dirsync.intake.outcome") != "dead_lettered" || garbage.Status().Code.String() != "Error" {
		t.Fatalf("undecodable message's span: parent %v, attributes %v, status %v", garbage.Parent(), garbage.Attributes(), garbage.Status())
	}
	if attr(good, "dirsync.intake.outcome") != "accepted" || attr(good, "dirsync.tenant") != "default" || attr(good, "dirsync.directory") != "Corp AD" ||
		attr(good, "dirsync.directory_id") != "dir-corp" || attr(good, "messaging.destination.name") != "t.test" || attr(good, "cloudevents.event_type") != "ad.group.created" {
		t.Fatalf("accepted trigger's span attributes %v", good.Attributes())
	}
	if attr(unknown, "dirsync.intake.outcome") != "dead_lettered" || attr(unknown, "dirsync.dead_letter.code") != contract.CodeUnknownDirectory ||
		unknown.Status().Code.String() != "Error" {
		t.Fatalf("dead-lettered trigger's span: attributes %v, status %v", unknown.Attributes(), unknown.Status())
	}
	pending, err := e.store.Pending(context.Background(), dirsync.NewDirKey("default", "dir-corp"))
	if err != nil || len(pending) != 1 || pending[0].Trigger.IntakeSpan != dirsync.Traceparent(good.SpanContext()) || pending[0].Trigger.Traceparent != traceparent {
		t.Fatalf("pending %+v (%v): want the trigger with its intake span", pending, err)
	}
	for _, l := range e.logLines(t, "trigger dead-lettered") {
		if l["trigger_id"] == unknownID && (l["trace_id"] != publisher.TraceID().String() || l["span_id"] != unknown.SpanContext().SpanID().String()) {
			t.Fatalf("dead-letter log line %v: want the intake span's trace and span ids", l)
		}
	}
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

func TestObserverCountsRedeliveries(t *testing.T) {
	e := start(t)
	e.sim.SetFault(vidmsim.EndpointDirectories, vidmsim.Fault{Status: http.StatusServiceUnavailable, Times: 1})
	id := e.publish(t, group("Corp AD", "proj-a"))
	poll.Until(t, 15*time.Second, "the trigger accepted on its redelivery", func() bool {
		_, acc, _ := e.rec.snapshot()
		return len(acc) == 1
	})
	if received, _, dead := e.rec.snapshot(); received != 2 || len(dead) != 0 {
		t.Errorf("Received %d, dead-lettered %v; want 2 (the redelivery counted) and none", received, dead)
	}
	deferred := e.logLines(t, "trigger not accepted yet; redelivery requested")
	if len(deferred) != 1 || deferred[0]["trigger_id"] != id || deferred[0]["trace_id"] == nil {
		t.Errorf("deferral log %v, want trigger_id and trace_id", deferred)
	}
}

// TestTriggersAreRoutedByTenant: the trigger's tenant picks the backend; a tenant nobody
// configured and a directory outside the tenant's allow-list are dead-lettered with their codes.
func TestTriggersAreRoutedByTenant(t *testing.T) {
	e := start(t)
	withTenant := func(tr trigger.Trigger, tenant string) trigger.Trigger { tr.Tenant = tenant; return tr }
	defaultID := e.publish(t, group("Corp AD", "proj-default"))
	namedID := e.publish(t, withTenant(group("corp.example.com", "proj-named"), "default"))
	unknownID := e.publish(t, withTenant(group("Corp AD", "proj-x"), "nowhere"))
	refusedID := e.publish(t, withTenant(group("Corp AD", "proj-lab"), "lab"))

	poll.Until(t, 10*time.Second, "four messages handled", func() bool {
		_, acc, dead := e.rec.snapshot()
		return len(acc) == 2 && len(dead) == 2
	})
	_, acc, _ := e.rec.snapshot()
	for _, a := range acc {
		if (a.ID != defaultID && a.ID != namedID) || a.Tenant != "default" || a.DirectoryID != "dir-corp" {
			t.Errorf("accepted %+v, want %s and %s in tenant default, directory dir-corp", a, defaultID, namedID)
		}
	}
	codes := map[string]string{}
	for seq := uint64(1); seq <= 2; seq++ {
		m, err := e.res.Dead.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		codes[m.Header["ce-id"][0]] = m.Header.Get(contract.HeaderDeadCode) + ": " + m.Header.Get(contract.HeaderDeadReason)
	}
	if c := codes[unknownID]; !strings.HasPrefix(c, contract.CodeUnknownTenant+": ") || !strings.Contains(c, `"nowhere"`) {
		t.Errorf("unknown tenant dead-lettered as %q", c)
	}
	if c := codes[refusedID]; !strings.HasPrefix(c, contract.CodeDirectoryNotAllowed+": ") || !strings.Contains(c, `"lab"`) {
		t.Errorf("directory outside the allow-list dead-lettered as %q", c)
	}
}

// A trigger whose first delivery was recorded and reported, but whose ack was lost, comes back:
// the reported marker its run left makes intake acknowledge it without recording it again, so it
// is not reported twice. (The first delivery here is handed back by a refused pending write, which
// also shows that a trigger is acknowledged only once its write is confirmed.)
func TestRedeliveredTriggerAlreadyReportedIsNotRecordedAgain(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	const id = "reported-before-its-redelivery"
	key := dirsync.Trigger{ID: id, Source: "urn:test", Tenant: "default", DirectoryID: "dir-corp"}.Key()
	if _, err := e.res.History.Put(ctx, key, []byte("run-that-reported-it")); err != nil {
		t.Fatal(err)
	}
	// The first delivery is handed back, as a lost ack would leave it: the pending bucket is full
	// (one entry of another directory, a limit of one, new writes refused). The redelivery finds
	// the marker.
	st, err := e.js.Stream(ctx, "KV_"+e.res.Pending.Bucket())
	if err != nil {
		t.Fatal(err)
	}
	open := st.CachedInfo().Config
	if _, err := e.res.Pending.Put(ctx, string(dirsync.NewDirKey("default", "dir-other"))+".filler", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	full := open
	full.MaxMsgs = 1
	if _, err := e.js.UpdateStream(ctx, full); err != nil {
		t.Fatal(err)
	}
	ev, err := trigger.NewEvent(group("Corp AD", "proj-reported"))
	if err != nil {
		t.Fatal(err)
	}
	ev.SetID(id)
	msg, err := cenats.EncodeBinary("t.test", ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.PublishMsg(ctx, msg); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the first delivery to be handed back", func() bool {
		return len(e.logLines(t, "trigger not accepted yet; redelivery requested")) >= 1
	})
	if _, err := e.js.UpdateStream(ctx, open); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Log(e.logs.String())
		}
	}()
	poll.Until(t, 30*time.Second, "the redelivery to be acknowledged as already reported", func() bool {
		return e.rec.alreadyReported() == 1
	})
	received, acc, dead := e.rec.snapshot()
	if received < 2 || len(acc) != 0 || len(dead) != 0 {
		t.Fatalf("received %d, accepted %d, dead-lettered %v; want a redelivery, neither accepted nor dead-lettered", received, len(acc), dead)
	}
	if p, err := e.store.Pending(ctx, dirsync.NewDirKey("default", "dir-corp")); err != nil || len(p) != 0 {
		t.Fatalf("pending = %d, %v; want nothing recorded again", len(p), err)
	}
	poll.Until(t, 5*time.Second, "the message to be acknowledged", func() bool {
		info, err := e.res.Consumer.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
	if lines := e.logLines(t, "redelivered trigger was already reported; acknowledged"); len(lines) != 1 || lines[0]["run_id"] != "run-that-reported-it" {
		t.Fatalf("log lines = %v", lines)
	}
}

// A publisher's message so large that its dead-letter copy would exceed max_payload must not be
// handed back forever, holding one of the MAX_IN_FLIGHT slots: with two slots and four such
// messages, a valid trigger published after them is still accepted, and each is stored as a stub
// that names its size and digest.
func TestMessagesTooLargeToDeadLetterDoNotHoldIntake(t *testing.T) {
	for _, tc := range []struct {
		name        string
		header      int // bytes of one publisher header
		wantOmitted string
	}{
		{"large payload", 0, contract.OmittedPayload},
		{"large headers", 40 << 10, contract.OmittedAll},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const maxPayload = 64 << 10
			e := startWith(t, setup{maxPayload: maxPayload, maxAckPending: 2})
			ctx := context.Background()
			// Not a trigger, and just under the limit: a whole copy with the dead-letter headers is over it.
			body := []byte(strings.Repeat("x", maxPayload-256-tc.header))
			sums := map[string]bool{}
			for i := range 4 {
				m := nats.NewMsg("t.test")
				m.Data = append([]byte{byte('a' + i)}, body...)
				m.Header.Set("X-Team", "blue")
				if tc.header > 0 {
					m.Header.Set("X-Filler", strings.Repeat("h", tc.header))
				}
				if _, err := e.js.PublishMsg(ctx, m); err != nil {
					t.Fatal(err)
				}
				h := sha256.New()
				h.Write(m.Data)
				if tc.header > 0 {
					fmt.Fprintf(h, "\n%s: %s\n%s: %s", "X-Filler", m.Header.Get("X-Filler"), "X-Team", "blue")
				}
				sums[hex.EncodeToString(h.Sum(nil))] = true
			}
			goodID := e.publish(t, group("Corp AD", "proj-after-the-large-ones"))
			poll.Until(t, 20*time.Second, "the valid trigger to be accepted behind the large messages", func() bool {
				_, acc, _ := e.rec.snapshot()
				return slices.ContainsFunc(acc, func(p dirsync.Trigger) bool { return p.ID == goodID })
			})
			poll.Until(t, 10*time.Second, "four dead letters", func() bool {
				_, _, dead := e.rec.snapshot()
				return len(dead) == 4
			})
			st, err := e.js.Stream(ctx, "D")
			if err != nil {
				t.Fatal(err)
			}
			for seq := uint64(1); seq <= 4; seq++ {
				m, err := st.GetMsg(ctx, seq)
				if err != nil {
					t.Fatal(err)
				}
				h := m.Header
				if len(m.Data) != 0 || h.Get(contract.HeaderDeadOmitted) != tc.wantOmitted || h.Get(contract.HeaderDeadCode) != string(contract.CodeMalformed) {
					t.Fatalf("dead letter %d: %d bytes, headers %v", seq, len(m.Data), h)
				}
				if !sums[h.Get(contract.HeaderDeadSHA256)] || h.Get(contract.HeaderDeadSize) == "" || h.Get(contract.HeaderDeadSubject) != "t.test" {
					t.Fatalf("dead letter %d does not identify its original: %v", seq, h)
				}
				if kept := h.Get("X-Team") == "blue"; kept != (tc.wantOmitted == contract.OmittedPayload) || h.Get("X-Filler") != "" {
					t.Fatalf("dead letter %d: publisher headers %v; want them kept only when small", seq, h)
				}
			}
		})
	}
}

// One trigger must not lift vIDM's safeguards for every trigger its run coalesces: publishers may
// ask only on tenants that allow it; the admin API's signed grant works on any tenant.
func TestIgnoreSafeguardsOnlyWhereAllowedOrGranted(t *testing.T) {
	e := start(t)
	ask := func(tenant string) trigger.Trigger {
		tr := group("Corp AD", "proj-safeguards")
		tr.Tenant, tr.IgnoreSafeguards = tenant, true
		return tr
	}
	publishWith := func(tr trigger.Trigger, grant func(id string) string) string {
		ev, err := trigger.NewEvent(tr)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := cenats.EncodeBinary("t.test", ev)
		if err != nil {
			t.Fatal(err)
		}
		if grant != nil {
			msg.Header.Set(trigger.HeaderSafeguardsGrant, grant(ev.ID()))
		}
		if _, err := e.js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
		return ev.ID()
	}
	forger := trigger.NewGrants("a-publisher-guessing-the-admin-token!!", nil)
	cases := []struct {
		name   string
		id     string
		accept bool
	}{
		{"asked on a tenant that does not allow it", publishWith(ask(""), nil), false},
		{"asked on a tenant that allows it", publishWith(ask("trusted"), nil), true},
		{"granted by the admin API", publishWith(ask(""), func(id string) string { return testGrants.Sign(id, "", "Corp AD") }), true},
		{"a grant for another event", publishWith(ask(""), func(string) string { return testGrants.Sign("other", "", "Corp AD") }), false},
		{"a forged grant", publishWith(ask(""), func(id string) string { return forger.Sign(id, "", "Corp AD") }), false},
	}
	poll.Until(t, 10*time.Second, "every trigger handled", func() bool {
		_, acc, dead := e.rec.snapshot()
		return len(acc)+len(dead) == len(cases)
	})
	_, acc, dead := e.rec.snapshot()
	for _, tc := range cases {
		got := slices.ContainsFunc(acc, func(p dirsync.Trigger) bool { return p.ID == tc.id && p.IgnoreSafeguards })
		if got != tc.accept {
			t.Errorf("%s: accepted with ignoreSafeguards = %v, want %v", tc.name, got, tc.accept)
		}
	}
	if len(dead) != 3 || slices.ContainsFunc(dead, func(c string) bool { return c != contract.CodeSafeguardsNotAllowed }) {
		t.Fatalf("dead-letter codes = %v, want three %s", dead, contract.CodeSafeguardsNotAllowed)
	}
}
