// Command vidm-sync-dev runs the worker on a laptop (make run): an embedded JetStream server
// unless NATS_URL is set, and the vIDM simulator unless VIDM_URL or TENANTS_FILE is set; the rest
// of the configuration comes from the environment as for the worker. The product binary,
// cmd/vidm-sync-worker, links neither.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/logging"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/devstack"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/worker"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "vidm-sync-dev:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	fs := flag.NewFlagSet("vidm-sync-dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	natsPort := fs.Int("nats-port", 4222, "port of the embedded JetStream server (0: any free port)")
	store := fs.String("store", "", "directory for JetStream data and the simulator's CA (default: temporary)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: vidm-sync-dev [-nats-port N] [-store DIR]\n\nThe worker on embedded JetStream (unless NATS_URL is set) and the vIDM simulator (unless\nVIDM_URL or TENANTS_FILE is set); other settings from the environment, as README.md lists.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.LoadEnv(ctx, getenv, true)
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.LogFormat, cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	stack, err := devstack.Start(devstack.Options{StoreDir: *store, NATSPort: *natsPort, ExternalNATS: !cfg.EmbeddedNATS(), Logger: log,
		NATSLogs: cfg.Level() <= slog.LevelDebug})
	if err != nil {
		return err
	}
	defer stack.Close()
	if cfg.SimulatedVIDM() {
		stack.Apply(&cfg)
	} else if cfg.EmbeddedNATS() {
		cfg.NATSURL = stack.NATS.URL()
	}
	// A laptop has no one to keep out: the status page opens without a token unless the
	// environment says otherwise.
	if getenv("ADMIN_READ_OPEN") == "" {
		cfg.AdminReadOpen = true
	}
	scheme := "http://"
	if cfg.AdminTLS() {
		scheme = "https://"
	}
	log.Info("dev mode", "nats_url", cfg.NATSURL, "vidm_url", cfg.VIDMURL, "vidm_ca_file", cfg.VIDMCAFile,
		"status_page", scheme+worker.LocalAdminAddr(cfg.AdminAddr)+"/")
	cfg.LogStart(log)
	return worker.Run(ctx, cfg, log, worker.WithReload(worker.ReloadSignals(ctx)))
}
