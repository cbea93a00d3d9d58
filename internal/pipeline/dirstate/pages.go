package dirstate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
	"golang.org/x/sync/errgroup"
)

// A run's covered triggers live in pages of their own in the runs bucket, under
// "<tenant>.<directory>.<runId>.<n>" (n from 1), so that neither the run record nor any single
// write grows with the number of triggers: 100,000 pending triggers make a few dozen pages at the
// default max_payload, each a bounded write. Pages are written once, before vIDM is asked, and
// only read afterwards, so every holder that resumes the run reports the same pages.

// sampleSize and sampleBytes bound the triggers a run record keeps for operator views.
const (
	sampleSize  = 10
	sampleBytes = 8 << 10
)

// resultReserve is the room each trigger of a page keeps for what its entry in the result event
// may gain over the stored trigger: the readiness check's visible, principalId (at most
// backend.MaxPrincipalID once encoded) and hint. The stored trigger's tenant, directory and
// acceptance time, which the result entry leaves out, are not counted against it, so a result
// page stays under the page size, itself half the broker's max_payload.
const resultReserve = len(`,"visible":false,"principalId":"","hint":""`) + backend.MaxPrincipalID + dirsync.MaxHint

// parallelWrites is how many purges or marker writes are in flight at once when a run forgets its
// triggers: one at a time would cost a broker round trip per trigger.
const parallelWrites = 64

// errStop ends a listing early.
var errStop = errors.New("stop")

// PageKey is the runs-bucket key of page n of a run.
func PageKey(r *dirsync.Run, n int) string {
	return string(r.Dir()) + "." + r.RunID + "." + strconv.Itoa(n)
}

// NewRun creates the record of a new run of dir in the collecting phase, or returns nil when the
// directory has nothing pending. The record is written before its pages, so pages are never left
// behind by a run nobody knows of: a holder that resumes a collecting run writes them again.
func (s *Store) NewRun(ctx context.Context, dir dirsync.DirKey, runID string, cancel *dirsync.Cancel) (*dirsync.Run, error) {
	if n, ok := s.PendingCount(dir); ok && n == 0 {
		return nil, nil
	}
	var first *dirsync.Trigger
	err := s.eachPending(ctx, dir, func(p PendingEntry) error {
		first = &p.Trigger
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	if first == nil {
		return nil, nil
	}
	// The first trigger's trace context is the run's until Collect fixes it: the run's span
	// starts before the collection it covers.
	r := &dirsync.Run{RunID: runID, Tenant: first.Tenant, DirectoryID: first.DirectoryID, DirectoryName: first.DirectoryName,
		Phase: dirsync.PhaseCollecting, CreatedAt: s.now(), Cancel: cancel, Traceparent: first.Traceparent, IntakeSpan: first.IntakeSpan}
	if r.Dir() != dir {
		return nil, fmt.Errorf("pending trigger %s of %s names directory %s", first.ID, dir, r.Dir())
	}
	if err := s.SaveRun(ctx, r); err != nil {
		return nil, err
	}
	return r, nil
}

// SnapshotSmall is the fast way to start a run of a directory with few pending triggers: it
// reads them (one round of reads) and returns a run in PhaseSnapshot that keeps them inline, as
// its one page, not yet written: the caller's next write (the run about to POST, or its outcome)
// is its first, so the snapshot costs one write instead of a record, a page and a record again.
// A holder that dies before that write leaves nothing: the triggers are still pending. ok is
// false when the directory has more pending than a run record keeps inline (sampleSize
// triggers, sampleBytes), or before the index is complete: NewRun and Collect then page them.
// A nil run with ok means nothing is pending (or nothing up to the cancel order).
func (s *Store) SnapshotSmall(ctx context.Context, dir dirsync.DirKey, runID string, cancel *dirsync.Cancel) (r *dirsync.Run, ok bool, err error) {
	if n, ready := s.PendingCount(dir); !ready || n > sampleSize {
		return nil, false, nil
	}
	var ts []dirsync.Trigger
	var collected uint64
	size := 0
	err = s.eachPending(ctx, dir, func(p PendingEntry) error {
		if cancel != nil && p.Revision > cancel.UpTo {
			return nil
		}
		b, err := json.Marshal(p.Trigger)
		if err != nil {
			return fmt.Errorf("encode trigger %s: %w", p.Trigger.ID, err)
		}
		if size += len(b) + resultReserve; len(ts) == sampleSize || size > sampleBytes {
			return errStop
		}
		ts, collected = append(ts, p.Trigger), max(collected, p.Revision)
		return nil
	})
	switch {
	case errors.Is(err, errStop):
		return nil, false, nil // more than a record keeps: paged
	case err != nil:
		return nil, false, err
	case len(ts) == 0:
		return nil, true, nil
	}
	first := ts[0]
	r = &dirsync.Run{RunID: runID, Tenant: first.Tenant, DirectoryID: first.DirectoryID, DirectoryName: first.DirectoryName,
		Phase: dirsync.PhaseSnapshot, CreatedAt: s.now(), Cancel: cancel,
		Count: len(ts), Pages: 1, Triggers: ts, Sample: ts, Collected: collected}
	if r.Dir() != dir {
		return nil, false, fmt.Errorf("pending trigger %s of %s names directory %s", first.ID, dir, r.Dir())
	}
	for _, t := range ts {
		r.IgnoreSafeguards = r.IgnoreSafeguards || t.IgnoreSafeguards
		if r.Traceparent == "" {
			r.Traceparent = t.Traceparent
		}
		if r.IntakeSpan == "" {
			r.IntakeSpan = t.IntakeSpan
		}
	}
	return r, true, nil
}

// Collect fixes the triggers a collecting run covers: every trigger of its directory pending now
// (for a cancellation, those recorded up to its order), written in pages. It then moves the run to PhaseSnapshot, or forgets it when nothing was
// pending after all (r.Count is 0).
func (s *Store) Collect(ctx context.Context, r *dirsync.Run) error {
	if err := s.purgePages(ctx, r); err != nil {
		return err
	}
	return s.CollectNew(ctx, r)
}

// CollectNew is Collect for a run NewRun has just created: no holder can have written pages of
// it yet, so the listing of its page keys (a consumer on the bucket, several round trips) is
// skipped.
func (s *Store) CollectNew(ctx context.Context, r *dirsync.Run) error {
	r.Count, r.Pages, r.Sample, r.Traceparent, r.IntakeSpan, r.IgnoreSafeguards, r.Collected = 0, 0, nil, "", "", false, 0
	w := pageWriter{store: s, run: r, ctx: ctx}
	add := w.add
	if c := r.Cancel; c != nil {
		add = func(p PendingEntry) error {
			if p.Revision > c.UpTo {
				return nil // recorded after the order: synced by the next run
			}
			return w.add(p)
		}
	}
	if err := s.eachPending(ctx, r.Dir(), add); err != nil {
		return err
	}
	if err := w.flush(ctx); err != nil {
		return err
	}
	if r.Count == 0 {
		return s.DeleteRun(ctx, r)
	}
	r.Phase = dirsync.PhaseSnapshot
	return s.SaveRun(ctx, r)
}

// pageWriter cuts a run's triggers into pages of at most the store's page size.
type pageWriter struct {
	ctx         context.Context //nolint:containedctx // one Collect call's; add is a listing callback
	store       *Store
	run         *dirsync.Run
	buf         bytes.Buffer
	n           int
	sampleBytes int
}

func (w *pageWriter) add(p PendingEntry) error {
	b, err := json.Marshal(p.Trigger)
	if err != nil {
		return fmt.Errorf("encode trigger %s: %w", p.Trigger.ID, err)
	}
	if w.n > 0 && w.buf.Len()+(w.n+1)*resultReserve+1+len(b)+1 > w.store.pageBytes {
		if err := w.flush(w.ctx); err != nil {
			return err
		}
	}
	if w.n == 0 {
		w.buf.WriteByte('[')
	} else {
		w.buf.WriteByte(',')
	}
	w.buf.Write(b)
	w.n++
	r := w.run
	r.Count++
	r.Collected = max(r.Collected, p.Revision)
	r.IgnoreSafeguards = r.IgnoreSafeguards || p.Trigger.IgnoreSafeguards
	if r.Traceparent == "" {
		r.Traceparent = p.Trigger.Traceparent
	}
	if r.IntakeSpan == "" {
		r.IntakeSpan = p.Trigger.IntakeSpan
	}
	if len(r.Sample) < sampleSize && w.sampleBytes+len(b) <= sampleBytes {
		r.Sample = append(r.Sample, p.Trigger)
		w.sampleBytes += len(b)
	}
	return nil
}

// flush writes the page being filled, if any.
func (w *pageWriter) flush(ctx context.Context) error {
	if w.n == 0 {
		return nil
	}
	w.buf.WriteByte(']')
	w.run.Pages++
	if _, err := w.store.runs.Put(ctx, PageKey(w.run, w.run.Pages), w.buf.Bytes()); err != nil {
		return fmt.Errorf("write page %d of run %s (%d bytes): %w", w.run.Pages, w.run.RunID, w.buf.Len(), err)
	}
	w.buf.Reset()
	w.n = 0
	return nil
}

// Page returns page n (from 1) of the run's covered triggers.
func (s *Store) Page(ctx context.Context, r *dirsync.Run, n int) ([]dirsync.Trigger, error) {
	if len(r.Triggers) > 0 && n == 1 {
		return r.Triggers, nil
	}
	e, err := s.runs.Get(ctx, PageKey(r, n))
	if err != nil {
		return nil, fmt.Errorf("read page %d of run %s: %w", n, r.RunID, err)
	}
	var ts []dirsync.Trigger
	if err := json.Unmarshal(e.Value(), &ts); err != nil {
		return nil, fmt.Errorf("page %d of run %s: %w", n, r.RunID, err)
	}
	return ts, nil
}

// Forget ends a reported run: it marks its triggers reported, forgets them from the pending set,
// then deletes its pages and its record. Every step can be repeated, so a holder that resumes
// the run after a crash finishes it.
func (s *Store) Forget(ctx context.Context, r *dirsync.Run) error {
	for n := 1; n <= r.Pages; n++ {
		page, err := s.Page(ctx, r, n)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // forgotten by an earlier holder that then stopped
		}
		if err != nil {
			return err
		}
		if err := s.markReported(ctx, r, page); err != nil {
			return err
		}
		keys := make([]string, len(page))
		for i, t := range page {
			keys[i] = t.Key()
		}
		if err := s.DeletePending(ctx, keys); err != nil {
			return err
		}
	}
	if len(r.Keys) > 0 {
		if err := s.DeletePending(ctx, r.Keys); err != nil {
			return err
		}
	}
	if len(r.Triggers) == 0 {
		// A run with its triggers inline never wrote pages: no listing of its keys.
		if err := s.purgePages(ctx, r); err != nil {
			return err
		}
	}
	return s.DeleteRun(ctx, r)
}

// markReported remembers, for the reported bucket's TTL, that the run reported these triggers,
// before they leave the pending set: a redelivery of one of them (its ack was lost) finds the
// marker and is not reported again.
func (s *Store) markReported(ctx context.Context, r *dirsync.Run, page []dirsync.Trigger) error {
	if s.reported == nil {
		return nil
	}
	return inParallel(ctx, page, func(ctx context.Context, t dirsync.Trigger) error {
		if _, err := s.reported.Put(ctx, t.Key(), []byte(r.RunID)); err != nil {
			return fmt.Errorf("mark trigger %s reported: %w", t.ID, err)
		}
		return nil
	})
}

// Reported returns the id of the run that reported the trigger with this pending key, if a
// marker of it is still kept.
func (s *Store) Reported(ctx context.Context, key string) (runID string, ok bool, err error) {
	if s.reported == nil {
		return "", false, nil
	}
	e, err := s.reported.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read reported marker %s: %w", key, err)
	}
	return string(e.Value()), true, nil
}

// purgePages deletes every page of the run, including any left by an earlier holder.
func (s *Store) purgePages(ctx context.Context, r *dirsync.Run) error {
	ks, err := keys(ctx, s.runs, string(r.Dir())+"."+r.RunID+".*")
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return fmt.Errorf("list pages of run %s: %w", r.RunID, err)
	}
	return inParallel(ctx, ks, func(ctx context.Context, k string) error { return purgeKey(ctx, s.runs, k) })
}

// purgeKey deletes a key and its history; a key already gone is not an error.
func purgeKey(ctx context.Context, kv jetstream.KeyValue, k string) error {
	if err := kv.Purge(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete %s from %s: %w", k, kv.Bucket(), err)
	}
	return nil
}

// inParallel calls f for every item, parallelWrites at a time, and returns the first error.
func inParallel[T any](ctx context.Context, items []T, f func(context.Context, T) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelWrites)
	for _, it := range items {
		g.Go(func() error { return f(gctx, it) })
	}
	return g.Wait()
}

// SetTrouble records on the run that its holders keep failing, for operator views; nil clears it.
func (s *Store) SetTrouble(ctx context.Context, r *dirsync.Run, t *dirsync.Trouble) error {
	r.Trouble = t
	return s.SaveRun(ctx, r)
}
