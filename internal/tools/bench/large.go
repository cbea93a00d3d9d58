package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirstate"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

// largeSize is scenario 6's load: one directory, n triggers published while its sync runs.
type largeSize struct {
	n          int
	sync       time.Duration
	maxPayload int32 // 0: NATS's default (1 MiB)
	replicas   []int
	gets       int // GETs per operator endpoint
}

func (r *runner) largeSize() largeSize {
	if r.o.Short {
		// A small max_payload so that a few thousand triggers already need many pages.
		return largeSize{n: 5_000, sync: 3 * time.Second, maxPayload: 64 << 10, replicas: []int{1, 2}, gets: 5}
	}
	return largeSize{n: 100_000, sync: 20 * time.Second, replicas: []int{1, 3}, gets: 20}
}

// largeResult is one measurement of scenario 6.
type largeResult struct {
	reps           int
	reportedOnce   int // triggers reported exactly once
	reportedTwice  int
	missing        int
	syncs          int
	maxConcurrent  int
	dead           uint64
	events         int // terminal result events
	runs           int // distinct runs among them
	maxPages       int
	largest        map[string]int // stream → largest message, headers included
	peakRSS        uint64         // the largest peak RSS of the replicas
	lastToResult   time.Duration
	acceptFor      time.Duration // last publish → every trigger accepted
	pendingAtViews int           // pending triggers when the operator views were timed
	views          map[string][]time.Duration
}

// operatorViews are the pages and API calls an operator opens, timed at full pending.
var operatorViews = []struct{ name, path string }{
	{"status page", "/"},
	{"GET /api/v1/directories", "/api/v1/directories"},
	{"GET /api/v1/directories/{tenant}/{id}", "/api/v1/directories/default/" + dirID(0)},
	{"GET /api/v1/directories/{tenant}/{id}/runs", "/api/v1/directories/default/" + dirID(0) + "/runs"},
	{"GET /api/v1/dead-letters", "/api/v1/dead-letters"},
}

func runLarge(ctx context.Context, r *runner) (Scenario, error) {
	ls := r.largeSize()
	payload := "NATS's default max_payload (1 MiB)"
	if ls.maxPayload > 0 {
		payload = fmt.Sprintf("max_payload %d KiB", ls.maxPayload>>10)
	}
	sc := Scenario{Setup: []string{
		fmt.Sprintf("one directory; one trigger, then, once its sync is RUNNING, %d ad.group.created triggers for the same directory (async publishes); simulated sync %s; %s",
			ls.n, ls.sync, payload),
		"replicas are OS processes (go build ./cmd/vidm-sync-worker) with COALESCE_WINDOW=1s, POLL_INITIAL_INTERVAL=200ms, POLL_MAX_INTERVAL=1s, ADMIN_READ_OPEN=true; peak RSS is each process's VmHWM",
		fmt.Sprintf("operator views: %d GETs of each, one at a time, against the first replica once every trigger is accepted and while the first sync still runs (all of them pending)", ls.gets),
		"largest message: every message stored in the results stream and in the KV streams the worker writes, headers included, read while the large run's pages exist (runs, pending) and at the end (results, history)",
	}}
	for _, reps := range ls.replicas {
		r.progress("large: %d replica(s), %d triggers", reps, ls.n)
		res, err := r.measureLarge(ctx, ls, reps)
		if err != nil {
			return sc, fmt.Errorf("%d replicas: %w", reps, err)
		}
		largeRows(&sc, ls, res)
	}
	sc.Notes = append(sc.Notes,
		"a run's triggers are kept in pages of at most half the max_payload and its result is published one page per event, so neither the run record nor any message grows with the number of triggers",
		"the operator views count pending triggers from each replica's watch of the pending bucket (an index of keys), never by listing the bucket")
	return sc, nil
}

func largeRows(sc *Scenario, ls largeSize, res largeResult) {
	prefix := fmt.Sprintf("%d replica(s): ", res.reps)
	limit := int(ls.maxPayload)
	if limit == 0 {
		limit = dirstate.DefaultMaxPayload
	}
	sc.Rows = append(sc.Rows,
		Row{Metric: prefix + "syncs of the directory", Value: float64(res.syncs)}.
			goal("≤ 3", res.syncs <= 3, fmt.Sprintf("%d syncs", res.syncs)),
		Row{Metric: prefix + "last publish → every trigger accepted", Unit: "s", Value: res.acceptFor.Seconds()},
		Row{Metric: prefix + "last publish → last result", Unit: "s", Value: res.lastToResult.Seconds()},
		Row{Metric: prefix + "terminal result events (runs)", Value: float64(res.events), Text: fmt.Sprintf("%d (%d runs, largest in %d pages)", res.events, res.runs, res.maxPages)},
		Row{Metric: prefix + "peak RSS per replica (max)", Unit: "MiB", Value: float64(res.peakRSS) / (1 << 20)}.
			goal("< 150 MiB", res.peakRSS < 150<<20, fmt.Sprintf("%.0f MiB", float64(res.peakRSS)/(1<<20))),
	)
	streamsSeen := make([]string, 0, len(res.largest))
	for s := range res.largest {
		streamsSeen = append(streamsSeen, s)
	}
	slices.Sort(streamsSeen)
	for _, s := range streamsSeen {
		n := res.largest[s]
		sc.Rows = append(sc.Rows, Row{Metric: prefix + "largest message in " + s, Unit: "bytes", Value: float64(n), Baseline: ptr(float64(limit)),
			Ratio: ptr(float64(n) / float64(limit))}.goal("≤ max_payload", n <= limit, fmt.Sprintf("%d bytes", n)))
	}
	for _, v := range operatorViews {
		ds := res.views[v.name]
		if len(ds) == 0 {
			continue
		}
		slices.Sort(ds)
		med, worst := ds[len(ds)/2], ds[len(ds)-1]
		sc.Rows = append(sc.Rows, Row{Metric: fmt.Sprintf("%s%s at %d pending: median (max %.1f ms)", prefix, v.name, res.pendingAtViews, ms(worst)),
			Unit: "ms", Value: ms(med)}.goal("< 200 ms", worst < 200*time.Millisecond, fmt.Sprintf("max %.0f ms", ms(worst))))
	}
	total := ls.n + 1
	sc.check(prefix+"every trigger reported exactly once", res.reportedOnce == total && res.reportedTwice == 0 && res.missing == 0,
		"%d of %d once, %d more than once, %d missing", res.reportedOnce, total, res.reportedTwice, res.missing)
	sc.check(prefix+"one sync of the directory at a time", res.maxConcurrent == 1, "max concurrent syncs: %d", res.maxConcurrent)
	sc.check(prefix+"at most 3 syncs", res.syncs <= 3, "%d syncs", res.syncs)
	sc.check(prefix+"nothing dead-lettered", res.dead == 0, "%d dead letters", res.dead)
	over := 0
	for _, n := range res.largest {
		if n > limit {
			over++
		}
	}
	sc.check(prefix+"no message over max_payload", over == 0, "%d streams hold a larger message", over)
	sc.check(prefix+"the large run was reported in pages", res.maxPages > 1, "largest run in %d result events", res.maxPages)
}

func (r *runner) measureLarge(ctx context.Context, ls largeSize, reps int) (largeResult, error) {
	res := largeResult{reps: reps, largest: map[string]int{}, views: map[string][]time.Duration{}}
	dir, err := r.subdir(fmt.Sprintf("large-%d", reps))
	if err != nil {
		return res, err
	}
	st, err := startStackWith(dir, simConfig(1, ls.sync), true, ls.maxPayload)
	if err != nil {
		return res, err
	}
	defer st.close()
	vars := st.env(map[string]string{"COALESCE_WINDOW": "1s", "POLL_INITIAL_INTERVAL": "200ms", "POLL_MAX_INTERVAL": "1s",
		"ADMIN_READ_OPEN": "true"})
	cfg, err := loadConfig(ctx, vars)
	if err != nil {
		return res, err
	}
	if err := st.ensureStreams(ctx, cfg); err != nil {
		return res, err
	}
	counts, err := followResults(ctx, st.js, cfg.ResultStream)
	if err != nil {
		return res, err
	}
	defer counts.stop()
	ps, err := r.startProcs(ctx, reps, dir, vars)
	if err != nil {
		return res, err
	}
	defer func() { _ = ps.stop() }()

	first, err := st.publishAll(ctx, 1, 1)
	if err != nil {
		return res, err
	}
	if err := poll(ctx, time.Minute, 20*time.Millisecond, "the first sync to run", func() (bool, error) {
		log := st.dev.Sim.SyncLog()
		return len(log) == 1 && log[0].Status == "RUNNING", nil
	}); err != nil {
		return res, err
	}
	ids, err := st.publishAll(ctx, ls.n, 1)
	if err != nil {
		return res, err
	}
	lastPub := time.Now()
	ids = append(ids, first...)
	cons, err := st.js.Consumer(ctx, cfg.TriggerStream, cfg.Consumer)
	if err != nil {
		return res, fmt.Errorf("consumer: %w", err)
	}
	if err := poll(ctx, 5*time.Minute, 20*time.Millisecond, "every trigger accepted", func() (bool, error) { return drained(ctx, cons) }); err != nil {
		return res, err
	}
	res.acceptFor = time.Since(lastPub)
	if err := r.timeViews(ctx, ps[0].admin, ls.gets, &res); err != nil {
		return res, err
	}
	if err := r.largestWhileRunning(ctx, st, cfg, ls.n/10, &res); err != nil {
		return res, err
	}
	if err := poll(ctx, 10*time.Minute, 50*time.Millisecond, "every trigger reported", func() (bool, error) {
		return counts.missing(ids) == 0, nil
	}); err != nil {
		return res, err
	}
	res.lastToResult = counts.last().Sub(lastPub)
	for _, p := range ps {
		_, peak, err := memStatus(p.cmd.Process.Pid)
		if err != nil {
			return res, err
		}
		res.peakRSS = max(res.peakRSS, peak)
	}
	if err := ps.stop(); err != nil {
		return res, err
	}
	res.reportedOnce, res.reportedTwice, res.missing = counts.tally(ids)
	res.events, res.runs, res.maxPages = counts.events()
	res.syncs = len(st.dev.Sim.SyncLog())
	res.maxConcurrent = st.dev.Sim.MaxConcurrentSyncs(dirID(0))
	for _, s := range []string{cfg.ResultStream, "KV_" + cfg.HistoryBucket} {
		n, err := largestMsg(ctx, st.js, s)
		if err != nil {
			return res, err
		}
		res.largest[s] = max(res.largest[s], n)
	}
	dead, err := st.js.Stream(ctx, cfg.DeadStream)
	if err != nil {
		return res, fmt.Errorf("dead-letter stream: %w", err)
	}
	res.dead = dead.CachedInfo().State.Msgs
	return res, nil
}

// timeViews times the operator's pages and API calls, one at a time.
func (r *runner) timeViews(ctx context.Context, admin string, n int, res *largeResult) error {
	hc := &http.Client{Timeout: 30 * time.Second}
	for _, v := range operatorViews {
		for range n {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+v.path, nil)
			if err != nil {
				return err
			}
			t0 := time.Now()
			resp, err := hc.Do(req)
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			body, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			d := time.Since(t0)
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: status %d", v.name, resp.StatusCode)
			}
			res.views[v.name] = append(res.views[v.name], d)
			if v.path == "/api/v1/directories/default/"+dirID(0) {
				var d struct {
					PendingTriggers int `json:"pendingTriggers"`
				}
				if err := json.Unmarshal(body, &d); err == nil {
					res.pendingAtViews = d.PendingTriggers
				}
			}
		}
	}
	return nil
}

// largestWhileRunning waits until the large run's pages exist (its record has at least atLeast
// triggers) and reads the largest message of the runs and pending buckets' streams.
func (r *runner) largestWhileRunning(ctx context.Context, st *stack, cfg config.Config, atLeast int, res *largeResult) error {
	runs, err := st.js.KeyValue(ctx, cfg.RunsBucket)
	if err != nil {
		return fmt.Errorf("runs bucket: %w", err)
	}
	key := string(dirsync.NewDirKey("default", dirID(0)))
	if err := poll(ctx, 5*time.Minute, 50*time.Millisecond, "the large run to be recorded", func() (bool, error) {
		e, err := runs.Get(ctx, key)
		if err != nil {
			return false, nil //nolint:nilerr // not there yet
		}
		var run dirsync.Run
		if err := json.Unmarshal(e.Value(), &run); err != nil {
			return false, err
		}
		return run.Count >= atLeast && run.Phase != dirsync.PhaseCollecting, nil
	}); err != nil {
		return err
	}
	for _, s := range []string{"KV_" + cfg.RunsBucket, "KV_" + cfg.PendingBucket} {
		n, err := largestMsg(ctx, st.js, s)
		if err != nil {
			return err
		}
		res.largest[s] = max(res.largest[s], n)
	}
	return nil
}

// largestMsg reads every message a stream holds now and returns the size of the largest, headers
// included.
func largestMsg(ctx context.Context, js jetstream.JetStream, stream string) (int, error) {
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", stream, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", stream, err)
	}
	largest := 0
	for left := info.NumPending; left > 0; {
		batch, err := c.FetchNoWait(1000)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", stream, err)
		}
		var got uint64
		for m := range batch.Messages() {
			size := len(m.Data())
			for k, vs := range m.Headers() {
				for _, v := range vs {
					size += len(k) + len(v) + 4 // "k: v\r\n"
				}
			}
			largest = max(largest, size)
			got++
		}
		if got == 0 {
			break
		}
		left -= min(got, left)
	}
	return largest, nil
}
