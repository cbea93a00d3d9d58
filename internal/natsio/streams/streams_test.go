package streams_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/streams"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
)

func names() streams.Names {
	return streams.Names{
		TriggerStream:       "DIRSYNC_TRIGGERS",
		TriggerSubjects:     []string{"dirsync.trigger.>"},
		ResultStream:        "DIRSYNC_RESULTS",
		ResultSubjectPrefix: "dirsync.result",
		DeadStream:          "DIRSYNC_DEAD",
		DeadSubject:         "dirsync.dead",
		Consumer:            "vidm-sync-worker",
		PendingBucket:       "DIRSYNC_PENDING",
		RunsBucket:          "DIRSYNC_RUNS",
		LeaseBucket:         "DIRSYNC_LEASES",
		HistoryBucket:       "DIRSYNC_HISTORY",
		ControlBucket:       "DIRSYNC_CONTROL",
	}
}

func settings() streams.Settings {
	return streams.Settings{
		Replicas:              1,
		ResultDuplicateWindow: 30 * time.Minute,
		LeaseTTL:              30 * time.Second,
		HistoryMaxAge:         time.Hour,
		AckWait:               30 * time.Second,
		MaxAckPending:         512,
		TriggerMaxBytes:       64 << 20,
		ResultMaxBytes:        32 << 20,
		DeadMaxBytes:          16 << 20,
	}
}

// startJS runs an embedded server on a random port with file storage in a temporary directory.
func startJS(t *testing.T) (jetstream.JetStream, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return natstest.JetStream(t), ctx
}

func TestEnsureSettingsAndIdempotence(t *testing.T) {
	js, ctx := startJS(t)
	n, s := names(), settings()
	n.TriggerSubjects = []string{"dirsync.trigger.>", "legacy.dirsync"} // several filters

	r1, err := streams.Ensure(ctx, js, n, s)
	if err != nil {
		t.Fatal(err)
	}
	// A trigger stored between two Ensure calls survives the second.
	if _, err := js.Publish(ctx, "dirsync.trigger.ad.group.created", []byte("t1")); err != nil {
		t.Fatal(err)
	}
	if _, err := r1.Pending.PutString(ctx, "default.dir.t1", "x"); err != nil {
		t.Fatal(err)
	}
	r2, err := streams.Ensure(ctx, js, n, s)
	if err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	checkSettings(t, ctx, r2, n, s)
	if info, _ := r2.Triggers.Info(ctx); info.State.Msgs != 1 {
		t.Fatalf("trigger stream has %d messages after second Ensure, want 1", info.State.Msgs)
	}
	if e, err := r2.Pending.Get(ctx, "default.dir.t1"); err != nil || string(e.Value()) != "x" {
		t.Fatalf("pending key after second Ensure: %v", err)
	}
	// Ensure is what Bind finds: same configs either way.
	c1, _ := r1.Consumer.Info(ctx)
	c2, _ := r2.Consumer.Info(ctx)
	if !c1.Created.Equal(c2.Created) || c2.NumPending != 1 {
		t.Fatalf("consumer recreated or lost its position: created %v -> %v, pending %d", c1.Created, c2.Created, c2.NumPending)
	}

	// Ensure updates what changed, in place.
	s.AckWait, s.MaxAckPending, s.ResultDuplicateWindow, s.LeaseTTL = 45*time.Second, 100, time.Hour, 10*time.Second
	s.TriggerMaxBytes, s.DeadMaxBytes = 128<<20, 8<<20
	n.TriggerSubjects = []string{"dirsync.trigger.>"}
	r3, err := streams.Ensure(ctx, js, n, s)
	if err != nil {
		t.Fatalf("Ensure with changed settings: %v", err)
	}
	checkSettings(t, ctx, r3, n, s)
}

func checkSettings(t *testing.T, ctx context.Context, r *streams.Resources, n streams.Names, s streams.Settings) {
	t.Helper()
	streamCfg := func(st jetstream.Stream) jetstream.StreamConfig {
		t.Helper()
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.Config
	}
	for _, c := range []struct {
		cfg        jetstream.StreamConfig
		name       string
		subjects   []string
		maxAge     time.Duration
		duplicates time.Duration
		maxBytes   int64
		// A full trigger stream refuses publishers rather than drop an accepted trigger.
		discard jetstream.DiscardPolicy
	}{
		{streamCfg(r.Triggers), n.TriggerStream, n.TriggerSubjects, 7 * 24 * time.Hour, 2 * time.Minute, s.TriggerMaxBytes, jetstream.DiscardNew},
		{streamCfg(r.Results), n.ResultStream, []string{n.ResultSubjectPrefix + ".>"}, 7 * 24 * time.Hour, s.ResultDuplicateWindow, s.ResultMaxBytes, jetstream.DiscardOld},
		{streamCfg(r.Dead), n.DeadStream, []string{n.DeadSubject}, 30 * 24 * time.Hour, 2 * time.Minute, s.DeadMaxBytes, jetstream.DiscardOld}, // server default window
	} {
		cfg := c.cfg
		if cfg.Name != c.name || !slices.Equal(cfg.Subjects, c.subjects) || cfg.MaxAge != c.maxAge ||
			cfg.Duplicates != c.duplicates || cfg.Storage != jetstream.FileStorage || cfg.Replicas != s.Replicas ||
			cfg.Retention != jetstream.LimitsPolicy || cfg.Discard != c.discard || cfg.MaxBytes != c.maxBytes ||
			cfg.PersistMode != jetstream.DefaultPersistMode {
			t.Errorf("stream %s: got name %s subjects %v max_age %s duplicates %s storage %s replicas %d retention %s discard %s max_bytes %d persist %v",
				c.name, cfg.Name, cfg.Subjects, cfg.MaxAge, cfg.Duplicates, cfg.Storage, cfg.Replicas, cfg.Retention, cfg.Discard, cfg.MaxBytes, cfg.PersistMode)
		}
	}

	ci, err := r.Consumer.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cc := ci.Config
	// A single filter may come back in FilterSubject or FilterSubjects; both mean the same.
	filters := cc.FilterSubjects
	if cc.FilterSubject != "" {
		filters = append([]string{cc.FilterSubject}, filters...)
	}
	if ci.Stream != n.TriggerStream || cc.Durable != n.Consumer || cc.AckPolicy != jetstream.AckExplicitPolicy ||
		cc.AckWait != s.AckWait || cc.MaxAckPending != s.MaxAckPending || cc.MaxDeliver != -1 ||
		cc.DeliverPolicy != jetstream.DeliverAllPolicy || !slices.Equal(filters, n.TriggerSubjects) ||
		cc.BackOff != nil || cc.DeliverSubject != "" {
		t.Errorf("consumer: %+v", cc)
	}

	for _, b := range []struct {
		kv  jetstream.KeyValue
		ttl time.Duration
	}{{r.Pending, 0}, {r.Runs, 0}, {r.Leases, s.LeaseTTL}} {
		st, err := b.kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		si := st.(*jetstream.KeyValueBucketStatus).StreamInfo()
		if st.History() != 1 || st.TTL() != b.ttl || si.Config.Storage != jetstream.FileStorage || si.Config.Replicas != s.Replicas {
			t.Errorf("bucket %s: history %d ttl %s storage %s replicas %d", st.Bucket(), st.History(), st.TTL(),
				si.Config.Storage, si.Config.Replicas)
		}
	}
	for kv, want := range map[jetstream.KeyValue]string{r.Pending: n.PendingBucket, r.Runs: n.RunsBucket, r.Leases: n.LeaseBucket} {
		if kv.Bucket() != want {
			t.Errorf("bucket %s, want %s", kv.Bucket(), want)
		}
	}
}

func TestEnsureRejectsBadSettings(t *testing.T) {
	js, ctx := startJS(t)
	s := settings()
	s.Replicas, s.LeaseTTL, s.AckWait, s.MaxAckPending, s.ResultDuplicateWindow = 0, 50*time.Millisecond, 0, 0, 8*24*time.Hour
	_, err := streams.Ensure(ctx, js, names(), s)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"replicas 0", "lease TTL 50ms", "ack wait", "max ack pending", "result duplicate window"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	// Nothing was created.
	if _, err := js.Stream(ctx, names().TriggerStream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("trigger stream lookup: %v", err)
	}
}

func TestEnsureNamesResourceItCannotUpdate(t *testing.T) {
	js, ctx := startJS(t)
	n := names()
	// Someone created the trigger stream in memory; storage cannot change in place.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: n.TriggerStream, Subjects: n.TriggerSubjects,
		Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	_, err := streams.Ensure(ctx, js, n, settings())
	if err == nil || !strings.Contains(err.Error(), `trigger stream "DIRSYNC_TRIGGERS"`) || !strings.Contains(err.Error(), "storage type") {
		t.Fatalf("got %v", err)
	}

	// Replicas > 1 on a single server is refused by the server, not silently lowered.
	js2, ctx2 := startJS(t)
	s := settings()
	s.Replicas = 3
	_, err = streams.Ensure(ctx2, js2, n, s)
	if err == nil || !strings.Contains(err.Error(), "replicas > 1 not supported") {
		t.Fatalf("replicas 3 on a single server: %v", err)
	}
}

func TestBind(t *testing.T) {
	js, ctx := startJS(t)
	n := names()

	_, err := streams.Bind(ctx, js, n)
	if err == nil {
		t.Fatal("Bind succeeded with nothing created")
	}
	for _, want := range []string{
		`trigger stream "DIRSYNC_TRIGGERS" does not exist`,
		`result stream "DIRSYNC_RESULTS" does not exist`,
		`dead-letter stream "DIRSYNC_DEAD" does not exist`,
		`consumer "vidm-sync-worker" on trigger stream "DIRSYNC_TRIGGERS"`,
		`pending-trigger bucket "DIRSYNC_PENDING" does not exist`,
		`run bucket "DIRSYNC_RUNS" does not exist`,
		`lease bucket "DIRSYNC_LEASES" does not exist`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Bind error does not say %q:\n%v", want, err)
		}
	}

	if _, err := streams.Ensure(ctx, js, n, settings()); err != nil {
		t.Fatal(err)
	}
	r, err := streams.Bind(ctx, js, n)
	if err != nil {
		t.Fatalf("Bind after Ensure: %v", err)
	}
	if r.Triggers == nil || r.Results == nil || r.Dead == nil || r.Consumer == nil || r.Pending == nil || r.Runs == nil || r.Leases == nil {
		t.Fatalf("Bind returned a nil handle: %+v", r)
	}
	if got := r.Consumer.CachedInfo().Name; got != n.Consumer {
		t.Fatalf("consumer %q", got)
	}

	// Only the consumer is missing: only the consumer is named.
	if err := js.DeleteConsumer(ctx, n.TriggerStream, n.Consumer); err != nil {
		t.Fatal(err)
	}
	_, err = streams.Bind(ctx, js, n)
	if err == nil || strings.Count(err.Error(), "\n") != 1 || !strings.Contains(err.Error(), `consumer "vidm-sync-worker" on trigger stream "DIRSYNC_TRIGGERS" does not exist`) {
		t.Fatalf("Bind without consumer: %v", err)
	}
}

func TestBindRejectsUnsafeExternalSetup(t *testing.T) {
	js, ctx := startJS(t)
	n := names()
	if _, err := streams.Ensure(ctx, js, n, settings()); err != nil {
		t.Fatal(err)
	}
	// An operator's hand-made consumer that drops triggers after 5 deliveries, and a lease bucket
	// without TTL.
	cc := streams.ConsumerConfig(n, settings())
	cc.MaxDeliver = 5
	if _, err := js.CreateOrUpdateConsumer(ctx, n.TriggerStream, cc); err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteKeyValue(ctx, n.LeaseBucket); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: n.LeaseBucket}); err != nil {
		t.Fatal(err)
	}
	_, err := streams.Bind(ctx, js, n)
	if err == nil || !strings.Contains(err.Error(), "max_deliver 5") || !strings.Contains(err.Error(), `lease bucket "DIRSYNC_LEASES" has no TTL`) {
		t.Fatalf("got %v", err)
	}
}

func TestLeaseExpiresAfterTTL(t *testing.T) {
	js, ctx := startJS(t)
	s := settings()
	s.LeaseTTL = time.Second
	r, err := streams.Ensure(ctx, js, names(), s)
	if err != nil {
		t.Fatal(err)
	}
	const key = "default.corp-ad"

	// Renewed within the TTL, the lease stays: each Update with the last revision succeeds.
	rev, err := r.Leases.Create(ctx, key, []byte("holder-a"))
	if err != nil {
		t.Fatal(err)
	}
	renew := time.NewTicker(400 * time.Millisecond) // the holder's renewal period
	defer renew.Stop()
	for range 5 { // 5 × 400ms = 2 × TTL
		<-renew.C
		if rev, err = r.Leases.Update(ctx, key, []byte("holder-a"), rev); err != nil {
			t.Fatalf("renewal within TTL failed: %v", err)
		}
	}

	// Not renewed, it disappears within a bounded time after the TTL.
	start := time.Now()
	if rev, err = r.Leases.Update(ctx, key, []byte("holder-a"), rev); err != nil {
		t.Fatal(err)
	}
	deadline := start.Add(5 * time.Second)
	for {
		_, err := r.Leases.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("lease still there 5s after its last renewal with a 1s TTL")
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	if gone := time.Since(start); gone < s.LeaseTTL {
		t.Fatalf("lease gone after %s, before its TTL %s", gone, s.LeaseTTL)
	} else {
		t.Logf("lease gone %s after its last renewal (TTL %s)", gone, s.LeaseTTL)
	}

	// The late holder's renewal fails (it must stop), and another holder can claim the directory.
	if _, err := r.Leases.Update(ctx, key, []byte("holder-a"), rev); err == nil {
		t.Fatal("renewal of an expired lease succeeded")
	}
	if _, err := r.Leases.Create(ctx, key, []byte("holder-b")); err != nil {
		t.Fatalf("claiming an expired lease: %v", err)
	}
	// And the claim is exclusive.
	if _, err := r.Leases.Create(ctx, key, []byte("holder-c")); !errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatalf("second claim: %v, want ErrKeyExists", err)
	}
}

// The server's floor for a bucket TTL is 100ms (stream MaxAge and duplicate window minimum).
func TestServerLeaseTTLMinimum(t *testing.T) {
	js, ctx := startJS(t)
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "tooshort", TTL: 99 * time.Millisecond}); err == nil ||
		!strings.Contains(err.Error(), ">= 100ms") {
		t.Fatalf("TTL 99ms: %v", err)
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "shortest", TTL: streams.MinLeaseTTL}); err != nil {
		t.Fatalf("TTL %s: %v", streams.MinLeaseTTL, err)
	}
}

func TestResultDeduplication(t *testing.T) {
	js, ctx := startJS(t)
	n := names()
	r, err := streams.Ensure(ctx, js, n, settings())
	if err != nil {
		t.Fatal(err)
	}
	publish := func(id, body string) *jetstream.PubAck {
		t.Helper()
		ack, err := js.Publish(ctx, n.ResultSubjectPrefix+".completed", []byte(body), jetstream.WithMsgID(id))
		if err != nil {
			t.Fatal(err)
		}
		return ack
	}
	first := publish("run-1.completed", "a")
	again := publish("run-1.completed", "a (re-published after a crash)")
	other := publish("run-2.completed", "b")
	if first.Duplicate || !again.Duplicate || again.Sequence != first.Sequence || other.Duplicate {
		t.Fatalf("acks: first %+v again %+v other %+v", first, again, other)
	}
	info, err := r.Results.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("results stream holds %d messages, want 2", info.State.Msgs)
	}
	msg, err := r.Results.GetMsg(ctx, first.Sequence)
	if err != nil || string(msg.Data) != "a" {
		t.Fatalf("stored result: %v %q", err, msg.Data)
	}
}

// TestBucketsAreReadFromTheLeader: direct gets may be answered by a lagging replica, so Ensure
// turns them off on every bucket (also after a re-run that nats.go would turn them on again), and
// Bind refuses buckets that still allow them.
func TestBucketsAreReadFromTheLeader(t *testing.T) {
	js, ctx := startJS(t)
	for range 2 {
		if _, err := streams.Ensure(ctx, js, names(), settings()); err != nil {
			t.Fatal(err)
		}
		for _, b := range []string{"DIRSYNC_PENDING", "DIRSYNC_RUNS", "DIRSYNC_LEASES", "DIRSYNC_HISTORY"} {
			st, err := js.Stream(ctx, "KV_"+b)
			if err != nil {
				t.Fatal(err)
			}
			if st.CachedInfo().Config.AllowDirect {
				t.Fatalf("bucket %s still allows direct gets", b)
			}
		}
	}
	st, err := js.Stream(ctx, "KV_DIRSYNC_RUNS")
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.AllowDirect = true
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	_, err = streams.Bind(ctx, js, names())
	if err == nil || !strings.Contains(err.Error(), "DIRSYNC_RUNS") || !strings.Contains(err.Error(), "direct gets") {
		t.Fatalf("Bind = %v, want a refusal naming the bucket that allows direct gets", err)
	}
}
