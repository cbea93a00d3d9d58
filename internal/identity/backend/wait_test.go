package backend_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
)

// script answers polls from a list, repeating the last answer, and moves a clock one second per
// poll so that ConfirmAfter can be crossed without waiting.
type script struct {
	mu     sync.Mutex
	states []backend.SyncState
	polls  int
	now    time.Time
}

func (s *script) SyncStatus(context.Context, string) (backend.SyncState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.states[min(s.polls, len(s.states)-1)]
	s.polls++
	s.now = s.now.Add(time.Second)
	return st, nil
}

func (s *script) clock() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

func TestWaitAcceptsATerminalStateOnlyOnceConfirmed(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	prevStart, ourStart := t0.Add(-time.Hour), t0.Add(time.Second)
	done := backend.SyncState{Status: backend.StatusCompleted}
	running := backend.SyncState{Status: backend.StatusRunning}
	dated := func(st backend.SyncState, start time.Time) backend.SyncState { st.StartedAt = start; return st }
	tests := []struct {
		name      string
		states    []backend.SyncState
		before    *backend.SyncState
		posted    bool
		wantPolls int
	}{
		{"no dates: the previous COMPLETED is waited past until RUNNING is seen",
			[]backend.SyncState{done, done, running, done}, nil, true, 4},
		{"no dates and never seen running: accepted once ConfirmAfter has passed",
			[]backend.SyncState{done}, nil, true, 5},
		{"dates: the previous sync's start is waited past",
			[]backend.SyncState{dated(done, prevStart), dated(done, ourStart)}, &backend.SyncState{StartedAt: prevStart}, true, 2},
		{"dates, no sync before: a dated terminal state is ours at once",
			[]backend.SyncState{dated(done, ourStart)}, nil, true, 1},
		{"delegated needs no confirmation",
			[]backend.SyncState{{Status: backend.StatusDelegated}}, nil, true, 1},
		{"not after a POST (another's sync): the first terminal state",
			[]backend.SyncState{done}, nil, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &script{states: tt.states, now: t0}
			opts := backend.WaitOptions{InitialInterval: time.Millisecond, MaxInterval: time.Millisecond,
				Timeout: time.Hour, Before: tt.before, ConfirmAfter: 5 * time.Second, Now: s.clock}
			if tt.posted {
				opts.PostedAt = t0
			}
			st, err := backend.Wait(t.Context(), s, "d1", opts)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Status.Terminal() || s.polls != tt.wantPolls {
				t.Errorf("returned %s after %d polls, want a terminal state after %d", st.Status, s.polls, tt.wantPolls)
			}
		})
	}
}
