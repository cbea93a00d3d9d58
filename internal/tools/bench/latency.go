package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// latencyWarmup samples are taken and dropped first: the first one includes the token request
// and the directory list, which the measured ones do not repeat.
const latencyWarmup = 5

func runLatency(ctx context.Context, r *runner) (Scenario, error) {
	samples := r.size(1_000, 50)
	dir, err := r.subdir("latency")
	if err != nil {
		return Scenario{}, err
	}
	starts := make(chan time.Time, 16)
	sim := simConfig(1, 0)
	sim.OnSyncStart = func(vidmsim.SyncRecord) {
		select {
		case starts <- time.Now():
		default: // a sync nobody waits for (there should be none) must not block the simulator
		}
	}
	st, err := startStack(dir, sim, true)
	if err != nil {
		return Scenario{}, err
	}
	defer st.close()
	vars := st.env(map[string]string{"COALESCE_WINDOW": "0s", "POLL_INITIAL_INTERVAL": "2ms", "POLL_MAX_INTERVAL": "10ms"})
	cfg, err := loadConfig(ctx, vars)
	if err != nil {
		return Scenario{}, err
	}
	resultsCh := make(chan *nats.Msg, 64)
	sub, err := st.nc.ChanSubscribe(cfg.ResultSubjectPrefix+".>", resultsCh)
	if err != nil {
		return Scenario{}, fmt.Errorf("results subscription: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	w, err := r.inProcess()(ctx, st, dir, vars)
	if err != nil {
		return Scenario{}, err
	}
	defer func() { _ = w.stop() }()
	var worker []time.Duration
	reported := 0
	for i := range samples + latencyWarmup {
		id, msg, err := triggerMsg(0, i)
		if err != nil {
			return Scenario{}, err
		}
		t0 := time.Now()
		if _, err := st.js.PublishMsg(ctx, msg); err != nil {
			return Scenario{}, fmt.Errorf("publish: %w", err)
		}
		var started time.Time
		select {
		case started = <-starts:
		case <-ctx.Done():
			return Scenario{}, ctx.Err()
		case <-time.After(30 * time.Second):
			return Scenario{}, fmt.Errorf("sample %d: no sync started within 30s: %w", i, errTimeout)
		}
		if i >= latencyWarmup {
			worker = append(worker, started.Sub(t0))
		}
		// The next sample starts only once this one is reported, so each measures an idle worker.
		if err := awaitResult(ctx, resultsCh, id); err != nil {
			return Scenario{}, fmt.Errorf("sample %d: %w", i, err)
		}
		reported++
	}
	if err := w.stop(); err != nil {
		return Scenario{}, err
	}
	// With the worker stopped, nothing else consumes the stream while the baseline runs.
	base, err := bareLatency(ctx, st, cfg.TriggerStream, samples)
	if err != nil {
		return Scenario{}, fmt.Errorf("baseline: %w", err)
	}
	syncs := len(st.dev.Sim.SyncLog())

	wp50, wp99 := percentile(worker, 50), percentile(worker, 99)
	bp50, bp99 := percentile(base, 50), percentile(base, 99)
	diff := wp50 - bp50
	sc := Scenario{Setup: []string{
		fmt.Sprintf("%d samples (after %d warm-up samples), one trigger at a time; each waits for the previous one's result", samples, latencyWarmup),
		"COALESCE_WINDOW=0 (accepted by the configuration: sync at a directory's first trigger); POLL_INITIAL_INTERVAL=2ms; simulator syncs instant",
		"worker: publish (js.PublishMsg) → the simulator receives the sync POST (vidmsim OnSyncStart hook); the worker runs in the benchmark's process",
		"baseline: publish (js.PublishMsg, same message) → an ordered consumer on the same stream receives it, worker stopped",
	}}
	sc.Rows = []Row{
		{Metric: "baseline p50: publish → JetStream subscriber", Unit: "ms", Value: ms(bp50)},
		{Metric: "baseline p99", Unit: "ms", Value: ms(bp99)},
		{Metric: "worker p50: publish → vIDM sync POST", Unit: "ms", Value: ms(wp50), Baseline: ptr(ms(bp50)), Ratio: ptr(ms(wp50) / ms(bp50))},
		{Metric: "worker p99", Unit: "ms", Value: ms(wp99), Baseline: ptr(ms(bp99)), Ratio: ptr(ms(wp99) / ms(bp99))},
		Row{Metric: "p50 difference (worker − baseline)", Unit: "ms", Value: ms(diff)}.
			goal("≤ 1 ms", diff <= time.Millisecond, fmt.Sprintf("%.2f ms over the baseline", ms(diff))),
	}
	sc.check("one sync per sample", syncs == samples+latencyWarmup, "%d syncs for %d triggers published one at a time", syncs, samples+latencyWarmup)
	sc.check("every sample reported", reported == samples+latencyWarmup, "%d of %d", reported, samples+latencyWarmup)
	sc.check("one sync at a time", st.dev.Sim.MaxConcurrentSyncs(dirID(0)) == 1, "max concurrent %d", st.dev.Sim.MaxConcurrentSyncs(dirID(0)))
	sc.Notes = append(sc.Notes, "what stands between the publish and the POST: the pending write (the trigger is indexed at once, "+
		"from its acknowledgement), the ack, the lease (create-if-absent), the run record and the operator's orders (read at once), "+
		"the pending triggers read again from the stream leader, vIDM's status GET (someone else's sync?), and one write of the run "+
		"(its triggers inline, about to POST); four broker round trips where there were nine, and one HTTPS request, against "+
		"one publish and one delivery for the baseline. Each of the four is what a guarantee rests on: the record before the ack "+
		"(no lost trigger), the lease (one sync per directory), the leader's read and the write before the POST (covered means covered)")
	return sc, nil
}

// awaitResult waits for a terminal result event that lists the trigger id.
func awaitResult(ctx context.Context, ch <-chan *nats.Msg, id string) error {
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case m := <-ch:
			covered, err := coveredBy(m.Header, m.Data)
			if err != nil {
				return err
			}
			if slices.Contains(covered, id) {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			return fmt.Errorf("no result for trigger %s within 30s: %w", id, errTimeout)
		}
	}
}

// coveredBy returns the trigger ids a terminal result lists; none for a started event.
func coveredBy(h nats.Header, data []byte) ([]string, error) {
	d, ok, err := terminalData(h, data)
	if !ok || err != nil {
		return nil, err
	}
	out := make([]string, 0, len(d.Triggers))
	for _, t := range d.Triggers {
		out = append(out, t.ID)
	}
	return out, nil
}

// terminalData decodes a terminal result's data; ok is false for a started event.
func terminalData(h nats.Header, data []byte) (contract.Data, bool, error) {
	e, err := cenats.Decode(h, data)
	if err != nil {
		return contract.Data{}, false, fmt.Errorf("result event: %w", err)
	}
	if e.Type() == contract.TypeStarted {
		return contract.Data{}, false, nil
	}
	var d contract.Data
	if err := json.Unmarshal(e.Data(), &d); err != nil {
		return contract.Data{}, false, fmt.Errorf("result event data: %w", err)
	}
	return d, true, nil
}

// bareLatency publishes the same kind of message n times, one at a time, and times each until an
// ordered consumer of the stream receives it.
func bareLatency(ctx context.Context, st *stack, stream string, n int) ([]time.Duration, error) {
	const baseSubject = subject + ".baseline"
	cons, err := st.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{baseSubject}, DeliverPolicy: jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer: %w", err)
	}
	got := make(chan time.Time, 1)
	cc, err := cons.Consume(func(jetstream.Msg) { got <- time.Now() })
	if err != nil {
		return nil, fmt.Errorf("consume: %w", err)
	}
	defer cc.Stop()
	var out []time.Duration
	for i := range n + latencyWarmup {
		_, msg, err := triggerMsg(0, 1_000_000+i)
		if err != nil {
			return nil, err
		}
		msg.Subject = baseSubject
		t0 := time.Now()
		if _, err := st.js.PublishMsg(ctx, msg); err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		select {
		case t := <-got:
			if i >= latencyWarmup {
				out = append(out, t.Sub(t0))
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("baseline sample %d not received: %w", i, errTimeout)
		}
	}
	return out, nil
}

func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p+99)/100 - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
