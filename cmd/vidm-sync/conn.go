package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/natsconn"
)

// Defaults, the same as the worker's (internal/config).
const (
	defaultNATSURL        = "nats://127.0.0.1:4222"
	defaultTriggerSubject = "dirsync.trigger.cli" // under the worker's default TRIGGER_SUBJECTS dirsync.trigger.>
	defaultResultStream   = "DIRSYNC_RESULTS"
	defaultDeadStream     = "DIRSYNC_DEAD"
)

// connFlags are the connection settings both commands share.
type connFlags struct {
	url, creds, user, password, token, ca, cert, key string
	inboxPrefix                                      string
	triggerSubject, resultStream                     string
}

// envFlag binds a flag to the environment variable that sets it when the flag is not given.
type envFlag struct{ flag, env string }

// connEnv lists the flags that default from the worker's variables. The flag defaults themselves
// stay static, so -h never shows a secret taken from the environment.
func connEnv() []envFlag {
	return []envFlag{
		{"nats-url", "NATS_URL"},
		{"nats-creds", "NATS_CREDS_FILE"},
		{"nats-user", "NATS_USER"},
		{"nats-password", "NATS_PASSWORD"},
		{"nats-token", "NATS_TOKEN"},
		{"nats-ca", "NATS_CA_FILE"},
		{"nats-cert", "NATS_CERT_FILE"},
		{"nats-key", "NATS_KEY_FILE"},
		{"nats-inbox-prefix", "NATS_INBOX_PREFIX"},
		{"result-stream", "RESULT_STREAM"},
	}
}

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "nats-url", defaultNATSURL, "NATS server `URL`s, comma-separated (env NATS_URL)")
	fs.StringVar(&c.creds, "nats-creds", "", "NATS credentials `file` (env NATS_CREDS_FILE)")
	fs.StringVar(&c.user, "nats-user", "", "NATS user `name` (env NATS_USER)")
	fs.StringVar(&c.password, "nats-password", "", "NATS `password` (env NATS_PASSWORD or NATS_PASSWORD_FILE; prefer those)")
	fs.StringVar(&c.token, "nats-token", "", "NATS `token` (env NATS_TOKEN or NATS_TOKEN_FILE; prefer those)")
	fs.StringVar(&c.ca, "nats-ca", "", "CA bundle `file` for NATS TLS (env NATS_CA_FILE)")
	fs.StringVar(&c.cert, "nats-cert", "", "client certificate `file` for NATS TLS, with --nats-key (env NATS_CERT_FILE)")
	fs.StringVar(&c.key, "nats-key", "", "client key `file` for NATS TLS (env NATS_KEY_FILE)")
	fs.StringVar(&c.inboxPrefix, "nats-inbox-prefix", "_INBOX", "`prefix` of the subjects replies come back on; the one your NATS user may subscribe to (env NATS_INBOX_PREFIX)")
	fs.StringVar(&c.triggerSubject, "trigger-subject", defaultTriggerSubject, "`subject` triggers are published to; must be one of the worker's TRIGGER_SUBJECTS")
	fs.StringVar(&c.resultStream, "result-stream", defaultResultStream, "JetStream `stream` of result events (env RESULT_STREAM)")
}

// resolve applies the environment to the flags not given, reads the *_FILE secrets and checks the
// combination, as the worker's configuration does.
// set holds the flags given on the command line.
func (c *connFlags) resolve(fs *flag.FlagSet, set map[string]bool, getenv func(string) string) error {
	if err := applyEnv(fs, set, getenv, connEnv()); err != nil {
		return err
	}
	for _, sec := range []struct {
		flag, env string
		field     *string
	}{
		{"nats-password", "NATS_PASSWORD", &c.password},
		{"nats-token", "NATS_TOKEN", &c.token},
	} {
		if set[sec.flag] {
			continue
		}
		path := getenv(sec.env + "_FILE")
		if path == "" {
			continue
		}
		if *sec.field != "" {
			return usageErrorf("both %s and %s_FILE are set; set one", sec.env, sec.env)
		}
		b, err := os.ReadFile(path) //nolint:gosec // the operator names the file on purpose
		if err != nil {
			return usageErrorf("%s_FILE: %v", sec.env, err)
		}
		// Files written by editors and echo end in a newline that is not part of the secret.
		*sec.field = strings.TrimRightFunc(string(b), unicode.IsSpace)
		if *sec.field == "" {
			return usageErrorf("%s_FILE: the file %q is empty", sec.env, path)
		}
	}

	methods := 0
	for _, on := range []bool{c.token != "", c.user != "" || c.password != "", c.creds != ""} {
		if on {
			methods++
		}
	}
	switch {
	case strings.TrimSpace(c.url) == "":
		return usageErrorf("--nats-url is empty")
	case methods > 1:
		return usageErrorf("give only one of --nats-token, --nats-user with --nats-password, and --nats-creds")
	case (c.user == "") != (c.password == ""):
		return usageErrorf("--nats-user and --nats-password go together")
	case (c.cert == "") != (c.key == ""):
		return usageErrorf("--nats-cert and --nats-key go together")
	case !validSubject(c.inboxPrefix):
		return usageErrorf("--nats-inbox-prefix %q is not a subject prefix (no wildcards or empty tokens)", c.inboxPrefix)
	case !validSubject(c.triggerSubject):
		return usageErrorf("--trigger-subject %q is not a subject to publish to (no wildcards or empty tokens)", c.triggerSubject)
	case c.resultStream == "":
		return usageErrorf("--result-stream is empty")
	}
	return nil
}

// applyEnv sets each flag not given on the command line from its variable, when that is set.
func applyEnv(fs *flag.FlagSet, set map[string]bool, getenv func(string) string, binds []envFlag) error {
	for _, b := range binds {
		if set[b.flag] {
			continue
		}
		if v := getenv(b.env); v != "" {
			if err := fs.Set(b.flag, v); err != nil {
				return usageErrorf("%s: %v", b.env, err)
			}
		}
	}
	return nil
}

// connect opens the NATS connection. It reconnects for as long as the caller waits, and says so
// on stderr.
func (c *connFlags) connect(stderr io.Writer) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := natsconn.Connect(natsconn.Options{
		URL: c.url, Name: "vidm-sync", CredsFile: c.creds, Token: c.token, User: c.user, Password: c.password,
		CAFile: c.ca, CertFile: c.cert, KeyFile: c.key, InboxPrefix: c.inboxPrefix,
	},
		nats.NoCallbacksAfterClientClose(),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				fmt.Fprintf(stderr, "NATS disconnected (%v); reconnecting\n", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			fmt.Fprintf(stderr, "NATS reconnected to %s\n", nc.ConnectedUrlRedacted())
		}),
	)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// feed follows a stream with an ordered consumer (ephemeral, in order, no acks), delivering its
// messages on C until stop is called. A consumer error ends the feed: Err then holds it and C is
// closed.
type feed struct {
	C    <-chan jetstream.Msg
	Err  <-chan error
	stop func()
}

// follow starts a feed on stream: from its first message, or (fromAll false) from the first one
// stored after this call. The latter is pinned to a sequence rather than left to DeliverNew: an
// ordered consumer that is recreated (after a reconnect) before it delivered anything would apply
// DeliverNew again and skip what was stored in between.
func follow(ctx context.Context, js jetstream.JetStream, stream string, fromAll bool) (*feed, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("stream %s not found (is the worker running, with this name?)", stream)
		}
		return nil, fmt.Errorf("stream %s: %w", stream, err)
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if !fromAll {
		cfg = jetstream.OrderedConsumerConfig{
			DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:   s.CachedInfo().State.LastSeq + 1,
		}
	}
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("consumer on stream %s: %w", stream, err)
	}
	// Messages creates the server-side consumer now, so nothing stored from here on is missed.
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("consumer on stream %s: %w", stream, err)
	}
	fctx, cancel := context.WithCancel(ctx)
	out := make(chan jetstream.Msg)
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		for {
			m, err := it.Next(jetstream.NextContext(fctx))
			if err != nil {
				if fctx.Err() == nil {
					errc <- fmt.Errorf("following stream %s: %w", stream, err)
				}
				return
			}
			select {
			case out <- m:
			case <-fctx.Done():
				return
			}
		}
	}()
	stop := func() {
		cancel()
		<-done
		it.Stop()
		// The server would drop the ephemeral consumer after a few idle minutes anyway.
		if info := cons.CachedInfo(); info != nil {
			dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = js.DeleteConsumer(dctx, stream, info.Name)
			dcancel()
		}
	}
	return &feed{C: out, Err: errc, stop: stop}, nil
}
