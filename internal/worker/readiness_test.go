package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/workertest"
)

// readinessHarness is a stack (over TLS to the simulator) whose Corp AD keeps groups named ext-*
// outside its sync scope, with a short re-check.
func readinessHarness(t *testing.T, env map[string]string) *harness {
	t.Helper()
	sc := simConfig(100 * time.Millisecond)
	sc.Directories[0].OutOfScope = []string{"ext-*"}
	e := map[string]string{"READINESS_RECHECK_AFTER": "300ms"}
	for k, v := range env {
		e[k] = v
	}
	return &harness{Stack: workertest.Start(t, workertest.Options{Sim: &sc, Env: e}), t: t}
}

// entry returns the result entry of trigger id, and the result that lists it.
func entry(t *testing.T, rs []resultEvent, id string) (contract.Trigger, resultEvent) {
	t.Helper()
	for _, r := range terminal(rs) {
		for _, tr := range r.Data.Triggers {
			if tr.ID == id {
				return tr, r
			}
		}
	}
	t.Fatalf("no result lists trigger %s", id)
	return contract.Trigger{}, resultEvent{}
}

func TestReadinessSaysWhetherTheGroupArrivedAndItsID(t *testing.T) {
	h := readinessHarness(t, nil)
	h.startWorker("w1")
	h.waitConsumer()
	// Created in AD just now: visible only through a sync that starts after this.
	if err := h.Dev.Sim.AddPrincipal(corpID, vidmsim.KindGroup, "proj-new-admins", "corp.example.com", true); err != nil {
		t.Fatal(err)
	}
	in := h.publish(group("corp.example.com", "proj-new-admins"))
	out := h.publish(group("corp.example.com", "ext-partner-viewers"))
	rs := h.waitReported(15*time.Second, in, out)

	got, r := entry(t, rs, in)
	want := vidmsim.PrincipalID(corpID, vidmsim.KindGroup, "corp.example.com", "proj-new-admins")
	if r.Data.Status != contract.StatusCompleted || got.Visible == nil || !*got.Visible || got.PrincipalID != want || got.Hint != "" {
		t.Errorf("in-scope group: %s %+v, want COMPLETED, visible, id %s", r.Data.Status, got, want)
	}
	got, r = entry(t, rs, out)
	if r.Data.Status != contract.StatusCompleted || got.Visible == nil || *got.Visible || got.PrincipalID != "" ||
		!strings.Contains(got.Hint, "sync scope") {
		t.Errorf("out-of-scope group: %s %+v, want COMPLETED, not visible, a hint naming the sync scope", r.Data.Status, got)
	}
	// Not found at once, so looked up once more after the re-check delay: two SCIM requests at least.
	if n := h.Dev.Sim.Requests(vidmsim.EndpointSCIMGroups); n < 2 {
		t.Errorf("%d SCIM group lookups, want the re-check of the one not found", n)
	}
	if strings.Contains(h.Logs.String(), testSecret) {
		t.Fatal("the log carries the client secret")
	}
}

// 200 groups in one run cost vIDM a few SCIM requests: one per 50 principals.
func TestReadinessOfABurstBatchesTheLookups(t *testing.T) {
	h := readinessHarness(t, map[string]string{"COALESCE_WINDOW": "500ms"})
	h.startWorker("w1")
	h.waitConsumer()
	var ids []string
	for i := range 200 {
		ids = append(ids, h.publish(group("corp.example.com", fmt.Sprintf("proj-%03d-admins", i))))
	}
	rs := h.waitReported(30*time.Second, ids...)
	visible := 0
	for _, id := range ids {
		if got, _ := entry(t, rs, id); got.Visible != nil && *got.Visible && got.PrincipalID != "" {
			visible++
		}
	}
	runs := len(terminal(rs))
	scim := h.Dev.Sim.Requests(vidmsim.EndpointSCIMGroups)
	// Names of 15 characters: 50 to a filter.
	if visible != 200 || scim > 200/50+runs {
		t.Errorf("%d of 200 visible with %d SCIM requests over %d result events; want all, at most one request per 50",
			visible, scim, runs)
	}
	t.Logf("200 groups: %d SCIM requests, %d result events", scim, runs)
}

// A store that keeps failing does not hold the result back: the sync is reported COMPLETED and
// the group unknown, after the client's retries.
func TestReadinessLookupFailuresAreReportedUnknown(t *testing.T) {
	h := readinessHarness(t, nil)
	h.Dev.Sim.SetFault(vidmsim.EndpointSCIMGroups, vidmsim.Fault{Status: 503})
	h.startWorker("w1")
	h.waitConsumer()
	id := h.publish(group("corp.example.com", "proj-alpha-admins"))
	rs := h.waitReported(30*time.Second, id)
	got, r := entry(t, rs, id)
	if r.Data.Status != contract.StatusCompleted || got.Visible != nil || got.PrincipalID != "" || got.Hint == "" {
		t.Errorf("%s %+v, want COMPLETED with the group unknown (no visible) and a hint", r.Data.Status, got)
	}
	if n := h.Dev.Sim.RequestsByStatus(vidmsim.EndpointSCIMGroups)[503]; n < 2 {
		t.Errorf("%d SCIM requests answered 503, want the lookup retried", n)
	}
	poll.Until(t, 5*time.Second, "the failure logged", func() bool {
		return strings.Contains(h.Logs.String(), "they are reported unknown")
	})
}

// With the check turned off the result is as before readiness existed.
func TestReadinessCheckCanBeTurnedOff(t *testing.T) {
	h := readinessHarness(t, map[string]string{"READINESS_CHECK": "false"})
	h.startWorker("w1")
	h.waitConsumer()
	id := h.publish(group("corp.example.com", "proj-alpha-admins"))
	got, _ := entry(t, h.waitReported(15*time.Second, id), id)
	if got.Visible != nil || got.PrincipalID != "" || got.Hint != "" || h.Dev.Sim.Requests(vidmsim.EndpointSCIMGroups) != 0 {
		t.Errorf("entry %+v, %d SCIM requests; want neither with the check off", got, h.Dev.Sim.Requests(vidmsim.EndpointSCIMGroups))
	}
}
