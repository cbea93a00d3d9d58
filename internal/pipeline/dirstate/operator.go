package dirstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/backoff"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

// HistoryRun is a finished run as the history keeps it: its record, with the sample of covered
// triggers (Run.Sample) and their count; the result events on the results stream list every
// trigger. Bounded, so a directory's history stays one small value whatever its runs covered.
type HistoryRun struct {
	dirsync.Run
	TriggerCount int `json:"triggerCount"`
}

// History keeps the last runs of each directory, one key per directory holding them newest first.
// The same bucket keeps the reported markers (Store.Reported) under longer keys, for its TTL.
// One key per directory makes the status page's question ("how did this directory's last runs
// go?") a single read; the bucket's TTL forgets directories idle for longer than it.
type History struct {
	kv   jetstream.KeyValue
	keep int
}

// NewHistory returns a History keeping keep runs per directory.
func NewHistory(kv jetstream.KeyValue, keep int) *History {
	return &History{kv: kv, keep: max(keep, 1)}
}

// Record adds a finished run. It is idempotent: a run reported again after a crash replaces its
// earlier entry. Writes are compare-and-set, so replicas reporting different runs of one
// directory at once (a lease hand-over) do not drop each other's.
func (h *History) Record(ctx context.Context, r *dirsync.Run) error {
	entry := HistoryRun{Run: *r, TriggerCount: r.Count}
	entry.Keys, entry.Triggers, entry.Trouble, entry.Published = nil, nil, nil, 0
	key := string(r.Dir())
	// A compare-and-set that lost a race reads again after a fully jittered moment, so the racing
	// replicas come back at different times.
	casRetry := backoff.Policy{Initial: 10 * time.Millisecond, Max: 200 * time.Millisecond, Jitter: 1}
	for attempt := 0; ; attempt++ {
		runs, rev, err := h.read(ctx, key)
		if err != nil {
			return err
		}
		out := []HistoryRun{entry}
		for _, old := range runs {
			if old.RunID != r.RunID && len(out) < h.keep {
				out = append(out, old)
			}
		}
		b, err := json.Marshal(out)
		if err != nil {
			return fmt.Errorf("encode history of %s: %w", key, err)
		}
		if rev == 0 {
			_, err = h.kv.Create(ctx, key, b)
		} else {
			_, err = h.kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return nil
		}
		if lost := errors.Is(err, jetstream.ErrKeyExists) || isWrongSequence(err); attempt >= 20 || !lost {
			return fmt.Errorf("record run %s in the history: %w", r.RunID, err)
		}
		// Lost a race with another reporter of this directory: read again after a moment.
		if err := backoff.Wait(ctx, casRetry.Delay(attempt+1)); err != nil {
			return err
		}
	}
}

// isWrongSequence reports a compare-and-set that lost a race.
func isWrongSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// expectedFrom is how many of a directory's latest syncs plan the polls of its next.
const expectedFrom = 5

// Expected is when the directory's latest syncs ended after they started, from the history:
// the zero value when none is recorded.
func (h *History) Expected(ctx context.Context, d dirsync.DirKey) (backend.Expected, error) {
	runs, err := h.Runs(ctx, d)
	if err != nil {
		return backend.Expected{}, err
	}
	var e backend.Expected
	n := 0
	for _, r := range runs {
		if r.Outcome == nil || r.Outcome.SyncDuration <= 0 || r.StartedAt.IsZero() {
			continue // never started in the identity system: cancelled, delegated, refused
		}
		d := r.Outcome.SyncDuration
		if n == 0 || d < e.Low {
			e.Low = d
		}
		e.High = max(e.High, d)
		if n++; n == expectedFrom {
			break
		}
	}
	return e, nil
}

// Runs returns the directory's recorded runs, newest first.
func (h *History) Runs(ctx context.Context, d dirsync.DirKey) ([]HistoryRun, error) {
	runs, _, err := h.read(ctx, string(d))
	return runs, err
}

// All returns every directory's recorded runs.
func (h *History) All(ctx context.Context) (map[dirsync.DirKey][]HistoryRun, error) {
	out := map[dirsync.DirKey][]HistoryRun{}
	err := readAll(ctx, h.kv, runKeys, func(key string, v []byte) error {
		var runs []HistoryRun
		if err := json.Unmarshal(v, &runs); err != nil {
			return fmt.Errorf("history of %s: %w", key, err)
		}
		out[dirsync.DirKey(key)] = runs
		return nil
	})
	return out, err
}

func (h *History) read(ctx context.Context, key string) ([]HistoryRun, uint64, error) {
	e, err := h.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read history of %s: %w", key, err)
	}
	var runs []HistoryRun
	if err := json.Unmarshal(e.Value(), &runs); err != nil {
		return nil, 0, fmt.Errorf("history of %s: %w", key, err)
	}
	return runs, e.Revision(), nil
}

// PauseInfo records an operator's pause of a directory.
type PauseInfo struct {
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
}

// Pauses keeps the directories an operator paused. A paused directory keeps accepting triggers;
// no new run starts until it is resumed.
type Pauses struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// NewPauses returns Pauses over the control bucket.
func NewPauses(kv jetstream.KeyValue, now func() time.Time) *Pauses {
	if now == nil {
		now = time.Now
	}
	return &Pauses{kv: kv, now: now}
}

// Pause pauses d; pausing a paused directory keeps its first time and takes the new reason.
func (p *Pauses) Pause(ctx context.Context, d dirsync.DirKey, reason string) (PauseInfo, error) {
	info := PauseInfo{Since: p.now().UTC(), Reason: reason}
	if cur, err := p.Get(ctx, d); err != nil {
		return PauseInfo{}, err
	} else if cur != nil {
		info.Since = cur.Since
	}
	b, err := json.Marshal(info)
	if err != nil {
		return PauseInfo{}, err
	}
	if _, err := p.kv.Put(ctx, string(d), b); err != nil {
		return PauseInfo{}, fmt.Errorf("pause %s: %w", d, err)
	}
	return info, nil
}

// Resume lifts d's pause; resuming a directory that is not paused is not an error.
func (p *Pauses) Resume(ctx context.Context, d dirsync.DirKey) error {
	if err := p.kv.Purge(ctx, string(d)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("resume %s: %w", d, err)
	}
	return nil
}

// Get returns d's pause, or nil.
func (p *Pauses) Get(ctx context.Context, d dirsync.DirKey) (*PauseInfo, error) {
	e, err := p.kv.Get(ctx, string(d))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pause of %s: %w", d, err)
	}
	var info PauseInfo
	if err := json.Unmarshal(e.Value(), &info); err != nil {
		return nil, fmt.Errorf("pause of %s: %w", d, err)
	}
	return &info, nil
}

// Paused implements the engine's gate.
func (p *Pauses) Paused(ctx context.Context, d dirsync.DirKey) (bool, error) {
	info, err := p.Get(ctx, d)
	return info != nil, err
}

// All returns every paused directory.
func (p *Pauses) All(ctx context.Context) (map[dirsync.DirKey]PauseInfo, error) {
	out := map[dirsync.DirKey]PauseInfo{}
	// A pause's key is the directory key, two tokens; cancellation orders have three.
	err := readAll(ctx, p.kv, "*.*", func(key string, v []byte) error {
		var info PauseInfo
		if err := json.Unmarshal(v, &info); err != nil {
			return fmt.Errorf("pause of %s: %w", key, err)
		}
		out[dirsync.DirKey(key)] = info
		return nil
	})
	return out, err
}

// Cancels keeps operators' orders to cancel a directory's pending triggers, in the control
// bucket beside the pauses, until the engine has reported them: a replica that dies in between
// leaves the order for the next holder of the directory.
type Cancels struct{ kv jetstream.KeyValue }

// NewCancels returns Cancels over the control bucket.
func NewCancels(kv jetstream.KeyValue) *Cancels { return &Cancels{kv: kv} }

func cancelKey(d dirsync.DirKey) string { return "cancel." + string(d) }

// Order records c for d; a newer order replaces an older one that was not carried out yet, and
// covers what it covered.
func (c *Cancels) Order(ctx context.Context, d dirsync.DirKey, o dirsync.Cancel) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if _, err := c.kv.Put(ctx, cancelKey(d), b); err != nil {
		return fmt.Errorf("cancel order for %s: %w", d, err)
	}
	return nil
}

// Get returns d's order, or nil.
func (c *Cancels) Get(ctx context.Context, d dirsync.DirKey) (*dirsync.Cancel, error) {
	e, err := c.kv.Get(ctx, cancelKey(d))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cancel order of %s: %w", d, err)
	}
	var o dirsync.Cancel
	if err := json.Unmarshal(e.Value(), &o); err != nil {
		return nil, fmt.Errorf("cancel order of %s: %w", d, err)
	}
	return &o, nil
}

// Done forgets d's order once it was carried out, unless a newer one replaced it meanwhile.
func (c *Cancels) Done(ctx context.Context, d dirsync.DirKey, id string) error {
	e, err := c.kv.Get(ctx, cancelKey(d))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read cancel order of %s: %w", d, err)
	}
	var o dirsync.Cancel
	if json.Unmarshal(e.Value(), &o) == nil && o.ID != id {
		return nil // a newer order: the next run carries it out
	}
	err = c.kv.Delete(ctx, cancelKey(d), jetstream.LastRevision(e.Revision()))
	if err != nil && !isWrongSequence(err) {
		return fmt.Errorf("forget cancel order of %s: %w", d, err)
	}
	return nil
}

// Runs returns every unfinished run.
func (s *Store) Runs(ctx context.Context) (map[dirsync.DirKey]*dirsync.Run, error) {
	out := map[dirsync.DirKey]*dirsync.Run{}
	err := readAll(ctx, s.runs, runKeys, func(key string, v []byte) error {
		var r dirsync.Run
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("run of %s: %w", key, err)
		}
		adoptInline(&r)
		out[dirsync.DirKey(key)] = &r
		return nil
	})
	return out, err
}

// Holders returns who holds each held lease.
func (s *Store) Holders(ctx context.Context) (map[dirsync.DirKey]string, error) {
	out := map[dirsync.DirKey]string{}
	err := readAll(ctx, s.leases, ">", func(key string, v []byte) error {
		var l leaseValue
		if err := json.Unmarshal(v, &l); err != nil {
			return fmt.Errorf("lease of %s: %w", key, err)
		}
		out[dirsync.DirKey(key)] = l.Holder
		return nil
	})
	return out, err
}

// IndexedPendingCounts counts the pending triggers of every directory from this replica's index
// only, never listing the bucket: for the operator's views, which must not cost a pass over every
// pending key however many there are. Before the index is complete (the watch feeding it is
// starting or restarting) it waits for it, up to ctx.
func (s *Store) IndexedPendingCounts(ctx context.Context) (map[dirsync.DirKey]int, error) {
	for {
		if c, ok := s.index.counts(); ok {
			return c, nil
		}
		if err := s.waitIndex(ctx); err != nil {
			return nil, err
		}
	}
}

// IndexedPendingCount is IndexedPendingCounts for one directory.
func (s *Store) IndexedPendingCount(ctx context.Context, d dirsync.DirKey) (int, error) {
	for {
		if n, ok := s.PendingCount(d); ok {
			return n, nil
		}
		if err := s.waitIndex(ctx); err != nil {
			return 0, err
		}
	}
}

func (s *Store) waitIndex(ctx context.Context) error {
	if err := s.index.waitReady(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrIndexNotReady, err)
	}
	return nil
}

// ErrIndexNotReady: the pending index was not complete in time (the worker is starting, or its
// watch of the pending bucket is restarting).
var ErrIndexNotReady = errors.New("the index of pending triggers is not complete yet")

// readAll calls f with every live entry of a bucket whose key matches filter, read in one watch.
func readAll(ctx context.Context, kv jetstream.KeyValue, filter string, f func(key string, v []byte) error) error {
	w, err := kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("read %s: %w", kv.Bucket(), err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("read %s: watcher closed", kv.Bucket())
			}
			if e == nil {
				return nil
			}
			if err := f(e.Key(), e.Value()); err != nil {
				return err
			}
		}
	}
}
