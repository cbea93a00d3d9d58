package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/logging"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/doctor"
)

// Exit codes of `vidm-sync-worker check`.
const (
	exitCheckFailed = 1 // a check failed: the worker would not work this way
	exitCheckUsage  = 2 // bad flags, or a configuration the worker would refuse
)

// exitError carries a command's exit code to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// errChecksFailed is the check's answer when a check failed; the report says which.
var errChecksFailed = errors.New("check: some checks failed (see above)")

// check is `vidm-sync-worker check`: the read-only doctor (internal/ops/doctor) with the worker's
// own configuration.
func check(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet("vidm-sync-worker check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o doctor.Options
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.StringVar(&o.Group, "group", "", "look this group up as the readiness check does after a sync")
	fs.StringVar(&o.User, "user", "", "look this user (name or UPN) up as the readiness check does")
	fs.StringVar(&o.Directory, "directory", "", "the directory (name or domain) to look the group or user up in; default: the tenant's first")
	fs.StringVar(&o.Tenant, "tenant", "", "the tenant to look the group or user up in; default: the default tenant")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "bound of each network call")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: vidm-sync-worker check [-json] [-group NAME | -user NAME] [-directory D] [-tenant T] [-timeout D]\n\n"+
			"Checks, read-only and with the worker's configuration (the environment), NATS (streams, consumer,\n"+
			"buckets) and every tenant (TLS, login, directories, each directory's sync status, and the readiness\n"+
			"lookup of -group or -user). Starts no sync, writes nothing, prints no secret.\n"+
			"Exit 0: everything the worker relies on works (warnings are printed); 1: a check failed; 2: usage\n"+
			"or a configuration the worker would refuse.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return &exitError{code: exitCheckUsage, err: err}
	}
	if fs.NArg() > 0 || o.Group != "" && o.User != "" {
		fs.Usage()
		return &exitError{code: exitCheckUsage, err: errors.New("check: give -group or -user, not both, and no arguments")}
	}
	cfg, err := config.LoadEnv(ctx, getenv, false)
	if err != nil {
		return &exitError{code: exitCheckUsage, err: err}
	}
	if o.Logger, err = logging.New(cfg.LogFormat, "error", stderr); err != nil {
		return &exitError{code: exitCheckUsage, err: err}
	}
	rep := doctor.Run(ctx, cfg, o)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if !rep.OK {
		return &exitError{code: exitCheckFailed, err: errChecksFailed}
	}
	return nil
}
