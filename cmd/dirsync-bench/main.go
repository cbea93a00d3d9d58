// Command dirsync-bench measures the worker against an embedded nats-server and the vIDM
// simulator, each figure beside a baseline from the same run (raw JetStream, the per-pipeline
// script), and writes BENCHMARKS.md and bench.json. It exits non-zero only when a measurement
// could not be carried out; unmet goals are in the report. See internal/tools/bench.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/logging"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/tools/bench"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "dirsync-bench:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet("dirsync-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	short := fs.Bool("short", false, "small sizes that run in seconds")
	out := fs.String("out", "BENCHMARKS.md", "the Markdown report")
	jsonOut := fs.String("json", "bench.json", "the JSON report")
	scen := fs.String("scenarios", "", "comma-separated scenarios to run (default all): "+strings.Join(bench.ScenarioIDs(), ","))
	micro := fs.String("micro", "", "run the microbenchmarks (go test -bench) into the report: true|false (default: true, false with -short)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run (in-process workers included) to this file")
	memprofile := fs.String("memprofile", "", "write a heap profile at the end of the run to this file")
	keep := fs.Bool("keep", false, "keep the work directory (worker logs, JetStream stores)")
	workerBin := fs.String("worker-bin", "", "a built cmd/vidm-sync-worker (default: go build one)")
	verbose := fs.Bool("v", false, "show the in-process workers' warnings")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := bench.Options{Short: *short, Micro: !*short, Keep: *keep, WorkerBin: *workerBin, Out: stdout,
		Command: strings.Join(append([]string{"dirsync-bench"}, args...), " ")}
	if *micro != "" {
		o.Micro = *micro == "true"
	}
	if *scen != "" {
		o.Scenarios = strings.Split(*scen, ",")
	}
	if *verbose {
		log, err := logging.New("text", "warn", stderr)
		if err != nil {
			return err
		}
		o.Logger = log
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	if *memprofile != "" {
		if err := writeHeap(*memprofile); err != nil {
			return err
		}
	}
	if err := os.WriteFile(*out, rep.Markdown(), 0o600); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	js, err := rep.JSON()
	if err != nil {
		return err
	}
	if err := os.WriteFile(*jsonOut, js, 0o600); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	fmt.Fprintf(stdout, "dirsync-bench: wrote %s and %s (%s)\n", *out, *jsonOut, rep.Summary())
	return nil
}

func writeHeap(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer f.Close()
	runtime.GC() // the profile should show what is live, not garbage
	if err := pprof.WriteHeapProfile(f); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return nil
}
