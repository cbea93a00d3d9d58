package backend_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/fakeclock"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
)

// lister is a backend's directory list that can be made to hang or fail.
type lister struct {
	calls   atomic.Int32
	mu      sync.Mutex
	dirs    []backend.Directory
	err     error
	release chan struct{} // non-nil: fetches wait for it
}

func (l *lister) fetch(context.Context) ([]backend.Directory, error) {
	l.calls.Add(1)
	l.mu.Lock()
	release, dirs, err := l.release, l.dirs, l.err
	l.mu.Unlock()
	if release != nil {
		<-release
	}
	return dirs, err
}

func (l *lister) set(dirs []backend.Directory, err error, release chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dirs, l.err, l.release = dirs, err, release
}

// TestStaleListAnswersWhileTheBackendHangs: once listed, a directory is resolved from the cache
// even when the TTL passed and the backend hangs or fails; one refresh runs in the background
// and its answer is used once it comes.
func TestStaleListAnswersWhileTheBackendHangs(t *testing.T) {
	clk := fakeclock.New(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	l := &lister{dirs: []backend.Directory{{ID: "d1", Name: "Corp AD", Domains: []string{"corp.example.com"}}}}
	dc := backend.NewDirectoryCache(time.Minute, 30*time.Second, clk.Now, l.fetch)
	ctx := context.Background()
	if d, err := dc.Resolve(ctx, "corp.example.com"); err != nil || d.ID != "d1" {
		t.Fatalf("first resolve = %+v, %v", d, err)
	}

	hang := make(chan struct{})
	l.set([]backend.Directory{{ID: "d1", Name: "Corp AD"}, {ID: "d2", Name: "EMEA AD"}}, nil, hang)
	clk.Advance(2 * time.Minute)
	for range 50 { // every trigger of a burst, while the backend hangs
		if d, err := dc.Resolve(ctx, "Corp AD"); err != nil || d.ID != "d1" {
			t.Fatalf("resolve during the hang = %+v, %v", d, err)
		}
	}
	poll.Until(t, 5*time.Second, "one background refresh", func() bool { return l.calls.Load() == 2 })
	for range 50 {
		if _, err := dc.Resolve(ctx, "Corp AD"); err != nil {
			t.Fatal(err)
		}
	}
	if n := l.calls.Load(); n != 2 {
		t.Fatalf("%d list calls while one hangs, want the first and one background refresh", n)
	}
	close(hang)
	poll.Until(t, 5*time.Second, "the refreshed list", func() bool {
		dirs, err := dc.List(ctx)
		return err == nil && len(dirs) == 2
	})

	// A failing refresh keeps the last list; the next look tries again.
	l.set(nil, errors.New("503"), nil)
	clk.Advance(2 * time.Minute)
	if dirs, err := dc.List(ctx); err != nil || len(dirs) != 2 {
		t.Fatalf("list with a failing backend = %v, %v; want the last good list", dirs, err)
	}
	poll.Until(t, 5*time.Second, "the failed refresh to end", func() bool { return l.calls.Load() == 3 })

	// A reference the list does not know still waits for the backend, and gets its error.
	if _, err := dc.Resolve(ctx, "Nowhere AD"); err == nil {
		t.Fatal("an unknown directory resolved while the backend fails")
	}
}

// TestFirstListWaitsForTheBackend: with nothing cached there is nothing to answer from.
func TestFirstListWaitsForTheBackend(t *testing.T) {
	l := &lister{err: errors.New("connection refused")}
	dc := backend.NewDirectoryCache(time.Minute, time.Second, time.Now, l.fetch)
	if _, err := dc.List(context.Background()); err == nil {
		t.Fatal("the first list succeeded without the backend")
	}
}
