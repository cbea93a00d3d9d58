package coalesce_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/streams"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/coalesce"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirstate"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
)

// fakeVIDM reports a scripted status and counts POSTs; the crash windows it stages cannot be
// produced on demand with the simulator. A RUNNING sync is reported once, then COMPLETED.
type fakeVIDM struct {
	mu     sync.Mutex
	status httpcore.SyncState
	posts  int
}

func (f *fakeVIDM) SyncStatus(context.Context, string) (httpcore.SyncState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.status
	if st.Status == httpcore.StatusRunning {
		f.status.Status = httpcore.StatusCompleted
		f.status.FinishedAt = f.status.StartedAt.Add(time.Second)
	}
	return st, nil
}

func (f *fakeVIDM) StartSync(context.Context, string, bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.posts++
	f.status = httpcore.SyncState{Status: httpcore.StatusRunning, StartedAt: time.Now().UTC().Truncate(time.Millisecond)}
	return nil
}

func (f *fakeVIDM) postCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.posts
}

type fakeResults struct {
	mu       sync.Mutex
	finished []*dirsync.Run
}

func (r *fakeResults) Started(context.Context, *dirsync.Run) error { return nil }

func (r *fakeResults) Finished(_ context.Context, run *dirsync.Run, _ int, _ []dirsync.Trigger) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cp := *run
	r.finished = append(r.finished, &cp)
	return nil
}

func (r *fakeResults) runs() []*dirsync.Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*dirsync.Run(nil), r.finished...)
}

// runUntilReported runs an engine on store with one backend until a run is reported and every
// lease released (the result comes before the pending set is cleared), then stops it and returns
// the reported runs.
func runUntilReported(t *testing.T, store *dirstate.Store, b coalesce.Backend, holder string) []*dirsync.Run {
	t.Helper()
	return runUntilReportedWith(t, store, b, coalesce.Config{Holder: holder})
}

// runUntilReportedWith is runUntilReported with an engine of cfg and short timings.
func runUntilReportedWith(t *testing.T, store *dirstate.Store, b coalesce.Backend, cfg coalesce.Config) []*dirsync.Run {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	res := &fakeResults{}
	cfg.Window, cfg.LeaseTTL, cfg.PollInitial = time.Millisecond, 5*time.Second, 10*time.Millisecond
	eng := coalesce.New(cfg, store, coalesce.OneTenant(b), res)
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	poll.Until(t, 10*time.Second, "a run to be reported and forgotten", func() bool {
		return len(res.runs()) > 0 && eng.LeasesHeld() == 0
	})
	cancel()
	<-done
	return res.runs()
}

func newStore(t *testing.T) *dirstate.Store {
	t.Helper()
	js := natstest.JetStream(t)
	res, err := streams.Ensure(context.Background(), js, streams.Names{
		TriggerStream: "T", TriggerSubjects: []string{"t.>"}, ResultStream: "R", ResultSubjectPrefix: "r",
		DeadStream: "D", DeadSubject: "d", Consumer: "c", PendingBucket: "P", RunsBucket: "RU", LeaseBucket: "L", HistoryBucket: "H", ControlBucket: "CT",
	}, streams.Settings{Replicas: 1, ResultDuplicateWindow: time.Minute, LeaseTTL: 5 * time.Second, HistoryMaxAge: time.Hour, AckWait: time.Second, MaxAckPending: 10})
	if err != nil {
		t.Fatal(err)
	}
	return dirstate.New(dirstate.Buckets{Pending: res.Pending, Runs: res.Runs, Leases: res.Leases, Reported: res.History}, dirstate.Options{})
}

// TestResumeAfterCrashAroundThePOST stages a run left in phase "posting" by a holder that died
// around its POST, and checks the next holder's decision. The staged run keeps its triggers
// inline, as a worker before paging wrote runs: an upgrade finishes such a run.
func TestResumeAfterCrashAroundThePOST(t *testing.T) {
	previous := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		vidmNow   httpcore.SyncState
		wantPosts int
	}{
		{"POST reached vIDM: adopt the running sync", httpcore.SyncState{Status: httpcore.StatusRunning, StartedAt: previous.Add(time.Hour)}, 0},
		{"POST reached vIDM and it already finished: adopt it", httpcore.SyncState{Status: httpcore.StatusCompleted, StartedAt: previous.Add(time.Hour), FinishedAt: previous.Add(2 * time.Hour)}, 0},
		{"POST never arrived: vIDM still shows the previous sync, POST once", httpcore.SyncState{Status: httpcore.StatusCompleted, StartedAt: previous, FinishedAt: previous.Add(time.Minute)}, 1},
		{"no sync ever ran: POST once", httpcore.SyncState{Status: httpcore.StatusUndefined}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newStore(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tr := dirsync.Trigger{ID: "t1", Source: "urn:test", Type: "ad.group.created", Tenant: "default", DirectoryID: "dir-corp", DirectoryName: "Corp AD"}
			if err := store.AddPending(ctx, tr); err != nil {
				t.Fatal(err)
			}
			before := previous
			if tt.vidmNow.Status == httpcore.StatusUndefined {
				before = time.Time{}
			}
			run := &dirsync.Run{RunID: "run-crashed", Tenant: "default", DirectoryID: "dir-corp", DirectoryName: "Corp AD",
				Phase: dirsync.PhasePosting, BeforeStart: before, CreatedAt: previous, Keys: []string{tr.Key()}, Triggers: []dirsync.Trigger{tr}}
			if err := store.SaveRun(ctx, run); err != nil {
				t.Fatal(err)
			}
			v := &fakeVIDM{status: tt.vidmNow}
			got := runUntilReported(t, store, v, "next")
			if len(got) != 1 || got[0].RunID != "run-crashed" || got[0].Outcome.Status != "COMPLETED" {
				t.Fatalf("reported %+v, want the crashed run completed once", got)
			}
			if v.postCount() != tt.wantPosts {
				t.Fatalf("POSTs = %d, want %d", v.postCount(), tt.wantPosts)
			}
			if pend, err := store.Pending(context.Background(), run.Dir()); err != nil || len(pend) != 0 {
				t.Fatalf("pending after report = %d, %v", len(pend), err)
			}
		})
	}
}

// turnedOff is a backend whose directory list says the directory's sync is turned off.
type turnedOff struct{ fakeVIDM }

func (*turnedOff) ResolveDirectory(context.Context, string) (backend.Directory, error) {
	return backend.Directory{ID: "dir-corp", Name: "Corp AD", SyncDisabled: true}, nil
}

// A directory whose sync was turned off after its triggers were accepted: they are reported
// failed with their own code, and nothing is asked of vIDM.
func TestRunOfADirectoryTurnedOffFails(t *testing.T) {
	store := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := dirsync.Trigger{ID: "t1", Source: "urn:test", Type: "ad.group.created", Tenant: "default", DirectoryID: "dir-corp", DirectoryName: "Corp AD"}
	if err := store.AddPending(ctx, tr); err != nil {
		t.Fatal(err)
	}
	v := &turnedOff{fakeVIDM{status: httpcore.SyncState{Status: httpcore.StatusUndefined}}}
	got := runUntilReported(t, store, v, "h")
	if len(got) != 1 || got[0].Outcome.Status != contract.StatusFailed || got[0].Outcome.ErrCode != contract.CodeSyncDisabled || v.postCount() != 0 {
		t.Fatalf("reported %+v after %d POSTs, want one FAILED %s and no POST", got[0].Outcome, v.postCount(), contract.CodeSyncDisabled)
	}
}
