package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/sethvargo/go-envconfig"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/devstack"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/logbuf"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/worker"
	"github.com/vidm-sync-worker/vidm-sync-worker/schemas"
)

// harness is one embedded NATS server and one simulator, real over loopback, with workers started
// and stopped by the test.
type harness struct {
	t       *testing.T
	stack   *devstack.Stack
	cfg     config.Config
	nc      *nats.Conn
	js      jetstream.JetStream
	logs    *logbuf.Buffer
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
	stack, err := devstack.Start(devstack.Options{StoreDir: t.TempDir(), Sim: &sc, NATSMaxPayload: maxPayload})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.Close)
	vars := map[string]string{
		"COALESCE_WINDOW":       "50ms",
		"POLL_INITIAL_INTERVAL": "20ms",
		"POLL_MAX_INTERVAL":     "50ms",
		"LEASE_TTL":             "3s",
		"SYNC_DEADLINE":         "20s",
		"RESULT_SOURCE":         "urn:vidm-sync-worker:test",
		"ADMIN_ADDR":            "127.0.0.1:0",
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load(context.Background(), envconfig.MapLookuper(vars), true)
	if err != nil {
		t.Fatal(err)
	}
	stack.Apply(&cfg)
	nc, err := nats.Connect(cfg.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, stack: stack, cfg: cfg, nc: nc, js: js, logs: &logbuf.Buffer{}}
}

func (h *harness) logger(name string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica", name)
}

// startWorker runs a worker until the returned stop is called (a graceful SIGTERM-like stop) or
// the test ends.
func (h *harness) startWorker(name string, opts ...worker.Option) (stop func()) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- worker.Run(ctx, h.cfg, h.logger(name), opts...) }()
	h.waitConsumer()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					h.t.Errorf("worker %s: %v", name, err)
				}
			case <-time.After(20 * time.Second):
				h.t.Errorf("worker %s did not stop within 20s", name)
			}
		})
	}
	h.t.Cleanup(stop)
	return stop
}

// startCrashableWorker runs a worker on its own connection; crash closes that connection without
// any goodbye (no lease release, no drain), as a SIGKILL would, then stops the goroutines.
func (h *harness) startCrashableWorker(name string) (crash func()) {
	h.t.Helper()
	nc, err := nats.Connect(h.cfg.NATSURL, nats.NoReconnect())
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = worker.Serve(ctx, nc, h.cfg, h.logger(name)) }()
	h.waitConsumer()
	return func() {
		nc.Close()
		cancel()
		<-done
	}
}

// waitConsumer waits until the worker has created its streams and consumer.
func (h *harness) waitConsumer() {
	h.t.Helper()
	poll.Until(h.t, 10*time.Second, "worker consumer to exist", func() bool {
		_, err := h.js.Consumer(context.Background(), h.cfg.TriggerStream, h.cfg.Consumer)
		return err == nil
	})
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
	if _, err := h.js.PublishMsg(context.Background(), msg); err != nil {
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
	s, err := h.js.Stream(ctx, stream)
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
	for _, m := range h.streamMsgs(h.cfg.ResultStream) {
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
		if e.Source() != h.cfg.ResultSource || (r.Type != contract.TypeStarted && e.Subject() != r.Data.DirectoryName) {
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
	for _, r := range h.stack.Sim.SyncLog() {
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
