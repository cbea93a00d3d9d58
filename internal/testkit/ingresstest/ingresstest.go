// Package ingresstest runs the whole path of an HTTP publisher for tests: an embedded JetStream
// server and the vIDM simulator (internal/testkit/devstack), a real worker (worker.Run) with short timings,
// and the ingress on an httptest server, as net/http/httptest does for one handler.
package ingresstest

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sethvargo/go-envconfig"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/await"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/httplimits"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/ingress"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/devstack"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/logbuf"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/worker"
)

// Token is the bearer token of the test ingress.
const Token = "ingress-test-token-5Hq2Zr-of-32-characters"

// Options tunes the stack; zero values are fine.
type Options struct {
	// MaxWait caps ?wait= (default 1m).
	MaxWait time.Duration
	// MaxBody bounds request bodies (default the ingress's).
	MaxBody int64
	// MaxWaiters bounds the ?wait requests waiting at once (default the ingress's).
	MaxWaiters int
	// Env adds to or overrides the worker's environment (e.g. ADMIN_TOKEN).
	Env map[string]string
}

// Stack is a running NATS server, simulator, worker and ingress.
type Stack struct {
	Dev     *devstack.Stack // Dev.Sim is the simulator: SetDirectory, SyncLog, ...
	Cfg     config.Config   // the worker's configuration (stream names, NATS URL)
	JS      jetstream.JetStream
	Decoder *trigger.Decoder
	Watcher *await.Watcher
	Server  *httptest.Server
	// URL is the ingress's events resource: Server.URL + "/events".
	URL string
	// Logs holds the worker's and the ingress's log lines.
	Logs *logbuf.Buffer
	// AdminURL is the worker's admin port: status page, admin API, metrics, probes.
	AdminURL string
}

// Start starts the stack; everything stops when the test ends. The simulator knows its example
// directories ("Corp AD" for corp.example.com, "EMEA AD" for emea.example.com, "Lab IWA" for
// lab.example.com) with syncs of 200ms.
func Start(t testing.TB, opts Options) *Stack {
	t.Helper()
	sc := vidmsim.ExampleConfig()
	sc.SyncDuration = 200 * time.Millisecond
	dev, err := devstack.Start(devstack.Options{StoreDir: t.TempDir(), Sim: &sc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dev.Close)
	env := map[string]string{
		"COALESCE_WINDOW":       "50ms",
		"POLL_INITIAL_INTERVAL": "20ms",
		"POLL_MAX_INTERVAL":     "50ms",
		"LEASE_TTL":             "3s",
		"SYNC_DEADLINE":         "2m",
		"RESULT_SOURCE":         "urn:vidm-sync-worker:test",
	}
	maps.Copy(env, opts.Env)
	cfg, err := config.Load(context.Background(), envconfig.MapLookuper(env), true)
	if err != nil {
		t.Fatal(err)
	}
	dev.Apply(&cfg)
	logs := &logbuf.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	var lc net.ListenConfig
	adminLn, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- worker.Run(ctx, cfg, log.With("component", "worker"), worker.WithAdminListener(adminLn))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("worker: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("worker did not stop within 20s")
		}
	})

	nc, err := nats.Connect(cfg.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 15*time.Second, "the worker's streams and consumer", func() bool {
		_, err := js.Consumer(context.Background(), cfg.TriggerStream, cfg.Consumer)
		return err == nil
	})
	// The watcher follows until Stop: its context is its lifetime, not a start-up deadline.
	w, err := await.Start(context.Background(), js, cfg.ResultStream, cfg.DeadStream, log.With("component", "await"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	dec, err := trigger.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	h := ingress.New(ingress.Config{
		Token:      Token,
		MaxWait:    cmp.Or(opts.MaxWait, time.Minute),
		MaxBody:    opts.MaxBody,
		MaxWaiters: opts.MaxWaiters,
		Logger:     log.With("component", "ingress"),
	}, js, dec, w)
	// Served as the worker serves it, with its limits.
	srv := httptest.NewUnstartedServer(h)
	srv.Config = httplimits.Server(h, httplimits.Limits{}, log)
	srv.Start()
	t.Cleanup(srv.Close)
	return &Stack{Dev: dev, Cfg: cfg, JS: js, Decoder: dec, Watcher: w, Server: srv, URL: srv.URL + ingress.Path, Logs: logs,
		AdminURL: "http://" + adminLn.Addr().String()}
}

// LastSeq is the last sequence stored in a stream.
func (s *Stack) LastSeq(t testing.TB, stream string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.JS.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().State.LastSeq
}
