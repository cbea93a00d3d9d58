package coalesce

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/dirstate"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/results"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/vidm"
)

// runOnce holds d's lease for one run: it resumes the run a previous holder left, or snapshots the
// pending triggers into a new one, and drives it as far as it can.
func (e *Engine) runOnce(ctx context.Context, d dirstate.DirKey) error {
	lease, err := e.store.Acquire(ctx, d, e.cfg.Holder, e.cfg.LeaseTTL)
	if err != nil {
		return err
	}
	e.leases.Add(1)
	rctx, stop := lease.Keep(ctx)
	defer func() {
		stop()
		defer e.leases.Add(-1)
		// Released even on shutdown, so another replica can take over at once.
		relCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := lease.Release(relCtx); err != nil {
			e.log.Warn("releasing lease failed; it expires by itself", "directory", d, "err", err)
		}
	}()
	run, err := e.store.LoadRun(rctx, d)
	if err != nil {
		return err
	}
	if run == nil {
		if paused, err := e.paused(rctx, d); paused || err != nil {
			return err
		}
		if run, err = e.snapshot(rctx, d); run == nil || err != nil {
			return err
		}
	} else {
		e.log.Info("resuming run", "run_id", run.RunID, "directory", run.DirectoryName, "phase", run.Phase)
	}
	err = e.drive(rctx, run)
	if cause := context.Cause(rctx); err != nil && errors.Is(cause, dirstate.ErrLeaseLost) {
		return fmt.Errorf("run %s stopped: %w", run.RunID, cause)
	}
	return err
}

// paused reports an operator's pause of d. Its triggers stay pending; resuming notifies the
// engine (the control bucket's watch, or the periodic rescan), which then syncs them.
func (e *Engine) paused(ctx context.Context, d dirstate.DirKey) (bool, error) {
	if e.cfg.Gate == nil {
		return false, nil
	}
	p, err := e.cfg.Gate.Paused(ctx, d)
	if err != nil {
		return false, fmt.Errorf("reading whether %s is paused: %w", d, err)
	}
	if p {
		e.log.Debug("directory paused; its triggers stay pending", "directory", d)
	}
	return p, nil
}

// snapshot fixes the triggers a new run covers. Everything in it was accepted before the POST that
// follows, so the sync covers it by causality, not by comparing clocks.
func (e *Engine) snapshot(ctx context.Context, d dirstate.DirKey) (*dirstate.Run, error) {
	pend, err := e.store.Pending(ctx, d)
	if err != nil || len(pend) == 0 {
		return nil, err
	}
	first := pend[0].Trigger
	run := &dirstate.Run{
		RunID: uuid.NewString(), Tenant: first.Tenant, DirectoryID: first.DirectoryID,
		DirectoryName: first.DirectoryName, Phase: dirstate.PhaseSnapshot, CreatedAt: e.cfg.Now(),
	}
	for _, p := range pend {
		run.Keys = append(run.Keys, p.Key)
		run.Triggers = append(run.Triggers, p.Trigger)
		run.IgnoreSafeguards = run.IgnoreSafeguards || p.Trigger.IgnoreSafeguards
	}
	if err := e.store.SaveRun(ctx, run); err != nil {
		return nil, err
	}
	e.log.Info("run created", "run_id", run.RunID, "directory", run.DirectoryName, "triggers", len(run.Triggers))
	return run, nil
}

// drive moves a run through its phases until it is reported or an error stops it.
func (e *Engine) drive(ctx context.Context, run *dirstate.Run) error {
	for {
		var err error
		switch run.Phase {
		case dirstate.PhaseSnapshot, dirstate.PhasePosting:
			err = e.start(ctx, run)
		case dirstate.PhasePosted:
			err = e.await(ctx, run)
		case dirstate.PhaseReported:
			return e.report(ctx, run)
		default:
			return fmt.Errorf("run %s has unknown phase %q", run.RunID, run.Phase)
		}
		if err != nil {
			return err
		}
	}
}

// start gets a sync running that began after the snapshot: ours, or one that started after it.
func (e *Engine) start(ctx context.Context, run *dirstate.Run) error {
	st, err := e.vidm.SyncStatus(ctx, run.DirectoryID)
	if err != nil {
		return e.vidmFailure(ctx, run, err)
	}
	if run.Phase == dirstate.PhasePosting && startedSince(st, run.BeforeStart) {
		// Our POST (or another after the snapshot) reached vIDM before the last holder could
		// record it: that sync covers the snapshot, adopt it instead of starting another.
		return e.posted(ctx, run, st.StartedAt)
	}
	if st.Status == vidm.StatusRunning {
		e.log.Info("vIDM already runs a sync of the directory; waiting for it before starting ours",
			"run_id", run.RunID, "directory", run.DirectoryName)
		_, err := e.vidm.WaitForSync(ctx, run.DirectoryID, e.waitOptions(e.cfg.SyncDeadline, nil))
		if errors.Is(err, vidm.ErrSyncTimeout) {
			// Every accepted trigger gets a terminal result: a sync that never ends is reported,
			// not waited on forever.
			return e.record(ctx, run, dirstate.Outcome{Status: "FAILED", ErrCode: results.CodeSyncTimeout,
				ErrMessage: fmt.Sprintf("a sync already running in vIDM did not finish within %s", e.cfg.SyncDeadline), Retryable: true})
		}
		if err != nil {
			return e.vidmFailure(ctx, run, err)
		}
		return nil // look again: start ours now that theirs is over
	}
	run.Phase, run.BeforeStart = dirstate.PhasePosting, st.StartedAt
	if err := e.store.SaveRun(ctx, run); err != nil {
		return err
	}
	vctx := vidm.WithTraceparent(vidm.WithRequestID(ctx, run.RunID), firstTraceparent(run))
	err = e.vidm.StartSync(vctx, run.DirectoryID, run.IgnoreSafeguards)
	switch {
	case errors.Is(err, vidm.ErrSyncInProgress):
		return nil // one started between our look and our POST; the next look adopts or waits
	case err != nil:
		return e.vidmFailure(ctx, run, err)
	}
	return e.posted(ctx, run, e.cfg.Now())
}

func startedSince(st vidm.SyncState, before time.Time) bool {
	return !st.StartedAt.IsZero() && !st.StartedAt.Equal(before) && st.Status != vidm.StatusUndefined
}

func (e *Engine) posted(ctx context.Context, run *dirstate.Run, at time.Time) error {
	run.Phase, run.StartedAt = dirstate.PhasePosted, at
	if err := e.store.SaveRun(ctx, run); err != nil {
		return err
	}
	e.log.Info("sync started", "run_id", run.RunID, "directory", run.DirectoryName, "triggers", len(run.Triggers))
	e.cfg.Observer.RunStarted(run)
	if err := e.results.Started(ctx, run); err != nil {
		// Informational only: the terminal result is what guarantees delivery.
		e.log.Warn("publishing the started event failed", "run_id", run.RunID, "err", err)
	}
	return nil
}

// await polls the run's sync to its end and records the outcome.
func (e *Engine) await(ctx context.Context, run *dirstate.Run) error {
	var before *vidm.SyncState
	if !run.BeforeStart.IsZero() {
		before = &vidm.SyncState{StartedAt: run.BeforeStart}
	}
	remaining := max(e.cfg.SyncDeadline-e.cfg.Now().Sub(run.StartedAt), time.Second)
	st, err := e.vidm.WaitForSync(ctx, run.DirectoryID, e.waitOptions(remaining, before))
	switch {
	case errors.Is(err, vidm.ErrSyncTimeout):
		return e.record(ctx, run, dirstate.Outcome{Status: "FAILED", ErrCode: results.CodeSyncTimeout,
			ErrMessage: fmt.Sprintf("the sync did not finish within %s", e.cfg.SyncDeadline), Retryable: true})
	case err != nil:
		return e.vidmFailure(ctx, run, err)
	case st.Status == vidm.StatusCompleted:
		return e.record(ctx, run, dirstate.Outcome{Status: "COMPLETED", FinishedAt: finishedAt(st, e.cfg.Now()), Connector: st.Connector})
	}
	msg := st.Message
	if msg == "" {
		msg = "vIDM reported the sync as FAILED without a message"
	}
	return e.record(ctx, run, dirstate.Outcome{Status: "FAILED", FinishedAt: finishedAt(st, e.cfg.Now()),
		ErrCode: results.CodeSyncFailed, ErrMessage: msg, Connector: st.Connector})
}

func finishedAt(st vidm.SyncState, now time.Time) time.Time {
	if !st.FinishedAt.IsZero() {
		return st.FinishedAt
	}
	return now
}

// vidmFailure turns a permanent vIDM error into a failed outcome; retryable ones (and the end of
// the context) are returned so the run is tried again later with its snapshot intact.
func (e *Engine) vidmFailure(ctx context.Context, run *dirstate.Run, err error) error {
	if ctx.Err() != nil || vidm.IsRetryable(err) {
		return err
	}
	code := results.CodeVIDMError
	switch {
	case errors.Is(err, vidm.ErrDirectoryNotFound):
		code = results.CodeDirectoryNotFound
	case errors.Is(err, vidm.ErrUnauthorized):
		code = results.CodeUnauthorized
	}
	// Retryable for the publisher: a fixed credential or directory makes a new trigger succeed.
	return e.record(ctx, run, dirstate.Outcome{Status: "FAILED", ErrCode: code, ErrMessage: err.Error(),
		Retryable: code == results.CodeUnauthorized})
}

// record fixes the outcome before anything is published, so a resumed run reports the same.
func (e *Engine) record(ctx context.Context, run *dirstate.Run, o dirstate.Outcome) error {
	if o.FinishedAt.IsZero() {
		o.FinishedAt = e.cfg.Now()
	}
	run.Phase, run.Outcome = dirstate.PhaseReported, &o
	return e.store.SaveRun(ctx, run)
}

// report publishes the result, then forgets the covered triggers and the run: a crash in between
// re-publishes under the same event id, which the stream de-duplicates.
func (e *Engine) report(ctx context.Context, run *dirstate.Run) error {
	if err := e.results.Finished(ctx, run); err != nil {
		return err
	}
	e.cfg.Observer.RunReported(run)
	if err := e.store.DeletePending(ctx, run.Keys); err != nil {
		return err
	}
	if err := e.store.DeleteRun(ctx, run); err != nil {
		return err
	}
	e.log.Info("sync reported", "run_id", run.RunID, "directory", run.DirectoryName,
		"status", run.Outcome.Status, "code", run.Outcome.ErrCode, "triggers", len(run.Triggers))
	return nil
}

func (e *Engine) waitOptions(timeout time.Duration, before *vidm.SyncState) vidm.WaitOptions {
	return vidm.WaitOptions{InitialInterval: e.cfg.PollInitial, MaxInterval: e.cfg.PollMax, Timeout: timeout, Before: before}
}

func firstTraceparent(run *dirstate.Run) string {
	for _, t := range run.Triggers {
		if t.Traceparent != "" {
			return t.Traceparent
		}
	}
	return ""
}
