package dirstate_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/streams"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirstate"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natsdev"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
)

func newStore(t *testing.T, leaseTTL time.Duration) *dirstate.Store {
	t.Helper()
	res := newResources(t, leaseTTL)
	return dirstate.New(dirstate.Buckets{Pending: res.Pending, Runs: res.Runs, Leases: res.Leases, Reported: res.History}, dirstate.Options{})
}

func newResources(t *testing.T, leaseTTL time.Duration) *streams.Resources {
	t.Helper()
	_, res := newResourcesJS(t, leaseTTL)
	return res
}

// newResourcesJS is newResources with the JetStream handle it was made on.
func newResourcesJS(t *testing.T, leaseTTL time.Duration) (jetstream.JetStream, *streams.Resources) {
	t.Helper()
	js := natstest.JetStream(t)
	res, err := streams.Ensure(context.Background(), js, streams.Names{
		TriggerStream: "T", TriggerSubjects: []string{"t.>"}, ResultStream: "R", ResultSubjectPrefix: "r",
		DeadStream: "D", DeadSubject: "d", Consumer: "c", PendingBucket: "P", RunsBucket: "RU", LeaseBucket: "L", HistoryBucket: "H", ControlBucket: "CT",
	}, streams.Settings{Replicas: 1, ResultDuplicateWindow: time.Minute, LeaseTTL: leaseTTL, HistoryMaxAge: time.Hour, AckWait: time.Second, MaxAckPending: 10})
	if err != nil {
		t.Fatal(err)
	}
	return js, res
}

func TestDirKeyKeepsIdsInTheirPlace(t *testing.T) {
	for _, id := range []string{"dir-corp", "7f2b_11-aa"} {
		if got := dirsync.NewDirKey("default", id); string(got) != "default."+id {
			t.Errorf("NewDirKey(%q) = %q, want it readable", id, got)
		}
	}
	for _, id := range []string{"a.b", "a*b", "a>b", "a b", "", strings.Repeat("x", 65), "Ünïcode"} {
		got := string(dirsync.NewDirKey("default", id))
		tok := strings.TrimPrefix(got, "default.")
		if strings.ContainsAny(tok, ".*> ") || len(tok) != 33 || tok[0] != 'h' {
			t.Errorf("NewDirKey(%q) = %q, want one hashed token", id, got)
		}
		if d, ok := dirstate.DirKeyOf(got + ".abc"); !ok || string(d) != got {
			t.Errorf("DirKeyOf(%q) = %q, %v", got+".abc", d, ok)
		}
	}
}

func TestPendingIsKeyedBySourceAndID(t *testing.T) {
	s := newStore(t, time.Minute)
	ctx := context.Background()
	base := dirsync.Trigger{ID: "1", Source: "urn:a", Type: "ad.group.created", Tenant: "default", DirectoryID: "dir-corp", DirectoryName: "Corp AD"}
	other := base
	other.Source = "urn:b"
	for _, tr := range []dirsync.Trigger{base, base, other} { // a redelivery lands on the same key
		if err := s.AddPending(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	dir := dirsync.NewDirKey("default", "dir-corp")
	pend, err := s.Pending(ctx, dir)
	if err != nil || len(pend) != 2 {
		t.Fatalf("pending = %d entries, %v; want 2", len(pend), err)
	}
	if dirs, err := s.Directories(ctx); err != nil || len(dirs) != 1 || dirs[0] != dir {
		t.Fatalf("Directories = %v, %v", dirs, err)
	}
	if err := s.DeletePending(ctx, []string{pend[0].Key, pend[1].Key, pend[0].Key}); err != nil {
		t.Fatal(err)
	}
	if pend, err = s.Pending(ctx, dir); err != nil || len(pend) != 0 {
		t.Fatalf("pending after delete = %d, %v", len(pend), err)
	}
}

func TestRunWritesAreCompareAndSet(t *testing.T) {
	s := newStore(t, time.Minute)
	ctx := context.Background()
	r := &dirsync.Run{RunID: "run-1", Tenant: "default", DirectoryID: "dir-corp", Phase: dirsync.PhaseSnapshot}
	if err := s.SaveRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	stale, err := s.LoadRun(ctx, r.Dir())
	if err != nil || stale == nil || stale.RunID != "run-1" {
		t.Fatalf("LoadRun = %+v, %v", stale, err)
	}
	r.Phase = dirsync.PhasePosted
	if err := s.SaveRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	stale.Phase = dirsync.PhasePosting
	if err := s.SaveRun(ctx, stale); err == nil {
		t.Fatal("a holder with a stale revision overwrote the run")
	}
	if err := s.DeleteRun(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LoadRun(ctx, r.Dir()); err != nil || got != nil {
		t.Fatalf("LoadRun after delete = %+v, %v", got, err)
	}
}

func TestLeaseIsExclusiveRenewedAndReleased(t *testing.T) {
	s := newStore(t, time.Second)
	ctx := context.Background()
	dir := dirsync.NewDirKey("default", "dir-corp")
	a, err := s.Acquire(ctx, dir, "a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(ctx, dir, "b", time.Second); !errors.Is(err, dirstate.ErrLeaseHeld) {
		t.Fatalf("second Acquire = %v, want ErrLeaseHeld", err)
	}
	kctx, stop := a.Keep(ctx)
	// Kept for three TTLs: renewals hold it, b keeps failing.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := s.Acquire(ctx, dir, "b", time.Second); !errors.Is(err, dirstate.ErrLeaseHeld) {
			t.Fatalf("Acquire while renewed = %v", err)
		}
		if kctx.Err() != nil {
			t.Fatalf("lease lost while renewed: %v", context.Cause(kctx))
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	stop()
	if h, err := s.Holder(ctx, dir); err != nil || h != "a" {
		t.Fatalf("Holder = %q, %v", h, err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := s.Acquire(ctx, dir, "b", time.Second)
	if err != nil {
		t.Fatalf("Acquire after release = %v", err)
	}
	_ = b.Release(ctx)
}

// A renewal whose answer never arrived (its context ended in flight) may still land: Release must
// then give up the entry one revision on, and must leave another holder's entry alone.
func TestReleaseAfterARenewalWhoseAnswerWasLost(t *testing.T) {
	for _, tc := range []struct {
		name, writer string
		wantHolder   string
	}{
		{"our renewal landed", "a", ""},
		{"another holder took it", "b", "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := newResources(t, time.Minute)
			s := dirstate.New(dirstate.Buckets{Pending: res.Pending, Runs: res.Runs, Leases: res.Leases, Reported: res.History}, dirstate.Options{})
			ctx := context.Background()
			dir := dirsync.NewDirKey("default", "dir-corp")
			a, err := s.Acquire(ctx, dir, "a", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			e, err := res.Leases.Get(ctx, string(dir))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := res.Leases.Update(ctx, string(dir), []byte(`{"holder":"`+tc.writer+`"}`), e.Revision()); err != nil {
				t.Fatal(err)
			}
			if err := a.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if h, err := s.Holder(ctx, dir); err != nil || h != tc.wantHolder {
				t.Fatalf("Holder after Release = %q, %v; want %q", h, err, tc.wantHolder)
			}
		})
	}
}

func TestExpiredLeaseIsLostByItsHolder(t *testing.T) {
	s := newStore(t, time.Second)
	ctx := context.Background()
	dir := dirsync.NewDirKey("default", "dir-corp")
	a, err := s.Acquire(ctx, dir, "a", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// a never renews (a stalled holder); once the TTL expires b takes the directory.
	var b *dirstate.Lease
	poll.Until(t, 10*time.Second, "the unrenewed lease to expire", func() bool {
		if b, err = s.Acquire(ctx, dir, "b", time.Second); err != nil && !errors.Is(err, dirstate.ErrLeaseHeld) {
			t.Fatal(err)
		}
		return b != nil
	})
	kctx, stop := a.Keep(ctx)
	defer stop()
	select {
	case <-kctx.Done():
		if !errors.Is(context.Cause(kctx), dirstate.ErrLeaseLost) {
			t.Fatalf("cause = %v, want ErrLeaseLost", context.Cause(kctx))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stale holder did not notice it lost the lease")
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.Holder(ctx, dir); h != "b" {
		t.Fatalf("the stale holder's release removed b's lease (holder now %q)", h)
	}
}

// TestHolderStopsBeforeItsLeaseCanExpire: when the broker stops answering, renewals hang; the
// holder must still stop acting well within the TTL, before another worker could take the
// directory (found by the clustered chaos run, during a majority outage).
func TestHolderStopsBeforeItsLeaseCanExpire(t *testing.T) {
	const ttl = 2 * time.Second
	ns := natstest.Server(t, natsdev.Options{})
	_, js := natstest.Connect(t, ns.URL(), nats.MaxReconnects(-1))
	ctx := context.Background()
	leases, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "L", TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	s := dirstate.New(dirstate.Buckets{Leases: leases}, dirstate.Options{})
	l, err := s.Acquire(ctx, dirsync.NewDirKey("default", "dir-corp"), "a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	kctx, stop := l.Keep(ctx)
	defer stop()
	ns.Shutdown() // every renewal from now on waits for an answer that never comes
	down := time.Now()
	select {
	case <-kctx.Done():
		if !errors.Is(context.Cause(kctx), dirstate.ErrLeaseLost) {
			t.Fatalf("cause = %v, want ErrLeaseLost", context.Cause(kctx))
		}
		if held := time.Since(down); held >= ttl {
			t.Fatalf("the holder kept acting for %v after the broker went away; the lease expires after %v", held, ttl)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the holder never stopped")
	}
}
