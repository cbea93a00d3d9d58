package dirstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

// ErrLeaseHeld: another holder has the directory.
var ErrLeaseHeld = errors.New("directory lease held by another worker")

// ErrLeaseLost: the lease expired or was taken while this holder thought it had it.
var ErrLeaseLost = errors.New("directory lease lost")

// Lease is the right to act on one directory. The lease bucket's TTL expires a lease its holder
// stops renewing, so a dead replica never blocks a directory for longer than the TTL.
type Lease struct {
	store  *Store
	dir    dirsync.DirKey
	holder string
	ttl    time.Duration

	mu       sync.Mutex
	revision uint64
	lost     bool
}

type leaseValue struct {
	Holder     string    `json:"holder"`
	AcquiredAt time.Time `json:"acquiredAt"`
}

// Acquire claims dir for holder with a create-if-absent write.
func (s *Store) Acquire(ctx context.Context, dir dirsync.DirKey, holder string, ttl time.Duration) (*Lease, error) {
	b, err := json.Marshal(leaseValue{Holder: holder, AcquiredAt: s.now()})
	if err != nil {
		return nil, err
	}
	rev, err := s.leases.Create(ctx, string(dir), b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil, ErrLeaseHeld
	}
	if err != nil {
		return nil, fmt.Errorf("acquire lease of %s: %w", dir, err)
	}
	return &Lease{store: s, dir: dir, holder: holder, ttl: ttl, revision: rev}, nil
}

// Holder returns who holds dir's lease, or "" when nobody does.
func (s *Store) Holder(ctx context.Context, dir dirsync.DirKey) (string, error) {
	e, err := s.leases.Get(ctx, string(dir))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var v leaseValue
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return "", err
	}
	return v.Holder, nil
}

// renew rewrites the lease on its last revision, which restarts the bucket's TTL for it.
func (l *Lease) renew(ctx context.Context) error {
	l.mu.Lock()
	rev := l.revision
	l.mu.Unlock()
	b, err := json.Marshal(leaseValue{Holder: l.holder, AcquiredAt: l.store.now()})
	if err != nil {
		return err
	}
	newRev, err := l.store.leases.Update(ctx, string(l.dir), b, rev)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyNotFound):
		l.lost = true
		return ErrLeaseLost
	case err != nil:
		return err
	}
	l.revision = newRev
	return nil
}

// Keep renews the lease every TTL/4 until stop is called. The returned context ends when the
// lease is lost, or when no renewal has succeeded for half the TTL: a watchdog timer, independent
// of renewals that may hang while the broker has no quorum, makes the holder stop acting before
// the lease can expire under it and another holder take the directory.
func (l *Lease) Keep(ctx context.Context) (context.Context, func()) {
	kctx, cancel := context.WithCancelCause(ctx)
	watchdog := time.AfterFunc(l.ttl/2, func() {
		cancel(fmt.Errorf("%w: not renewed for %s", ErrLeaseLost, l.ttl/2))
	})
	// stop ends the loop between renewals: a renewal cancelled in flight may still land on the
	// server, leaving a revision Release does not know.
	stopping, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer watchdog.Stop()
		t := time.NewTicker(l.ttl / 4)
		defer t.Stop()
		for {
			select {
			case <-kctx.Done():
				return
			case <-stopping:
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(kctx, l.ttl/4)
			err := l.renew(rctx)
			rcancel()
			switch {
			case errors.Is(err, ErrLeaseLost):
				cancel(ErrLeaseLost)
				return
			case err == nil:
				watchdog.Reset(l.ttl / 2)
			}
		}
	}()
	return kctx, func() { close(stopping); <-done; cancel(context.Canceled) }
}

// Release gives the lease up unless it was lost. It must be called with a context that is still
// live (not the one Keep returned).
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	lost, rev := l.lost, l.revision
	l.mu.Unlock()
	if lost {
		return nil
	}
	err := l.store.leases.Purge(ctx, string(l.dir), jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		err = l.releaseLanded(ctx, rev)
	}
	if err != nil {
		return fmt.Errorf("release lease of %s: %w", l.dir, err)
	}
	return nil
}

// releaseLanded purges the lease when a renewal whose answer never arrived (its context ended)
// landed after rev: the entry is still ours, one revision on. Anything else is another holder's.
func (l *Lease) releaseLanded(ctx context.Context, rev uint64) error {
	e, err := l.store.leases.Get(ctx, string(l.dir))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var v leaseValue
	if json.Unmarshal(e.Value(), &v) != nil || v.Holder != l.holder || e.Revision() <= rev {
		return nil
	}
	err = l.store.leases.Purge(ctx, string(l.dir), jetstream.LastRevision(e.Revision()))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return nil
	}
	return err
}
