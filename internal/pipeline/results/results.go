// Package results publishes the events that tell downstream services what a directory sync did:
// vidm.directory.sync.started, then .completed or .failed, as binary-mode CloudEvents on JetStream.
// Event ids derive from the run id, so a re-publish after a crash is de-duplicated by the stream.
package results

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/safetext"
)

// Publisher publishes result events.
type Publisher struct {
	js     jetstream.JetStream
	prefix string // subject prefix; events go to prefix.started|completed|failed
	source string // CloudEvent source: this worker deployment
	tracer trace.Tracer
}

// New returns a Publisher. tp makes a "publish" span of every event published, a child of the
// caller's (the run's); nil makes none.
func New(js jetstream.JetStream, subjectPrefix, source string, tp trace.TracerProvider) *Publisher {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return &Publisher{js: js, prefix: subjectPrefix, source: source,
		tracer: tp.Tracer("github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/results")}
}

// Started publishes that the run's sync was started in vIDM.
func (p *Publisher) Started(ctx context.Context, r *dirsync.Run) (err error) {
	ctx, span := p.startSpan(ctx)
	defer func() { endSpan(span, err) }()
	data := contract.StartedData{
		Tenant: r.Tenant, DirectoryID: r.DirectoryID, DirectoryName: r.DirectoryName,
		RunID: r.RunID, StartedAt: r.StartedAt.UTC(),
	}
	msg, err := p.encode(r, r.RunID+".started", contract.TypeStarted, "started", r.StartedAt, data, eventTraceparent(span, r))
	if err != nil {
		return err
	}
	return p.send(ctx, span, r, contract.TypeStarted, msg)
}

// Finished publishes page n (from 1) of the run's outcome, completed or failed, listing the
// triggers of that page. A run of one page is reported in one event, as before paging existed.
func (p *Publisher) Finished(ctx context.Context, r *dirsync.Run, n int, triggers []dirsync.Trigger) (err error) {
	ctx, span := p.startSpan(ctx)
	defer func() { endSpan(span, err) }()
	msg, typ, err := p.finishedMsg(r, n, triggers, eventTraceparent(span, r))
	if err != nil {
		return err
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("dirsync.page", n), attribute.Int("dirsync.pages", r.Pages), dirsync.AttrTriggerCount.Int(len(triggers)))
	}
	return p.send(ctx, span, r, typ, msg)
}

// finishedMsg is page n of the completed or failed event of a reported run, and its type; tp is
// the event's traceparent.
func (p *Publisher) finishedMsg(r *dirsync.Run, n int, triggers []dirsync.Trigger, tp string) (*nats.Msg, string, error) {
	if r.Outcome == nil {
		return nil, "", fmt.Errorf("run %s has no outcome", r.RunID)
	}
	data := PageData(r, n, triggers)
	typ, kind := contract.TypeCompleted, "completed"
	if data.Status == contract.StatusFailed {
		typ, kind = contract.TypeFailed, "failed"
	}
	msg, err := p.encode(r, contract.PageEventID(r.RunID, n, r.Pages), typ, kind, r.Outcome.FinishedAt, data, tp)
	return msg, typ, err
}

// startSpan starts the span of one publish; its name gets the subject once it is known.
func (p *Publisher) startSpan(ctx context.Context) (context.Context, trace.Span) {
	return p.tracer.Start(ctx, "publish", trace.WithSpanKind(trace.SpanKindProducer))
}

// eventTraceparent is the traceparent a run's event carries: its publish span's when traced, so
// that the consumer of the result continues the trace under the publish; else the first covered
// trigger's, so that one trace still shows the pipeline step, the sync and the consumer.
func eventTraceparent(span trace.Span, r *dirsync.Run) string {
	if span.IsRecording() {
		return dirsync.Traceparent(span.SpanContext())
	}
	return r.Traceparent
}

func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "not published")
	}
	span.End()
}

func (p *Publisher) send(ctx context.Context, span trace.Span, r *dirsync.Run, typ string, msg *nats.Msg) error {
	if span.IsRecording() {
		span.SetName("publish " + msg.Subject)
		span.SetAttributes(r.SpanAttributes()...)
		span.SetAttributes(semconv.MessagingSystemKey.String("nats"), semconv.MessagingOperationTypeSend,
			semconv.MessagingDestinationName(msg.Subject), semconv.CloudEventsEventID(msg.Header.Get("ce-id")),
			semconv.CloudEventsEventType(typ))
	}
	if _, err := p.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish %s for run %s: %w", typ, r.RunID, err)
	}
	return nil
}

// encode builds the binary-mode message of one result event, with traceparent tp unless it is "";
// apart from the publish it is all the work of reporting a run, so it is kept separate to be
// measured on its own.
func (p *Publisher) encode(r *dirsync.Run, id, typ, kind string, at time.Time, data any, tp string) (*nats.Msg, error) {
	e := event.New()
	e.SetID(id)
	e.SetSource(p.source)
	e.SetType(typ)
	e.SetSubject(r.DirectoryName)
	e.SetTime(at)
	if tp != "" {
		e.SetExtension("traceparent", tp)
	}
	if err := e.SetData(event.ApplicationJSON, data); err != nil {
		return nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	msg, err := cenats.EncodeBinary(p.prefix+"."+kind, e)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	return msg, nil
}

// maxDelegationMessageLen is the result schema's bound on delegation.message.
const maxDelegationMessageLen = 2048

// PageData builds the data of page n of a reported run's result, listing triggers; a run of one
// page has no page fields.
func PageData(r *dirsync.Run, n int, triggers []dirsync.Trigger) contract.Data {
	d := ResultData(r)
	d.Triggers = make([]contract.Trigger, len(triggers))
	for i, t := range triggers {
		d.Triggers[i] = contract.Trigger{ID: t.ID, Source: t.Source, Type: t.Type, Group: t.Group, User: t.User}
		if t.Ready != nil {
			d.Triggers[i].Visible, d.Triggers[i].PrincipalID, d.Triggers[i].Hint = t.Ready.Visible(), t.Ready.PrincipalID, t.Ready.Hint
		}
	}
	if r.Pages > 1 {
		d.Page, d.Pages, d.TriggerCount = n, r.Pages, r.Count
	}
	return d
}

// ResultData builds the result data of a reported run, without its triggers (PageData lists
// them). A run that never reached vIDM counts from when it was created.
func ResultData(r *dirsync.Run) contract.Data {
	o := r.Outcome
	started := r.StartedAt
	if started.IsZero() {
		started = r.CreatedAt
	}
	d := contract.Data{
		Tenant: r.Tenant, DirectoryID: r.DirectoryID, DirectoryName: r.DirectoryName, RunID: r.RunID,
		StartedAt: started.UTC(), FinishedAt: o.FinishedAt.UTC(),
		DurationMs: max(0, o.FinishedAt.Sub(started).Milliseconds()),
		Status:     o.Status,
		Triggers:   []contract.Trigger{},
	}
	if o.Status == contract.StatusFailed {
		d.Error = &contract.Error{Code: o.ErrCode, Message: o.ErrMessage, Retryable: o.Retryable}
	}
	d.Connector, d.Attempts = o.Connector, o.Attempts
	if dl := o.Delegation; dl != nil {
		// The provider's strings come from the backend: bounded and cleaned to the schema.
		d.Delegation = &contract.Delegation{Kind: dl.Kind, ProviderID: safetext.Clean(dl.ProviderID, maxProviderIDLen),
			Provider: safetext.Clean(dl.ProviderName, maxProviderLen), Source: safetext.Clean(dl.Source, maxSourceLen),
			Message: safetext.Clean(dl.Message, maxDelegationMessageLen)}
		if !dl.TokenExpiresAt.IsZero() {
			t := dl.TokenExpiresAt.UTC()
			d.Delegation.TokenExpiresAt = &t
		}
	}
	return d
}
