package control_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/streams"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/control"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirstate"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
)

// watchedKV records every call that lists or watches a bucket's keys, with its key filter.
// Single-key reads and writes pass through unrecorded.
type watchedKV struct {
	jetstream.KeyValue
	mu    sync.Mutex
	calls []string
}

func (w *watchedKV) note(format string, args ...any) {
	w.mu.Lock()
	w.calls = append(w.calls, fmt.Sprintf(format, args...))
	w.mu.Unlock()
}

// Calls returns the listings and watches since the last call.
func (w *watchedKV) Calls() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.calls
	w.calls = nil
	return c
}

func (w *watchedKV) Watch(ctx context.Context, keys string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	w.note("Watch %s", keys)
	return w.KeyValue.Watch(ctx, keys, opts...)
}

func (w *watchedKV) WatchAll(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	w.note("WatchAll")
	return w.KeyValue.WatchAll(ctx, opts...)
}

func (w *watchedKV) WatchFiltered(ctx context.Context, keys []string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	w.note("WatchFiltered %v", keys)
	return w.KeyValue.WatchFiltered(ctx, keys, opts...)
}

func (w *watchedKV) Keys(ctx context.Context, opts ...jetstream.WatchOpt) ([]string, error) {
	w.note("Keys")
	return w.KeyValue.Keys(ctx, opts...) //nolint:staticcheck // recorded, whatever calls it
}

func (w *watchedKV) ListKeys(ctx context.Context, opts ...jetstream.WatchOpt) (jetstream.KeyLister, error) {
	w.note("ListKeys")
	return w.KeyValue.ListKeys(ctx, opts...)
}

func (w *watchedKV) ListKeysFiltered(ctx context.Context, filters ...string) (jetstream.KeyLister, error) {
	w.note("ListKeysFiltered %v", filters)
	return w.KeyValue.ListKeysFiltered(ctx, filters...)
}

// catalog is a fixed directory list of one tenant.
type catalog []backend.Directory

func (c catalog) Catalog(context.Context) []control.TenantDirectories {
	return []control.TenantDirectories{{Tenant: "default", Backend: backend.Description{Kind: backend.KindVIDM}, Directories: c}}
}

func (catalog) Probe(context.Context) error { return nil }

// world is the worker's state in a real JetStream server, its buckets watched.
type world struct {
	js                     jetstream.JetStream
	pending, runs, history *watchedKV
	store                  *dirstate.Store
	stores                 control.Stores
}

func newWorld(t *testing.T) *world {
	t.Helper()
	js := natstest.JetStream(t)
	res, err := streams.Ensure(context.Background(), js, streams.Names{
		TriggerStream: "T", TriggerSubjects: []string{"t.>"}, ResultStream: "R", ResultSubjectPrefix: "r",
		DeadStream: "D", DeadSubject: "d", Consumer: "c", PendingBucket: "P", RunsBucket: "RU", LeaseBucket: "L", HistoryBucket: "H", ControlBucket: "CT",
	}, streams.Settings{Replicas: 1, ResultDuplicateWindow: time.Minute, LeaseTTL: time.Minute, HistoryMaxAge: time.Hour, AckWait: time.Second, MaxAckPending: 10})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{js: js, pending: &watchedKV{KeyValue: res.Pending}, runs: &watchedKV{KeyValue: res.Runs}, history: &watchedKV{KeyValue: res.History}}
	// A small max_payload, so that a run of a few hundred triggers is kept in several pages.
	w.store = dirstate.New(dirstate.Buckets{Pending: w.pending, Runs: w.runs, Leases: res.Leases, Reported: w.history},
		dirstate.Options{MaxPayload: 16 << 10})
	w.stores = control.Stores{Store: w.store, History: dirstate.NewHistory(w.history, 20), Pauses: dirstate.NewPauses(res.Control, nil), Cancels: dirstate.NewCancels(res.Control)}
	return w
}

// putFast writes n KV values straight to a bucket's stream, as many at once as the client
// allows: the way to have 20,000 pending triggers in a test without 20,000 round trips.
func (w *world) putFast(t *testing.T, bucket string, n int, entry func(i int) (key string, value []byte)) {
	t.Helper()
	// In chunks well under the client's limit of outstanding publishes, each waited for: a busy
	// machine then slows the writes down instead of failing them.
	const chunk = 1000
	for i := 0; i < n; i++ {
		k, v := entry(i)
		if _, err := w.js.PublishAsync("$KV."+bucket+"."+k, v); err != nil {
			t.Fatal(err)
		}
		if (i+1)%chunk == 0 || i == n-1 {
			select {
			case <-w.js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				t.Fatalf("writing %d values to %s did not complete", n, bucket)
			}
		}
	}
}

func trigger(dir string, i int) dirsync.Trigger {
	return dirsync.Trigger{ID: fmt.Sprintf("%s-%06d", dir, i), Source: "urn:test:pipeline", Type: "ad.group.created",
		Group: fmt.Sprintf("grp-%06d", i), Tenant: "default", DirectoryID: dir, DirectoryName: "name of " + dir,
		AcceptedAt: time.Date(2026, 5, 12, 14, 0, 0, 0, time.UTC)}
}

func (w *world) addPending(t *testing.T, dir string, from, n int) {
	t.Helper()
	w.putFast(t, w.pending.Bucket(), n, func(i int) (string, []byte) {
		tr := trigger(dir, from+i)
		b, err := json.Marshal(tr)
		if err != nil {
			t.Fatal(err)
		}
		return tr.Key(), b
	})
}

const (
	bigPending  = 20000 // directory "big": pending triggers, no run
	stuckRun    = 300   // directory "stuck": triggers its failing run covers
	stuckLater  = 100   // ... and triggers accepted after its run was collected
	markers     = 20000 // reported-trigger markers in the history bucket
	quietCount  = 5000  // directory "quiet": its last run's trigger count
	stuckFailed = dirsync.StuckAfter + 1
)

// TestViewsOfALargeStateListNoKeys: the operator's views of a worker holding 20,000 pending
// triggers for one directory, a stuck run kept in pages and 20,000 reported-trigger markers are
// right (counts, states, totals), and no view lists the pending bucket's keys, a run's pages or
// the markers: pending counts come from the index the engine's watch keeps, run records and
// history entries are read with the filter that leaves pages and markers out.
func TestViewsOfALargeStateListNoKeys(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.addPending(t, "big", 0, bigPending)
	w.addPending(t, "stuck", 0, stuckRun)
	w.putFast(t, w.history.Bucket(), markers, func(i int) (string, []byte) {
		return trigger("gone", i).Key(), []byte("run-old")
	})

	// The engine's watch: it builds the pending index (its one pass over the pending keys).
	wctx, stop := context.WithCancel(ctx)
	watched := make(chan error, 1)
	go func() { watched <- w.store.WatchDirectories(wctx, func(dirsync.DirKey) {}) }()
	t.Cleanup(func() {
		stop()
		<-watched
	})
	big, stuck := dirsync.NewDirKey("default", "big"), dirsync.NewDirKey("default", "stuck")
	poll.Until(t, time.Minute, "the pending index", func() bool {
		nb, ok := w.store.PendingCount(big)
		ns, _ := w.store.PendingCount(stuck)
		return ok && nb == bigPending && ns == stuckRun
	})

	// A run of "stuck" covering its 300 triggers in pages, failing StuckAfter+1 times; more
	// triggers arrive after it; "quiet" has a finished run in its history.
	r, err := w.store.NewRun(ctx, stuck, "run-stuck", nil)
	if err != nil || r == nil {
		t.Fatalf("new run: %v %v", r, err)
	}
	if err := w.store.Collect(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.Pages < 2 {
		t.Fatalf("the run is kept in %d page(s); the test wants several", r.Pages)
	}
	since := time.Date(2026, 5, 12, 14, 1, 0, 0, time.UTC)
	if err := w.store.SetTrouble(ctx, r, &dirsync.Trouble{Failures: stuckFailed, Since: since, Last: since.Add(5 * time.Minute),
		Error: "starting the sync: vIDM answered 401"}); err != nil {
		t.Fatal(err)
	}
	w.addPending(t, "stuck", stuckRun, stuckLater)
	quietRun := &dirsync.Run{RunID: "run-quiet", Tenant: "default", DirectoryID: "quiet", DirectoryName: "Quiet AD", Phase: dirsync.PhaseReported,
		CreatedAt: since, Count: quietCount, Pages: 3, Sample: []dirsync.Trigger{trigger("quiet", 1)},
		Outcome: &dirsync.Outcome{Status: control.RunCompleted, FinishedAt: since.Add(time.Minute)}}
	if err := w.stores.History.Record(ctx, quietRun); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, time.Minute, "the later triggers in the index", func() bool {
		n, _ := w.store.PendingCount(stuck)
		return n == stuckRun+stuckLater
	})

	svc := control.New(control.Config{HistoryRuns: 20}, w.stores,
		catalog{{ID: "big", Name: "Big AD"}, {ID: "stuck", Name: "Stuck AD"}, {ID: "quiet", Name: "Quiet AD"}}, w.js, nil)
	for _, kv := range []*watchedKV{w.pending, w.runs, w.history} {
		kv.Calls() // the set-up's
	}

	dirs, err := svc.Directories(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]control.Directory{}
	for _, d := range dirs {
		byName[d.Name] = d
	}
	if len(dirs) != 3 {
		t.Errorf("%d directories, want 3 (markers and pages are not directories): %+v", len(dirs), dirs)
	}
	one, err := svc.Directory(ctx, "default", "stuck")
	if err != nil {
		t.Fatal(err)
	}
	runs, err := svc.Runs(ctx, "default", "quiet", 20)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := svc.PendingByName(ctx)
	if err != nil {
		t.Fatal(err)
	}
	failures, err := svc.FailuresByName(ctx)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		got  control.Directory
		want func(d control.Directory) bool
	}{
		{"Big AD", byName["Big AD"], func(d control.Directory) bool {
			return d.State == control.StatePending && d.PendingTriggers == bigPending && d.CurrentRun == nil
		}},
		{"Stuck AD", byName["Stuck AD"], func(d control.Directory) bool {
			cr := d.CurrentRun
			return d.State == control.StateStuck && d.PendingTriggers == stuckLater && cr != nil && cr.TriggerCount == stuckRun &&
				cr.Pages == r.Pages && len(cr.Triggers) == 10 && cr.Trouble != nil && cr.Trouble.Stuck && cr.Trouble.Failures == stuckFailed &&
				cr.Trouble.Error == "starting the sync: vIDM answered 401" && cr.Trouble.Since.Equal(since)
		}},
		{"Stuck AD alone", one, func(d control.Directory) bool {
			return d.State == control.StateStuck && d.PendingTriggers == stuckLater && d.CurrentRun != nil && d.CurrentRun.TriggerCount == stuckRun
		}},
		{"Quiet AD", byName["Quiet AD"], func(d control.Directory) bool {
			return d.State == control.StateIdle && d.LastRun != nil && d.LastRun.TriggerCount == quietCount && d.LastRun.Pages == 3
		}},
	}
	for _, tt := range tests {
		if !tt.want(tt.got) {
			cr, _ := json.Marshal(tt.got)
			t.Errorf("%s: %s", tt.name, cr)
		}
	}
	if len(runs) != 1 || runs[0].TriggerCount != quietCount || len(runs[0].Triggers) != 1 {
		t.Errorf("runs of Quiet AD: %+v", runs)
	}
	if want := map[control.DirectoryName]int{{Tenant: "default", Name: "Big AD"}: bigPending, {Tenant: "default", Name: "Stuck AD"}: stuckRun + stuckLater}; !mapsEqual(pending, want) {
		t.Errorf("pending by name %v, want %v", pending, want)
	}
	if want := map[control.DirectoryName]int{{Tenant: "default", Name: "Stuck AD"}: stuckFailed}; !mapsEqual(failures, want) {
		t.Errorf("failures by name %v, want %v", failures, want)
	}

	// Structurally: nothing listed the pending keys, and the runs and history buckets were only
	// read through the filter of their records ("*.*": pages and markers have longer keys).
	if c := w.pending.Calls(); len(c) > 0 {
		t.Errorf("the views listed or watched the pending bucket: %q", c)
	}
	for _, kv := range []*watchedKV{w.runs, w.history} {
		c := kv.Calls()
		if len(c) == 0 {
			t.Errorf("%s: no read recorded; is the recording wired?", kv.Bucket())
		}
		for _, call := range c {
			if call != "Watch *.*" {
				t.Errorf("%s: %q reads more than the records (pages or markers)", kv.Bucket(), call)
			}
		}
	}
}

// TestViewsWaitForThePendingIndex: before the index is complete the views wait for it rather
// than list the pending bucket; a request that ends first gets its own error, nothing listed.
func TestViewsWaitForThePendingIndex(t *testing.T) {
	w := newWorld(t)
	w.addPending(t, "big", 0, 500)
	svc := control.New(control.Config{}, w.stores, catalog{{ID: "big", Name: "Big AD"}}, w.js, nil)
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Directories", func(ctx context.Context) error { _, err := svc.Directories(ctx); return err }},
		{"Directory", func(ctx context.Context) error { _, err := svc.Directory(ctx, "default", "big"); return err }},
		{"PendingByName", func(ctx context.Context) error { _, err := svc.PendingByName(ctx); return err }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			err := c.call(ctx)
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, control.ErrNotReady) {
				t.Errorf("without the index: %v, want the request's deadline or ErrNotReady", err)
			}
			if got := w.pending.Calls(); len(got) > 0 {
				t.Errorf("the pending bucket was listed: %q", got)
			}
		})
	}

	// Once the watch has built the index, the same views answer.
	wctx, stop := context.WithCancel(t.Context())
	watched := make(chan error, 1)
	go func() { watched <- w.store.WatchDirectories(wctx, func(dirsync.DirKey) {}) }()
	defer func() {
		stop()
		<-watched
	}()
	d, err := svc.Directory(t.Context(), "default", "big")
	if err != nil || d.PendingTriggers != 500 {
		t.Errorf("with the index: %+v, %v", d, err)
	}
}

func mapsEqual[K comparable](a, b map[K]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}
