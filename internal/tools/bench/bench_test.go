package bench_test

import (
	"context"
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/tools/bench"
)

// TestShortScenarios runs every scenario at its short size and asserts the invariants (nothing
// lost, one sync per directory at a time, the counts add up); timing goals are only reported.
func TestShortScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS, the simulator and worker processes")
	}
	rep, err := bench.Run(context.Background(), bench.Options{Short: true, WorkDir: t.TempDir(), Out: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Scenarios) != len(bench.ScenarioIDs()) {
		t.Fatalf("%d scenarios reported, want %d", len(rep.Scenarios), len(bench.ScenarioIDs()))
	}
	for _, s := range rep.Scenarios {
		if len(s.Rows) == 0 || len(s.Invariants) == 0 {
			t.Errorf("%s: %d rows, %d invariants", s.ID, len(s.Rows), len(s.Invariants))
		}
		for _, inv := range s.Invariants {
			if !inv.OK {
				t.Errorf("%s: %s broken: %s", s.ID, inv.Name, inv.Detail)
			}
		}
	}
	md := rep.Markdown()
	if len(md) == 0 {
		t.Fatal("empty report")
	}
	if _, err := rep.JSON(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s\n%s", rep.Summary(), md)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
