package coalesce

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirstate"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/safetext"
)

// runOnce holds d's lease for one run: it resumes the run a previous holder left, or snapshots the
// pending triggers into a new one, and drives it as far as it can.
func (e *Engine) runOnce(ctx context.Context, d dirsync.DirKey) error {
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
	run, order, paused, err := e.load(rctx, d)
	if err != nil {
		return err
	}
	resumed := run != nil
	if run == nil {
		// An operator's cancellation comes first, paused or not: the triggers it covers must
		// not reach vIDM.
		if paused {
			return nil
		}
		if run, err = e.snapshot(rctx, d, order); err != nil {
			return err
		}
		if run == nil {
			return e.cancelDone(rctx, d, order)
		}
	}
	rctx, span := e.startSpan(rctx, run, resumed)
	err = e.runInSpan(rctx, run, resumed)
	endSpan(span, run, err)
	return err
}

// runInSpan drives the run as far as it can under its span (in rctx) and the lease.
func (e *Engine) runInSpan(rctx context.Context, run *dirsync.Run, resumed bool) error {
	if resumed {
		e.log.InfoContext(rctx, "resuming run", "run_id", run.RunID, "directory", run.DirectoryName, "phase", run.Phase)
	}
	if run.Phase != dirsync.PhaseCollecting {
		// A new run was collected before its span started; a collecting one links once collected.
		e.linkTriggers(rctx, run)
	}
	t, err := e.tenant(run)
	if err != nil && run.Phase != dirsync.PhaseReported && run.Cancel == nil {
		// The tenant left the configuration: its triggers still get a terminal result. A run
		// already reported keeps its outcome; only its publishing and clean-up remain. A run
		// still collecting first fixes the triggers it reports.
		if run.Phase == dirsync.PhaseCollecting {
			if err := e.collect(rctx, run, false); err != nil || run.Count == 0 {
				return err
			}
		}
		if err := e.record(rctx, run, dirsync.Outcome{Status: contract.StatusFailed, ErrCode: contract.CodeUnknownTenant,
			ErrMessage: err.Error(), Retryable: true}); err != nil {
			return err
		}
	}
	err = e.drive(rctx, t, run)
	if err == nil && run.Cancel != nil {
		// Forgotten only now, so a replica that stops before the report leaves the order for
		// the next holder, whose run then finds nothing left to cancel.
		err = e.cancelDone(rctx, run.Dir(), run.Cancel)
	}
	if cause := context.Cause(rctx); err != nil && errors.Is(cause, dirstate.ErrLeaseLost) {
		return fmt.Errorf("run %s stopped: %w", run.RunID, cause)
	}
	if err != nil && rctx.Err() == nil {
		e.troubled(rctx, run, err)
	}
	return err
}

// maxLinks bounds the links of a run's span: a run may cover 100,000 triggers. It is also the
// SDK's default OTEL_SPAN_LINK_COUNT_LIMIT.
const maxLinks = 128

// startSpan starts the span of this attempt at the run (one per holder and attempt), a child of
// its first traced trigger's intake span. With tracing off it is a no-op that still carries that
// trigger's trace context, for the log lines and the identity-system requests.
func (e *Engine) startSpan(ctx context.Context, run *dirsync.Run, resumed bool) (context.Context, trace.Span) {
	if parent := run.Parent(); parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	}
	ctx, span := e.tracer.Start(ctx, "run")
	if span.IsRecording() {
		span.SetAttributes(run.SpanAttributes()...)
		span.SetAttributes(attribute.Bool("dirsync.resumed", resumed), attribute.String("dirsync.phase", string(run.Phase)))
	}
	return ctx, span
}

// linkTriggers links the run's span to the covered triggers' intake spans (their publishers'
// for triggers accepted with tracing off), the first maxLinks of them, read from the run's pages:
// what any replica that resumes the run finds too. The total is an attribute.
func (e *Engine) linkTriggers(ctx context.Context, run *dirsync.Run) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() || run.Count == 0 {
		return
	}
	linked := 0
	for n := 1; n <= run.Pages && linked < maxLinks; n++ {
		page, err := e.store.Page(ctx, run, n)
		if err != nil {
			// The links are a convenience; the run goes on without the rest.
			e.log.DebugContext(ctx, "reading a run's page to link its triggers failed", "run_id", run.RunID, "page", n, "err", err)
			break
		}
		for _, t := range page {
			if linked == maxLinks {
				break
			}
			if sc := t.LinkTarget(); sc.IsValid() {
				span.AddLink(trace.Link{SpanContext: sc})
				linked++
			}
		}
	}
	span.SetAttributes(dirsync.AttrTriggerCount.Int(run.Count), attribute.Int("dirsync.trigger_links", linked))
}

// endSpan ends an attempt's span with what it came to.
func endSpan(span trace.Span, run *dirsync.Run, err error) {
	if span.IsRecording() {
		span.SetAttributes(attribute.String("dirsync.phase_reached", string(run.Phase)))
		if o := run.Outcome; o != nil {
			span.SetAttributes(attribute.String("dirsync.status", o.Status))
			if o.ErrCode != "" {
				span.SetAttributes(attribute.String("dirsync.error_code", o.ErrCode))
			}
		}
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "the run stopped before it was reported")
		}
	}
	span.End()
}

// maxTroubleMessage bounds the error a run record keeps.
const maxTroubleMessage = 1 << 10

// troubled records on the run that this attempt failed, so every replica's operator views show
// it, and says so at ERROR once the directory is stuck (then every dirsync.StuckAfter failures).
func (e *Engine) troubled(ctx context.Context, run *dirsync.Run, err error) {
	now := e.cfg.Now()
	tr := dirsync.Trouble{Failures: 1, Since: now, Last: now, Error: safetext.Clean(err.Error(), maxTroubleMessage)}
	if run.Trouble != nil {
		tr.Failures, tr.Since = run.Trouble.Failures+1, run.Trouble.Since
	}
	if tr.Failures%dirsync.StuckAfter == 0 {
		e.log.ErrorContext(ctx, "directory stuck: its run keeps failing", "run_id", run.RunID, "tenant", run.Tenant,
			"directory", run.DirectoryName, "failures", tr.Failures, "since", tr.Since, "triggers", run.Count, "err", err)
	}
	if serr := e.store.SetTrouble(ctx, run, &tr); serr != nil {
		e.log.WarnContext(ctx, "recording a run's failure failed", "run_id", run.RunID, "err", serr)
	}
}

// tenant returns the run's tenant with the engine's settings filled in.
func (e *Engine) tenant(run *dirsync.Run) (Tenant, error) {
	t, err := e.tenants.Tenant(run.Tenant)
	if err != nil {
		return Tenant{}, fmt.Errorf("run %s: tenant %q: %w", run.RunID, run.Tenant, err)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.PollInitial, e.cfg.PollInitial)
	def(&t.PollMax, e.cfg.PollMax)
	def(&t.SyncDeadline, e.cfg.SyncDeadline)
	def(&t.ConfirmAfter, e.cfg.ConfirmAfter)
	def(&t.RecheckAfter, e.cfg.RecheckAfter)
	return t, nil
}

// paused reports an operator's pause of d. Its triggers stay pending; resuming notifies the
// engine (the control bucket's watch, or the periodic rescan), which then syncs them.
func (e *Engine) paused(ctx context.Context, d dirsync.DirKey) (bool, error) {
	if e.cfg.Gate == nil {
		return false, nil
	}
	p, err := e.cfg.Gate.Paused(ctx, d)
	if err != nil {
		return false, fmt.Errorf("reading whether %s is paused: %w", d, err)
	}
	if p {
		e.log.DebugContext(ctx, "directory paused; its triggers stay pending", "directory", d)
	}
	return p, nil
}

// load reads d's unfinished run and the operator's orders for a new one, at once.
func (e *Engine) load(ctx context.Context, d dirsync.DirKey) (run *dirsync.Run, order *dirsync.Cancel, paused bool, err error) {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		run, err = e.store.LoadRun(gctx, d)
		return err
	})
	g.Go(func() (err error) {
		order, paused, err = e.orders(gctx, d)
		return err
	})
	err = g.Wait()
	return run, order, paused, err
}

// snapshot starts a new run of d: everything pending now (up to the cancel order, if any) is
// covered. It was all accepted before the POST that follows, so the sync covers it by causality,
// not by comparing clocks. A few triggers are kept inline and written with the run's next step;
// more are written in pages first. Nil when nothing is pending.
func (e *Engine) snapshot(ctx context.Context, d dirsync.DirKey, order *dirsync.Cancel) (*dirsync.Run, error) {
	run, small, err := e.store.SnapshotSmall(ctx, d, uuid.NewString(), order)
	switch {
	case err != nil:
		return nil, err
	case small && run != nil:
		e.log.Info("run created", "run_id", run.RunID, "directory", run.DirectoryName, "triggers", run.Count, "pages", run.Pages)
		return run, nil
	case small:
		return nil, nil
	}
	if run, err = e.store.NewRun(ctx, d, uuid.NewString(), order); err != nil || run == nil {
		return nil, err
	}
	if err := e.collect(ctx, run, true); err != nil || run.Count == 0 {
		return nil, err
	}
	return run, nil
}

// orders reads an operator's orders for d, both at once: a cancellation, and whether it is
// paused (which does not hold back a cancellation).
func (e *Engine) orders(ctx context.Context, d dirsync.DirKey) (*dirsync.Cancel, bool, error) {
	var order *dirsync.Cancel
	var paused bool
	g, gctx := errgroup.WithContext(ctx)
	if e.cfg.Cancels != nil {
		g.Go(func() (err error) {
			if order, err = e.cfg.Cancels.Get(gctx, d); err != nil {
				return fmt.Errorf("reading whether %s has a cancellation: %w", d, err)
			}
			return nil
		})
	}
	g.Go(func() (err error) {
		paused, err = e.paused(gctx, d)
		return err
	})
	if err := g.Wait(); err != nil {
		return nil, false, err
	}
	return order, paused && order == nil, nil
}

func (e *Engine) cancelDone(ctx context.Context, d dirsync.DirKey, o *dirsync.Cancel) error {
	if o == nil || e.cfg.Cancels == nil {
		return nil
	}
	if err := e.cfg.Cancels.Done(ctx, d, o.ID); err != nil {
		return err
	}
	// Triggers recorded after the order wait for their own run.
	e.Notify(d)
	return nil
}

// cancelled records an operator's cancellation as the run's outcome: no sync, not retryable.
func (e *Engine) cancelled(ctx context.Context, run *dirsync.Run) error {
	e.log.Info("pending triggers cancelled by an operator", "run_id", run.RunID, "directory", run.DirectoryName,
		"triggers", run.Count, "by", run.Cancel.By, "reason", run.Cancel.Reason)
	return e.record(ctx, run, dirsync.Outcome{Status: contract.StatusFailed, ErrCode: contract.CodeCancelled,
		ErrMessage: run.Cancel.Message()})
}

// collect writes the pages of a collecting run's covered triggers; fresh: the run was just
// created here, so no earlier holder left pages of it.
func (e *Engine) collect(ctx context.Context, run *dirsync.Run, fresh bool) error {
	collect := e.store.Collect
	if fresh {
		collect = e.store.CollectNew
	}
	if err := collect(ctx, run); err != nil {
		return err
	}
	if run.Count > 0 {
		e.log.InfoContext(ctx, "run created", "run_id", run.RunID, "directory", run.DirectoryName, "triggers", run.Count, "pages", run.Pages)
		e.linkTriggers(ctx, run)
	}
	return nil
}

// drive moves a run through its phases until it is reported or an error stops it.
func (e *Engine) drive(ctx context.Context, t Tenant, run *dirsync.Run) error {
	for {
		var err error
		switch run.Phase {
		case dirsync.PhaseCollecting:
			if err = e.collect(ctx, run, false); err == nil && run.Count == 0 {
				return nil
			}
		case dirsync.PhaseSnapshot, dirsync.PhasePosting:
			if run.Cancel != nil {
				err = e.cancelled(ctx, run)
				break
			}
			err = e.start(ctx, t, run)
		case dirsync.PhasePosted:
			err = e.await(ctx, t, run)
		case dirsync.PhaseReported:
			return e.report(ctx, t, run)
		default:
			return fmt.Errorf("run %s has unknown phase %q", run.RunID, run.Phase)
		}
		if err != nil {
			return err
		}
	}
}

// start gets a sync running that began after the snapshot: ours, or one that started after it.
func (e *Engine) start(ctx context.Context, t Tenant, run *dirsync.Run) error {
	st, err := t.Backend.SyncStatus(ctx, run.DirectoryID)
	if err != nil {
		return e.vidmFailure(ctx, run, err)
	}
	if st.Status == backend.StatusDelegated {
		// Nothing to start: the identity provider keeps the directory current, and the result
		// says who, rather than pretending a sync ran.
		return e.record(ctx, run, dirsync.Outcome{Status: contract.StatusDelegated, Delegation: st.Delegation})
	}
	if run.Phase == dirsync.PhasePosting && startedSince(st, run.BeforeStart) {
		// Our POST (or another after the snapshot) reached vIDM before the last holder could
		// record it: that sync covers the snapshot, adopt it instead of starting another.
		return e.posted(ctx, run, st.StartedAt)
	}
	if st.Status == backend.StatusRunning {
		e.log.InfoContext(ctx, "vIDM already runs a sync of the directory; waiting for it before starting ours",
			"run_id", run.RunID, "directory", run.DirectoryName)
		if run.Version == 0 {
			// A snapshot kept in memory so far: written before a wait that may last long, so
			// every replica's views show the run.
			if err := e.store.SaveRun(ctx, run); err != nil {
				return err
			}
		}
		_, err := backend.Wait(ctx, t.Backend, run.DirectoryID, e.waitOptions(t, t.SyncDeadline, nil))
		if errors.Is(err, backend.ErrSyncTimeout) {
			// Every accepted trigger gets a terminal result: a sync that never ends is reported,
			// not waited on forever.
			return e.record(ctx, run, dirsync.Outcome{Status: contract.StatusFailed, ErrCode: contract.CodeSyncTimeout,
				ErrMessage: fmt.Sprintf("a sync already running in vIDM did not finish within %s", t.SyncDeadline), Retryable: true})
		}
		if err != nil {
			return e.vidmFailure(ctx, run, err)
		}
		return nil // look again: start ours now that theirs is over
	}
	if run.Phase == dirsync.PhaseSnapshot && e.directory(ctx, t, run).SyncDisabled {
		// Turned off after the triggers were accepted (intake dead-letters them otherwise).
		return e.record(ctx, run, dirsync.Outcome{Status: contract.StatusFailed, ErrCode: contract.CodeSyncDisabled,
			ErrMessage: fmt.Sprintf("directory %q has its sync turned off in the identity system (syncConfigurationEnabled: false); turn it on, then trigger again", run.DirectoryName),
			Retryable:  true})
	}
	run.Phase, run.BeforeStart = dirsync.PhasePosting, st.StartedAt
	if err := e.store.SaveRun(ctx, run); err != nil {
		return err
	}
	vctx := backend.WithTraceparent(backend.WithRequestID(ctx, run.RunID), run.Traceparent)
	err = t.Backend.StartSync(vctx, run.DirectoryID, run.IgnoreSafeguards)
	switch {
	case errors.Is(err, backend.ErrSyncInProgress):
		return nil // one started between our look and our POST; the next look adopts or waits
	case err != nil:
		return e.vidmFailure(ctx, run, err)
	}
	return e.posted(ctx, run, e.cfg.Now())
}

func startedSince(st backend.SyncState, before time.Time) bool {
	return !st.StartedAt.IsZero() && !st.StartedAt.Equal(before) && st.Status != backend.StatusUndefined
}

func (e *Engine) posted(ctx context.Context, run *dirsync.Run, at time.Time) error {
	run.Phase, run.StartedAt = dirsync.PhasePosted, at
	if err := e.store.SaveRun(ctx, run); err != nil {
		return err
	}
	trace.SpanFromContext(ctx).AddEvent("sync started")
	e.log.InfoContext(ctx, "sync started", "run_id", run.RunID, "directory", run.DirectoryName, "triggers", run.Count)
	e.cfg.Observer.RunStarted(run)
	if err := e.results.Started(ctx, run); err != nil {
		// Informational only: the terminal result is what guarantees delivery.
		e.log.WarnContext(ctx, "publishing the started event failed", "run_id", run.RunID, "err", err)
	}
	return nil
}

// await polls the run's sync to its end and records the outcome.
func (e *Engine) await(ctx context.Context, t Tenant, run *dirsync.Run) error {
	var before *backend.SyncState
	if !run.BeforeStart.IsZero() {
		before = &backend.SyncState{StartedAt: run.BeforeStart}
	}
	remaining := max(t.SyncDeadline-e.cfg.Now().Sub(run.StartedAt), time.Second)
	opts := e.waitOptions(t, remaining, before)
	opts.PostedAt, opts.ConfirmAfter = run.StartedAt, t.ConfirmAfter
	opts.Expected, opts.PollFloor = e.expected(ctx, run), e.cfg.PollFloor
	// The status read before the POST had the previous sync's start time: ours is told apart by
	// its own, so the first poll need not come at once.
	opts.Dated = !run.BeforeStart.IsZero()
	opts.Progress = func(st backend.SyncState) { e.noteProgress(ctx, run, st) }
	st, err := backend.Wait(ctx, t.Backend, run.DirectoryID, opts)
	switch {
	case errors.Is(err, backend.ErrSyncTimeout):
		return e.record(ctx, run, dirsync.Outcome{Status: contract.StatusFailed, ErrCode: contract.CodeSyncTimeout,
			ErrMessage: fmt.Sprintf("the sync did not finish within %s", t.SyncDeadline), Retryable: true})
	case err != nil:
		return e.vidmFailure(ctx, run, err)
	case st.Status == backend.StatusDelegated:
		return e.record(ctx, run, dirsync.Outcome{Status: contract.StatusDelegated, Delegation: st.Delegation})
	}
	o := dirsync.Outcome{Status: contract.StatusCompleted, FinishedAt: finishedAt(st, e.cfg.Now()),
		Connector: st.Connector, Attempts: st.Attempts, SyncDuration: e.syncDuration(run, st)}
	if st.Status != backend.StatusCompleted {
		o.Status, o.ErrCode, o.ErrMessage = contract.StatusFailed, contract.CodeSyncFailed, st.Message
		if o.ErrMessage == "" {
			o.ErrMessage = "the backend reported the sync as FAILED without a message"
		}
	}
	return e.record(ctx, run, o)
}

// expected is when the directory's recent syncs ended, to plan this one's polls; none (today's
// doubling schedule) without a history or when it cannot be read.
func (e *Engine) expected(ctx context.Context, run *dirsync.Run) backend.Expected {
	if e.cfg.History == nil {
		return backend.Expected{}
	}
	x, err := e.cfg.History.Expected(ctx, run.Dir())
	if err != nil {
		e.log.Debug("reading the directory's sync durations failed; polling without them", "run_id", run.RunID, "err", err)
	}
	return x
}

// syncDuration is how long the sync ran: by the identity system's own clock when it says, else
// from our POST to now (an over-estimate by the last poll's lag).
func (e *Engine) syncDuration(run *dirsync.Run, st backend.SyncState) time.Duration {
	if !st.StartedAt.IsZero() && st.FinishedAt.After(st.StartedAt) {
		return st.FinishedAt.Sub(st.StartedAt)
	}
	return max(e.cfg.Now().Sub(run.StartedAt), 0)
}

// noteProgress records the progress a poll of the running sync reported, when it changed, so
// that every replica's operator views show it. A failed write only loses the figure.
func (e *Engine) noteProgress(ctx context.Context, run *dirsync.Run, st backend.SyncState) {
	if st.Status != backend.StatusRunning || st.Progress < 0 || run.Progress != nil && *run.Progress == st.Progress {
		return
	}
	p := st.Progress
	run.Progress = &p
	if err := e.store.SaveRun(ctx, run); err != nil {
		e.log.DebugContext(ctx, "recording the sync's progress failed", "run_id", run.RunID, "err", err)
	}
}

func finishedAt(st backend.SyncState, now time.Time) time.Time {
	if !st.FinishedAt.IsZero() {
		return st.FinishedAt
	}
	return now
}

// vidmFailure turns a permanent vIDM error into a failed outcome; retryable ones (and the end of
// the context) are returned so the run is tried again later with its snapshot intact.
func (e *Engine) vidmFailure(ctx context.Context, run *dirsync.Run, err error) error {
	if ctx.Err() != nil || backend.IsRetryable(err) {
		return err
	}
	code := contract.CodeVIDMError
	switch {
	case errors.Is(err, backend.ErrDirectoryNotFound):
		code = contract.CodeDirectoryNotFound
	case errors.Is(err, backend.ErrUnauthorized):
		code = contract.CodeUnauthorized
	}
	// Retryable for the publisher: a fixed credential or directory makes a new trigger succeed.
	return e.record(ctx, run, dirsync.Outcome{Status: contract.StatusFailed, ErrCode: code, ErrMessage: err.Error(),
		Retryable: code == contract.CodeUnauthorized})
}

// maxErrMessage bounds an outcome's message: it comes from the backend, and the run record and
// every result page carry it.
const maxErrMessage = 4 << 10

// record fixes the outcome before anything is published, so a resumed run reports the same.
func (e *Engine) record(ctx context.Context, run *dirsync.Run, o dirsync.Outcome) error {
	if o.FinishedAt.IsZero() {
		o.FinishedAt = e.cfg.Now()
	}
	o.ErrMessage = safetext.Clean(o.ErrMessage, maxErrMessage)
	o.RecordedAt = e.cfg.Now()
	run.Phase, run.Outcome, run.Progress = dirsync.PhaseReported, &o, nil
	trace.SpanFromContext(ctx).AddEvent("outcome recorded", trace.WithAttributes(attribute.String("dirsync.status", o.Status)))
	return e.store.SaveRun(ctx, run)
}

// report publishes the result, a page at a time, then forgets the covered triggers and the run.
// A crash in between re-publishes the page it was on under the same event id, which the stream
// de-duplicates, and goes on from there.
func (e *Engine) report(ctx context.Context, t Tenant, run *dirsync.Run) error {
	for n := run.Published + 1; n <= run.Pages; n++ {
		page, err := e.store.Page(ctx, run, n)
		if err != nil {
			return err
		}
		e.checkReadiness(ctx, t, run, page)
		if err := e.results.Finished(ctx, run, n, page); err != nil {
			return err
		}
		run.Readiness = tally(run.Readiness, page)
		e.cfg.Observer.TriggersReported(run, page)
		if n < run.Pages {
			// One write per page, so a resumed run does not publish the earlier pages again.
			run.Published = n
			if err := e.store.SaveRun(ctx, run); err != nil {
				return err
			}
		}
	}
	e.cfg.Observer.RunReported(run)
	if err := e.store.Forget(ctx, run); err != nil {
		return err
	}
	e.log.InfoContext(ctx, "sync reported", "run_id", run.RunID, "directory", run.DirectoryName,
		"status", run.Outcome.Status, "code", run.Outcome.ErrCode, "triggers", run.Count, "pages", run.Pages)
	return nil
}

// tally adds a published page's readiness to the run's.
func tally(r *dirsync.Readiness, page []dirsync.Trigger) *dirsync.Readiness {
	for _, t := range page {
		if t.Ready != nil {
			if r == nil {
				r = &dirsync.Readiness{}
			}
			r.Add(page)
			return r
		}
	}
	return r
}

func (e *Engine) waitOptions(t Tenant, timeout time.Duration, before *backend.SyncState) backend.WaitOptions {
	return backend.WaitOptions{InitialInterval: t.PollInitial, MaxInterval: t.PollMax, Timeout: timeout, Before: before,
		Logger: e.log, Now: e.cfg.Now}
}
