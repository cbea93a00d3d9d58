package dirstate_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/dirstate"
)

func finishedRun(id, status string, triggers int) *dirstate.Run {
	r := &dirstate.Run{RunID: id, Tenant: "default", DirectoryID: "dir-corp", DirectoryName: "Corp AD",
		Phase: dirstate.PhaseReported, Keys: []string{"k"}, Outcome: &dirstate.Outcome{Status: status}}
	for i := range triggers {
		r.Triggers = append(r.Triggers, dirstate.Trigger{ID: fmt.Sprintf("%s-t%d", id, i)})
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
	runs, err := h.Runs(ctx, dirstate.NewDirKey("default", "dir-corp"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range runs {
		got = append(got, r.RunID+"/"+r.Outcome.Status)
		if r.Keys != nil {
			t.Errorf("run %s keeps its pending keys in the history", r.RunID)
		}
	}
	if want := "[run-4/FAILED run-3/COMPLETED run-2/COMPLETED]"; fmt.Sprint(got) != want {
		t.Fatalf("history = %v, want %s", got, want)
	}
}

func TestHistoryBoundsTriggersButKeepsTheirCount(t *testing.T) {
	ctx := context.Background()
	h := dirstate.NewHistory(newResources(t, 5*time.Second).History, 3)
	if err := h.Record(ctx, finishedRun("big", "COMPLETED", dirstate.MaxHistoryTriggers+100)); err != nil {
		t.Fatal(err)
	}
	all, err := h.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runs := all[dirstate.NewDirKey("default", "dir-corp")]
	if len(runs) != 1 || len(runs[0].Triggers) != dirstate.MaxHistoryTriggers || runs[0].TriggerCount != dirstate.MaxHistoryTriggers+100 {
		t.Fatalf("history = %d runs, %d triggers kept, count %d", len(runs), len(runs[0].Triggers), runs[0].TriggerCount)
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
	runs, err := h.Runs(ctx, dirstate.NewDirKey("default", "dir-corp"))
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
	p := dirstate.NewPauses(newResources(t, 5*time.Second).Control, func() time.Time { return now })
	d := dirstate.NewDirKey("default", "dir-corp")
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
