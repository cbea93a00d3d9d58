package fakeclock_test

import (
	"sync"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/fakeclock"
)

func TestAdvance(t *testing.T) {
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	c := fakeclock.New(start)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { c.Advance(time.Second); _ = c.Now() })
	}
	wg.Wait()
	if got := c.Now(); !got.Equal(start.Add(10 * time.Second)) {
		t.Fatalf("Now = %v, want %v", got, start.Add(10*time.Second))
	}
}

func TestAfterFiresWhenTheClockPassesIt(t *testing.T) {
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	c := fakeclock.New(start)
	ch := c.After(time.Minute)
	if c.Waiting(start.Add(time.Minute)) != 1 {
		t.Fatal("After is not waiting for its instant")
	}
	c.Advance(59 * time.Second)
	select {
	case <-ch:
		t.Fatal("fired before its time")
	default:
	}
	c.AdvanceTo(start.Add(time.Minute))
	select {
	case at := <-ch:
		if !at.Equal(start.Add(time.Minute)) {
			t.Fatalf("fired with %v", at)
		}
	default:
		t.Fatal("did not fire when the clock reached it")
	}
	if c.Waiting(start.Add(time.Minute)) != 0 {
		t.Fatal("a fired channel is still waiting")
	}
	select {
	case <-c.After(0):
	default:
		t.Fatal("After(0) does not fire at once")
	}
}
