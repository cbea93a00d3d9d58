package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/devstack"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natsdev"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// env is the running stack: broker, simulator, replicas and the harness's own connection.
type env struct {
	o       Options
	dir     string
	nats    *natsdev.Server  // single server; nil with Options.Cluster
	cluster *natsdev.Cluster // with Options.Cluster
	stack   *devstack.Stack
	secret  string
	reps    replicas
	nc      *nats.Conn
	js      jetstream.JetStream
}

// Run performs one chaos run and reports what it observed. The error is for a run that could
// not be carried out; broken guarantees are in Report.Violations.
func Run(ctx context.Context, o Options) (Report, error) {
	o = o.withDefaults()
	began := time.Now()
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x9e3779b97f4a7c15)) //nolint:gosec // G115: the seed's bits are wanted, not its value
	loadPlan := planLoad(rng, o, o.Duration*4/5)
	faultPlan := planFaults(rng, o, o.Duration)
	secret := fmt.Sprintf("chaos-client-secret-%016x", rng.Uint64())

	dir, removeDir, err := workDir(o)
	if err != nil {
		return Report{}, err
	}
	defer removeDir()
	e := &env{o: o, dir: dir, secret: secret}
	defer e.close()
	if err := e.start(ctx); err != nil {
		return Report{}, err
	}
	rep := Report{Planned: len(loadPlan), Faults: FaultCounts{}, Cluster: o.Cluster}
	for _, p := range loadPlan {
		if p.invalid != validTrigger {
			rep.InvalidPlanned++
		}
	}
	obs, err := e.exercise(ctx, loadPlan, faultPlan, &rep)
	if err != nil {
		return rep, err
	}
	analyze(obs, &rep)
	rep.Total = time.Since(began)
	return rep, nil
}

func workDir(o Options) (string, func(), error) {
	if o.WorkDir != "" {
		return o.WorkDir, func() {}, os.MkdirAll(o.WorkDir, 0o700)
	}
	d, err := os.MkdirTemp("", "vidm-sync-chaos-")
	if err != nil {
		return "", nil, err
	}
	if o.KeepWorkDir {
		fmt.Fprintln(o.Out, "work directory (kept):", d)
		return d, func() {}, nil
	}
	return d, func() { _ = os.RemoveAll(d) }, nil
}

// start builds the worker if needed and starts the broker, the simulator and the replicas.
func (e *env) start(ctx context.Context) error {
	bin := e.o.WorkerBin
	if bin == "" {
		var err error
		if bin, err = buildWorker(ctx, e.dir); err != nil {
			return err
		}
	}
	var err error
	if e.o.Cluster {
		e.cluster, err = natsdev.StartCluster(natsdev.ClusterOptions{Nodes: clusterNodes, Name: "chaos", StoreDir: filepath.Join(e.dir, "jetstream"),
			MaxPayload: e.o.MaxPayload})
	} else {
		e.nats, err = natsdev.Start(natsdev.Options{StoreDir: filepath.Join(e.dir, "jetstream"), MaxPayload: e.o.MaxPayload})
	}
	if err != nil {
		return err
	}
	sc := simConfig(e.o, e.secret)
	if e.stack, err = devstack.Start(devstack.Options{StoreDir: e.dir, Sim: &sc, ExternalNATS: true}); err != nil {
		return err
	}
	for i := range e.o.Replicas {
		name := fmt.Sprintf("replica-%d", i)
		e.reps = append(e.reps, newReplica(name, bin, e.dir, e.workerEnv(name)))
		if err := e.reps[i].start(); err != nil {
			return err
		}
	}
	if e.nc, err = nats.Connect(e.natsURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.Name("vidm-sync-chaos")); err != nil {
		return err
	}
	if e.js, err = jetstream.New(e.nc); err != nil {
		return err
	}
	return e.waitConsumer(ctx)
}

// close stops everything started, in reverse order; safe on a partial start.
func (e *env) close() {
	e.reps.killAll()
	if e.nc != nil {
		e.nc.Close()
	}
	if e.stack != nil {
		e.stack.Close()
	}
	if e.nats != nil {
		e.nats.Shutdown()
	}
	if e.cluster != nil {
		e.cluster.Shutdown()
	}
}

// natsURL is the broker's client URL; every node's, comma-separated, for a cluster.
func (e *env) natsURL() string {
	if e.cluster != nil {
		return e.cluster.URLs()
	}
	return e.nats.URL()
}

func simConfig(o Options, secret string) vidmsim.Config {
	cfg := vidmsim.Config{
		Clients:      []vidmsim.Client{{ID: "vidm-sync-worker", Secret: secret}},
		TokenTTL:     time.Hour,
		SyncDuration: o.SyncDuration,
		Seed:         o.Seed,
	}
	for i := range o.Directories {
		cfg.Directories = append(cfg.Directories, vidmsim.Directory{ID: dirID(i), Name: dirName(i), Domains: []string{dirDomain(i)}})
	}
	return cfg
}

func (e *env) workerEnv(name string) []string {
	env := []string{
		"NATS_URL=" + e.natsURL(),
		"NATS_CLIENT_NAME=" + name,
		"VIDM_URL=" + e.stack.SimURL,
		"VIDM_CA_FILE=" + e.stack.CAFile,
		"VIDM_CLIENT_ID=vidm-sync-worker",
		"VIDM_CLIENT_SECRET=" + e.secret,
		"COALESCE_WINDOW=200ms",
		"POLL_INITIAL_INTERVAL=100ms",
		"POLL_MAX_INTERVAL=500ms",
		"LEASE_TTL=3s",
		"ACK_WAIT=5s",
		"SYNC_DEADLINE=2m",
		"LOG_FORMAT=json",
		"LOG_LEVEL=" + e.o.WorkerLogLevel,
		"RESULT_SOURCE=urn:vidm-sync-chaos:" + name,
		"ADMIN_ADDR=127.0.0.1:0",
	}
	if e.cluster != nil {
		env = append(env, fmt.Sprintf("STREAM_REPLICAS=%d", clusterNodes))
	}
	return env
}

// buildWorker builds cmd/vidm-sync-worker from the module that contains the working directory.
func buildWorker(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "vidm-sync-worker")
	bctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(bctx, "go", "build", "-o", bin, "./cmd/vidm-sync-worker")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the worker: %w\n%s", err, out)
	}
	return bin, nil
}

func moduleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("no go.mod above the working directory: pass the worker binary")
		}
		d = parent
	}
}

// waitConsumer waits until a replica has created the streams and the trigger consumer.
func (e *env) waitConsumer(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := e.js.Consumer(cctx, triggerStream, consumerName)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the workers did not create their consumer within 30s: %w", err)
		}
		if err := waitUntil(ctx, time.Now().Add(100*time.Millisecond)); err != nil {
			return err
		}
	}
}

// exercise runs the load and the faults, drains, stops the replicas and collects what the checks
// read.
func (e *env) exercise(ctx context.Context, loadPlan []planned, faultPlan []fault, rep *Report) (observations, error) {
	// On every return, the background goroutines end before the caller's cleanup runs.
	runCtx, cancelRun := context.WithCancel(ctx)
	fctx, stopFollow := context.WithCancel(runCtx)
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancelRun()
	defer stopFollow()
	fol := newFollower(e.js)
	bg.Go(func() { fol.run(fctx) })
	inj := &injector{sim: e.stack.Sim, nats: e.nats, cluster: e.cluster, reps: e.reps}
	bg.Go(func() { inj.supervise(fctx) })

	start := time.Now()
	fmt.Fprintf(e.o.Out, "chaos: %d triggers, %d faults scheduled over %s\n", len(loadPlan), len(faultPlan), e.o.Duration)
	injDone := make(chan struct{})
	bg.Go(func() { defer close(injDone); inj.run(runCtx, faultPlan, start) })
	sentList, err := publishAll(runCtx, e.js, loadPlan, start)
	if err != nil {
		return observations{}, fmt.Errorf("publishing: %w", err)
	}
	<-injDone // every wait in the injector is bounded
	rep.LoadPhase = time.Since(start)
	inj.calm()
	fmt.Fprintf(e.o.Out, "chaos: load and faults done after %s; draining\n", rep.LoadPhase.Round(time.Second))

	drainStart := time.Now()
	rep.DrainTimedOut = !e.drain(ctx, fol, sentList)
	rep.DrainPhase = time.Since(drainStart)
	stopFollow()
	rep.Faults = inj.snapshot()
	e.stopReplicas(ctx)
	return e.collect(ctx, sentList, fol)
}

// drain waits until every accepted trigger is reported and every invalid one dead-lettered, then
// a little longer so that a duplicate report would show; false if DrainTimeout passed first.
func (e *env) drain(ctx context.Context, fol *follower, sentList []sent) bool {
	var valid []string
	invalid := map[uint64]bool{}
	for _, s := range sentList {
		switch {
		case s.acked && s.invalid == validTrigger:
			valid = append(valid, s.id)
		case s.acked:
			invalid[s.seq] = true
		}
	}
	deadline := time.Now().Add(e.o.DrainTimeout)
	for time.Now().Before(deadline) {
		if fol.missing(valid) == 0 && e.allDead(ctx, invalid) {
			_ = waitUntil(ctx, time.Now().Add(3*time.Second))
			return true
		}
		if waitUntil(ctx, time.Now().Add(500*time.Millisecond)) != nil {
			return false
		}
	}
	return false
}

func (e *env) allDead(ctx context.Context, invalid map[uint64]bool) bool {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	dead, err := readDead(cctx, e.js)
	if err != nil {
		return false
	}
	got := map[uint64]bool{}
	for _, d := range dead {
		got[d.origSeq] = true
	}
	for seq := range invalid {
		if !got[seq] {
			return false
		}
	}
	return true
}

// stopReplicas sends SIGTERM to every replica at once and waits (bounded) for them to exit.
func (e *env) stopReplicas(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range e.reps {
		wg.Go(func() { _ = r.stop(ctx, syscall.SIGTERM) })
	}
	wg.Wait()
}

func (e *env) collect(ctx context.Context, sentList []sent, fol *follower) (observations, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := readResults(cctx, e.js)
	if err != nil {
		return observations{}, fmt.Errorf("reading results: %w", err)
	}
	dead, err := readDead(cctx, e.js)
	if err != nil {
		return observations{}, fmt.Errorf("reading dead letters: %w", err)
	}
	obs := observations{o: e.o, sent: sentList, results: res, dead: dead, arrivals: fol.arrivals(), sim: e.stack.Sim,
		secrets: append([]string{e.secret}, e.stack.Sim.IssuedTokens()...)}
	for _, r := range e.reps {
		obs.logs = append(obs.logs, r.logPath)
	}
	return obs, nil
}
