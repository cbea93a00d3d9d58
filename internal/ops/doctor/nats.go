package doctor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/natsconn"
)

// checkNATS connects as the worker does and reads (never writes) the streams, the consumer and
// the buckets the worker uses. Every read is a JetStream API request, so it also shows the user
// may make them.
func checkNATS(ctx context.Context, cfg config.Config, o Options) Section {
	s := Section{Name: "NATS", URL: natsconn.RedactURLs(cfg.NATSURL)}
	nc, err := natsconn.Connect(cfg.NATSConn(), nats.Timeout(o.Timeout), nats.MaxReconnects(0))
	if err != nil {
		s.Checks = append(s.Checks, Check{Name: "connect", Status: Fail, Detail: fmt.Sprintf("%v (NATS_URL, credentials, NATS_CA_FILE)", err)})
		return s
	}
	defer nc.Close()
	s.Checks = append(s.Checks, Check{Name: "connect", Status: OK,
		Detail: fmt.Sprintf("connected to %s, server %s", nc.ConnectedUrlRedacted(), nc.ConnectedServerVersion())})
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(o.Timeout))
	if err != nil {
		s.Checks = append(s.Checks, Check{Name: "jetstream", Status: Fail, Detail: err.Error()})
		return s
	}
	acct, err := bounded(ctx, o, js.AccountInfo)
	if err != nil {
		s.Checks = append(s.Checks, Check{Name: "jetstream", Status: Fail,
			Detail: fmt.Sprintf("%v: JetStream must be enabled for the worker's account, and the user allowed $JS.API.>", err)})
		return s
	}
	s.Checks = append(s.Checks, Check{Name: "jetstream", Status: OK,
		Detail: fmt.Sprintf("%d streams, %d consumers in the account", acct.Streams, acct.Consumers)})
	missing := missingHint{manage: cfg.ManageStreams}
	n := cfg.StreamNames()
	for _, name := range []string{n.TriggerStream, n.ResultStream, n.DeadStream} {
		s.Checks = append(s.Checks, streamCheck(ctx, js, o, name, missing))
	}
	s.Checks = append(s.Checks, consumerCheck(ctx, js, o, n.TriggerStream, n.Consumer, missing))
	for _, b := range []string{n.PendingBucket, n.RunsBucket, n.LeaseBucket, n.HistoryBucket, n.ControlBucket} {
		s.Checks = append(s.Checks, bucketCheck(ctx, js, o, b, missing))
	}
	s.Checks = append(s.Checks, checkPermissions(ctx, nc, cfg, o.Timeout))
	return s
}

// missingHint says what a missing stream, consumer or bucket means: the worker creates it at
// start with MANAGE_STREAMS=true (a warning), and does not otherwise (a failure).
type missingHint struct{ manage bool }

func (h missingHint) check(name string, err error) Check {
	if h.manage {
		return Check{Name: name, Status: Warn, Detail: fmt.Sprintf("%v: the worker creates it at start (MANAGE_STREAMS=true)", err)}
	}
	return Check{Name: name, Status: Fail, Detail: fmt.Sprintf("%v: with MANAGE_STREAMS=false the worker does not create it; apply deploy/nats/streams", err)}
}

// resourceCheck reads one stream, consumer or bucket the worker uses: missing is the hint's
// warning or failure, another error a failure (with failHint, when there is one), else OK with
// describe's account of it.
func resourceCheck[T any](ctx context.Context, o Options, hint missingHint, name, failHint string,
	read func(context.Context) (T, error), describe func(T) string) Check {
	v, err := bounded(ctx, o, read)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrBucketNotFound):
		return hint.check(name, err)
	case err != nil && failHint != "":
		return Check{Name: name, Status: Fail, Detail: fmt.Sprintf("%v (%s)", err, failHint)}
	case err != nil:
		return Check{Name: name, Status: Fail, Detail: err.Error()}
	}
	return Check{Name: name, Status: OK, Detail: describe(v)}
}

func streamCheck(ctx context.Context, js jetstream.JetStream, o Options, name string, hint missingHint) Check {
	return resourceCheck(ctx, o, hint, "stream "+name, fmt.Sprintf("is the user allowed $JS.API.STREAM.INFO.%s?", name),
		func(c context.Context) (*jetstream.StreamInfo, error) {
			st, err := js.Stream(c, name)
			if err != nil {
				return nil, err
			}
			return st.Info(c)
		},
		func(info *jetstream.StreamInfo) string {
			return fmt.Sprintf("subjects %v, %d messages, %s storage, %d replicas",
				info.Config.Subjects, info.State.Msgs, info.Config.Storage, info.Config.Replicas)
		})
}

func consumerCheck(ctx context.Context, js jetstream.JetStream, o Options, stream, name string, hint missingHint) Check {
	return resourceCheck(ctx, o, hint, "consumer "+name, "",
		func(c context.Context) (*jetstream.ConsumerInfo, error) {
			cons, err := js.Consumer(c, stream, name)
			if err != nil {
				return nil, err
			}
			return cons.Info(c)
		},
		func(info *jetstream.ConsumerInfo) string {
			return fmt.Sprintf("%d pending, %d awaiting ack, ack wait %s", info.NumPending, info.NumAckPending, info.Config.AckWait.Round(time.Second))
		})
}

func bucketCheck(ctx context.Context, js jetstream.JetStream, o Options, bucket string, hint missingHint) Check {
	return resourceCheck(ctx, o, hint, "bucket "+bucket, "",
		func(c context.Context) (jetstream.KeyValueStatus, error) {
			kv, err := js.KeyValue(c, bucket)
			if err != nil {
				return nil, err
			}
			return kv.Status(c)
		},
		func(st jetstream.KeyValueStatus) string {
			return fmt.Sprintf("%d values, history %d, TTL %s", st.Values(), st.History(), st.TTL())
		})
}
