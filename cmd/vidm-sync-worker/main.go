// Command vidm-sync-worker consumes directory-sync triggers from NATS JetStream, runs the vIDM
// syncs they need, and publishes the results. Configuration comes from the environment (see
// README.md). It holds the product only: the embedded JetStream server and the vIDM simulator
// for a laptop are cmd/vidm-sync-dev's (make run).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/logging"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/worker"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "vidm-sync-worker:", err)
		}
		code := 1
		if ee := (*exitError)(nil); errors.As(err, &ee) {
			code = ee.code
		}
		os.Exit(code)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "check" {
		return check(ctx, args[1:], getenv, stdout, stderr)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	fs := flag.NewFlagSet("vidm-sync-worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: vidm-sync-worker [-print-config]\n       vidm-sync-worker check [-json] [-group NAME] ...\n       vidm-sync-worker healthcheck [-url URL] [-timeout D]\n\nConfiguration is read from the environment; see README.md. For a laptop (embedded JetStream\nand the vIDM simulator) run vidm-sync-dev: make run.")
		fs.PrintDefaults()
	}
	printConfig := fs.Bool("print-config", false, "print the configuration, one setting per line with secrets masked, and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg, err := config.LoadEnv(ctx, getenv, false)
	if err != nil {
		return err
	}
	log, err := logging.New(cfg.LogFormat, cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	if *printConfig {
		return cfg.WriteSettings(stdout)
	}
	cfg.LogStart(log)
	return worker.Run(ctx, cfg, log, worker.WithReload(worker.ReloadSignals(ctx)))
}
