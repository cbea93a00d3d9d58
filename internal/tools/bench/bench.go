// Package bench measures the worker side by side with what it is compared with: raw JetStream
// (ingest and reaction latency) and the per-pipeline script it replaces (vIDM cost of a burst).
// Every figure comes with a baseline measured in the same run, because absolute times vary between
// machines; goals are reported as met or not, never enforced here. `make bench` runs it through
// cmd/dirsync-bench; TestShortScenarios runs the short sizes and checks the invariants.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"
)

// Options selects and sizes a run.
type Options struct {
	Short     bool     // sizes that run in seconds (the test's and a smoke run's)
	Scenarios []string // IDs from ScenarioIDs; empty: all
	Micro     bool     // run the microbenchmarks and paste their output into the report
	Keep      bool     // leave the work directory (logs, JetStream stores) behind
	WorkDir   string   // "" : a new temporary directory
	WorkerBin string   // a built cmd/vidm-sync-worker; "" builds one when a scenario needs processes
	Command   string   // the command line, for the report
	Logger    *slog.Logger
	Out       io.Writer // progress lines; nil discards
}

// scenario is one entry of the suite.
type scenario struct {
	id    string
	title string
	run   func(ctx context.Context, r *runner) (Scenario, error)
}

func suite() []scenario {
	return []scenario{
		{"ingest", "1. Ingest throughput", runIngest},
		{"latency", "2. Reaction latency", runLatency},
		{"burst", "3. vIDM cost of a burst", runBurst},
		{"memory", "4. Memory and scale", runMemory},
		{"horizontal", "5. Horizontal: 1, 2 and 3 replicas", runHorizontal},
		{"large", "6. One directory, 100,000 triggers during its sync", runLarge},
		{"polling", "7. Polling: how late the end of a sync is seen", runPolling},
	}
}

// ScenarioIDs lists the scenario names -scenarios accepts, in run order.
func ScenarioIDs() []string {
	var out []string
	for _, s := range suite() {
		out = append(out, s.id)
	}
	return out
}

// runner is what the scenarios share within one run.
type runner struct {
	o   Options
	dir string
	log *slog.Logger
	bin string // the worker binary, built on first use
}

func (r *runner) progress(format string, args ...any) {
	if r.o.Out != nil {
		fmt.Fprintf(r.o.Out, "bench: "+format+"\n", args...)
	}
}

// subdir makes a fresh directory for one part of a scenario.
func (r *runner) subdir(name string) (string, error) {
	d, err := os.MkdirTemp(r.dir, name+"-")
	if err != nil {
		return "", fmt.Errorf("work directory: %w", err)
	}
	return d, nil
}

// Run runs the selected scenarios and returns the report. The error is for a harness failure (a
// scenario that could not be carried out); unmet goals and broken invariants are in the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	selected := suite()
	if len(o.Scenarios) > 0 {
		known := ScenarioIDs()
		for _, id := range o.Scenarios {
			if !slices.Contains(known, id) {
				return nil, fmt.Errorf("unknown scenario %q (known: %s)", id, strings.Join(known, ", "))
			}
		}
		selected = slices.DeleteFunc(selected, func(s scenario) bool { return !slices.Contains(o.Scenarios, s.id) })
	}
	dir, cleanup, err := workDir(o)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	r := &runner{o: o, dir: dir, log: o.Logger, bin: o.WorkerBin}
	rep := &Report{Command: o.Command, Machine: machine(), Date: time.Now().UTC(), Short: o.Short}
	began := time.Now()
	for _, s := range selected {
		r.progress("%s …", s.title)
		start := time.Now()
		sc, err := s.run(ctx, r)
		if err != nil {
			return rep, fmt.Errorf("scenario %s: %w", s.id, err)
		}
		sc.ID, sc.Title, sc.Elapsed = s.id, s.title, Duration(time.Since(start))
		rep.Scenarios = append(rep.Scenarios, sc)
		r.progress("%s done in %s", s.title, time.Since(start).Round(time.Second))
	}
	if o.Micro {
		r.progress("microbenchmarks …")
		out, err := microbenchmarks(ctx)
		if err != nil {
			return rep, err
		}
		rep.Micro = out
	}
	rep.WallTime = Duration(time.Since(began))
	return rep, nil
}

func workDir(o Options) (string, func(), error) {
	if o.WorkDir != "" {
		return o.WorkDir, func() {}, os.MkdirAll(o.WorkDir, 0o700)
	}
	d, err := os.MkdirTemp("", "dirsync-bench-")
	if err != nil {
		return "", nil, fmt.Errorf("work directory: %w", err)
	}
	if o.Keep {
		if o.Out != nil {
			fmt.Fprintln(o.Out, "bench: work directory (kept):", d)
		}
		return d, func() {}, nil
	}
	return d, func() { _ = os.RemoveAll(d) }, nil
}

// size picks the full or the short size.
func (r *runner) size(full, short int) int {
	if r.o.Short {
		return short
	}
	return full
}

func (r *runner) dur(full, short time.Duration) time.Duration {
	if r.o.Short {
		return short
	}
	return full
}

// errTimeout marks a wait that ran past its deadline.
var errTimeout = errors.New("timed out")
