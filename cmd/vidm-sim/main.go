// Command vidm-sim serves the strict simulator (internal/testkit/vidmsim) on a real listener, in the flavor
// -flavor names (vIDM, vRA Cloud, vRA 7 or VCF), so that the worker and its CLI can be run and
// demonstrated without any of those systems. docs/vidm-api.md describes what each flavor enforces.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/logging"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "vidm-sim:", err)
		os.Exit(1)
	}
}

// shutdownTimeout bounds how long in-flight requests may take once a signal arrives.
const shutdownTimeout = 10 * time.Second

type options struct {
	listen      string
	configPath  string
	flavor      vidmsim.Flavor // "": the config file's flavor, else vidm
	printConfig bool
	tlsMode     string
	certFile    string
	keyFile     string
	caOut       string
	addrFile    string
	logFormat   string
	logLevel    string
}

// parseFlags reads the flags; each VIDM_SIM_* variable sets the default of its flag.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var o options
	fs := flag.NewFlagSet("vidm-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", env("VIDM_SIM_LISTEN", "127.0.0.1:8443"), "address to listen on (env VIDM_SIM_LISTEN)")
	fs.StringVar(&o.configPath, "config", env("VIDM_SIM_CONFIG", ""), "JSON config file; default: the example config of the flavor (env VIDM_SIM_CONFIG)")
	flavor := fs.String("flavor", env("VIDM_SIM_FLAVOR", ""), "API to speak: "+flavorList+
		"; overrides the config file's flavor; default: the config file's, else vidm (env VIDM_SIM_FLAVOR)")
	fs.BoolVar(&o.printConfig, "print-config", false, "print the example config of the flavor as JSON and exit")
	fs.StringVar(&o.tlsMode, "tls", env("VIDM_SIM_TLS", "self-signed"), "self-signed, files (with -cert/-key) or off (env VIDM_SIM_TLS)")
	fs.StringVar(&o.certFile, "cert", "", "certificate PEM file for -tls files")
	fs.StringVar(&o.keyFile, "key", "", "private key PEM file for -tls files")
	fs.StringVar(&o.caOut, "ca-out", env("VIDM_SIM_CA_OUT", ""), "with -tls self-signed: write the certificate PEM (the CA bundle clients need) here (env VIDM_SIM_CA_OUT)")
	fs.StringVar(&o.addrFile, "addr-file", "", "write the bound host:port here once listening (useful with port 0)")
	fs.StringVar(&o.logFormat, "log-format", env("VIDM_SIM_LOG_FORMAT", "text"), "text or json (env VIDM_SIM_LOG_FORMAT)")
	fs.StringVar(&o.logLevel, "log-level", env("VIDM_SIM_LOG_LEVEL", "info"), "debug, info, warn or error; debug logs every request (env VIDM_SIM_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return options{}, err // flag has already printed the problem and the usage
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	f, err := parseFlavor(*flavor)
	if err != nil {
		return options{}, err
	}
	o.flavor = f
	switch o.tlsMode {
	case "self-signed", "off":
	case "files":
		if o.certFile == "" || o.keyFile == "" {
			return options{}, errors.New("-tls files needs -cert and -key")
		}
	default:
		return options{}, fmt.Errorf("-tls %q: want self-signed, files or off", o.tlsMode)
	}
	return o, nil
}

// run is main without the process: it serves until ctx ends or SIGINT/SIGTERM arrives.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	o, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	if o.printConfig {
		return printConfig(stdout, o.flavor)
	}
	logger, err := logging.New(o.logFormat, o.logLevel, stderr)
	if err != nil {
		return fmt.Errorf("-log-format/-log-level: %w", err)
	}
	cfg, err := loadConfig(o.configPath, o.flavor)
	if err != nil {
		return err
	}
	if o.flavor != "" && o.flavor != cfg.Flavor {
		// -flavor wins, so that one file of directories can be served in every flavor; the file
		// naming another one is worth a line, since its credentials may not fit this flavor.
		if cfg.Flavor != "" {
			logger.Info("vidm-sim: -flavor overrides the config file's flavor",
				slog.String("config_flavor", string(cfg.Flavor)), slog.String("flavor", string(o.flavor)))
		}
		cfg.Flavor = o.flavor
	}
	cfg.Logger = logger
	sim, err := vidmsim.New(cfg)
	if err != nil {
		return fmt.Errorf("start simulator: %w", err)
	}
	return serve(ctx, o, cfg, sim, logger)
}

func printConfig(stdout io.Writer, f vidmsim.Flavor) error {
	b, err := json.MarshalIndent(exampleConfig(f), "", "  ")
	if err != nil {
		return fmt.Errorf("marshal example config: %w", err)
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", b); err != nil {
		return fmt.Errorf("print config: %w", err)
	}
	return nil
}

// loadConfig reads the config file, or takes the flavor's example without one.
func loadConfig(path string, flavor vidmsim.Flavor) (vidmsim.Config, error) {
	if path == "" {
		return exampleConfig(flavor), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return vidmsim.Config{}, fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	cfg, err := vidmsim.LoadConfig(f)
	if err != nil {
		return vidmsim.Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// serve listens, announces where, and shuts down gracefully when ctx ends.
func serve(ctx context.Context, o options, cfg vidmsim.Config, sim *vidmsim.Server, logger *slog.Logger) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close() // Serve closes it too; this covers the early returns

	srv := &http.Server{
		Handler:           newHandler(sim, cfg),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	scheme := "http"
	if o.tlsMode != "off" {
		tlsCfg, cleanup, err := tlsConfig(o, ln.Addr(), logger)
		if err != nil {
			return err
		}
		defer cleanup()
		srv.TLSConfig, scheme = tlsCfg, "https"
	}
	addr := ln.Addr().String()
	if o.addrFile != "" {
		if err := writeFileAtomic(o.addrFile, []byte(addr+"\n"), 0o644); err != nil {
			return fmt.Errorf("write -addr-file: %w", err)
		}
	}
	logStart(ctx, logger, scheme+"://"+addr, cfg, o.configPath == "")

	errc := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("vidm-sim shutting down")
	sim.Resume() // hung requests would otherwise hold Shutdown until its timeout
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("vidm-sim stopped")
	return nil
}

// writeFileAtomic writes via a temporary file and a rename, so a poller never reads half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(perm); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename to %s: %w", path, err)
	}
	return nil
}
