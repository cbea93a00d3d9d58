// Command go-consumer is an example consumer of vidm-sync-worker's result events: the part of a
// project-mapping service that learns when vIDM knows a new group.
//
// It reads vidm.directory.sync.completed and .failed from the DIRSYNC_RESULTS stream with a
// durable pull consumer, converts each NATS message to a CloudEvent with the CloudEvents Go SDK,
// handles it, and acknowledges it only then: a crash before the acknowledgement means the event
// is delivered again, so handling must be idempotent (the event id identifies a result).
//
// It depends only on nats.go and the CloudEvents SDK; copy it into your own service.
//
//	go run ./examples/go-consumer -nats-url nats://127.0.0.1:4222 -durable project-mapper
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// options are the command's flags.
type options struct {
	natsURL, credsFile string
	stream, durable    string
	inboxPrefix        string
	subjectPrefix      string
	from               string
	count              int
}

func main() {
	var o options
	flag.StringVar(&o.natsURL, "nats-url", envOr("NATS_URL", nats.DefaultURL), "NATS server URL (env NATS_URL)")
	flag.StringVar(&o.credsFile, "nats-creds", os.Getenv("NATS_CREDS_FILE"), "NATS credentials file (env NATS_CREDS_FILE)")
	flag.StringVar(&o.stream, "stream", envOr("RESULT_STREAM", "DIRSYNC_RESULTS"), "the worker's result stream (env RESULT_STREAM)")
	flag.StringVar(&o.subjectPrefix, "subject-prefix", envOr("RESULT_SUBJECT_PREFIX", "dirsync.result"), "the worker's result subject prefix (env RESULT_SUBJECT_PREFIX)")
	flag.StringVar(&o.inboxPrefix, "nats-inbox-prefix", envOr("NATS_INBOX_PREFIX", ""), "prefix of the subjects replies come back on (env NATS_INBOX_PREFIX; e.g. _INBOX_project_mapper with deploy/nats/nats-server.conf)")
	flag.StringVar(&o.durable, "durable", "example-project-mapper", "durable consumer name: one per consuming service, shared by its replicas")
	flag.StringVar(&o.from, "from", "new", "where a new durable consumer starts: new (results from now on) or all (every stored result)")
	flag.IntVar(&o.count, "count", 0, "exit after handling this many events (0: run until interrupted)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, log); err != nil {
		log.Error("consumer stopped", "err", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, o options, out io.Writer, log *slog.Logger) error {
	opts := []nats.Option{nats.Name("example-result-consumer"), nats.MaxReconnects(-1)}
	if o.inboxPrefix != "" {
		// The replies this user may receive (deploy/nats/nats-server.conf gives each user its own).
		opts = append(opts, nats.CustomInboxPrefix(o.inboxPrefix))
	}
	if o.credsFile != "" {
		opts = append(opts, nats.UserCredentials(o.credsFile))
	}
	nc, err := nats.Connect(o.natsURL, opts...)
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	cons, err := durableConsumer(ctx, js, o)
	if err != nil {
		return err
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	log.Info("consuming results", "stream", o.stream, "durable", o.durable)

	for handled := 0; o.count == 0 || handled < o.count; {
		m, err := it.Next()
		switch {
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return nil // interrupted
		case err != nil:
			// nats.go rides out broker restarts itself; these are reports, not the end.
			log.Warn("receiving", "err", err)
			continue
		}
		if process(ctx, m, out, log) {
			handled++
		}
	}
	it.Stop()
	return nil
}

// durableConsumer binds the durable consumer, or creates it the first time. Its position in the
// stream lives on the server: a restarted service continues where it acknowledged last.
func durableConsumer(ctx context.Context, js jetstream.JetStream, o options) (jetstream.Consumer, error) {
	cons, err := js.Consumer(ctx, o.stream, o.durable)
	if err == nil {
		return cons, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("consumer %s on stream %s: %w", o.durable, o.stream, err)
	}
	deliver := jetstream.DeliverNewPolicy
	if o.from == "all" {
		deliver = jetstream.DeliverAllPolicy
	}
	cons, err = js.CreateOrUpdateConsumer(ctx, o.stream, jetstream.ConsumerConfig{
		Durable:       o.durable,
		Description:   "example consumer of vidm-sync-worker results",
		DeliverPolicy: deliver,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		// Started events are progress only; a mapping service wants the outcome.
		FilterSubjects: []string{o.subjectPrefix + ".completed", o.subjectPrefix + ".failed"},
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on stream %s: %w", o.durable, o.stream, err)
	}
	return cons, nil
}

// process handles one message and settles it: Ack after handling, Nak (redelivery) when handling
// failed, Term for a message that can never be handled. It reports whether the event was handled.
func process(ctx context.Context, m jetstream.Msg, out io.Writer, log *slog.Logger) bool {
	e, err := binding.ToEvent(ctx, natsMessage{header: m.Headers(), data: m.Data()})
	if err == nil {
		err = e.Validate()
	}
	if err != nil {
		log.Error("not a CloudEvent; terminated", "subject", m.Subject(), "err", err)
		_ = m.TermWithReason("not a CloudEvent")
		return false
	}
	if err := handle(*e, out); err != nil {
		log.Warn("handling failed; redelivery in 10s", "id", e.ID(), "err", err)
		_ = m.NakWithDelay(10 * time.Second)
		return false
	}
	// DoubleAck waits for the server to confirm, so "handled" is only logged once it is settled.
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := m.DoubleAck(actx); err != nil {
		log.Warn("acknowledgement not confirmed; the event may come again", "id", e.ID(), "err", err)
	}
	return true
}

// resultData is the data of completed and failed events (schemas/sync-result.data.schema.json).
type resultData struct {
	Tenant        string    `json:"tenant"`
	DirectoryID   string    `json:"directoryId"`
	DirectoryName string    `json:"directoryName"`
	RunID         string    `json:"runId"`
	StartedAt     time.Time `json:"startedAt"`
	FinishedAt    time.Time `json:"finishedAt"`
	Status        string    `json:"status"` // COMPLETED or FAILED
	Triggers      []struct {
		ID     string `json:"id"`
		Source string `json:"source"`
		Type   string `json:"type"`
		Group  string `json:"group,omitempty"`
		User   string `json:"user,omitempty"`
	} `json:"triggers"`
	Error *struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		Retryable bool   `json:"retryable"`
	} `json:"error,omitempty"`
	// A run whose triggers do not fit in one message is reported in Pages events with the same
	// RunID, each listing a part of its triggers (Page from 1; TriggerCount for the whole run).
	// Absent (0) for a run reported in one event. Handling triggers one by one, as here, needs
	// nothing more; a service that acts once per run has all of it when it has seen pages
	// 1..Pages of that RunID (each event id is "<runId>.result.<page>").
	Page         int `json:"page,omitempty"`
	Pages        int `json:"pages,omitempty"`
	TriggerCount int `json:"triggerCount,omitempty"`
}

// handle is where a real service maps the groups of a completed sync to their projects. Here it
// prints one line per covered trigger; a page of a large run says which page it is.
func handle(e event.Event, out io.Writer) error {
	var d resultData
	if err := e.DataAs(&d); err != nil {
		return fmt.Errorf("result data: %w", err)
	}
	for _, t := range d.Triggers {
		line := fmt.Sprintf("%s trigger=%s group=%q user=%q directory=%q run=%s", d.Status, t.ID, t.Group, t.User, d.DirectoryName, d.RunID)
		if d.Pages > 1 {
			line += fmt.Sprintf(" page=%d/%d", d.Page, d.Pages)
		}
		if d.Error != nil {
			line += fmt.Sprintf(" error=%s retryable=%v message=%q", d.Error.Code, d.Error.Retryable, d.Error.Message)
		}
		if _, err := fmt.Fprintln(out, line); err != nil {
			return err
		}
	}
	return nil
}

// natsMessage presents a NATS message to the SDK's binding package per the CloudEvents NATS
// protocol binding: structured mode when Content-Type is application/cloudevents+json, binary
// mode (ce-* headers, percent-encoded values) otherwise. The SDK's own NATS JetStream protocol is
// not used because it acknowledges messages on receipt, before they are handled.
type natsMessage struct {
	header nats.Header
	data   []byte
}

const headerPrefix = "ce-"

// get looks a header up case-insensitively, as NATS header names are.
func (m natsMessage) get(name string) (string, bool) {
	for k, vs := range m.header {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0], true
		}
	}
	return "", false
}

func (m natsMessage) structured() bool {
	ct, _ := m.get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == event.ApplicationCloudEventsJSON
}

func (m natsMessage) version() spec.Version {
	sv, ok := m.get(headerPrefix + "specversion")
	if !ok {
		return nil
	}
	return spec.VS.Version(sv)
}

func (m natsMessage) ReadEncoding() binding.Encoding {
	switch {
	case m.structured():
		return binding.EncodingStructured
	case m.version() != nil:
		return binding.EncodingBinary
	}
	return binding.EncodingUnknown
}

func (m natsMessage) ReadStructured(ctx context.Context, w binding.StructuredWriter) error {
	if !m.structured() {
		return binding.ErrNotStructured
	}
	return w.SetStructuredEvent(ctx, format.JSON, bytes.NewReader(m.data))
}

func (m natsMessage) ReadBinary(_ context.Context, w binding.BinaryWriter) error {
	v := m.version()
	if v == nil || m.structured() {
		return binding.ErrNotBinary
	}
	hasDataContentType := false
	for k, vs := range m.header {
		name := strings.ToLower(k)
		if !strings.HasPrefix(name, headerPrefix) || len(vs) == 0 {
			continue
		}
		name = strings.TrimPrefix(name, headerPrefix)
		value, err := url.PathUnescape(vs[0])
		if err != nil {
			return fmt.Errorf("header %s: %w", k, err)
		}
		if attr := v.Attribute(name); attr != nil {
			hasDataContentType = hasDataContentType || attr.Kind() == spec.DataContentType
			err = w.SetAttribute(attr, value)
		} else {
			err = w.SetExtension(name, value)
		}
		if err != nil {
			return fmt.Errorf("header %s: %w", k, err)
		}
	}
	if ct, ok := m.get("Content-Type"); ok && !hasDataContentType {
		if err := w.SetAttribute(v.AttributeFromKind(spec.DataContentType), ct); err != nil {
			return err
		}
	}
	if len(m.data) > 0 {
		return w.SetData(bytes.NewReader(m.data))
	}
	return nil
}

// GetAttribute and GetExtension complete binding.MessageMetadataReader, which the SDK expects of
// a binary message.
func (m natsMessage) GetAttribute(k spec.Kind) (spec.Attribute, any) {
	v := m.version()
	if v == nil {
		return nil, nil
	}
	attr := v.AttributeFromKind(k)
	if attr == nil {
		return nil, nil
	}
	if s, ok := m.get(headerPrefix + attr.Name()); ok {
		if d, err := url.PathUnescape(s); err == nil {
			return attr, d
		}
	}
	return attr, nil
}

func (m natsMessage) GetExtension(name string) any {
	if s, ok := m.get(headerPrefix + name); ok {
		if d, err := url.PathUnescape(s); err == nil {
			return d
		}
	}
	return nil
}

// Finish is a no-op: settling the message (ack, nak, term) stays with process.
func (m natsMessage) Finish(error) error { return nil }

// Compile-time checks that natsMessage is what the SDK needs.
var (
	_ binding.Message               = natsMessage{}
	_ binding.MessageMetadataReader = natsMessage{}
)
