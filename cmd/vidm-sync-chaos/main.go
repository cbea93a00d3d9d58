// Command vidm-sync-chaos is `make chaos`: it runs worker replicas as OS processes against an
// embedded JetStream server (with -cluster, a three-node cluster) and the vIDM simulator, injects faults on a seeded schedule while it
// publishes a seeded load, then checks the guarantees and prints a table. It exits 1 when an
// invariant breaks, 2 when the run itself could not be carried out.
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

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/tools/chaos"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	o.Out = stdout
	rep, err := chaos.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "vidm-sync-chaos:", err)
		return 2
	}
	rep.WriteTable(stdout)
	if len(rep.Violations()) > 0 {
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (chaos.Options, error) {
	fs := flag.NewFlagSet("vidm-sync-chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	short := fs.Bool("short", false, "the short variant (`make test`'s): 600 triggers, 8 directories, 35 s of faults")
	d := chaos.Defaults()
	if err := fs.Parse(preScanShort(args)); err == nil && *short {
		d = chaos.Short()
	}
	fs = flag.NewFlagSet("vidm-sync-chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := d
	fs.Bool("short", false, "the short variant (`make test`'s): 600 triggers and a burst of 4,000 on a 64 KiB max_payload, 8 directories, 35 s of faults; other flags override it")
	fs.Int64Var(&o.Seed, "seed", d.Seed, "seed of the load and the fault schedule")
	fs.IntVar(&o.Triggers, "triggers", d.Triggers, "triggers to publish, invalid ones included")
	fs.IntVar(&o.Directories, "directories", d.Directories, "vIDM directories")
	fs.Float64Var(&o.InvalidRate, "invalid-rate", d.InvalidRate, "share of invalid triggers")
	fs.DurationVar(&o.Duration, "duration", d.Duration, "load and fault phase (the drain comes after)")
	fs.IntVar(&o.Replicas, "replicas", d.Replicas, "worker replicas (OS processes)")
	fs.DurationVar(&o.KillEvery, "kill-every", d.KillEvery, "SIGKILL a random replica this often, then restart it (0: never)")
	fs.IntVar(&o.Terms, "terms", d.Terms, "SIGTERMs of a random replica, each followed by a restart")
	fs.IntVar(&o.NATSRestarts, "nats-restarts", d.NATSRestarts, "restarts of the NATS server (single server)")
	fs.BoolVar(&o.Cluster, "cluster", d.Cluster, "run a three-node JetStream cluster with R3 streams and buckets; its broker faults are -leader-restarts and -majority-outage")
	fs.IntVar(&o.LeaderRestarts, "leader-restarts", d.LeaderRestarts, "with -cluster: restarts of the trigger stream's leader node")
	fs.DurationVar(&o.MajorityOutage, "majority-outage", d.MajorityOutage, "with -cluster: once, stop two of the three nodes this long (0: never)")
	fs.DurationVar(&o.VIDMPause, "vidm-pause", d.VIDMPause, "one vIDM pause: every request hangs this long (0: none)")
	fs.DurationVar(&o.RevokeEvery, "revoke-every", d.RevokeEvery, "revoke every vIDM token this often (0: never)")
	fs.IntVar(&o.ForeignSyncs, "foreign-syncs", d.ForeignSyncs, "syncs started in vIDM by someone else")
	fs.Float64Var(&o.Error5xxRate, "error-rate", d.Error5xxRate, "share of vIDM requests answered 5xx")
	fs.Float64Var(&o.ThrottleRate, "throttle-rate", d.ThrottleRate, "share of vIDM requests answered 429 with Retry-After")
	fs.DurationVar(&o.VIDMLatency, "vidm-latency", d.VIDMLatency, "latency added to every vIDM request")
	fs.DurationVar(&o.SyncDuration, "sync-duration", d.SyncDuration, "how long a simulated sync runs")
	fs.IntVar(&o.LargeBurst, "large-burst", d.LargeBurst, "triggers published at once a third into the load, for the first -large-burst-dirs directories (0: none)")
	fs.IntVar(&o.LargeBurstDirs, "large-burst-dirs", d.LargeBurstDirs, "directories the large burst is for")
	var maxPayload int
	fs.IntVar(&maxPayload, "max-payload", int(d.MaxPayload), "the broker's max_payload in bytes (0: NATS's default, 1 MiB)")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", d.DrainTimeout, "how long to wait for every result after the faults stop")
	fs.StringVar(&o.WorkerBin, "worker-bin", "", "prebuilt vidm-sync-worker binary (default: go build from this module)")
	fs.StringVar(&o.WorkDir, "work-dir", "", "directory for the store, CA and replica logs (default: temporary, removed)")
	fs.BoolVar(&o.KeepWorkDir, "keep", false, "keep the temporary work directory (replica logs)")
	fs.StringVar(&o.WorkerLogLevel, "worker-log-level", d.WorkerLogLevel, "LOG_LEVEL of the replicas")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if maxPayload < 0 || maxPayload > 64<<20 {
		return o, fmt.Errorf("-max-payload %d: want 0 to 64 MiB", maxPayload)
	}
	o.MaxPayload = int32(maxPayload) //nolint:gosec // G115: bounded just above
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "vidm-sync-chaos: unexpected arguments:", fs.Args())
		return o, errors.New("unexpected arguments")
	}
	return o, nil
}

// preScanShort keeps only -short/--short, so that the first pass picks the defaults before the
// other flags override them.
func preScanShort(args []string) []string {
	var out []string
	for _, a := range args {
		switch a {
		case "-short", "--short", "-short=true", "--short=true":
			out = append(out, a)
		}
	}
	return out
}
