package health

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
)

// ErrNotBound is the JetStream check's answer until the worker has bound its streams and consumer.
var ErrNotBound = errors.New("streams and consumer not bound yet")

// jetStreamOKFor is how long a successful consumer-info call keeps the JetStream check passing
// without asking again, so that frequent probes cost the broker little.
const jetStreamOKFor = 5 * time.Second

// The names of the standard checks, the keys of their results.
const (
	NameNATS      = "nats"
	NameJetStream = "jetstream"
	NameVIDM      = "vidm"
)

// NATSConnected, named "nats", passes while nc is connected; reconnecting, draining or closed fail.
func NATSConnected(nc *nats.Conn) Check {
	return Check{Name: NameNATS, Run: func(context.Context) error {
		if st := nc.Status(); st != nats.CONNECTED {
			return fmt.Errorf("NATS connection is %s", st)
		}
		return nil
	}}
}

// JetStreamStarting, named "jetstream", fails with ErrNotBound: the worker's check until it has
// bound its streams and consumer and sets JetStreamBound in its place.
func JetStreamStarting() Check {
	return Check{Name: NameJetStream, Run: func(context.Context) error { return ErrNotBound }}
}

// JetStreamBound, named "jetstream", passes while consumerInfo succeeds. A success is reused for 5 s.
func JetStreamBound(consumerInfo func(ctx context.Context) (*jetstream.ConsumerInfo, error)) Check {
	var mu sync.Mutex
	var okUntil time.Time
	return Check{Name: NameJetStream, Run: func(ctx context.Context) error {
		mu.Lock()
		fresh := time.Now().Before(okUntil)
		mu.Unlock()
		if fresh {
			return nil
		}
		if _, err := consumerInfo(ctx); err != nil {
			return fmt.Errorf("trigger consumer unavailable: %w", err)
		}
		mu.Lock()
		okUntil = time.Now().Add(jetStreamOKFor)
		mu.Unlock()
		return nil
	}}
}

// VIDMState is what the vIDM check needs of the client.
type VIDMState interface {
	// AuthState: when vIDM last proved the credentials good, and any authentication failure since.
	AuthState() (lastOK time.Time, lastAuthErr error)
	// Probe makes one uncached authenticated request.
	Probe(ctx context.Context) error
}

// VIDM, named "vidm", passes while vIDM has proved the credentials good within interval and rejected them
// since. Otherwise it probes: at most one probe at a time (concurrent checks share its result),
// and after a failed probe at most one per interval/4, the failure being repeated meanwhile. The
// error names the cause: vIDM unreachable (or failing), or the credentials rejected. vIDM errors
// never carry a secret (the client redacts them), so neither does this one.
func VIDM(v VIDMState, interval time.Duration, now func() time.Time) Check {
	if interval <= 0 {
		interval = time.Minute
	}
	if now == nil {
		now = time.Now
	}
	p := &prober{v: v, interval: interval, now: now}
	return Check{Name: NameVIDM, Run: p.check}
}

type prober struct {
	v        VIDMState
	interval time.Duration
	now      func() time.Time

	mu        sync.Mutex
	inflight  chan struct{} // closed when the running probe ends; nil when none runs
	lastProbe time.Time
	lastErr   error
}

func (p *prober) check(ctx context.Context) error {
	lastOK, authErr := p.v.AuthState()
	if authErr == nil && !lastOK.IsZero() && p.now().Sub(lastOK) < p.interval {
		return nil
	}
	p.mu.Lock()
	if ch := p.inflight; ch != nil {
		p.mu.Unlock()
		select {
		case <-ch:
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.lastErr
		case <-ctx.Done():
			return unreachable(ctx.Err())
		}
	}
	if p.lastErr != nil && p.now().Sub(p.lastProbe) < p.interval/4 {
		defer p.mu.Unlock()
		return p.lastErr
	}
	ch := make(chan struct{})
	p.inflight = ch
	p.mu.Unlock()

	err := classify(p.v.Probe(ctx))

	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastProbe, p.lastErr, p.inflight = p.now(), err, nil
	close(ch)
	return err
}

// classify names the cause of a failed probe.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ve *httpcore.Error
	if errors.Is(err, backend.ErrUnauthorized) || (errors.As(err, &ve) && ve.StatusCode == http.StatusForbidden) {
		return fmt.Errorf("vIDM credentials rejected: %w", err)
	}
	return unreachable(err)
}

func unreachable(err error) error { return fmt.Errorf("vIDM unreachable: %w", err) }

// Backends is VIDM over every configured tenant, named "vidm" as well. It passes while any
// tenant's backend passes: the replica still serves the others, and taking it out of service
// would not bring the failing one back. When all fail, the error names each tenant's cause.
// tenants is read on every check, so a reloaded configuration is followed. observe, when set,
// hears every tenant's result of each run (dirsync_tenant_up); the check's Parts give the last.
func Backends(tenants func() map[string]VIDMState, interval time.Duration, now func() time.Time, observe func(map[string]error)) Check {
	b := &backends{tenants: tenants, interval: interval, now: now, probers: map[string]*tenantProber{}, observe: observe}
	return Check{Name: NameVIDM, Run: b.check, Parts: b.lastResults}
}

type backends struct {
	tenants  func() map[string]VIDMState
	interval time.Duration
	now      func() time.Time

	observe func(map[string]error)

	mu      sync.Mutex
	probers map[string]*tenantProber
	last    map[string]error // each tenant's result in the last run
}

func (b *backends) lastResults() map[string]error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.last)
}

// record keeps each tenant's result of a run and tells the observer.
func (b *backends) record(names []string, errs []error) {
	res := make(map[string]error, len(names))
	for i, n := range names {
		res[n] = errs[i]
	}
	b.mu.Lock()
	b.last = res
	b.mu.Unlock()
	if b.observe != nil {
		b.observe(maps.Clone(res))
	}
}

type tenantProber struct {
	state VIDMState
	run   func(context.Context) error
}

func (b *backends) check(ctx context.Context) error {
	cur := b.tenants()
	names := make([]string, 0, len(cur))
	runs := make([]func(context.Context) error, 0, len(cur))
	b.mu.Lock()
	for name, st := range cur {
		p := b.probers[name]
		if p == nil || p.state != st {
			p = &tenantProber{state: st, run: VIDM(st, b.interval, b.now).Run}
			b.probers[name] = p
		}
		names, runs = append(names, name), append(runs, p.run)
	}
	for name := range b.probers {
		if _, ok := cur[name]; !ok {
			delete(b.probers, name)
		}
	}
	b.mu.Unlock()
	if len(runs) == 0 {
		return errors.New("no tenant is configured")
	}
	errs := make([]error, len(runs))
	var wg sync.WaitGroup
	for i, run := range runs {
		wg.Go(func() { errs[i] = run(ctx) })
	}
	wg.Wait()
	b.record(names, errs)
	var failed []error
	for i, err := range errs {
		if err == nil {
			return nil
		}
		failed = append(failed, fmt.Errorf("tenant %s: %w", names[i], err))
	}
	slices.SortFunc(failed, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(failed...)
}
