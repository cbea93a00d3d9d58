// Package chaos is the fault-injection harness behind `make chaos`: an embedded JetStream server
// (file storage, restarted in place), the vIDM simulator with faults on, and several worker
// replicas as real OS processes. It publishes a seeded random load while a seeded fault schedule
// kills, stops and restarts replicas, restarts the broker, pauses vIDM, revokes tokens and starts
// foreign syncs; then it drains and checks the guarantees of DESIGN.md from what the simulator
// and the streams recorded.
//
// With Options.Cluster the broker is a three-node JetStream cluster on loopback instead, the
// streams and buckets are R3, and the broker faults are restarts of the trigger stream's leader
// node and one outage of a majority (two of three nodes) for a few seconds.
//
// The load and the fault schedule are reproducible from Options.Seed; the interleaving with the
// operating system's timing is not.
package chaos

import (
	"io"
	"log/slog"
	"time"
)

// Options configures a chaos run. Zero values take the defaults of Defaults.
type Options struct {
	Seed        int64
	Triggers    int     // triggers published, invalid ones included
	Directories int     // vIDM directories "Dir 00".. with domains d00.example.com..
	InvalidRate float64 // share of triggers that are invalid and must be dead-lettered
	// Duration is the fault and load phase; the drain phase comes after it.
	Duration time.Duration
	Replicas int

	KillEvery    time.Duration // SIGKILL a random replica this often (then restart it)
	Terms        int           // SIGTERMs of a random replica (then restart it)
	NATSRestarts int           // restarts of the broker (single server)
	// Cluster runs a three-node JetStream cluster with R3 streams and buckets instead of one
	// server. Its broker faults replace NATSRestarts: LeaderRestarts and MajorityOutage.
	Cluster        bool
	LeaderRestarts int           // cluster: stop the trigger stream's leader node, then start it again
	MajorityOutage time.Duration // cluster: once, stop two of the three nodes this long; 0: never
	VIDMPause      time.Duration // one pause of vIDM (every request hangs); 0: none
	RevokeEvery    time.Duration // revoke every vIDM token this often
	ForeignSyncs   int           // syncs started in vIDM by "someone else"
	Error5xxRate   float64       // share of vIDM requests answered 5xx
	ThrottleRate   float64       // share of vIDM requests answered 429 with Retry-After
	VIDMLatency    time.Duration // added to every vIDM request
	SyncDuration   time.Duration // how long a simulated sync runs
	// LargeBurst triggers are published at once, a third into the load, for the first
	// LargeBurstDirs directories: runs of thousands of triggers, reported in pages, while the
	// faults go on. 0: no large burst.
	LargeBurst, LargeBurstDirs int
	// MaxPayload is the broker's max_payload; 0: NATS's default (1 MiB). A small one makes the
	// large burst's runs span many pages.
	MaxPayload     int32
	DrainTimeout   time.Duration // after the faults stop, how long to wait for every trigger's result
	WorkerBin      string        // prebuilt worker binary; "": built from the module
	WorkDir        string        // store, CA and replica logs; "": a temporary directory, removed
	KeepWorkDir    bool          // keep the temporary WorkDir (for reading replica logs)
	WorkerLogLevel string        // LOG_LEVEL of the replicas

	Out io.Writer    // progress lines; nil: none
	Log *slog.Logger // the harness's own log; nil: discard
}

// Defaults is the full run of `make chaos`.
func Defaults() Options {
	return Options{
		Seed: 1, Triggers: 5000, Directories: 20, InvalidRate: 0.02,
		Duration: 90 * time.Second, Replicas: 3,
		KillEvery: 6 * time.Second, Terms: 2, NATSRestarts: 2,
		LeaderRestarts: 3, MajorityOutage: 5 * time.Second,
		VIDMPause: 20 * time.Second, RevokeEvery: time.Minute, ForeignSyncs: 20,
		Error5xxRate: 0.10, ThrottleRate: 0.05, VIDMLatency: 5 * time.Millisecond,
		SyncDuration: 800 * time.Millisecond, DrainTimeout: 2 * time.Minute,
		LargeBurst: 40_000, LargeBurstDirs: 3,
		WorkerLogLevel: "debug",
	}
}

// Short is the variant `make test` runs: well under three minutes.
func Short() Options {
	o := Defaults()
	o.Triggers, o.Directories = 600, 8
	o.Duration = 35 * time.Second
	o.KillEvery, o.Terms, o.NATSRestarts = 8*time.Second, 1, 1
	o.VIDMPause, o.RevokeEvery, o.ForeignSyncs = 3*time.Second, 10*time.Second, 6
	o.SyncDuration = 500 * time.Millisecond
	o.DrainTimeout = 90 * time.Second
	o.LargeBurst, o.LargeBurstDirs, o.MaxPayload = 4_000, 2, 64<<10
	return o
}

// ShortCluster is the cluster variant `make test` runs: a smaller load than Short, one restart
// of the stream leader and one majority outage.
func ShortCluster() Options {
	o := Short()
	o.Cluster = true
	o.Triggers, o.Directories = 400, 6
	o.Duration = 35 * time.Second
	o.LeaderRestarts, o.MajorityOutage = 1, 5*time.Second
	o.LargeBurst = 0 // TestShortChaos has it; make test's time goes to the cluster's own faults
	return o
}

// clusterNodes is the size of the cluster of Options.Cluster.
const clusterNodes = 3

// withDefaults fills zero fields from Defaults.
func (o Options) withDefaults() Options {
	d := Defaults()
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt(&o.Triggers, d.Triggers)
	setInt(&o.Directories, d.Directories)
	o.LargeBurstDirs = min(max(o.LargeBurstDirs, 1), o.Directories)
	setInt(&o.Replicas, d.Replicas)
	setDur(&o.Duration, d.Duration)
	setDur(&o.SyncDuration, d.SyncDuration)
	setDur(&o.DrainTimeout, d.DrainTimeout)
	if o.WorkerLogLevel == "" {
		o.WorkerLogLevel = d.WorkerLogLevel
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	return o
}
