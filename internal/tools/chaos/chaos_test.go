package chaos_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/tools/chaos"
)

// TestShortChaos is the short chaos run of `make test`: every guarantee must hold while replicas
// are killed and stopped, the broker restarts, vIDM pauses, throttles and fails, tokens are
// revoked and foreign syncs start; and the faults must really have happened. A burst of 4,000
// triggers for two directories, on a 64 KiB max_payload, makes runs that are reported in pages.
func TestShortChaos(t *testing.T) {
	o := chaos.Short()
	o.Seed = 7
	rep := runChaos(t, o)
	f := rep.Faults
	requireHappened(t, map[string]int{
		"SIGKILLs": f.Kills, "SIGTERMs": f.Terms, "replica restarts": f.ReplicaRestarts,
		"NATS restarts": f.NATSRestarts, "vIDM pauses": f.VIDMPauses, "token revocations": f.Revocations,
		"foreign syncs": f.ForeignSyncs, "accepted triggers": rep.Accepted, "invalid triggers sent": rep.InvalidSent,
		"runs reported in pages": rep.PagedRuns,
	})
}

// TestShortChaosCluster is the cluster variant: three nodes, R3 streams and buckets; the trigger
// stream's leader is restarted and a majority of the nodes is down for a few seconds while the
// same faults as TestShortChaos hit the replicas and vIDM. The same guarantees must hold.
func TestShortChaosCluster(t *testing.T) {
	o := chaos.ShortCluster()
	o.Seed = 11
	rep := runChaos(t, o)
	f := rep.Faults
	requireHappened(t, map[string]int{
		"SIGKILLs": f.Kills, "replica restarts": f.ReplicaRestarts,
		"stream-leader restarts": f.LeaderRestarts, "majority outages": f.MajorityOutages,
		"vIDM pauses": f.VIDMPauses, "token revocations": f.Revocations,
		"foreign syncs": f.ForeignSyncs, "accepted triggers": rep.Accepted, "invalid triggers sent": rep.InvalidSent,
	})
	if f.NATSRestarts != 0 {
		t.Errorf("%d single-server restarts in a cluster run", f.NATSRestarts)
	}
}

// runChaos runs o, logs its table and fails the test for every broken invariant.
func runChaos(t *testing.T, o chaos.Options) chaos.Report {
	t.Helper()
	var out bytes.Buffer
	o.Out = &out
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := chaos.Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	rep.WriteTable(&out)
	t.Log("\n" + out.String())
	for _, v := range rep.Violations() {
		t.Error(v)
	}
	return rep
}

// requireHappened fails for every fault or count that stayed at zero: a run without its faults
// proves nothing.
func requireHappened(t *testing.T, counts map[string]int) {
	t.Helper()
	for what, n := range counts {
		if n == 0 {
			t.Errorf("no %s happened", what)
		}
	}
}
