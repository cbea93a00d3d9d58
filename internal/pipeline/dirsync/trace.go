package dirsync

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Span attributes the pipeline's spans share. They name what an operator searches traces by;
// never a secret, nor the triggers' principals.
const (
	AttrTenant       = attribute.Key("dirsync.tenant")
	AttrDirectory    = attribute.Key("dirsync.directory") // the directory's name (or, before it is resolved, the trigger's reference)
	AttrDirectoryID  = attribute.Key("dirsync.directory_id")
	AttrRunID        = attribute.Key("dirsync.run_id")
	AttrTriggerCount = attribute.Key("dirsync.trigger_count")
)

// SpanAttributes are the run's attributes on its spans and on its result publishes' spans.
func (r *Run) SpanAttributes() []attribute.KeyValue {
	return []attribute.KeyValue{AttrRunID.String(r.RunID), AttrTenant.String(r.Tenant), AttrDirectory.String(r.DirectoryName),
		AttrDirectoryID.String(r.DirectoryID)}
}

// The stored trace contexts (Trigger.Traceparent and IntakeSpan, Run.Traceparent and IntakeSpan)
// are W3C traceparent strings: the form events carry them in, readable in the stores, and the
// same whichever replica reads them back.

// SpanContext is the remote span context a traceparent names, for a parent or a link; the zero
// SpanContext (not valid) when tp is "" or malformed.
func SpanContext(tp string) trace.SpanContext {
	if tp == "" {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), &traceparentCarrier{v: tp}))
}

// Traceparent is the traceparent of a span context, "" when it is not valid.
func Traceparent(sc trace.SpanContext) string {
	c := traceparentCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), &c)
	return c.v
}

// LinkTarget is the span a run covering t links to: its intake span, else (accepted while tracing
// was off) the publisher's; not valid when neither is known.
func (t Trigger) LinkTarget() trace.SpanContext {
	if t.IntakeSpan != "" {
		return SpanContext(t.IntakeSpan)
	}
	return SpanContext(t.Traceparent)
}

// Parent is the span context a run's spans are children of: its first traced trigger's intake
// span, else that trigger's publisher's span.
func (r *Run) Parent() trace.SpanContext {
	if r.IntakeSpan != "" {
		return SpanContext(r.IntakeSpan)
	}
	return SpanContext(r.Traceparent)
}

// traceparentCarrier carries the traceparent alone (no tracestate is kept): no map per call.
type traceparentCarrier struct{ v string }

func (c traceparentCarrier) Get(key string) string {
	if key == "traceparent" {
		return c.v
	}
	return ""
}

func (c *traceparentCarrier) Set(key, value string) {
	if key == "traceparent" {
		c.v = value
	}
}

func (traceparentCarrier) Keys() []string { return []string{"traceparent"} }
