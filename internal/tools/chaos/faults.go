package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natsdev"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

type faultKind int

const (
	faultKill faultKind = iota
	faultTerm
	faultNATSRestart
	faultPauseStart
	faultPauseEnd
	faultRevoke
	faultForeign
	faultRotate
	faultLeaderRestart  // cluster: stop the trigger stream's leader node, start it after delay
	faultMajorityOutage // cluster: stop the leader and one more node for delay
)

// clusterSettle bounds how long a cluster fault waits for the cluster to have a meta leader with
// every node current again before it counts as failed.
const clusterSettle = 45 * time.Second

// endpoints are the simulator endpoints the worker calls.
var endpoints = []vidmsim.Endpoint{
	vidmsim.EndpointOAuthToken, vidmsim.EndpointDirectories, vidmsim.EndpointSyncStart, vidmsim.EndpointSyncStatus,
}

// fault is one event of the schedule, fully decided by the seed.
type fault struct {
	at      time.Duration
	kind    faultKind
	replica int           // kill, term
	delay   time.Duration // kill, leader restart: downtime; foreign: sync duration; outage: length
	dir     int           // foreign
	faults  []vidmsim.Fault
}

// planFaults draws the fault schedule for the phase [0, span).
func planFaults(rng *rand.Rand, o Options, span time.Duration) []fault {
	var fs []fault
	jitter := func(d time.Duration) time.Duration { return time.Duration(rng.Int64N(int64(d)+1)) - d/2 }
	within := func(lo, hi float64) time.Duration {
		return time.Duration(lo*float64(span) + rng.Float64()*(hi-lo)*float64(span))
	}
	for t := o.KillEvery; o.KillEvery > 0 && t < span; t += o.KillEvery {
		fs = append(fs, fault{at: t + jitter(o.KillEvery/2), kind: faultKill, replica: rng.IntN(o.Replicas),
			delay: 200*time.Millisecond + time.Duration(rng.Int64N(int64(2*time.Second)))})
	}
	for range o.Terms {
		fs = append(fs, fault{at: within(0.1, 0.9), kind: faultTerm, replica: rng.IntN(o.Replicas)})
	}
	if o.Cluster {
		fs = append(fs, planClusterFaults(rng, o, span, jitter)...)
	} else {
		for i := range o.NATSRestarts {
			fs = append(fs, fault{at: span*time.Duration(i+1)/time.Duration(o.NATSRestarts+1) + jitter(span/10), kind: faultNATSRestart})
		}
	}
	if o.VIDMPause > 0 {
		at := within(0.2, 0.5)
		fs = append(fs, fault{at: at, kind: faultPauseStart}, fault{at: at + o.VIDMPause, kind: faultPauseEnd})
	}
	for t := o.RevokeEvery; o.RevokeEvery > 0 && t < span; t += o.RevokeEvery {
		fs = append(fs, fault{at: t, kind: faultRevoke})
	}
	for range o.ForeignSyncs {
		fs = append(fs, fault{at: within(0, 1), kind: faultForeign, dir: rng.IntN(o.Directories),
			delay: 500*time.Millisecond + time.Duration(rng.Int64N(int64(2500*time.Millisecond)))})
	}
	for t := time.Duration(0); t < span; t += 5 * time.Second {
		fs = append(fs, fault{at: t, kind: faultRotate, faults: drawVIDMFaults(rng, o)})
	}
	slices.SortStableFunc(fs, func(a, b fault) int { return cmp.Compare(a.at, b.at) })
	return fs
}

// planClusterFaults spreads the leader restarts and the majority outage evenly over span, the
// outage in a random slot. The injector runs them one at a time.
func planClusterFaults(rng *rand.Rand, o Options, span time.Duration, jitter func(time.Duration) time.Duration) []fault {
	n := o.LeaderRestarts
	outageSlot := -1
	if o.MajorityOutage > 0 {
		n++
		outageSlot = rng.IntN(n)
	}
	var fs []fault
	for i := range n {
		f := fault{at: span*time.Duration(i+1)/time.Duration(n+1) + jitter(span/10), kind: faultLeaderRestart,
			delay: 500*time.Millisecond + time.Duration(rng.Int64N(int64(1500*time.Millisecond)))}
		if i == outageSlot {
			f.kind, f.delay = faultMajorityOutage, o.MajorityOutage
		}
		fs = append(fs, f)
	}
	return fs
}

// drawVIDMFaults picks, per endpoint, a 5xx or a 429 fault so that on average Error5xxRate of
// requests get a 5xx and ThrottleRate a 429 (the simulator holds one fault per endpoint).
func drawVIDMFaults(rng *rand.Rand, o Options) []vidmsim.Fault {
	out := make([]vidmsim.Fault, len(endpoints))
	total := o.Error5xxRate + o.ThrottleRate
	for i := range endpoints {
		f := vidmsim.Fault{Latency: o.VIDMLatency}
		switch {
		case total <= 0:
		case rng.Float64()*total < o.ThrottleRate:
			f.Status, f.RetryAfter, f.Rate = http.StatusTooManyRequests, time.Duration(1+rng.IntN(2))*time.Second, total
		default:
			f.Status, f.Rate = []int{500, 502, 503, 504}[rng.IntN(4)], total
		}
		out[i] = f
	}
	return out
}

// FaultCounts is what the schedule actually did.
type FaultCounts struct {
	Kills, Terms, ReplicaRestarts, Crashes int
	NATSRestarts, VIDMPauses, Revocations  int
	LeaderRestarts, MajorityOutages        int // cluster
	LeaderMoves                            int // leader restarts after which another node led the stream
	ForeignSyncs, Rotations, Skipped       int
	Errors                                 []string // the harness failed to inject a fault
	CrashNotes                             []string // the last unrequested exit of each replica
}

// injector carries out a fault schedule.
type injector struct {
	sim     *vidmsim.Server
	nats    *natsdev.Server
	cluster *natsdev.Cluster
	reps    replicas
	broker  sync.Mutex // one broker fault at a time

	wg      sync.WaitGroup
	mu      sync.Mutex
	paused  bool
	lastRot []vidmsim.Fault
	counts  FaultCounts
}

// run executes the schedule from start until it ends or ctx is done, then waits for the replica
// actions under way.
func (in *injector) run(ctx context.Context, plan []fault, start time.Time) {
	for _, f := range plan {
		if waitUntil(ctx, start.Add(f.at)) != nil {
			break
		}
		in.apply(ctx, f)
	}
	in.wg.Wait()
}

func (in *injector) apply(ctx context.Context, f fault) {
	switch f.kind {
	case faultKill:
		in.cycle(ctx, f.replica, syscall.SIGKILL, f.delay)
	case faultTerm:
		in.cycle(ctx, f.replica, syscall.SIGTERM, 0)
	case faultNATSRestart:
		err := in.nats.Restart()
		in.record(func(c *FaultCounts) { c.NATSRestarts++ }, err)
	case faultPauseStart:
		in.pause()
	case faultPauseEnd:
		in.resume()
	case faultRevoke:
		in.sim.RevokeTokens()
		in.record(func(c *FaultCounts) { c.Revocations++ }, nil)
	case faultForeign:
		// A refusal (the directory is syncing already) is normal and not counted.
		if in.sim.StartForeignSync(dirID(f.dir), f.delay) == nil {
			in.record(func(c *FaultCounts) { c.ForeignSyncs++ }, nil)
		}
	case faultRotate:
		in.rotate(f.faults)
	case faultLeaderRestart, faultMajorityOutage:
		in.wg.Go(func() { in.clusterFault(ctx, f) })
	}
}

// clusterFault stops the trigger stream's leader node (and, for an outage, the next node too),
// waits f.delay, starts them again on the same ports and stores, and waits until the cluster is
// whole again, so that the next broker fault starts from a healthy cluster.
func (in *injector) clusterFault(ctx context.Context, f fault) {
	in.broker.Lock()
	defer in.broker.Unlock()
	cl := in.cluster
	leader, err := cl.WaitStreamLeader(triggerStream, clusterSettle)
	if err != nil {
		in.record(func(*FaultCounts) {}, err)
		return
	}
	down := []int{leader}
	if f.kind == faultMajorityOutage {
		down = append(down, (leader+1)%cl.Nodes())
	}
	cl.Shutdown(down...)
	moved := false
	if f.kind == faultLeaderRestart {
		// Another node should take over while the leader is down; the downtime counts from then.
		next, err := cl.WaitStreamLeader(triggerStream, 10*time.Second)
		moved = err == nil && next != leader
	}
	_ = waitUntil(ctx, time.Now().Add(f.delay)) // on cancellation, still bring the nodes back
	var errs []error
	for _, i := range down {
		if err := cl.Start(i); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := cl.WaitReady(clusterSettle); err != nil {
			errs = append(errs, err)
		}
	}
	in.record(func(c *FaultCounts) {
		if f.kind == faultMajorityOutage {
			c.MajorityOutages++
			return
		}
		c.LeaderRestarts++
		if moved {
			c.LeaderMoves++
		}
	}, errors.Join(errs...))
}

func (in *injector) record(update func(*FaultCounts), err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	update(&in.counts)
	if err != nil {
		in.counts.Errors = append(in.counts.Errors, err.Error())
	}
}

// cycle stops a replica with sig, waits delay, and starts it again, in the background. A replica
// already being cycled is skipped.
func (in *injector) cycle(ctx context.Context, idx int, sig syscall.Signal, delay time.Duration) {
	r := in.reps[idx]
	if !r.claim() {
		in.record(func(c *FaultCounts) { c.Skipped++ }, nil)
		return
	}
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		defer r.release()
		err := r.stop(ctx, sig)
		in.record(func(c *FaultCounts) {
			if sig == syscall.SIGKILL {
				c.Kills++
			} else {
				c.Terms++
			}
		}, err)
		if waitUntil(ctx, time.Now().Add(delay)) != nil {
			return
		}
		err = r.start()
		in.record(func(c *FaultCounts) { c.ReplicaRestarts++ }, err)
	}()
}

func (in *injector) pause() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.paused = true
	for _, ep := range endpoints {
		in.sim.SetFault(ep, vidmsim.Fault{Hang: true})
	}
	in.counts.VIDMPauses++
}

func (in *injector) resume() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.paused {
		return
	}
	in.paused = false
	in.sim.Resume()
	in.setFaultsLocked(in.lastRot)
}

func (in *injector) rotate(fs []vidmsim.Fault) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.lastRot = fs
	in.counts.Rotations++
	if !in.paused {
		in.setFaultsLocked(fs)
	}
}

func (in *injector) setFaultsLocked(fs []vidmsim.Fault) {
	for i, f := range fs {
		in.sim.SetFault(endpoints[i], f)
	}
}

// calm ends every fault: what the drain phase starts with.
func (in *injector) calm() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.paused = false
	in.sim.ClearFaults()
	in.sim.Resume()
}

// supervise restarts replicas that exited on their own, every second, until ctx ends.
func (in *injector) supervise(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, r := range in.reps {
			if restarted, err := r.ensureRunning(); restarted {
				in.record(func(c *FaultCounts) { c.ReplicaRestarts++ }, err)
			}
		}
	}
}

func (in *injector) snapshot() FaultCounts {
	in.mu.Lock()
	defer in.mu.Unlock()
	c := in.counts
	c.Errors = slices.Clone(c.Errors)
	for _, r := range in.reps {
		_, crashes, err := r.stats()
		c.Crashes += crashes
		if err != nil {
			c.CrashNotes = append(c.CrashNotes, fmt.Sprint(err))
		}
	}
	return c
}
