package metrics_test

// Every metric moves when its event happens, driven through the hooks the rest of the worker
// calls: the coalesce and intake observers with real dirstate values, a httpcore.Client against the
// simulator over HTTPS, and the scrape-time callbacks reading a real embedded JetStream server.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/tokenwatch"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/vidm"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/metrics"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/coalesce"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/intake"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/fakeclock"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// The observers *Metrics is wired as.
var (
	_ coalesce.Observer   = (*metrics.Metrics)(nil)
	_ intake.Observer     = (*metrics.Metrics)(nil)
	_ httpcore.Observer   = metrics.BackendObserver{}
	_ tokenwatch.Observer = (*metrics.Metrics)(nil)
)

// value returns the value of the series of name with exactly these labels: a counter's or gauge's
// value, a histogram's sample count. ok is false when there is no such series.
func value(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !labelsEqual(m.GetLabel(), labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func labelsEqual(have []*dto.LabelPair, want map[string]string) bool {
	if len(have) != len(want) {
		return false
	}
	for _, lp := range have {
		if v, ok := want[lp.GetName()]; !ok || v != lp.GetValue() {
			return false
		}
	}
	return true
}

// histogram returns the histogram series of name with these labels.
func histogram(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) *dto.Histogram {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == name && labelsEqual(m.GetLabel(), labels) {
				return m.GetHistogram()
			}
		}
	}
	t.Fatalf("no histogram %s%v", name, labels)
	return nil
}

func mustValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := value(t, g, name, labels)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return v
}

func l(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestIntakeHooks(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := metrics.New(reg, metrics.Options{})
	tr := dirsync.Trigger{ID: "t1", Type: "ad.group.created", DirectoryName: "Corp AD"}

	m.Received()
	m.Received()
	m.Accepted(tr)
	m.DeadLettered(contract.CodeUnknownDirectory)
	m.DeadLettered("SCHEMA_VIOLATION")
	m.DeadLettered("SCHEMA_VIOLATION")

	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"dirsync_triggers_received_total", nil, 2},
		{"dirsync_triggers_accepted_total", l("type", "ad.group.created"), 1},
		{"dirsync_triggers_dead_lettered_total", l("reason", "UNKNOWN_DIRECTORY"), 1},
		{"dirsync_triggers_dead_lettered_total", l("reason", "SCHEMA_VIOLATION"), 2},
	}
	for _, c := range checks {
		if got := mustValue(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestAcceptedTypeLabelIsBounded(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := metrics.New(reg, metrics.Options{})
	for i := range 100 {
		m.Accepted(dirsync.Trigger{Type: fmt.Sprintf("ad.group.invented%d", i)})
	}
	m.Accepted(dirsync.Trigger{Type: "ad.group.invented0"}) // admitted before the cap: keeps its label
	if n, err := testutil.GatherAndCount(reg, "dirsync_triggers_accepted_total"); err != nil || n != 33 {
		t.Fatalf("%d accepted-type series for 100 invented types (%v), want 32 + other", n, err)
	}
	if got := mustValue(t, reg, "dirsync_triggers_accepted_total", l("type", "other")); got != 68 {
		t.Errorf("other = %v, want 68", got)
	}
	if got := mustValue(t, reg, "dirsync_triggers_accepted_total", l("type", "ad.group.invented0")); got != 2 {
		t.Errorf("ad.group.invented0 = %v, want 2", got)
	}
}

func TestRunHooks(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	trig := func(acceptedAgo time.Duration) dirsync.Trigger {
		return dirsync.Trigger{ID: "t", Type: "ad.group.created", AcceptedAt: t0.Add(-acceptedAgo)}
	}
	tests := []struct {
		name         string
		run          dirsync.Run
		counter      string
		labels       map[string]string
		durStatus    string  // "" when no duration must be observed
		durSeconds   float64 // expected sum
		latencySum   float64 // expected trigger-to-result sum (clock at t0 + 10 min)
		latencyCount uint64
	}{
		{
			name: "completed",
			run: dirsync.Run{Tenant: "default", DirectoryName: "Corp AD", StartedAt: t0, Triggers: []dirsync.Trigger{trig(time.Second), trig(3 * time.Second)},
				Outcome: &dirsync.Outcome{Status: "COMPLETED", FinishedAt: t0.Add(90 * time.Second)}},
			counter: "dirsync_syncs_completed_total", labels: l("tenant", "default", "directory", "Corp AD"),
			durStatus: "COMPLETED", durSeconds: 90, latencySum: 601 + 603, latencyCount: 2,
		},
		{
			name: "failed in vIDM",
			run: dirsync.Run{Tenant: "default", DirectoryName: "EMEA AD", StartedAt: t0, Triggers: []dirsync.Trigger{trig(0)},
				Outcome: &dirsync.Outcome{Status: "FAILED", ErrCode: "VIDM_SYNC_FAILED", FinishedAt: t0.Add(5 * time.Minute)}},
			counter: "dirsync_syncs_failed_total", labels: l("tenant", "default", "directory", "EMEA AD", "code", "VIDM_SYNC_FAILED"),
			durStatus: "FAILED", durSeconds: 300, latencySum: 600, latencyCount: 1,
		},
		{
			name: "delegated: counted apart, no sync duration even with a start time",
			run: dirsync.Run{Tenant: "default", DirectoryName: "OktaDirectory", StartedAt: t0, Triggers: []dirsync.Trigger{trig(0)},
				Outcome: &dirsync.Outcome{Status: "DELEGATED", FinishedAt: t0.Add(time.Second),
					Delegation: &backend.Delegation{Kind: backend.DelegationSCIM, ProviderName: "Okta"}}},
			counter: "dirsync_syncs_delegated_total", labels: l("tenant", "default", "directory", "OktaDirectory"),
			latencySum: 600, latencyCount: 1,
		},
		{
			name: "failed before vIDM started it: no duration",
			run: dirsync.Run{Tenant: "default", DirectoryName: "Corp AD", Triggers: []dirsync.Trigger{trig(0)},
				Outcome: &dirsync.Outcome{Status: "FAILED", ErrCode: "VIDM_DIRECTORY_NOT_FOUND", FinishedAt: t0}},
			counter: "dirsync_syncs_failed_total", labels: l("tenant", "default", "directory", "Corp AD", "code", "VIDM_DIRECTORY_NOT_FOUND"),
			latencySum: 600, latencyCount: 1,
		},
		{
			name: "vIDM's clock behind ours: duration clamped at zero",
			run: dirsync.Run{Tenant: "default", DirectoryName: "Corp AD", StartedAt: t0, Triggers: []dirsync.Trigger{trig(0)},
				Outcome: &dirsync.Outcome{Status: "COMPLETED", FinishedAt: t0.Add(-time.Second)}},
			counter: "dirsync_syncs_completed_total", labels: l("tenant", "default", "directory", "Corp AD"),
			durStatus: "COMPLETED", durSeconds: 0, latencySum: 600, latencyCount: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := fakeclock.New(t0.Add(10 * time.Minute))
			reg := prometheus.NewPedanticRegistry()
			m := metrics.New(reg, metrics.Options{Now: clock.Now})
			run := tt.run
			m.RunStarted(&run)
			if got := mustValue(t, reg, "dirsync_syncs_started_total", l("tenant", "default", "directory", run.DirectoryName)); got != 1 {
				t.Errorf("started = %v, want 1", got)
			}
			if _, ok := value(t, reg, tt.counter, tt.labels); ok {
				t.Fatalf("%s%v exists before the run was reported", tt.counter, tt.labels)
			}
			m.TriggersReported(&run, run.Triggers)
			m.RunReported(&run)
			if got := mustValue(t, reg, tt.counter, tt.labels); got != 1 {
				t.Errorf("%s%v = %v, want 1", tt.counter, tt.labels, got)
			}
			for _, other := range []string{"dirsync_syncs_completed_total", "dirsync_syncs_failed_total", "dirsync_syncs_delegated_total"} {
				if n, err := testutil.GatherAndCount(reg, other); other != tt.counter && (err != nil || n != 0) {
					t.Errorf("%s has %d series (%v), want none: the run is counted once, in %s", other, n, err, tt.counter)
				}
			}
			for _, status := range []string{"COMPLETED", "FAILED"} {
				count, _ := value(t, reg, "dirsync_sync_duration_seconds", l("status", status))
				want := 0.0
				if status == tt.durStatus {
					want = 1
					if sum := histogram(t, reg, "dirsync_sync_duration_seconds", l("status", status)).GetSampleSum(); sum != tt.durSeconds {
						t.Errorf("duration sum = %v, want %v", sum, tt.durSeconds)
					}
				}
				if count != want {
					t.Errorf("duration{status=%s} count = %v, want %v", status, count, want)
				}
			}
			h := histogram(t, reg, "dirsync_trigger_to_result_seconds", nil)
			if h.GetSampleCount() != tt.latencyCount || h.GetSampleSum() != tt.latencySum {
				t.Errorf("trigger-to-result count %d sum %v, want %d and %v", h.GetSampleCount(), h.GetSampleSum(), tt.latencyCount, tt.latencySum)
			}
		})
	}
}

func TestTokenWatchHooks(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := metrics.New(reg, metrics.Options{})
	exp := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

	m.TokenExpiry("vcf", "Okta", exp)
	m.TokenExpiry("vcf", "Entra", exp.Add(time.Hour))
	if got := mustValue(t, reg, "dirsync_sync_client_token_expiry_timestamp_seconds", l("tenant", "vcf", "provider", "Okta")); got != float64(exp.Unix()) {
		t.Errorf("expiry{Okta} = %v, want %d", got, exp.Unix())
	}
	renewed := exp.Add(90 * 24 * time.Hour)
	m.TokenExpiry("vcf", "Okta", renewed) // the next check, after a renewal
	if got := mustValue(t, reg, "dirsync_sync_client_token_expiry_timestamp_seconds", l("tenant", "vcf", "provider", "Okta")); got != float64(renewed.Unix()) {
		t.Errorf("expiry{Okta} after renewal = %v, want %d", got, renewed.Unix())
	}
	m.TokenExpiry("vcf", "Entra", time.Time{}) // no longer reported: the series goes
	if _, ok := value(t, reg, "dirsync_sync_client_token_expiry_timestamp_seconds", l("tenant", "vcf", "provider", "Entra")); ok {
		t.Error("a provider no longer reported still has an expiry series")
	}

	if _, ok := value(t, reg, "dirsync_sync_client_token_warnings_total", l("tenant", "vcf", "provider", "Okta")); ok {
		t.Error("warnings counted before any warning")
	}
	m.TokenWarned("vcf", "Okta")
	m.TokenWarned("vcf", "Okta")
	m.TokenCheckFailed("vcf-lab")
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"dirsync_sync_client_token_warnings_total", l("tenant", "vcf", "provider", "Okta"), 2},
		{"dirsync_sync_client_token_check_failures_total", l("tenant", "vcf-lab"), 1},
	}
	for _, c := range checks {
		if got := mustValue(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func TestConfigReloadHooks(t *testing.T) {
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	clock := fakeclock.New(start)
	reg := prometheus.NewPedanticRegistry()
	m := metrics.New(reg, metrics.Options{Now: clock.Now})
	last := func() float64 { return mustValue(t, reg, "dirsync_config_last_reload_success_timestamp_seconds", nil) }
	reloads := func(result string) float64 {
		return mustValue(t, reg, "dirsync_config_reloads_total", l("result", result))
	}

	if last() != float64(start.Unix()) || reloads(metrics.ReloadApplied) != 0 || reloads(metrics.ReloadRejected) != 0 {
		t.Fatalf("at start: last success %v, applied %v, rejected %v; want the start time and two zeros",
			last(), reloads(metrics.ReloadApplied), reloads(metrics.ReloadRejected))
	}
	clock.Advance(time.Minute)
	m.ConfigReloaded(false)
	if last() != float64(start.Unix()) || reloads(metrics.ReloadRejected) != 1 {
		t.Errorf("after a rejected reload: last success %v (want unchanged %d), rejected %v", last(), start.Unix(), reloads(metrics.ReloadRejected))
	}
	clock.Advance(time.Minute)
	m.ConfigReloaded(true)
	if want := start.Add(2 * time.Minute); last() != float64(want.Unix()) || reloads(metrics.ReloadApplied) != 1 {
		t.Errorf("after an applied reload: last success %v (want %d), applied %v", last(), want.Unix(), reloads(metrics.ReloadApplied))
	}
}

func TestScheduleHooks(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := metrics.New(reg, metrics.Options{})
	m.ScheduleFired("default", nil)
	m.ScheduleFired("default", errors.New("nats: timeout"))
	m.ScheduleFired("default", nil)
	m.ScheduleFired("vcf", nil)
	checks := []struct {
		tenant, result string
		want           float64
	}{
		{"default", metrics.SchedulePublished, 2},
		{"default", metrics.ScheduleFailed, 1},
		{"vcf", metrics.SchedulePublished, 1},
	}
	for _, c := range checks {
		if got := mustValue(t, reg, "dirsync_scheduled_triggers_total", l("tenant", c.tenant, "result", c.result)); got != c.want {
			t.Errorf("scheduled{%s,%s} = %v, want %v", c.tenant, c.result, got, c.want)
		}
	}
	if _, ok := value(t, reg, "dirsync_scheduled_triggers_total", l("tenant", "vcf", "result", metrics.ScheduleFailed)); ok {
		t.Error("a failure series for a tenant that never failed")
	}
}

func TestHistogramBucketsSpanTheirRanges(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := metrics.New(reg, metrics.Options{})
	t0 := time.Now()
	r := &dirsync.Run{DirectoryName: "d", StartedAt: t0, Outcome: &dirsync.Outcome{Status: "COMPLETED", FinishedAt: t0.Add(time.Second)}}
	m.TriggersReported(r, []dirsync.Trigger{{AcceptedAt: t0}})
	m.RunReported(r)
	tests := []struct {
		name     string
		labels   map[string]string
		low, top float64
	}{
		{"dirsync_sync_duration_seconds", l("status", "COMPLETED"), 1, 3600},
		{"dirsync_trigger_to_result_seconds", nil, 0.1, 3600},
	}
	for _, tt := range tests {
		b := histogram(t, reg, tt.name, tt.labels).GetBucket()
		if first, last := b[0].GetUpperBound(), b[len(b)-1].GetUpperBound(); first != tt.low || last != tt.top {
			t.Errorf("%s buckets %v … %v, want %v … %v", tt.name, first, last, tt.low, tt.top)
		}
	}
}

// newSim starts the simulator on HTTPS and a client whose observer is m.
func newSim(t *testing.T, m *metrics.Metrics) (*vidmsim.Server, *httpcore.Client) {
	t.Helper()
	sim, err := vidmsim.New(vidmsim.Config{
		Directories: []vidmsim.Directory{{ID: "dir-corp", Name: "Corp AD", Domains: []string{"corp.example.com"}}},
		Clients:     []vidmsim.Client{{ID: "worker", Secret: "metrics-test-secret"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(sim)
	t.Cleanup(func() { sim.Resume(); srv.Close() })
	c, err := vidm.New(httpcore.Config{
		BaseURL: srv.URL, ClientID: "worker", ClientSecret: "metrics-test-secret",
		Transport: srv.Client().Transport, Observer: m.Backend("corp"),
		Retry: httpcore.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return sim, c
}

func TestVIDMHooks(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := metrics.New(reg, metrics.Options{})
	sim, c := newSim(t, m)
	ctx := context.Background()

	if _, err := c.Directories(ctx); err != nil {
		t.Fatal(err)
	}
	if got := mustValue(t, reg, "dirsync_vidm_token_refreshes_total", l("tenant", "corp")); got != 1 {
		t.Errorf("token refreshes after the first call = %v, want 1", got)
	}
	sim.SetFault(vidmsim.EndpointDirectories, vidmsim.Fault{Status: http.StatusServiceUnavailable, Times: 1})
	if err := c.Probe(ctx); err != nil { // 503, retried: 200
		t.Fatal(err)
	}
	if _, err := c.SyncStatus(ctx, "dir-corp"); err != nil {
		t.Fatal(err)
	}
	// net/http itself retries a GET on a reset connection; a POST it leaves to the client.
	sim.SetFault(vidmsim.EndpointSyncStart, vidmsim.Fault{Reset: true, Times: 1})
	if err := c.StartSync(ctx, "dir-corp", false); err != nil { // no answer, retried: 200
		t.Fatal(err)
	}
	sim.RevokeTokens()
	if _, err := c.SyncStatus(ctx, "dir-corp"); err != nil { // 401, new token, 200
		t.Fatal(err)
	}

	checks := []struct {
		endpoint, code string
		want           float64
	}{
		{"token", "200", 2},
		{"directories", "200", 2},
		{"directories", "503", 1},
		{"sync_status", "200", 2},
		{"sync_status", "401", 1},
		{"sync_start", "error", 1},
		{"sync_start", "200", 1},
	}
	for _, c := range checks {
		if got := mustValue(t, reg, "dirsync_vidm_requests_total", l("tenant", "corp", "endpoint", c.endpoint, "code", c.code)); got != c.want {
			t.Errorf("requests{endpoint=%s,code=%s} = %v, want %v", c.endpoint, c.code, got, c.want)
		}
	}
	if got := mustValue(t, reg, "dirsync_vidm_token_refreshes_total", l("tenant", "corp")); got != 2 {
		t.Errorf("token refreshes after a revocation = %v, want 2", got)
	}
	for endpoint, want := range map[string]float64{"token": 2, "directories": 3, "sync_status": 3, "sync_start": 2} {
		if got := mustValue(t, reg, "dirsync_vidm_request_duration_seconds", l("tenant", "corp", "endpoint", endpoint)); got != want {
			t.Errorf("request duration{endpoint=%s} count = %v, want %v", endpoint, got, want)
		}
	}
}

func TestScrapeTimeState(t *testing.T) {
	pending := map[metrics.Directory]int{{Tenant: "default", Name: "Corp AD"}: 3, {Tenant: "lab", Name: "EMEA AD"}: 1}
	leases := 2
	reg := prometheus.NewPedanticRegistry()
	metrics.New(reg, metrics.Options{}).Watch(metrics.Sources{
		PendingByDirectory: func() map[metrics.Directory]int { return pending },
		LeasesHeld:         func() int { return leases },
	})
	if got := mustValue(t, reg, "dirsync_pending_triggers", l("tenant", "default", "directory", "Corp AD")); got != 3 {
		t.Errorf("pending{Corp AD} = %v, want 3", got)
	}
	if got := mustValue(t, reg, "dirsync_leases_held", nil); got != 2 {
		t.Errorf("leases = %v, want 2", got)
	}
	pending = map[metrics.Directory]int{{Tenant: "lab", Name: "EMEA AD"}: 4}
	leases = 0
	if _, ok := value(t, reg, "dirsync_pending_triggers", l("tenant", "default", "directory", "Corp AD")); ok {
		t.Error("a directory with nothing pending any more still has a series")
	}
	if got := mustValue(t, reg, "dirsync_pending_triggers", l("tenant", "lab", "directory", "EMEA AD")); got != 4 {
		t.Errorf("pending{EMEA AD} = %v, want 4", got)
	}
	if got := mustValue(t, reg, "dirsync_leases_held", nil); got != 0 {
		t.Errorf("leases = %v, want 0", got)
	}
}

// jetStreamState makes a trigger stream with a consumer in a known state and a dead-letter
// stream with two messages, on a real embedded server.
func jetStreamState(t *testing.T) (jetstream.JetStream, jetstream.Consumer, jetstream.Stream) {
	t.Helper()
	ctx := context.Background()
	js := natstest.JetStream(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	dead, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "D", Subjects: []string{"d"}})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "T", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(n int) {
		for i := range n {
			if _, err := js.Publish(ctx, "t.x", fmt.Appendf(nil, "%d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 2 {
		if _, err := js.Publish(ctx, "d", []byte("dead")); err != nil {
			t.Fatal(err)
		}
	}
	// Two delivered and unacknowledged, one of them redelivered, then three more published:
	// 3 pending, 2 ack-pending, 1 redelivered. The three come last so that the redelivery is the
	// only message the second fetch can get.
	publish(2)
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var first jetstream.Msg
	for msg := range batch.Messages() {
		if first == nil {
			first = msg
		}
	}
	if first == nil {
		t.Fatal("no message fetched")
	}
	if err := first.Nak(); err != nil {
		t.Fatal(err)
	}
	again, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for msg := range again.Messages() {
		if md, err := msg.Metadata(); err != nil || md.NumDelivered != 2 {
			t.Fatalf("second fetch got %v (%v), want the redelivery", md, err)
		}
	}
	publish(3)
	return js, cons, dead
}

func consumerInfo(c jetstream.Consumer) func(context.Context) (*jetstream.ConsumerInfo, error) {
	return func(ctx context.Context) (*jetstream.ConsumerInfo, error) { return c.Info(ctx) }
}

func deadLetters(s jetstream.Stream) func(context.Context) (uint64, error) {
	return func(ctx context.Context) (uint64, error) {
		info, err := s.Info(ctx)
		if err != nil {
			return 0, err
		}
		return info.State.Msgs, nil
	}
}

func TestJetStreamGauges(t *testing.T) {
	js, cons, dead := jetStreamState(t)
	reg := prometheus.NewPedanticRegistry()
	metrics.New(reg, metrics.Options{}).Watch(metrics.Sources{ConsumerInfo: consumerInfo(cons), DeadLetters: deadLetters(dead)})

	checks := []struct {
		name string
		want float64
	}{
		{"dirsync_consumer_pending_messages", 3},
		{"dirsync_consumer_ack_pending_messages", 2},
		{"dirsync_consumer_redelivered_messages", 1},
		{"dirsync_dead_letters", 2},
	}
	for _, c := range checks {
		if got := mustValue(t, reg, c.name, nil); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	for _, src := range []string{metrics.SourceConsumer, metrics.SourceDeadLetters} {
		if got := mustValue(t, reg, "dirsync_scrape_errors_total", l("source", src)); got != 0 {
			t.Errorf("scrape errors{%s} = %v before any failure, want 0", src, got)
		}
	}

	// The connection gone: the series are left out of the scrape and each failure is counted.
	js.Conn().Close()
	for _, c := range checks {
		if _, ok := value(t, reg, c.name, nil); ok {
			t.Errorf("%s reported without a connection", c.name)
		}
	}
	for _, src := range []string{metrics.SourceConsumer, metrics.SourceDeadLetters} {
		// Gathered once per value() call above (4 calls), plus this one.
		if got := mustValue(t, reg, "dirsync_scrape_errors_total", l("source", src)); got < 4 {
			t.Errorf("scrape errors{%s} = %v after failed scrapes, want >= 4", src, got)
		}
	}
}

func TestScrapeCallbacksAreBounded(t *testing.T) {
	var deadlines []time.Duration
	record := func(ctx context.Context) error {
		d, ok := ctx.Deadline()
		if !ok {
			deadlines = append(deadlines, -1)
		} else {
			deadlines = append(deadlines, time.Until(d))
		}
		return errors.New("broker says no")
	}
	reg := prometheus.NewPedanticRegistry()
	metrics.New(reg, metrics.Options{}).Watch(metrics.Sources{
		ConsumerInfo: func(ctx context.Context) (*jetstream.ConsumerInfo, error) { return nil, record(ctx) },
	})
	if _, ok := value(t, reg, "dirsync_consumer_pending_messages", nil); ok {
		t.Error("consumer series reported although the callback failed")
	}
	if len(deadlines) != 1 || deadlines[0] <= 0 || deadlines[0] > 2*time.Second {
		t.Fatalf("callback deadlines %v, want one within 2s", deadlines)
	}
	// This gather runs the callback again, concurrently with reading the counter: 1 or 2.
	if got := mustValue(t, reg, "dirsync_scrape_errors_total", l("source", metrics.SourceConsumer)); got < 1 || got > 2 {
		t.Errorf("scrape errors = %v after one failed scrape, want 1 (2 if this read's own failure was counted first)", got)
	}
}

func TestBuildInfoAndRuntimeCollectors(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	// Registered already by the caller: New must not fail on it.
	reg.MustRegister(collectors.NewGoCollector())
	metrics.New(reg, metrics.Options{Version: "1.2.3"})
	if got := mustValue(t, reg, "dirsync_build_info", l("version", "1.2.3", "go_version", runtime.Version())); got != 1 {
		t.Errorf("build info = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "go_goroutines"); err != nil || n != 1 {
		t.Errorf("go_goroutines series = %d, %v; want the Go collector registered", n, err)
	}
	if runtime.GOOS == "linux" {
		if n, err := testutil.GatherAndCount(reg, "process_start_time_seconds"); err != nil || n != 1 {
			t.Errorf("process_start_time_seconds series = %d, %v; want the process collector registered", n, err)
		}
	}
}

func TestTwoInstancesDoNotShareState(t *testing.T) {
	a, b := prometheus.NewPedanticRegistry(), prometheus.NewPedanticRegistry()
	ma := metrics.New(a, metrics.Options{})
	metrics.New(b, metrics.Options{})
	ma.Received()
	if got := mustValue(t, b, "dirsync_triggers_received_total", nil); got != 0 {
		t.Fatalf("second registry sees %v received, want 0", got)
	}
}

func TestHandlerServesOpenMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	metrics.New(reg, metrics.Options{Version: "v9"})
	srv := httptest.NewServer(metrics.Handler(reg))
	defer srv.Close()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Errorf("Content-Type %q, want OpenMetrics", ct)
	}
	if !strings.Contains(string(body), `version="v9"} 1`) || !strings.HasSuffix(string(body), "# EOF\n") {
		t.Errorf("body lacks build info or the OpenMetrics EOF:\n%s", body)
	}
}

func TestTenantsUp(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, metrics.Options{})
	m.TenantsUp(map[string]error{"default": nil, "emea": errors.New("vIDM unreachable")})
	if up, down := mustValue(t, reg, "dirsync_tenant_up", l("tenant", "default")), mustValue(t, reg, "dirsync_tenant_up", l("tenant", "emea")); up != 1 || down != 0 {
		t.Fatalf("default %v, emea %v; want 1 and 0", up, down)
	}
	m.TenantsUp(map[string]error{"default": nil})
	if _, ok := value(t, reg, "dirsync_tenant_up", l("tenant", "emea")); ok {
		t.Fatal("a tenant no longer configured still has a series")
	}
}
