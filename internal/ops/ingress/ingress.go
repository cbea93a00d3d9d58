// Package ingress is the CloudEvents HTTP protocol binding for triggers: publishers that cannot
// speak NATS (an ABX action, a vRO workflow, a webhook) POST a trigger to /events, in binary mode
// (ce-* headers, the data as the body) or structured mode (Content-Type
// application/cloudevents+json). The ingress checks it exactly as the worker will — the same
// encoding to a NATS message, the same decoder — so a trigger the worker would dead-letter for its
// form is refused with 400 and never published. An accepted trigger is published to JetStream with
// its event id as Nats-Msg-Id, so a retried POST is stored once. With ?wait=<duration> the answer
// is the trigger's outcome: the result event (200), the dead letter's reason (422) or a timeout
// (504).
package ingress

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/await"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/httplimits"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/safetext"
)

// Defaults of Config.
const (
	DefaultSubject = "dirsync.trigger.http"
	DefaultMaxWait = 10 * time.Minute
	DefaultMaxBody = 1 << 20
	// DefaultMaxWaiters bounds the requests waiting at once (each holds a connection, a
	// goroutine and a registration, tens of KiB).
	DefaultMaxWaiters = 256
)

const (
	// Path is the one resource: POST /events.
	Path = "/events"
	// HeaderResultStatus says COMPLETED or FAILED on a 200 answer to ?wait.
	HeaderResultStatus = "Dirsync-Result-Status"
	// HeaderPrincipalVisible and HeaderPrincipalID carry, on a 200 answer to ?wait, what the
	// readiness check found of the trigger's group or user: "true" with its id, or "false".
	// Absent when it was not checked (the result's trigger entry then has a hint).
	HeaderPrincipalVisible = "Dirsync-Principal-Visible"
	HeaderPrincipalID      = "Dirsync-Principal-Id"
	// Realm is the bearer realm of the WWW-Authenticate challenge.
	Realm = "vidm-sync-worker"
)

const (
	contentTypeBatch = "application/cloudevents-batch+json"
	// publishTimeout bounds one publish; JetStream answers in milliseconds when it is up.
	publishTimeout = 10 * time.Second
	// retryAfter is what a 503 suggests to the client, in seconds.
	retryAfter = "5"
	// maxEcho bounds the library error text quoted in an answer.
	maxEcho = 160
)

// Config configures the ingress.
type Config struct {
	// Token is the bearer token publishers present. Empty refuses every request, unless
	// ClientCerts.
	Token string
	// ClientCerts says the server requires and verifies client certificates in the TLS
	// handshake (INGRESS_TLS_CLIENT_CA_FILE): a request without a verified one is refused here
	// too, and it takes the token as well, if there is one.
	ClientCerts bool
	// Subject is the trigger subject events are published to; it must be one of the worker's
	// TRIGGER_SUBJECTS. Default DefaultSubject.
	Subject string
	// MaxWait caps ?wait=. Default DefaultMaxWait.
	MaxWait time.Duration
	// MaxBody bounds the request body in bytes. Default DefaultMaxBody.
	MaxBody int64
	// MaxWaiters bounds the ?wait requests waiting at once; beyond it a ?wait request is refused
	// with 429 before anything is published. Default DefaultMaxWaiters.
	MaxWaiters int
	// AnswerTime is the time an answer may take to be written, added to a ?wait's wait for its
	// write deadline. Default httplimits.DefaultWrite.
	AnswerTime time.Duration
	// Logger gets one line per request; never a token or a body. Default: discard.
	Logger *slog.Logger
}

// Publisher is the JetStream call the ingress makes; a jetstream.JetStream is one.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

type handler struct {
	cfg      Config
	pub      Publisher
	dec      *trigger.Decoder
	watcher  *await.Watcher
	log      *slog.Logger
	tokenSum [sha256.Size]byte
	waiters  chan struct{} // a slot per ?wait request in flight
}

// New returns the ingress handler. w follows the results for ?wait; nil answers ?wait with 400.
func New(cfg Config, js Publisher, dec *trigger.Decoder, w *await.Watcher) http.Handler {
	cfg.Subject = cmp.Or(cfg.Subject, DefaultSubject)
	cfg.MaxWait = cmp.Or(cfg.MaxWait, DefaultMaxWait)
	cfg.MaxBody = cmp.Or(cfg.MaxBody, DefaultMaxBody)
	cfg.MaxWaiters = cmp.Or(cfg.MaxWaiters, DefaultMaxWaiters)
	cfg.AnswerTime = cmp.Or(cfg.AnswerTime, httplimits.DefaultWrite)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{cfg: cfg, pub: js, dec: dec, watcher: w, log: cfg.Logger, waiters: make(chan struct{}, cfg.MaxWaiters)}
	if cfg.Token == "" && !cfg.ClientCerts {
		h.log.Error("ingress has no token: every request is refused")
	}
	// Compared as hashes, so that the comparison takes the same time whatever the lengths.
	h.tokenSum = sha256.Sum256([]byte(cfg.Token))
	return h
}

// problem is the JSON body of every answer that is not an event.
type problem struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
	ID    string `json:"id,omitempty"`
}

// Accepted is the body of a 202 answer.
type Accepted struct {
	ID        string `json:"id"`
	Subject   string `json:"subject"`
	Stream    string `json:"stream"`
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
}

func (h *handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path {
		h.answer(rw, r, http.StatusNotFound, problem{Error: "no such resource: POST events to " + Path})
		return
	}
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		h.answer(rw, r, http.StatusMethodNotAllowed, problem{Error: "method " + r.Method + " is not allowed: POST events to " + Path})
		return
	}
	if reason := h.unauthorized(r); reason != "" {
		if h.cfg.Token != "" {
			rw.Header().Set("WWW-Authenticate", `Bearer realm="`+Realm+`"`)
		}
		h.answer(rw, r, http.StatusUnauthorized, problem{Error: reason})
		return
	}
	wait, err := h.waitParam(r.URL.Query())
	if err != nil {
		h.answer(rw, r, http.StatusBadRequest, problem{Error: err.Error()})
		return
	}
	if reason := unsupportedFormat(r.Header.Get("Content-Type")); reason != "" {
		h.answer(rw, r, http.StatusUnsupportedMediaType, problem{Error: reason, Code: string(contract.CodeUnsupportedContentType)})
		return
	}
	body, status, err := h.readBody(rw, r)
	if err != nil {
		h.answer(rw, r, status, problem{Error: err.Error()})
		return
	}
	msg, t, rej := h.validate(r, body)
	if rej != nil {
		h.answer(rw, r, http.StatusBadRequest, problem{Error: rej.Reason, Code: string(rej.Code), ID: rej.EventID})
		return
	}

	var wt *await.Wait
	if wait > 0 {
		// Refused before publishing: the client retries, or POSTs without ?wait, and nothing
		// was accepted behind its back.
		select {
		case h.waiters <- struct{}{}:
			defer func() { <-h.waiters }()
		default:
			rw.Header().Set("Retry-After", retryAfter)
			h.answer(rw, r, http.StatusTooManyRequests, problem{ID: t.ID, Error: fmt.Sprintf(
				"%d requests are already waiting for their results; the trigger was not published: retry later, or POST without ?wait", h.cfg.MaxWaiters)})
			return
		}
		httplimits.Extend(rw, wait+h.cfg.AnswerTime)
		// Registered before publishing, so a fast result cannot go by unseen.
		wt = h.watcher.Register(t.ID)
		defer wt.Cancel()
	}
	// Not cancelled with the request: a publish under way is finished, so that the log says
	// what became of the trigger.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), publishTimeout)
	ack, err := h.pub.PublishMsg(pctx, msg)
	cancel()
	if err != nil {
		h.publishFailed(rw, r, t.ID, err)
		return
	}
	h.log.Info("trigger published", "id", t.ID, "type", t.Type, "stream", ack.Stream, "seq", ack.Sequence, "duplicate", ack.Duplicate, "wait", wait)
	if wt == nil {
		h.answer(rw, r, http.StatusAccepted, Accepted{ID: t.ID, Subject: msg.Subject, Stream: ack.Stream, Seq: ack.Sequence, Duplicate: ack.Duplicate})
		return
	}
	h.awaitOutcome(rw, r, wt, ack, wait)
}

// authorized checks the bearer token in constant time.
// unauthorized says why r may not publish, or "" if it may: with client certificates, it needs
// a verified one (the handshake requires it; this holds should the server be set up otherwise),
// and with a token, the token.
func (h *handler) unauthorized(r *http.Request) string {
	if h.cfg.ClientCerts && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
		return "a verified client certificate is required"
	}
	if h.cfg.Token == "" && h.cfg.ClientCerts {
		return ""
	}
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || h.cfg.Token == "" {
		return badToken
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(cred)))
	if subtle.ConstantTimeCompare(sum[:], h.tokenSum[:]) != 1 {
		return badToken
	}
	return ""
}

const badToken = "missing or wrong bearer token (Authorization: Bearer <token>)"

// waitParam reads ?wait=: absent is 0 (do not wait). Unknown parameters are refused rather than
// ignored, so that a misspelt ?wiat= does not silently turn into a 202.
func (h *handler) waitParam(q url.Values) (time.Duration, error) {
	for k := range q {
		if k != "wait" {
			return 0, fmt.Errorf("unknown query parameter %q (the only one is wait, e.g. ?wait=90s)", safetext.Truncate(k, 32))
		}
	}
	vs := q["wait"]
	switch {
	case len(vs) == 0:
		return 0, nil
	case len(vs) > 1:
		return 0, errors.New("wait is given more than once")
	}
	d, err := time.ParseDuration(vs[0])
	switch {
	case err != nil:
		return 0, fmt.Errorf("wait=%q is not a duration (e.g. 90s, 5m)", safetext.Truncate(vs[0], 32))
	case d <= 0:
		return 0, fmt.Errorf("wait=%s must be positive", vs[0])
	case d > h.cfg.MaxWait:
		return 0, fmt.Errorf("wait=%s exceeds the maximum of %s", vs[0], h.cfg.MaxWait)
	case h.watcher == nil:
		return 0, errors.New("this ingress cannot wait for results; POST without ?wait")
	}
	return d, nil
}

// unsupportedFormat refuses the CloudEvents formats other than JSON structured mode: batch mode
// above all, which would publish several triggers under one answer.
func unsupportedFormat(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt, _, _ = strings.Cut(contentType, ";")
		mt = strings.ToLower(strings.TrimSpace(mt))
	}
	switch {
	case mt == contentTypeBatch:
		return "batch mode (" + contentTypeBatch + ") is not supported: POST one event per request, in binary mode or structured mode (" + event.ApplicationCloudEventsJSON + ")"
	case strings.HasPrefix(mt, "application/cloudevents") && mt != event.ApplicationCloudEventsJSON:
		return fmt.Sprintf("event format %q is not supported: use binary mode, or structured mode with %s", safetext.Truncate(mt, 64), event.ApplicationCloudEventsJSON)
	}
	return ""
}

func (h *handler) readBody(rw http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	tooLarge := fmt.Errorf("request body exceeds the limit of %d bytes", h.cfg.MaxBody)
	if r.ContentLength > h.cfg.MaxBody {
		return nil, http.StatusRequestEntityTooLarge, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, h.cfg.MaxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, http.StatusRequestEntityTooLarge, tooLarge
		}
		if httplimits.TimedOut(err) {
			return nil, http.StatusRequestTimeout, errors.New("the request body was not sent in time")
		}
		return nil, http.StatusBadRequest, fmt.Errorf("reading the request body: %w", err)
	}
	return body, 0, nil
}

// validate turns the request into the NATS message the worker will read, and reads it back with
// the worker's decoder: what passes here passes intake's decoding, and nothing else is published.
func (h *handler) validate(r *http.Request, body []byte) (*nats.Msg, trigger.Trigger, *trigger.Error) {
	malformed := func(format string, args ...any) (*nats.Msg, trigger.Trigger, *trigger.Error) {
		return nil, trigger.Trigger{}, &trigger.Error{Code: contract.CodeMalformed, Reason: safetext.Clean(fmt.Sprintf(format, args...), 512)}
	}
	hdr, err := decodeCEHeaders(r.Header)
	if err != nil {
		return malformed("%v", err)
	}
	m := cehttp.NewMessage(hdr, io.NopCloser(bytes.NewReader(body)))
	switch m.ReadEncoding() {
	case binding.EncodingBinary, binding.EncodingStructured:
	default:
		return malformed("not a CloudEvent: send binary mode (ce-specversion, ce-id, ce-source and ce-type headers, the data as the body with Content-Type application/json) or structured mode (Content-Type %s)", event.ApplicationCloudEventsJSON)
	}
	e, err := binding.ToEvent(r.Context(), m)
	if err != nil {
		return malformed("not a valid CloudEvent: %s", safetext.Truncate(err.Error(), maxEcho))
	}
	msg, err := cenats.EncodeBinary(h.cfg.Subject, *e)
	if err != nil {
		return malformed("not a valid CloudEvent: %s", strings.TrimPrefix(err.Error(), "cloudevent: cannot encode: "))
	}
	t, err := h.dec.Decode(msg.Header, msg.Data)
	if err != nil {
		if te, ok := errors.AsType[*trigger.Error](err); ok {
			return nil, trigger.Trigger{}, te
		}
		return malformed("%s", safetext.Truncate(err.Error(), maxEcho))
	}
	return msg, t, nil
}

// decodeCEHeaders undoes the percent-encoding the CloudEvents HTTP binding (1.0.2, 3.1.3.2)
// prescribes for ce-* header values, which sdk-go leaves to the application, and refuses a ce-*
// header given twice (sdk-go would silently take the first).
func decodeCEHeaders(h http.Header) (http.Header, error) {
	out := make(http.Header, len(h))
	for k, vs := range h {
		if !strings.HasPrefix(strings.ToLower(k), "ce-") {
			out[k] = vs
			continue
		}
		if len(vs) > 1 {
			return nil, fmt.Errorf("header %s is given more than once", safetext.Truncate(k, 32))
		}
		v := vs[0]
		if strings.Contains(v, "%") {
			d, err := url.PathUnescape(v)
			if err != nil {
				return nil, fmt.Errorf("header %s has an invalid percent-encoding", safetext.Truncate(k, 32))
			}
			v = d
		}
		out[k] = []string{v}
	}
	return out, nil
}

func (h *handler) publishFailed(rw http.ResponseWriter, r *http.Request, id string, err error) {
	msg := "publishing the trigger failed; it was not accepted, retry later: " + safetext.Truncate(err.Error(), maxEcho)
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		msg = fmt.Sprintf("no JetStream stream answered for subject %s (JetStream unavailable, or the subject is not one of the worker's trigger subjects); the trigger was not accepted, retry later", h.cfg.Subject)
	}
	h.log.Warn("publishing a trigger failed", "id", id, "subject", h.cfg.Subject, "err", err)
	rw.Header().Set("Retry-After", retryAfter)
	h.answer(rw, r, http.StatusServiceUnavailable, problem{Error: msg, ID: id})
}

// awaitOutcome answers with the trigger's outcome, or a timeout.
func (h *handler) awaitOutcome(rw http.ResponseWriter, r *http.Request, wt *await.Wait, ack *jetstream.PubAck, wait time.Duration) {
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	id := wt.ID()
	if ack.Duplicate {
		// A retried POST: the original may have been reported before this request registered.
		o, found, err := h.watcher.Earlier(ctx, id, ack)
		if err != nil {
			h.log.Warn("looking for the earlier outcome of a duplicate trigger", "id", id, "err", err)
		}
		if found {
			h.outcome(rw, r, o, id)
			return
		}
	}
	o, err := wt.Wait(ctx)
	switch {
	case err == nil:
		h.outcome(rw, r, o, id)
	case r.Context().Err() != nil:
		// The client went away; the deferred Cancel releases the wait.
		h.log.Info("client left before the result", "id", id)
	case errors.Is(err, context.DeadlineExceeded):
		h.log.Info("no result within the wait", "id", id, "wait", wait)
		h.answer(rw, r, http.StatusGatewayTimeout, problem{ID: id, Error: fmt.Sprintf(
			"no result within %s; the trigger is still published and will be synced (POST the same event again with ?wait to keep waiting: it is not published twice)", wait)})
	default:
		h.log.Error("cannot follow the results", "id", id, "err", err)
		rw.Header().Set("Retry-After", retryAfter)
		h.answer(rw, r, http.StatusServiceUnavailable, problem{ID: id, Error: "the trigger is published and will be synced, but its result cannot be followed now (POST the same event again with ?wait later: it is not published twice)"})
	}
}

func (h *handler) outcome(rw http.ResponseWriter, r *http.Request, o await.Outcome, id string) {
	if o.Kind == await.DeadLettered {
		h.answer(rw, r, http.StatusUnprocessableEntity, problem{ID: id, Code: o.DeadCode,
			Error: "the worker rejected the trigger: " + o.DeadReason})
		return
	}
	rw.Header().Set(HeaderResultStatus, o.Kind.String())
	if v := o.Trigger.Visible; v != nil {
		rw.Header().Set(HeaderPrincipalVisible, fmt.Sprint(*v))
		if *v {
			rw.Header().Set(HeaderPrincipalID, o.Trigger.PrincipalID)
		}
	}
	e := o.Event
	err := cehttp.WriteResponseWriter(binding.WithForceStructured(r.Context()), (*binding.EventMessage)(&e), http.StatusOK, rw)
	if err != nil {
		h.log.Warn("writing the result event", "id", id, "err", err)
		return
	}
	h.log.Info("answered with the result", "id", id, "status", o.Kind.String(), "run_id", o.Data.RunID)
}

func (h *handler) answer(rw http.ResponseWriter, r *http.Request, status int, body any) {
	if p, ok := body.(problem); ok && status >= 400 && status < 500 && status != http.StatusNotFound {
		h.log.Info("request refused", "method", r.Method, "status", status, "code", p.Code, "reason", p.Error, "remote", r.RemoteAddr)
	}
	b, err := json.Marshal(body)
	if err != nil {
		http.Error(rw, `{"error":"internal error"}`, http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	rw.WriteHeader(status)
	_, _ = rw.Write(append(b, '\n'))
}
