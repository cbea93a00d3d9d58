// Command vidm-sync-worker consumes directory-sync triggers from NATS JetStream, runs the vIDM
// syncs they need, and publishes the results. Configuration comes from the environment (see
// README.md); --dev starts an embedded JetStream server and the vIDM simulator instead.
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

	"github.com/sethvargo/go-envconfig"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/devstack"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/logging"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/worker"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "vidm-sync-worker:", err)
		}
		os.Exit(1)
	}
}

// reloadSignals delivers once per SIGHUP until ctx ends: the worker then re-reads its tenants.
func reloadSignals(ctx context.Context) <-chan struct{} {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	out := make(chan struct{}, 1)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case out <- struct{}{}:
				default: // a reload is already due; it reads the file as it is then
				}
			}
		}
	}()
	return out
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(ctx, args[1:], getenv, stdout, stderr)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	fs := flag.NewFlagSet("vidm-sync-worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dev := fs.Bool("dev", false, "start an embedded JetStream server (unless NATS_URL is set) and the vIDM simulator (unless VIDM_URL is set)")
	devPort := fs.Int("dev-nats-port", 4222, "with --dev: port of the embedded JetStream server (0: any free port)")
	devStore := fs.String("dev-store", "", "with --dev: directory for JetStream data and the simulator's CA (default: temporary)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: vidm-sync-worker [--dev [--dev-nats-port N] [--dev-store DIR]]\n       vidm-sync-worker healthcheck [-url URL] [-timeout D]\n\nConfiguration is read from the environment; see README.md.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(ctx, envconfig.LookuperFunc(func(k string) (string, bool) {
		v := getenv(k)
		return v, v != ""
	}), *dev)
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.LogFormat, cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	if cfg.Dev {
		stack, err := devstack.Start(devstack.Options{StoreDir: *devStore, NATSPort: *devPort, ExternalNATS: !cfg.EmbeddedNATS(), Logger: log,
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
		log.Info("dev mode", "nats_url", cfg.NATSURL, "vidm_url", cfg.VIDMURL, "vidm_ca_file", cfg.VIDMCAFile,
			"status_page", "http://"+localAdmin(cfg.AdminAddr)+"/")
	}
	log.Info("starting vidm-sync-worker", "config", cfg)
	return worker.Run(ctx, cfg, log, worker.WithReload(reloadSignals(ctx)))
}
