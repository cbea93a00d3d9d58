// Package dirstate keeps the worker's crash-surviving state in JetStream KV: the triggers accepted
// but not yet reported (pending), the run each directory is in (runs), and who may act on a
// directory (leases). Any replica can pick up where another stopped because nothing here lives
// only in memory.
package dirstate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/backend"
)

// DirKey names one (tenant, directory) pair as two KV key tokens.
type DirKey string

// NewDirKey builds the key of a directory. Ids that are not plain tokens are hashed so that no id
// can break out of its place in the key space.
func NewDirKey(tenant, directoryID string) DirKey {
	var buf [2*maxToken + 1]byte // on the stack: the string conversion is the only allocation
	b := appendToken(buf[:0], tenant)
	b = append(b, '.')
	return DirKey(appendToken(b, directoryID))
}

// maxToken is the longest id kept readable in a key; hashed tokens are 33 bytes.
const maxToken = 64

// plainToken reports ids that are their own key token: 1 to 64 of A-Z a-z 0-9 _ -.
// (A loop rather than a regular expression: keys are built for every trigger and run.)
func plainToken(s string) bool {
	if len(s) == 0 || len(s) > maxToken {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// appendToken appends s as a key token: itself when plain, else "h" and 32 hex digits of its hash.
func appendToken(b []byte, s string) []byte {
	if plainToken(s) {
		return append(b, s...)
	}
	sum := sha256.Sum256([]byte(s))
	return hex.AppendEncode(append(b, 'h'), sum[:16])
}

// DirKeyOf returns the directory part of a pending, run or lease key.
func DirKeyOf(key string) (DirKey, bool) {
	parts := strings.SplitN(key, ".", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return "", false
	}
	return DirKey(parts[0] + "." + parts[1]), true
}

// Trigger is an accepted trigger as the pending set keeps it: what the result event must list.
type Trigger struct {
	ID               string    `json:"id"`
	Source           string    `json:"source"`
	Type             string    `json:"type"`
	Group            string    `json:"group,omitempty"`
	User             string    `json:"user,omitempty"`
	Traceparent      string    `json:"traceparent,omitempty"`
	Tenant           string    `json:"tenant"`
	DirectoryID      string    `json:"directoryId"`
	DirectoryName    string    `json:"directoryName"`
	IgnoreSafeguards bool      `json:"ignoreSafeguards,omitempty"`
	AcceptedAt       time.Time `json:"acceptedAt"`
}

// Key is the trigger's pending key. CloudEvents are unique by (source, id), so a redelivered or
// re-published trigger lands on the same key and is recorded once.
func (t Trigger) Key() string {
	// Stack buffers for the hash input and the key: one allocation, the returned string.
	var in [256]byte
	sum := sha256.Sum256(append(append(append(in[:0], t.Source...), 0), t.ID...))
	var buf [2*maxToken + 2 + 32]byte
	b := appendToken(buf[:0], t.Tenant)
	b = append(b, '.')
	b = appendToken(b, t.DirectoryID)
	b = append(b, '.')
	return string(hex.AppendEncode(b, sum[:16]))
}

// Store reads and writes the three buckets.
type Store struct {
	pending, runs, leases jetstream.KeyValue
	now                   func() time.Time
	index                 pendingIndex
}

// pendingIndex lists the pending keys of each directory as this replica's watch of the pending
// bucket saw them. A run's snapshot takes its keys from here instead of asking the server to
// search the bucket's stream for the directory's subjects, a search that costs a pass over every
// pending trigger and, run after run in a burst over many directories, starves intake. The index
// may lag or hold keys already forgotten; Pending reads every listed key again from the stream
// leader, and a key it missed stays pending for the next run, as with any listing.
type pendingIndex struct {
	mu    sync.Mutex
	ready bool // the watch has delivered every key that existed when it started
	keys  map[DirKey]map[string]struct{}
}

func (x *pendingIndex) add(key string) {
	d, ok := DirKeyOf(key)
	if !ok {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.keys == nil {
		x.keys = map[DirKey]map[string]struct{}{}
	}
	if x.keys[d] == nil {
		x.keys[d] = map[string]struct{}{}
	}
	x.keys[d][key] = struct{}{}
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

func (x *pendingIndex) setReady() {
	x.mu.Lock()
	x.ready = true
	x.mu.Unlock()
}

// list returns d's indexed keys, sorted, or ok false before the index is complete.
func (x *pendingIndex) list(d DirKey) (keys []string, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.ready {
		return nil, false
	}
	for k := range x.keys[d] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, true
}

// New returns a Store over the given buckets.
func New(pending, runs, leases jetstream.KeyValue, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{pending: pending, runs: runs, leases: leases, now: now}
}

// AddPending records an accepted trigger. It returns once the broker has stored it.
func (s *Store) AddPending(ctx context.Context, t Trigger) error {
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode pending trigger: %w", err)
	}
	if _, err := s.pending.Put(ctx, t.Key(), b); err != nil {
		return fmt.Errorf("record pending trigger: %w", err)
	}
	return nil
}

// PendingEntry is one pending trigger with its key.
type PendingEntry struct {
	Key     string
	Trigger Trigger
}

// Pending lists the directory's pending triggers as the bucket's stream leader has them. The
// listing comes from a watch, which a lagging replica may serve; every listed key is then read
// again from the leader, so a trigger reported and forgotten by the previous holder is not picked
// up a second time. A key the listing missed stays pending for the next run. Entries that cannot
// be decoded are an error rather than skipped: dropping one would lose a trigger.
func (s *Store) Pending(ctx context.Context, dir DirKey) ([]PendingEntry, error) {
	var listed []PendingEntry
	if keys, ok := s.index.list(dir); ok {
		for _, k := range keys {
			listed = append(listed, PendingEntry{Key: k})
		}
	} else {
		var err error
		if listed, err = s.listPending(ctx, dir); err != nil {
			return nil, err
		}
	}
	out := listed[:0]
	for _, p := range listed {
		e, err := s.pending.Get(ctx, p.Key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			s.index.remove(p.Key)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read pending %s: %w", p.Key, err)
		}
		var t Trigger
		if err := json.Unmarshal(e.Value(), &t); err != nil {
			return nil, fmt.Errorf("pending %s: %w", p.Key, err)
		}
		out = append(out, PendingEntry{Key: p.Key, Trigger: t})
	}
	// In the order they were accepted, as results list them.
	slices.SortStableFunc(out, func(a, b PendingEntry) int { return a.Trigger.AcceptedAt.Compare(b.Trigger.AcceptedAt) })
	return out, nil
}

func (s *Store) listPending(ctx context.Context, dir DirKey) ([]PendingEntry, error) {
	w, err := s.pending.Watch(ctx, string(dir)+".*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list pending of %s: %w", dir, err)
	}
	defer func() { _ = w.Stop() }()
	var out []PendingEntry
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("list pending of %s: watcher closed", dir)
			}
			if e == nil { // end of the initial values
				return out, nil
			}
			var t Trigger
			if err := json.Unmarshal(e.Value(), &t); err != nil {
				return nil, fmt.Errorf("pending %s: %w", e.Key(), err)
			}
			out = append(out, PendingEntry{Key: e.Key(), Trigger: t})
		}
	}
}

// DeletePending forgets reported triggers. A key already gone is not an error.
func (s *Store) DeletePending(ctx context.Context, keys []string) error {
	for _, k := range keys {
		if err := s.pending.Purge(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("forget pending %s: %w", k, err)
		}
		s.index.remove(k)
	}
	return nil
}

// Phase is how far a run has come; a holder that resumes a run continues from its phase.
type Phase string

const (
	// PhaseSnapshot: the covered triggers are fixed; vIDM has not been asked yet.
	PhaseSnapshot Phase = "snapshot"
	// PhasePosting: the POST may or may not have reached vIDM; BeforeStart tells them apart.
	PhasePosting Phase = "posting"
	// PhasePosted: vIDM accepted the POST; the sync is being polled.
	PhasePosted Phase = "posted"
	// PhaseReported: the outcome is fixed and is being published, then forgotten.
	PhaseReported Phase = "reported"
)

// Outcome is a run's terminal result.
type Outcome struct {
	Status     string    `json:"status"` // COMPLETED, FAILED or DELEGATED
	FinishedAt time.Time `json:"finishedAt"`
	ErrCode    string    `json:"errCode,omitempty"`
	ErrMessage string    `json:"errMessage,omitempty"`
	Retryable  bool      `json:"retryable,omitempty"`
	Connector  string    `json:"connector,omitempty"`
	// Attempts are the connectors the sync went through when it failed over.
	Attempts []backend.Attempt `json:"attempts,omitempty"`
	// Delegation says who keeps the directory current when the backend has no sync to start.
	Delegation *backend.Delegation `json:"delegation,omitempty"`
}

// Run is one directory sync and the triggers it covers.
type Run struct {
	RunID            string    `json:"runId"`
	Tenant           string    `json:"tenant"`
	DirectoryID      string    `json:"directoryId"`
	DirectoryName    string    `json:"directoryName"`
	Phase            Phase     `json:"phase"`
	CreatedAt        time.Time `json:"createdAt"`
	StartedAt        time.Time `json:"startedAt,omitzero"`   // when vIDM accepted our POST
	BeforeStart      time.Time `json:"beforeStart,omitzero"` // vIDM's start time of the sync before ours
	IgnoreSafeguards bool      `json:"ignoreSafeguards,omitempty"`
	Keys             []string  `json:"keys"`
	Triggers         []Trigger `json:"triggers"`
	Outcome          *Outcome  `json:"outcome,omitempty"`
	revision         uint64
}

// Dir returns the run's directory key.
func (r *Run) Dir() DirKey { return NewDirKey(r.Tenant, r.DirectoryID) }

// LoadRun returns the directory's unfinished run, or nil.
func (s *Store) LoadRun(ctx context.Context, dir DirKey) (*Run, error) {
	e, err := s.runs.Get(ctx, string(dir))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load run of %s: %w", dir, err)
	}
	var r Run
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return nil, fmt.Errorf("run of %s: %w", dir, err)
	}
	r.revision = e.Revision()
	return &r, nil
}

// SaveRun writes the run. Writes are compare-and-set on the revision read, so a holder that lost
// its lease without noticing cannot overwrite the new holder's progress.
func (s *Store) SaveRun(ctx context.Context, r *Run) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode run: %w", err)
	}
	var rev uint64
	if r.revision == 0 {
		rev, err = s.runs.Create(ctx, string(r.Dir()), b)
	} else {
		rev, err = s.runs.Update(ctx, string(r.Dir()), b, r.revision)
	}
	if err != nil {
		return fmt.Errorf("save run %s: %w", r.RunID, err)
	}
	r.revision = rev
	return nil
}

// DeleteRun forgets a reported run.
func (s *Store) DeleteRun(ctx context.Context, r *Run) error {
	if err := s.runs.Purge(ctx, string(r.Dir()), jetstream.LastRevision(r.revision)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("forget run %s: %w", r.RunID, err)
	}
	return nil
}

// keys lists every key of a bucket's live entries, for the periodic rescan.
func keys(ctx context.Context, kv jetstream.KeyValue) ([]string, error) {
	l, err := kv.ListKeys(ctx)
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

// Directories returns every directory that has pending triggers or an unfinished run.
func (s *Store) Directories(ctx context.Context) ([]DirKey, error) {
	seen := map[DirKey]bool{}
	var out []DirKey
	for _, kv := range []jetstream.KeyValue{s.pending, s.runs} {
		ks, err := keys(ctx, kv)
		if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, fmt.Errorf("scan %s: %w", kv.Bucket(), err)
		}
		for _, k := range ks {
			if kv == s.pending {
				// The rescan also heals the index after a watch that missed puts.
				s.index.add(k)
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
// already stored, then for every new one, until ctx ends or the watch fails.
func (s *Store) WatchDirectories(ctx context.Context, f func(DirKey)) error {
	wp, err := s.pending.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("watch pending: %w", err)
	}
	defer func() { _ = wp.Stop() }()
	wr, err := s.runs.WatchAll(ctx, jetstream.IgnoreDeletes())
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
			if ok && e == nil {
				s.index.setReady()
			} else if ok {
				s.index.add(e.Key())
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

// TenantToken is the key token of a tenant name, as NewDirKey writes it.
func TenantToken(tenant string) string { return string(appendToken(nil, tenant)) }

// TenantToken is the tenant part of the key.
func (d DirKey) TenantToken() string {
	t, _, _ := strings.Cut(string(d), ".")
	return t
}
