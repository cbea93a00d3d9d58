// Package metrics exposes the worker's Prometheus metrics. Counters and histograms are fed by the
// observers of intake, the coalescing engine and the vIDM client; gauges of state that lives
// elsewhere (pending triggers, leases, the JetStream consumer, the dead-letter stream) are read
// at scrape time through callbacks, so they can never drift from their source.
//
// There is no package-level state: New registers everything on the registerer it is given.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

// scrapeTimeout bounds each callback that asks NATS during a scrape.
const scrapeTimeout = 2 * time.Second

// maxTypes bounds the distinct values of the accepted-trigger "type" label: publishers may invent
// ad.group.* and ad.user.* types, and each must not become a new series forever.
const maxTypes = 32

// otherType is the label of the types beyond maxTypes.
const otherType = "other"

// Options configures the metrics.
type Options struct {
	// Version is the build's version, for dirsync_build_info.
	Version string
	// Now is the clock for trigger-to-result latency. Default time.Now.
	Now func() time.Time
}

// Sources are the callbacks for values read at scrape time. A nil callback leaves its series out.
type Sources struct {
	// PendingByDirectory returns the pending trigger count per tenant and directory name.
	PendingByDirectory func() map[Directory]int
	// RunFailures returns, per directory whose run in flight has failed, its failures in a row.
	RunFailures func() map[Directory]int
	// LeasesHeld returns how many directory leases this replica holds.
	LeasesHeld func() int
	// ConsumerInfo returns the trigger consumer's state; read with a 2 s timeout.
	ConsumerInfo func(ctx context.Context) (*jetstream.ConsumerInfo, error)
	// DeadLetters returns how many messages the dead-letter stream holds; read with a 2 s timeout.
	DeadLetters func(ctx context.Context) (uint64, error)
}

// Metrics holds the worker's metrics. It implements the observers of intake
// (Received, Accepted, DeadLettered), of the coalescing engine (RunStarted, RunReported), of
// the vIDM client (Request, TokenIssued) and of the sync-client token watch (TokenExpiry,
// TokenWarned, TokenCheckFailed), and counts configuration reloads (ConfigReloaded) and
// scheduled triggers (ScheduleFired). Its methods are safe for concurrent use.
type Metrics struct {
	reg   prometheus.Registerer
	now   func() time.Time
	types boundedSet

	received        prometheus.Counter
	accepted        *prometheus.CounterVec
	alreadyReported prometheus.Counter
	deadLettered    *prometheus.CounterVec
	syncsStarted    *prometheus.CounterVec
	syncsCompleted  *prometheus.CounterVec
	syncsFailed     *prometheus.CounterVec
	cancelled       *prometheus.CounterVec
	resultLag       prometheus.Histogram
	syncDuration    *prometheus.HistogramVec
	triggerToRes    prometheus.Histogram
	vidmRequests    *prometheus.CounterVec
	vidmDuration    *prometheus.HistogramVec
	tokenRefreshes  *prometheus.CounterVec
	scrapeErrors    *prometheus.CounterVec

	syncsDelegated     *prometheus.CounterVec
	tokenExpiry        *prometheus.GaugeVec
	tokenWarnings      *prometheus.CounterVec
	tokenCheckFailures *prometheus.CounterVec
	configReloads      *prometheus.CounterVec
	lastReloadSuccess  prometheus.Gauge
	scheduled          *prometheus.CounterVec
	readiness          *prometheus.CounterVec
	tenantUp           *prometheus.GaugeVec
}

// Values of dirsync_config_reloads_total{result} and dirsync_scheduled_triggers_total{result}.
const (
	ReloadApplied     = "applied"
	ReloadRejected    = "rejected"
	SchedulePublished = "published"
	ScheduleFailed    = "failed"
)

// Scrape error sources, the values of dirsync_scrape_errors_total{source}.
const (
	SourceConsumer    = "consumer"
	SourceDeadLetters = "dead_letters"
)

// New creates the metrics and registers them, the Go and process collectors included, on reg.
// It panics if one of the worker's own metrics is already registered there (a wiring mistake).
func New(reg prometheus.Registerer, opts Options) *Metrics {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Metrics{
		reg: reg,
		now: opts.Now,
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dirsync_triggers_received_total",
			Help: "Trigger messages handled by intake, redeliveries included.",
		}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_triggers_accepted_total",
			Help: "Triggers durably recorded in the pending set, by CloudEvent type.",
		}, []string{"type"}),
		alreadyReported: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dirsync_triggers_already_reported_total",
			Help: "Redelivered trigger messages acknowledged without being recorded again because a run had already reported them (their first ack was lost).",
		}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_triggers_dead_lettered_total",
			Help: "Trigger messages stored in the dead-letter stream, by dead-letter code.",
		}, []string{"reason"}),
		syncsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_syncs_started_total",
			Help: "Directory syncs started in vIDM (or adopted), by directory.",
		}, []string{"tenant", "directory"}),
		syncsCompleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_syncs_completed_total",
			Help: "Runs reported COMPLETED, by directory.",
		}, []string{"tenant", "directory"}),
		syncsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_syncs_failed_total",
			Help: "Runs reported FAILED, by directory and error code.",
		}, []string{"tenant", "directory", "code"}),
		cancelled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_triggers_cancelled_total",
			Help: "Triggers an operator cancelled before a run took them, reported failed with code CANCELLED, by directory.",
		}, []string{"tenant", "directory"}),
		resultLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dirsync_result_lag_seconds",
			Help:    "From the end of a sync, as the identity system reports it (else the poll that saw it), to the first result event of its run published: how late the pipelines hear.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60},
		}),
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dirsync_sync_duration_seconds",
			Help:    "From the start of a vIDM sync to its end, by final status; runs never started in vIDM are not observed.",
			Buckets: []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 900, 1800, 3600},
		}, []string{"status"}),
		triggerToRes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dirsync_trigger_to_result_seconds",
			Help:    "Per trigger, from its acceptance to the publication of the result covering it.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
		}),
		vidmRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_vidm_requests_total",
			Help: `HTTP attempts to a tenant's identity system, by endpoint and status code ("error" when no response arrived).`,
		}, []string{"tenant", "endpoint", "code"}),
		vidmDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dirsync_vidm_request_duration_seconds",
			Help:    "Duration of HTTP attempts to a tenant's identity system, by endpoint.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"tenant", "endpoint"}),
		tokenRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_vidm_token_refreshes_total",
			Help: "New tokens obtained from a tenant's identity system (OAuth tokens, logins, API-token exchanges).",
		}, []string{"tenant"}),
		scrapeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_scrape_errors_total",
			Help: "Scrape-time reads that failed (their series were left out of that scrape), by source.",
		}, []string{"source"}),
		syncsDelegated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_syncs_delegated_total",
			Help: "Runs reported DELEGATED (the identity provider keeps the directory current; nothing was started), by directory.",
		}, []string{"tenant", "directory"}),
		tokenExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dirsync_sync_client_token_expiry_timestamp_seconds",
			Help: "When each external IdP's SCIM sync-client token expires (Unix time), as last checked; alert on `- time() < 86400*7`.",
		}, []string{"tenant", "provider"}),
		tokenWarnings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_sync_client_token_warnings_total",
			Help: "Sync-client token expiry warnings published, by tenant and provider.",
		}, []string{"tenant", "provider"}),
		tokenCheckFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_sync_client_token_check_failures_total",
			Help: "Sync-client token checks that could not read a tenant's identity providers, by tenant.",
		}, []string{"tenant"}),
		configReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_config_reloads_total",
			Help: `Configuration reloads (the tenants file; a changed TLS certificate file of the admin port or the ingress), by result: "applied", or "rejected" (the running configuration was kept).`,
		}, []string{"result"}),
		lastReloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dirsync_config_last_reload_success_timestamp_seconds",
			Help: "When the configuration in effect was loaded (Unix time): the start, or the last applied reload.",
		}),
		scheduled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_scheduled_triggers_total",
			Help: `Scheduled sync-request publish attempts, by tenant and result ("published", or "failed" for an attempt that is retried or given up).`,
		}, []string{"tenant", "result"}),
		readiness: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dirsync_readiness_principals_total",
			Help: `Covered triggers' groups and users looked up after a sync, by tenant and answer: "visible", "not_visible" (probably outside the directory's sync scope), "unknown" (the lookup failed) or "not_checked" (the identity system offers no lookup). Alert on not_visible.`,
		}, []string{"tenant", "answer"}),
		tenantUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "dirsync_tenant_up",
			Help: "1 when the tenant's identity system answered the last readiness check with accepted credentials, 0 when it did not (/readyz?verbose says why). /readyz stays ready while any tenant is up.",
		}, []string{"tenant"}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "dirsync_build_info",
		Help: "Always 1; the labels name the build.",
	}, []string{"version", "go_version"})
	version := opts.Version
	if version == "" {
		version = "unknown"
	}
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)

	reg.MustRegister(m.received, m.accepted, m.alreadyReported, m.deadLettered, m.syncsStarted, m.syncsCompleted, m.cancelled, m.resultLag,
		m.syncsFailed, m.syncDuration, m.triggerToRes, m.vidmRequests, m.vidmDuration,
		m.tokenRefreshes, m.scrapeErrors, buildInfo, m.syncsDelegated, m.tokenExpiry, m.tokenWarnings,
		m.tokenCheckFailures, m.configReloads, m.lastReloadSuccess, m.scheduled, m.readiness, m.tenantUp)
	m.types = boundedSet{max: maxTypes, seen: map[string]bool{}}
	// The error series exist from the start (WithLabelValues creates them), so that rate() and
	// alerts see a zero before the first failure.
	m.configReloads.WithLabelValues(ReloadApplied)
	m.configReloads.WithLabelValues(ReloadRejected)
	// The worker only runs with a configuration it loaded, so its start is the first success.
	m.lastReloadSuccess.Set(unixSeconds(opts.Now()))
	// The caller may have registered these already (they are process-wide); that is not an error.
	registerShared(reg, collectors.NewGoCollector())
	registerShared(reg, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Watch adds the series read at scrape time from the worker's state, once that state exists: a
// worker still waiting for JetStream has no consumer, engine or directories to report, and its
// scrapes leave these series out. Call it once.
func (m *Metrics) Watch(s Sources) {
	if s.ConsumerInfo != nil {
		m.reg.MustRegister(newConsumerCollector(s.ConsumerInfo, m.scrapeErrors.WithLabelValues(SourceConsumer)))
	}
	if s.DeadLetters != nil {
		m.reg.MustRegister(newDeadLetterCollector(s.DeadLetters, m.scrapeErrors.WithLabelValues(SourceDeadLetters)))
	}
	if s.PendingByDirectory != nil || s.LeasesHeld != nil || s.RunFailures != nil {
		m.reg.MustRegister(newStateCollector(s.PendingByDirectory, s.RunFailures, s.LeasesHeld))
	}
}

func registerShared(reg prometheus.Registerer, c prometheus.Collector) {
	if err := reg.Register(c); err != nil {
		if are := (prometheus.AlreadyRegisteredError{}); !errors.As(err, &are) {
			panic(err)
		}
	}
}

// Handler serves what g gathers, in the OpenMetrics format when the scraper asks for it.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: true, ErrorHandling: promhttp.ContinueOnError})
}

// Received counts a trigger message handled by intake.
func (m *Metrics) Received() { m.received.Inc() }

// Accepted counts a trigger recorded in the pending set.
func (m *Metrics) Accepted(t dirsync.Trigger) {
	m.accepted.WithLabelValues(m.types.label(t.Type)).Inc()
}

// AlreadyReported counts a redelivered trigger acknowledged because a run had already reported it.
func (m *Metrics) AlreadyReported() { m.alreadyReported.Inc() }

// boundedSet admits the first max distinct values as labels and folds the rest into otherType.
type boundedSet struct {
	mu   sync.Mutex
	max  int
	seen map[string]bool
}

func (b *boundedSet) label(v string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen[v] {
		return v
	}
	if len(b.seen) >= b.max {
		return otherType
	}
	b.seen[v] = true
	return v
}

// DeadLettered counts a dead letter by its code.
func (m *Metrics) DeadLettered(code string) { m.deadLettered.WithLabelValues(code).Inc() }

// RunStarted counts a sync started (or adopted) in vIDM.
func (m *Metrics) RunStarted(r *dirsync.Run) {
	m.syncsStarted.WithLabelValues(r.Tenant, directoryOf(r)).Inc()
}

// RunReported counts the run's outcome and observes its sync's duration, when every page of its
// result has just been published.
func (m *Metrics) RunReported(r *dirsync.Run) {
	if r.Outcome == nil {
		return
	}
	dir := directoryOf(r)
	status := r.Outcome.Status
	switch status {
	case "COMPLETED":
		m.syncsCompleted.WithLabelValues(r.Tenant, dir).Inc()
	case "DELEGATED":
		// Nothing was started, so there is no sync duration; the triggers still waited for it.
		m.syncsDelegated.WithLabelValues(r.Tenant, dir).Inc()
		return
	default:
		status = "FAILED"
		code := r.Outcome.ErrCode
		if code == "" {
			code = "UNKNOWN"
		}
		m.syncsFailed.WithLabelValues(r.Tenant, dir, code).Inc()
	}
	if !r.StartedAt.IsZero() && !r.Outcome.FinishedAt.IsZero() {
		// Start and finish can come from different clocks (ours, vIDM's): never negative.
		m.syncDuration.WithLabelValues(status).Observe(max(r.Outcome.FinishedAt.Sub(r.StartedAt), 0).Seconds())
	}
}

// TriggersReported observes, per trigger of a result page just published, the time from its
// acceptance to now.
// Each trigger that went through the readiness check counts in dirsync_readiness_principals_total.
func (m *Metrics) TriggersReported(r *dirsync.Run, triggers []dirsync.Trigger) {
	now := m.now()
	if o := r.Outcome; o != nil {
		if o.ErrCode == contract.CodeCancelled {
			m.cancelled.WithLabelValues(r.Tenant, directoryOf(r)).Add(float64(len(triggers)))
		}
		if o.SyncDuration > 0 && r.Published == 0 && !o.FinishedAt.IsZero() {
			// The run's first result event: a sync ran, and this is when its pipelines hear.
			m.resultLag.Observe(max(now.Sub(o.FinishedAt), 0).Seconds())
		}
	}
	for _, t := range triggers {
		if !t.AcceptedAt.IsZero() {
			m.triggerToRes.Observe(max(now.Sub(t.AcceptedAt), 0).Seconds())
		}
		if t.Ready != nil {
			m.readiness.WithLabelValues(r.Tenant, string(t.Ready.Answer)).Inc()
		}
	}
}

// TenantsUp sets dirsync_tenant_up from a readiness check's per-tenant results; tenants no
// longer configured leave the metric.
func (m *Metrics) TenantsUp(results map[string]error) {
	m.tenantUp.Reset()
	for tenant, err := range results {
		up := 0.0
		if err == nil {
			up = 1
		}
		m.tenantUp.WithLabelValues(tenant).Set(up)
	}
}

// directoryOf is the run's directory label: vIDM's name, or its id if the name is unknown.
func directoryOf(r *dirsync.Run) string {
	if r.DirectoryName != "" {
		return r.DirectoryName
	}
	return r.DirectoryID
}

// Backend is the observer of one tenant's client (httpcore.Observer): its requests and tokens are
// labelled with the tenant, so a failing backend is told apart from the others.
func (m *Metrics) Backend(tenant string) BackendObserver {
	return BackendObserver{m: m, tenant: tenant}
}

// BackendObserver counts one tenant's requests and tokens.
type BackendObserver struct {
	m      *Metrics
	tenant string
}

// Request counts one HTTP attempt and observes its duration.
func (b BackendObserver) Request(endpoint string, code int, _ error, d time.Duration) {
	label := "error"
	if code != 0 {
		label = strconv.Itoa(code)
	}
	b.m.vidmRequests.WithLabelValues(b.tenant, endpoint, label).Inc()
	b.m.vidmDuration.WithLabelValues(b.tenant, endpoint).Observe(d.Seconds())
}

// TokenIssued counts a new token.
func (b BackendObserver) TokenIssued() { b.m.tokenRefreshes.WithLabelValues(b.tenant).Inc() }

// TokenExpiry sets when the provider's sync-client token expires, at every check. A zero
// expiresAt means the provider is no longer reported (token, provider or tenant gone): its series
// is removed, so that no alert fires on a token nobody uses any more.
func (m *Metrics) TokenExpiry(tenant, provider string, expiresAt time.Time) {
	if expiresAt.IsZero() {
		m.tokenExpiry.DeleteLabelValues(tenant, provider)
		return
	}
	m.tokenExpiry.WithLabelValues(tenant, provider).Set(unixSeconds(expiresAt))
}

// TokenWarned counts a published token expiry warning.
func (m *Metrics) TokenWarned(tenant, provider string) {
	m.tokenWarnings.WithLabelValues(tenant, provider).Inc()
}

// TokenCheckFailed counts a tenant whose sync-client tokens could not be read.
func (m *Metrics) TokenCheckFailed(tenant string) { m.tokenCheckFailures.WithLabelValues(tenant).Inc() }

// ConfigReloaded counts a configuration reload, and on success records when it was applied.
func (m *Metrics) ConfigReloaded(ok bool) {
	if !ok {
		m.configReloads.WithLabelValues(ReloadRejected).Inc()
		return
	}
	m.configReloads.WithLabelValues(ReloadApplied).Inc()
	m.lastReloadSuccess.Set(unixSeconds(m.now()))
}

// ScheduleFired counts one publish attempt of a scheduled trigger of tenant; err is its outcome.
func (m *Metrics) ScheduleFired(tenant string, err error) {
	result := SchedulePublished
	if err != nil {
		result = ScheduleFailed
	}
	m.scheduled.WithLabelValues(tenant, result).Inc()
}

// unixSeconds is t as a Prometheus timestamp value, with sub-second precision.
func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// Directory names a directory in labels: two tenants may both have a "Corp AD".
type Directory struct{ Tenant, Name string }

// stateCollector reads in-process state at scrape time.
type stateCollector struct {
	pending, failures                                func() map[Directory]int
	leases                                           func() int
	pendingDesc, failuresDesc, stuckDesc, leasesDesc *prometheus.Desc
}

func newStateCollector(pending, failures func() map[Directory]int, leases func() int) *stateCollector {
	return &stateCollector{
		pending:  pending,
		failures: failures,
		leases:   leases,
		failuresDesc: prometheus.NewDesc("dirsync_run_failures",
			"Failures in a row of the run in flight of a directory, by tenant and directory; absent while its run goes well.",
			[]string{"tenant", "directory"}, nil),
		stuckDesc: prometheus.NewDesc("dirsync_directory_stuck",
			fmt.Sprintf("1 for a directory whose run failed %d times in a row or more (see the status page or the admin API for its error), 0 while it failed fewer times; absent while its run goes well.", dirsync.StuckAfter),
			[]string{"tenant", "directory"}, nil),
		pendingDesc: prometheus.NewDesc("dirsync_pending_triggers",
			"Accepted triggers waiting for a sync, by tenant and directory.", []string{"tenant", "directory"}, nil),
		leasesDesc: prometheus.NewDesc("dirsync_leases_held",
			"Directory leases this replica holds.", nil, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	if c.pending != nil {
		ch <- c.pendingDesc
	}
	if c.failures != nil {
		ch <- c.failuresDesc
		ch <- c.stuckDesc
	}
	if c.leases != nil {
		ch <- c.leasesDesc
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.pending != nil {
		for dir, n := range c.pending() {
			ch <- prometheus.MustNewConstMetric(c.pendingDesc, prometheus.GaugeValue, float64(n), dir.Tenant, dir.Name)
		}
	}
	if c.failures != nil {
		for dir, n := range c.failures() {
			stuck := 0.0
			if n >= dirsync.StuckAfter {
				stuck = 1
			}
			ch <- prometheus.MustNewConstMetric(c.failuresDesc, prometheus.GaugeValue, float64(n), dir.Tenant, dir.Name)
			ch <- prometheus.MustNewConstMetric(c.stuckDesc, prometheus.GaugeValue, stuck, dir.Tenant, dir.Name)
		}
	}
	if c.leases != nil {
		ch <- prometheus.MustNewConstMetric(c.leasesDesc, prometheus.GaugeValue, float64(c.leases()))
	}
}

// consumerCollector asks JetStream for the consumer's state at scrape time. A separate collector
// from deadLetterCollector so that the registry gathers the two NATS round trips in parallel.
type consumerCollector struct {
	info                           func(context.Context) (*jetstream.ConsumerInfo, error)
	errs                           prometheus.Counter
	pending, ackPending, redeliver *prometheus.Desc
}

func newConsumerCollector(info func(context.Context) (*jetstream.ConsumerInfo, error), errs prometheus.Counter) *consumerCollector {
	return &consumerCollector{
		info: info,
		errs: errs,
		pending: prometheus.NewDesc("dirsync_consumer_pending_messages",
			"Trigger messages not yet delivered to the consumer.", nil, nil),
		ackPending: prometheus.NewDesc("dirsync_consumer_ack_pending_messages",
			"Trigger messages delivered and not yet acknowledged.", nil, nil),
		redeliver: prometheus.NewDesc("dirsync_consumer_redelivered_messages",
			"Trigger messages delivered more than once and not yet acknowledged.", nil, nil),
	}
}

func (c *consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.ackPending
	ch <- c.redeliver
}

func (c *consumerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	ci, err := c.info(ctx)
	if err != nil || ci == nil {
		// Leaving the series out (rather than reporting stale or zero values) lets absent() and
		// the scrape error counter tell the story.
		c.errs.Inc()
		return
	}
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(ci.NumPending))
	ch <- prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, float64(ci.NumAckPending))
	ch <- prometheus.MustNewConstMetric(c.redeliver, prometheus.GaugeValue, float64(ci.NumRedelivered))
}

// deadLetterCollector asks JetStream for the dead-letter stream's size at scrape time.
type deadLetterCollector struct {
	count func(context.Context) (uint64, error)
	errs  prometheus.Counter
	desc  *prometheus.Desc
}

func newDeadLetterCollector(count func(context.Context) (uint64, error), errs prometheus.Counter) *deadLetterCollector {
	return &deadLetterCollector{count: count, errs: errs,
		desc: prometheus.NewDesc("dirsync_dead_letters", "Messages in the dead-letter stream.", nil, nil)}
}

func (c *deadLetterCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *deadLetterCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	n, err := c.count(ctx)
	if err != nil {
		c.errs.Inc()
		return
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n))
}
