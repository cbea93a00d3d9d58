package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/await"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
)

const publishUsage = `Usage: vidm-sync publish [flags]

Publishes one trigger CloudEvent (binary mode; --structured for structured mode) to the worker's
trigger stream and prints its event id, or with --json {"id","subject","stream","seq"}.

The trigger data comes from the flags, or from --file (a JSON object, "-" for stdin):
  {"domain": "corp.example.com", "directory": "Corp AD", "tenant": "default",
   "group": {"name": "proj-alpha-admins"}, "user": {"upn": "jdoe@corp.example.com"},
   "ignoreSafeguards": false, "reason": "..."}
Flags given explicitly override the file's fields. ad.group.* needs a group, ad.user.* a user,
vidm.directory.sync.requested neither; every type needs a domain or a directory. The trigger is
checked exactly as the worker checks it before anything is sent: an invalid one exits 2.

With --wait, the command follows the result stream (subscribed before publishing) and prints the
result event that lists the trigger as indented JSON (with --print-id, only the id the identity
store gave the group or user). It exits 0 when the sync COMPLETED and the group or user is
visible (or was not checked), 4 when the sync COMPLETED but the group or user is not visible
(probably outside the directory's sync scope), 3 when the sync FAILED or the worker dead-lettered
the trigger, 1 when --timeout passes first. The event id, progress and what the readiness check
found go to stderr.
`

type publishOptions struct {
	conn                                                connFlags
	typ, domain, directory, tenant, group, user, reason string
	id, source, traceparent                             string
	ignoreSafeguards                                    bool
	file                                                string
	structured, jsonOut, wait, printID                  bool
	timeout                                             time.Duration
	deadStream                                          string
}

func publishFlags() (*flag.FlagSet, *publishOptions) {
	fs := newFlagSet("publish")
	o := &publishOptions{}
	o.conn.register(fs)
	fs.StringVar(&o.typ, "type", "ad.group.created", "event `type`: ad.group.*, ad.user.* or "+contract.TypeSyncRequested)
	fs.StringVar(&o.domain, "domain", "", "AD `domain` whose vIDM directory to sync")
	fs.StringVar(&o.directory, "directory", "", "vIDM directory `name`; wins over --domain")
	fs.StringVar(&o.tenant, "tenant", "", "`tenant` (configured vIDM instance); default: the worker's")
	fs.StringVar(&o.group, "group", "", "group `name` (ad.group.*)")
	fs.StringVar(&o.user, "user", "", "user `upn or name` (ad.user.*)")
	fs.BoolVar(&o.ignoreSafeguards, "ignore-safeguards", false, "ask vIDM to ignore its sync safeguards")
	fs.StringVar(&o.reason, "reason", "", "`text` saying why ("+contract.TypeSyncRequested+" only)")
	fs.StringVar(&o.id, "id", "", "event `id` (default: a new UUID)")
	fs.StringVar(&o.source, "source", "urn:vidm-sync:cli", "event `source`")
	fs.StringVar(&o.traceparent, "traceparent", "", "W3C `traceparent` to carry into the result (env TRACEPARENT)")
	fs.StringVar(&o.file, "file", "", "read the trigger data from this JSON `file` (- for stdin)")
	fs.BoolVar(&o.structured, "structured", false, "publish in structured mode (application/cloudevents+json)")
	fs.BoolVar(&o.jsonOut, "json", false, `print {"id","subject","stream","seq"} instead of the id (without --wait)`)
	fs.BoolVar(&o.wait, "wait", false, "wait for the result of the sync that covers the trigger")
	fs.BoolVar(&o.printID, "print-id", false, "with --wait, print only the group's or user's id in the identity store instead of the result event")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "with --wait: how long to wait for the result")
	fs.StringVar(&o.deadStream, "dead-stream", defaultDeadStream, "with --wait: the worker's dead-letter `stream`, to report a rejected trigger at once (env DEAD_STREAM)")
	return fs, o
}

func runPublish(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, o := publishFlags()
	if done, err := parse(fs, args, publishUsage, stdout); done || err != nil {
		return err
	}
	set := setFlags(fs)
	if err := o.conn.resolve(fs, set, getenv); err != nil {
		return err
	}
	if err := applyEnv(fs, set, getenv, []envFlag{{"dead-stream", "DEAD_STREAM"}}); err != nil {
		return err
	}
	if o.wait && o.timeout <= 0 {
		return usageErrorf("--timeout must be positive")
	}
	t, err := o.trigger(set, getenv, stdin, stderr)
	if err != nil {
		return err
	}
	msg, id, err := o.encode(t)
	if err != nil {
		return err
	}

	parent := ctx
	if o.wait {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	nc, js, err := o.conn.connect(stderr)
	if err != nil {
		return err
	}
	defer nc.Close()

	var (
		watcher *await.Watcher
		wt      *await.Wait
	)
	if o.wait {
		// Registered before publishing, so the result cannot go by unseen.
		// Dead letters are often the operators' alone (deploy/nats/nats-server.conf): a user
		// without access gets no answer, so the look is short. --dead-stream "" skips it.
		dead := o.deadStream
		if dead != "" {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if _, err := js.Stream(sctx, dead); err != nil {
				fmt.Fprintf(stderr, "warning: dead-letter stream %s: %v; a trigger the worker rejects will only show as a timeout\n", dead, err)
				dead = ""
			}
			cancel()
		}
		if watcher, err = await.Start(ctx, js, o.conn.resultStream, dead, nil); err != nil {
			return fmt.Errorf("--wait: following the results: %w (see --result-stream); nothing was published", err)
		}
		defer watcher.Stop()
		wt = watcher.Register(id, await.WithStarted())
		defer wt.Cancel()
	}

	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("publish to %s: no JetStream stream takes this subject (the worker's TRIGGER_SUBJECTS must include it; see --trigger-subject): %w", msg.Subject, err)
		}
		return fmt.Errorf("publish to %s: %w", msg.Subject, err)
	}
	if ack.Duplicate {
		fmt.Fprintf(stderr, "warning: an event with id %s was already published; the stream kept the first one\n", id)
	}
	if !o.wait {
		if o.jsonOut {
			b, err := json.Marshal(struct {
				ID      string `json:"id"`
				Subject string `json:"subject"`
				Stream  string `json:"stream"`
				Seq     uint64 `json:"seq"`
			}{id, msg.Subject, ack.Stream, ack.Sequence})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "%s\n", b)
			return err
		}
		_, err = fmt.Fprintln(stdout, id)
		return err
	}
	fmt.Fprintf(stderr, "published %s to %s (stream %s, seq %d); waiting up to %s for its result\n", id, msg.Subject, ack.Stream, ack.Sequence, o.timeout)
	w := waiter{id: id, directory: t.Directory, printID: o.printID, stdout: stdout, stderr: stderr}
	if ack.Duplicate {
		// The original may have been reported before this command registered.
		if out, found, err := watcher.Earlier(ctx, id, ack); err != nil {
			fmt.Fprintf(stderr, "warning: looking for the earlier result of %s: %v\n", id, err)
		} else if found {
			return w.outcome(out)
		}
	}
	err = w.wait(ctx, wt)
	if err != nil && ctx.Err() != nil {
		if parent.Err() != nil {
			return fmt.Errorf("interrupted while waiting for the result of trigger %s (it was published and will still be synced)", id)
		}
		return fmt.Errorf("no result for trigger %s within %s; it was published (stream %s, seq %d) and will still be synced: follow with 'vidm-sync watch'", id, o.timeout, ack.Stream, ack.Sequence)
	}
	return err
}

// trigger builds the trigger from the file (if any) and the flags, which win.
func (o *publishOptions) trigger(set map[string]bool, getenv func(string) string, stdin io.Reader, stderr io.Writer) (trigger.Trigger, error) {
	t := trigger.Trigger{Type: o.typ, ID: o.id, Source: o.source, Traceparent: o.traceparent}
	if !set["traceparent"] {
		if tp := getenv("TRACEPARENT"); tp != "" {
			// The ambient trace context is a courtesy: a malformed one must not stop the publish.
			probe := trigger.Trigger{Type: contract.TypeSyncRequested, Domain: "example.com", Traceparent: tp}
			if _, err := trigger.NewEvent(probe); err != nil {
				fmt.Fprintf(stderr, "warning: ignoring TRACEPARENT: %v\n", err)
			} else {
				t.Traceparent = tp
			}
		}
	}
	if o.file != "" {
		f, err := readTriggerFile(o.file, stdin)
		if err != nil {
			return t, err
		}
		t.Domain, t.Directory, t.Tenant = f.Domain, f.Directory, f.Tenant
		t.IgnoreSafeguards, t.Reason = f.IgnoreSafeguards, f.Reason
		if f.Group != nil {
			if f.Group.Name == "" {
				return t, usageErrorf("%s: group.name is required", o.file)
			}
			t.Group = f.Group.Name
			if f.Group.DN != "" {
				fmt.Fprintf(stderr, "note: %s: group.dn is not sent (a trigger carries the group's name)\n", o.file)
			}
		}
		if f.User != nil {
			t.User = f.User.UPN
			if t.User == "" {
				t.User = f.User.Name
			}
			if t.User == "" {
				return t, usageErrorf("%s: user needs a name or a upn", o.file)
			}
			if f.User.DN != "" {
				fmt.Fprintf(stderr, "note: %s: user.dn is not sent (a trigger carries the user's upn or name)\n", o.file)
			}
		}
	}
	for _, f := range []struct {
		name     string
		dst, src *string
	}{
		{"domain", &t.Domain, &o.domain},
		{"directory", &t.Directory, &o.directory},
		{"tenant", &t.Tenant, &o.tenant},
		{"group", &t.Group, &o.group},
		{"user", &t.User, &o.user},
		{"reason", &t.Reason, &o.reason},
	} {
		if o.file == "" || set[f.name] {
			*f.dst = *f.src
		}
	}
	if o.file == "" || set["ignore-safeguards"] {
		t.IgnoreSafeguards = o.ignoreSafeguards
	}
	return t, nil
}

// triggerFile is the trigger data as DESIGN.md and schemas/ define it. Unknown fields are refused
// rather than dropped: the CLI could not send them.
type triggerFile struct {
	Domain    string `json:"domain"`
	Directory string `json:"directory"`
	Tenant    string `json:"tenant"`
	Group     *struct {
		Name string `json:"name"`
		DN   string `json:"dn"`
	} `json:"group"`
	User *struct {
		Name string `json:"name"`
		UPN  string `json:"upn"`
		DN   string `json:"dn"`
	} `json:"user"`
	IgnoreSafeguards bool   `json:"ignoreSafeguards"`
	Reason           string `json:"reason"`
}

func readTriggerFile(path string, stdin io.Reader) (triggerFile, error) {
	r := stdin
	name := "stdin"
	if path != "-" {
		f, err := os.Open(path) //nolint:gosec // the user names the file on purpose
		if err != nil {
			return triggerFile{}, usageErrorf("--file: %v", err)
		}
		defer f.Close()
		r, name = f, path
	}
	b, err := io.ReadAll(io.LimitReader(r, cenats.MaxDataBytes+1))
	if err != nil {
		return triggerFile{}, usageErrorf("--file: reading %s: %v", name, err)
	}
	if len(b) > cenats.MaxDataBytes {
		return triggerFile{}, usageErrorf("--file: %s is larger than %d bytes", name, cenats.MaxDataBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f triggerFile
	if err := dec.Decode(&f); err != nil {
		return triggerFile{}, usageErrorf("--file: %s is not a JSON object of trigger data (domain, directory, tenant, group, user, ignoreSafeguards, reason): %v", name, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return triggerFile{}, usageErrorf("--file: %s has more than one JSON value (or data after the object)", name)
	}
	return f, nil
}

// encode builds the message and checks it with the worker's own decoder, so that an invalid
// trigger fails here with the reason the worker would dead-letter it with, and is not published.
func (o *publishOptions) encode(t trigger.Trigger) (*nats.Msg, string, error) {
	e, err := trigger.NewEvent(t)
	if err != nil {
		return nil, "", usageErrorf("%v (nothing was published)", err)
	}
	encode := cenats.EncodeBinary
	if o.structured {
		encode = cenats.EncodeStructured
	}
	msg, err := encode(o.conn.triggerSubject, e)
	if err != nil {
		return nil, "", usageErrorf("%v (nothing was published)", err)
	}
	dec, err := trigger.NewDecoder()
	if err != nil {
		return nil, "", err
	}
	if _, err := dec.Decode(msg.Header, msg.Data); err != nil {
		return nil, "", usageErrorf("%v (nothing was published)", err)
	}
	return msg, e.ID(), nil
}

// waiter reports the terminal outcome of one trigger.
type waiter struct {
	id             string
	directory      string // the trigger's directory name, "" when it names a domain
	printID        bool   // print the principal id instead of the event
	stdout, stderr io.Writer
}

// wait waits for the outcome, printing the syncs that start meanwhile as progress.
func (w waiter) wait(ctx context.Context, wt *await.Wait) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case st := <-wt.Started():
			w.started(st)
		case <-wt.Done():
			// A started event dispatched before the result is already buffered: show it first.
			for drained := false; !drained; {
				select {
				case st := <-wt.Started():
					w.started(st)
				default:
					drained = true
				}
			}
			out, err := wt.Result()
			if err != nil {
				return fmt.Errorf("waiting for the result of trigger %s: %w", w.id, err)
			}
			return w.outcome(out)
		}
	}
}

func (w waiter) started(st await.Started) {
	if w.directory == "" || strings.EqualFold(w.directory, st.Data.DirectoryName) {
		fmt.Fprintf(w.stderr, "sync started: directory %s run %s\n", st.Data.DirectoryName, st.Data.RunID)
	}
}

// print writes the result event, or with --print-id the principal's id (nothing when the
// readiness check found none: the exit code and stderr say why).
func (w waiter) print(out await.Outcome) error {
	if w.printID {
		if out.Trigger.PrincipalID == "" {
			return nil
		}
		_, err := fmt.Fprintln(w.stdout, out.Trigger.PrincipalID)
		return err
	}
	b, err := json.MarshalIndent(out.Event, "", "  ")
	if err != nil {
		return fmt.Errorf("printing the result: %w", err)
	}
	_, err = fmt.Fprintf(w.stdout, "%s\n", b)
	return err
}

// readiness says what the readiness check found of a completed sync's group or user, and turns
// "not visible" into its exit code.
func (w waiter) readiness(out await.Outcome) error {
	tr := out.Trigger
	name := cmp.Or(tr.Group, tr.User)
	switch {
	case tr.Visible == nil && tr.Hint != "":
		fmt.Fprintf(w.stderr, "%s: %s\n", name, tr.Hint)
	case tr.Visible == nil:
	case *tr.Visible:
		fmt.Fprintf(w.stderr, "%s is visible in %s: principal id %s\n", name, out.Data.DirectoryName, tr.PrincipalID)
	default:
		return &exitError{code: exitNotVisible, err: fmt.Errorf("the sync of directory %q completed, but %s is not visible: %s",
			out.Data.DirectoryName, name, tr.Hint)}
	}
	return nil
}

// outcome prints a result event and turns the outcome into the command's exit.
func (w waiter) outcome(out await.Outcome) error {
	if out.Kind == await.DeadLettered {
		return &exitError{code: exitFailed, err: fmt.Errorf("the worker rejected trigger %s (%s): %s", w.id, out.DeadCode, out.DeadReason)}
	}
	if err := w.print(out); err != nil {
		return err
	}
	data := out.Data
	if data.Pages > 1 {
		// The event printed is the page of a large run that lists this trigger.
		fmt.Fprintf(w.stderr, "reported in page %d of %d of run %s (%d triggers in the run)\n", data.Page, data.Pages, data.RunID, data.TriggerCount)
	}
	if out.Kind == await.Completed {
		return w.readiness(out)
	}
	msg := fmt.Sprintf("sync of directory %q (run %s) ended %s", data.DirectoryName, data.RunID, data.Status)
	if data.Error != nil {
		msg = fmt.Sprintf("sync of directory %q (run %s) failed: %s: %s", data.DirectoryName, data.RunID, data.Error.Code, data.Error.Message)
	}
	return &exitError{code: exitFailed, err: errors.New(msg)}
}
