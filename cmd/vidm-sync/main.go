// Command vidm-sync is the client of vidm-sync-worker that an ABX action, a vRO workflow or a
// pipeline shell step calls: `vidm-sync publish` sends a trigger CloudEvent to the worker's trigger
// stream (and with --wait follows the result stream until the sync that covers it has finished),
// `vidm-sync watch` follows the result events.
//
// Exit codes: 0 success; 1 an error (NATS unreachable, --wait timed out, ...); 2 a usage error or
// a trigger the worker would reject (nothing was published); 3 with --wait, the sync covering the
// trigger FAILED or the worker dead-lettered the trigger.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

// Exit codes.
const (
	exitFailure = 1 // any error
	exitUsage   = 2 // bad arguments or an invalid trigger; nothing was published
	exitFailed  = 3 // --wait: the sync failed, or the worker rejected the trigger
	// exitNotVisible: --wait: the sync completed, but the group or user the trigger named is not
	// in the identity store (probably outside the directory's sync scope).
	exitNotVisible = 4
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	os.Exit(report(err, os.Stderr))
}

// report prints err (if any) and returns the process exit code for it.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "vidm-sync:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailure
}

// exitError is an error with its own exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is a usage error: exit code 2.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

const usageText = `vidm-sync publishes directory-sync triggers to vidm-sync-worker and follows its results.

Usage:
  vidm-sync publish [flags]   publish a trigger (ad.group.created by default); prints its event id
  vidm-sync watch [flags]     follow result events (vidm.directory.sync.started|completed|failed)
  vidm-sync help [command]    show this help, or a command's flags

Examples:
  # A group was created in corp.example.com: ask for a sync, capture the event id.
  id=$(vidm-sync publish --domain corp.example.com --group proj-alpha-admins)

  # From a JSON file with the trigger data, and wait until the sync covering it has finished
  # (the result event is printed as JSON; exit 3 if the sync failed).
  #   trigger.json: {"domain": "corp.example.com", "group": {"name": "proj-alpha-admins"}}
  vidm-sync publish --file trigger.json --wait --timeout 15m

  # Data on stdin, a user instead of a group, an explicit directory:
  echo '{"directory": "Corp AD", "user": {"upn": "jdoe@corp.example.com"}}' |
    vidm-sync publish --type ad.user.created --file -

  # An explicit sync request, ignoring vIDM's safeguards (only where the tenant sets
  # allowIgnoreSafeguards; elsewhere it is dead-lettered SAFEGUARDS_NOT_ALLOWED):
  vidm-sync publish --type vidm.directory.sync.requested --directory "Corp AD" \
    --ignore-safeguards --reason "bulk import"

  # Follow results as they come (Ctrl-C to stop), for one directory:
  vidm-sync watch --directory "Corp AD"
  # Every stored failure from the start of the stream, one JSON object per line, at most 10:
  vidm-sync watch --from all --type failed --json --count 10

Connection (both commands; each flag defaults from the variable the worker reads):
  --nats-url URL       NATS_URL, default nats://127.0.0.1:4222 (comma-separated for several servers)
  --nats-creds FILE    NATS_CREDS_FILE
  --nats-user NAME     NATS_USER, with --nats-password (NATS_PASSWORD or NATS_PASSWORD_FILE)
  --nats-token TOKEN   NATS_TOKEN or NATS_TOKEN_FILE
  --nats-ca FILE       NATS_CA_FILE;  --nats-cert/--nats-key FILE: NATS_CERT_FILE/NATS_KEY_FILE
  --trigger-subject S  default dirsync.trigger.cli (must match the worker's TRIGGER_SUBJECTS)
  --result-stream S    RESULT_STREAM, default DIRSYNC_RESULTS
  Prefer the variables or files for secrets: command lines are visible to other processes.

Exit codes: 0 ok; 1 error (including a --wait timeout); 2 usage error or invalid trigger
(nothing published); 3 --wait: the sync FAILED or the worker dead-lettered the trigger.
`

// run is main without the process. It stops at SIGINT or SIGTERM: watch then returns nil, publish
// --wait an error.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// NATS callbacks (reconnect notices) write from their own goroutine.
	stderr = &lockedWriter{w: stderr}

	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return usageErrorf("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "publish":
		return runPublish(ctx, rest, getenv, stdin, stdout, stderr)
	case "watch":
		return runWatch(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && cmd == "help" {
			return help(rest[0], stdout)
		}
		fmt.Fprint(stdout, usageText)
		return nil
	}
	return usageErrorf("unknown command %q (want publish or watch; see 'vidm-sync help')", cmd)
}

// help prints a command's flags.
func help(cmd string, stdout io.Writer) error {
	switch cmd {
	case "publish":
		fs, _ := publishFlags()
		printUsage(fs, publishUsage, stdout)
	case "watch":
		fs, _ := watchFlags()
		printUsage(fs, watchUsage, stdout)
	default:
		return usageErrorf("unknown command %q (want publish or watch)", cmd)
	}
	return nil
}

// newFlagSet returns a flag set that reports nothing itself: parse reports the error, and -h
// prints the usage to stdout.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("vidm-sync "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses args; done is true when -h was given (the usage is printed, nothing else to do).
func parse(fs *flag.FlagSet, args []string, usage string, stdout io.Writer) (done bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(fs, usage, stdout)
			return true, nil
		}
		return false, usageErrorf("%v (see '%s -h')", err, fs.Name())
	}
	if fs.NArg() > 0 {
		return false, usageErrorf("unexpected arguments %q (see '%s -h')", fs.Args(), fs.Name())
	}
	return false, nil
}

func printUsage(fs *flag.FlagSet, usage string, w io.Writer) {
	fmt.Fprint(w, usage)
	fmt.Fprintln(w, "\nFlags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// validSubject reports a NATS subject a message can be published to: dot-separated non-empty
// tokens, no wildcards, no whitespace.
func validSubject(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t\r\n") {
		return false
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return false
		}
	}
	return true
}
