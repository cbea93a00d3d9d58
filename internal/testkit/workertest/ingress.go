package workertest

import (
	"cmp"
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/await"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/httplimits"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/ingress"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
)

// Token is the bearer token of the test ingress.
const Token = "ingress-test-token-5Hq2Zr-of-32-characters"

// IngressOptions tunes the ingress; zero values are fine.
type IngressOptions struct {
	// MaxWait caps ?wait= (default 1m).
	MaxWait time.Duration
	// MaxBody bounds request bodies (default the ingress's).
	MaxBody int64
	// MaxWaiters bounds the ?wait requests waiting at once (default the ingress's).
	MaxWaiters int
	// Env adds to or overrides the worker's environment (e.g. ADMIN_TOKEN).
	Env map[string]string
}

// Ingress is a running stack and worker with the HTTP ingress in front of them.
type Ingress struct {
	*Stack
	Decoder *trigger.Decoder
	Watcher *await.Watcher
	Server  *httptest.Server
	// URL is the ingress's events resource: Server.URL + "/events".
	URL string
	// AdminURL is the worker's admin port.
	AdminURL string
}

// StartIngress starts a stack (syncs of 200ms, a sync deadline of 2m), one worker, and the
// ingress on an httptest server served with the worker's HTTP limits; everything stops when the
// test ends. Logs hold the worker's and the ingress's lines.
func StartIngress(t testing.TB, o IngressOptions) *Ingress {
	t.Helper()
	env := map[string]string{"SYNC_DEADLINE": "2m"}
	for k, v := range o.Env {
		env[k] = v
	}
	s := Start(t, Options{Env: env})
	w := s.StartWorker("worker")
	log := slog.New(slog.NewJSONHandler(s.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// The watcher follows until Stop: its context is its lifetime, not a start-up deadline.
	wt, err := await.Start(context.Background(), s.JS, s.Cfg.ResultStream, s.Cfg.DeadStream, log.With("component", "await"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wt.Stop)
	dec, err := trigger.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	h := ingress.New(ingress.Config{
		Token:      Token,
		MaxWait:    cmp.Or(o.MaxWait, time.Minute),
		MaxBody:    o.MaxBody,
		MaxWaiters: o.MaxWaiters,
		Logger:     log.With("component", "ingress"),
	}, s.JS, dec, wt)
	srv := httptest.NewUnstartedServer(h)
	srv.Config = httplimits.Server(h, httplimits.Limits{}, log)
	srv.Start()
	t.Cleanup(srv.Close)
	return &Ingress{Stack: s, Decoder: dec, Watcher: wt, Server: srv, URL: srv.URL + ingress.Path, AdminURL: w.AdminURL}
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
