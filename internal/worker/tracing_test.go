package worker_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/otlpsink"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/worker"
)

const publisherTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// One trigger's trace, end to end: the intake span is a child of the publisher's traceparent; the
// run span a child of the intake span and linked to it; the identity-system calls and the result
// publishes children of the run; the result event and the POST carry their own spans' context in
// the same trace; and the log lines name the span they were logged in.
func TestOneTriggersTrace(t *testing.T) {
	h := newHarness(t, 200*time.Millisecond, nil)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	h.startWorker("a", worker.WithTracerProvider(tp))
	tr := group("corp.example.com", "proj-traced")
	tr.Traceparent = publisherTraceparent
	id := h.publish(tr)
	h.waitReported(15*time.Second, id)
	var spans []sdktrace.ReadOnlySpan
	poll.Until(t, 10*time.Second, "the run's span to end", func() bool {
		spans = rec.Ended()
		return named(spans, "run") != nil
	})
	publisher := dirsync.SpanContext(publisherTraceparent)

	intake := named(spans, "intake")
	if intake == nil || attribute(intake, "cloudevents.event_id") != id {
		t.Fatalf("no intake span of the trigger among %s", names(spans))
	}
	if intake.Parent().SpanID() != publisher.SpanID() || intake.SpanContext().TraceID() != publisher.TraceID() {
		t.Fatalf("intake span's parent %v, want the publisher's %v", intake.Parent(), publisher)
	}
	run := named(spans, "run")
	if run.Parent().SpanID() != intake.SpanContext().SpanID() || run.SpanContext().TraceID() != publisher.TraceID() {
		t.Fatalf("run span's parent %v, want the intake span %v", run.Parent(), intake.SpanContext())
	}
	if len(run.Links()) != 1 || run.Links()[0].SpanContext.SpanID() != intake.SpanContext().SpanID() ||
		attribute(run, "dirsync.trigger_count") != "1" || attribute(run, "dirsync.status") != contract.StatusCompleted {
		t.Fatalf("run span: links %v attributes %v, want a link to the intake span", run.Links(), run.Attributes())
	}
	children := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if s.Parent().SpanID() == run.SpanContext().SpanID() {
			children[s.Name()] = s
		}
	}
	for _, want := range []string{"GET sync status", "POST start sync", "publish dirsync.result.started", "publish dirsync.result.completed"} {
		if children[want] == nil {
			t.Fatalf("the run span has no child %q; its children: %v", want, children)
		}
	}
	if k := children["POST start sync"].SpanKind(); k != trace.SpanKindClient {
		t.Fatalf("the POST's span is of kind %s", k)
	}
	if syncs := h.syncsOf(corpID); len(syncs) != 1 || syncs[0].Traceparent != dirsync.Traceparent(children["POST start sync"].SpanContext()) {
		t.Fatalf("the POST carried %+v, want its own span's traceparent", syncs)
	}

	published := children["publish dirsync.result.completed"]
	var found bool
	for _, m := range h.streamMsgs(h.Cfg.ResultStream) {
		e, err := cenats.Decode(m.Header, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if e.Type() != contract.TypeCompleted {
			continue
		}
		found = true
		if tp, _ := e.Extensions()["traceparent"].(string); tp != dirsync.Traceparent(published.SpanContext()) || dirsync.SpanContext(tp).TraceID() != publisher.TraceID() {
			t.Fatalf("the result carries traceparent %q, want its publish span's in the publisher's trace", tp)
		}
	}
	if !found {
		t.Fatal("no completed result")
	}

	lines := map[string]map[string]any{}
	for line := range strings.Lines(h.Logs.String()) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			lines[rec["msg"].(string)] = rec
		}
	}
	for msg, span := range map[string]sdktrace.ReadOnlySpan{"trigger accepted": intake, "sync started": run, "sync reported": run} {
		if l := lines[msg]; l == nil || l["trace_id"] != publisher.TraceID().String() || l["span_id"] != span.SpanContext().SpanID().String() {
			t.Fatalf("log line %q = %v, want trace_id %s and span_id %s", msg, l, publisher.TraceID(), span.SpanContext().SpanID())
		}
	}
}

// Configured by the OTEL_* variables, the worker exports its spans over OTLP/HTTP (flushed at
// its stop); switched off, it makes none and sends nothing, though an endpoint is set. Either way
// its log lines keep the trigger's trace id.
func TestTracingByConfiguration(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"on", map[string]string{"OTEL_SERVICE_NAME": "sync-test", "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=k"}, true},
		{"on over gRPC", map[string]string{"OTEL_SERVICE_NAME": "sync-test", "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=k",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true},
		{"disabled", map[string]string{"OTEL_SDK_DISABLED": "true"}, false},
		{"exporter none", map[string]string{"OTEL_TRACES_EXPORTER": "none"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := otlpsink.Start(true)
			defer sink.Close()
			tt.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.URL()
			if tt.env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc" {
				tt.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.GRPCURL()
			}
			h := newHarness(t, 100*time.Millisecond, tt.env)
			stop := h.startWorker("a")
			tr := group("corp.example.com", "proj-configured")
			tr.Traceparent = publisherTraceparent
			h.waitReported(15*time.Second, h.publish(tr))
			stop()

			if !tt.want {
				if sink.Requests() != 0 {
					t.Fatalf("tracing off, yet %d exports reached the endpoint", sink.Requests())
				}
			} else {
				got := map[string]bool{}
				for _, rs := range sink.Received() {
					for _, kv := range rs.GetResource().GetAttributes() {
						if kv.GetKey() == "service.name" && kv.GetValue().GetStringValue() != "sync-test" {
							t.Fatalf("service.name %v", kv.GetValue())
						}
					}
					for _, ss := range rs.GetScopeSpans() {
						for _, s := range ss.GetSpans() {
							got[s.GetName()] = true
						}
					}
				}
				for _, want := range []string{"intake", "run", "POST start sync", "publish dirsync.result.completed"} {
					if !got[want] {
						t.Fatalf("exported spans %v lack %q", got, want)
					}
				}
				if sink.Header().Get("X-Api-Key") != "k" {
					t.Fatalf("export headers %v", sink.Header())
				}
			}
			if !strings.Contains(h.Logs.String(), `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"`) {
				t.Fatal("the log lines lost the trigger's trace id")
			}
		})
	}
}

func named(spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	for _, s := range spans {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name()
	}
	return out
}

func attribute(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}
