// Package intake accepts triggers from the JetStream trigger stream. A trigger is accepted once it
// is durably recorded in the pending set; only then is its message acknowledged, so a crash at any
// point either keeps the message for redelivery or has the trigger recorded. Bad input goes to the
// dead-letter stream with its reason and is terminated, never redelivered forever.
package intake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/backoff"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirstate"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
)

// maxStubHeaderBytes bounds the original headers a stub keeps; larger ones are left out too.
const maxStubHeaderBytes = 8 << 10

// Resolver finds the directory a trigger names in the backend of its tenant.
type Resolver interface {
	// Resolve returns the tenant's name (tenant "" is the default tenant) and the directory.
	// Errors wrap backend.ErrUnknownTenant, ErrDirectoryNotAllowed, ErrDirectoryNotFound or
	// ErrAmbiguousDirectory, or are the backend's (unreachable: retryable).
	Resolve(ctx context.Context, tenant, ref string) (string, backend.Directory, error)
	// AllowsIgnoreSafeguards reports whether the (resolved) tenant lets triggers ask vIDM to
	// ignore its sync safeguards.
	AllowsIgnoreSafeguards(tenant string) bool
}

// Observer hears what intake does with each message: metrics. Calls are synchronous and must
// return quickly.
type Observer interface {
	// Received: a message is being handled (redeliveries included).
	Received()
	// Accepted: the trigger is durably recorded in the pending set and its message acknowledged.
	Accepted(t dirsync.Trigger)
	// DeadLettered: the message is stored in the dead-letter stream with this reason code.
	DeadLettered(code string)
	// AlreadyReported: a redelivered trigger that a run has already reported was acknowledged
	// without being recorded again.
	AlreadyReported()
}

type nopObserver struct{}

func (nopObserver) Received()                {}
func (nopObserver) Accepted(dirsync.Trigger) {}
func (nopObserver) DeadLettered(string)      {}
func (nopObserver) AlreadyReported()         {}

// Config tunes intake.
type Config struct {
	DeadSubject string
	// MaxPayload is the broker's max_payload (nats.Conn.MaxPayload); a dead letter that would not
	// fit is stored as a stub. 0 means the NATS default of 1 MiB.
	MaxPayload int64
	PullBatch  int
	Logger     *slog.Logger
	Now        func() time.Time
	Observer   Observer // optional
	// Grants checks the admin API's grants to ignore safeguards; nil honours none.
	Grants *trigger.Grants
	// TracerProvider makes the "intake" span of every message, a child of the trigger's
	// traceparent. Default: no spans.
	TracerProvider trace.TracerProvider
}

// Intake consumes triggers.
type Intake struct {
	cfg      Config
	cons     jetstream.Consumer
	js       jetstream.JetStream
	dec      *trigger.Decoder
	resolver Resolver
	store    *dirstate.Store
	notify   func(dirsync.DirKey)
	log      *slog.Logger
	tracer   trace.Tracer
	inflight sync.WaitGroup
}

// New returns an Intake; notify is told the directory of every accepted trigger.
func New(cfg Config, js jetstream.JetStream, cons jetstream.Consumer, dec *trigger.Decoder, r Resolver, store *dirstate.Store, notify func(dirsync.DirKey)) *Intake {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PullBatch <= 0 {
		cfg.PullBatch = 64
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = 1 << 20
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = noop.NewTracerProvider()
	}
	return &Intake{cfg: cfg, cons: cons, js: js, dec: dec, resolver: r, store: store, notify: notify, log: cfg.Logger,
		tracer: cfg.TracerProvider.Tracer("github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/intake")}
}

// Run consumes until ctx ends, then stops pulling and waits for the triggers being recorded to be
// acknowledged or handed back.
func (in *Intake) Run(ctx context.Context) error {
	cc, err := in.cons.Consume(func(m jetstream.Msg) { in.handle(ctx, m) },
		jetstream.PullMaxMessages(in.cfg.PullBatch),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if ctx.Err() == nil {
				in.log.Warn("pulling triggers", "err", err)
			}
		}))
	if err != nil {
		return fmt.Errorf("consume triggers: %w", err)
	}
	<-ctx.Done()
	cc.Stop()
	<-cc.Closed()
	in.inflight.Wait()
	return nil
}

// handle hands each message to a goroutine of its own, so that decoding, validation and the
// durable write of many triggers proceed at once (bounded by the consumer's MaxAckPending): one
// message at a time on the consumer's goroutine would cap intake at one decode plus one broker
// round trip per trigger.
func (in *Intake) handle(ctx context.Context, m jetstream.Msg) {
	in.inflight.Go(func() { in.process(ctx, m) })
}

// process decides a message's fate, inside the message's "intake" span: a child of the trigger's
// traceparent, so the publisher's trace shows the trigger's acceptance. Its log lines are made
// with the span's context, which gives them the trace id (with tracing off, the trigger's own).
func (in *Intake) process(ctx context.Context, m jetstream.Msg) {
	began := time.Now()
	in.cfg.Observer.Received()
	t, err := in.dec.Decode(m.Headers(), m.Data())
	if err != nil {
		var te *trigger.Error
		code := string(contract.CodeMalformed)
		if errors.As(err, &te) {
			code = string(te.Code)
		}
		// Undecodable: its id and trace context are not trusted, so none are logged, and its
		// span starts a trace of its own.
		ctx, span := in.startSpan(ctx, m, began, nil)
		defer span.End()
		in.deadLetter(ctx, m, code, err.Error(), in.log)
		return
	}
	ctx, span := in.startSpan(ctx, m, began, &t)
	defer span.End()
	tenant, dir, err := in.resolver.Resolve(ctx, t.Tenant, t.DirectoryRef())
	if code := deadCode(err); code != "" {
		in.deadLetter(ctx, m, code, err.Error(), in.triggerLog(t.ID, t.DirectoryRef()))
		return
	}
	if err != nil {
		// vIDM unreachable or refusing us: not accepted yet, ask for it again later.
		in.retryLater(ctx, m, err, in.triggerLog(t.ID, t.DirectoryRef()))
		return
	}
	if span.IsRecording() {
		span.SetAttributes(dirsync.AttrTenant.String(tenant), dirsync.AttrDirectory.String(dir.Name), dirsync.AttrDirectoryID.String(dir.ID))
	}
	if dir.SyncDisabled {
		// Dead-lettered rather than synced: vIDM would sync nothing, and the publisher waiting for
		// its group would wait in vain. Re-drive it once the directory's sync is turned on.
		in.deadLetter(ctx, m, contract.CodeDirectorySyncDisabled, fmt.Sprintf("directory %q has its sync turned off in the identity system (syncConfigurationEnabled: false): turn it on in the directory's sync settings, then re-drive this trigger", backend.Clip(dir.Name, 256)),
			in.triggerLog(t.ID, t.DirectoryRef()))
		return
	}
	if t.IgnoreSafeguards && !in.resolver.AllowsIgnoreSafeguards(tenant) &&
		!in.cfg.Grants.Valid(m.Headers().Get(trigger.HeaderSafeguardsGrant), t.ID, t.Tenant, t.DirectoryRef()) {
		// Dead-lettered rather than synced without the flag: the publisher asked for something
		// it may not have, and must hear so; an operator may re-drive it once the tenant allows it.
		in.deadLetter(ctx, m, contract.CodeSafeguardsNotAllowed, fmt.Sprintf("ignoreSafeguards is not allowed for tenant %q: set allowIgnoreSafeguards on the tenant, or ask through the admin API", tenant),
			in.triggerLog(t.ID, t.DirectoryRef()))
		return
	}
	pt := dirsync.Trigger{
		ID: t.ID, Source: t.Source, Type: t.Type, Group: t.Group, User: t.User, Domain: t.Domain, Traceparent: t.Traceparent,
		Tenant: tenant, DirectoryID: dir.ID, DirectoryName: dir.Name,
		IgnoreSafeguards: t.IgnoreSafeguards, AcceptedAt: in.cfg.Now(),
	}
	if span.IsRecording() {
		// Stored with the trigger: the run that covers it links to this span.
		pt.IntakeSpan = dirsync.Traceparent(span.SpanContext())
	}
	if in.alreadyReported(ctx, m, pt) {
		return
	}
	in.record(ctx, m, pt)
}

// Values of the intake span's dirsync.intake.outcome.
const (
	outcomeAccepted        = "accepted"
	outcomeDeadLettered    = "dead_lettered"
	outcomeRetry           = "retry"
	outcomeAlreadyReported = "already_reported"
)

// outcomeKey is the intake span's attribute that says what became of the message.
const outcomeKey = attribute.Key("dirsync.intake.outcome")

// startSpan starts a message's intake span at began (before decoding, which it covers), as a
// child of the trigger's traceparent when t is decoded and has one. With tracing off the span is a
// no-op that still carries the traceparent's context, for the log lines.
func (in *Intake) startSpan(ctx context.Context, m jetstream.Msg, began time.Time, t *trigger.Trigger) (context.Context, trace.Span) {
	if t != nil {
		if parent := dirsync.SpanContext(t.Traceparent); parent.IsValid() {
			ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
		}
	}
	ctx, span := in.tracer.Start(ctx, "intake", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(began))
	if span.IsRecording() {
		span.SetAttributes(semconv.MessagingSystemKey.String("nats"), semconv.MessagingOperationTypeProcess,
			semconv.MessagingDestinationName(m.Subject()))
		if t != nil {
			span.SetAttributes(semconv.CloudEventsEventID(t.ID), semconv.CloudEventsEventSource(t.Source), semconv.CloudEventsEventType(t.Type),
				dirsync.AttrDirectory.String(t.DirectoryRef()))
			if t.Tenant != "" {
				span.SetAttributes(dirsync.AttrTenant.String(t.Tenant))
			}
		}
	}
	return ctx, span
}

// alreadyReported acknowledges a redelivered trigger that a run has already reported: its
// first delivery was recorded and reported, but its ack was lost. Without this it would be
// recorded again and reported twice. Only redeliveries are looked up (a first delivery cannot
// have been reported), and only as long as the marker is kept (the history bucket's TTL).
func (in *Intake) alreadyReported(ctx context.Context, m jetstream.Msg, pt dirsync.Trigger) bool {
	if md, err := m.Metadata(); err != nil || md.NumDelivered <= 1 {
		return false
	}
	runID, ok, err := in.store.Reported(ctx, pt.Key())
	if err != nil {
		// Recording it again costs at most a second report; losing it is not an option.
		in.triggerLog(pt.ID, pt.DirectoryName).WarnContext(ctx, "reading whether a redelivered trigger was reported failed; recording it", "err", err)
		return false
	}
	if !ok {
		return false
	}
	if err := m.Ack(); err != nil {
		in.triggerLog(pt.ID, pt.DirectoryName).WarnContext(ctx, "acknowledging a reported trigger failed", "err", err)
	}
	in.triggerLog(pt.ID, pt.DirectoryName).InfoContext(ctx, "redelivered trigger was already reported; acknowledged", "run_id", runID)
	trace.SpanFromContext(ctx).SetAttributes(outcomeKey.String(outcomeAlreadyReported), dirsync.AttrRunID.String(runID))
	in.cfg.Observer.AlreadyReported()
	return true
}

// deadCode is the dead-letter code of a resolution failure that no retry can fix, or "".
func deadCode(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, backend.ErrUnknownTenant):
		return contract.CodeUnknownTenant
	case errors.Is(err, backend.ErrDirectoryNotAllowed):
		return contract.CodeDirectoryNotAllowed
	case errors.Is(err, backend.ErrDirectoryNotFound):
		return contract.CodeUnknownDirectory
	case errors.Is(err, backend.ErrAmbiguousDirectory):
		return contract.CodeAmbiguousDirectory
	}
	return ""
}

// triggerLog is the logger for one trigger's lines; the trace id comes from the context they are
// logged with. It is built only when there is something to log: a logger per accepted trigger
// would cost more than deciding its fate.
func (in *Intake) triggerLog(id, directory string) *slog.Logger {
	return in.log.With("trigger_id", id, "directory", directory)
}

func (in *Intake) record(ctx context.Context, m jetstream.Msg, pt dirsync.Trigger) {
	// Detached from shutdown: a trigger half-recorded is finished, not abandoned.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	// From here on the directory is vIDM's name for it, not the trigger's reference.
	if err := in.store.AddPending(wctx, pt); err != nil {
		in.retryLater(ctx, m, err, in.triggerLog(pt.ID, pt.DirectoryName))
		return
	}
	if err := m.Ack(); err != nil {
		// The trigger is recorded; a redelivery lands on the same pending key.
		in.triggerLog(pt.ID, pt.DirectoryName).WarnContext(ctx, "acknowledging a recorded trigger failed", "err", err)
	}
	if in.log.Enabled(ctx, slog.LevelDebug) {
		in.triggerLog(pt.ID, pt.DirectoryName).DebugContext(ctx, "trigger accepted", "type", pt.Type)
	}
	trace.SpanFromContext(ctx).SetAttributes(outcomeKey.String(outcomeAccepted))
	in.cfg.Observer.Accepted(pt)
	in.notify(dirsync.NewDirKey(pt.Tenant, pt.DirectoryID))
}

// retryLater hands the message back with a delay growing with its delivery count.
func (in *Intake) retryLater(ctx context.Context, m jetstream.Msg, cause error, log *slog.Logger) {
	deliveries := 1
	if md, err := m.Metadata(); err == nil && md.NumDelivered > 1 {
		deliveries = int(min(md.NumDelivered, 64)) //nolint:gosec // at most 64
	}
	delay := backoff.Policy{Initial: 2 * time.Second, Max: time.Minute}.Delay(deliveries)
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(outcomeKey.String(outcomeRetry))
	span.SetStatus(codes.Error, "not accepted yet; redelivery requested")
	span.RecordError(cause)
	log.WarnContext(ctx, "trigger not accepted yet; redelivery requested", "retry_in", delay, "err", cause)
	if err := m.NakWithDelay(delay); err != nil {
		log.WarnContext(ctx, "nak failed; the message is redelivered after the ack wait", "err", err)
	}
}

// deadLetter publishes the message with its reason to the dead-letter subject, then terminates it.
// A message too large to be copied whole under the broker's max_payload is stored as a stub, so
// no publisher can keep a message (and an intake slot) handed back forever. If the dead letter
// cannot be stored for another reason (the broker), the message is handed back: nothing is dropped.
func (in *Intake) deadLetter(ctx context.Context, m jetstream.Msg, code, reason string, log *slog.Logger) {
	dl := deadCopy(in.cfg.DeadSubject, m, code, reason)
	opts := []jetstream.PublishOpt{}
	if md, err := m.Metadata(); err == nil {
		seq := strconv.FormatUint(md.Sequence.Stream, 10)
		dl.Header.Set(contract.HeaderDeadSeq, seq)
		opts = append(opts, jetstream.WithMsgID("dead-"+md.Stream+"-"+seq))
	}
	// The slack covers the message id header the publish adds.
	if msgSize(dl)+128 > in.cfg.MaxPayload {
		stub(dl, m)
	}
	_, err := in.js.PublishMsg(ctx, dl, opts...)
	if errors.Is(err, nats.ErrMaxPayload) && dl.Header.Get(contract.HeaderDeadOmitted) == "" {
		// The server's limit is below the one this connection was told of.
		stub(dl, m)
		_, err = in.js.PublishMsg(ctx, dl, opts...)
	}
	if err != nil {
		in.retryLater(ctx, m, fmt.Errorf("dead-lettering: %w", err), log)
		return
	}
	in.cfg.Observer.DeadLettered(code)
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(outcomeKey.String(outcomeDeadLettered), attribute.String("dirsync.dead_letter.code", code))
	span.SetStatus(codes.Error, "dead-lettered: "+code)
	log.WarnContext(ctx, "trigger dead-lettered", "code", code, "reason", reason, "subject", m.Subject(),
		"omitted", dl.Header.Get(contract.HeaderDeadOmitted))
	if err := m.TermWithReason(code); err != nil {
		log.WarnContext(ctx, "terminating a dead-lettered message failed", "err", err)
	}
}

// deadCopy is the whole message with the dead-letter headers.
func deadCopy(subject string, m jetstream.Msg, code, reason string) *nats.Msg {
	dl := nats.NewMsg(subject)
	for k, vs := range m.Headers() {
		for _, v := range vs {
			dl.Header.Add(k, v)
		}
	}
	dl.Header.Del(nats.MsgIdHdr)
	dl.Header.Set(contract.HeaderDeadCode, code)
	dl.Header.Set(contract.HeaderDeadReason, reason)
	dl.Header.Set(contract.HeaderDeadSubject, m.Subject())
	dl.Data = m.Data()
	return dl
}

// stub turns a dead copy into one that always fits: no payload, the original headers only when
// they are small, and the size and SHA-256 of what was left out.
func stub(dl *nats.Msg, m jetstream.Msg) {
	sum := sha256.New()
	sum.Write(m.Data())
	size := len(m.Data())
	omitted := contract.OmittedPayload
	if headerSize(m.Headers()) > maxStubHeaderBytes {
		// The digest then covers the headers too, in a fixed order.
		omitted = contract.OmittedAll
		keys := slices.Sorted(maps.Keys(m.Headers()))
		for _, k := range keys {
			for _, v := range m.Headers()[k] {
				fmt.Fprintf(sum, "\n%s: %s", k, v)
				size += len(k) + len(v) + 4
			}
		}
		kept := nats.Header{}
		for _, k := range []string{contract.HeaderDeadCode, contract.HeaderDeadReason, contract.HeaderDeadSubject, contract.HeaderDeadSeq} {
			if v := dl.Header.Get(k); v != "" {
				kept.Set(k, v)
			}
		}
		dl.Header = kept
	}
	dl.Header.Set(contract.HeaderDeadOmitted, omitted)
	dl.Header.Set(contract.HeaderDeadSize, strconv.Itoa(size))
	dl.Header.Set(contract.HeaderDeadSHA256, hex.EncodeToString(sum.Sum(nil)))
	dl.Data = nil
}

// msgSize is what the broker counts against max_payload: headers as sent, and the payload.
func msgSize(m *nats.Msg) int64 {
	return int64(headerSize(m.Header) + len(m.Data) + len(m.Subject))
}

func headerSize(h nats.Header) int {
	n := len("NATS/1.0\r\n\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}
