// Package worker wires the service together: NATS connection, JetStream resources, the vIDM
// client, intake and the coalescing engine. Data flows one way: trigger in → pending set →
// coalesced run → vIDM sync → result out.
package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/coalesce"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/dirstate"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/intake"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsconn"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/results"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/streams"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/trigger"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/vidm"
)

// Run runs one worker replica until ctx ends, then shuts down in order: stop pulling triggers and
// finish recording the ones in flight, stop the runs (their records and released leases let any
// replica resume them), flush and close the NATS connection.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	nc, err := Connect(cfg, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := nc.Drain(); err != nil {
			log.Warn("draining the NATS connection", "err", err)
		}
	}()
	return Serve(ctx, nc, cfg, log)
}

// Serve runs the worker on an open connection; Run owns the connection's lifetime.
func Serve(ctx context.Context, nc *nats.Conn, cfg config.Config, log *slog.Logger) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	res, err := resourcesWhenReachable(ctx, js, cfg, log)
	if err != nil {
		if ctx.Err() != nil {
			// Told to stop while starting: a clean stop, not a failure.
			log.Info("worker stopped during start-up")
			return nil
		}
		return err
	}
	vcfg := cfg.VIDM()
	vcfg.Logger = log.With("component", "vidm")
	vc, err := vidm.New(vcfg)
	if err != nil {
		return fmt.Errorf("vIDM client: %w", err)
	}
	defer vc.Close()
	dec, err := trigger.NewDecoder()
	if err != nil {
		return err
	}
	store := dirstate.New(res.Pending, res.Runs, res.Leases, nil)
	engine := coalesce.New(coalesce.Config{
		Holder:        holderName(),
		Window:        cfg.CoalesceWindow,
		LeaseTTL:      cfg.LeaseTTL,
		MaxConcurrent: cfg.MaxConcurrentSyncs,
		PollInitial:   cfg.PollInitialInterval,
		PollMax:       cfg.PollMaxInterval,
		SyncDeadline:  cfg.SyncDeadline,
		Logger:        log.With("component", "coalesce"),
	}, store, vc, results.New(js, cfg.ResultSubjectPrefix, cfg.ResultSource))
	in := intake.New(intake.Config{
		Tenant:      cfg.Tenant,
		DeadSubject: cfg.DeadSubject,
		PullBatch:   cfg.PullBatch,
		Logger:      log.With("component", "intake"),
	}, js, res.Consumer, dec, vc, store, engine.Notify)

	log.Info("worker running", "consumer", cfg.Consumer, "trigger_subjects", cfg.TriggerSubjects, "vidm", cfg.VIDMURL)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() { errs <- in.Run(ctx) })
	wg.Go(func() { errs <- engine.Run(ctx) })
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	log.Info("worker stopped")
	return errors.Join(all...)
}

// resourcesWhenReachable sets up the JetStream resources, waiting out a broker that is down or
// restarting (a rolling NATS upgrade must not crash-loop the workers); a refusal is final.
func resourcesWhenReachable(ctx context.Context, js jetstream.JetStream, cfg config.Config, log *slog.Logger) (*streams.Resources, error) {
	wait := 250 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		res, err := resources(actx, js, cfg)
		cancel()
		if err == nil || !brokerUnavailable(err) || ctx.Err() != nil {
			return res, err
		}
		log.Warn("JetStream not reachable yet; retrying", "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 10*time.Second)
	}
}

// brokerUnavailable: errors that mean "no answer (yet)", not "no".
func brokerUnavailable(err error) bool {
	for _, target := range []error{context.DeadlineExceeded, nats.ErrTimeout, nats.ErrNoResponders,
		nats.ErrConnectionClosed, nats.ErrConnectionReconnecting, nats.ErrDisconnected, jetstream.ErrJetStreamNotEnabled} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

func resources(ctx context.Context, js jetstream.JetStream, cfg config.Config) (*streams.Resources, error) {
	if !cfg.ManageStreams {
		return streams.Bind(ctx, js, cfg.StreamNames())
	}
	return streams.Ensure(ctx, js, cfg.StreamNames(), cfg.StreamSettings())
}

// Connect opens the NATS connection with the configured credentials and TLS, reconnecting forever:
// a NATS restart pauses the worker, it does not stop it.
func Connect(cfg config.Config, log *slog.Logger) (*nats.Conn, error) {
	return natsconn.Connect(natsconn.Options{
		URL: cfg.NATSURL, Name: cfg.NATSName, CredsFile: cfg.NATSCredsFile, Token: cfg.NATSToken,
		User: cfg.NATSUser, Password: cfg.NATSPassword, CAFile: cfg.NATSCAFile, CertFile: cfg.NATSCertFile, KeyFile: cfg.NATSKeyFile,
	},
		nats.ReconnectWait(time.Second),
		// A broker that is not up yet is waited for, like one that went away.
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("NATS reconnected", "url", c.ConnectedUrlRedacted()) }),
	)
}

// holderName identifies this replica in leases and logs: the pod name plus a random suffix, so a
// restarted pod never mistakes its predecessor's lease for its own.
func holderName() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}
