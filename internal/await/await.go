// Package await waits for the terminal outcome of published triggers: the completed or failed
// result event that lists a trigger, or the dead letter the worker made of it.
//
// One Watcher serves any number of waiters: it follows the results stream and the dead-letter
// stream with one ordered consumer each and hands every message to the waiters registered for the
// trigger ids it names. A waiter registers before its trigger is published; the Watcher follows
// both streams from the first message stored after Start, so a result cannot go by unseen however
// fast the worker is. A publish the stream de-duplicated (its original came earlier, possibly with
// its result already reported) is answered by Earlier from the streams' history.
package await

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/backoff"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
)

// Kind is what became of a trigger.
type Kind int

// The outcomes of a trigger.
const (
	// Completed: a sync covering the trigger ran, and vIDM reported it COMPLETED.
	Completed Kind = iota + 1
	// Failed: the run covering the trigger ended FAILED (Outcome.Data.Error says why).
	Failed
	// DeadLettered: the worker rejected the trigger (Outcome.DeadCode and DeadReason say why).
	DeadLettered
)

func (k Kind) String() string {
	switch k {
	case Completed:
		return "COMPLETED"
	case Failed:
		return "FAILED"
	case DeadLettered:
		return "DEAD_LETTERED"
	}
	return "UNKNOWN"
}

// Outcome is the terminal outcome of one trigger.
type Outcome struct {
	Kind Kind
	// Event is the result event (Completed, Failed), or the trigger the dead letter holds.
	Event event.Event
	// Data is the result event's data; zero for a dead letter.
	Data contract.Data
	// DeadCode and DeadReason are the dead letter's Dirsync-Dead-Code and Dirsync-Dead-Reason.
	DeadCode, DeadReason string
	// Trigger is the result's entry for the trigger waited for, with what the readiness check
	// found of its group or user (Visible, PrincipalID, Hint); zero for a dead letter.
	Trigger contract.Trigger
}

// Started is a sync that started while a Wait registered WithStarted was waiting. A started event
// lists no triggers, so it may be another directory's sync.
type Started struct {
	Event event.Event
	Data  contract.StartedData
}

// Errors a Wait ends with when no outcome came.
var (
	// ErrCanceled: Cancel was called.
	ErrCanceled = errors.New("await: wait canceled")
	// ErrStopped: the Watcher was stopped, or the context given to Start ended.
	ErrStopped = errors.New("await: watcher stopped")
)

// resetAttempts bounds how often nats.go recreates an ordered consumer in one go before handing
// the failure back, so that the Watcher can tell a broker restart (retry) from a deleted stream
// or a closed connection (give up) and log what it is doing.
const resetAttempts = 3

// retryInitial and retryMax bound the waits of a follower whose ordered consumer failed.
const (
	retryInitial = 500 * time.Millisecond
	retryMax     = 10 * time.Second
)

// startedBuffer is how many started events a slow Wait can fall behind before it misses some.
const startedBuffer = 16

// Watcher dispatches results and dead letters to registered waits. It is safe for concurrent use.
type Watcher struct {
	js     jetstream.JetStream
	log    *slog.Logger
	result string // stream names
	dead   string
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	waits     map[string]map[*Wait]struct{} // by trigger event id
	onStarted map[*Wait]struct{}
	err       error // set when the watcher cannot follow the results stream any more
}

// Start follows resultStream and deadStream ("" for no dead letters) from the messages stored
// after it returns, until ctx ends or Stop is called: ctx is the Watcher's lifetime, not a
// deadline for starting. A stream that does not exist is an error.
// A consumer that breaks (a broker restart, a lost connection) is recreated from where it was,
// so nothing is skipped; only a closed connection or a deleted results stream ends the waits,
// with an error.
func Start(ctx context.Context, js jetstream.JetStream, resultStream, deadStream string, log *slog.Logger) (*Watcher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{
		js: js, log: log, result: resultStream, dead: deadStream,
		waits: map[string]map[*Wait]struct{}{}, onStarted: map[*Wait]struct{}{},
	}
	res, err := newFollower(ctx, js, resultStream)
	if err != nil {
		return nil, err
	}
	var dead *follower
	if deadStream != "" {
		if dead, err = newFollower(ctx, js, deadStream); err != nil {
			res.stop()
			return nil, err
		}
	}
	fctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	w.wg.Go(func() {
		defer res.stop()
		err := w.follow(fctx, res, w.onResult)
		w.fail(err)
	})
	if dead != nil {
		w.wg.Go(func() {
			defer dead.stop()
			if err := w.follow(fctx, dead, w.onDead); err != nil && fctx.Err() == nil {
				// Results still arrive; only rejections now show as timeouts.
				w.log.Error("no longer following dead letters; a rejected trigger will only show as a timeout", "stream", deadStream, "err", err)
			}
		})
	}
	return w, nil
}

// Stop stops following and ends every wait still open with ErrStopped.
func (w *Watcher) Stop() {
	w.cancel()
	w.wg.Wait()
	w.fail(ErrStopped)
}

// Waiting is the number of waits registered and not yet settled.
func (w *Watcher) Waiting() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, ws := range w.waits {
		n += len(ws)
	}
	return n
}

// Option configures a Wait.
type Option func(*Wait)

// WithStarted also delivers started events on Wait.Started.
func WithStarted() Option {
	return func(wt *Wait) { wt.started = make(chan Started, startedBuffer) }
}

// Register starts waiting for the outcome of the trigger with this event id. Call it before the
// trigger is published, and Cancel the Wait when it is no longer wanted. Several waits may wait
// for the same id; each gets the outcome.
func (w *Watcher) Register(eventID string, opts ...Option) *Wait {
	wt := &Wait{id: eventID, w: w, done: make(chan struct{})}
	for _, o := range opts {
		o(wt)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		wt.settle(Outcome{}, w.err)
		return wt
	}
	ws := w.waits[eventID]
	if ws == nil {
		ws = map[*Wait]struct{}{}
		w.waits[eventID] = ws
	}
	ws[wt] = struct{}{}
	if wt.started != nil {
		w.onStarted[wt] = struct{}{}
	}
	return wt
}

// Wait is one registered wait.
type Wait struct {
	id      string
	w       *Watcher
	done    chan struct{}
	started chan Started // nil without WithStarted

	// Written once, before done is closed.
	outcome Outcome
	err     error
}

// ID is the trigger event id waited for.
func (wt *Wait) ID() string { return wt.id }

// Done is closed when the wait is settled: an outcome came, or it ended with an error.
func (wt *Wait) Done() <-chan struct{} { return wt.done }

// Result is the outcome, valid once Done is closed: the Outcome, or ErrCanceled, ErrStopped or the
// error that stopped the Watcher.
func (wt *Wait) Result() (Outcome, error) {
	select {
	case <-wt.done:
		return wt.outcome, wt.err
	default:
		return Outcome{}, errors.New("await: wait not settled yet")
	}
}

// Wait blocks until the wait is settled or ctx ends (then it returns ctx's error and stays
// registered; Cancel it).
func (wt *Wait) Wait(ctx context.Context) (Outcome, error) {
	select {
	case <-wt.done:
		return wt.outcome, wt.err
	case <-ctx.Done():
		return Outcome{}, ctx.Err()
	}
}

// Started delivers the started events that come while waiting, with WithStarted (nil otherwise).
// Events are dropped rather than block the Watcher when the receiver falls behind.
func (wt *Wait) Started() <-chan Started { return wt.started }

// Cancel releases the wait; a wait not yet settled ends with ErrCanceled. It is idempotent.
func (wt *Wait) Cancel() {
	w := wt.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if ws := w.waits[wt.id]; ws != nil {
		delete(ws, wt)
		if len(ws) == 0 {
			delete(w.waits, wt.id)
		}
	}
	delete(w.onStarted, wt)
	wt.settle(Outcome{}, ErrCanceled)
}

// settle records the outcome once; the caller holds w.mu.
func (wt *Wait) settle(o Outcome, err error) {
	select {
	case <-wt.done:
		return
	default:
	}
	wt.outcome, wt.err = o, err
	close(wt.done)
}

// dispatch settles every wait for id.
func (w *Watcher) dispatch(id string, o Outcome) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for wt := range w.waits[id] {
		delete(w.onStarted, wt)
		wt.settle(o, nil)
	}
	delete(w.waits, id)
}

// fail ends every open wait with err, and every later Register too when err is not nil.
func (w *Watcher) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		err = ErrStopped
	}
	if w.err == nil {
		w.err = err
	}
	for id, ws := range w.waits {
		for wt := range ws {
			wt.settle(Outcome{}, w.err)
		}
		delete(w.waits, id)
	}
	clear(w.onStarted)
}

func (w *Watcher) onResult(m jetstream.Msg) {
	o, st, ok := w.decodeResult(m.Headers(), m.Data())
	switch {
	case !ok:
	case st != nil:
		w.mu.Lock()
		defer w.mu.Unlock()
		for wt := range w.onStarted {
			select {
			case wt.started <- *st:
			default:
			}
		}
	default:
		for _, t := range o.Data.Triggers {
			o.Trigger = t
			w.dispatch(t.ID, o)
		}
	}
}

// decodeResult reads a result message: a terminal outcome, or a started event (st not nil).
func (w *Watcher) decodeResult(h nats.Header, data []byte) (o Outcome, st *Started, ok bool) {
	e, err := cenats.Decode(h, data)
	if err != nil {
		w.log.Debug("skipping a result message that is not a CloudEvent", "err", err)
		return Outcome{}, nil, false
	}
	switch e.Type() {
	case contract.TypeStarted:
		s := Started{Event: e}
		if err := json.Unmarshal(e.Data(), &s.Data); err != nil {
			w.log.Debug("skipping a started event with bad data", "id", e.ID(), "err", err)
			return Outcome{}, nil, false
		}
		return Outcome{}, &s, true
	case contract.TypeCompleted, contract.TypeFailed:
		o := Outcome{Kind: Completed, Event: e}
		if e.Type() == contract.TypeFailed {
			o.Kind = Failed
		}
		if err := json.Unmarshal(e.Data(), &o.Data); err != nil {
			w.log.Debug("skipping a result event with bad data", "id", e.ID(), "err", err)
			return Outcome{}, nil, false
		}
		return o, nil, true
	}
	return Outcome{}, nil, false
}

func (w *Watcher) onDead(m jetstream.Msg) {
	if id, o, ok := decodeDead(m.Headers(), m.Data()); ok {
		w.dispatch(id, o)
	}
}

// decodeDead reads a dead letter: it keeps the trigger's own headers and payload, so the trigger's
// event id is found by decoding it as the worker did. A dead letter that is no CloudEvent
// (MALFORMED) names no id and matches no wait.
func decodeDead(h nats.Header, data []byte) (string, Outcome, bool) {
	e, err := cenats.Decode(h, data)
	if err != nil {
		return "", Outcome{}, false
	}
	return e.ID(), Outcome{
		Kind: DeadLettered, Event: e,
		DeadCode: h.Get(contract.HeaderDeadCode), DeadReason: h.Get(contract.HeaderDeadReason),
	}, true
}

// follower is one ordered consumer on a stream, recreated from its cursor when it breaks.
type follower struct {
	js     jetstream.JetStream
	stream string
	next   uint64 // the stream sequence to resume from
	cons   jetstream.Consumer
	it     jetstream.MessagesContext
}

// newFollower opens a follower at the first message stored after now. The start is a pinned
// sequence rather than DeliverNew: nats.go recreates an ordered consumer that has delivered
// nothing yet with its original policy, and DeliverNew would then skip what came in between.
func newFollower(ctx context.Context, js jetstream.JetStream, stream string) (*follower, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("await: stream %s not found (is the worker running, with this name?): %w", stream, err)
		}
		return nil, fmt.Errorf("await: stream %s: %w", stream, err)
	}
	f := &follower{js: js, stream: stream, next: s.CachedInfo().State.LastSeq + 1}
	if err := f.open(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *follower) open(ctx context.Context) error {
	cons, err := f.js.OrderedConsumer(ctx, f.stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy:    jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:      f.next,
		MaxResetAttempts: resetAttempts,
	})
	if err != nil {
		return fmt.Errorf("await: consumer on stream %s: %w", f.stream, err)
	}
	// Messages creates the server-side consumer now, so nothing stored from here on is missed.
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("await: consumer on stream %s: %w", f.stream, err)
	}
	f.cons, f.it = cons, it
	return nil
}

// close stops the iterator; the server-side consumer is left to nats.go or to stop.
func (f *follower) close() {
	if f.it != nil {
		f.it.Stop()
		f.it = nil
	}
}

// stop closes the follower for good and deletes its consumer, which the server would otherwise
// keep for its inactivity threshold (minutes).
func (f *follower) stop() {
	f.close()
	if f.cons != nil {
		deleteConsumer(f.js, f.stream, f.cons)
		f.cons = nil
	}
}

func deleteConsumer(js jetstream.JetStream, stream string, cons jetstream.Consumer) {
	info := cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = js.DeleteConsumer(ctx, stream, info.Name)
}

// follow hands each message of f to handle until ctx ends (nil) or f cannot go on (the error).
func (w *Watcher) follow(ctx context.Context, f *follower, handle func(jetstream.Msg)) error {
	retry := backoff.Policy{Initial: retryInitial, Max: retryMax}
	failures := 0 // in a row: a message received starts the waits again from retryInitial
	for {
		m, err := f.it.Next(jetstream.NextContext(ctx))
		if err == nil {
			if md, err := m.Metadata(); err == nil {
				f.next = md.Sequence.Stream + 1
			}
			handle(m)
			failures = 0
			continue
		}
		for {
			failures++
			delay := retry.Delay(failures)
			if ctx.Err() != nil {
				return nil
			}
			if final := w.final(err); final != nil {
				return final
			}
			w.log.Warn("following a stream failed; resuming", "stream", f.stream, "from_seq", f.next, "retry_in", delay, "err", err)
			if backoff.Wait(ctx, delay) != nil {
				return nil
			}
			f.close()
			if err = f.open(ctx); err == nil {
				w.log.Info("following the stream again", "stream", f.stream, "from_seq", f.next)
				break
			}
		}
	}
}

// final reports the failures no retry can mend: a closed connection, a deleted stream.
func (w *Watcher) final(err error) error {
	switch {
	case w.js.Conn().IsClosed(), errors.Is(err, nats.ErrConnectionClosed):
		return fmt.Errorf("await: the NATS connection is closed: %w", nats.ErrConnectionClosed)
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("await: the stream no longer exists: %w", err)
	}
	return nil
}

// Earlier looks for the outcome of a trigger whose publish the stream de-duplicated
// (ack.Duplicate): its original was published before the caller registered, so its result or
// dead letter may already be stored. It searches what the results and dead-letter streams stored
// since the original trigger was stored, up to now; found is false when nothing is there yet (the
// registered Wait gets what comes later).
func (w *Watcher) Earlier(ctx context.Context, eventID string, ack *jetstream.PubAck) (o Outcome, found bool, err error) {
	if ack == nil || ack.Stream == "" || ack.Sequence == 0 {
		return Outcome{}, false, errors.New("await: no publish acknowledgement to search from")
	}
	s, err := w.js.Stream(ctx, ack.Stream)
	if err != nil {
		return Outcome{}, false, fmt.Errorf("await: trigger stream %s: %w", ack.Stream, err)
	}
	orig, err := s.GetMsg(ctx, ack.Sequence)
	if err != nil {
		return Outcome{}, false, fmt.Errorf("await: the original trigger (stream %s, seq %d): %w", ack.Stream, ack.Sequence, err)
	}
	streams := []struct {
		name  string
		match func(jetstream.Msg) (Outcome, bool)
	}{
		{w.result, func(m jetstream.Msg) (Outcome, bool) {
			o, st, ok := w.decodeResult(m.Headers(), m.Data())
			if !ok || st != nil {
				return Outcome{}, false
			}
			for _, t := range o.Data.Triggers {
				if t.ID == eventID {
					o.Trigger = t
					return o, true
				}
			}
			return Outcome{}, false
		}},
		{w.dead, func(m jetstream.Msg) (Outcome, bool) {
			id, o, ok := decodeDead(m.Headers(), m.Data())
			return o, ok && id == eventID
		}},
	}
	for _, st := range streams {
		if st.name == "" {
			continue
		}
		o, found, err := search(ctx, w.js, st.name, orig.Time, st.match)
		if err != nil || found {
			return o, found, err
		}
	}
	return Outcome{}, false, nil
}

// searchBatch is how many messages one request of a history search asks for.
const searchBatch = 256

// search reads stream from the first message stored at or after since up to the last one stored
// now, and returns the first that match accepts.
func search(ctx context.Context, js jetstream.JetStream, stream string, since time.Time, match func(jetstream.Msg) (Outcome, bool)) (Outcome, bool, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return Outcome{}, false, fmt.Errorf("await: stream %s: %w", stream, err)
	}
	last := s.CachedInfo().State.LastSeq
	if last == 0 {
		return Outcome{}, false, nil
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  &since,
	})
	if err != nil {
		return Outcome{}, false, fmt.Errorf("await: searching stream %s: %w", stream, err)
	}
	defer deleteConsumer(js, stream, cons)
	for {
		batch, err := cons.FetchNoWait(searchBatch)
		if err != nil {
			return Outcome{}, false, fmt.Errorf("await: searching stream %s: %w", stream, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if o, ok := match(m); ok {
				return o, true, nil
			}
			if md, err := m.Metadata(); err == nil && md.Sequence.Stream >= last {
				return Outcome{}, false, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return Outcome{}, false, fmt.Errorf("await: searching stream %s: %w", stream, err)
		}
		if n == 0 {
			return Outcome{}, false, nil
		}
		if ctx.Err() != nil {
			return Outcome{}, false, ctx.Err()
		}
	}
}
