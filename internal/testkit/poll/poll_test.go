package poll_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	var calls atomic.Int32
	poll.Until(t, 5*time.Second, "the third call", func() bool { return calls.Add(1) == 3 })
	if n := calls.Load(); n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}
}

// fatalRecorder notes Fatalf instead of stopping the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = format
}

func TestUntilFailsAtTheDeadline(t *testing.T) {
	calls := 0
	rec := &fatalRecorder{TB: t}
	// Fatalf does not stop this recorder, so the condition turns true right after it.
	poll.Until(rec, 20*time.Millisecond, "something that never happens", func() bool {
		calls++
		return rec.msg != ""
	})
	if rec.msg == "" || calls < 2 {
		t.Fatalf("no failure after the deadline (calls %d)", calls)
	}
}
