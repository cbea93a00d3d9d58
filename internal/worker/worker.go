// Package worker wires the service together: NATS connection, JetStream resources, the vIDM
// client, intake and the coalescing engine. Data flows one way: trigger in → pending set →
// coalesced run → vIDM sync → result out.
package worker

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/await"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/backoff"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/registry"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/tokenwatch"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/logging"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/natsconn"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/streams"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/control"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/health"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/httplimits"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/ingress"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/metrics"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/servertls"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/tracing"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/coalesce"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirstate"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/intake"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/results"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/schedule"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
)

// Run runs one worker replica until ctx ends, then shuts down in order: stop taking HTTP events,
// stop pulling triggers and finish recording the ones in flight, stop the runs (their records and
// released leases let any replica resume them), stop the admin port, flush and close the NATS
// connection.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger, opts ...Option) error {
	nc, err := Connect(cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := nc.Drain(); err != nil {
			log.Warn("draining the NATS connection", "err", err)
		}
	}()
	return Serve(ctx, nc, cfg, log, opts...)
}

// Serve runs the worker on an open connection; Run owns the connection's lifetime. It builds the
// parts in dependency order: the metrics, the tenants and the admin port first (Kubernetes probes
// the port while the worker waits for JetStream), then, once JetStream answers, the pipeline, which
// is then handed to the admin port, the readiness check and the metrics.
func Serve(ctx context.Context, nc *nats.Conn, cfg config.Config, log *slog.Logger, opts ...Option) error {
	o := newOptions(opts)
	// Lines logged in a span's context name it, whoever built the logger.
	log = slog.New(logging.WithTrace(log.Handler()))
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	tp, stopTracing, err := startTracing(ctx, cfg, o, log)
	if err != nil {
		return err
	}
	// Deferred first, so it runs last: the spans of the shutdown are exported too.
	defer stopTracing()
	o.tracerProvider = tp
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, metrics.Options{Version: o.version})
	tf, err := cfg.Tenants()
	if err != nil {
		return fmt.Errorf("tenants: %w", err)
	}
	warnInsecure(log, tf)
	tr, err := registry.New(tf, clientBuilder(log, m, tp))
	if err != nil {
		return fmt.Errorf("tenants: %w", err)
	}
	defer tr.Close()
	log.Info("serving tenants", "tenants", tf)

	srvTLS, err := loadTLS(cfg, o, m.ConfigReloaded, log)
	if err != nil {
		return err
	}
	stopTLS := srvTLS.run(ctx)
	defer stopTLS()

	probes := health.New(health.Options{Checks: []health.Check{
		health.NATSConnected(nc),
		health.JetStreamStarting(),
		health.Backends(backendStates(tr), cfg.ReadyVIDMInterval, time.Now, m.TenantsUp),
	}})
	adminPort, err := startAdmin(ctx, cfg, o, srvTLS.admin, metrics.Handler(reg), probes, log)
	if err != nil {
		return err
	}
	defer adminPort.stop()

	res, err := resourcesWhenReachable(ctx, js, cfg, log)
	if err != nil {
		if ctx.Err() != nil {
			// Told to stop while starting: a clean stop, not a failure.
			log.Info("worker stopped during start-up")
			return nil
		}
		return err
	}
	p, err := newPipeline(ctx, cfg, o, nc, js, res, tr, m, log)
	if err != nil {
		return err
	}
	m.Watch(p.metricSources(res, log))
	probes.Set(health.JetStreamBound(res.Consumer.Info))
	adminPort.serve(p.control)

	var ingressSrv *ingressServer
	if cfg.IngressEnabled {
		if ingressSrv, err = startIngress(ctx, cfg, o, srvTLS.ingress, js, p.decoder, log); err != nil {
			return err
		}
	}
	log.Info("worker running", "consumer", cfg.Consumer, "trigger_subjects", cfg.TriggerSubjects, "tenants", tf.Names())
	err = p.run(ctx, o.reload, ingressSrv)
	log.Info("worker stopped")
	return err
}

// pipeline is the worker's flow once JetStream is bound: intake records triggers in the store, the
// engine runs them against the tenants' backends and publishes results; the scheduler and the
// token watch add their own triggers and warnings; control is the operators' view of it all.
type pipeline struct {
	decoder  *trigger.Decoder
	intake   *intake.Intake
	engine   *coalesce.Engine
	sched    *schedule.Scheduler
	watch    *tokenwatch.Watcher
	reloader *reloader
	control  *control.Service
}

func newPipeline(ctx context.Context, cfg config.Config, o options, nc *nats.Conn, js jetstream.JetStream,
	res *streams.Resources, tr *registry.Registry, m *metrics.Metrics, log *slog.Logger) (*pipeline, error) {
	dec, err := trigger.NewDecoder()
	if err != nil {
		return nil, err
	}
	// Every page of a run and every result event stays under the broker's max_payload; the
	// history bucket also keeps the reported-trigger markers for its TTL.
	store := dirstate.New(dirstate.Buckets{Pending: res.Pending, Runs: res.Runs, Leases: res.Leases, Reported: res.History},
		dirstate.Options{MaxPayload: nc.MaxPayload(), JetStream: js})
	pub := results.New(js, cfg.ResultSubjectPrefix, cfg.ResultSource, o.tracerProvider)
	history := dirstate.NewHistory(res.History, cfg.HistoryRuns)
	pauses := dirstate.NewPauses(res.Control, nil)
	cancels := dirstate.NewCancels(res.Control)
	eng := coalesce.New(coalesce.Config{
		Holder:   holderName(),
		Window:   cfg.CoalesceWindow,
		LeaseTTL: cfg.LeaseTTL,
		// Every tenant has its own limit (MAX_CONCURRENT_SYNCS unless its file entry says
		// otherwise), so one slow backend cannot take the others' slots; the replica-wide cap
		// only bounds a configuration grown by reloads.
		MaxConcurrent:  max(tr.TotalConcurrency(), cfg.MaxConcurrentSyncs) * 4,
		PollInitial:    cfg.PollInitialInterval,
		PollMax:        cfg.PollMaxInterval,
		PollFloor:      cfg.PollFloor,
		History:        pollHistory(cfg, history),
		SyncDeadline:   cfg.SyncDeadline,
		ReadinessMax:   cfg.ReadinessMaxPerRun,
		RetryMin:       o.retryMin,
		RetryMax:       o.retryMax,
		Logger:         log.With("component", "coalesce"),
		Observer:       runObservers{metrics: m, history: history, log: log},
		Gate:           pauses,
		Cancels:        cancels,
		TracerProvider: o.tracerProvider,
	}, store, tr, pub)
	grants := trigger.NewGrants(cfg.AdminToken, nil)
	in := intake.New(intake.Config{
		DeadSubject:    cfg.DeadSubject,
		MaxPayload:     nc.MaxPayload(),
		Grants:         grants,
		PullBatch:      cfg.PullBatch,
		Logger:         log.With("component", "intake"),
		Observer:       m,
		TracerProvider: o.tracerProvider,
	}, js, res.Consumer, dec, tr, store, eng.Notify)
	sched := schedule.New(schedule.Config{Subject: cfg.RequestSubject(), Source: "urn:vidm-sync-worker:scheduler",
		Now: o.schedNow, After: o.schedAfter,
		Logger: log.With("component", "schedule"), Observer: func(e schedule.Entry, _ time.Time, err error) {
			m.ScheduleFired(e.Tenant, err)
		}}, js)
	entries, err := tr.Schedules()
	if err != nil {
		return nil, fmt.Errorf("tenants: %w", err)
	}
	sched.Set(entries)
	watch := tokenwatch.New(tokenwatch.Config{Interval: cfg.SyncClientTokenCheck, Logger: log.With("component", "tokenwatch")},
		tokenTargets(tr), pub, m)
	r := &reloader{ctx: ctx, cfg: cfg, reg: tr, sched: sched, watch: watch, log: log.With("component", "tenants"), done: m.ConfigReloaded}
	c := control.New(control.Config{
		Tenants:        r,
		RequestSubject: cfg.RequestSubject(),
		Grants:         grants,
		DeadStream:     cfg.DeadStream,
		HistoryRuns:    cfg.HistoryRuns,
		Logger:         log.With("component", "control"),
	}, control.Stores{Store: store, History: history, Pauses: pauses, Cancels: cancels}, catalog{tr}, js, eng.Wake)
	return &pipeline{decoder: dec, intake: in, engine: eng, sched: sched, watch: watch, reloader: r, control: c}, nil
}

// pollHistory is where the engine reads when a directory's syncs ended, to plan its polls; nil
// keeps the doubling schedule (POLL_FROM_HISTORY=false).
func pollHistory(cfg config.Config, h *dirstate.History) coalesce.History {
	if !cfg.PollFromHistory {
		return nil
	}
	return h
}

// metricSources are the series read from the pipeline's state at scrape time.
func (p *pipeline) metricSources(res *streams.Resources, log *slog.Logger) metrics.Sources {
	return metrics.Sources{
		PendingByDirectory: perDirectory(p.control.PendingByName, "counting pending triggers", log),
		RunFailures:        perDirectory(p.control.FailuresByName, "reading failing runs", log),
		LeasesHeld:         p.engine.LeasesHeld,
		ConsumerInfo:       res.Consumer.Info,
		DeadLetters:        func(ctx context.Context) (uint64, error) { return deadLetterCount(ctx, res.Dead) },
	}
}

// run runs every part until ctx ends; the ingress, if any, stops taking events first.
func (p *pipeline) run(ctx context.Context, reload <-chan struct{}, ingressSrv *ingressServer) error {
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	wg.Go(func() { errs <- p.intake.Run(ctx) })
	wg.Go(func() { errs <- p.engine.Run(ctx) })
	wg.Go(func() { errs <- p.sched.Run(ctx) })
	wg.Go(func() { errs <- p.watch.Run(ctx) })
	if reload != nil {
		wg.Go(func() { p.reloader.run(ctx, reload) })
	}
	if ingressSrv != nil {
		wg.Go(func() {
			<-ctx.Done()
			// New events are refused first; waits in flight get a moment to finish.
			errs <- ingressSrv.stop(5 * time.Second)
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// startIngress serves the HTTP ingress: CloudEvents over HTTP, published to the trigger stream.
// The result watcher outlives the server's graceful stop, so waits in flight can still finish.
func startIngress(ctx context.Context, cfg config.Config, o options, tlsSrc *servertls.Source, js jetstream.JetStream, dec *trigger.Decoder, log *slog.Logger) (*ingressServer, error) {
	ilog := log.With("component", "ingress")
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w, err := await.Start(wctx, js, cfg.ResultStream, cfg.DeadStream, ilog)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("ingress: following results: %w", err)
	}
	l, err := listen(ctx, o.ingressLn, cfg.IngressAddr, "ingress")
	if err != nil {
		w.Stop()
		cancel()
		return nil, err
	}
	clientCerts := tlsSrc != nil && cfg.IngressTLSClientCAFile != ""
	h := ingress.New(ingress.Config{Token: cfg.IngressToken, ClientCerts: clientCerts, Subject: cfg.IngressSubject, MaxWait: cfg.IngressMaxWait,
		MaxWaiters: cfg.IngressMaxWaiters, AnswerTime: cmp.Or(o.httpLimits.Write, httplimits.DefaultWrite), Logger: ilog}, js, dec, w)
	ilog.Info("HTTP ingress listening", "addr", l.Addr().String(), "subject", cfg.IngressSubject,
		"tls", tlsSrc != nil, "client_certificates", clientCerts, "token", cfg.IngressToken != "")
	return &ingressServer{srv: startHTTP(withTLS(l, tlsSrc), h, o.httpLimits, ilog), stopWatcher: func() { w.Stop(); cancel() }}, nil
}

type ingressServer struct {
	srv         *httpServer
	stopWatcher func()
}

func (s *ingressServer) stop(grace time.Duration) error {
	defer s.stopWatcher()
	return s.srv.stop(grace)
}

// startTracing returns the tracer provider the worker's parts make spans with and what flushes
// it at the end: the one WithTracerProvider gave (its owner flushes it), else one built from the
// OTEL_* configuration, a no-op one when tracing is off.
func startTracing(ctx context.Context, cfg config.Config, o options, log *slog.Logger) (trace.TracerProvider, func(), error) {
	if o.tracerProvider != nil {
		return o.tracerProvider, func() {}, nil
	}
	s := tracing.Settings{}
	if cfg.TracingEnabled() {
		sampler, ratio := cfg.TracesSampler()
		s = tracing.Settings{URL: cfg.TracesURL(), Protocol: cfg.ExportProtocol(), Headers: cfg.ExportHeaders(), Resource: cfg.ResourceAttributes(),
			Version: o.version, Sampler: sampler, Ratio: ratio, Logger: log.With("component", "tracing")}
	}
	t, err := tracing.New(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	if !t.Enabled() {
		return t.Provider(), func() {}, nil
	}
	sampler, _ := cfg.TracesSampler()
	log.Info("exporting traces", "url", natsconn.RedactURLs(s.URL), "protocol", s.Protocol, "sampler", sampler,
		"service_name", s.Resource["service.name"])
	return t.Provider(), func() {
		// Detached from ctx, which has ended by now; bounded, so a collector that is down
		// cannot hold up the stop.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := t.Shutdown(sctx); err != nil {
			log.Warn("flushing the last spans failed", "err", err)
		}
	}, nil
}

// resourcesWhenReachable sets up the JetStream resources, waiting out a broker that is down or
// restarting (a rolling NATS upgrade must not crash-loop the workers); a refusal is final.
func resourcesWhenReachable(ctx context.Context, js jetstream.JetStream, cfg config.Config, log *slog.Logger) (*streams.Resources, error) {
	retry := backoff.Policy{Initial: 250 * time.Millisecond, Max: 10 * time.Second}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		res, err := resources(actx, js, cfg)
		cancel()
		if err == nil || !brokerUnavailable(err) || ctx.Err() != nil {
			return res, err
		}
		wait := retry.Delay(attempt)
		log.Warn("JetStream not reachable yet; retrying", "retry_in", wait, "err", err)
		if err := backoff.Wait(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// brokerUnavailable: errors that mean "no answer (yet)", not "no".
func brokerUnavailable(err error) bool {
	for _, target := range []error{context.DeadlineExceeded, nats.ErrTimeout, nats.ErrNoResponders,
		nats.ErrConnectionClosed, nats.ErrConnectionReconnecting, nats.ErrDisconnected, jetstream.ErrJetStreamNotEnabled} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

func resources(ctx context.Context, js jetstream.JetStream, cfg config.Config) (*streams.Resources, error) {
	if !cfg.ManageStreams {
		return streams.Bind(ctx, js, cfg.StreamNames())
	}
	return streams.Ensure(ctx, js, cfg.StreamNames(), cfg.StreamSettings())
}

// Connect opens the NATS connection with the configured credentials and TLS, reconnecting forever:
// a NATS restart pauses the worker, it does not stop it.
func Connect(cfg config.Config, log *slog.Logger) (*nats.Conn, error) {
	return natsconn.Connect(cfg.NATSConn(),
		nats.ReconnectWait(time.Second),
		// A broker that is not up yet is waited for, like one that went away.
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", "url", c.ConnectedUrlRedacted()) }),
	)
}

// holderName identifies this replica in leases and logs: the pod name plus a random suffix, so a
// restarted pod never mistakes its predecessor's lease for its own.
func holderName() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}
