package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/admin"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/control"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/health"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/httplimits"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/metrics"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/servertls"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/coalesce"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirstate"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

// Option adjusts a worker beyond its configuration.
type Option func(*options)

type options struct {
	adminLn, ingressLn net.Listener
	version            string
	reload             <-chan struct{}
	schedNow           func() time.Time
	schedAfter         func(time.Duration) <-chan time.Time
	retryMin, retryMax time.Duration
	httpLimits         httplimits.Limits
	tlsInterval        time.Duration
	tracerProvider     trace.TracerProvider
}

// WithTracerProvider makes the worker's spans with tp instead of the OTEL_* configuration's
// (tests, with an in-memory exporter); the caller flushes and shuts it down.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

// WithHTTPLimits sets the admin port's and the ingress's timeouts and header limit (tests; the
// defaults are httplimits' own).
func WithHTTPLimits(l httplimits.Limits) Option { return func(o *options) { o.httpLimits = l } }

// WithRunRetry sets how long the engine waits before trying a failed run again: from min,
// doubling up to max (tests; the defaults are 2s and 1m).
func WithRunRetry(minWait, maxWait time.Duration) Option {
	return func(o *options) { o.retryMin, o.retryMax = minWait, maxWait }
}

// WithAdminListener serves the admin port on l instead of listening on ADMIN_ADDR (tests, and
// socket activation).
func WithAdminListener(l net.Listener) Option { return func(o *options) { o.adminLn = l } }

// WithIngressListener serves the HTTP ingress on l instead of listening on INGRESS_ADDR.
func WithIngressListener(l net.Listener) Option { return func(o *options) { o.ingressLn = l } }

// WithVersion sets the version shown on the status page and in dirsync_build_info.
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// WithScheduleClock runs the scheduled syncs on another clock (tests).
func WithScheduleClock(now func() time.Time, after func(time.Duration) <-chan time.Time) Option {
	return func(o *options) { o.schedNow, o.schedAfter = now, after }
}

func newOptions(opts []Option) options {
	o := options{version: "dev"}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// listen returns the given listener, or one on addr.
func listen(ctx context.Context, given net.Listener, addr, what string) (net.Listener, error) {
	if given != nil {
		return given, nil
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listening on %s: %w", what, addr, err)
	}
	return l, nil
}

// httpServer serves h on l until stopped; stop waits up to grace for requests in flight.
type httpServer struct {
	srv  *http.Server
	done chan error
}

func startHTTP(l net.Listener, h http.Handler, limits httplimits.Limits, log *slog.Logger) *httpServer {
	s := &httpServer{srv: httplimits.Server(h, limits, log), done: make(chan error, 1)}
	go func() {
		err := s.srv.Serve(l)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
	return s
}

func (s *httpServer) stop(grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	return <-s.done
}

// adminPort serves the probes and metrics from the start, and the status page and admin API once
// the pipeline exists: Kubernetes asks /healthz and /readyz while the worker still waits for NATS.
type adminPort struct {
	cfg     config.Config
	version string
	metrics http.Handler
	probes  *health.Health
	mux     *switchHandler
	srv     *httpServer
	log     *slog.Logger
}

func startAdmin(ctx context.Context, cfg config.Config, o options, tlsSrc *servertls.Source, metricsHandler http.Handler, probes *health.Health, log *slog.Logger) (*adminPort, error) {
	l, err := listen(ctx, o.adminLn, cfg.AdminAddr, "admin port")
	if err != nil {
		return nil, err
	}
	log = log.With("component", "admin")
	mux := &switchHandler{early: earlyMux(metricsHandler, probes.Healthz(), probes.Readyz())}
	p := &adminPort{cfg: cfg, version: o.version, metrics: metricsHandler, probes: probes, mux: mux,
		srv: startHTTP(withTLS(l, tlsSrc), mux, o.httpLimits, log), log: log}
	log.Info("admin port listening", "addr", l.Addr().String(), "tls", tlsSrc != nil)
	return p, nil
}

// serve adds the status page and the admin API over c to the port.
func (p *adminPort) serve(c *control.Service) {
	p.mux.set(admin.New(admin.Config{
		Token: p.cfg.AdminToken, ReadToken: p.cfg.AdminReadToken, ReadOpen: p.cfg.AdminReadOpen,
		Refresh: p.cfg.StatusRefresh, HistoryRuns: p.cfg.HistoryRuns,
		Metrics: p.metrics, Healthz: p.probes.Healthz(), Readyz: p.probes.Readyz(),
		Version: p.version, Logger: p.log,
	}, c))
}

func (p *adminPort) stop() {
	if err := p.srv.stop(5 * time.Second); err != nil {
		p.log.Warn("admin port", "err", err)
	}
}

// switchHandler serves early until set is called, then the full handler.
type switchHandler struct {
	early http.Handler
	full  atomic.Pointer[http.Handler]
}

func (s *switchHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.full.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	s.early.ServeHTTP(w, r)
}

func (s *switchHandler) set(h http.Handler) { s.full.Store(&h) }

func earlyMux(metrics, healthz, readyz http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.Handle("GET /healthz", healthz)
	mux.Handle("GET /readyz", readyz)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "the worker is starting: it is waiting for NATS JetStream"})
	})
	return mux
}

// runObservers fans the engine's run events out to the metrics and the run history.
type runObservers struct {
	metrics coalesce.Observer
	history *dirstate.History
	log     *slog.Logger
}

func (o runObservers) RunStarted(r *dirsync.Run) { o.metrics.RunStarted(r) }

func (o runObservers) TriggersReported(r *dirsync.Run, ts []dirsync.Trigger) {
	o.metrics.TriggersReported(r, ts)
}

func (o runObservers) RunReported(r *dirsync.Run) {
	o.metrics.RunReported(r)
	// The history serves the status page; the result event is the record that matters, so a
	// failed write is logged, not retried.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.history.Record(ctx, r); err != nil {
		o.log.Warn("recording the run in the history failed", "run_id", r.RunID, "directory", r.DirectoryName, "err", err)
	}
}

// perDirectory is a metrics source of one number per directory, read through the control service
// at scrape time.
func perDirectory(read func(context.Context) (map[control.DirectoryName]int, error), what string, log *slog.Logger) func() map[metrics.Directory]int {
	return func() map[metrics.Directory]int {
		sctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		defer cancel()
		byName, err := read(sctx)
		if err != nil {
			log.Debug("metrics: "+what+" failed", "err", err)
		}
		out := make(map[metrics.Directory]int, len(byName))
		for d, n := range byName {
			out[metrics.Directory{Tenant: d.Tenant, Name: d.Name}] = n
		}
		return out
	}
}

// scrapeTimeout bounds the JetStream reads behind a metrics scrape.
const scrapeTimeout = 2 * time.Second

// deadLetterCount reads the number of messages in the dead-letter stream.
func deadLetterCount(ctx context.Context, st jetstream.Stream) (uint64, error) {
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}
