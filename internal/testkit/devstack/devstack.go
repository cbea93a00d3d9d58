// Package devstack starts what the worker needs when nothing else is there: an embedded JetStream
// server and the vIDM simulator on HTTPS, both on loopback. It backs `vidm-sync-dev`,
// `make demo` and the integration tests, so all three exercise the same real parts.
package devstack

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natsdev"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// Options configures the stack. Zero values: a temporary store, the simulator's example
// configuration, no logs.
type Options struct {
	StoreDir string          // JetStream store and the simulator's CA file
	Sim      *vidmsim.Config // nil: vidmsim.ExampleConfig()
	Logger   *slog.Logger
	// ExternalNATS skips the embedded server (the worker was given NATS_URL).
	ExternalNATS bool
	// NATSPort is the embedded server's port; 0 picks a free one.
	NATSPort int
	// NATSLogs passes the embedded server's own log lines to Logger (they are many).
	NATSLogs bool
	// NATSMaxPayload is the embedded server's max_payload; 0: NATS's default (1 MiB).
	NATSMaxPayload int32
}

// Stack is a running embedded NATS server and simulator.
type Stack struct {
	NATS   *natsdev.Server // nil with ExternalNATS
	Sim    *vidmsim.Server
	SimURL string
	CAFile string
	client vidmsim.Client
	srv    *http.Server
	tmpDir string
}

// Start starts the stack.
func Start(opts Options) (*Stack, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st := &Stack{}
	dir := opts.StoreDir
	if dir == "" {
		d, err := os.MkdirTemp("", "vidm-sync-dev-")
		if err != nil {
			return nil, err
		}
		dir, st.tmpDir = d, d
	}
	if !opts.ExternalNATS {
		var nlog *slog.Logger
		if opts.NATSLogs {
			nlog = log.With("component", "nats-server")
		}
		ns, err := natsdev.Start(natsdev.Options{StoreDir: filepath.Join(dir, "jetstream"), Port: opts.NATSPort, Logger: nlog,
			MaxPayload: opts.NATSMaxPayload})
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("embedded NATS: %w", err)
		}
		st.NATS = ns
	}
	if err := st.startSim(opts, dir, log); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

func (st *Stack) startSim(opts Options, dir string, log *slog.Logger) error {
	cfg := vidmsim.ExampleConfig()
	if opts.Sim != nil {
		cfg = *opts.Sim
	}
	if len(cfg.Clients) == 0 {
		return errors.New("simulator config needs an OAuth client for the worker")
	}
	if cfg.Logger == nil {
		cfg.Logger = log.With("component", "vidm-sim")
	}
	sim, err := vidmsim.New(cfg)
	if err != nil {
		return err
	}
	cert, certPEM, err := vidmsim.SelfSignedCert()
	if err != nil {
		return err
	}
	st.CAFile = filepath.Join(dir, "vidm-sim-ca.pem")
	if err := os.WriteFile(st.CAFile, certPEM, 0o600); err != nil {
		return err
	}
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	st.Sim, st.client = sim, cfg.Clients[0]
	st.SimURL = "https://" + ln.Addr().String()
	st.srv = &http.Server{
		Handler:           sim,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() { _ = st.srv.ServeTLS(ln, "", "") }()
	return nil
}

// Apply points a worker configuration at the stack: NATS (unless external), the simulator's URL,
// CA and OAuth client.
func (st *Stack) Apply(cfg *config.Config) {
	if st.NATS != nil {
		cfg.NATSURL = st.NATS.URL()
	}
	cfg.VIDMURL = st.SimURL
	cfg.VIDMCAFile = st.CAFile
	cfg.VIDMAuthMode = "oauth"
	cfg.VIDMClientID = st.client.ID
	cfg.VIDMClientSecret = st.client.Secret
}

// Close stops everything and removes the temporary directory it made.
func (st *Stack) Close() {
	if st.srv != nil {
		st.Sim.Resume()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = st.srv.Shutdown(ctx)
		cancel()
	}
	if st.NATS != nil {
		st.NATS.Shutdown()
	}
	if st.tmpDir != "" {
		_ = os.RemoveAll(st.tmpDir)
	}
}
