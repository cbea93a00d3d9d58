// Package streams creates (Ensure) or looks up (Bind) the JetStream streams, the trigger
// consumer and the key-value buckets the worker runs on.
//
// Retention, in short: the triggers stream only buffers intake. A trigger is accepted once it
// is written to the pending bucket, and only then acked, so the stream's seven-day MaxAge can only
// drop a trigger that no worker accepted for a week. Results and dead letters are kept for
// consumers and operators to read (7 and 30 days). Everything is file-stored; durability of an
// acknowledged write additionally depends on replicas and the server's sync_interval (see
// DESIGN.md, "Durability of the broker itself").
package streams

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Retention of the streams. Fixed rather than configurable: nothing in the worker depends on
// them beyond "long enough", and operators who need other values manage the streams themselves
// (MANAGE_STREAMS=false).
const (
	TriggerMaxAge     = 7 * 24 * time.Hour
	TriggerDuplicates = 2 * time.Minute // a publisher retrying the same trigger id is stored once
	ResultMaxAge      = 7 * 24 * time.Hour
	DeadMaxAge        = 30 * 24 * time.Hour
)

// MinLeaseTTL is the shortest lease TTL the server accepts: a KV bucket's TTL is its stream's
// MaxAge, and nats.go sets the bucket's duplicate window to min(TTL, 2m); the server rejects a
// MaxAge or a duplicate window under 100ms.
const MinLeaseTTL = 100 * time.Millisecond

// Names of the resources; the defaults are in internal/config.
type Names struct {
	TriggerStream       string
	TriggerSubjects     []string
	ResultStream        string
	ResultSubjectPrefix string // the stream's subject is ResultSubjectPrefix + ".>"
	DeadStream          string
	DeadSubject         string
	Consumer            string // durable pull consumer on TriggerStream
	PendingBucket       string
	RunsBucket          string
	LeaseBucket         string
	HistoryBucket       string // finished runs per directory, for the status page and admin API
	ControlBucket       string // operator switches per directory (paused)
}

// Settings are the tunables Ensure applies.
type Settings struct {
	Replicas int // for streams and buckets; the consumer inherits its stream's
	// ResultDuplicateWindow is the results stream's de-duplication window. A run resumed after
	// a crash re-publishes its result with the same Nats-Msg-Id; the window must outlast a lease
	// expiry plus a restart for that re-publish to be dropped.
	ResultDuplicateWindow time.Duration
	// LeaseTTL is the lease bucket's TTL: a key not renewed within it disappears.
	LeaseTTL time.Duration
	// HistoryMaxAge is the history bucket's TTL: finished runs older than this are forgotten.
	HistoryMaxAge time.Duration
	AckWait       time.Duration
	MaxAckPending int
	// MaxBytes bound the streams on disk (0: unlimited). The trigger stream refuses new
	// triggers when full (publishers get an error; an accepted trigger is never dropped); the
	// results and dead-letter streams drop their oldest messages.
	TriggerMaxBytes, ResultMaxBytes, DeadMaxBytes int64
}

// maxBytes is a setting as JetStream wants it: -1 for unlimited.
func maxBytes(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// Resources are the bound handles.
type Resources struct {
	Triggers, Results, Dead jetstream.Stream
	Consumer                jetstream.Consumer
	Pending, Runs, Leases   jetstream.KeyValue
	History, Control        jetstream.KeyValue
}

// ResultSubjects is the results stream's subject filter for a prefix.
func ResultSubjects(prefix string) []string { return []string{prefix + ".>"} }

// Ensure creates everything that is missing and updates what exists to the production settings.
// It is idempotent. Changes the server cannot apply in place (storage type, retention policy,
// a consumer's ack or deliver policy, replicas on a single server) fail with the server's reason,
// naming the resource.
func Ensure(ctx context.Context, js jetstream.JetStream, n Names, s Settings) (*Resources, error) {
	if err := checkNames(n); err != nil {
		return nil, err
	}
	if err := checkSettings(s); err != nil {
		return nil, err
	}
	var (
		r   Resources
		err error
	)
	stream := func(what string, cfg jetstream.StreamConfig) jetstream.Stream {
		if err != nil {
			return nil
		}
		var st jetstream.Stream
		st, err = js.CreateOrUpdateStream(ctx, cfg)
		if err != nil {
			err = fmt.Errorf("ensuring %s stream %q: %w", what, cfg.Name, err)
		}
		return st
	}
	bucket := func(what string, cfg jetstream.KeyValueConfig) jetstream.KeyValue {
		if err != nil {
			return nil
		}
		var kv jetstream.KeyValue
		kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
		if err != nil {
			err = fmt.Errorf("ensuring %s bucket %q: %w", what, cfg.Bucket, err)
		}
		return kv
	}

	r.Triggers = stream("trigger", jetstream.StreamConfig{
		Name:        n.TriggerStream,
		Description: "vidm-sync-worker intake: directory sync triggers (CloudEvents)",
		Subjects:    n.TriggerSubjects,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxAge:      TriggerMaxAge,
		MaxBytes:    maxBytes(s.TriggerMaxBytes),
		Duplicates:  TriggerDuplicates,
		Storage:     jetstream.FileStorage,
		Replicas:    s.Replicas,
	})
	r.Results = stream("result", jetstream.StreamConfig{
		Name:        n.ResultStream,
		Description: "vidm-sync-worker results: vidm.directory.sync.started/completed/failed",
		Subjects:    ResultSubjects(n.ResultSubjectPrefix),
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      ResultMaxAge,
		MaxBytes:    maxBytes(s.ResultMaxBytes),
		Duplicates:  s.ResultDuplicateWindow,
		Storage:     jetstream.FileStorage,
		Replicas:    s.Replicas,
	})
	r.Dead = stream("dead-letter", jetstream.StreamConfig{
		Name:        n.DeadStream,
		Description: "vidm-sync-worker dead letters: invalid or undeliverable triggers, with the reason",
		Subjects:    []string{n.DeadSubject},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxAge:      DeadMaxAge,
		MaxBytes:    maxBytes(s.DeadMaxBytes),
		Storage:     jetstream.FileStorage,
		Replicas:    s.Replicas,
	})
	if err == nil {
		r.Consumer, err = js.CreateOrUpdateConsumer(ctx, n.TriggerStream, ConsumerConfig(n, s))
		if err != nil {
			err = fmt.Errorf("ensuring consumer %q on stream %q: %w", n.Consumer, n.TriggerStream, err)
		}
	}
	r.Pending = bucket("pending-trigger", jetstream.KeyValueConfig{
		Bucket:      n.PendingBucket,
		Description: "vidm-sync-worker accepted triggers not yet reported, per (tenant, directory, trigger)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    s.Replicas,
	})
	r.Runs = bucket("run", jetstream.KeyValueConfig{
		Bucket:      n.RunsBucket,
		Description: "vidm-sync-worker run records and the pages of triggers each run covers",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    s.Replicas,
	})
	r.Leases = bucket("lease", jetstream.KeyValueConfig{
		Bucket:      n.LeaseBucket,
		Description: "vidm-sync-worker per-directory leases; a lease not renewed within the TTL expires",
		History:     1,
		TTL:         s.LeaseTTL,
		Storage:     jetstream.FileStorage,
		Replicas:    s.Replicas,
	})
	r.History = bucket("history", jetstream.KeyValueConfig{
		Bucket:      n.HistoryBucket,
		Description: "vidm-sync-worker finished runs per directory (status page, admin API) and reported-trigger markers",
		History:     1,
		TTL:         s.HistoryMaxAge,
		Storage:     jetstream.FileStorage,
		Replicas:    s.Replicas,
	})
	r.Control = bucket("control", jetstream.KeyValueConfig{
		Bucket:      n.ControlBucket,
		Description: "vidm-sync-worker operator switches per directory (paused)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    s.Replicas,
	})
	if err != nil {
		return nil, err
	}
	// The history bucket too: it keeps the reported-trigger markers, which intake reads to
	// tell a redelivery after a lost ack from a new trigger.
	for _, kv := range []*jetstream.KeyValue{&r.Pending, &r.Runs, &r.Leases, &r.Control, &r.History} {
		if *kv, err = leaderReads(ctx, js, *kv); err != nil {
			return nil, err
		}
	}
	return &r, nil
}

// leaderReads turns direct gets off for a bucket and binds it again. A direct get may be answered
// by a replica that has not caught up (after a restart, for a while), so a new lease holder could
// read pending triggers its predecessor had already reported and report them again; a message get
// is answered by the stream leader. nats.go creates buckets with direct gets on, so this follows
// every CreateOrUpdateKeyValue.
func leaderReads(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue) (jetstream.KeyValue, error) {
	name := "KV_" + kv.Bucket()
	st, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("bucket %q: %w", kv.Bucket(), err)
	}
	cfg := st.CachedInfo().Config
	if cfg.AllowDirect {
		cfg.AllowDirect = false
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("turning direct gets off for bucket %q: %w", kv.Bucket(), err)
		}
	}
	return js.KeyValue(ctx, kv.Bucket())
}

// ConsumerConfig is the trigger consumer's configuration as Ensure applies it. Operators who
// manage the resources themselves can start from it.
func ConsumerConfig(n Names, s Settings) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       n.Consumer,
		Description:   "vidm-sync-worker trigger intake",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.AckWait,
		MaxAckPending: s.MaxAckPending,
		// Unlimited redelivery: a trigger that cannot be processed is dead-lettered by the
		// worker (with its reason), never silently dropped by the server after N attempts.
		MaxDeliver:     -1,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		FilterSubjects: n.TriggerSubjects,
		// No server-side BackOff: the worker chooses each delay with NakWithDelay.
		BackOff: nil,
	}
}

// Bind looks up existing resources without changing them (MANAGE_STREAMS=false). Every missing
// or unusable resource is reported, joined into one error, each naming the resource.
func Bind(ctx context.Context, js jetstream.JetStream, n Names) (*Resources, error) {
	if err := checkNames(n); err != nil {
		return nil, err
	}
	var (
		r    Resources
		errs []error
	)
	// A lookup failure other than "not found" (no JetStream, no permission, timeout) is reported
	// as it is, so that it is not mistaken for a missing resource.
	record := func(what string, err error) {
		switch {
		case err == nil:
		case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrBucketNotFound),
			errors.Is(err, jetstream.ErrConsumerNotFound):
			errs = append(errs, fmt.Errorf("%s does not exist", what))
		default:
			errs = append(errs, fmt.Errorf("looking up %s: %w", what, err))
		}
	}
	lookupStream := func(what, name string) jetstream.Stream {
		st, err := js.Stream(ctx, name)
		record(fmt.Sprintf("%s stream %q", what, name), err)
		return st
	}
	lookupBucket := func(what, name string) jetstream.KeyValue {
		kv, err := js.KeyValue(ctx, name)
		record(fmt.Sprintf("%s bucket %q", what, name), err)
		return kv
	}
	// Publishing to a subject no stream stores would fail only at the first result; say so now.
	checkSubject := func(what, subject, stream string) {
		got, err := js.StreamNameBySubject(ctx, subject)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			errs = append(errs, fmt.Errorf("stream %q does not store the %s subject %q", stream, what, subject))
		case err != nil:
			errs = append(errs, fmt.Errorf("finding the stream of %s subject %q: %w", what, subject, err))
		case got != stream:
			errs = append(errs, fmt.Errorf("%s subject %q is stored by stream %q, not %q", what, subject, got, stream))
		}
	}

	consumerWhat := fmt.Sprintf("consumer %q on trigger stream %q", n.Consumer, n.TriggerStream)
	if r.Triggers = lookupStream("trigger", n.TriggerStream); r.Triggers != nil {
		c, err := js.Consumer(ctx, n.TriggerStream, n.Consumer)
		record(consumerWhat, err)
		if c != nil {
			errs = append(errs, checkConsumer(c.CachedInfo())...)
			r.Consumer = c
		}
	} else {
		errs = append(errs, fmt.Errorf("%s cannot exist without its stream", consumerWhat))
	}
	if r.Results = lookupStream("result", n.ResultStream); r.Results != nil {
		checkSubject("result", n.ResultSubjectPrefix+".completed", n.ResultStream)
	}
	if r.Dead = lookupStream("dead-letter", n.DeadStream); r.Dead != nil {
		checkSubject("dead-letter", n.DeadSubject, n.DeadStream)
	}
	r.Pending = lookupBucket("pending-trigger", n.PendingBucket)
	r.Runs = lookupBucket("run", n.RunsBucket)
	r.History = lookupBucket("history", n.HistoryBucket)
	r.Control = lookupBucket("control", n.ControlBucket)
	for _, b := range []string{n.PendingBucket, n.RunsBucket, n.LeaseBucket, n.ControlBucket, n.HistoryBucket} {
		if st, err := js.Stream(ctx, "KV_"+b); err == nil && st.CachedInfo().Config.AllowDirect {
			errs = append(errs, fmt.Errorf("bucket %q allows direct gets, which replicas may answer with stale values; set allow_direct false on stream KV_%s", b, b))
		}
	}
	if r.Leases = lookupBucket("lease", n.LeaseBucket); r.Leases != nil {
		st, err := r.Leases.Status(ctx)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("reading lease bucket %q: %w", n.LeaseBucket, err))
		case st.TTL() <= 0:
			// Without a TTL the lease of a crashed holder never expires and its directory
			// never syncs again.
			errs = append(errs, fmt.Errorf("lease bucket %q has no TTL; the lease of a crashed worker would never expire", n.LeaseBucket))
		}
	}
	if len(errs) > 0 {
		// The resources are managed outside the worker (MANAGE_STREAMS=false): the remedy is to
		// create or fix them there, which the first line says once.
		return nil, fmt.Errorf("JetStream resources are not ready (they are managed externally and must exist before the worker starts):\n%w",
			errors.Join(errs...))
	}
	return &r, nil
}

// checkConsumer reports the consumer settings the worker cannot run correctly without. (A push
// consumer is already refused by js.Consumer with ErrNotPullConsumer.)
func checkConsumer(ci *jetstream.ConsumerInfo) []error {
	if ci == nil {
		return nil
	}
	var errs []error
	name := ci.Name
	if ci.Config.AckPolicy != jetstream.AckExplicitPolicy {
		errs = append(errs, fmt.Errorf("consumer %q has ack policy %s; the worker needs explicit acks", name, ci.Config.AckPolicy))
	}
	if ci.Config.MaxDeliver > 0 {
		errs = append(errs, fmt.Errorf("consumer %q has max_deliver %d; the server would drop triggers the worker has not accepted (use -1)", name, ci.Config.MaxDeliver))
	}
	return errs
}

func checkNames(n Names) error {
	var errs []error
	for _, f := range []struct{ what, v string }{
		{"trigger stream", n.TriggerStream}, {"result stream", n.ResultStream}, {"dead-letter stream", n.DeadStream},
		{"result subject prefix", n.ResultSubjectPrefix}, {"dead-letter subject", n.DeadSubject},
		{"consumer", n.Consumer},
		{"pending bucket", n.PendingBucket}, {"runs bucket", n.RunsBucket}, {"lease bucket", n.LeaseBucket},
		{"history bucket", n.HistoryBucket}, {"control bucket", n.ControlBucket},
	} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("streams: %s name is empty", f.what))
		}
	}
	if len(n.TriggerSubjects) == 0 {
		errs = append(errs, errors.New("streams: no trigger subjects"))
	}
	return errors.Join(errs...)
}

func checkSettings(s Settings) error {
	var errs []error
	if s.Replicas < 1 || s.Replicas > 5 {
		errs = append(errs, fmt.Errorf("streams: replicas %d not in 1..5", s.Replicas))
	}
	if s.ResultDuplicateWindow < 100*time.Millisecond || s.ResultDuplicateWindow > ResultMaxAge {
		errs = append(errs, fmt.Errorf("streams: result duplicate window %s not in 100ms..%s (the results stream's max age)",
			s.ResultDuplicateWindow, ResultMaxAge))
	}
	if s.LeaseTTL < MinLeaseTTL {
		errs = append(errs, fmt.Errorf("streams: lease TTL %s is under the server's minimum %s", s.LeaseTTL, MinLeaseTTL))
	}
	if s.HistoryMaxAge < MinLeaseTTL {
		errs = append(errs, fmt.Errorf("streams: history max age %s is under the server's minimum %s", s.HistoryMaxAge, MinLeaseTTL))
	}
	if s.AckWait <= 0 {
		errs = append(errs, fmt.Errorf("streams: ack wait %s must be positive", s.AckWait))
	}
	if s.MaxAckPending < 1 {
		errs = append(errs, fmt.Errorf("streams: max ack pending %d must be at least 1", s.MaxAckPending))
	}
	return errors.Join(errs...)
}
