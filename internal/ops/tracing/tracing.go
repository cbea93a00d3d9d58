// Package tracing builds the worker's OpenTelemetry tracer provider: spans batched and exported
// with OTLP (over HTTP, or gRPC) to the collector the OTEL_* variables name, or a no-op provider
// when tracing is off. Nothing is global: the worker hands the provider to each part that makes spans, so two
// workers in one process (tests, the benchmark) trace apart.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Settings are what the provider is built from (config.Tracing's values).
type Settings struct {
	// URL is where spans are sent: over HTTP the traces path included, over gRPC the host and
	// port count. "" leaves tracing off.
	URL string
	// Protocol is http/protobuf ("" too), http/json or grpc.
	Protocol string
	// Headers go with every export; they may hold credentials.
	Headers map[string]string
	// Resource describes the worker in every span; service.name among them.
	Resource map[string]string
	// Version is the worker's service.version ("" leaves it out).
	Version string
	// Sampler is an OTEL_TRACES_SAMPLER name ("" is parentbased_always_on); Ratio is the
	// argument of the traceidratio ones.
	Sampler string
	Ratio   float64
	// Logger hears about failed exports. Default: discard.
	Logger *slog.Logger
	// Exporter replaces the OTLP exporter (tests); URL must still be set to turn tracing on.
	Exporter sdktrace.SpanExporter
}

// Tracing is the worker's tracer provider and what stopping it takes.
type Tracing struct {
	provider trace.TracerProvider
	sdk      *sdktrace.TracerProvider // nil when off
}

// Off is tracing switched off: a no-op provider, no exporter, nothing to flush.
func Off() *Tracing { return &Tracing{provider: noop.NewTracerProvider()} }

// New builds the provider: Off when s.URL is "", else an SDK provider whose batches go to s.URL.
// The exporter connects lazily, so a collector that is down costs dropped spans and a warning per
// failed export, never the worker's start.
func New(ctx context.Context, s Settings) (*Tracing, error) {
	if s.URL == "" {
		return Off(), nil
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	sampler, err := newSampler(s.Sampler, s.Ratio)
	if err != nil {
		return nil, err
	}
	exp := s.Exporter
	if exp == nil {
		if exp, err = newExporter(ctx, s); err != nil {
			return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
		}
	}
	attrs := make([]attribute.KeyValue, 0, len(s.Resource)+1)
	for k, v := range s.Resource {
		attrs = append(attrs, attribute.String(k, v))
	}
	if s.Version != "" {
		attrs = append(attrs, semconv.ServiceVersion(s.Version))
	}
	// Not resource.WithFromEnv: the attributes come from the validated configuration, so what
	// -print-config shows is what the spans carry.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithHost(), resource.WithAttributes(attrs...))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	// The batch processor's size and timing come from OTEL_BSP_*, read by the SDK.
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(&loggedExporter{SpanExporter: exp, log: s.Logger}),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler),
	)
	return &Tracing{provider: tp, sdk: tp}, nil
}

// Provider is the tracer provider to hand to the parts that make spans.
func (t *Tracing) Provider() trace.TracerProvider { return t.provider }

// Enabled reports whether spans are exported.
func (t *Tracing) Enabled() bool { return t.sdk != nil }

// Shutdown exports the spans still batched and stops the exporter; ctx bounds the wait.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.sdk == nil {
		return nil
	}
	if err := t.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: flushing spans: %w", err)
	}
	return nil
}

// newExporter is the OTLP exporter of s.Protocol. The options given here win over the
// environment, which the exporters read for the rest (timeout, compression, certificates).
func newExporter(ctx context.Context, s Settings) (sdktrace.SpanExporter, error) {
	switch s.Protocol {
	case "", "http/protobuf", "http/json":
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(s.URL)}
		if len(s.Headers) > 0 {
			opts = append(opts, otlptracehttp.WithHeaders(s.Headers))
		}
		if s.Protocol == "http/json" {
			opts = append(opts, otlptracehttp.WithEncoding(otlptracehttp.EncodingJSON))
		}
		return otlptracehttp.New(ctx, opts...)
	case "grpc":
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(s.URL)}
		if len(s.Headers) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(s.Headers))
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	return nil, fmt.Errorf("unknown protocol %q", s.Protocol)
}

// newSampler is the SDK's sampler of an OTEL_TRACES_SAMPLER name.
func newSampler(name string, ratio float64) (sdktrace.Sampler, error) {
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), nil
	}
	return nil, fmt.Errorf("tracing: unknown sampler %q", name)
}

// loggedExporter reports failed exports in the worker's own log rather than through
// OpenTelemetry's global error handler, which would write plain text beside the JSON lines.
// A failed batch is dropped either way (the exporter has already retried it).
type loggedExporter struct {
	sdktrace.SpanExporter
	log     *slog.Logger
	failing atomic.Bool
}

func (e *loggedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	switch {
	case err != nil:
		e.failing.Store(true)
		e.log.Warn("exporting spans failed; they are dropped", "spans", len(spans), "err", err)
	case err == nil && e.failing.Swap(false):
		e.log.Info("exporting spans works again")
	}
	return nil
}
