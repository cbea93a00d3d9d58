package results

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

// Traced, every publish is a producer span under the caller's (the run's), and the event carries
// the publish span's traceparent, so its consumer continues the same trace; untraced, the event
// carries the run's first trigger's.
func TestPublishSpans(t *testing.T) {
	ctx := context.Background()
	js, stream := resultStream(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	r, page := reportedRun(3, "COMPLETED")
	r.Traceparent = testTraceparent

	rctx, run := tp.Tracer("test").Start(ctx, "run")
	p := New(js, "dirsync.result", "urn:vidm-sync-worker:test", tp)
	if err := p.Started(rctx, r); err != nil {
		t.Fatal(err)
	}
	if err := p.Finished(rctx, r, 1, page); err != nil {
		t.Fatal(err)
	}
	run.End()
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want two publishes and the run", len(spans))
	}
	for i, want := range []string{"publish dirsync.result.started", "publish dirsync.result.completed"} {
		s := spans[i]
		attrs := map[string]string{}
		for _, kv := range s.Attributes() {
			attrs[string(kv.Key)] = kv.Value.String()
		}
		if s.Name() != want || s.SpanKind().String() != "producer" || s.Parent().SpanID() != run.SpanContext().SpanID() ||
			attrs["dirsync.run_id"] != r.RunID || attrs["messaging.destination.name"] != want[len("publish "):] || attrs["cloudevents.event_id"] == "" {
			t.Fatalf("span %d: %q kind %s parent %v attributes %v", i, s.Name(), s.SpanKind(), s.Parent(), attrs)
		}
		raw, err := stream.GetMsg(ctx, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		e, err := cenats.Decode(raw.Header, raw.Data)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.Extensions()["traceparent"]; got != dirsync.Traceparent(s.SpanContext()) || e.ID() != attrs["cloudevents.event_id"] {
			t.Fatalf("event %s carries traceparent %v, want its publish span's", e.ID(), got)
		}
	}

	// Untraced: the first covered trigger's traceparent, as before tracing.
	r.RunID = "another-run"
	if err := New(js, "dirsync.result", "urn:vidm-sync-worker:test", nil).Started(ctx, r); err != nil {
		t.Fatal(err)
	}
	raw, err := stream.GetMsg(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := cenats.Decode(raw.Header, raw.Data); err != nil || e.Extensions()["traceparent"] != testTraceparent {
		t.Fatalf("untraced event: %v (%v), want the trigger's traceparent", e, err)
	}
}
