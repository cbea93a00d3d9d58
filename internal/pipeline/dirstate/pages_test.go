package dirstate_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirstate"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
)

// A run of 3,000 triggers on a broker with a 16 KiB max_payload: the record stays small, every
// page is under half the limit, the pages list every trigger once in the order they were
// accepted, and forgetting the run leaves markers and nothing else.
func TestRunsArePagedUnderTheBrokersLimit(t *testing.T) {
	const n, maxPayload = 3000, 16 << 10
	const intakeSpan = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01"
	ctx := context.Background()
	res := newResources(t, 5*time.Second)
	s := dirstate.New(dirstate.Buckets{Pending: res.Pending, Runs: res.Runs, Leases: res.Leases, Reported: res.History},
		dirstate.Options{MaxPayload: maxPayload})
	var want []string
	for i := range n {
		tr := dirsync.Trigger{ID: fmt.Sprintf("t-%05d", i), Source: "urn:test:hr-import", Type: "ad.user.created",
			User: fmt.Sprintf("user-%05d", i), Tenant: "default", DirectoryID: "dir-corp", DirectoryName: "Corp AD",
			IgnoreSafeguards: i == 1234}
		if i == 7 {
			tr.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		}
		if i == 9 {
			tr.IntakeSpan = intakeSpan
		}
		if err := s.AddPending(ctx, tr); err != nil {
			t.Fatal(err)
		}
		want = append(want, tr.ID)
	}
	dir := dirsync.NewDirKey("default", "dir-corp")
	r, err := s.NewRun(ctx, dir, "run-big", nil)
	if err != nil || r == nil {
		t.Fatalf("new run: %v, %v", r, err)
	}
	if err := s.Collect(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.Count != n || r.Phase != dirsync.PhaseSnapshot || !r.IgnoreSafeguards || r.Traceparent == "" || r.IntakeSpan != intakeSpan || len(r.Sample) != 10 {
		t.Fatalf("run: count %d phase %s safeguards %v trace %q intake span %q sample %d", r.Count, r.Phase, r.IgnoreSafeguards, r.Traceparent,
			r.IntakeSpan, len(r.Sample))
	}
	loaded, err := s.LoadRun(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := res.Runs.Get(ctx, string(dir))
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Pages != r.Pages || len(e.Value()) > 8<<10 {
		t.Fatalf("stored record: %d pages, %d bytes", loaded.Pages, len(e.Value()))
	}
	var got []string
	for p := 1; p <= r.Pages; p++ {
		pe, err := res.Runs.Get(ctx, dirstate.PageKey(r, p))
		if err != nil {
			t.Fatal(err)
		}
		if len(pe.Value()) > maxPayload/2 {
			t.Errorf("page %d is %d bytes, over half the max_payload", p, len(pe.Value()))
		}
		page, err := s.Page(ctx, r, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range page {
			got = append(got, tr.ID)
			if (tr.ID == "t-00009") != (tr.IntakeSpan == intakeSpan) {
				t.Fatalf("trigger %s keeps intake span %q", tr.ID, tr.IntakeSpan)
			}
		}
	}
	if r.Pages < 10 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%d pages list %d triggers; want every trigger once in acceptance order", r.Pages, len(got))
	}

	if err := s.Forget(ctx, r); err != nil {
		t.Fatal(err)
	}
	if pend, err := s.Pending(ctx, dir); err != nil || len(pend) != 0 {
		t.Fatalf("pending after forget: %d, %v", len(pend), err)
	}
	if _, err := res.Runs.Get(ctx, dirstate.PageKey(r, 1)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("page 1 after forget: %v", err)
	}
	if r, err := s.LoadRun(ctx, dir); err != nil || r != nil {
		t.Fatalf("run after forget: %v, %v", r, err)
	}
	probe := dirsync.Trigger{ID: "t-02999", Source: "urn:test:hr-import", Tenant: "default", DirectoryID: "dir-corp"}
	if by, ok, err := s.Reported(ctx, probe.Key()); err != nil || !ok || by != "run-big" {
		t.Fatalf("reported marker = %q, %v, %v; want run-big", by, ok, err)
	}
	probe.ID = "never-seen"
	if _, ok, err := s.Reported(ctx, probe.Key()); err != nil || ok {
		t.Fatalf("a trigger never reported has a marker: %v, %v", ok, err)
	}
}

// A holder that died while writing a run's pages left more pages than the triggers now need: the
// next holder writes them again and removes the extra ones, so the run covers what is pending.
func TestCollectingRunIsCollectedAgain(t *testing.T) {
	ctx := context.Background()
	res := newResources(t, 5*time.Second)
	s := dirstate.New(dirstate.Buckets{Pending: res.Pending, Runs: res.Runs, Leases: res.Leases},
		dirstate.Options{MaxPayload: 8 << 10})
	tr := dirsync.Trigger{ID: "only", Source: "urn:test", Type: "ad.group.created", Tenant: "default", DirectoryID: "dir-corp"}
	if err := s.AddPending(ctx, tr); err != nil {
		t.Fatal(err)
	}
	dir := dirsync.NewDirKey("default", "dir-corp")
	r, err := s.NewRun(ctx, dir, "run-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	for p := 1; p <= 3; p++ { // left by the holder that died
		if _, err := res.Runs.Put(ctx, dirstate.PageKey(r, p), []byte(`[{"id":"stale"}]`)); err != nil {
			t.Fatal(err)
		}
	}
	resumed, err := s.LoadRun(ctx, dir)
	if err != nil || resumed.Phase != dirsync.PhaseCollecting {
		t.Fatalf("resumed run: %+v, %v", resumed, err)
	}
	if err := s.Collect(ctx, resumed); err != nil {
		t.Fatal(err)
	}
	page, err := s.Page(ctx, resumed, 1)
	if err != nil || resumed.Pages != 1 || len(page) != 1 || page[0].ID != "only" {
		t.Fatalf("pages %d, page 1 = %+v, %v", resumed.Pages, page, err)
	}
	for p := 2; p <= 3; p++ {
		if _, err := res.Runs.Get(ctx, dirstate.PageKey(resumed, p)); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Errorf("stale page %d kept: %v", p, err)
		}
	}
}

// With the watch running, counts and listings come from the index: it sees every put and every
// delete, so operator views count pending triggers without listing the bucket, and a run lists
// them in the order they were recorded.
func TestPendingIndexFollowsTheBucket(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := newResources(t, 5*time.Second)
	s := dirstate.New(dirstate.Buckets{Pending: res.Pending, Runs: res.Runs, Leases: res.Leases}, dirstate.Options{})
	dir := dirsync.NewDirKey("default", "dir-corp")
	go func() { _ = s.WatchDirectories(ctx, func(dirsync.DirKey) {}) }()
	var keys []string
	for i := range 300 {
		tr := dirsync.Trigger{ID: fmt.Sprintf("t-%03d", i), Source: "urn:test", Type: "ad.group.created", Tenant: "default", DirectoryID: "dir-corp"}
		if err := s.AddPending(ctx, tr); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tr.Key())
	}
	countIs := func(want int) func() bool {
		return func() bool { n, ok := s.PendingCount(dir); return ok && n == want }
	}
	poll.Until(t, 10*time.Second, "the index to count 300", countIs(300))
	pend, err := s.Pending(ctx, dir)
	if err != nil || len(pend) != 300 || pend[0].Trigger.ID != "t-000" || pend[299].Trigger.ID != "t-299" {
		t.Fatalf("pending from the index: %d, %v", len(pend), err)
	}
	// Forgotten through the bucket directly, as another replica would: the watch removes them.
	for _, k := range keys[:100] {
		if err := res.Pending.Purge(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, 10*time.Second, "the index to count 200", countIs(200))
	counts, err := s.IndexedPendingCounts(ctx)
	if err != nil || counts[dir] != 200 {
		t.Fatalf("counts = %v, %v", counts, err)
	}
}

// Recording is create-if-absent, with asynchronous publishes as the worker makes them: a trigger
// recorded again (a redelivery) keeps its first entry and revision, and a trigger forgotten (its
// key purged) can be recorded again.
func TestAddPendingKeepsTheFirstEntry(t *testing.T) {
	ctx := context.Background()
	js, res := newResourcesJS(t, 5*time.Second)
	s := dirstate.New(dirstate.Buckets{Pending: res.Pending, Runs: res.Runs, Leases: res.Leases}, dirstate.Options{JetStream: js})
	first := dirsync.Trigger{ID: "t1", Source: "urn:test", Type: "ad.group.created", Group: "first", Tenant: "default", DirectoryID: "dir-corp"}
	if err := s.AddPending(ctx, first); err != nil {
		t.Fatal(err)
	}
	e1, err := res.Pending.Get(ctx, first.Key())
	if err != nil {
		t.Fatal(err)
	}
	again := first
	again.Group = "redelivered"
	if err := s.AddPending(ctx, again); err != nil {
		t.Fatalf("recording a trigger again: %v", err)
	}
	e2, err := res.Pending.Get(ctx, first.Key())
	if err != nil || e2.Revision() != e1.Revision() || !strings.Contains(string(e2.Value()), `"first"`) {
		t.Fatalf("entry after a second recording: revision %d (was %d), %s, %v", e2.Revision(), e1.Revision(), e2.Value(), err)
	}
	if err := res.Pending.Purge(ctx, first.Key()); err != nil {
		t.Fatal(err)
	}
	if err := s.AddPending(ctx, again); err != nil {
		t.Fatalf("recording a forgotten trigger: %v", err)
	}
	e3, err := res.Pending.Get(ctx, first.Key())
	if err != nil || !strings.Contains(string(e3.Value()), `"redelivered"`) {
		t.Fatalf("entry after purge and recording: %v, %v", e3, err)
	}
}

// A cancellation covers the triggers recorded up to its order, those left in the pending set by a
// run that took others before, and never one recorded after the order: its pipeline published
// after the operator cancelled, and is synced.
func TestCancelRunCoversOnlyTriggersRecordedBeforeTheOrder(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := newResources(t, 5*time.Second)
	s := dirstate.New(dirstate.Buckets{Pending: res.Pending, Runs: res.Runs, Leases: res.Leases}, dirstate.Options{})
	go func() { _ = s.WatchDirectories(ctx, func(dirsync.DirKey) {}) }()
	dir := dirsync.NewDirKey("default", "dir-corp")
	add := func(id string) {
		t.Helper()
		if err := s.AddPending(ctx, dirsync.Trigger{ID: id, Source: "urn:test", Type: "ad.group.created", Tenant: "default", DirectoryID: "dir-corp"}); err != nil {
			t.Fatal(err)
		}
	}
	add("taken")
	poll.Until(t, 5*time.Second, "the index to see the first trigger", func() bool {
		n, _, ok := s.PendingAfter(dir, 0)
		return ok && n == 1
	})
	run, err := s.NewRun(ctx, dir, "run-sync", nil)
	if err != nil || s.Collect(ctx, run) != nil || run.Count != 1 || run.Collected == 0 {
		t.Fatalf("the run in flight: %+v, %v", run, err)
	}
	add("before-1")
	add("before-2")
	var n int
	var upTo uint64
	poll.Until(t, 5*time.Second, "the index to see the triggers", func() bool {
		var ok bool
		n, upTo, ok = s.PendingAfter(dir, run.Collected)
		return ok && n == 2
	})
	add("after")
	if err := s.Forget(ctx, run); err != nil {
		t.Fatal(err)
	}
	c, err := s.NewRun(ctx, dir, "run-cancel", &dirsync.Cancel{ID: "c1", By: "alice", Reason: "r", UpTo: upTo})
	if err != nil || c == nil {
		t.Fatalf("cancel run: %+v, %v", c, err)
	}
	if err := s.Collect(ctx, c); err != nil {
		t.Fatal(err)
	}
	page, err := s.Page(ctx, c, 1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tr := range page {
		got = append(got, tr.ID)
	}
	if c.Count != 2 || !slices.Equal(got, []string{"before-1", "before-2"}) {
		t.Fatalf("the cancellation covers %q (count %d), want the two triggers recorded before the order", got, c.Count)
	}
}
