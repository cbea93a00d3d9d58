package backend

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/backoff"
)

// StatusReader reads a directory's sync state.
type StatusReader interface {
	SyncStatus(ctx context.Context, directoryID string) (SyncState, error)
}

// WaitOptions tunes Wait. Zero values take the defaults.
type WaitOptions struct {
	// InitialInterval is the first wait between polls. Default 1s.
	InitialInterval time.Duration
	// MaxInterval caps the growing wait between polls. Default 15s.
	MaxInterval time.Duration
	// Timeout bounds the whole wait. Default 30m. The context's deadline applies as well.
	Timeout time.Duration
	// Before is the state read before the sync was started. A terminal state that has the same
	// start time as Before is the previous sync still being reported, not the new one, and is
	// waited past. Comparing the backend's own timestamps avoids trusting clocks on two machines.
	Before *SyncState
	// PostedAt, when set, is when the sync waited for was asked for (the POST). A terminal state
	// is then accepted only once confirmed: the sync was seen RUNNING during this wait, or its
	// start time is known and is not Before's, or ConfirmAfter has passed since PostedAt. A
	// backend that reports no dates would otherwise let the previous sync's COMPLETED, still
	// reported right after the POST, pass for ours.
	PostedAt time.Time
	// ConfirmAfter: see PostedAt. Default 20s.
	ConfirmAfter time.Duration
	// Expected, when known (and PostedAt is set), is when the directory's recent syncs ended
	// after their POST: the polls are planned from it (PollPlan).
	Expected Expected
	// PollFloor is the least wait between polls of a planned schedule. Default 500ms.
	PollFloor time.Duration
	// Dated: the backend's status carries start times (PollPlan.Dated).
	Dated bool
	// Progress, if set, is called with every state read.
	Progress func(SyncState)
	// Logger hears about polls that failed and are retried. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (o WaitOptions) withDefaults() WaitOptions {
	if o.InitialInterval <= 0 {
		o.InitialInterval = time.Second
	}
	if o.MaxInterval <= 0 {
		o.MaxInterval = 15 * time.Second
	}
	if o.MaxInterval < o.InitialInterval {
		o.MaxInterval = o.InitialInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ConfirmAfter <= 0 {
		o.ConfirmAfter = 20 * time.Second
	}
	return o
}

// Wait polls a directory's sync until it is terminal and returns that state; a FAILED sync is a
// result, not an error. RUNNING, UNDEFINED and unknown statuses keep it polling, as do retryable
// errors (the backend briefly unreachable). It returns an error wrapping ErrSyncTimeout
// (retryable) when the timeout passes, a permanent error at once, or the context's error.
func Wait(ctx context.Context, r StatusReader, directoryID string, opts WaitOptions) (SyncState, error) {
	opts = opts.withDefaults()
	deadline := opts.Now().Add(opts.Timeout)
	plan := opts.plan()
	sincePost := func() time.Duration { return opts.Now().Sub(opts.PostedAt) }
	if first := plan.First(sincePost()); first > 0 {
		if err := backoff.Wait(ctx, min(first, max(deadline.Sub(opts.Now()), 0))); err != nil {
			return SyncState{}, fmt.Errorf("wait for sync: %w", err)
		}
	}
	var last SyncState
	var lastErr error
	seenRunning := false
	for n := 1; ; n++ {
		st, err := r.SyncStatus(ctx, directoryID)
		switch {
		case err != nil && !IsRetryable(err):
			return last, err
		case err != nil:
			lastErr = err
			opts.Logger.WarnContext(ctx, "polling the sync status failed; still waiting", "directory_id", directoryID, "err", err)
		default:
			last, lastErr = st, nil
			if opts.Progress != nil {
				opts.Progress(st)
			}
			seenRunning = seenRunning || st.Status == StatusRunning
			if st.Status.Terminal() && !isPrevious(st, opts.Before) && opts.confirmed(st, seenRunning) {
				return st, nil
			}
		}
		wait := min(plan.Next(n, sincePost()), deadline.Sub(opts.Now()))
		if wait <= 0 {
			return last, waitTimeout(last, lastErr, opts.Timeout)
		}
		if err := backoff.Wait(ctx, wait); err != nil {
			return last, fmt.Errorf("wait for sync: %w", err)
		}
	}
}

// plan is the poll schedule: planned from the history only for a sync this wait POSTed.
func (o WaitOptions) plan() PollPlan {
	p := PollPlan{Initial: o.InitialInterval, Max: o.MaxInterval, Floor: o.PollFloor}
	if !o.PostedAt.IsZero() {
		p.Expected, p.Dated = o.Expected, o.Dated
	}
	return p
}

// confirmed reports a terminal state that is the sync asked for at PostedAt (see WaitOptions).
// DELEGATED needs no confirmation: nothing was started.
func (o WaitOptions) confirmed(st SyncState, seenRunning bool) bool {
	switch {
	case o.PostedAt.IsZero(), seenRunning, st.Status == StatusDelegated:
		return true
	case !st.StartedAt.IsZero() && (o.Before == nil || !st.StartedAt.Equal(o.Before.StartedAt)):
		return true
	}
	return !o.Now().Before(o.PostedAt.Add(o.ConfirmAfter))
}

func isPrevious(st SyncState, before *SyncState) bool {
	return before != nil && !before.StartedAt.IsZero() && st.StartedAt.Equal(before.StartedAt)
}

func waitTimeout(last SyncState, lastErr error, timeout time.Duration) error {
	msg := fmt.Sprintf("last status %s after %s", last.Status, timeout)
	if last.Status == "" {
		msg = fmt.Sprintf("no status read in %s", timeout)
	}
	if lastErr != nil {
		msg += fmt.Sprintf(" (last error: %v)", lastErr)
	}
	return &timeoutError{msg: msg}
}
