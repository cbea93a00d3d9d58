// Package poll is the tests' one way to wait for something to become true: ask again every few
// milliseconds until a deadline, then fail naming what was awaited. Tests never sleep to
// synchronise; they poll with a deadline.
package poll

import (
	"testing"
	"time"
)

// interval is how often the condition is asked; the deadline, not the interval, decides.
const interval = 5 * time.Millisecond

// Until calls cond until it returns true, and fails the test if within passes first.
func Until(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(interval)
	}
}
