package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
)

// Stream names: the worker's defaults, which the harness does not change.
const (
	triggerStream = "DIRSYNC_TRIGGERS"
	resultStream  = "DIRSYNC_RESULTS"
	deadStream    = "DIRSYNC_DEAD"
	consumerName  = "vidm-sync-worker"
)

// resultEvent is one terminal result as stored.
type resultEvent struct {
	seq  uint64
	typ  string
	id   string
	data contract.Data
}

// deadLetter is one message of the dead-letter stream.
type deadLetter struct {
	origSeq uint64
	code    string
}

// readStream calls fn for every message of stream with a sequence above after, in order, and
// returns the last sequence read.
func readStream(ctx context.Context, js jetstream.JetStream, stream string, after uint64, fn func(*jetstream.RawStreamMsg) error) (uint64, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return after, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return after, err
	}
	last := after
	for seq := max(after+1, info.State.FirstSeq); seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			last = seq
			continue
		}
		if err != nil {
			return last, err
		}
		if err := fn(m); err != nil {
			return last, err
		}
		last = seq
	}
	return last, nil
}

// decodeResult reads a results-stream message; ok is false for started events.
func decodeResult(m *jetstream.RawStreamMsg) (resultEvent, bool, error) {
	e, err := cenats.Decode(m.Header, m.Data)
	if err != nil {
		return resultEvent{}, false, fmt.Errorf("result seq %d does not decode: %w", m.Sequence, err)
	}
	if e.Type() == contract.TypeStarted {
		return resultEvent{}, false, nil
	}
	r := resultEvent{seq: m.Sequence, typ: e.Type(), id: e.ID()}
	if err := json.Unmarshal(e.Data(), &r.data); err != nil {
		return resultEvent{}, false, fmt.Errorf("result seq %d: %w", m.Sequence, err)
	}
	return r, true, nil
}

func readResults(ctx context.Context, js jetstream.JetStream) ([]resultEvent, error) {
	var out []resultEvent
	_, err := readStream(ctx, js, resultStream, 0, func(m *jetstream.RawStreamMsg) error {
		r, ok, err := decodeResult(m)
		if ok {
			out = append(out, r)
		}
		return err
	})
	return out, err
}

func readDead(ctx context.Context, js jetstream.JetStream) ([]deadLetter, error) {
	var out []deadLetter
	_, err := readStream(ctx, js, deadStream, 0, func(m *jetstream.RawStreamMsg) error {
		seq, _ := strconv.ParseUint(m.Header.Get(contract.HeaderDeadSeq), 10, 64)
		out = append(out, deadLetter{origSeq: seq, code: m.Header.Get(contract.HeaderDeadCode)})
		return nil
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil // nothing was ever dead-lettered
	}
	return out, err
}

// follower polls the results stream while the run goes on and notes when each trigger id first
// appears in a terminal result: the arrival time the latency figures use.
type follower struct {
	js      jetstream.JetStream
	mu      sync.Mutex
	last    uint64
	arrived map[string]time.Time
}

func newFollower(js jetstream.JetStream) *follower {
	return &follower{js: js, arrived: map[string]time.Time{}}
}

// run polls every 100 ms until ctx ends; errors (the broker restarting) are retried.
func (f *follower) run(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		f.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (f *follower) poll(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	f.mu.Lock()
	after := f.last
	f.mu.Unlock()
	last, _ := readStream(pctx, f.js, resultStream, after, func(m *jetstream.RawStreamMsg) error {
		r, ok, _ := decodeResult(m)
		if !ok {
			return nil
		}
		now := time.Now()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, t := range r.data.Triggers {
			if _, seen := f.arrived[t.ID]; !seen {
				f.arrived[t.ID] = now
			}
		}
		return nil
	})
	f.mu.Lock()
	f.last = max(f.last, last)
	f.mu.Unlock()
}

// missing counts the ids not yet seen in a terminal result.
func (f *follower) missing(ids []string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, id := range ids {
		if _, ok := f.arrived[id]; !ok {
			n++
		}
	}
	return n
}

func (f *follower) arrivals() map[string]time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]time.Time, len(f.arrived))
	for k, v := range f.arrived {
		out[k] = v
	}
	return out
}
