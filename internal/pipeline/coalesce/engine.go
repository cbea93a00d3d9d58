// Package coalesce turns pending triggers into as few vIDM syncs as the guarantees allow: per
// directory, at most one sync at a time across all replicas (a KV lease), every trigger covered by
// a sync that started after it was accepted (snapshot before POST), a burst costing the running
// sync plus one follow-up, and a sync someone else started waited for rather than doubled.
package coalesce

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/backoff"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirstate"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

// Backend is what a run needs of the identity system that serves its tenant.
type Backend interface {
	SyncStatus(ctx context.Context, directoryID string) (backend.SyncState, error)
	StartSync(ctx context.Context, directoryID string, ignoreSafeguards bool) error
}

// Tenant is one configured target: its backend and the settings its runs use. Zero durations
// take the engine's.
type Tenant struct {
	Backend       Backend
	MaxConcurrent int // directories of this tenant synced at once by this replica; 0: no own limit
	PollInitial   time.Duration
	PollMax       time.Duration
	SyncDeadline  time.Duration
	// ConfirmAfter: a terminal status this long after the POST is accepted without a sign that
	// the sync ran (backend.WaitOptions.ConfirmAfter).
	ConfirmAfter time.Duration
	// Readiness looks up each covered group or user after a completed sync; one not found is
	// looked up again once RecheckAfter has passed since the sync's end.
	Readiness    bool
	RecheckAfter time.Duration
}

// Tenants gives each run the tenant it belongs to. The configuration behind it may be reloaded
// at any time: a run takes its tenant once, when it starts, and keeps it to its end.
type Tenants interface {
	// Tenant returns the named tenant, or an error wrapping backend.ErrUnknownTenant.
	Tenant(name string) (Tenant, error)
	// Group returns the tenant a directory key belongs to and its concurrency limit (0: none),
	// so that one slow backend cannot take every run slot of the replica.
	Group(d dirsync.DirKey) (tenant string, limit int)
}

// OneTenant serves every run from one backend with the engine's settings.
func OneTenant(b Backend) Tenants { return oneTenant{b} }

type oneTenant struct{ b Backend }

func (o oneTenant) Tenant(string) (Tenant, error)    { return Tenant{Backend: o.b}, nil }
func (oneTenant) Group(dirsync.DirKey) (string, int) { return "", 0 }

// Results publishes what runs did.
type Results interface {
	Started(ctx context.Context, r *dirsync.Run) error
	// Finished publishes page n (from 1) of the run's r.Pages result events, listing triggers.
	Finished(ctx context.Context, r *dirsync.Run, n int, triggers []dirsync.Trigger) error
}

// Observer hears about runs as they happen: metrics and the run history. Calls are synchronous
// and must return quickly.
type Observer interface {
	// RunStarted: vIDM accepted the run's POST, or the run adopted a sync that started after
	// its snapshot.
	RunStarted(r *dirsync.Run)
	// TriggersReported: a page of the run's terminal result, listing these triggers, was
	// published (r.Outcome is set).
	TriggersReported(r *dirsync.Run, triggers []dirsync.Trigger)
	// RunReported: every page of the run's terminal result was published.
	RunReported(r *dirsync.Run)
}

// Gate holds back new runs of a directory (an operator paused it). Triggers keep being accepted;
// a run already in flight finishes.
type Gate interface {
	Paused(ctx context.Context, d dirsync.DirKey) (bool, error)
}

// Cancels holds operators' orders to cancel a directory's pending triggers.
type Cancels interface {
	Get(ctx context.Context, d dirsync.DirKey) (*dirsync.Cancel, error)
	// Done forgets the order with this id once it was carried out.
	Done(ctx context.Context, d dirsync.DirKey, id string) error
}

// History tells when a directory's recent syncs ended, to plan the polls of its next.
type History interface {
	Expected(ctx context.Context, d dirsync.DirKey) (backend.Expected, error)
}

// Config tunes the engine. Zero values take the defaults noted.
type Config struct {
	Holder        string        // this replica's name in leases
	Window        time.Duration // wait after a directory's first pending trigger before syncing it
	LeaseTTL      time.Duration // default 30s
	MaxConcurrent int           // directories synced at once by this replica, all tenants; default 8
	PollInitial   time.Duration // default 2s
	PollMax       time.Duration // default 15s
	// PollFloor is the least wait between polls planned from a directory's history (default
	// 500ms); History, when set, makes the engine plan them (backend.PollPlan).
	PollFloor    time.Duration
	History      History
	SyncDeadline time.Duration // default 30m
	ConfirmAfter time.Duration // default 20s
	RecheckAfter time.Duration // default 5s
	// ReadinessMax bounds the covered triggers of one run whose principals are looked up; the
	// rest are reported not checked, so that a burst of many distinct groups neither floods the
	// identity store nor holds its result back for long. Default 2000 (100 SCIM requests).
	ReadinessMax int
	RetryMin     time.Duration // first wait after a retryable failure; default 2s
	RetryMax     time.Duration // cap of that wait; default 1m
	ScanInterval time.Duration // full rescan of the buckets, a safety net for the watch; default 30s
	Logger       *slog.Logger
	Now          func() time.Time
	Observer     Observer // optional
	Gate         Gate     // optional: nothing is paused
	Cancels      Cancels  // optional: nothing is cancelled
	// TracerProvider makes a "run" span per attempt at a run, a child of its first traced
	// trigger's intake span and linked to every covered trigger's; the identity-system calls and
	// result publishes made for it are its children. Default: no spans.
	TracerProvider trace.TracerProvider
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.LeaseTTL, 30*time.Second)
	def(&c.PollInitial, 2*time.Second)
	def(&c.PollMax, 15*time.Second)
	def(&c.SyncDeadline, 30*time.Minute)
	def(&c.ConfirmAfter, 20*time.Second)
	def(&c.RecheckAfter, 5*time.Second)
	if c.ReadinessMax <= 0 {
		c.ReadinessMax = 2000
	}
	def(&c.RetryMin, 2*time.Second)
	def(&c.RetryMax, time.Minute)
	def(&c.ScanInterval, 30*time.Second)
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = 8
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.TracerProvider == nil {
		c.TracerProvider = noop.NewTracerProvider()
	}
	return c
}

// Engine schedules directories and drives their runs.
type Engine struct {
	cfg     Config
	store   *dirstate.Store
	tenants Tenants
	results Results
	log     *slog.Logger
	tracer  trace.Tracer

	mu       sync.Mutex
	due      map[dirsync.DirKey]time.Time // directories to look at, and from when
	active   map[dirsync.DirKey]string    // directory → its tenant group
	byGroup  map[string]int               // active runs per tenant group
	failures map[dirsync.DirKey]int
	wake     chan struct{}
	leases   atomic.Int64 // leases this replica holds now
}

type nopObserver struct{}

func (nopObserver) RunStarted(*dirsync.Run)                          {}
func (nopObserver) TriggersReported(*dirsync.Run, []dirsync.Trigger) {}
func (nopObserver) RunReported(*dirsync.Run)                         {}

// LeasesHeld is the number of directory leases this replica holds now.
func (e *Engine) LeasesHeld() int { return int(e.leases.Load()) }

// New returns an engine; Run starts it.
func New(cfg Config, store *dirstate.Store, tenants Tenants, results Results) *Engine {
	cfg = cfg.withDefaults()
	if tenants == nil {
		tenants = OneTenant(nil)
	}
	return &Engine{
		cfg: cfg, store: store, tenants: tenants, results: results, log: cfg.Logger,
		tracer:   cfg.TracerProvider.Tracer("github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/coalesce"),
		due:      map[dirsync.DirKey]time.Time{},
		active:   map[dirsync.DirKey]string{},
		byGroup:  map[string]int{},
		failures: map[dirsync.DirKey]int{},
		wake:     make(chan struct{}, 1),
	}
}

// Notify tells the engine a directory has a new pending trigger. The window counts from the first
// trigger, not the last, so a steady trickle cannot postpone a sync forever.
func (e *Engine) Notify(d dirsync.DirKey) { e.schedule(d, e.cfg.Now().Add(e.cfg.Window), false) }

// Wake makes d due now, without the window: an operator asked for it (a resume, a cancellation).
func (e *Engine) Wake(d dirsync.DirKey) { e.schedule(d, e.cfg.Now(), false) }

// schedule makes d due at "at"; an earlier due time wins unless force.
func (e *Engine) schedule(d dirsync.DirKey, at time.Time, force bool) {
	e.mu.Lock()
	cur, ok := e.due[d]
	changed := force || !ok || at.Before(cur)
	if changed {
		e.due[d] = at
	}
	e.mu.Unlock()
	if !changed {
		// Already due no later: the dispatcher's timer covers it. Waking it anyway would make
		// every trigger of a burst cost a pass over all due directories.
		return
	}
	e.wakeUp()
}

// Run watches the buckets and drives runs until ctx ends, then waits for the runs in flight to
// stop (they leave their run records for the next holder) and returns.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { e.watch(ctx) })
	wg.Go(func() { e.rescan(ctx) })
	var runs sync.WaitGroup
	defer runs.Wait()
	defer wg.Wait()
	for {
		next := e.dispatch(ctx, &runs)
		t := time.NewTimer(max(time.Until(next), time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-e.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// dispatch starts every due directory it has room for and returns when to look again.
func (e *Engine) dispatch(ctx context.Context, runs *sync.WaitGroup) time.Time {
	start, next := e.takeDue()
	for _, d := range start {
		runs.Go(func() { e.handle(ctx, d) })
	}
	return next
}

// takeDue marks every due directory it has room for active and returns them, and when to look
// again. It is the whole scheduling decision, kept apart from starting the runs so that it can be
// measured without NATS.
func (e *Engine) takeDue() ([]dirsync.DirKey, time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.cfg.Now()
	next := now.Add(time.Minute)
	var start []dirsync.DirKey
	for d, at := range e.due {
		if _, busy := e.active[d]; busy {
			continue // a follow-up waits for the current run
		}
		if at.After(now) {
			next = minTime(next, at)
			continue
		}
		group, limit := e.tenants.Group(d)
		if len(e.active) >= e.cfg.MaxConcurrent || (limit > 0 && e.byGroup[group] >= limit) {
			next = minTime(next, now.Add(100*time.Millisecond))
			continue
		}
		if start == nil {
			// Sized once for the directories there is room for; a pass that starts none allocates nothing.
			start = make([]dirsync.DirKey, 0, min(len(e.due), e.cfg.MaxConcurrent-len(e.active)))
		}
		delete(e.due, d)
		e.active[d] = group
		e.byGroup[group]++
		start = append(start, d)
	}
	return start, next
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// handle runs one directory once and decides when it needs looking at again.
func (e *Engine) handle(ctx context.Context, d dirsync.DirKey) {
	e.finish(ctx, d, e.runOnce(ctx, d))
}

// finish is the bookkeeping after a run of d ended with err: d is no longer active, and it is
// rescheduled after a failure or when another replica holds its lease.
func (e *Engine) finish(ctx context.Context, d dirsync.DirKey, err error) {
	e.mu.Lock()
	if group, ok := e.active[d]; ok {
		delete(e.active, d)
		if e.byGroup[group]--; e.byGroup[group] <= 0 {
			delete(e.byGroup, group)
		}
	}
	switch {
	case err == nil:
		delete(e.failures, d)
	case ctx.Err() != nil:
	case errors.Is(err, dirstate.ErrLeaseHeld):
		// Another replica is on it; it runs the follow-up itself, this is the safety net.
		e.mu.Unlock()
		e.log.Debug("directory held by another replica; looking again later", "directory", d, "retry_in", e.cfg.LeaseTTL/4)
		e.schedule(d, e.cfg.Now().Add(e.cfg.LeaseTTL/4), false)
		// d may have been due already (a trigger during this attempt), in which case schedule
		// does not wake the dispatcher; it must look again now that d is no longer active, or
		// it sleeps until its next minute.
		e.wakeUp()
		return
	default:
		e.failures[d]++
		wait := e.backoff(e.failures[d])
		e.log.Warn("directory run failed; will retry", "directory", d, "retry_in", wait, "err", err)
		e.mu.Unlock()
		e.schedule(d, e.cfg.Now().Add(wait), true)
		return
	}
	e.mu.Unlock()
	e.wakeUp()
}

// wakeUp makes the dispatcher look at the due directories again.
func (e *Engine) wakeUp() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// backoff is the wait before retrying a directory after its failures in a row: jittered, so
// directories that failed together (a vIDM outage) are not retried together.
func (e *Engine) backoff(failures int) time.Duration {
	return backoff.Policy{Initial: e.cfg.RetryMin, Max: e.cfg.RetryMax, Jitter: 0.5}.Delay(failures)
}

// watch marks directories due as triggers and runs appear; it restarts after a broken watch
// (a NATS restart), and the rescan covers what it missed meanwhile.
func (e *Engine) watch(ctx context.Context) {
	for ctx.Err() == nil {
		err := e.store.WatchDirectories(ctx, e.Notify)
		if ctx.Err() != nil {
			return
		}
		e.log.Warn("watching pending triggers failed; restarting the watch", "err", err)
		_ = backoff.Wait(ctx, e.cfg.RetryMin) // the loop ends with ctx
	}
}

func (e *Engine) rescan(ctx context.Context) {
	t := time.NewTicker(e.cfg.ScanInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		dirs, err := e.store.Directories(ctx)
		if err != nil {
			e.log.Warn("rescanning pending triggers failed", "err", err)
			continue
		}
		for _, d := range dirs {
			e.Notify(d)
		}
	}
}
