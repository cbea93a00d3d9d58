package coalesce_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/coalesce"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

// tracedVIDM is a fakeVIDM that remembers the span each call was made in.
type tracedVIDM struct {
	fakeVIDM
	mu    sync.Mutex
	spans []trace.SpanContext
}

func (v *tracedVIDM) SyncStatus(ctx context.Context, id string) (httpcore.SyncState, error) {
	v.note(ctx)
	return v.fakeVIDM.SyncStatus(ctx, id)
}

func (v *tracedVIDM) StartSync(ctx context.Context, id string, ignore bool) error {
	v.note(ctx)
	return v.fakeVIDM.StartSync(ctx, id, ignore)
}

func (v *tracedVIDM) note(ctx context.Context) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.spans = append(v.spans, trace.SpanContextFromContext(ctx))
}

// intakeSpan is the traceparent of trigger i's (made-up) intake span, in a trace of its own.
func intakeSpan(i int) string {
	return fmt.Sprintf("00-%032x-%016x-01", i+1, i+1)
}

func addTriggers(t *testing.T, n int, add func(context.Context, dirsync.Trigger) error) {
	t.Helper()
	for i := range n {
		tr := dirsync.Trigger{ID: fmt.Sprintf("t-%03d", i), Source: "urn:test", Type: "ad.group.created", Group: fmt.Sprintf("g-%03d", i),
			Tenant: "default", DirectoryID: "dir-corp", DirectoryName: "Corp AD", IntakeSpan: intakeSpan(i)}
		if err := add(context.Background(), tr); err != nil {
			t.Fatal(err)
		}
	}
}

// A run of 200 triggers: its span is a child of the first trigger's intake span, links to the
// first 128 triggers' and says how many it covers; the backend is called inside it.
func TestRunSpanIsLinkedToItsTriggers(t *testing.T) {
	store := newStore(t)
	addTriggers(t, 200, store.AddPending)
	rec := tracetest.NewSpanRecorder()
	v := &tracedVIDM{fakeVIDM: fakeVIDM{status: httpcore.SyncState{Status: httpcore.StatusUndefined}}}
	got := runUntilReportedWith(t, store, v, coalesce.Config{Holder: "h", TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))})
	if len(got) != 1 || got[0].Count != 200 {
		t.Fatalf("reported %+v", got)
	}
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Name() != "run" {
		t.Fatalf("spans %v, want one run span", spans)
	}
	s := spans[0]
	first := dirsync.SpanContext(intakeSpan(0))
	if s.Parent().SpanID() != first.SpanID() || s.SpanContext().TraceID() != first.TraceID() {
		t.Fatalf("parent %v, want the first trigger's intake span %v", s.Parent(), first)
	}
	if len(s.Links()) != 128 || s.Links()[5].SpanContext.SpanID() != dirsync.SpanContext(intakeSpan(5)).SpanID() {
		t.Fatalf("%d links, want the first 128 triggers' intake spans", len(s.Links()))
	}
	attrs := map[string]string{}
	for _, kv := range s.Attributes() {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	if attrs["dirsync.trigger_count"] != "200" || attrs["dirsync.trigger_links"] != "128" || attrs["dirsync.run_id"] != got[0].RunID ||
		attrs["dirsync.directory"] != "Corp AD" || attrs["dirsync.status"] != "COMPLETED" || attrs["dirsync.resumed"] != "false" {
		t.Fatalf("attributes %v", attrs)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, sc := range v.spans {
		if sc.SpanID() != s.SpanContext().SpanID() {
			t.Fatalf("a backend call in span %v, want the run's %v", sc, s.SpanContext())
		}
	}
}

// A run another holder left after collecting it is linked to its triggers from its stored pages.
func TestResumedRunSpanLinksFromThePages(t *testing.T) {
	store := newStore(t)
	ctx := context.Background()
	addTriggers(t, 3, store.AddPending)
	run, err := store.NewRun(ctx, dirsync.NewDirKey("default", "dir-corp"), "run-left", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Collect(ctx, run); err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	runUntilReportedWith(t, store, &fakeVIDM{status: httpcore.SyncState{Status: httpcore.StatusUndefined}},
		coalesce.Config{Holder: "next", TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))})
	spans := rec.Ended()
	if len(spans) != 1 || len(spans[0].Links()) != 3 || spans[0].Parent().SpanID() != dirsync.SpanContext(intakeSpan(0)).SpanID() {
		t.Fatalf("spans %v", spans)
	}
	for _, kv := range spans[0].Attributes() {
		if kv.Key == "dirsync.resumed" && !kv.Value.AsBool() {
			t.Fatal("the resumed run's span does not say so")
		}
	}
}
