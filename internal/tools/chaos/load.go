package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
)

// How an invalid trigger is broken.
const (
	validTrigger     = ""
	invalidMalformed = "malformed"      // structured mode, payload not JSON
	invalidType      = "unknown-type"   // a CloudEvent of a type the worker does not take
	invalidDirectory = "unknown-domain" // well-formed, but no vIDM directory has the domain
)

// publishPatience bounds the retries of one publish (the broker may be restarting).
const publishPatience = 30 * time.Second

// planned is one trigger of the load, decided from the seed before anything runs.
type planned struct {
	id         string
	dir        int           // directory index
	invalid    string        // validTrigger or how it is broken
	structured bool          // structured mode, else binary
	at         time.Duration // offset from the start of the load
	kind       int           // 0 group, 1 user, 2 sync requested
	byName     bool          // names the directory rather than its domain
}

// planLoad spreads n triggers over span in bursts on random directories, plus the large burst.
func planLoad(rng *rand.Rand, o Options, span time.Duration) []planned {
	out := make([]planned, 0, o.Triggers)
	for len(out) < o.Triggers {
		at := time.Duration(rng.Int64N(int64(span)))
		dir := rng.IntN(o.Directories)
		burst := 1 + rng.IntN(25)
		for i := 0; i < burst && len(out) < o.Triggers; i++ {
			p := planned{
				id: fmt.Sprintf("chaos-%d-%05d", o.Seed, len(out)), dir: dir, at: at,
				structured: rng.IntN(2) == 0, kind: rng.IntN(3), byName: rng.IntN(4) == 0,
			}
			if rng.Float64() < o.InvalidRate {
				p.invalid = []string{invalidMalformed, invalidType, invalidDirectory}[rng.IntN(3)]
			}
			out = append(out, p)
		}
	}
	// The large burst: valid group triggers, all at once, for a few directories.
	for i := range o.LargeBurst {
		out = append(out, planned{id: fmt.Sprintf("chaos-%d-%05d", o.Seed, len(out)), dir: i % o.LargeBurstDirs, at: span / 3})
	}
	sortByAt(out)
	return out
}

// sortByAt orders the plan by offset; ties keep plan order.
func sortByAt(ps []planned) {
	slices.SortStableFunc(ps, func(a, b planned) int { return cmp.Compare(a.at, b.at) })
}

func dirName(i int) string   { return fmt.Sprintf("Dir %02d", i) }
func dirDomain(i int) string { return fmt.Sprintf("d%02d.example.com", i) }
func dirID(i int) string     { return fmt.Sprintf("dir-%02d", i) }

const subject = "dirsync.trigger.chaos"

// message builds the NATS message of p.
func (p planned) message() (*nats.Msg, error) {
	switch p.invalid {
	case invalidMalformed:
		m := nats.NewMsg(subject)
		m.Header.Set("Content-Type", cenats.ContentTypeStructured)
		m.Header.Set(nats.MsgIdHdr, p.id)
		m.Data = []byte(`{"specversion":"1.0","id":"` + p.id + `", not json`)
		return m, nil
	case invalidType:
		e := event.New(event.CloudEventsVersionV1)
		e.SetID(p.id)
		e.SetSource("urn:vidm-sync-chaos")
		e.SetType("com.example.printer.jammed")
		if err := e.SetData(event.ApplicationJSON, map[string]string{"domain": dirDomain(p.dir)}); err != nil {
			return nil, err
		}
		return p.encode(e)
	}
	t := trigger.Trigger{ID: p.id, Source: "urn:vidm-sync-chaos:pipeline", Domain: dirDomain(p.dir)}
	if p.byName {
		t.Domain, t.Directory = "", dirName(p.dir)
	}
	if p.invalid == invalidDirectory {
		t.Domain, t.Directory = "nowhere.example.org", ""
	}
	switch p.kind {
	case 0:
		t.Type, t.Group = "ad.group.created", "grp-"+p.id
	case 1:
		t.Type, t.User = "ad.user.created", "u"+p.id+"@"+dirDomain(p.dir)
	default:
		t.Type, t.Reason = contract.TypeSyncRequested, "chaos"
	}
	e, err := trigger.NewEvent(t)
	if err != nil {
		return nil, err
	}
	return p.encode(e)
}

func (p planned) encode(e event.Event) (*nats.Msg, error) {
	if p.structured {
		return cenats.EncodeStructured(subject, e)
	}
	return cenats.EncodeBinary(subject, e)
}

// sent is what the publisher knows about one trigger it published.
type sent struct {
	planned
	publishedAt time.Time // first attempt
	acked       bool      // PubAck received
	seq         uint64    // stream sequence from the PubAck
}

// publishAll publishes the plan on its schedule, each with retries (same Nats-Msg-Id, so a retry
// of a publish that did reach the stream is de-duplicated). It stops early when ctx ends.
func publishAll(ctx context.Context, js jetstream.JetStream, plan []planned, start time.Time) ([]sent, error) {
	out := make([]sent, 0, len(plan))
	for _, p := range plan {
		if err := waitUntil(ctx, start.Add(p.at)); err != nil {
			return out, err
		}
		msg, err := p.message()
		if err != nil {
			return out, fmt.Errorf("trigger %s: %w", p.id, err)
		}
		s := sent{planned: p, publishedAt: time.Now()}
		if ack, err := publishRetry(ctx, js, msg); err == nil {
			s.acked, s.seq = true, ack.Sequence
		} else if ctx.Err() != nil {
			return append(out, s), ctx.Err()
		}
		out = append(out, s)
	}
	return out, nil
}

func publishRetry(ctx context.Context, js jetstream.JetStream, msg *nats.Msg) (*jetstream.PubAck, error) {
	deadline := time.Now().Add(publishPatience)
	var last error
	for time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ack, err := js.PublishMsg(pctx, msg)
		cancel()
		if err == nil {
			return ack, nil
		}
		last = err
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err := waitUntil(ctx, time.Now().Add(100*time.Millisecond)); err != nil {
			return nil, err
		}
	}
	return nil, errors.Join(errors.New("publish gave up"), last)
}

// waitUntil waits for t or ctx.
func waitUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
