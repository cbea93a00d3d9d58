// Package backoff is the one way the worker waits before trying again: a bound that doubles from
// a first wait up to a cap, optionally jittered so that replicas retrying after the same outage
// do not arrive in lockstep, and a wait that ends with its context.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy describes the waits between attempts.
type Policy struct {
	// Initial is the bound of the first wait (after attempt 1).
	Initial time.Duration
	// Max caps the doubling bound; zero means no cap.
	Max time.Duration
	// Jitter is the fraction of the bound left to chance: a wait is uniform in
	// [bound×(1−Jitter), bound]. 0 waits the bound exactly, 0.5 at least half of it, 1 anything up
	// to it (full jitter).
	Jitter float64
}

// Bound is the un-jittered wait after the given attempt (1-based): Initial doubled attempt−1
// times, capped at Max.
func (p Policy) Bound(attempt int) time.Duration {
	b := p.Initial
	for i := 1; i < attempt && (p.Max <= 0 || b < p.Max) && b < time.Duration(1<<61); i++ {
		b *= 2
	}
	if p.Max > 0 {
		b = min(b, p.Max)
	}
	return max(b, 0)
}

// Delay is the wait after the given attempt (1-based), jittered as the policy says.
func (p Policy) Delay(attempt int) time.Duration {
	b := p.Bound(attempt)
	j := min(max(p.Jitter, 0), 1)
	spread := time.Duration(float64(b) * j)
	if spread <= 0 {
		return b
	}
	return b - spread + rand.N(spread+1)
}

// Wait waits d, or less if ctx ends first, in which case it returns the context's error.
func Wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
