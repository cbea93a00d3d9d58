// Package dirstate keeps the worker's crash-surviving state in JetStream KV: the triggers accepted
// but not yet reported (pending), the run each directory is in (runs), and who may act on a
// directory (leases). Any replica can pick up where another stopped because nothing here lives
// only in memory.
package dirstate

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
	"golang.org/x/sync/errgroup"
)

// DirKeyOf returns the directory part of a pending, run or lease key.
func DirKeyOf(key string) (dirsync.DirKey, bool) {
	parts := strings.SplitN(key, ".", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return "", false
	}
	return dirsync.DirKey(parts[0] + "." + parts[1]), true
}

// Store reads and writes the worker's buckets.
type Store struct {
	pending, runs, leases jetstream.KeyValue
	// reported remembers the triggers already reported (Reported), so that a trigger whose
	// message is redelivered after its run reported it is not reported a second time; nil: no
	// markers are kept.
	reported jetstream.KeyValue
	now      func() time.Time
	// js and pendingSubject serve AddPending's asynchronous writes; nil js: synchronous ones.
	js             jetstream.JetStream
	pendingSubject string
	// pageBytes bounds a stored page of a run's covered triggers: half the broker's max_payload,
	// so that the result event listing the same triggers (fewer fields each, plus its envelope)
	// fits in one message too.
	pageBytes int
	index     pendingIndex
}

// pendingIndex lists the pending keys of each directory, with their revisions, as this replica's
// watch of the pending bucket saw them. A run's snapshot takes its keys from here instead of
// asking the server to search the bucket's stream for the directory's subjects, a search that
// costs a pass over every pending trigger and, run after run in a burst over many directories,
// starves intake; operator views count pending triggers from it without listing the bucket. The
// index may lag or hold keys already forgotten; a snapshot reads every listed key again from the
// stream leader, and a key it missed stays pending for the next run, as with any listing.
type pendingIndex struct {
	mu    sync.Mutex
	ready bool // the watch has delivered every key that existed when it started
	// readyCh is closed when ready becomes true; a reset after that makes a new one.
	readyCh chan struct{}
	keys    map[dirsync.DirKey]map[string]uint64
}

func (x *pendingIndex) add(key string, rev uint64) {
	d, ok := DirKeyOf(key)
	if !ok {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.keys == nil {
		x.keys = map[dirsync.DirKey]map[string]uint64{}
	}
	if x.keys[d] == nil {
		x.keys[d] = map[string]uint64{}
	}
	if cur, ok := x.keys[d][key]; !ok || rev > cur {
		x.keys[d][key] = rev
	}
}

func (x *pendingIndex) remove(keys ...string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, k := range keys {
		if d, ok := DirKeyOf(k); ok && x.keys[d] != nil {
			delete(x.keys[d], k)
			if len(x.keys[d]) == 0 {
				delete(x.keys, d)
			}
		}
	}
}

// reset empties the index for a new watch to fill.
func (x *pendingIndex) reset() {
	x.mu.Lock()
	if x.ready {
		x.readyCh = make(chan struct{})
	}
	x.ready, x.keys = false, nil
	x.mu.Unlock()
}

func (x *pendingIndex) setReady() {
	x.mu.Lock()
	if !x.ready {
		close(x.readyCh)
	}
	x.ready = true
	x.mu.Unlock()
}

// waitReady returns once the index is complete, or ctx's error.
func (x *pendingIndex) waitReady(ctx context.Context) error {
	x.mu.Lock()
	ready, ch := x.ready, x.readyCh
	x.mu.Unlock()
	if ready {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// list returns d's indexed keys in the order they were written, or ok false before the index
// is complete.
func (x *pendingIndex) list(d dirsync.DirKey) (keys []string, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.ready {
		return nil, false
	}
	type kr struct {
		k string
		r uint64
	}
	byRev := make([]kr, 0, len(x.keys[d]))
	for k, r := range x.keys[d] {
		byRev = append(byRev, kr{k, r})
	}
	slices.SortFunc(byRev, func(a, b kr) int { return cmp.Compare(a.r, b.r) })
	keys = make([]string, len(byRev))
	for i, e := range byRev {
		keys[i] = e.k
	}
	return keys, true
}

// counts returns the number of indexed keys per directory, or ok false before the index is
// complete.
func (x *pendingIndex) counts() (map[dirsync.DirKey]int, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.ready {
		return nil, false
	}
	out := make(map[dirsync.DirKey]int, len(x.keys))
	for d, ks := range x.keys {
		out[d] = len(ks)
	}
	return out, true
}

// Buckets are the KV buckets a Store works on.
type Buckets struct {
	Pending, Runs, Leases jetstream.KeyValue
	// Reported keeps a marker per reported trigger for the bucket's TTL (the history bucket);
	// optional.
	Reported jetstream.KeyValue
}

// Options tune a Store. Zero values take the defaults noted.
type Options struct {
	Now func() time.Time // default time.Now
	// MaxPayload is the broker's max_payload (nats.Conn.MaxPayload); default 1 MiB, NATS's own.
	MaxPayload int64
	// JetStream, when set, records pending triggers with asynchronous publishes.
	JetStream jetstream.JetStream
}

// DefaultMaxPayload is NATS's default max_payload.
const DefaultMaxPayload = 1 << 20

// minPageBytes keeps a page useful on a broker configured with a tiny max_payload.
const minPageBytes = 4 << 10

// New returns a Store over the given buckets.
func New(b Buckets, o Options) *Store {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	st := &Store{pending: b.Pending, runs: b.Runs, leases: b.Leases, reported: b.Reported, now: o.Now,
		pageBytes: max(int(o.MaxPayload/2), minPageBytes), index: pendingIndex{readyCh: make(chan struct{})}}
	if o.JetStream != nil && b.Pending != nil {
		st.js, st.pendingSubject = o.JetStream, "$KV."+b.Pending.Bucket()+"."
	}
	return st
}

// AddPending records an accepted trigger. It returns once the broker has stored it, or has
// answered that the trigger's entry already exists: a redelivered or re-published trigger lands
// on its first entry, which keeps its revision (a run lists its triggers in that order). Many
// calls may be in flight at once; with Options.JetStream each is one asynchronous publish on a
// shared reply subscription rather than a request of its own.
func (s *Store) AddPending(ctx context.Context, t dirsync.Trigger) error {
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode pending trigger: %w", err)
	}
	key := t.Key()
	var rev uint64
	if s.js != nil {
		rev, err = s.createAsync(ctx, key, b)
	} else {
		rev, err = s.pending.Create(ctx, key, b)
	}
	if errors.Is(err, errLastSequence) {
		// An entry exists: the trigger, or the marker a forgotten trigger left. Create tells
		// them apart and writes over the marker.
		rev, err = s.pending.Create(ctx, key, b)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		return nil // recorded by an earlier delivery
	case err != nil:
		return fmt.Errorf("record pending trigger: %w", err)
	}
	// Indexed now, not when the watch delivers it: the run this trigger's notice starts must
	// find it, or it would end empty and leave the trigger to the next notice.
	s.index.add(key, rev)
	return nil
}

// errLastSequence: a create-if-absent publish found the key's subject already written.
var errLastSequence = errors.New("key already written")

// createAsync publishes value under key if the key was never written (or only purged),
// asynchronously, and waits for the broker's answer.
func (s *Store) createAsync(ctx context.Context, key string, value []byte) (uint64, error) {
	msg := nats.NewMsg(s.pendingSubject + key)
	msg.Data = value
	msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	f, err := s.js.PublishMsgAsync(msg)
	if err != nil {
		return 0, err
	}
	select {
	case ack := <-f.Ok():
		return ack.Sequence, nil
	case err := <-f.Err():
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			return 0, errLastSequence
		}
		return 0, err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// PendingEntry is one pending trigger with its key.
type PendingEntry struct {
	Key      string
	Revision uint64 // the bucket's revision of the entry: the order triggers were recorded in
	Trigger  dirsync.Trigger
}

// Pending lists the directory's pending triggers in the order they were recorded. It holds them
// all in memory: for tests and small directories; runs page through them with eachPending.
func (s *Store) Pending(ctx context.Context, dir dirsync.DirKey) ([]PendingEntry, error) {
	var out []PendingEntry
	err := s.eachPending(ctx, dir, func(p PendingEntry) error {
		out = append(out, p)
		return nil
	})
	return out, err
}

// eachPending calls f with the directory's pending triggers as the bucket's stream leader has
// them, in the order they were recorded. The listing comes from this replica's index (or, before
// it is complete, a watch), which may lag; every listed key is then read again from the leader,
// so a trigger reported and forgotten by the previous holder is not picked up a second time. A key the listing missed stays pending
// for the next run. Entries that cannot be decoded are an error rather than skipped: dropping one
// would lose a trigger. Keys are read a chunk at a time, several at once, so that a directory
// with 100,000 pending triggers costs neither 100,000 sequential round trips nor their memory.
func (s *Store) eachPending(ctx context.Context, dir dirsync.DirKey, f func(PendingEntry) error) error {
	keys, ok := s.index.list(dir)
	if !ok {
		var err error
		if keys, err = s.watchPendingKeys(ctx, dir); err != nil {
			return err
		}
	}
	const chunk, parallel = 512, 32
	got := make([]PendingEntry, chunk)
	for len(keys) > 0 {
		n := min(len(keys), chunk)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(parallel)
		for i, k := range keys[:n] {
			g.Go(func() error {
				got[i] = PendingEntry{}
				e, err := s.pending.Get(gctx, k)
				if errors.Is(err, jetstream.ErrKeyNotFound) {
					s.index.remove(k)
					return nil
				}
				if err != nil {
					return fmt.Errorf("read pending %s: %w", k, err)
				}
				var t dirsync.Trigger
				if err := json.Unmarshal(e.Value(), &t); err != nil {
					return fmt.Errorf("pending %s: %w", k, err)
				}
				got[i] = PendingEntry{Key: k, Revision: e.Revision(), Trigger: t}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		for _, p := range got[:n] {
			if p.Key == "" {
				continue
			}
			if err := f(p); err != nil {
				return err
			}
		}
		keys = keys[n:]
	}
	return nil
}

// watchPendingKeys lists the directory's pending keys in the order they were written with a
// watch of its keys, before the index is complete. Only the keys are taken from the watch, which
// a lagging replica may serve; eachPending reads the values from the leader.
func (s *Store) watchPendingKeys(ctx context.Context, dir dirsync.DirKey) ([]string, error) {
	w, err := s.pending.Watch(ctx, string(dir)+".*", jetstream.IgnoreDeletes(), jetstream.MetaOnly())
	if err != nil {
		return nil, fmt.Errorf("list pending of %s: %w", dir, err)
	}
	defer func() { _ = w.Stop() }()
	var keys []string
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("list pending of %s: watcher closed", dir)
			}
			if e == nil { // end of the initial values, delivered in stream order
				return keys, nil
			}
			keys = append(keys, e.Key())
		}
	}
}

// PendingCount is the number of pending triggers of a directory as this replica's index has
// them, and false while the index is not complete.
func (s *Store) PendingCount(dir dirsync.DirKey) (int, bool) {
	s.index.mu.Lock()
	defer s.index.mu.Unlock()
	return len(s.index.keys[dir]), s.index.ready
}

// PendingAfter counts d's indexed pending triggers recorded after revision rev, and returns the
// newest revision among them (rev when there is none); ok is false before the index is complete.
func (s *Store) PendingAfter(d dirsync.DirKey, rev uint64) (n int, newest uint64, ok bool) {
	s.index.mu.Lock()
	defer s.index.mu.Unlock()
	newest = rev
	for _, r := range s.index.keys[d] {
		if r > rev {
			n++
			newest = max(newest, r)
		}
	}
	return n, newest, s.index.ready
}

// DeletePending forgets reported triggers, several at once. A key already gone is not an error.
func (s *Store) DeletePending(ctx context.Context, keys []string) error {
	return inParallel(ctx, keys, func(ctx context.Context, k string) error {
		if err := purgeKey(ctx, s.pending, k); err != nil {
			return err
		}
		s.index.remove(k)
		return nil
	})
}

// LoadRun returns the directory's unfinished run, or nil.
func (s *Store) LoadRun(ctx context.Context, dir dirsync.DirKey) (*dirsync.Run, error) {
	e, err := s.runs.Get(ctx, string(dir))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load run of %s: %w", dir, err)
	}
	var r dirsync.Run
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, fmt.Errorf("run of %s: %w", dir, err)
	}
	r.Version = e.Revision()
	adoptInline(&r)
	return &r, nil
}

// adoptInline fills the paged fields of a run a worker before paging left with its triggers
// inline: they are its one page.
func adoptInline(r *dirsync.Run) {
	if r.Pages > 0 || len(r.Triggers) == 0 {
		return
	}
	r.Count, r.Pages = len(r.Triggers), 1
	r.Sample = r.Triggers[:min(len(r.Triggers), sampleSize)]
	for _, t := range r.Triggers {
		if t.Traceparent != "" {
			r.Traceparent = t.Traceparent
			break
		}
	}
}

// SaveRun writes the run. Writes are compare-and-set on the revision read, so a holder that lost
// its lease without noticing cannot overwrite the new holder's progress.
func (s *Store) SaveRun(ctx context.Context, r *dirsync.Run) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode run: %w", err)
	}
	var rev uint64
	if r.Version == 0 {
		rev, err = s.runs.Create(ctx, string(r.Dir()), b)
	} else {
		rev, err = s.runs.Update(ctx, string(r.Dir()), b, r.Version)
	}
	if err != nil {
		return fmt.Errorf("save run %s: %w", r.RunID, err)
	}
	r.Version = rev
	return nil
}

// DeleteRun forgets a reported run.
func (s *Store) DeleteRun(ctx context.Context, r *dirsync.Run) error {
	if err := s.runs.Purge(ctx, string(r.Dir()), jetstream.LastRevision(r.Version)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("forget run %s: %w", r.RunID, err)
	}
	return nil
}

// keys lists every key of a bucket's live entries (those matching filters, when given), for the
// periodic rescan.
func keys(ctx context.Context, kv jetstream.KeyValue, filters ...string) ([]string, error) {
	var l jetstream.KeyLister
	var err error
	if len(filters) > 0 {
		l, err = kv.ListKeysFiltered(ctx, filters...)
	} else {
		l, err = kv.ListKeys(ctx)
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for k := range l.Keys() {
		out = append(out, k)
	}
	// The lister stops itself once every key is delivered; Stop then only reports that.
	_ = l.Stop()
	return out, nil
}

// runKeys is the filter of the runs bucket's run records: a run's pages have longer keys.
const runKeys = "*.*"

// Directories returns every directory that has pending triggers or an unfinished run.
func (s *Store) Directories(ctx context.Context) ([]dirsync.DirKey, error) {
	seen := map[dirsync.DirKey]bool{}
	var out []dirsync.DirKey
	for _, kv := range []jetstream.KeyValue{s.pending, s.runs} {
		var filters []string
		if kv == s.runs {
			filters = []string{runKeys}
		}
		ks, err := keys(ctx, kv, filters...)
		if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, fmt.Errorf("scan %s: %w", kv.Bucket(), err)
		}
		for _, k := range ks {
			if kv == s.pending {
				// The rescan also heals the index after a watch that missed puts.
				s.index.add(k, 0)
			}
			if d, ok := DirKeyOf(k); ok && !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// WatchDirectories calls f with the directory of every pending trigger and run, first for those
// already stored, then for every new one, until ctx ends or the watch fails. It also keeps the
// pending index: a new watch builds it afresh, and triggers forgotten by any replica leave it.
func (s *Store) WatchDirectories(ctx context.Context, f func(dirsync.DirKey)) error {
	s.index.reset()
	// Keys, revisions and operations are all the index needs: the values stay on the server.
	wp, err := s.pending.WatchAll(ctx, jetstream.MetaOnly())
	if err != nil {
		return fmt.Errorf("watch pending: %w", err)
	}
	defer func() { _ = wp.Stop() }()
	wr, err := s.runs.Watch(ctx, runKeys, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("watch runs: %w", err)
	}
	defer func() { _ = wr.Stop() }()
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok = <-wp.Updates():
			switch {
			case !ok:
			case e == nil:
				s.index.setReady()
			case e.Operation() != jetstream.KeyValuePut:
				s.index.remove(e.Key())
				continue
			default:
				s.index.add(e.Key(), e.Revision())
			}
		case e, ok = <-wr.Updates():
		}
		if !ok {
			return errors.New("watch closed")
		}
		if e == nil {
			continue
		}
		if d, ok := DirKeyOf(e.Key()); ok {
			f(d)
		}
	}
}
