package tracing_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/tracing"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/logbuf"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/otlpsink"
)

func TestOffWithoutURL(t *testing.T) {
	tr, err := tracing.New(context.Background(), tracing.Settings{Exporter: tracetest.NewInMemoryExporter()})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() {
		t.Fatal("enabled without a URL")
	}
	_, span := tr.Provider().Tracer("t").Start(context.Background(), "x")
	if span.IsRecording() || span.SpanContext().IsValid() {
		t.Fatal("tracing off made a real span")
	}
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestResourceAndSampler(t *testing.T) {
	parent := func(sampled bool) context.Context {
		var flags trace.TraceFlags
		if sampled {
			flags = trace.FlagsSampled
		}
		return trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: flags, Remote: true}))
	}
	tests := []struct {
		sampler string
		ratio   float64
		ctx     context.Context
		want    bool
	}{
		{"", 0, context.Background(), true},
		{"", 0, parent(false), false}, // the publisher decides
		{"", 0, parent(true), true},
		{"always_on", 0, parent(false), true},
		{"always_off", 0, parent(true), false},
		{"parentbased_always_off", 0, context.Background(), false},
		{"parentbased_always_off", 0, parent(true), true},
		{"traceidratio", 0, context.Background(), false},
		{"parentbased_traceidratio", 1, context.Background(), true},
	}
	for _, tt := range tests {
		exp := tracetest.NewInMemoryExporter()
		tr, err := tracing.New(context.Background(), tracing.Settings{URL: "http://unused", Exporter: exp, Sampler: tt.sampler, Ratio: tt.ratio,
			Resource: map[string]string{"service.name": "dirsync", "team": "identity"}, Version: "1.2.3"})
		if err != nil {
			t.Fatal(err)
		}
		_, span := tr.Provider().Tracer("t").Start(tt.ctx, "x")
		span.End()
		// Before Shutdown, which empties the in-memory exporter.
		if err := tr.Provider().(*sdktrace.TracerProvider).ForceFlush(context.Background()); err != nil {
			t.Fatal(err)
		}
		spans := exp.GetSpans()
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := len(spans) == 1; got != tt.want {
			t.Errorf("sampler %q ratio %v: exported %d spans, want sampled %v", tt.sampler, tt.ratio, len(spans), tt.want)
			continue
		}
		if !tt.want {
			continue
		}
		res := map[attribute.Key]string{}
		for _, kv := range spans[0].Resource.Attributes() {
			res[kv.Key] = kv.Value.String()
		}
		if res["service.name"] != "dirsync" || res["team"] != "identity" || res["service.version"] != "1.2.3" || res["telemetry.sdk.language"] != "go" {
			t.Errorf("resource %v", res)
		}
	}
	if _, err := tracing.New(context.Background(), tracing.Settings{URL: "http://unused", Sampler: "xray"}); err == nil {
		t.Fatal("an unknown sampler was accepted")
	}
}

// The real exporters, against an in-process OTLP receiver: the spans arrive at the URL with the
// headers, over HTTP in either encoding and over gRPC, by Shutdown at the latest; a refused export
// is a warning in the worker's log, and its recovery an info line.
func TestExportsOverOTLP(t *testing.T) {
	for _, protocol := range []string{"http/protobuf", "http/json", "grpc"} {
		sink := otlpsink.Start(true)
		defer sink.Close()
		var logs logbuf.Buffer
		url := sink.URL() + "/v1/traces"
		if protocol == "grpc" {
			url = sink.GRPCURL()
		}
		tr, err := tracing.New(context.Background(), tracing.Settings{URL: url, Protocol: protocol,
			Headers: map[string]string{"Authorization": "Bearer k"}, Resource: map[string]string{"service.name": "vidm-sync-worker"},
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		tracer := tr.Provider().Tracer("t")
		sink.Fail(http.StatusBadRequest) // not retried: fails at once
		_, span := tracer.Start(context.Background(), "lost")
		span.End()
		if err := tr.Provider().(*sdktrace.TracerProvider).ForceFlush(context.Background()); err != nil {
			t.Fatal(err)
		}
		sink.Fail(0)
		_, span = tracer.Start(context.Background(), "kept")
		span.End()
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		rs := sink.Received()
		if sink.Spans() != 1 || len(rs) != 1 || rs[0].GetScopeSpans()[0].GetSpans()[0].GetName() != "kept" {
			t.Fatalf("%s: received %d spans: %v", protocol, sink.Spans(), rs)
		}
		if sink.Header().Get("Authorization") != "Bearer k" {
			t.Fatalf("%s: headers %v", protocol, sink.Header())
		}
		if !strings.Contains(logs.String(), "exporting spans failed; they are dropped") || !strings.Contains(logs.String(), "exporting spans works again") {
			t.Fatalf("%s: log:\n%s", protocol, logs.String())
		}
	}
}
