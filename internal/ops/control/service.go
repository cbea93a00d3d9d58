package control

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirstate"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
)

// Catalog lists the directories of every configured tenant, from each backend's cache.
type Catalog interface {
	Catalog(ctx context.Context) []TenantDirectories
	// Probe re-reads every tenant's directory list now.
	Probe(ctx context.Context) error
}

// TenantDirectories is one tenant's backend and its directory list (Err when unavailable).
type TenantDirectories struct {
	Tenant      string
	Backend     backend.Description
	Directories []backend.Directory
	Err         error
}

// Config names what the service acts on.
type Config struct {
	RequestSubject string // the trigger subject sync requests are published to
	RequestSource  string // CloudEvents source of sync requests, e.g. urn:vidm-sync-worker:admin
	DeadStream     string
	HistoryRuns    int
	Tenants        Tenants         // optional: the tenants API lists none and refuses reloads
	Grants         *trigger.Grants // signs sync requests that ignore safeguards; nil: none may
	Logger         *slog.Logger
	Now            func() time.Time
}

// Stores is the worker's JetStream state the service reads.
type Stores struct {
	Store   *dirstate.Store
	History *dirstate.History
	Pauses  *dirstate.Pauses
	Cancels *dirstate.Cancels
}

// Service implements the operator's view and requests.
type Service struct {
	cfg    Config
	st     Stores
	dirs   Catalog
	js     jetstream.JetStream
	notify func(dirsync.DirKey)
	log    *slog.Logger
}

// New returns a Service; notify tells the local engine a resumed or cancelled directory has work
// now.
func New(cfg Config, st Stores, dirs Catalog, js jetstream.JetStream, notify func(dirsync.DirKey)) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.RequestSource = cmp.Or(cfg.RequestSource, "urn:vidm-sync-worker:admin")
	cfg.HistoryRuns = max(cfg.HistoryRuns, 1)
	return &Service{cfg: cfg, st: st, dirs: dirs, js: js, notify: notify, log: cfg.Logger}
}

// snapshot is everything the directory views are built from, read once per request.
type snapshot struct {
	catalog []TenantDirectories
	pending map[dirsync.DirKey]int
	runs    map[dirsync.DirKey]*dirsync.Run
	holders map[dirsync.DirKey]string
	pauses  map[dirsync.DirKey]dirstate.PauseInfo
	history map[dirsync.DirKey][]dirstate.HistoryRun
}

// indexWait bounds how long a view waits for the pending index to be complete (a worker
// starting, or its watch of the pending bucket restarting) before answering ErrNotReady.
const indexWait = 10 * time.Second

// ErrNotReady: the worker is still reading its state (the index of pending triggers is not
// complete yet); the admin API answers 503.
var ErrNotReady = dirstate.ErrIndexNotReady

// indexed counts pending triggers with read, from the index the engine's watch keeps, never by
// listing the pending bucket (a view costs the same with 10 or 100,000 pending triggers),
// waiting at most indexWait for the index to be complete.
func indexed[T any](ctx context.Context, read func(context.Context) (T, error)) (T, error) {
	wctx, cancel := context.WithTimeout(ctx, indexWait)
	defer cancel()
	v, err := read(wctx)
	if err != nil && ctx.Err() != nil {
		var zero T
		return zero, ctx.Err()
	}
	return v, err
}

// read takes the snapshot of every directory. Each read is bounded by the number of directories,
// never by the number of triggers: pending counts come from the index, run records and history
// entries are read with key filters that leave out run pages and reported-trigger markers.
func (s *Service) read(ctx context.Context) (*snapshot, error) {
	var sn snapshot
	var err error
	sn.catalog = s.catalog(ctx)
	if sn.pending, err = indexed(ctx, s.st.Store.IndexedPendingCounts); err != nil {
		return nil, err
	}
	if sn.runs, err = s.st.Store.Runs(ctx); err != nil {
		return nil, err
	}
	if sn.holders, err = s.st.Store.Holders(ctx); err != nil {
		return nil, err
	}
	if sn.pauses, err = s.st.Pauses.All(ctx); err != nil {
		return nil, err
	}
	if sn.history, err = s.st.History.All(ctx); err != nil {
		return nil, err
	}
	return &sn, nil
}

// catalog reads every tenant's directory list. A backend being down must not take the status
// page with it: the worker's own state is shown.
func (s *Service) catalog(ctx context.Context) []TenantDirectories {
	c := s.dirs.Catalog(ctx)
	for _, td := range c {
		if td.Err != nil {
			s.log.Warn("status: a directory list is unavailable; showing the worker's state only", "tenant", td.Tenant, "err", td.Err)
		}
	}
	return c
}

// readDir takes the snapshot of one directory only: a handful of single-key reads, so that the
// status page asking for each directory's runs does not read every directory's state each time.
func (s *Service) readDir(ctx context.Context, k dirsync.DirKey) (*snapshot, error) {
	sn := snapshot{pending: map[dirsync.DirKey]int{}, runs: map[dirsync.DirKey]*dirsync.Run{},
		holders: map[dirsync.DirKey]string{}, pauses: map[dirsync.DirKey]dirstate.PauseInfo{},
		history: map[dirsync.DirKey][]dirstate.HistoryRun{}}
	sn.catalog = s.catalog(ctx)
	n, err := indexed(ctx, func(ctx context.Context) (int, error) { return s.st.Store.IndexedPendingCount(ctx, k) })
	if err != nil {
		return nil, err
	}
	if n > 0 {
		sn.pending[k] = n
	}
	r, err := s.st.Store.LoadRun(ctx, k)
	if err != nil {
		return nil, err
	}
	if r != nil {
		sn.runs[k] = r
		h, err := s.st.Store.Holder(ctx, k)
		if err != nil {
			return nil, err
		}
		if h != "" {
			sn.holders[k] = h
		}
	}
	p, err := s.st.Pauses.Get(ctx, k)
	if err != nil {
		return nil, err
	}
	if p != nil {
		sn.pauses[k] = *p
	}
	hist, err := s.st.History.Runs(ctx, k)
	if err != nil {
		return nil, err
	}
	if len(hist) > 0 {
		sn.history[k] = hist
	}
	return &sn, nil
}

// Directories lists every directory vIDM knows, and any the worker has state for, by name.
func (s *Service) Directories(ctx context.Context) ([]Directory, error) {
	sn, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	return s.directories(sn), nil
}

func (s *Service) directories(sn *snapshot) []Directory {
	seen := map[dirsync.DirKey]bool{}
	var out []Directory
	for _, td := range sn.catalog {
		for _, d := range td.Directories {
			k := dirsync.NewDirKey(td.Tenant, d.ID)
			seen[k] = true
			out = append(out, s.view(sn, k, Directory{Tenant: td.Tenant, Backend: string(td.Backend.Kind), DirectoryID: d.ID,
				Name: d.Name, Type: d.Type, Domains: d.Domains, Connectors: d.Connectors, Known: true}))
		}
	}
	// State for directories vIDM no longer lists (or while its list is unavailable).
	for _, k := range stateKeys(sn) {
		if seen[k] {
			continue
		}
		out = append(out, s.view(sn, k, s.unlisted(sn, k)))
	}
	slices.SortFunc(out, CompareDirectories)
	return out
}

// CompareDirectories is the order of the directory list: by tenant, then name (ignoring case),
// then id. Pages of the list (the admin API's cursor) follow it.
func CompareDirectories(a, b Directory) int {
	return cmp.Or(strings.Compare(a.Tenant, b.Tenant), strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)),
		strings.Compare(a.DirectoryID, b.DirectoryID))
}

func stateKeys(sn *snapshot) []dirsync.DirKey {
	var ks []dirsync.DirKey
	for k := range sn.pending {
		ks = append(ks, k)
	}
	for k := range sn.runs {
		ks = append(ks, k)
	}
	for k := range sn.pauses {
		ks = append(ks, k)
	}
	for k := range sn.history {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return slices.Compact(ks)
}

// unlisted names a directory from the worker's own records.
func (s *Service) unlisted(sn *snapshot, k dirsync.DirKey) Directory {
	d := Directory{Tenant: k.TenantToken(), DirectoryID: string(k), Name: string(k)}
	var r *dirsync.Run
	if cur := sn.runs[k]; cur != nil {
		r = cur
	} else if h := sn.history[k]; len(h) > 0 {
		r = &h[0].Run
	}
	if r != nil {
		d.Tenant, d.DirectoryID, d.Name = r.Tenant, r.DirectoryID, r.DirectoryName
	}
	return d
}

// view fills a directory's state from the snapshot.
func (s *Service) view(sn *snapshot, k dirsync.DirKey, d Directory) Directory {
	d.PendingTriggers = sn.pending[k]
	if p, ok := sn.pauses[k]; ok {
		d.Paused = &Pause{Since: p.Since, Reason: p.Reason}
	}
	if r := sn.runs[k]; r != nil {
		v := s.runView(r, r.Count, true)
		v.Holder = sn.holders[k]
		d.CurrentRun = &v
		// The run's own triggers are still in the pending set until it is reported.
		d.PendingTriggers = max(d.PendingTriggers-r.Count, 0)
	}
	if h := sn.history[k]; len(h) > 0 {
		v := s.runView(&h[0].Run, h[0].TriggerCount, false)
		d.LastRun = &v
	}
	switch {
	case d.CurrentRun != nil && d.CurrentRun.Trouble != nil && d.CurrentRun.Trouble.Stuck:
		d.State = StateStuck
	case d.CurrentRun != nil:
		d.State = StateSyncing
	case d.Paused != nil:
		d.State = StatePaused
	case d.PendingTriggers > 0:
		d.State = StatePending
	default:
		d.State = StateIdle
	}
	return d
}

// runView maps a run record to the operator's task model.
func (s *Service) runView(r *dirsync.Run, count int, inFlight bool) Run {
	v := Run{RunID: r.RunID, CreatedAt: r.CreatedAt, TriggerCount: count, Triggers: []Trigger{}, Pages: r.Pages}
	if tr := r.Trouble; tr != nil {
		v.Trouble = &Trouble{Failures: tr.Failures, Since: tr.Since, Last: tr.Last, Error: tr.Error, Stuck: tr.Stuck()}
	}
	for _, t := range r.Sample {
		v.Triggers = append(v.Triggers, Trigger{ID: t.ID, Source: t.Source, Type: t.Type, Group: t.Group, User: t.User, AcceptedAt: t.AcceptedAt})
	}
	if !r.StartedAt.IsZero() {
		at := r.StartedAt
		v.StartedAt = &at
	}
	switch {
	case r.Outcome != nil:
		v.Status = r.Outcome.Status
		at := r.Outcome.FinishedAt
		v.FinishedAt = &at
		v.Connector, v.Attempts, v.Delegation = r.Outcome.Connector, r.Outcome.Attempts, r.Outcome.Delegation
		v.Readiness = r.Readiness
		if r.Outcome.ErrCode != "" {
			v.Error = &RunError{Code: r.Outcome.ErrCode, Message: r.Outcome.ErrMessage, Retryable: r.Outcome.Retryable}
		}
		if v.StartedAt != nil {
			v.DurationMs = at.Sub(*v.StartedAt).Milliseconds()
		}
	case r.Phase == dirsync.PhasePosted:
		v.Status = RunRunning
		v.DurationMs = s.cfg.Now().Sub(r.StartedAt).Milliseconds()
		v.Progress = r.Progress
	default:
		v.Status = RunQueued
	}
	if inFlight {
		v.Phase = string(r.Phase)
	}
	return v
}

// Directory returns one directory, or ErrNotFound. It reads that directory's state only; a
// directory it does not find that way (state under a key no backend lists and no record names)
// is looked for among every directory's.
func (s *Service) Directory(ctx context.Context, tenant, directoryID string) (Directory, error) {
	sn, err := s.readDir(ctx, dirsync.NewDirKey(tenant, directoryID))
	if err != nil {
		return Directory{}, err
	}
	d, err := s.find(sn, tenant, directoryID)
	if !errors.Is(err, ErrNotFound) {
		return d, err
	}
	if sn, err = s.read(ctx); err != nil {
		return Directory{}, err
	}
	return s.find(sn, tenant, directoryID)
}

func (s *Service) find(sn *snapshot, tenant, directoryID string) (Directory, error) {
	for _, d := range s.directories(sn) {
		if d.Tenant == tenant && d.DirectoryID == directoryID {
			return d, nil
		}
	}
	return Directory{}, fmt.Errorf("directory %q of tenant %q: %w", directoryID, tenant, ErrNotFound)
}

// Runs returns the directory's run in flight (if any), then its recorded runs, newest first.
func (s *Service) Runs(ctx context.Context, tenant, directoryID string, limit int) ([]Run, error) {
	d, err := s.Directory(ctx, tenant, directoryID)
	if err != nil {
		return nil, err
	}
	k := dirsync.NewDirKey(d.Tenant, d.DirectoryID)
	hist, err := s.st.History.Runs(ctx, k)
	if err != nil {
		return nil, err
	}
	out := []Run{}
	if d.CurrentRun != nil {
		out = append(out, *d.CurrentRun)
	}
	for _, h := range hist {
		if d.CurrentRun != nil && h.RunID == d.CurrentRun.RunID {
			continue // reported and in the history, still forgetting its triggers: listed once
		}
		out = append(out, s.runView(&h.Run, h.TriggerCount, false))
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// RequestSync publishes a vidm.directory.sync.requested trigger for the directory, which the
// worker accepts and coalesces like any other. Without queue it is refused while a run is in
// flight or the directory is paused.
func (s *Service) RequestSync(ctx context.Context, tenant, directoryID string, o SyncOptions) (SyncRequest, error) {
	queue, reason := o.Queue, o.Reason
	d, err := s.Directory(ctx, tenant, directoryID)
	if err != nil {
		return SyncRequest{}, err
	}
	if !d.Known {
		return SyncRequest{}, fmt.Errorf("directory %q is not in vIDM's directory list: %w", d.Name, ErrNotFound)
	}
	busy := d.CurrentRun != nil || d.Paused != nil
	if busy && !queue {
		if d.CurrentRun != nil {
			return SyncRequest{}, &ConflictError{Reason: "running", CurrentRun: d.CurrentRun,
				Message: fmt.Sprintf("a sync of %q is already in flight (run %s); add ?queue=true to sync again after it", d.Name, d.CurrentRun.RunID)}
		}
		return SyncRequest{}, &ConflictError{Reason: "paused",
			Message: fmt.Sprintf("directory %q is paused; resume it, or add ?queue=true to queue the sync for when it is resumed", d.Name)}
	}
	if o.IgnoreSafeguards && s.cfg.Grants == nil {
		return SyncRequest{}, errors.New("ignoring safeguards needs ADMIN_TOKEN, whose key signs the grant")
	}
	e, err := trigger.NewEvent(trigger.Trigger{Type: contract.TypeSyncRequested, Source: s.cfg.RequestSource,
		Tenant: d.Tenant, Directory: d.Name, Reason: cmp.Or(reason, "requested through the admin API"), IgnoreSafeguards: o.IgnoreSafeguards})
	if err != nil {
		return SyncRequest{}, fmt.Errorf("sync request: %w", err)
	}
	msg, err := cenats.EncodeBinary(s.cfg.RequestSubject, e)
	if err != nil {
		return SyncRequest{}, fmt.Errorf("sync request: %w", err)
	}
	if o.IgnoreSafeguards {
		msg.Header.Set(trigger.HeaderSafeguardsGrant, s.cfg.Grants.Sign(e.ID(), d.Tenant, d.Name))
	}
	if _, err := s.js.PublishMsg(ctx, msg); err != nil {
		return SyncRequest{}, fmt.Errorf("publishing the sync request: %w", err)
	}
	s.log.Info("sync requested through the admin API", "directory", d.Name, "trigger_id", e.ID(), "queued", busy, "ignore_safeguards", o.IgnoreSafeguards)
	return SyncRequest{EventID: e.ID(), Queued: busy}, nil
}

// Pause stops new runs of the directory; its triggers keep being accepted.
func (s *Service) Pause(ctx context.Context, tenant, directoryID, reason string) (Directory, error) {
	d, err := s.Directory(ctx, tenant, directoryID)
	if err != nil {
		return Directory{}, err
	}
	if _, err := s.st.Pauses.Pause(ctx, dirsync.NewDirKey(d.Tenant, d.DirectoryID), reason); err != nil {
		return Directory{}, err
	}
	s.log.Info("directory paused", "directory", d.Name, "reason", reason)
	return s.Directory(ctx, tenant, directoryID)
}

// Resume lets the directory sync again; its pending triggers are synced now.
func (s *Service) Resume(ctx context.Context, tenant, directoryID string) (Directory, error) {
	d, err := s.Directory(ctx, tenant, directoryID)
	if err != nil {
		return Directory{}, err
	}
	k := dirsync.NewDirKey(d.Tenant, d.DirectoryID)
	if err := s.st.Pauses.Resume(ctx, k); err != nil {
		return Directory{}, err
	}
	if s.notify != nil {
		s.notify(k)
	}
	s.log.Info("directory resumed", "directory", d.Name, "pending_triggers", d.PendingTriggers)
	return s.Directory(ctx, tenant, directoryID)
}

// Cancel orders the directory's pending triggers that no run has taken yet reported failed with
// code CANCELLED, naming by and reason; the engine carries the order out under the directory's
// lease, before any new run and even while the directory is paused. Triggers recorded after the
// order are synced as usual. A run in flight keeps its triggers: a sync already started in vIDM
// cannot be stopped there, and one about to start has taken them.
func (s *Service) Cancel(ctx context.Context, tenant, directoryID, by, reason string) (Cancellation, error) {
	d, err := s.Directory(ctx, tenant, directoryID)
	if err != nil {
		return Cancellation{}, err
	}
	k := dirsync.NewDirKey(d.Tenant, d.DirectoryID)
	var taken uint64
	run, err := s.st.Store.LoadRun(ctx, k)
	if err != nil {
		return Cancellation{}, err
	}
	if run != nil {
		taken = run.Collected
	}
	n, upTo, ok := s.st.Store.PendingAfter(k, taken)
	if !ok {
		return Cancellation{}, ErrNotReady
	}
	if run != nil && run.Phase == dirsync.PhaseCollecting {
		n = 0 // the run is taking every pending trigger right now
	}
	if n == 0 {
		return Cancellation{}, s.nothingToCancel(d)
	}
	o := dirsync.Cancel{ID: uuid.NewString(), By: by, Reason: reason, At: s.cfg.Now().UTC(), UpTo: upTo}
	if err := s.st.Cancels.Order(ctx, k, o); err != nil {
		return Cancellation{}, err
	}
	if s.notify != nil {
		s.notify(k)
	}
	s.log.Info("pending triggers cancelled through the admin API", "directory", d.Name, "triggers", n, "by", by, "reason", reason, "cancel_id", o.ID)
	return Cancellation{ID: o.ID, By: by, Reason: reason, At: o.At, Triggers: n, CurrentRun: d.CurrentRun}, nil
}

// nothingToCancel explains why a cancellation has nothing to act on.
func (s *Service) nothingToCancel(d Directory) error {
	r := d.CurrentRun
	switch {
	case r == nil:
		return &ConflictError{Reason: "nothing_pending", Message: fmt.Sprintf("directory %q has no pending triggers to cancel", d.Name)}
	case r.StartedAt != nil:
		return &ConflictError{Reason: "started", CurrentRun: r, Message: fmt.Sprintf(
			"run %s of %q started its sync in the identity system at %s; a started sync cannot be cancelled there, and its %d triggers are reported when it ends",
			r.RunID, d.Name, r.StartedAt.UTC().Format(time.RFC3339), r.TriggerCount)}
	default:
		return &ConflictError{Reason: "running", CurrentRun: r, Message: fmt.Sprintf(
			"run %s of %q has taken every pending trigger and is starting its sync; nothing is left to cancel", r.RunID, d.Name)}
	}
}

// ErrNoOriginalSubject: a dead letter that does not say where it came from cannot be re-driven.
var ErrNoOriginalSubject = errors.New("the dead letter has no original subject")

// ErrNotKept: a stub dead letter has no payload to publish again.
var ErrNotKept = errors.New("the message was too large to keep; only its size and digest were stored")

// DirectoryName is a directory as the metrics label it.
type DirectoryName struct{ Tenant, Name string }

// PendingByName counts the accepted triggers not yet reported, per tenant and directory name, for
// the metrics. Directories no backend lists are counted under their key.
func (s *Service) PendingByName(ctx context.Context) (map[DirectoryName]int, error) {
	counts, err := s.st.Store.IndexedPendingCounts(ctx)
	if err != nil {
		return nil, err
	}
	return s.byName(ctx, counts), nil
}

// FailuresByName returns, per directory whose run in flight has failed, how many times in a row
// it failed (dirsync.StuckAfter or more: stuck), by tenant and directory name.
func (s *Service) FailuresByName(ctx context.Context) (map[DirectoryName]int, error) {
	runs, err := s.st.Store.Runs(ctx)
	if err != nil {
		return nil, err
	}
	failures := map[dirsync.DirKey]int{}
	for k, r := range runs {
		if r.Trouble != nil {
			failures[k] = r.Trouble.Failures
		}
	}
	return s.byName(ctx, failures), nil
}

// byName keys per-directory numbers by tenant and directory name.
func (s *Service) byName(ctx context.Context, counts map[dirsync.DirKey]int) map[DirectoryName]int {
	names := map[dirsync.DirKey]DirectoryName{}
	for _, td := range s.dirs.Catalog(ctx) {
		for _, d := range td.Directories {
			names[dirsync.NewDirKey(td.Tenant, d.ID)] = DirectoryName{td.Tenant, d.Name}
		}
	}
	out := make(map[DirectoryName]int, len(counts))
	for k, n := range counts {
		name, ok := names[k]
		if !ok {
			name = DirectoryName{k.TenantToken(), string(k)}
		}
		out[name] += n
	}
	return out
}
