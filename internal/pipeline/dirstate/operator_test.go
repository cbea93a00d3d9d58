package dirstate_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirstate"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

func finishedRun(id, status string, triggers int) *dirsync.Run {
	r := &dirsync.Run{RunID: id, Tenant: "default", DirectoryID: "dir-corp", DirectoryName: "Corp AD",
		Phase: dirsync.PhaseReported, Keys: []string{"k"}, Outcome: &dirsync.Outcome{Status: status},
		Count: triggers, Pages: 1 + triggers/1000, Published: 1, Trouble: &dirsync.Trouble{Failures: 2}}
	for i := range min(triggers, 10) {
		r.Sample = append(r.Sample, dirsync.Trigger{ID: fmt.Sprintf("%s-t%d", id, i)})
	}
	return r
}

func TestHistoryKeepsTheLastRunsNewestFirst(t *testing.T) {
	ctx := context.Background()
	h := dirstate.NewHistory(newResources(t, 5*time.Second).History, 3)
	for i := range 5 {
		if err := h.Record(ctx, finishedRun(fmt.Sprintf("run-%d", i), "COMPLETED", 1)); err != nil {
			t.Fatal(err)
		}
	}
	// Recording a run again (a resumed run reports twice) replaces it rather than adding one.
	if err := h.Record(ctx, finishedRun("run-4", "FAILED", 1)); err != nil {
		t.Fatal(err)
	}
	runs, err := h.Runs(ctx, dirsync.NewDirKey("default", "dir-corp"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range runs {
		got = append(got, r.RunID+"/"+r.Outcome.Status)
		if r.Keys != nil || r.Trouble != nil || r.Published != 0 {
			t.Errorf("run %s keeps its pending keys, trouble or progress in the history", r.RunID)
		}
	}
	if want := "[run-4/FAILED run-3/COMPLETED run-2/COMPLETED]"; fmt.Sprint(got) != want {
		t.Fatalf("history = %v, want %s", got, want)
	}
}

// A run of 100,000 triggers is one small history entry: its sample, count and pages; the
// reported-trigger markers that share the bucket are not read as history.
func TestHistoryBoundsTriggersButKeepsTheirCount(t *testing.T) {
	ctx := context.Background()
	kv := newResources(t, 5*time.Second).History
	h := dirstate.NewHistory(kv, 3)
	if err := h.Record(ctx, finishedRun("big", "COMPLETED", 100_000)); err != nil {
		t.Fatal(err)
	}
	marker := dirsync.Trigger{ID: "t", Source: "urn:test", Tenant: "default", DirectoryID: "dir-corp"}.Key()
	if _, err := kv.Put(ctx, marker, []byte("big")); err != nil {
		t.Fatal(err)
	}
	all, err := h.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runs := all[dirsync.NewDirKey("default", "dir-corp")]
	if len(all) != 1 || len(runs) != 1 || len(runs[0].Sample) != 10 || runs[0].TriggerCount != 100_000 || runs[0].Pages != 101 {
		t.Fatalf("history = %d directories, %d runs, %d triggers kept, count %d", len(all), len(runs), len(runs[0].Sample), runs[0].TriggerCount)
	}
	e, err := kv.Get(ctx, string(dirsync.NewDirKey("default", "dir-corp")))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Value()) > 4<<10 {
		t.Errorf("the history of a run of 100,000 triggers is %d bytes", len(e.Value()))
	}
}

func TestConcurrentHistoryWritesKeepEveryRun(t *testing.T) {
	ctx := context.Background()
	h := dirstate.NewHistory(newResources(t, 5*time.Second).History, 20)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if err := h.Record(ctx, finishedRun(fmt.Sprintf("run-%d", i), "COMPLETED", 1)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	runs, err := h.Runs(ctx, dirsync.NewDirKey("default", "dir-corp"))
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 8 {
		t.Fatalf("%d runs recorded by 8 concurrent writers, want 8", len(runs))
	}
}

func TestPauseAndResume(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	control := newResources(t, 5*time.Second).Control
	p := dirstate.NewPauses(control, func() time.Time { return now })
	// A cancellation order shares the bucket; it is no pause.
	if err := dirstate.NewCancels(control).Order(ctx, dirsync.NewDirKey("default", "dir-lab"), dirsync.Cancel{ID: "c1"}); err != nil {
		t.Fatal(err)
	}
	d := dirsync.NewDirKey("default", "dir-corp")
	if paused, err := p.Paused(ctx, d); err != nil || paused {
		t.Fatalf("fresh directory paused=%v err=%v", paused, err)
	}
	if _, err := p.Pause(ctx, d, "AD migration"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	info, err := p.Pause(ctx, d, "AD migration, day 2")
	if err != nil {
		t.Fatal(err)
	}
	if !info.Since.Equal(now.Add(-time.Hour)) || info.Reason != "AD migration, day 2" {
		t.Fatalf("second pause = %+v: want the first time kept and the new reason", info)
	}
	all, err := p.All(ctx)
	if err != nil || len(all) != 1 {
		t.Fatalf("All = %v, %v", all, err)
	}
	if err := p.Resume(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := p.Resume(ctx, d); err != nil {
		t.Fatalf("resuming twice: %v", err)
	}
	if paused, err := p.Paused(ctx, d); err != nil || paused {
		t.Fatalf("after resume paused=%v err=%v", paused, err)
	}
}

// An order is forgotten once carried out, unless a newer one replaced it meanwhile.
func TestCancelOrderIsForgottenOnlyOnceCarriedOut(t *testing.T) {
	ctx := context.Background()
	c := dirstate.NewCancels(newResources(t, 5*time.Second).Control)
	d := dirsync.NewDirKey("default", "dir-corp")
	if o, err := c.Get(ctx, d); err != nil || o != nil {
		t.Fatalf("no order yet: %+v, %v", o, err)
	}
	if err := c.Order(ctx, d, dirsync.Cancel{ID: "first", By: "alice", UpTo: 7}); err != nil {
		t.Fatal(err)
	}
	if err := c.Order(ctx, d, dirsync.Cancel{ID: "second", By: "bob", UpTo: 9}); err != nil {
		t.Fatal(err)
	}
	if err := c.Done(ctx, d, "first"); err != nil {
		t.Fatal(err)
	}
	if o, err := c.Get(ctx, d); err != nil || o == nil || o.ID != "second" || o.UpTo != 9 {
		t.Fatalf("the newer order after the older was done: %+v, %v", o, err)
	}
	if err := c.Done(ctx, d, "second"); err != nil {
		t.Fatal(err)
	}
	if o, err := c.Get(ctx, d); err != nil || o != nil {
		t.Fatalf("after it was done: %+v, %v", o, err)
	}
}
