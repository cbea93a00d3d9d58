package worker_test

import (
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// TestPollsArePlannedFromTheDirectorysHistory: a directory's second sync is polled where its first
// ended, not on the doubling schedule, so its end is seen sooner and with fewer polls.
func TestPollsArePlannedFromTheDirectorysHistory(t *testing.T) {
	// Production-like polling: a sync of 4 s is seen by the doubling schedule at 0, 1, 3 and 7 s.
	h := newHarness(t, 4*time.Second, map[string]string{
		"POLL_INITIAL_INTERVAL": "1s", "POLL_MAX_INTERVAL": "15s", "POLL_FLOOR": "500ms",
	})
	h.startWorker("w1")
	polls := func() int { return h.Dev.Sim.Requests(vidmsim.EndpointSyncStatus) }

	run := func(name string) (n int, lag time.Duration) {
		before := polls()
		id := h.publish(group("corp.example.com", name))
		rs := terminal(h.waitReported(30*time.Second, id))
		syncs := h.syncsOf(corpID)
		end := syncs[len(syncs)-1].FinishedAt
		var published time.Time
		for _, m := range h.streamMsgs(h.Cfg.ResultStream) {
			if m.Header.Get("Nats-Msg-Id") == rs[len(rs)-1].ID || m.Header.Get("ce-id") == rs[len(rs)-1].ID {
				published = m.Time
			}
		}
		if published.IsZero() || end.IsZero() {
			t.Fatalf("no publish time (%v) or sync end (%v) for %s", published, end, name)
		}
		return polls() - before, published.Sub(end)
	}
	n1, lag1 := run("proj-first-admins")
	n2, lag2 := run("proj-second-admins")
	t.Logf("doubling schedule: %d status requests, result %v after the sync's end; planned: %d, %v", n1, lag1, n2, lag2)
	if n2 >= n1 || lag2 >= lag1 {
		t.Fatalf("the sync planned from its history took %d status requests and was reported %v after its end; the first, %d and %v",
			n2, lag2, n1, lag1)
	}
}
