package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

const mib = 1 << 20

// memSample is one look at a worker process.
type memSample struct {
	rss, peak  uint64 // bytes: VmRSS, VmHWM
	goroutines int
	heapInuse  float64
}

func sampleProc(ctx context.Context, p *proc) (memSample, error) {
	rss, peak, err := memStatus(p.cmd.Process.Pid)
	if err != nil {
		return memSample{}, err
	}
	m, err := scrape(ctx, p.metricsURL(), "go_goroutines", "go_memstats_heap_inuse_bytes")
	if err != nil {
		return memSample{}, err
	}
	return memSample{rss: rss, peak: peak, goroutines: int(m["go_goroutines"]), heapInuse: m["go_memstats_heap_inuse_bytes"]}, nil
}

// settle samples the process until its goroutine count and RSS have stopped falling for a
// second (or limit passes), and returns the last sample.
func settle(ctx context.Context, p *proc, limit time.Duration) (memSample, error) {
	const every, quiet = 250 * time.Millisecond, 4
	deadline := time.Now().Add(limit)
	prev, err := sampleProc(ctx, p)
	if err != nil {
		return memSample{}, err
	}
	still := 0
	for still < quiet && time.Now().Before(deadline) {
		if err := waitUntil(ctx, time.Now().Add(every)); err != nil {
			return prev, err
		}
		s, err := sampleProc(ctx, p)
		if err != nil {
			return prev, err
		}
		if s.goroutines < prev.goroutines || s.rss < prev.rss {
			still = 0
		} else {
			still++
		}
		prev = s
	}
	return prev, nil
}

func runMemory(ctx context.Context, r *runner) (Scenario, error) {
	n, dirs := r.size(10_000, 1_000), r.size(1_000, 100)
	settleFor := r.dur(30*time.Second, 5*time.Second)
	dir, err := r.subdir("memory")
	if err != nil {
		return Scenario{}, err
	}
	st, err := startStack(dir, simConfig(dirs, 0), true)
	if err != nil {
		return Scenario{}, err
	}
	defer st.close()

	// Phase 1: a window of an hour keeps every accepted trigger pending.
	vars := st.env(map[string]string{"COALESCE_WINDOW": "1h"})
	cfg, err := loadConfig(ctx, vars)
	if err != nil {
		return Scenario{}, err
	}
	ps, err := r.startProcs(ctx, 1, dir, vars)
	if err != nil {
		return Scenario{}, err
	}
	defer func() { _ = ps.stop() }()
	p := ps[0]
	if err := poll(ctx, 30*time.Second, 20*time.Millisecond, "worker consumer", func() (bool, error) {
		_, err := st.js.Consumer(ctx, cfg.TriggerStream, cfg.Consumer)
		return err == nil, nil
	}); err != nil {
		return Scenario{}, err
	}
	idle, err := settle(ctx, p, settleFor)
	if err != nil {
		return Scenario{}, err
	}
	ids, err := st.publishAll(ctx, n, dirs)
	if err != nil {
		return Scenario{}, err
	}
	got := 0
	if err := poll(ctx, 5*time.Minute, 100*time.Millisecond, "all triggers pending", func() (bool, error) {
		got, err = accepted(ctx, ps)
		return got >= n, err
	}); err != nil {
		return Scenario{}, err
	}
	load, err := sampleProc(ctx, p)
	if err != nil {
		return Scenario{}, err
	}
	pendingKeys, err := countKeys(ctx, st.js, cfg.PendingBucket)
	if err != nil {
		return Scenario{}, err
	}
	if err := ps.stop(); err != nil {
		return Scenario{}, err
	}

	// Phase 2: the same store, a worker with window 0 syncs everything; measured once all is
	// reported and the process has settled.
	dir2, err := r.subdir("memory-run")
	if err != nil {
		return Scenario{}, err
	}
	fol, err := followResults(ctx, st.js, cfg.ResultStream)
	if err != nil {
		return Scenario{}, err
	}
	defer fol.stop()
	ps2, err := r.startProcs(ctx, 1, dir2, st.env(map[string]string{"COALESCE_WINDOW": "0s", "POLL_INITIAL_INTERVAL": "10ms", "POLL_MAX_INTERVAL": "50ms"}))
	if err != nil {
		return Scenario{}, err
	}
	defer func() { _ = ps2.stop() }()
	runStart := time.Now()
	if err := poll(ctx, 10*time.Minute, 100*time.Millisecond, "every pending trigger reported", func() (bool, error) {
		return fol.missing(ids) == 0, nil
	}); err != nil {
		return Scenario{}, err
	}
	runFor := time.Since(runStart)
	during, err := sampleProc(ctx, ps2[0])
	if err != nil {
		return Scenario{}, err
	}
	after, err := settle(ctx, ps2[0], settleFor)
	if err != nil {
		return Scenario{}, err
	}
	left, err := countKeys(ctx, st.js, cfg.PendingBucket)
	if err != nil {
		return Scenario{}, err
	}
	if err := ps2.stop(); err != nil {
		return Scenario{}, err
	}

	idleMiB := float64(idle.rss) / mib
	sc := Scenario{Setup: []string{
		"the worker as an OS process (go build ./cmd/vidm-sync-worker), RSS from /proc/<pid>/status, goroutines from its /metrics",
		fmt.Sprintf("idle: after start-up, once goroutines and RSS stopped falling for 1s (at most %s)", settleFor),
		fmt.Sprintf("load: %d triggers over %d directories accepted and kept pending (COALESCE_WINDOW=1h)", n, dirs),
		fmt.Sprintf("after the run: a second process (COALESCE_WINDOW=0) synced all %d directories and reported every trigger (%s), "+
			"then settled as above; compared with the first process's idle figures", dirs, runFor.Round(time.Millisecond)),
	}}
	sc.Rows = []Row{
		{Metric: "idle RSS", Unit: "MiB", Value: idleMiB},
		{Metric: "idle goroutines", Value: float64(idle.goroutines)},
		Row{Metric: fmt.Sprintf("RSS with %d pending", n), Unit: "MiB", Value: float64(load.rss) / mib, Baseline: &idleMiB, Ratio: ptr(float64(load.rss) / float64(idle.rss))}.
			goal("< 150 MiB", load.rss < 150*mib, fmt.Sprintf("%.0f MiB", float64(load.rss)/mib)),
		{Metric: "peak RSS while accepting (VmHWM)", Unit: "MiB", Value: float64(load.peak) / mib},
		{Metric: fmt.Sprintf("goroutines with %d pending", n), Value: float64(load.goroutines), Baseline: ptr(float64(idle.goroutines))},
		{Metric: "heap in use with pending", Unit: "MiB", Value: load.heapInuse / mib},
		{Metric: "RSS right after the last result", Unit: "MiB", Value: float64(during.rss) / mib},
		{Metric: "peak RSS of the syncing process (VmHWM)", Unit: "MiB", Value: float64(after.peak) / mib},
		Row{Metric: "RSS after the run, settled", Unit: "MiB", Value: float64(after.rss) / mib, Baseline: &idleMiB, Ratio: ptr(float64(after.rss) / float64(idle.rss))}.
			goal("≤ 1.5 × idle", float64(after.rss) <= 1.5*float64(idle.rss), fmt.Sprintf("%.2f × idle", float64(after.rss)/float64(idle.rss))),
		Row{Metric: "goroutines after the run, settled", Value: float64(after.goroutines), Baseline: ptr(float64(idle.goroutines))}.
			goal("≤ idle + 10", after.goroutines <= idle.goroutines+10, fmt.Sprintf("%d goroutines", after.goroutines)),
		{Metric: "heap in use after the run", Unit: "MiB", Value: after.heapInuse / mib},
	}
	sc.check("every trigger accepted and pending", got == n && pendingKeys == n, "accepted %d, pending keys %d, of %d", got, pendingKeys, n)
	sc.check("every trigger reported after the run", fol.missing(ids) == 0, "%d missing", fol.missing(ids))
	sc.check("pending set empty after the run", left == 0, "%d keys left", left)
	return sc, nil
}

// countKeys counts the keys of a KV bucket.
func countKeys(ctx context.Context, js jetstream.JetStream, bucket string) (int, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return 0, fmt.Errorf("bucket %s: %w", bucket, err)
	}
	// Listed rather than read from the status: its value count includes delete markers.
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("bucket %s: %w", bucket, err)
	}
	n := 0
	for range lister.Keys() {
		n++
	}
	return n, nil
}
