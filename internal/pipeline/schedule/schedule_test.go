package schedule_test

// The scheduler against a real embedded JetStream server, driven by a fake clock: firing times,
// what the published event decodes to, de-duplication across replicas, reloads and failures.

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/schedule"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/schedule/cronspec"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/fakeclock"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/logbuf"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
)

const (
	subject = "dirsync.trigger.sync.requested"
	source  = "urn:vidm-sync-worker:scheduler"
	// waitLimit bounds every wait for something the scheduler does on its own goroutine.
	waitLimit = 10 * time.Second
)

var t0 = time.Date(2026, 3, 10, 10, 15, 0, 0, time.UTC)

// waitTimer waits until something waits on the clock for instant at: the scheduler has gone to
// sleep until then (or is backing off until then).
func waitTimer(t *testing.T, c *fakeclock.Clock, at time.Time) {
	t.Helper()
	poll.Until(t, waitLimit, "a timer for "+at.Format(time.RFC3339), func() bool { return c.Waiting(at) > 0 })
}

type attempt struct {
	key string
	at  time.Time
	err error
}

// observed collects Observer calls.
type observed struct {
	mu sync.Mutex
	a  []attempt
}

func (o *observed) observe(e schedule.Entry, at time.Time, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.a = append(o.a, attempt{e.Key(), at, err})
}

func (o *observed) all() []attempt {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.a)
}

// waitN waits until n attempts have been observed and returns them.
func (o *observed) waitN(t *testing.T, n int) []attempt {
	t.Helper()
	poll.Until(t, waitLimit, "observed attempts", func() bool { return len(o.all()) >= n })
	return o.all()
}

func spec(t *testing.T, s string) cronspec.Spec {
	t.Helper()
	sp, err := cronspec.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// triggerStream creates the trigger stream with the worker's 2-minute duplicate window.
func triggerStream(t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	st, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: "T", Subjects: []string{"dirsync.trigger.>"}, Duplicates: 2 * time.Minute, Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// stored decodes every message in the stream with the worker's decoder.
func stored(t *testing.T, st jetstream.Stream) []trigger.Trigger {
	t.Helper()
	ctx := context.Background()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := trigger.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	var out []trigger.Trigger
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := dec.Decode(m.Header, m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		out = append(out, tr)
	}
	return out
}

type harness struct {
	clk  *fakeclock.Clock
	obs  *observed
	logs *logbuf.Buffer
	s    *schedule.Scheduler
}

// run starts a Scheduler publishing to pub on subj; it is stopped (and Run's return checked) when
// the test ends.
func run(t *testing.T, clk *fakeclock.Clock, pub schedule.Publisher, subj string, entries []schedule.Entry) *harness {
	t.Helper()
	h := &harness{clk: clk, obs: &observed{}, logs: &logbuf.Buffer{}}
	h.s = schedule.New(schedule.Config{
		Subject:  subj,
		Source:   source,
		Logger:   slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:      clk.Now,
		After:    clk.After,
		Observer: h.obs.observe,
	}, pub)
	h.s.Set(entries)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitLimit):
			t.Error("Run did not return after its context ended")
		}
	})
	return h
}

func TestFiresOnSchedule(t *testing.T) {
	js := natstest.JetStream(t)
	st := triggerStream(t, js)
	clk := fakeclock.New(t0)
	corp := schedule.Entry{Tenant: "corp", Directory: "Corp AD", Spec: spec(t, "0 * * * *")}
	lab := schedule.Entry{Tenant: "lab", Directory: "lab.example.com", Spec: spec(t, "*/30 * * * *"), IgnoreSafeguards: true}
	h := run(t, clk, js, subject, []schedule.Entry{corp, lab})

	at1030 := time.Date(2026, 3, 10, 10, 30, 0, 0, time.UTC)
	at1100 := time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC)
	at1130 := time.Date(2026, 3, 10, 11, 30, 0, 0, time.UTC)
	if got, want := h.s.Next(), map[string]time.Time{"corp/Corp AD": at1100, "lab/lab.example.com": at1030}; !equalTimes(got, want) {
		t.Fatalf("Next() = %v, want %v", got, want)
	}

	waitTimer(t, h.clk, at1030)
	h.clk.AdvanceTo(at1030.Add(-time.Second))
	h.clk.AdvanceTo(at1030)
	if got := h.obs.waitN(t, 1); got[0] != (attempt{"lab/lab.example.com", at1030, nil}) {
		t.Fatalf("first firing = %+v", got[0])
	}
	waitTimer(t, h.clk, at1100)
	h.clk.AdvanceTo(at1100)
	got := h.obs.waitN(t, 3)
	want := []attempt{{"lab/lab.example.com", at1030, nil}, {"corp/Corp AD", at1100, nil}, {"lab/lab.example.com", at1100, nil}}
	if !slices.Equal(got, want) {
		t.Fatalf("firings = %+v, want %+v", got, want)
	}
	waitTimer(t, h.clk, at1130)
	if got, want := h.s.Next(), map[string]time.Time{"corp/Corp AD": at1100.Add(time.Hour), "lab/lab.example.com": at1130}; !equalTimes(got, want) {
		t.Fatalf("Next() = %v, want %v", got, want)
	}

	trs := stored(t, st)
	if len(trs) != 3 {
		t.Fatalf("%d messages stored, want 3", len(trs))
	}
	wantTr := trigger.Trigger{
		ID:               "schedule:lab/lab.example.com@2026-03-10T10:30:00Z",
		Source:           source,
		Type:             contract.TypeSyncRequested,
		Time:             at1030,
		Tenant:           "lab",
		Directory:        "lab.example.com",
		IgnoreSafeguards: true,
		Reason:           "scheduled safety-net sync (*/30 * * * *)",
	}
	if trs[0] != wantTr {
		t.Errorf("first trigger = %+v\nwant %+v", trs[0], wantTr)
	}
	if tr := trs[1]; tr.ID != "schedule:corp/Corp AD@2026-03-10T11:00:00Z" || tr.Tenant != "corp" || tr.Directory != "Corp AD" ||
		tr.Reason != "scheduled safety-net sync (0 * * * *)" || tr.IgnoreSafeguards || !tr.Time.Equal(at1100) {
		t.Errorf("second trigger = %+v", tr)
	}
}

func equalTimes(a, b map[string]time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !w.Equal(v) {
			return false
		}
	}
	return true
}

// A slot that passed while the process was suspended fires once, for the latest missed slot.
func TestMissedSlotsFireOnce(t *testing.T) {
	js := natstest.JetStream(t)
	st := triggerStream(t, js)
	clk := fakeclock.New(t0)
	e := schedule.Entry{Tenant: "corp", Directory: "Corp AD", Spec: spec(t, "0 * * * *")}
	h := run(t, clk, js, subject, []schedule.Entry{e})

	waitTimer(t, h.clk, time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC))
	h.clk.Advance(5*time.Hour + 20*time.Minute) // 15:35
	latest := time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)
	if got := h.obs.waitN(t, 1); got[0] != (attempt{"corp/Corp AD", latest, nil}) {
		t.Fatalf("firing = %+v, want the 15:00 slot", got[0])
	}
	next := time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)
	waitTimer(t, h.clk, next)
	if got := h.obs.all(); len(got) != 1 {
		t.Fatalf("%d firings after a suspension over 5 slots, want 1: %+v", len(got), got)
	}
	if trs := stored(t, st); len(trs) != 1 || trs[0].ID != "schedule:corp/Corp AD@2026-03-10T15:00:00Z" {
		t.Fatalf("stored %+v", trs)
	}
}

// Two replicas fire the same slot; the stream's duplicate window keeps one message.
func TestReplicasStoreSlotOnce(t *testing.T) {
	js := natstest.JetStream(t)
	st := triggerStream(t, js)
	clk := fakeclock.New(t0)
	entries := []schedule.Entry{{Tenant: "corp", Directory: "Corp AD", Spec: spec(t, "@every 1h")}}
	// Each replica on a connection of its own, as in production.
	js2, err := jetstream.New(connect(t, js))
	if err != nil {
		t.Fatal(err)
	}
	a := run(t, clk, js, subject, entries)
	b := run(t, clk, js2, subject, entries)

	slot := time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC)
	waitTimer(t, clk, slot)
	poll.Until(t, waitLimit, "both replicas asleep", func() bool {
		return clk.Waiting(slot) >= 2
	})
	clk.AdvanceTo(slot)
	for _, h := range []*harness{a, b} {
		if got := h.obs.waitN(t, 1); got[0].err != nil || !got[0].at.Equal(slot) {
			t.Fatalf("replica firing = %+v", got[0])
		}
	}
	trs := stored(t, st)
	if len(trs) != 1 {
		t.Fatalf("%d messages stored for one slot fired by two replicas, want 1", len(trs))
	}
	if logs := a.logs.String() + b.logs.String(); !strings.Contains(logs, "duplicate=true") {
		t.Errorf("no replica saw its publish de-duplicated:\n%s", logs)
	}
}

// connect opens a second connection to js's server.
func connect(t *testing.T, js jetstream.JetStream) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(js.Conn().ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestSetReplacesEntries(t *testing.T) {
	js := natstest.JetStream(t)
	st := triggerStream(t, js)
	clk := fakeclock.New(t0)
	keep := schedule.Entry{Tenant: "corp", Directory: "Corp AD", Spec: spec(t, "0 * * * *")}
	drop := schedule.Entry{Tenant: "corp", Directory: "Old", Spec: spec(t, "*/30 * * * *")}
	change := schedule.Entry{Tenant: "lab", Directory: "Lab", Spec: spec(t, "0 12 * * *")}
	h := run(t, clk, js, subject, []schedule.Entry{keep, drop, change})
	at1030 := time.Date(2026, 3, 10, 10, 30, 0, 0, time.UTC)
	waitTimer(t, h.clk, at1030)

	changed := change
	changed.Spec = spec(t, "*/20 * * * *")
	added := schedule.Entry{Tenant: "lab", Directory: "New", Spec: spec(t, "45 * * * *")}
	h.clk.Advance(10 * time.Minute) // 10:25
	h.s.Set([]schedule.Entry{keep, changed, added})
	want := map[string]time.Time{
		"corp/Corp AD": time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC),
		"lab/Lab":      time.Date(2026, 3, 10, 10, 40, 0, 0, time.UTC),
		"lab/New":      time.Date(2026, 3, 10, 10, 45, 0, 0, time.UTC),
	}
	if got := h.s.Next(); !equalTimes(got, want) {
		t.Fatalf("Next() after Set = %v, want %v", got, want)
	}
	waitTimer(t, h.clk, want["lab/Lab"])
	h.clk.AdvanceTo(time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC))
	// Each due entry fires once, for its latest passed slot.
	h.obs.waitN(t, 3)
	waitTimer(t, h.clk, time.Date(2026, 3, 10, 11, 20, 0, 0, time.UTC))
	var keys []string
	for _, a := range h.obs.all() {
		keys = append(keys, a.key+"@"+a.at.Format("15:04"))
	}
	slices.Sort(keys)
	wantKeys := []string{"corp/Corp AD@11:00", "lab/Lab@11:00", "lab/New@10:45"}
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("firings %v, want %v (the dropped entry must not fire)", keys, wantKeys)
	}
	for _, tr := range stored(t, st) {
		if tr.Directory == "Old" {
			t.Fatalf("dropped entry fired: %+v", tr)
		}
	}
}

// An unchanged entry keeps its next firing time across Set even when a slot passed meanwhile
// (nothing ran it); a changed spec is recomputed from now.
func TestSetKeepsUnchangedNext(t *testing.T) {
	clk := fakeclock.New(t0)
	s := schedule.New(schedule.Config{Subject: subject, Now: clk.Now, After: clk.After}, nil)
	hourly := schedule.Entry{Tenant: "corp", Directory: "Corp AD", Spec: spec(t, "0 * * * *")}
	other := schedule.Entry{Tenant: "corp", Directory: "Other", Spec: spec(t, "0 * * * *")}
	s.Set([]schedule.Entry{hourly, other})
	clk.Advance(time.Hour) // 11:15, past the 11:00 slot
	safeguards := hourly
	safeguards.IgnoreSafeguards = true // not part of the identity of a slot
	otherDaily := other
	otherDaily.Spec = spec(t, "@daily")
	s.Set([]schedule.Entry{safeguards, otherDaily})
	want := map[string]time.Time{
		"corp/Corp AD": time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC),
		"corp/Other":   time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC),
	}
	if got := s.Next(); !equalTimes(got, want) {
		t.Fatalf("Next() = %v, want %v", got, want)
	}
	s.Set(nil)
	if got := s.Next(); len(got) != 0 {
		t.Fatalf("Next() after Set(nil) = %v", got)
	}
}

// failFirst fails its first n publishes, then publishes through to JetStream.
type failFirst struct {
	mu sync.Mutex
	n  int
	js jetstream.JetStream
}

func (f *failFirst) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	f.mu.Lock()
	fail := f.n > 0
	f.n--
	f.mu.Unlock()
	if fail {
		return nil, errors.New("injected publish failure")
	}
	return f.js.PublishMsg(ctx, m, opts...)
}

func TestPublishRetriedWithinSlot(t *testing.T) {
	js := natstest.JetStream(t)
	st := triggerStream(t, js)
	clk := fakeclock.New(t0)
	h := run(t, clk, &failFirst{n: 2, js: js}, subject, []schedule.Entry{{Tenant: "corp", Directory: "Corp AD", Spec: spec(t, "0 * * * *")}})
	slot := time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC)
	waitTimer(t, h.clk, slot)
	h.clk.AdvanceTo(slot)
	h.obs.waitN(t, 1)
	waitTimer(t, h.clk, slot.Add(time.Second))
	h.clk.Advance(time.Second)
	h.obs.waitN(t, 2)
	waitTimer(t, h.clk, slot.Add(3*time.Second))
	h.clk.Advance(2 * time.Second)
	got := h.obs.waitN(t, 3)
	if got[0].err == nil || got[1].err == nil || got[2].err != nil {
		t.Fatalf("attempts %+v, want two failures then a success", got)
	}
	if trs := stored(t, st); len(trs) != 1 {
		t.Fatalf("%d messages stored, want 1", len(trs))
	}
	logs := h.logs.String()
	if n := strings.Count(logs, "level=WARN"); n != 2 {
		t.Errorf("%d warnings for 2 failed attempts:\n%s", n, logs)
	}
	if strings.Contains(logs, "level=ERROR") {
		t.Errorf("error logged for a slot that was published:\n%s", logs)
	}
}

func TestPublishFailureKeepsRunning(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pub     func(t *testing.T, js jetstream.JetStream) schedule.Publisher
		subject string
	}{
		{"no stream on the subject", func(_ *testing.T, js jetstream.JetStream) schedule.Publisher { return js }, "nowhere.sync.requested"},
		{"closed connection", func(t *testing.T, js jetstream.JetStream) schedule.Publisher {
			nc := connect(t, js)
			closed, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			nc.Close()
			return closed
		}, subject},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := natstest.JetStream(t)
			triggerStream(t, js)
			clk := fakeclock.New(t0)
			h := run(t, clk, tc.pub(t, js), tc.subject, []schedule.Entry{{Tenant: "corp", Directory: "Corp AD", Spec: spec(t, "0 * * * *")}})
			slot := time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC)
			waitTimer(t, h.clk, slot)
			h.clk.AdvanceTo(slot)
			// Attempts at +0s, +1s, +3s and +7s, then nothing until the next slot.
			for i, backoff := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
				h.obs.waitN(t, i+1)
				waitTimer(t, h.clk, h.clk.Now().Add(backoff))
				h.clk.Advance(backoff)
			}
			got := h.obs.waitN(t, 4)
			for _, a := range got {
				if a.err == nil || !a.at.Equal(slot) {
					t.Fatalf("attempts %+v, want 4 failures for the 11:00 slot", got)
				}
			}
			next := slot.Add(time.Hour)
			waitTimer(t, h.clk, next)
			logs := h.logs.String()
			if w, e := strings.Count(logs, "level=WARN"), strings.Count(logs, "level=ERROR"); w != 3 || e != 1 {
				t.Errorf("%d warnings and %d errors, want 3 and 1:\n%s", w, e, logs)
			}
			// Still running: the next slot is attempted.
			h.clk.AdvanceTo(next)
			if got := h.obs.waitN(t, 5); !got[4].at.Equal(next) {
				t.Fatalf("attempt after giving up = %+v, want the 12:00 slot", got[4])
			}
		})
	}
}

// An entry the event cannot carry (a directory name the trigger schema rejects is caught by the
// tenants file; here the subject is invalid) is reported, not retried.
func TestUnencodableRequestReported(t *testing.T) {
	js := natstest.JetStream(t)
	clk := fakeclock.New(t0)
	h := run(t, clk, js, "", []schedule.Entry{{Tenant: "corp", Directory: "Corp AD", Spec: spec(t, "0 * * * *")}})
	slot := time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC)
	waitTimer(t, h.clk, slot)
	h.clk.AdvanceTo(slot)
	if got := h.obs.waitN(t, 1); got[0].err == nil {
		t.Fatalf("attempt %+v, want an error", got[0])
	}
	waitTimer(t, h.clk, slot.Add(time.Hour))
	if got := h.obs.all(); len(got) != 1 {
		t.Fatalf("%d attempts, want 1 (no retry of an event that cannot be built)", len(got))
	}
}

func TestEventID(t *testing.T) {
	slot := time.Date(2026, 3, 10, 11, 0, 0, 0, time.FixedZone("CET", 3600))
	if got, want := schedule.EventID("corp", "Corp AD", slot), "schedule:corp/Corp AD@2026-03-10T10:00:00Z"; got != want {
		t.Errorf("EventID = %q, want %q", got, want)
	}
	long := strings.Repeat("d", 256)
	id := schedule.EventID("corp", long, slot)
	if len(id) > 256 || !strings.HasPrefix(id, "schedule:sha256-") || !strings.HasSuffix(id, "@2026-03-10T10:00:00Z") {
		t.Errorf("EventID for a long directory = %q (%d bytes)", id, len(id))
	}
	if id != schedule.EventID("corp", long, slot) || id == schedule.EventID("lab", long, slot) {
		t.Error("long EventID is not deterministic per tenant and directory")
	}
}
