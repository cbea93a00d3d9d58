package tokenwatch_test

// The watcher driven by a fake clock, with fake sources, a recording publisher and observer, and a
// JSON log; one test publishes through the real results.Publisher into an embedded JetStream.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/tokenwatch"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/results"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/fakeclock"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
)

const waitLimit = 10 * time.Second

var t0 = time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)

// source is a fake identity broker: the tokens it reports, or an error.
type source struct {
	mu     sync.Mutex
	tokens []backend.SyncClientToken
	err    error
	calls  int
}

func (s *source) SyncClientTokens(ctx context.Context) ([]backend.SyncClientToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("test: the watcher called the source without a deadline")
	}
	return slices.Clone(s.tokens), s.err
}

func (s *source) set(err error, tokens ...backend.SyncClientToken) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens, s.err = tokens, err
}

func (s *source) called() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// publisher records warnings; while err is set, publishing fails.
type publisher struct {
	mu   sync.Mutex
	sent []results.TokenWarning
	err  error
}

func (p *publisher) TokenExpiring(_ context.Context, w results.TokenWarning) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.sent = append(p.sent, w)
	return nil
}

func (p *publisher) warnings() []results.TokenWarning {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sent)
}

func (p *publisher) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

// observer records every call as one line.
type observer struct {
	mu    sync.Mutex
	calls []string
}

func (o *observer) add(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, s)
}

func (o *observer) TokenExpiry(tenant, provider string, at time.Time) {
	v := "gone"
	if !at.IsZero() {
		v = at.UTC().Format(time.RFC3339)
	}
	o.add("expiry " + tenant + "/" + provider + " " + v)
}
func (o *observer) TokenWarned(tenant, provider string) { o.add("warned " + tenant + "/" + provider) }
func (o *observer) TokenCheckFailed(tenant string)      { o.add("failed " + tenant) }

// take returns the calls since the last take.
func (o *observer) take() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.calls
	o.calls = nil
	slices.Sort(c)
	return c
}

// logBuffer collects JSON log records.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	b.buf.Reset()
	return out
}

func token(id, name string, expires time.Time) backend.SyncClientToken {
	return backend.SyncClientToken{ProviderID: id, ProviderName: name, Source: "OKTA", Domains: []string{name + ".example.com"}, ExpiresAt: expires}
}

type fixture struct {
	clk     *fakeclock.Clock
	pub     *publisher
	obs     *observer
	logs    *logBuffer
	mu      sync.Mutex
	targets []tokenwatch.Target
	w       *tokenwatch.Watcher
}

func newFixture(targets ...tokenwatch.Target) *fixture {
	f := &fixture{clk: fakeclock.New(t0), pub: &publisher{}, obs: &observer{}, logs: &logBuffer{}, targets: targets}
	log := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.w = tokenwatch.New(tokenwatch.Config{Interval: time.Hour, Logger: log, Now: f.clk.Now, After: f.clk.After},
		f.currentTargets, f.pub, f.obs)
	return f
}

func (f *fixture) currentTargets() []tokenwatch.Target {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.targets)
}

func (f *fixture) setTargets(ts ...tokenwatch.Target) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.targets = ts
}

// Which tokens are warned about, depending on where their expiry is against the window, and what
// the warning, the observer and the log say.
func TestCheckWarnsWithinTheWindow(t *testing.T) {
	const window = 7 * 24 * time.Hour
	tests := []struct {
		name    string
		expires time.Time
		warn    bool
		logMsg  string
	}{
		{"months away", t0.Add(90 * 24 * time.Hour), false, ""},
		{"just outside the window", t0.Add(window + time.Second), false, ""},
		{"at the edge of the window", t0.Add(window), true, "expires soon"},
		{"in six days", t0.Add(6 * 24 * time.Hour), true, "expires soon"},
		{"expiring this instant", t0, true, "has expired"},
		{"expired yesterday", t0.Add(-24 * time.Hour), true, "has expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &source{}
			tok := token("p-okta", "Okta", tt.expires)
			src.set(nil, tok)
			f := newFixture(tokenwatch.Target{Tenant: "vcf", Source: src, WarnBefore: window})
			f.w.Check(context.Background())

			want := []string{"expiry vcf/Okta " + tt.expires.Format(time.RFC3339)}
			var wantSent []results.TokenWarning
			if tt.warn {
				want = append(want, "warned vcf/Okta")
				wantSent = []results.TokenWarning{{Tenant: "vcf", Token: tok, WarnBefore: window, Now: t0}}
			}
			slices.Sort(want)
			if got := f.obs.take(); !slices.Equal(got, want) {
				t.Errorf("observer %q, want %q", got, want)
			}
			if got := f.pub.warnings(); !slices.EqualFunc(got, wantSent, equalWarning) {
				t.Errorf("published %+v, want %+v", got, wantSent)
			}
			var warns []map[string]any
			for _, r := range f.logs.records(t) {
				if r["level"] == "WARN" {
					warns = append(warns, r)
				}
			}
			if !tt.warn {
				if len(warns) != 0 {
					t.Errorf("warnings logged for a token outside the window: %v", warns)
				}
				return
			}
			if len(warns) != 1 {
				t.Fatalf("%d warnings logged, want 1: %v", len(warns), warns)
			}
			r := warns[0]
			if !strings.Contains(fmt.Sprint(r["msg"]), tt.logMsg) || r["tenant"] != "vcf" || r["provider"] != "Okta" ||
				r["provider_id"] != "p-okta" || r["source"] != "OKTA" || r["expires_at"] != tt.expires.Format(time.RFC3339) ||
				r["expires_in"] != tt.expires.Sub(t0).String() {
				t.Errorf("log record %v", r)
			}
		})
	}
}

func equalWarning(a, b results.TokenWarning) bool {
	return a.Tenant == b.Tenant && a.WarnBefore == b.WarnBefore && a.Now.Equal(b.Now) &&
		a.Token.ProviderID == b.Token.ProviderID && a.Token.ProviderName == b.Token.ProviderName &&
		a.Token.Source == b.Token.Source && slices.Equal(a.Token.Domains, b.Token.Domains) && a.Token.ExpiresAt.Equal(b.Token.ExpiresAt)
}

// One warning per tenant, provider and expiry per UTC day: later checks the same day publish
// nothing (and still log and set the gauge), the next day publishes again, a renewed token that is
// still within the window is a new warning at once, and a failed publish is retried at the next
// check.
func TestWarnsOncePerDay(t *testing.T) {
	src := &source{}
	exp := t0.Add(3 * 24 * time.Hour)
	src.set(nil, token("p-okta", "Okta", exp))
	f := newFixture(tokenwatch.Target{Tenant: "vcf", Source: src, WarnBefore: 14 * 24 * time.Hour})
	ctx := context.Background()
	sent := func() int { return len(f.pub.warnings()) }

	steps := []struct {
		name      string
		at        time.Time
		before    func()
		wantSent  int
		wantCalls []string
	}{
		{name: "first check", at: t0, wantSent: 1,
			wantCalls: []string{"expiry vcf/Okta " + exp.Format(time.RFC3339), "warned vcf/Okta"}},
		{name: "an hour later", at: t0.Add(time.Hour), wantSent: 1,
			wantCalls: []string{"expiry vcf/Okta " + exp.Format(time.RFC3339)}},
		{name: "last minute of the UTC day", at: time.Date(2026, 11, 25, 23, 59, 0, 0, time.UTC), wantSent: 1,
			wantCalls: []string{"expiry vcf/Okta " + exp.Format(time.RFC3339)}},
		{name: "next UTC day, publish fails", at: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC), wantSent: 1,
			before:    func() { f.pub.fail(errors.New("nats: no responders")) },
			wantCalls: []string{"expiry vcf/Okta " + exp.Format(time.RFC3339)}},
		{name: "next check retries", at: time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC), wantSent: 2,
			before:    func() { f.pub.fail(nil) },
			wantCalls: []string{"expiry vcf/Okta " + exp.Format(time.RFC3339), "warned vcf/Okta"}},
		{name: "renewed, still within the window", at: time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC), wantSent: 3,
			before:    func() { src.set(nil, token("p-okta", "Okta", exp.Add(7*24*time.Hour))) },
			wantCalls: []string{"expiry vcf/Okta " + exp.Add(7*24*time.Hour).Format(time.RFC3339), "warned vcf/Okta"}},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		f.clk.AdvanceTo(s.at)
		f.w.Check(ctx)
		if got := sent(); got != s.wantSent {
			t.Errorf("%s: %d warnings published in all, want %d", s.name, got, s.wantSent)
		}
		if got := f.obs.take(); !slices.Equal(got, s.wantCalls) {
			t.Errorf("%s: observer %q, want %q", s.name, got, s.wantCalls)
		}
	}
	w := f.pub.warnings()
	if got := w[1].Now; !got.Equal(time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)) {
		t.Errorf("the retried warning carries %v, want the time of the check that sent it", got)
	}
}

// A failing source is logged and counted; the other tenants are still checked, and the failing
// tenant's last known expiries are not withdrawn.
func TestFailingSourceDoesNotStopTheOthers(t *testing.T) {
	broken, ok := &source{}, &source{}
	broken.set(nil, token("p-entra", "Entra", t0.Add(24*time.Hour)))
	ok.set(nil, token("p-okta", "Okta", t0.Add(24*time.Hour)))
	f := newFixture(
		tokenwatch.Target{Tenant: "vcf-a", Source: broken, WarnBefore: 48 * time.Hour},
		tokenwatch.Target{Tenant: "vcf-b", Source: ok, WarnBefore: 48 * time.Hour},
		tokenwatch.Target{Tenant: "vcf-c", Source: nil},
	)
	ctx := context.Background()
	f.w.Check(ctx)
	f.obs.take()
	f.logs.records(t)

	broken.set(errors.New("GET /v1/identity-providers: 503 Service Unavailable"))
	f.clk.AdvanceTo(t0.Add(time.Hour))
	f.w.Check(ctx)
	want := []string{"expiry vcf-b/Okta " + t0.Add(24*time.Hour).Format(time.RFC3339), "failed vcf-a", "failed vcf-c"}
	slices.Sort(want)
	if got := f.obs.take(); !slices.Equal(got, want) {
		t.Errorf("observer %q, want %q (no 'gone' for the failing tenant)", got, want)
	}
	var failures []string
	for _, r := range f.logs.records(t) {
		if r["level"] == "WARN" && strings.Contains(fmt.Sprint(r["msg"]), "cannot check") {
			failures = append(failures, fmt.Sprintf("%v: %v", r["tenant"], r["error"]))
		}
	}
	slices.Sort(failures)
	if len(failures) != 2 || !strings.Contains(failures[0], "vcf-a: sync-client tokens: GET /v1/identity-providers: 503") ||
		!strings.HasPrefix(failures[1], "vcf-c: ") {
		t.Errorf("failure logs %q", failures)
	}
}

// A tenant whose backend has no sync clients is not a failure.
func TestNotSupportedIsNotAFailure(t *testing.T) {
	src := &source{}
	src.set(fmt.Errorf("vra7 has no SCIM sync clients: %w", backend.ErrNotSupported))
	f := newFixture(tokenwatch.Target{Tenant: "default", Source: src, WarnBefore: time.Hour})
	f.w.Check(context.Background())
	if got := f.obs.take(); len(got) != 0 {
		t.Errorf("observer %q, want nothing", got)
	}
	for _, r := range f.logs.records(t) {
		if r["level"] != "DEBUG" {
			t.Errorf("logged %v at %v, want debug only", r["msg"], r["level"])
		}
	}
}

// The gauge's series follow what the identity brokers report: a provider that disappears, and
// every provider of a tenant removed from the configuration, are reported gone.
func TestProvidersGoneAreReportedGone(t *testing.T) {
	a, b := &source{}, &source{}
	exp := t0.Add(60 * 24 * time.Hour)
	a.set(nil, token("p-okta", "Okta", exp), token("p-entra", "", exp)) // a provider without a name: its id
	b.set(nil, token("p-okta-2", "Okta", exp))
	f := newFixture(tokenwatch.Target{Tenant: "vcf-a", Source: a}, tokenwatch.Target{Tenant: "vcf-b", Source: b})
	ctx := context.Background()
	at := exp.Format(time.RFC3339)
	steps := []struct {
		name   string
		change func()
		want   []string
	}{
		{"first check", func() {}, []string{"expiry vcf-a/Okta " + at, "expiry vcf-a/p-entra " + at, "expiry vcf-b/Okta " + at}},
		{"a provider removed", func() { a.set(nil, token("p-okta", "Okta", exp)) },
			[]string{"expiry vcf-a/Okta " + at, "expiry vcf-a/p-entra gone", "expiry vcf-b/Okta " + at}},
		{"a tenant removed", func() { f.setTargets(tokenwatch.Target{Tenant: "vcf-a", Source: a}) },
			[]string{"expiry vcf-a/Okta " + at, "expiry vcf-b/Okta gone"}},
		{"and not again", func() {}, []string{"expiry vcf-a/Okta " + at}},
	}
	for _, s := range steps {
		s.change()
		f.w.Check(ctx)
		want := slices.Sorted(slices.Values(s.want))
		if got := f.obs.take(); !slices.Equal(got, want) {
			t.Errorf("%s: observer %q, want %q", s.name, got, want)
		}
	}
}

// Run checks at once, then at every whole interval of the wall clock, reading the targets again
// each time, and returns nil when its context ends.
func TestRunChecksAtOnceThenEveryInterval(t *testing.T) {
	first, second := &source{}, &source{}
	exp := t0.Add(24 * time.Hour)
	first.set(nil, token("p-okta", "Okta", exp))
	second.set(nil, token("p-entra", "Entra", exp))
	f := newFixture(tokenwatch.Target{Tenant: "vcf", Source: first, WarnBefore: 48 * time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.w.Run(ctx) }()

	// t0 is 09:30: the next check is at 10:00, the one after at 11:00.
	ten := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	poll.Until(t, waitLimit, "the first check and a timer for 10:00", func() bool { return first.called() == 1 && f.clk.Waiting(ten) > 0 })
	if n := len(f.pub.warnings()); n != 1 {
		t.Fatalf("%d warnings after the first check, want 1", n)
	}
	// A reload adds a tenant: the next check sees it.
	f.setTargets(tokenwatch.Target{Tenant: "vcf", Source: first, WarnBefore: 48 * time.Hour},
		tokenwatch.Target{Tenant: "vcf-lab", Source: second, WarnBefore: 48 * time.Hour})
	f.clk.AdvanceTo(ten)
	poll.Until(t, waitLimit, "the second check and a timer for 11:00", func() bool {
		return second.called() == 1 && f.clk.Waiting(ten.Add(time.Hour)) > 0
	})
	if first.called() != 2 {
		t.Errorf("first tenant checked %d times, want 2", first.called())
	}
	if n := len(f.pub.warnings()); n != 2 {
		t.Errorf("%d warnings after the second check, want 2 (vcf's once today, vcf-lab's new)", n)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v, want nil", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after its context ended")
	}
}

// Check may be called while Run runs (the worker does after a reload): checks do not overlap.
func TestConcurrentChecks(t *testing.T) {
	src := &source{}
	src.set(nil, token("p-okta", "Okta", t0.Add(time.Hour)))
	f := newFixture(tokenwatch.Target{Tenant: "vcf", Source: src, WarnBefore: 2 * time.Hour})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { f.w.Check(context.Background()) })
	}
	wg.Wait()
	if n := len(f.pub.warnings()); n != 1 {
		t.Errorf("%d warnings from 8 concurrent checks, want 1", n)
	}
}

// Two replicas, each with its own watcher, warn about the same token the same day through the
// real publisher: the results stream stores the warning once, a valid event of the warning type.
func TestReplicasPublishOneWarningADay(t *testing.T) {
	ctx := context.Background()
	js := natstest.JetStream(t)
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "DIRSYNC_RESULTS", Subjects: []string{"dirsync.result.>"}, Duplicates: 30 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	src := &source{}
	exp := t0.Add(5 * 24 * time.Hour)
	src.set(nil, token("159498c4-6e0e-4757-ae4b-dcb6aaa93216", "Okta", exp))
	targets := func() []tokenwatch.Target {
		return []tokenwatch.Target{{Tenant: "vcf", Source: src, WarnBefore: 14 * 24 * time.Hour}}
	}
	for replica := range 2 {
		clk := fakeclock.New(t0.Add(time.Duration(replica) * time.Minute))
		pub := results.New(js, "dirsync.result", fmt.Sprintf("urn:vidm-sync-worker:replica-%d", replica), nil)
		obs := &observer{}
		w := tokenwatch.New(tokenwatch.Config{Now: clk.Now, After: clk.After}, targets, pub, obs)
		w.Check(ctx)
		if got := obs.take(); !slices.Contains(got, "warned vcf/Okta") {
			t.Errorf("replica %d: observer %q, want a warning", replica, got)
		}
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("the stream holds %d warnings, want 1", info.State.Msgs)
	}
	raw, err := stream.GetMsg(ctx, info.State.FirstSeq)
	if err != nil {
		t.Fatal(err)
	}
	e, err := cenats.Decode(raw.Header, raw.Data)
	if err != nil {
		t.Fatal(err)
	}
	var d contract.TokenWarningData
	if err := json.Unmarshal(e.Data(), &d); err != nil {
		t.Fatal(err)
	}
	if raw.Subject != "dirsync.result.warning" || e.Type() != contract.TypeSyncClientTokenExpiring ||
		e.ID() != results.TokenWarningID("vcf", "159498c4-6e0e-4757-ae4b-dcb6aaa93216", exp, t0) ||
		d.Tenant != "vcf" || d.Provider != "Okta" || d.ExpiresInSeconds != 5*86400 {
		t.Errorf("stored %s %s id %s data %+v", raw.Subject, e.Type(), e.ID(), d)
	}
}
