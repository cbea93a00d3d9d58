// Command vidm-sync-demo runs the whole job on one machine with nothing installed: an embedded
// JetStream server, the vIDM simulator and a worker. It publishes bursts of ad.group.created
// triggers for two directories (one burst arriving while the first sync runs), then prints the
// syncs vIDM ran and the result events. It exits non-zero unless every trigger was reported.
//
// With -tenants it shows one worker serving four identity systems at once (vIDM, vRA Cloud,
// vRA 7 and VCF, each a simulator flavor) from a generated tenants file; see tenants.go.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sethvargo/go-envconfig"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/logging"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/devstack"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/worker"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "vidm-sync-demo:", err)
		}
		os.Exit(1)
	}
}

type options struct {
	perDirectory int
	syncDuration time.Duration
	window       time.Duration
	timeout      time.Duration
	verbose      bool
	tenants      bool
	tenantsDir   string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var o options
	fs := flag.NewFlagSet("vidm-sync-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.perDirectory, "triggers", 40, "triggers per directory in each burst")
	fs.DurationVar(&o.syncDuration, "sync-duration", 2*time.Second, "how long the simulated vIDM takes per sync")
	fs.DurationVar(&o.window, "window", 500*time.Millisecond, "the worker's coalescing window")
	fs.DurationVar(&o.timeout, "timeout", time.Minute, "give up if not every trigger is reported by then")
	fs.BoolVar(&o.verbose, "v", false, "show the worker's logs")
	fs.BoolVar(&o.tenants, "tenants", false, fmt.Sprintf("one worker serving four identity systems at once (vidm, vra-cloud, vra7, vcf) from a tenants file; "+
		"its defaults: -triggers %d -sync-duration %s -window %s", tenantsTriggers, tenantsSyncDuration, tenantsWindow))
	fs.StringVar(&o.tenantsDir, "tenants-dir", "", "with -tenants: write the tenants file, its secret files and the CA certificates here and keep them (default: a temporary directory, removed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.tenants {
		// Four backends' worth of triggers and syncs: its own defaults keep it to seconds.
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["triggers"] {
			o.perDirectory = tenantsTriggers
		}
		if !set["sync-duration"] {
			o.syncDuration = tenantsSyncDuration
		}
		if !set["window"] {
			o.window = tenantsWindow
		}
	}
	level := "warn"
	if o.verbose {
		level = "info"
	}
	log, err := logging.New("text", level, stderr)
	if err != nil {
		return err
	}
	if o.tenants {
		return runTenants(ctx, o, stdout, log)
	}

	simCfg := vidmsim.ExampleConfig()
	simCfg.SyncDuration = o.syncDuration
	stack, err := devstack.Start(devstack.Options{Sim: &simCfg, Logger: log})
	if err != nil {
		return err
	}
	defer stack.Close()
	cfg, err := config.Load(ctx, envconfig.MapLookuper(map[string]string{
		"COALESCE_WINDOW":       o.window.String(),
		"POLL_INITIAL_INTERVAL": "200ms",
		"POLL_MAX_INTERVAL":     "500ms",
		"RESULT_SOURCE":         "urn:vidm-sync-worker:demo",
		"ADMIN_ADDR":            "127.0.0.1:0",
	}), true)
	if err != nil {
		return err
	}
	stack.Apply(&cfg)

	js, _, stop, err := startWorker(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(stdout, "embedded NATS %s, vIDM simulator %s, worker running\n\n", cfg.NATSURL, stack.SimURL)
	sent, err := publishBursts(ctx, js, cfg, stack, o, stdout)
	if err != nil {
		return err
	}
	events, err := awaitReported(ctx, js, cfg.ResultStream, sent, o.timeout)
	printSyncs(stdout, stack.Sim.SyncLog())
	printResults(stdout, events)
	reported := coveredIDs(events)
	missing := 0
	for id := range sent {
		if !reported[id] {
			missing++
		}
	}
	fmt.Fprintf(stdout, "\n%d triggers published, %d reported, %d missing; vIDM ran %d syncs and received %d sync POSTs (a per-trigger script would have run %d)\n",
		len(sent), len(sent)-missing, missing, len(stack.Sim.SyncLog()), stack.Sim.Requests(vidmsim.EndpointSyncStart), len(sent))
	visible, notVisible := readiness(events)
	fmt.Fprintf(stdout, "readiness: %d groups visible in vIDM with their ids, %d not visible; %d SCIM lookups\n",
		visible, notVisible, stack.Sim.Requests(vidmsim.EndpointSCIMGroups))
	if err != nil {
		return err
	}
	return nil
}

var directories = []struct{ domain, prefix string }{
	{"corp.example.com", "proj-corp"},
	{"emea.example.com", "proj-emea"},
}

// publishBursts sends one burst per directory, waits until vIDM is syncing, then sends a second
// burst that must be covered by a follow-up sync, not the running one.
func publishBursts(ctx context.Context, js jetstream.JetStream, cfg config.Config, stack *devstack.Stack, o options, out io.Writer) (map[string]bool, error) {
	sent := map[string]bool{}
	burst := func(wave int) error {
		for _, d := range directories {
			for i := range o.perDirectory {
				t := trigger.Trigger{Type: "ad.group.created", Source: "urn:demo:pipeline", Domain: d.domain,
					Group: fmt.Sprintf("%s-wave%d-%03d", d.prefix, wave, i)}
				e, err := trigger.NewEvent(t)
				if err != nil {
					return err
				}
				msg, err := cenats.EncodeBinary("dirsync.trigger.demo", e)
				if err != nil {
					return err
				}
				if _, err := js.PublishMsg(ctx, msg); err != nil {
					return err
				}
				sent[e.ID()] = true
			}
		}
		fmt.Fprintf(out, "wave %d: published %d ad.group.created triggers for %d directories\n", wave, o.perDirectory*len(directories), len(directories))
		return nil
	}
	if err := burst(1); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(o.timeout)
	for len(stack.Sim.SyncLog()) == 0 {
		if time.Now().After(deadline) {
			return sent, errors.New("no sync started in time")
		}
		select {
		case <-ctx.Done():
			return sent, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return sent, burst(2)
}

type resultEvent struct {
	typ  string
	data contract.Data
}

// awaitReported reads the results stream from its start until every sent id is in a terminal
// result or the timeout passes.
func awaitReported(ctx context.Context, js jetstream.JetStream, stream string, sent map[string]bool, timeout time.Duration) ([]resultEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	var events []resultEvent
	left := len(sent)
	for left > 0 {
		m, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			return events, fmt.Errorf("%d triggers not reported within %s: %w", left, timeout, err)
		}
		e, err := cenats.Decode(m.Headers(), m.Data())
		if err != nil {
			return events, err
		}
		var d contract.Data
		if err := json.Unmarshal(e.Data(), &d); err != nil {
			return events, err
		}
		events = append(events, resultEvent{typ: e.Type(), data: d})
		for _, t := range d.Triggers {
			if sent[t.ID] && e.Type() != contract.TypeStarted {
				left--
			}
		}
	}
	return events, nil
}

// readiness counts the covered groups the worker found in vIDM after their sync, and those it
// did not.
func readiness(events []resultEvent) (visible, notVisible int) {
	for _, e := range events {
		for _, t := range e.data.Triggers {
			switch {
			case t.Visible == nil:
			case *t.Visible:
				visible++
			default:
				notVisible++
			}
		}
	}
	return visible, notVisible
}

func coveredIDs(events []resultEvent) map[string]bool {
	m := map[string]bool{}
	for _, e := range events {
		if e.typ == contract.TypeStarted {
			continue
		}
		for _, t := range e.data.Triggers {
			m[t.ID] = true
		}
	}
	return m
}

func printSyncs(out io.Writer, log []vidmsim.SyncRecord) {
	fmt.Fprintf(out, "\nSyncs the vIDM simulator ran:\n")
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  DIRECTORY\tSTARTED\tFINISHED\tSTATUS\tSTARTED BY RUN")
	for _, r := range log {
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", r.DirectoryName, r.StartedAt.Format("15:04:05.000"), r.FinishedAt.Format("15:04:05.000"), r.Status, r.RequestID)
	}
	_ = w.Flush()
}

func printResults(out io.Writer, events []resultEvent) {
	fmt.Fprintf(out, "\nResult events on the results stream:\n")
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "  TYPE\tDIRECTORY\tRUN\tTRIGGERS\tDURATION")
	for _, e := range events {
		n, dur := "", ""
		if e.typ != contract.TypeStarted {
			n, dur = fmt.Sprint(len(e.data.Triggers)), (time.Duration(e.data.DurationMs) * time.Millisecond).String()
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", e.typ, e.data.DirectoryName, e.data.RunID, n, dur)
	}
	_ = w.Flush()
}

// startWorker runs a worker on cfg and connects to its NATS server; stop closes the connection,
// then stops the worker and waits for it. workerDone delivers the worker's end, if it ends first.
func startWorker(ctx context.Context, cfg config.Config, log *slog.Logger) (js jetstream.JetStream, workerDone <-chan error, stop func(), err error) {
	wctx, stopWorker := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- worker.Run(wctx, cfg, log) }()
	stopRun := func() { stopWorker(); <-done }
	nc, err := nats.Connect(cfg.NATSURL)
	if err != nil {
		stopRun()
		return nil, nil, nil, err
	}
	js, err = jetstream.New(nc)
	if err != nil {
		nc.Close()
		stopRun()
		return nil, nil, nil, err
	}
	return js, done, func() { nc.Close(); stopRun() }, nil
}
