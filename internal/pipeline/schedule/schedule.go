// Package schedule fires scheduled safety-net syncs: per directory, an optional cron-like schedule
// publishes a vidm.directory.sync.requested trigger, which the worker accepts and coalesces like
// any other, so that a lost or never-sent event is healed within the schedule (vIDM's own
// scheduler syncs hourly at best).
//
// Every replica runs its own Scheduler. A firing's event id is derived from the entry and the slot,
// so the trigger stream's duplicate window stores a slot fired by several replicas once.
package schedule

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/backoff"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/schedule/cronspec"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
)

const (
	// DefaultSource is the CloudEvents source of scheduled triggers when Config.Source is empty.
	DefaultSource = "urn:vidm-sync-worker:scheduler"

	// maxAttempts publishes per slot, with backoff doubling from firstBackoff (1s, 2s, 4s): a
	// broker blip is ridden out well within the shortest interval (MinEvery), and a longer outage
	// is left to the next slot.
	maxAttempts  = 4
	firstBackoff = time.Second
	// attemptTimeout bounds one publish, so that a broker that accepts the connection but never
	// answers cannot hold the scheduler past its next slots.
	attemptTimeout = 10 * time.Second
	// maxIDLen is the longest trigger id the worker's decoder accepts (it must fit a result event).
	maxIDLen = 256
	// maxCatchUp bounds the walk to the latest missed slot after a long suspension.
	maxCatchUp = 100_000
)

// Entry is one directory's schedule.
type Entry struct {
	Tenant, Directory string
	Spec              cronspec.Spec
	IgnoreSafeguards  bool
}

// Key is the entry's key in Next: "tenant/directory".
func (e Entry) Key() string { return e.Tenant + "/" + e.Directory }

// Publisher is what the scheduler needs of JetStream (jetstream.JetStream satisfies it).
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Config configures a Scheduler.
type Config struct {
	Subject string // where sync requests go (the worker passes cfg.RequestSubject()); required
	Source  string // CloudEvents source; DefaultSource when empty
	Logger  *slog.Logger
	Now     func() time.Time                     // default time.Now
	After   func(time.Duration) <-chan time.Time // default time.After; tests inject a fake
	// Observer, when set, is called after each publish attempt with the entry, the slot it fired
	// for and the attempt's error (nil on success). A slot that is given up was reported with its
	// last error. It runs on the scheduler's goroutine and must not block.
	Observer func(e Entry, at time.Time, err error)
}

// Scheduler fires entries. Set and Next are safe for concurrent use, also while Run runs.
type Scheduler struct {
	cfg  Config
	pub  Publisher
	log  *slog.Logger
	wake chan struct{} // Set tells Run to look at the entries again

	mu      sync.Mutex
	entries map[string]*state // by Entry.Key
}

type state struct {
	e    Entry
	next time.Time // zero: never
}

// New returns a Scheduler with no entries.
func New(cfg Config, pub Publisher) *Scheduler {
	cfg.Source = cmp.Or(cfg.Source, DefaultSource)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{cfg: cfg, pub: pub, log: log, wake: make(chan struct{}, 1), entries: map[string]*state{}}
}

// Set replaces all entries. Each entry's next firing is computed from now, except that an entry
// whose tenant, directory and spec did not change keeps its next firing time, so a configuration
// reload neither skips nor repeats a slot. Of entries with the same key, the last wins.
func (s *Scheduler) Set(entries []Entry) {
	now := s.cfg.Now()
	s.mu.Lock()
	m := make(map[string]*state, len(entries))
	for _, e := range entries {
		k := e.Key()
		if old, ok := s.entries[k]; ok && old.e.Spec.String() == e.Spec.String() {
			m[k] = &state{e: e, next: old.next}
			continue
		}
		m[k] = &state{e: e, next: e.Spec.Next(now)}
	}
	s.entries = m
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Next returns the next firing time of each entry by "tenant/directory" (the zero time for a spec
// that never fires again).
func (s *Scheduler) Next() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]time.Time, len(s.entries))
	for k, st := range s.entries {
		m[k] = st.next
	}
	return m
}

// Run fires entries until ctx ends, then returns nil. Firings are published one after another.
func (s *Scheduler) Run(ctx context.Context) error {
	for {
		for _, f := range s.takeDue() {
			s.fire(ctx, f.e, f.slot)
			if ctx.Err() != nil {
				return nil
			}
		}
		var timer <-chan time.Time // nil: no entry to wait for, only Set or ctx
		if d, ok := s.untilNext(); ok {
			timer = s.cfg.After(d)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-timer:
		}
	}
}

type firing struct {
	e    Entry
	slot time.Time
}

// takeDue advances every due entry past now and returns one firing per due entry, for the latest
// slot that has passed: slots missed while the process was busy or suspended fire once, not once
// each.
func (s *Scheduler) takeDue() []firing {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []firing
	for _, k := range slices.Sorted(maps.Keys(s.entries)) {
		st := s.entries[k]
		if st.next.IsZero() || st.next.After(now) {
			continue
		}
		slot := st.next
		for range maxCatchUp {
			n := st.e.Spec.Next(slot)
			if n.IsZero() || n.After(now) {
				break
			}
			slot = n
		}
		st.next = st.e.Spec.Next(now)
		due = append(due, firing{st.e, slot})
	}
	return due
}

// untilNext returns how long until the earliest next firing, and false when there is none.
func (s *Scheduler) untilNext() (time.Duration, bool) {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var first time.Time
	for _, st := range s.entries {
		if !st.next.IsZero() && (first.IsZero() || st.next.Before(first)) {
			first = st.next
		}
	}
	if first.IsZero() {
		return 0, false
	}
	return max(first.Sub(now), 0), true
}

// fire publishes the sync request for e's slot, retrying a failed publish with backoff a few
// times before giving the slot up. The id is the same on every attempt and every replica.
func (s *Scheduler) fire(ctx context.Context, e Entry, slot time.Time) {
	log := s.log.With("tenant", e.Tenant, "directory", e.Directory, "slot", slot.UTC())
	msg, err := s.message(e, slot)
	if err != nil {
		log.Error("scheduled sync not published", "err", err)
		s.observe(e, slot, err)
		return
	}
	retry := backoff.Policy{Initial: firstBackoff}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		ack, err := s.pub.PublishMsg(actx, msg)
		cancel()
		if ctx.Err() != nil {
			return // shutting down: not a failure of the slot
		}
		s.observe(e, slot, err)
		if err == nil {
			log.Debug("scheduled sync requested", "duplicate", ack != nil && ack.Duplicate)
			return
		}
		if attempt == maxAttempts {
			log.Error("scheduled sync not published; giving up until the next slot", "attempts", attempt, "err", err)
			return
		}
		wait := retry.Delay(attempt)
		log.Warn("publishing scheduled sync failed; retrying", "attempt", attempt, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-s.cfg.After(wait):
		}
	}
}

func (s *Scheduler) observe(e Entry, slot time.Time, err error) {
	if s.cfg.Observer != nil {
		s.cfg.Observer(e, slot, err)
	}
}

// message builds the binary-mode sync request for e's slot.
func (s *Scheduler) message(e Entry, slot time.Time) (*nats.Msg, error) {
	ev, err := trigger.NewEvent(trigger.Trigger{
		ID:               EventID(e.Tenant, e.Directory, slot),
		Type:             contract.TypeSyncRequested,
		Source:           s.cfg.Source,
		Tenant:           e.Tenant,
		Directory:        e.Directory,
		IgnoreSafeguards: e.IgnoreSafeguards,
		Reason:           "scheduled safety-net sync (" + e.Spec.String() + ")",
		Time:             slot,
	})
	if err != nil {
		return nil, fmt.Errorf("build scheduled sync request: %w", err)
	}
	msg, err := cenats.EncodeBinary(s.cfg.Subject, ev)
	if err != nil {
		return nil, fmt.Errorf("encode scheduled sync request: %w", err)
	}
	return msg, nil
}

// EventID is the id of the trigger for tenant's directory at slot:
// "schedule:<tenant>/<directory>@<slot in RFC 3339 UTC>". When that is longer than the decoder
// accepts, the tenant and directory are replaced by the SHA-256 of "<tenant>/<directory>"
// ("schedule:sha256-<hex>@<slot>"), which is still the same on every replica.
func EventID(tenant, directory string, slot time.Time) string {
	ts := slot.UTC().Format(time.RFC3339)
	id := "schedule:" + tenant + "/" + directory + "@" + ts
	if len(id) <= maxIDLen {
		return id
	}
	sum := sha256.Sum256([]byte(tenant + "/" + directory))
	return "schedule:sha256-" + hex.EncodeToString(sum[:]) + "@" + ts
}
