package worker_test

import (
	"strings"
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

// A directory whose sync is turned off in vIDM would sync nothing: its trigger is dead-lettered
// with its own code and a reason that says what to do, and no sync is started.
func TestTriggerForADirectoryWithSyncTurnedOffIsDeadLettered(t *testing.T) {
	sc := simConfig(100 * time.Millisecond)
	sc.Directories = append(sc.Directories, vidmsim.Directory{ID: "dir-frozen", Name: "Frozen AD",
		Domains: []string{"frozen.example.com"}, SyncDisabled: true})
	h := &harness{Stack: workertest.Start(t, workertest.Options{Sim: &sc}), t: t}
	h.startWorker("w1")
	h.waitConsumer()
	frozen := h.publish(group("frozen.example.com", "proj-frozen"))
	good := h.publish(group("corp.example.com", "proj-alpha-admins"))
	h.waitReported(15*time.Second, good)
	var code, reason, id string
	poll.Until(t, 10*time.Second, "the trigger dead-lettered", func() bool {
		for _, m := range h.streamMsgs(h.Cfg.DeadStream) {
			code, reason, id = m.Header.Get(contract.HeaderDeadCode), m.Header.Get(contract.HeaderDeadReason), m.Header.Get("ce-id")
			return true
		}
		return false
	})
	if code != contract.CodeDirectorySyncDisabled || id != frozen || !strings.Contains(reason, "syncConfigurationEnabled") {
		t.Errorf("dead letter of %s: code %q reason %q, want %s of %s", id, code, reason, contract.CodeDirectorySyncDisabled, frozen)
	}
	if n := len(h.syncsOf("dir-frozen")); n != 0 {
		t.Errorf("%d syncs of the directory with its sync turned off, want none", n)
	}
}
