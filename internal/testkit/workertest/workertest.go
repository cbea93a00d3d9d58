// Package workertest runs real workers for tests, as net/http/httptest runs a handler: an embedded
// JetStream server and the identity simulator (internal/testkit/devstack), the worker's
// configuration with short timings, workers the test starts and stops (gracefully, or as a crash
// would), and on request the HTTP ingress on an httptest server. Every test that needs a running
// worker starts it here.
package workertest

import (
	"context"
	"log/slog"
	"maps"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sethvargo/go-envconfig"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/logging"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/devstack"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/logbuf"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/worker"
)

// stopWithin bounds a worker's graceful stop in a test.
const stopWithin = 20 * time.Second

// Options tunes the stack; zero values are fine.
type Options struct {
	// Sim is the simulator's configuration. Nil: vidmsim.ExampleConfig() with syncs of 200ms.
	Sim *vidmsim.Config
	// TenantsFile, when set, is the workers' TENANTS_FILE: they serve the identity systems it
	// names instead of the stack's simulator (which still runs, unused).
	TenantsFile string
	// NATSMaxPayload is the server's max_payload; 0: NATS's default (1 MiB).
	NATSMaxPayload int32
	// NATSURL, when set, is a broker the test started itself (a deployment's configuration, with
	// users and TLS): no server is embedded, and Env carries the workers' credentials.
	NATSURL string
	// Conn are the options of the test's own connection (a user, a CA, an inbox prefix).
	Conn []nats.Option
	// Env adds to or overrides the workers' environment.
	Env map[string]string
}

// Stack is a running NATS server and simulator, and the configuration workers start with.
type Stack struct {
	t    testing.TB
	Dev  *devstack.Stack // Dev.Sim is the simulator: SetDirectory, SyncLog, ...
	Cfg  config.Config
	NC   *nats.Conn // the test's own connection
	JS   jetstream.JetStream
	Logs *logbuf.Buffer // every worker's log lines (JSON, debug level)
}

// Start starts the stack; everything stops when the test ends.
func Start(t testing.TB, o Options) *Stack {
	t.Helper()
	sim := o.Sim
	if sim == nil {
		sc := vidmsim.ExampleConfig()
		sc.SyncDuration = 200 * time.Millisecond
		sim = &sc
	}
	dev, err := devstack.Start(devstack.Options{StoreDir: t.TempDir(), Sim: sim, NATSMaxPayload: o.NATSMaxPayload,
		ExternalNATS: o.NATSURL != ""})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dev.Close)
	env := map[string]string{
		"COALESCE_WINDOW":         "50ms",
		"POLL_INITIAL_INTERVAL":   "20ms",
		"POLL_MAX_INTERVAL":       "50ms",
		"POLL_FLOOR":              "100ms",
		"LEASE_TTL":               "3s",
		"SYNC_DEADLINE":           "20s",
		"READINESS_RECHECK_AFTER": "200ms",
		"RESULT_SOURCE":           "urn:vidm-sync-worker:test",
		"ADMIN_ADDR":              "127.0.0.1:0",
	}
	switch {
	case o.NATSURL != "":
		env["NATS_URL"] = o.NATSURL
	case o.TenantsFile != "":
		env["NATS_URL"] = dev.NATS.URL()
	}
	devMode := o.TenantsFile == "" // dev mode: the stack's NATS and simulator are applied below
	if !devMode {
		env["TENANTS_FILE"] = o.TenantsFile
	}
	maps.Copy(env, o.Env)
	cfg, err := config.Load(context.Background(), envconfig.MapLookuper(env), devMode)
	if err != nil {
		t.Fatal(err)
	}
	if devMode {
		dev.Apply(&cfg)
	}
	nc, js := natstest.Connect(t, cfg.NATSURL, o.Conn...)
	return &Stack{t: t, Dev: dev, Cfg: cfg, NC: nc, JS: js, Logs: &logbuf.Buffer{}}
}

// Logger is a worker's logger: JSON lines into Logs, tagged with the replica's name.
func (s *Stack) Logger(name string) *slog.Logger {
	return slog.New(logging.WithTrace(slog.NewJSONHandler(s.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))).With("replica", name)
}

// Worker is a worker running in the test.
type Worker struct {
	// AdminURL is its admin port: status page, admin API, metrics, probes.
	AdminURL string
	// Stop stops it as SIGTERM would and reports an error it returned; the test's end calls it too.
	Stop func()
}

// StartWorker runs a worker with s.Cfg and waits until its consumer exists.
func (s *Stack) StartWorker(name string, opts ...worker.Option) *Worker {
	s.t.Helper()
	w := s.RunWorker(name, opts...)
	s.WaitConsumer()
	return w
}

// RunWorker runs a worker with s.Cfg without waiting for it (a test whose own user may not see
// the consumer).
func (s *Stack) RunWorker(name string, opts ...worker.Option) *Worker {
	s.t.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- worker.Run(ctx, s.Cfg, s.Logger(name), append([]worker.Option{worker.WithAdminListener(l)}, opts...)...)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					s.t.Errorf("worker %s: %v", name, err)
				}
			case <-time.After(stopWithin):
				s.t.Errorf("worker %s did not stop within %s", name, stopWithin)
			}
		})
	}
	s.t.Cleanup(stop)
	return &Worker{AdminURL: "http://" + l.Addr().String(), Stop: stop}
}

// StartCrashableWorker runs a worker on its own connection; crash closes that connection without
// any goodbye (no lease release, no drain), as a SIGKILL would, then stops the goroutines.
func (s *Stack) StartCrashableWorker(name string) (crash func()) {
	s.t.Helper()
	nc, err := nats.Connect(s.Cfg.NATSURL, nats.NoReconnect())
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = worker.Serve(ctx, nc, s.Cfg, s.Logger(name)) }()
	s.WaitConsumer()
	return func() {
		nc.Close()
		cancel()
		<-done
	}
}

// WaitConsumer waits until a worker has created its streams and consumer.
func (s *Stack) WaitConsumer() {
	s.t.Helper()
	poll.Until(s.t, 15*time.Second, "the worker's streams and consumer", func() bool {
		_, err := s.JS.Consumer(context.Background(), s.Cfg.TriggerStream, s.Cfg.Consumer)
		return err == nil
	})
}
