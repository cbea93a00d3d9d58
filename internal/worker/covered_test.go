package worker_test

import (
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/workertest"
)

// A backend whose status body has no dates, and that begins a sync a moment after accepting its
// POST, still reports the previous sync's COMPLETED right after the POST. The trigger must be
// reported only after the sync that covers it ran.
func TestStatusWithoutDatesIsReportedOnlyAfterOurSyncRan(t *testing.T) {
	sc := simConfig(300 * time.Millisecond)
	sc.StatusBody, sc.StartLag = vidmsim.StatusBodyNoDates, 300*time.Millisecond
	h := &harness{Stack: workertest.Start(t, workertest.Options{Sim: &sc}), t: t}
	if err := h.Dev.Sim.StartForeignSync(corpID, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "the previous sync finished", func() bool {
		log := h.syncsOf(corpID)
		return len(log) == 1 && log[0].Status == vidmsim.StatusCompleted
	})
	h.startWorker("w1")
	h.waitConsumer()
	id := h.publish(group("corp.example.com", "proj-alpha-admins"))
	rs := terminal(h.waitReported(15*time.Second, id))
	log := h.syncsOf(corpID)
	if len(rs) != 1 || rs[0].Data.Status != contract.StatusCompleted || len(log) != 2 {
		t.Fatalf("results %+v, syncs %+v: want one COMPLETED result after a second sync", rs, log)
	}
	if ours := log[1]; ours.Status != vidmsim.StatusCompleted || rs[0].Data.FinishedAt.Before(ours.FinishedAt) {
		t.Errorf("reported finished at %s, but the sync covering the trigger finished at %s (status %s)",
			rs[0].Data.FinishedAt, ours.FinishedAt, ours.Status)
	}
}
