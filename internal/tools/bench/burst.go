package bench

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/tools/bench/naive"
)

// naiveConcurrency caps the per-trigger scripts running at once; pipelines each run their own copy,
// so without a cap every trigger's script would run at once.
const naiveConcurrency = 500

// burstSize is scenario 3's load and the worker's timing settings for it.
type burstSize struct {
	n, dirs     int
	span        time.Duration // the triggers are published evenly over it
	sync        time.Duration // simulated sync duration
	window      time.Duration // COALESCE_WINDOW
	pollInitial time.Duration
	pollMax     time.Duration
	naivePoll   time.Duration
	// warm: every directory is synced once before the burst, so each has a history to plan its
	// polls from, as directories of a worker that has run for a while do; its cost is left out.
	warm bool
}

// burstSize uses the worker's production defaults (COALESCE_WINDOW 2s, polls 2s doubling to 15s)
// for the full run, since the comparison is with the script as pipelines run it; the short run
// scales every duration by 1/10.
func (r *runner) burstSize() burstSize {
	if r.o.Short {
		return burstSize{n: 500, dirs: 5, span: time.Second, sync: 500 * time.Millisecond, window: 200 * time.Millisecond,
			pollInitial: 200 * time.Millisecond, pollMax: 1500 * time.Millisecond, naivePoll: 100 * time.Millisecond}
	}
	return burstSize{n: 10_000, dirs: 50, span: 10 * time.Second, sync: 5 * time.Second, window: 2 * time.Second,
		pollInitial: 2 * time.Second, pollMax: 15 * time.Second, naivePoll: time.Second}
}

// vidmCost is what one side of scenario 3 cost vIDM.
type vidmCost struct {
	logins, dirLists, posts, polls, total int
	lookups                               int // the readiness check's SCIM requests
	maxSyncs, maxConcurrent               int
	conflicts                             int
}

func simCost(sim *vidmsim.Server, dirs int) vidmCost {
	c := vidmCost{
		logins:    sim.Requests(vidmsim.EndpointOAuthToken) + sim.Requests(vidmsim.EndpointSystemLogin),
		dirLists:  sim.Requests(vidmsim.EndpointDirectories),
		posts:     sim.Requests(vidmsim.EndpointSyncStart),
		polls:     sim.Requests(vidmsim.EndpointSyncStatus),
		lookups:   sim.Requests(vidmsim.EndpointSCIMGroups) + sim.Requests(vidmsim.EndpointSCIMUsers),
		conflicts: sim.RejectedSyncPosts(),
	}
	c.total = c.logins + c.dirLists + c.posts + c.polls + c.lookups
	perDir := map[string]int{}
	for _, s := range sim.SyncLog() {
		perDir[s.DirectoryID]++
	}
	for i := range dirs {
		c.maxSyncs = max(c.maxSyncs, perDir[dirID(i)])
		c.maxConcurrent = max(c.maxConcurrent, sim.MaxConcurrentSyncs(dirID(i)))
	}
	return c
}

type burstResult struct {
	size       burstSize
	cost       vidmCost
	reported   int
	lastToRes  time.Duration // last trigger published → last result received
	elapsed    time.Duration // first trigger published → last result received
	publishFor time.Duration
	// maxConcurrent is the worker's MAX_CONCURRENT_SYNCS.
	maxConcurrent int
}

// measureBurst publishes the burst to a running fleet and waits until every trigger is reported.
func (r *runner) measureBurst(ctx context.Context, name string, bs burstSize, start startFleet) (burstResult, error) {
	res := burstResult{size: bs}
	dir, err := r.subdir(name)
	if err != nil {
		return res, err
	}
	st, err := startStack(dir, simConfig(bs.dirs, bs.sync), true)
	if err != nil {
		return res, err
	}
	defer st.close()
	vars := st.env(map[string]string{"COALESCE_WINDOW": bs.window.String(),
		"POLL_INITIAL_INTERVAL": bs.pollInitial.String(), "POLL_MAX_INTERVAL": bs.pollMax.String()})
	cfg, err := loadConfig(ctx, vars)
	if err != nil {
		return res, err
	}
	res.maxConcurrent = cfg.MaxConcurrentSyncs
	if err := st.ensureStreams(ctx, cfg); err != nil {
		return res, err
	}
	fol, err := followResults(ctx, st.js, cfg.ResultStream)
	if err != nil {
		return res, err
	}
	defer fol.stop()
	f, err := start(ctx, st, dir, vars)
	if err != nil {
		return res, err
	}
	defer func() { _ = f.stop() }()

	var warmCost vidmCost
	if bs.warm {
		if warmCost, err = warmUp(ctx, st, fol, bs); err != nil {
			return res, err
		}
	}
	ids := make([]string, 0, bs.n)
	t0 := time.Now()
	for i := range bs.n {
		if i%10 == 0 {
			if err := waitUntil(ctx, t0.Add(bs.span*time.Duration(i)/time.Duration(bs.n))); err != nil {
				return res, err
			}
		}
		id, msg, err := triggerMsg(i%bs.dirs, i)
		if err != nil {
			return res, err
		}
		if _, err := st.js.PublishMsg(ctx, msg); err != nil {
			return res, fmt.Errorf("publish: %w", err)
		}
		ids = append(ids, id)
	}
	lastPub := time.Now()
	res.publishFor = lastPub.Sub(t0)
	err = poll(ctx, bs.span+20*bs.sync+2*time.Minute, 20*time.Millisecond, "every trigger reported", func() (bool, error) {
		return fol.missing(ids) == 0, nil
	})
	res.reported = bs.n - fol.missing(ids)
	if err != nil {
		return res, err
	}
	last := fol.lastCovering(ids)
	res.lastToRes, res.elapsed = last.Sub(lastPub), last.Sub(t0)
	if err := f.stop(); err != nil {
		return res, err
	}
	res.cost = simCost(st.dev.Sim, bs.dirs)
	if bs.warm {
		// The warm-up synced each directory once and made these requests.
		res.cost.total -= warmCost.total
		res.cost.maxSyncs--
	}
	return res, nil
}

// warmUp syncs every directory once (one trigger each, numbered past the burst's) and waits for
// the results; it returns what that cost vIDM.
func warmUp(ctx context.Context, st *stack, fol *follower, bs burstSize) (vidmCost, error) {
	ids := make([]string, bs.dirs)
	for d := range bs.dirs {
		id, msg, err := triggerMsg(d, bs.n+d)
		if err != nil {
			return vidmCost{}, err
		}
		if _, err := st.js.PublishMsg(ctx, msg); err != nil {
			return vidmCost{}, fmt.Errorf("publish: %w", err)
		}
		ids[d] = id
	}
	if err := poll(ctx, 20*bs.sync+time.Minute, 20*time.Millisecond, "warm-up reported", func() (bool, error) {
		return fol.missing(ids) == 0, nil
	}); err != nil {
		return vidmCost{}, err
	}
	return simCost(st.dev.Sim, bs.dirs), nil
}

// follower reads the results stream and remembers when each trigger was first reported, how
// many distinct result events listed it (the stream stores each event id once), and the events
// and pages of each run.
type follower struct {
	mu     sync.Mutex
	seen   map[string]time.Time
	times  map[string]int
	runs   map[string]int // run id → terminal events
	pages  map[string]int // run id → pages it says it has
	lastAt time.Time
	cc     jetstream.ConsumeContext
	err    error
}

func followResults(ctx context.Context, js jetstream.JetStream, stream string) (*follower, error) {
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, fmt.Errorf("results consumer: %w", err)
	}
	f := &follower{seen: map[string]time.Time{}, times: map[string]int{}, runs: map[string]int{}, pages: map[string]int{}}
	f.cc, err = cons.Consume(func(m jetstream.Msg) {
		now := time.Now()
		d, ok, err := terminalData(m.Headers(), m.Data())
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case err != nil:
			f.err = err
			return
		case !ok:
			return
		}
		f.lastAt = now
		f.runs[d.RunID]++
		f.pages[d.RunID] = max(d.Pages, 1)
		for _, t := range d.Triggers {
			if _, ok := f.seen[t.ID]; !ok {
				f.seen[t.ID] = now
			}
			f.times[t.ID]++
		}
	})
	if err != nil {
		return nil, fmt.Errorf("results consumer: %w", err)
	}
	return f, nil
}

func (f *follower) stop() { f.cc.Stop() }

func (f *follower) missing(ids []string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, id := range ids {
		if _, ok := f.seen[id]; !ok {
			n++
		}
	}
	return n
}

// last is when the last terminal event arrived.
func (f *follower) last() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastAt
}

// tally counts the ids reported by exactly one event, by more than one, and by none.
func (f *follower) tally(ids []string) (once, more, none int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		switch f.times[id] {
		case 0:
			none++
		case 1:
			once++
		default:
			more++
		}
	}
	return once, more, none
}

// events returns the terminal events, the runs they belong to, and the most pages of a run.
func (f *follower) events() (events, runs, maxPages int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, n := range f.runs {
		events += n
		maxPages = max(maxPages, f.pages[id])
	}
	return events, len(f.runs), maxPages
}

// lastCovering is when the last of ids was first reported.
func (f *follower) lastCovering(ids []string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	var last time.Time
	for _, id := range ids {
		if t := f.seen[id]; t.After(last) {
			last = t
		}
	}
	return last
}

// measureNaive runs the per-trigger script for the same triggers on a fresh simulator with the
// same configuration.
func (r *runner) measureNaive(ctx context.Context, bs burstSize) (naive.Stats, vidmCost, error) {
	dir, err := r.subdir("naive")
	if err != nil {
		return naive.Stats{}, vidmCost{}, err
	}
	st, err := startStack(dir, simConfig(bs.dirs, bs.sync), false)
	if err != nil {
		return naive.Stats{}, vidmCost{}, err
	}
	defer st.close()
	hc, err := simClient(st.dev.CAFile, naiveConcurrency)
	if err != nil {
		return naive.Stats{}, vidmCost{}, err
	}
	defer hc.CloseIdleConnections()
	trigs := make([]naive.Trigger, bs.n)
	for i := range trigs {
		trigs[i] = naive.Trigger{Domain: dirDomain(i % bs.dirs), Group: fmt.Sprintf("grp-%d-%d", i%bs.dirs, i)}
	}
	stats, err := naive.Run(ctx, naive.Options{
		BaseURL: st.dev.SimURL, HTTPClient: hc, Username: scriptUser, Password: scriptPass,
		Triggers: trigs, Concurrency: naiveConcurrency, PollInterval: bs.naivePoll,
	})
	if err != nil {
		return stats, vidmCost{}, fmt.Errorf("naive script: %w", err)
	}
	return stats, simCost(st.dev.Sim, bs.dirs), nil
}

func runBurst(ctx context.Context, r *runner) (Scenario, error) {
	bs := r.burstSize()
	res, err := r.measureBurst(ctx, "burst", bs, r.inProcess())
	if err != nil {
		return Scenario{}, err
	}
	// The same, in a burst shorter than one sync: the case the time-to-result goal is set for.
	shortBurst := bs
	shortBurst.n, shortBurst.span, shortBurst.warm = bs.n/5, bs.sync*3/5, true
	r.progress("burst: %d triggers over %s, shorter than one sync", shortBurst.n, shortBurst.span)
	sres, err := r.measureBurst(ctx, "burst-short", shortBurst, r.inProcess())
	if err != nil {
		return Scenario{}, err
	}
	r.progress("burst: worker done, running the naive script baseline (%d triggers, %d at once)", bs.n, naiveConcurrency)
	ns, nc, err := r.measureNaive(ctx, bs)
	if err != nil {
		return Scenario{}, err
	}
	sc := Scenario{Setup: []string{
		fmt.Sprintf("%d ad.group.created triggers for %d directories, published evenly over %s (took %s); simulated sync duration %s",
			bs.n, bs.dirs, bs.span, res.publishFor.Round(time.Millisecond), bs.sync),
		fmt.Sprintf("worker (in the benchmark's process): COALESCE_WINDOW=%s, POLL_INITIAL_INTERVAL=%s, POLL_MAX_INTERVAL=%s (full run: the production defaults), OAuth token TTL 1h",
			bs.window, bs.pollInitial, bs.pollMax),
		fmt.Sprintf("baseline: internal/tools/bench/naive, the per-pipeline script (system login, list directories, POST, poll every %s until done), "+
			"one run per trigger, at most %d at once, on a fresh simulator with the same configuration; it took %s",
			bs.naivePoll, naiveConcurrency, ns.Duration.Round(time.Millisecond)),
		"request counts are what the simulator received; ratio = baseline ÷ worker (how many times fewer requests the worker made)",
	}}
	tokenLifetimes := int(math.Ceil(res.elapsed.Hours() / 1)) // token TTL is 1h
	goalWithin := bs.window + 2*bs.sync + time.Second
	// The optimum: the sync the first trigger starts, then one follow-up per sync duration the
	// burst lasts (the worker never POSTs into a running sync).
	optimum := 1 + int(math.Ceil(float64(bs.span)/float64(bs.sync)))
	sc.Rows = []Row{
		Row{Metric: "syncs per directory (max)", Value: float64(res.cost.maxSyncs), Baseline: ptr(float64(nc.maxSyncs))}.
			goal(fmt.Sprintf("≤ 1 + ⌈span / sync⌉ = %d", optimum), res.cost.maxSyncs <= optimum, fmt.Sprintf("%d syncs", res.cost.maxSyncs)),
		costRow("logins (token requests)", res.cost.logins, nc.logins).
			goal(fmt.Sprintf("≤ 1 per token lifetime (%d)", tokenLifetimes), res.cost.logins <= tokenLifetimes, fmt.Sprintf("%d logins", res.cost.logins)),
		costRow("directory lists", res.cost.dirLists, nc.dirLists),
		costRow("sync POSTs", res.cost.posts, nc.posts),
		costRow("sync POSTs refused (409)", res.cost.conflicts, nc.conflicts),
		costRow("status polls", res.cost.polls, nc.polls),
		{Metric: "readiness lookups (SCIM; the script checks nothing)", Value: float64(res.cost.lookups), Baseline: ptr(float64(nc.lookups))},
		costRow("vIDM requests, total", res.cost.total, nc.total).
			goal("≥ 1,000× fewer than the script", float64(nc.total) >= 1000*float64(res.cost.total),
				fmt.Sprintf("%.0f× fewer", float64(nc.total)/float64(max(res.cost.total, 1)))),
		Row{Metric: "last trigger published → last result", Unit: "s", Value: res.lastToRes.Seconds()}.
			goal(fmt.Sprintf("≤ window + 2 × sync + 1 s = %s", goalWithin), res.lastToRes <= goalWithin, fmt.Sprintf("%.2fs", res.lastToRes.Seconds())),
		{Metric: "baseline: script run, first request → last script done", Unit: "s", Value: ns.Duration.Seconds()},
		Row{Metric: fmt.Sprintf("burst shorter than a sync (%d triggers over %s; each directory synced once before): last trigger → last result", shortBurst.n, shortBurst.span), Unit: "s", Value: sres.lastToRes.Seconds()}.
			goal(fmt.Sprintf("≤ window + 2 × sync + 1 s = %s", goalWithin), sres.lastToRes <= goalWithin, fmt.Sprintf("%.2fs", sres.lastToRes.Seconds())),
		Row{Metric: "burst shorter than a sync: syncs per directory (max)", Value: float64(sres.cost.maxSyncs)}.
			goal("≤ 1 + ⌈span / sync⌉ = 2", sres.cost.maxSyncs <= 2, fmt.Sprintf("%d syncs", sres.cost.maxSyncs)),
		{Metric: "burst shorter than a sync: vIDM requests, total", Value: float64(sres.cost.total)},
	}
	sc.check("every trigger reported", res.reported == bs.n && sres.reported == shortBurst.n, "%d of %d, and %d of %d in the short burst",
		res.reported, bs.n, sres.reported, shortBurst.n)
	sc.check("one sync per directory at a time", res.cost.maxConcurrent == 1, "max concurrent syncs of a directory: %d", res.cost.maxConcurrent)
	// Every trigger names its own group: at most one lookup per 50 (a filter holds about 3 kB of
	// names), plus one partial batch per run.
	sc.check("readiness: at most one SCIM request per 50 groups", res.cost.lookups > 0 && res.cost.lookups <= (bs.n+49)/50+res.cost.posts,
		"%d SCIM requests for %d groups in %d runs", res.cost.lookups, bs.n, res.cost.posts)
	sc.check("script baseline: every script saw its sync end", ns.Failed == 0, "%d scripts failed", ns.Failed)
	// Why the sync count can exceed 2: the worker never POSTs into a running sync, so a burst that
	// outlasts a sync needs one more sync for every sync duration it lasts beyond the first.
	sc.Notes = append(sc.Notes, fmt.Sprintf("the burst lasts %s and a sync %s: the first sync starts one window (%s) after a directory's first trigger, "+
		"triggers arriving while it runs wait for a follow-up, so a burst longer than window + sync needs a third sync", bs.span, bs.sync, bs.window))
	sc.Notes = append(sc.Notes, fmt.Sprintf("what bounds the last result: the last trigger waits for its directory's running sync (≤ one sync), then a "+
		"follow-up sync (one sync; its window has passed while the first ran), then one poll step and the readiness lookups: window + 2 × sync + 1 s "+
		"when every directory has a slot. One replica syncs at most MAX_CONCURRENT_SYNCS=%d directories of a tenant at once (the default): with more "+
		"directories than that, the rest queue behind it and the bound grows by a sync per wave (see scenario 5 for 2 and 3 replicas)", res.maxConcurrent))
	sc.Notes = append(sc.Notes, "the main burst starts on a fresh stack, so its directories' first syncs have no history and are polled with "+
		"the doubling schedule, whose jittered waits (2 s, then 3.2–4 s, then 6.4–8 s) can fall just before a 5 s sync ends and hold that "+
		"directory's follow-up back by one more wait; the burst shorter than a sync is measured after one sync of each directory, as on a "+
		"worker that has run for a while (without it, in an earlier run of this scenario: 16.8 s, over the goal)")
	if ns.Total != nc.total {
		sc.Notes = append(sc.Notes, fmt.Sprintf("the script counted %d requests, the simulator %d", ns.Total, nc.total))
	}
	return sc, nil
}

func costRow(metric string, worker, baseline int) Row {
	row := Row{Metric: metric, Value: float64(worker), Baseline: ptr(float64(baseline))}
	if worker > 0 {
		row.Ratio = ptr(float64(baseline) / float64(worker))
	}
	return row
}

// waitUntil waits for t or ctx (a pacing loop, not synchronisation).
func waitUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
