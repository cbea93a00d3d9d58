// Package fakeclock provides a manually advanced clock, so tests can move token lifetimes, sync
// durations, leases and schedules forward without sleeping. Components take it as their
// `Now func() time.Time` and, when they wait, their `After func(time.Duration) <-chan time.Time`.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is safe for concurrent use.
type Clock struct {
	mu      sync.Mutex
	t       time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// New returns a clock standing at start.
func New(start time.Time) *Clock { return &Clock{t: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// After is time.After on this clock: the channel fires when the clock is advanced to or past
// now+d (at once for d <= 0).
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.t
		return ch
	}
	c.waiters = append(c.waiters, waiter{c.t.Add(d), ch})
	return ch
}

// Advance moves the clock forward by d and fires the After channels that are due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.t) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.t
	}
	c.waiters = kept
}

// AdvanceTo moves the clock to t (forward only) and fires the After channels that are due.
func (c *Clock) AdvanceTo(t time.Time) { c.Advance(max(t.Sub(c.Now()), 0)) }

// Waiting counts the After channels waiting for exactly the instant at: how a test knows that
// the component under test has gone to sleep until then.
func (c *Clock) Waiting(at time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, w := range c.waiters {
		if w.at.Equal(at) {
			n++
		}
	}
	return n
}
