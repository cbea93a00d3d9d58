package await_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/await"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/streams"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/results"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natsdev"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
)

// Stream names of the test resources.
const (
	triggerStream = "T"
	resultStream  = "R"
	deadStream    = "D"
)

func ensure(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	_, err := streams.Ensure(context.Background(), js, streams.Names{
		TriggerStream: triggerStream, TriggerSubjects: []string{"t.>"}, ResultStream: resultStream, ResultSubjectPrefix: "r",
		DeadStream: deadStream, DeadSubject: "d", Consumer: "c", PendingBucket: "P", RunsBucket: "RU", LeaseBucket: "L",
		HistoryBucket: "H", ControlBucket: "CT",
	}, streams.Settings{Replicas: 1, ResultDuplicateWindow: time.Minute, LeaseTTL: time.Minute, HistoryMaxAge: time.Hour, AckWait: time.Second, MaxAckPending: 10})
	if err != nil {
		t.Fatal(err)
	}
}

func setup(t *testing.T) (jetstream.JetStream, *await.Watcher) {
	t.Helper()
	js := natstest.JetStream(t)
	ensure(t, js)
	return js, start(t, js)
}

func start(t *testing.T, js jetstream.JetStream) *await.Watcher {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := await.Start(context.Background(), js, resultStream, deadStream, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// publishResult publishes a result event of kind ("completed", "failed" or "started") for a
// run that covers triggerIDs.
func publishResult(t *testing.T, js jetstream.JetStream, kind, runID string, triggerIDs ...string) {
	t.Helper()
	e := event.New()
	e.SetID(runID + "." + kind)
	e.SetSource("urn:test:worker")
	e.SetSubject("Corp AD")
	e.SetTime(time.Now())
	var data any
	switch kind {
	case "started":
		e.SetType(contract.TypeStarted)
		data = contract.StartedData{Tenant: "default", DirectoryID: "dir-corp", DirectoryName: "Corp AD", RunID: runID, StartedAt: time.Now()}
	default:
		d := contract.Data{Tenant: "default", DirectoryID: "dir-corp", DirectoryName: "Corp AD", RunID: runID, Status: "COMPLETED"}
		e.SetType(contract.TypeCompleted)
		if kind == "failed" {
			e.SetType(contract.TypeFailed)
			d.Status = "FAILED"
			d.Error = &contract.Error{Code: contract.CodeSyncFailed, Message: "LDAP bind failed"}
		}
		for _, id := range triggerIDs {
			d.Triggers = append(d.Triggers, contract.Trigger{ID: id, Source: "urn:test", Type: "ad.group.created", Group: "g"})
		}
		data = d
	}
	if err := e.SetData(event.ApplicationJSON, data); err != nil {
		t.Fatal(err)
	}
	msg, err := cenats.EncodeBinary("r."+kind, e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

// triggerMsg is a valid trigger message with this event id.
func triggerMsg(t *testing.T, id string) *nats.Msg {
	t.Helper()
	e, err := trigger.NewEvent(trigger.Trigger{ID: id, Type: "ad.group.created", Domain: "nowhere.example.com", Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cenats.EncodeBinary("t.test", e)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// publishDead publishes the dead letter the worker would make of trigger id.
func publishDead(t *testing.T, js jetstream.JetStream, id, code string) {
	t.Helper()
	msg := triggerMsg(t, id)
	msg.Subject = "d"
	msg.Header.Del(nats.MsgIdHdr)
	msg.Header.Set(contract.HeaderDeadCode, code)
	msg.Header.Set(contract.HeaderDeadReason, "no vIDM directory for nowhere.example.com")
	msg.Header.Set(contract.HeaderDeadSubject, "t.test")
	msg.Header.Set(contract.HeaderDeadSeq, "7")
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
}

func waitOutcome(t *testing.T, wt *await.Wait) await.Outcome {
	t.Helper()
	o, err := wt.Wait(ctxFor(t, 10*time.Second))
	if err != nil {
		t.Fatalf("wait for %s: %v", wt.ID(), err)
	}
	return o
}

func TestResultAfterRegisterIsDelivered(t *testing.T) {
	t.Parallel()
	js, w := setup(t)
	wt := w.Register("trigger-1")
	defer wt.Cancel()
	publishResult(t, js, "completed", "run-1", "trigger-0", "trigger-1")
	o := waitOutcome(t, wt)
	if o.Kind != await.Completed || o.Event.Type() != contract.TypeCompleted || o.Data.RunID != "run-1" || len(o.Data.Triggers) != 2 {
		t.Fatalf("outcome = %v %s run %q triggers %d; want completed run-1 with 2 triggers", o.Kind, o.Event.Type(), o.Data.RunID, len(o.Data.Triggers))
	}
	if n := w.Waiting(); n != 0 {
		t.Errorf("Waiting() = %d after the result, want 0", n)
	}
}

func TestFailedResultIsDelivered(t *testing.T) {
	t.Parallel()
	js, w := setup(t)
	wt := w.Register("trigger-f")
	defer wt.Cancel()
	publishResult(t, js, "failed", "run-f", "trigger-f")
	o := waitOutcome(t, wt)
	if o.Kind != await.Failed || o.Data.Status != "FAILED" || o.Data.Error == nil || o.Data.Error.Code != contract.CodeSyncFailed {
		t.Fatalf("outcome = %+v, want failed with VIDM_SYNC_FAILED", o)
	}
}

func TestResultsForOtherIDsAreIgnored(t *testing.T) {
	t.Parallel()
	js, w := setup(t)
	wt := w.Register("mine", await.WithStarted())
	defer wt.Cancel()
	publishResult(t, js, "started", "run-a")
	publishResult(t, js, "completed", "run-a", "other-1", "other-2")
	publishResult(t, js, "failed", "run-b", "other-3")
	publishDead(t, js, "other-4", contract.CodeUnknownDirectory)
	// Not a CloudEvent at all: skipped, and the next message still counts.
	if _, err := js.Publish(context.Background(), "r.completed", []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	publishResult(t, js, "completed", "run-c", "mine")
	o := waitOutcome(t, wt)
	if o.Data.RunID != "run-c" {
		t.Fatalf("settled by run %q, want run-c (the only one listing the trigger)", o.Data.RunID)
	}
	select {
	case st := <-wt.Started():
		if st.Data.RunID != "run-a" || st.Data.DirectoryName != "Corp AD" {
			t.Errorf("started = %+v, want run-a of Corp AD", st.Data)
		}
	default:
		t.Error("no started event delivered WithStarted")
	}
}

func TestDeadLetterIsDeliveredWithItsCode(t *testing.T) {
	t.Parallel()
	js, w := setup(t)
	wt := w.Register("dead-1")
	defer wt.Cancel()
	publishDead(t, js, "dead-1", contract.CodeUnknownDirectory)
	o := waitOutcome(t, wt)
	if o.Kind != await.DeadLettered || o.DeadCode != contract.CodeUnknownDirectory || o.DeadReason == "" || o.Event.ID() != "dead-1" {
		t.Fatalf("outcome = %v code %q reason %q event %q; want dead-lettered UNKNOWN_DIRECTORY", o.Kind, o.DeadCode, o.DeadReason, o.Event.ID())
	}
}

func TestConcurrentWaitersEachGetTheirOwnResult(t *testing.T) {
	t.Parallel()
	js, w := setup(t)
	const n = 200
	ids := make([]string, n)
	waits := make([]*await.Wait, n)
	var reg sync.WaitGroup
	for i := range n {
		ids[i] = fmt.Sprintf("trigger-%03d", i)
		reg.Go(func() { waits[i] = w.Register(ids[i]) })
	}
	reg.Wait()
	if got := w.Waiting(); got != n {
		t.Fatalf("Waiting() = %d, want %d", got, n)
	}
	// Runs of 1 to 7 triggers, in a random order; run ids name their triggers.
	order := rand.Perm(n)
	runOf := map[string]string{}
	var pub sync.WaitGroup
	for start := 0; start < n; {
		size := min(1+rand.IntN(7), n-start)
		batch := make([]string, size)
		for j := range size {
			batch[j] = ids[order[start+j]]
		}
		run := fmt.Sprintf("run-%d", start)
		for _, id := range batch {
			runOf[id] = run
		}
		pub.Go(func() { publishResult(t, js, "completed", run, batch...) })
		start += size
	}
	pub.Wait()

	var check sync.WaitGroup
	for i, wt := range waits {
		check.Go(func() {
			o, err := wt.Wait(ctxFor(t, 20*time.Second))
			switch {
			case err != nil:
				t.Errorf("%s: %v", ids[i], err)
			case o.Data.RunID != runOf[ids[i]]:
				t.Errorf("%s: settled by %s, want %s", ids[i], o.Data.RunID, runOf[ids[i]])
			}
		})
	}
	check.Wait()
	if got := w.Waiting(); got != 0 {
		t.Errorf("Waiting() = %d after every result, want 0", got)
	}
}

func TestSeveralWaitsForOneID(t *testing.T) {
	t.Parallel()
	js, w := setup(t)
	a, b := w.Register("same"), w.Register("same")
	publishResult(t, js, "completed", "run-s", "same")
	for _, wt := range []*await.Wait{a, b} {
		if o := waitOutcome(t, wt); o.Data.RunID != "run-s" {
			t.Errorf("run %q, want run-s", o.Data.RunID)
		}
	}
}

func TestCancelReleases(t *testing.T) {
	t.Parallel()
	js, w := setup(t)
	wt := w.Register("cancelled", await.WithStarted())
	keep := w.Register("kept")
	defer keep.Cancel()
	if w.Waiting() != 2 {
		t.Fatalf("Waiting() = %d, want 2", w.Waiting())
	}
	wt.Cancel()
	wt.Cancel() // idempotent
	select {
	case <-wt.Done():
	default:
		t.Fatal("Done is not closed after Cancel")
	}
	if _, err := wt.Result(); !errors.Is(err, await.ErrCanceled) {
		t.Errorf("Result() err = %v, want ErrCanceled", err)
	}
	if w.Waiting() != 1 {
		t.Errorf("Waiting() = %d after Cancel, want 1", w.Waiting())
	}
	// A result for the cancelled id later changes nothing; the other wait still works.
	publishResult(t, js, "completed", "run-x", "cancelled", "kept")
	if o := waitOutcome(t, keep); o.Data.RunID != "run-x" {
		t.Fatalf("kept: run %q", o.Data.RunID)
	}
	if _, err := wt.Result(); !errors.Is(err, await.ErrCanceled) {
		t.Errorf("cancelled wait changed to %v", err)
	}
}

func TestWaitContextEnds(t *testing.T) {
	t.Parallel()
	_, w := setup(t)
	wt := w.Register("never")
	defer wt.Cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := wt.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's", err)
	}
	if _, err := wt.Result(); err == nil {
		t.Error("Result() of an unsettled wait has no error")
	}
}

func TestStopEndsWaits(t *testing.T) {
	t.Parallel()
	js := natstest.JetStream(t)
	ensure(t, js)
	w, err := await.Start(context.Background(), js, resultStream, deadStream, nil)
	if err != nil {
		t.Fatal(err)
	}
	wt := w.Register("open")
	w.Stop()
	if _, err := wt.Wait(ctxFor(t, 5*time.Second)); !errors.Is(err, await.ErrStopped) {
		t.Fatalf("open wait: %v, want ErrStopped", err)
	}
	if _, err := w.Register("late").Wait(ctxFor(t, 5*time.Second)); !errors.Is(err, await.ErrStopped) {
		t.Fatalf("wait registered after Stop: %v, want ErrStopped", err)
	}
	// Stop deletes the ordered consumers rather than leave them to expire.
	for _, name := range []string{resultStream, deadStream} {
		s, err := js.Stream(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if c := s.CachedInfo().State.Consumers; c != 0 {
			t.Errorf("stream %s has %d consumers after Stop", name, c)
		}
	}
}

func TestClosedConnectionEndsWaits(t *testing.T) {
	t.Parallel()
	nc, js := natstest.Connect(t, natstest.Server(t, natsdev.Options{}).URL())
	ensure(t, js)
	w := start(t, js)
	wt := w.Register("open")
	nc.Close()
	if _, err := wt.Wait(ctxFor(t, 10*time.Second)); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Fatalf("err = %v, want ErrConnectionClosed", err)
	}
}

func TestStartNeedsTheStreams(t *testing.T) {
	t.Parallel()
	js := natstest.JetStream(t)
	ctx := ctxFor(t, 10*time.Second)
	if _, err := await.Start(ctx, js, "ABSENT", "", nil); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("err = %v, want ErrStreamNotFound", err)
	}
	ensure(t, js)
	if _, err := await.Start(ctx, js, resultStream, "ABSENT", nil); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("missing dead stream: err = %v, want ErrStreamNotFound", err)
	}
	// Without a dead stream: results only.
	w, err := await.Start(ctx, js, resultStream, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	wt := w.Register("r")
	publishResult(t, js, "completed", "run-r", "r")
	waitOutcome(t, wt)
}

// TestRecoversAfterBrokerRestart checks that nats.go's ordered consumer, with the Watcher's own
// resumption around it, follows the streams across a broker restart: a result published after the
// restart reaches a wait registered before it.
func TestRecoversAfterBrokerRestart(t *testing.T) {
	t.Parallel()
	srv := natstest.Server(t, natsdev.Options{})
	nc, js := natstest.Connect(t, srv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	ensure(t, js)
	w := start(t, js)
	before, during := w.Register("before-restart"), w.Register("dead-after-restart")
	publishResult(t, js, "completed", "run-0", "warm-up")

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the client to reconnect", nc.IsConnected)
	// The broker may take a moment to serve JetStream again after it accepts connections.
	poll.Until(t, 10*time.Second, "JetStream to answer", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.Stream(ctx, resultStream)
		return err == nil
	})
	publishResult(t, js, "completed", "run-1", "before-restart")
	publishDead(t, js, "dead-after-restart", contract.CodeUnknownDirectory)
	for _, wt := range []*await.Wait{before, during} {
		o, err := wt.Wait(ctxFor(t, 40*time.Second))
		if err != nil {
			t.Fatalf("%s: %v (the watcher did not recover from the restart)", wt.ID(), err)
		}
		if o.Kind == await.Completed && o.Data.RunID != "run-1" {
			t.Errorf("%s: run %q", wt.ID(), o.Data.RunID)
		}
	}
	// A wait registered after the restart works too.
	late := w.Register("after-restart")
	publishResult(t, js, "completed", "run-2", "after-restart")
	if o, err := late.Wait(ctxFor(t, 20*time.Second)); err != nil || o.Data.RunID != "run-2" {
		t.Fatalf("after restart: %+v, %v", o.Data, err)
	}
}

// TestDeletedStreams: a deleted dead-letter stream leaves results flowing; a deleted results
// stream ends the waits with an error rather than leave them to time out.
func TestDeletedStreams(t *testing.T) {
	t.Parallel()
	js, w := setup(t)
	ctx := ctxFor(t, time.Minute)
	wt := w.Register("still-served")
	if err := js.DeleteStream(ctx, deadStream); err != nil {
		t.Fatal(err)
	}
	publishResult(t, js, "completed", "run-1", "warm-up")
	publishResult(t, js, "completed", "run-2", "still-served")
	waitOutcome(t, wt)

	wt = w.Register("orphan")
	if err := js.DeleteStream(ctx, resultStream); err != nil {
		t.Fatal(err)
	}
	if _, err := wt.Wait(ctx); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("err = %v, want ErrStreamNotFound", err)
	}
	if _, err := w.Register("later").Wait(ctx); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("wait registered later: err = %v, want ErrStreamNotFound", err)
	}
}

func TestEarlierFindsTheOutcomeOfADuplicate(t *testing.T) {
	t.Parallel()
	js := natstest.JetStream(t)
	ensure(t, js)
	ctx := ctxFor(t, 20*time.Second)
	// Earlier triggers: one reported, one dead-lettered, one not reported yet; and other runs.
	for _, id := range []string{"reported", "rejected", "pending"} {
		if _, err := js.PublishMsg(ctx, triggerMsg(t, id)); err != nil {
			t.Fatal(err)
		}
	}
	publishResult(t, js, "started", "run-0")
	publishResult(t, js, "completed", "run-0", "someone-else")
	publishResult(t, js, "completed", "run-1", "x", "reported")
	publishDead(t, js, "rejected", contract.CodeUnknownDirectory)
	publishResult(t, js, "completed", "run-2", "y")

	w := start(t, js)
	for _, tc := range []struct {
		id    string
		found bool
		kind  await.Kind
	}{
		{"reported", true, await.Completed},
		{"rejected", true, await.DeadLettered},
		{"pending", false, 0},
	} {
		wt := w.Register(tc.id)
		ack, err := js.PublishMsg(ctx, triggerMsg(t, tc.id))
		if err != nil {
			t.Fatal(err)
		}
		if !ack.Duplicate {
			t.Fatalf("%s: publish was not a duplicate", tc.id)
		}
		o, found, err := w.Earlier(ctx, tc.id, ack)
		if err != nil || found != tc.found || o.Kind != tc.kind {
			t.Errorf("%s: Earlier = %v, %v, %v; want found %v kind %v", tc.id, o.Kind, found, err, tc.found, tc.kind)
		}
		if tc.id == "reported" && o.Data.RunID != "run-1" {
			t.Errorf("reported: run %q, want run-1", o.Data.RunID)
		}
		wt.Cancel()
	}
	if _, _, err := w.Earlier(ctx, "x", nil); err == nil {
		t.Error("Earlier without an ack: no error")
	}
}

// publishPagedRun publishes a run of n triggers ("paged-<i>") as the worker reports a large
// run: one result event per page of per triggers, with the same run id.
func publishPagedRun(t *testing.T, js jetstream.JetStream, runID string, n, per int) (pages int) {
	t.Helper()
	pages = (n + per - 1) / per
	now := time.Now().UTC()
	r := &dirsync.Run{RunID: runID, Tenant: "default", DirectoryID: "dir-corp", DirectoryName: "Corp AD", CreatedAt: now,
		StartedAt: now, Count: n, Pages: pages, Outcome: &dirsync.Outcome{Status: contract.StatusCompleted, FinishedAt: now}}
	pub := results.New(js, "r", "urn:test:worker", nil)
	for p := 1; p <= pages; p++ {
		var page []dirsync.Trigger
		for i := (p - 1) * per; i < min(p*per, n); i++ {
			page = append(page, dirsync.Trigger{ID: fmt.Sprintf("paged-%d", i), Source: "urn:test", Type: "ad.user.created", User: "u"})
		}
		if err := pub.Finished(context.Background(), r, p, page); err != nil {
			t.Fatal(err)
		}
	}
	return pages
}

// A large run is reported in pages: a waiter gets the page that lists its trigger, whichever page
// that is, and Earlier finds a trigger of a later page too.
func TestPagedResultAnswersEachWaiterWithItsPage(t *testing.T) {
	t.Parallel()
	js, w := setup(t)
	wants := map[string]int{"paged-0": 1, "paged-2500": 3, "paged-9999": 10}
	waits := map[string]*await.Wait{}
	for id := range wants {
		waits[id] = w.Register(id)
		defer waits[id].Cancel()
	}
	if pages := publishPagedRun(t, js, "run-big", 10_000, 1000); pages != 10 {
		t.Fatalf("%d pages", pages)
	}
	for id, page := range wants {
		o := waitOutcome(t, waits[id])
		if o.Kind != await.Completed || o.Data.RunID != "run-big" || o.Data.Page != page || o.Data.Pages != 10 ||
			o.Data.TriggerCount != 10_000 || len(o.Data.Triggers) != 1000 || o.Event.ID() != fmt.Sprintf("run-big.result.%d", page) {
			t.Errorf("%s: %v run %s page %d/%d of %d, %d triggers, id %s; want page %d/10", id, o.Kind, o.Data.RunID,
				o.Data.Page, o.Data.Pages, o.Data.TriggerCount, len(o.Data.Triggers), o.Event.ID(), page)
		}
	}

	ctx := ctxFor(t, 20*time.Second)
	if _, err := js.PublishMsg(ctx, triggerMsg(t, "paged-7777")); err != nil {
		t.Fatal(err)
	}
	ack, err := js.PublishMsg(ctx, triggerMsg(t, "paged-7777"))
	if err != nil || !ack.Duplicate {
		t.Fatalf("duplicate publish: %v, %v", ack, err)
	}
	// The trigger was published before its results here; Earlier searches from the original on.
	publishPagedRun(t, js, "run-later", 10_000, 1000)
	o, found, err := w.Earlier(ctx, "paged-7777", ack)
	if err != nil || !found || o.Data.RunID != "run-later" || o.Data.Page != 8 {
		t.Fatalf("Earlier = found %v, run %s page %d, %v; want run-later page 8", found, o.Data.RunID, o.Data.Page, err)
	}
}
