package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/control"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/worker"
)

// smallPayload is the max_payload of the large-run tests' server: small, so that a few thousand
// triggers already need many pages and the paging is exercised quickly.
const smallPayload = 64 << 10

// publishBurst publishes n triggers for one domain with asynchronous publishes and returns their
// event ids.
func (h *harness) publishBurst(n int, domain, prefix string) []string {
	h.t.Helper()
	ids := make([]string, 0, n)
	stored := func() {
		select {
		case <-h.JS.PublishAsyncComplete():
		case <-time.After(60 * time.Second):
			h.t.Fatal("the burst was not stored within 60s")
		}
	}
	for i := range n {
		id, msg := h.triggerMsg(group(domain, fmt.Sprintf("%s-%05d", prefix, i)))
		msg.Header.Set("Nats-Msg-Id", id)
		if _, err := h.JS.PublishMsgAsync(msg); err != nil {
			h.t.Fatal(err)
		}
		ids = append(ids, id)
		// In windows well under nats.go's limit of outstanding asynchronous publishes, which a
		// busy machine otherwise reaches ("stalled with too many outstanding").
		if (i+1)%1000 == 0 {
			stored()
		}
	}
	stored()
	return ids
}

// countReported follows the results stream from its start and counts the distinct trigger ids
// its terminal events list: a cheap progress check for large runs, where decoding and validating
// every result on each poll (results) would cost more than the run.
func (h *harness) countReported() func() int {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.t.Cleanup(cancel)
	c, err := h.JS.OrderedConsumer(ctx, h.Cfg.ResultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{h.Cfg.ResultSubjectPrefix + ".completed", h.Cfg.ResultSubjectPrefix + ".failed"}})
	if err != nil {
		h.t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	cc, err := c.Consume(func(m jetstream.Msg) {
		var d struct{ Triggers []struct{ ID string } }
		if err := json.Unmarshal(m.Data(), &d); err != nil {
			return // results checks every event fully
		}
		mu.Lock()
		defer mu.Unlock()
		for _, t := range d.Triggers {
			seen[t.ID] = true
		}
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(cc.Stop)
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
}

// runRecord reads the directory's run record as the worker stored it.
func (h *harness) runRecord(tenant, dirID string) (*dirsync.Run, int) {
	h.t.Helper()
	kv, err := h.JS.KeyValue(context.Background(), h.Cfg.RunsBucket)
	if err != nil {
		h.t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), string(dirsync.NewDirKey(tenant, dirID)))
	if err != nil {
		return nil, 0
	}
	var r dirsync.Run
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		h.t.Fatal(err)
	}
	return &r, len(e.Value())
}

// largestMsg is the size of the largest message in a stream, headers included.
func (h *harness) largestMsg(stream string) int {
	h.t.Helper()
	ctx := context.Background()
	c, err := h.JS.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	largest := 0
	for left := info.NumPending; left > 0; {
		batch, err := c.FetchNoWait(int(min(left, 500)))
		if err != nil {
			h.t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			size := len(m.Data())
			for k, vs := range m.Headers() {
				for _, v := range vs {
					size += len(k) + len(v) + 4
				}
			}
			largest = max(largest, size)
			got++
		}
		if got == 0 {
			break
		}
		left -= uint64(got)
	}
	return largest
}

// TestLargeBurstDuringASyncIsReportedOnceInPages: 20,000 triggers for one directory arrive while
// its sync runs, on a server whose max_payload is 64 KiB. The follow-up run is saved in pages,
// the replica driving it is killed once it has started its sync, and another replica resumes it:
// every trigger is reported exactly once, in 2 syncs (the running one and one follow-up), in
// result events each under the limit, and the directory never counts as stuck.
func TestLargeBurstDuringASyncIsReportedOnceInPages(t *testing.T) {
	const burst = 20_000
	h := newHarnessWith(t, 3*time.Second, map[string]string{"COALESCE_WINDOW": "200ms"}, smallPayload)
	crash := h.startCrashableWorker("a")
	first := h.publish(group("corp.example.com", "first"))
	poll.Until(t, 20*time.Second, "the first sync to run", func() bool {
		s := h.syncsOf(corpID)
		return len(s) == 1 && s[0].Status == "RUNNING"
	})
	// The worker's polls of the first sync hang until the whole burst is accepted, so that the
	// burst lies within one sync however slowly this machine records it (under -race, with other
	// tests beside it): then one follow-up covers all of it.
	h.Dev.Sim.SetFault(vidmsim.EndpointSyncStatus, vidmsim.Fault{Hang: true})
	ids := append(h.publishBurst(burst, "corp.example.com", "hr-import"), first)
	poll.Until(t, 120*time.Second, "the burst to be accepted", func() bool {
		c, err := h.JS.Consumer(context.Background(), h.Cfg.TriggerStream, h.Cfg.Consumer)
		if err != nil {
			return false
		}
		ci, err := c.Info(context.Background())
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0
	})
	h.Dev.Sim.ClearFaults()
	h.Dev.Sim.Resume()

	// Kill the holder of the large follow-up run once its sync is started; another replica
	// resumes the run from its record and pages.
	var big *dirsync.Run
	poll.Until(t, 120*time.Second, "a large run to start its sync", func() bool {
		r, size := h.runRecord("default", corpID)
		if r != nil && r.Count > 1000 && r.Phase == dirsync.PhasePosted {
			if size > 16<<10 {
				t.Fatalf("the record of a run of %d triggers is %d bytes", r.Count, size)
			}
			big = r
			return true
		}
		return false
	})
	crash()
	h.startWorker("b")

	count := h.countReported()
	poll.Until(t, 180*time.Second, "every trigger of the burst to be reported", func() bool { return count() >= len(ids) })
	rs := h.waitReported(10*time.Second, ids...)
	rep := reported(rs)
	for _, id := range ids {
		if n := len(rep[id]); n != 1 {
			t.Fatalf("trigger %s reported %d times, want once", id, n)
		}
	}
	if len(rep) != len(ids) {
		t.Fatalf("%d distinct triggers reported, want %d", len(rep), len(ids))
	}
	if s := h.syncsOf(corpID); len(s) > 2 {
		t.Fatalf("%d syncs for a burst accepted during one sync, want 2: that sync and one follow-up", len(s))
	}
	pages := 0
	for _, r := range terminal(rs) {
		if r.Data.RunID != big.RunID {
			continue
		}
		pages++
		want := fmt.Sprintf("%s.result.%d", big.RunID, r.Data.Page)
		if r.Data.Pages != big.Pages || r.Data.TriggerCount != big.Count || r.ID != want {
			t.Fatalf("page %s: page %d/%d of %d triggers, want id %s, %d pages, %d triggers",
				r.ID, r.Data.Page, r.Data.Pages, r.Data.TriggerCount, want, big.Pages, big.Count)
		}
	}
	if big.Pages < 2 || pages != big.Pages {
		t.Fatalf("the large run was reported in %d events, its record says %d pages", pages, big.Pages)
	}
	for _, stream := range []string{h.Cfg.ResultStream, "KV_" + h.Cfg.RunsBucket, "KV_" + h.Cfg.HistoryBucket} {
		if n := h.largestMsg(stream); n > smallPayload {
			t.Errorf("stream %s holds a message of %d bytes, over the %d-byte max_payload", stream, n, smallPayload)
		}
	}
	if strings.Contains(h.Logs.String(), "directory stuck") {
		t.Errorf("a directory was reported stuck:\n%s", h.Logs.String())
	}
	// Forgetting writes a marker and purges a pending key per trigger: slow under -race on a busy machine.
	poll.Until(t, time.Minute, "the run and its pages to be forgotten", func() bool {
		r, _ := h.runRecord("default", corpID)
		return r == nil
	})
}

// TestStuckDirectoryIsVisible: a run whose vIDM keeps failing is never silent. After
// dirsync.StuckAfter failures in a row the directory is stuck on the gauge, in the admin API
// (with the error), on the status page and in an ERROR line; once vIDM answers again the trigger is reported and
// the signal is gone.
func TestStuckDirectoryIsVisible(t *testing.T) {
	h := newHarness(t, 50*time.Millisecond, opsEnv(nil))
	h.Dev.Sim.SetFault(vidmsim.EndpointSyncStatus, vidmsim.Fault{Status: http.StatusServiceUnavailable})
	base := h.startOpsWorker("w1", worker.WithRunRetry(10*time.Millisecond, 50*time.Millisecond))
	id := h.publish(group("corp.example.com", "proj-stuck-admins"))
	stuck := `dirsync_directory_stuck{directory=Corp AD,tenant=default}`
	poll.Until(t, 60*time.Second, "the directory to be stuck on the gauge", func() bool {
		return scrape(t, base)[stuck] == 1
	})
	d := directory(t, base, corpID)
	if d.State != control.StateStuck || d.CurrentRun == nil || d.CurrentRun.Trouble == nil ||
		!d.CurrentRun.Trouble.Stuck || d.CurrentRun.Trouble.Failures < dirsync.StuckAfter ||
		!strings.Contains(d.CurrentRun.Trouble.Error, "503") {
		t.Fatalf("admin API: state %s, run %+v", d.State, d.CurrentRun)
	}
	code, page := call(t, "GET", base+"/", readToken, nil)
	if code != http.StatusOK || !strings.Contains(string(page), `id="summary-stuck" href="#stuck" data-count="1"`) ||
		!strings.Contains(string(page), `data-state="stuck"`) || !strings.Contains(string(page), " in a row since ") {
		t.Fatalf("status page (%d) does not show the stuck directory", code)
	}
	if !strings.Contains(h.Logs.String(), `"level":"ERROR","msg":"directory stuck: its run keeps failing"`) {
		t.Fatalf("no ERROR line for the stuck directory:\n%s", h.Logs.String())
	}
	h.Dev.Sim.ClearFaults()
	rs := h.waitReported(30*time.Second, id)
	if rep := reported(rs); len(rep[id]) != 1 || rep[id][0].Data.Status != "COMPLETED" {
		t.Fatalf("after recovery: %+v", rep[id])
	}
	poll.Until(t, 10*time.Second, "the stuck signal to go", func() bool {
		_, ok := scrape(t, base)[stuck]
		return !ok && directory(t, base, corpID).State == control.StateIdle
	})
}
