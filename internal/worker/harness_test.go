package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/workertest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/worker"
	"github.com/vidm-sync-worker/vidm-sync-worker/schemas"
)

// harness is the worker test kit's stack (one embedded NATS server and one simulator, real over
// loopback, workers started and stopped by the test) with this package's triggers and checks.
type harness struct {
	*workertest.Stack
	t       *testing.T
	schemas map[string]*jsonschema.Schema
}

const (
	testSecret = "worker-oauth-secret-77Xq"
	corpID     = "dir-corp"
	emeaID     = "dir-emea"
	labID      = "dir-lab"
)

func simConfig(syncDuration time.Duration) vidmsim.Config {
	return vidmsim.Config{
		Directories: []vidmsim.Directory{
			{ID: corpID, Name: "Corp AD", Domains: []string{"corp.example.com"}},
			{ID: emeaID, Name: "EMEA AD", Domains: []string{"emea.example.com"}},
			{ID: labID, Name: "Lab AD", Domains: []string{"lab.example.com"}},
		},
		Clients:      []vidmsim.Client{{ID: "vidm-sync-worker", Secret: testSecret}},
		TokenTTL:     time.Hour,
		SyncDuration: syncDuration,
	}
}

func newHarness(t *testing.T, syncDuration time.Duration, env map[string]string) *harness {
	t.Helper()
	return newHarnessWith(t, syncDuration, env, 0)
}

// newHarnessWith is newHarness on a server with the given max_payload (0: NATS's default).
func newHarnessWith(t *testing.T, syncDuration time.Duration, env map[string]string, maxPayload int32) *harness {
	t.Helper()
	sc := simConfig(syncDuration)
	return &harness{Stack: workertest.Start(t, workertest.Options{Sim: &sc, Env: env, NATSMaxPayload: maxPayload}), t: t}
}

func (h *harness) logger(name string) *slog.Logger { return h.Logger(name) }

// startWorker runs a worker until the returned stop is called (a graceful SIGTERM-like stop) or
// the test ends.
func (h *harness) startWorker(name string, opts ...worker.Option) (stop func()) {
	h.t.Helper()
	return h.StartWorker(name, opts...).Stop
}

func (h *harness) startCrashableWorker(name string) (crash func()) {
	h.t.Helper()
	return h.StartCrashableWorker(name)
}

func (h *harness) waitConsumer() {
	h.t.Helper()
	h.WaitConsumer()
}

// publish sends a trigger in binary mode.
func (h *harness) publish(t trigger.Trigger) string {
	h.t.Helper()
	id, msg := h.triggerMsg(t)
	h.publishMsg(msg)
	return id
}

// triggerMsg encodes a trigger as a binary-mode message and returns its event id.
func (h *harness) triggerMsg(t trigger.Trigger) (string, *nats.Msg) {
	h.t.Helper()
	e, err := trigger.NewEvent(t)
	if err != nil {
		h.t.Fatal(err)
	}
	msg, err := cenats.EncodeBinary("dirsync.trigger.test", e)
	if err != nil {
		h.t.Fatal(err)
	}
	return e.ID(), msg
}

func (h *harness) publishMsg(msg *nats.Msg) {
	h.t.Helper()
	if _, err := h.JS.PublishMsg(context.Background(), msg); err != nil {
		h.t.Fatal(err)
	}
}

func group(domain, name string) trigger.Trigger {
	return trigger.Trigger{Type: "ad.group.created", Source: "urn:test:pipeline", Domain: domain, Group: name}
}

// resultEvent is one decoded message of the results stream.
type resultEvent struct {
	Type string
	ID   string
	Data contract.Data
}

func (h *harness) streamMsgs(stream string) []*jetstream.RawStreamMsg {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.JS.Stream(ctx, stream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			h.t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// compileSchemas loads the contract's JSON Schemas, so every result the worker publishes is checked
// against what downstream consumers are promised.
func compileSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	for _, n := range schemas.Names() {
		b, err := schemas.FS.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource(schemas.BaseURL+n, doc); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]*jsonschema.Schema{}
	for typ, n := range map[string]string{contract.TypeStarted: schemas.SyncStarted, contract.TypeCompleted: schemas.SyncResult,
		contract.TypeFailed: schemas.SyncResult, contract.TypeSyncClientTokenExpiring: schemas.SyncTokenExpiring} {
		sch, err := c.Compile(schemas.BaseURL + n)
		if err != nil {
			t.Fatal(err)
		}
		out[typ] = sch
	}
	return out
}

func (h *harness) results() []resultEvent {
	h.t.Helper()
	if h.schemas == nil {
		h.schemas = compileSchemas(h.t)
	}
	var out []resultEvent
	for _, m := range h.streamMsgs(h.Cfg.ResultStream) {
		e, err := cenats.Decode(m.Header, m.Data)
		if err != nil {
			h.t.Fatalf("result message does not decode: %v", err)
		}
		if e.Type() == contract.TypeSyncClientTokenExpiring {
			continue // a warning, not a run's result (see warnings)
		}
		r := resultEvent{Type: e.Type(), ID: e.ID()}
		if err := json.Unmarshal(e.Data(), &r.Data); err != nil {
			h.t.Fatal(err)
		}
		sch, ok := h.schemas[r.Type]
		if !ok {
			h.t.Fatalf("result event of unexpected type %q", r.Type)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(e.Data()))
		if err != nil {
			h.t.Fatal(err)
		}
		if err := sch.Validate(doc); err != nil {
			h.t.Fatalf("%s event %s breaks its schema: %v", r.Type, r.ID, err)
		}
		if e.Source() != h.Cfg.ResultSource || (r.Type != contract.TypeStarted && e.Subject() != r.Data.DirectoryName) {
			h.t.Fatalf("event attributes: source %q subject %q", e.Source(), e.Subject())
		}
		out = append(out, r)
	}
	return out
}

func terminal(rs []resultEvent) []resultEvent {
	var out []resultEvent
	for _, r := range rs {
		if r.Type != contract.TypeStarted {
			out = append(out, r)
		}
	}
	return out
}

// reported maps each trigger id to the terminal results that list it.
func reported(rs []resultEvent) map[string][]resultEvent {
	m := map[string][]resultEvent{}
	for _, r := range terminal(rs) {
		for _, tr := range r.Data.Triggers {
			m[tr.ID] = append(m[tr.ID], r)
		}
	}
	return m
}

// waitReported waits until every id appears in a terminal result and returns the results.
func (h *harness) waitReported(timeout time.Duration, ids ...string) []resultEvent {
	h.t.Helper()
	var rs []resultEvent
	poll.Until(h.t, timeout, fmt.Sprintf("%d triggers reported", len(ids)), func() bool {
		rs = h.results()
		rep := reported(rs)
		for _, id := range ids {
			if len(rep[id]) == 0 {
				return false
			}
		}
		return true
	})
	return rs
}

func (h *harness) syncsOf(dirID string) []vidmsim.SyncRecord {
	var out []vidmsim.SyncRecord
	for _, r := range h.Dev.Sim.SyncLog() {
		if r.DirectoryID == dirID {
			out = append(out, r)
		}
	}
	return out
}

func ids(rs []contract.Trigger) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	slices.Sort(out)
	return out
}
