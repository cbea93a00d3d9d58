package results

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

const testTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// reportedRun is a finished run covering n triggers in one page, the second one traced; its
// triggers are returned beside it, as the run's page.
func reportedRun(n int, status string) (*dirsync.Run, []dirsync.Trigger) {
	created := time.Date(2025, 11, 23, 14, 52, 7, 0, time.UTC)
	var page []dirsync.Trigger
	r := &dirsync.Run{
		RunID: "0b6f7f0e-3c1f-4a4e-9d55-1f2a3b4c5d6e", Tenant: "default", DirectoryID: "7f2b9c1e-dir",
		DirectoryName: "Corp AD", Phase: dirsync.PhaseReported, CreatedAt: created,
		StartedAt: created.Add(2 * time.Second),
		Outcome:   &dirsync.Outcome{Status: status, FinishedAt: created.Add(40 * time.Second)},
	}
	if status != "COMPLETED" {
		r.Outcome.ErrCode, r.Outcome.ErrMessage = contract.CodeSyncFailed, "LDAP bind failed"
	}
	for i := range n {
		t := dirsync.Trigger{
			ID: fmt.Sprintf("5c1e7a52-0f0e-4d8e-9a41-%012d", i), Source: "https://pipelines.corp.example.com/provision-project",
			Type: "ad.group.created", Group: fmt.Sprintf("proj-%d-admins", i), Tenant: "default",
			DirectoryID: r.DirectoryID, DirectoryName: r.DirectoryName, AcceptedAt: created,
		}
		if i == 1 {
			t.Traceparent = testTraceparent
			r.Traceparent = testTraceparent
		}
		page = append(page, t)
	}
	r.Count, r.Pages = n, 1
	return r, page
}

// The result message as Finished publishes it: subject, event id (the stream de-duplicates on it),
// type, subject, traceparent and the data listing every covered trigger.
func TestFinishedMessage(t *testing.T) {
	p := New(nil, "dirsync.result", "urn:vidm-sync-worker:test", nil)
	for _, tc := range []struct{ status, typ, subject string }{
		{"COMPLETED", contract.TypeCompleted, "dirsync.result.completed"},
		{"FAILED", contract.TypeFailed, "dirsync.result.failed"},
	} {
		r, page := reportedRun(3, tc.status)
		msg, typ, err := p.finishedMsg(r, 1, page, r.Traceparent)
		if err != nil {
			t.Fatal(err)
		}
		if typ != tc.typ || msg.Subject != tc.subject {
			t.Fatalf("type %s on %s, want %s on %s", typ, msg.Subject, tc.typ, tc.subject)
		}
		e, err := cenats.Decode(msg.Header, msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		if e.ID() != r.RunID+".result" || e.Type() != tc.typ || e.Source() != "urn:vidm-sync-worker:test" ||
			e.Subject() != "Corp AD" || !e.Time().Equal(r.Outcome.FinishedAt) || e.Extensions()["traceparent"] != testTraceparent {
			t.Errorf("event attributes: %s", e.Context)
		}
		if got := msg.Header.Get("Nats-Msg-Id"); got != r.RunID+".result" {
			t.Errorf("Nats-Msg-Id = %q", got)
		}
		var d contract.Data
		if err := json.Unmarshal(e.Data(), &d); err != nil {
			t.Fatal(err)
		}
		if d.Status != tc.status || len(d.Triggers) != 3 || d.Triggers[2].Group != "proj-2-admins" || d.DurationMs != 38000 {
			t.Errorf("data = %+v", d)
		}
		if d.Page != 0 || d.Pages != 0 || d.TriggerCount != 0 {
			t.Errorf("a run of one page has page fields: %+v", d)
		}
		var raw map[string]any
		if err := json.Unmarshal(e.Data(), &raw); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"page", "pages", "triggerCount"} {
			if _, ok := raw[k]; ok {
				t.Errorf("a run of one page sends %q", k)
			}
		}
		if (d.Error != nil) != (tc.status != "COMPLETED") {
			t.Errorf("error = %+v for %s", d.Error, tc.status)
		}
	}
	if _, _, err := p.finishedMsg(&dirsync.Run{RunID: "r"}, 1, nil, ""); err == nil {
		t.Error("a run without an outcome was encoded")
	}
}

// A run of several pages: each page has its own deterministic id, says which part it is and
// lists its own triggers; all carry the run's id, status and total.
func TestFinishedPages(t *testing.T) {
	p := New(nil, "dirsync.result", "urn:vidm-sync-worker:test", nil)
	r, all := reportedRun(7, "COMPLETED")
	r.Pages = 3
	pages := [][]dirsync.Trigger{all[:3], all[3:6], all[6:]}
	seen := map[string]bool{}
	for i, page := range pages {
		n := i + 1
		msg, _, err := p.finishedMsg(r, n, page, r.Traceparent)
		if err != nil {
			t.Fatal(err)
		}
		e, err := cenats.Decode(msg.Header, msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("%s.result.%d", r.RunID, n)
		if e.ID() != want || msg.Header.Get("Nats-Msg-Id") != want {
			t.Errorf("page %d: id %s, Nats-Msg-Id %s, want %s", n, e.ID(), msg.Header.Get("Nats-Msg-Id"), want)
		}
		var d contract.Data
		if err := json.Unmarshal(e.Data(), &d); err != nil {
			t.Fatal(err)
		}
		if d.Page != n || d.Pages != 3 || d.TriggerCount != 7 || d.RunID != r.RunID || d.Status != "COMPLETED" || len(d.Triggers) != len(page) {
			t.Errorf("page %d data = %+v", n, d)
		}
		for j, tr := range d.Triggers {
			if tr.ID != page[j].ID || seen[tr.ID] {
				t.Errorf("page %d lists %s at %d", n, tr.ID, j)
			}
			seen[tr.ID] = true
		}
	}
	if len(seen) != 7 {
		t.Errorf("pages list %d distinct triggers, want 7", len(seen))
	}
}

// Reporting a run short of the JetStream publish: result data, event, binary-mode message.
func BenchmarkFinishedMessage(b *testing.B) {
	p := New(nil, "dirsync.result", "urn:vidm-sync-worker:bench", nil)
	for _, n := range []int{1, 100} {
		r, page := reportedRun(n, "COMPLETED")
		b.Run(fmt.Sprintf("triggers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := p.finishedMsg(r, 1, page, r.Traceparent); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
