package httpcore

import (
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/backoff"
)

// RetryPolicy governs how retryable failures are retried within one client call. Waits use full
// jitter (a random time up to the exponential bound) so that many workers retrying after the same
// vIDM outage do not arrive in lockstep; a Retry-After from vIDM is a floor on the wait.
type RetryPolicy struct {
	// MaxAttempts counts the first try. Default 4; 1 turns retries off.
	MaxAttempts int
	// InitialBackoff is the bound of the first wait. Default 250ms.
	InitialBackoff time.Duration
	// MaxBackoff caps the exponential bound. Default 10s.
	MaxBackoff time.Duration
	// MaxRetryAfter: a Retry-After longer than this is not waited out inside the call; the error is
	// returned (retryable, with RetryAfterOf set) for the caller to reschedule. Default 1m.
	MaxRetryAfter time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 4
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = 250 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 10 * time.Second
	}
	if p.MaxBackoff < p.InitialBackoff {
		p.MaxBackoff = p.InitialBackoff
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = time.Minute
	}
	return p
}

// next decides whether attempt (1-based) may be followed by another, and after how long.
func (p RetryPolicy) next(attempt int, err error) (time.Duration, bool) {
	if attempt >= p.MaxAttempts || !IsRetryable(err) {
		return 0, false
	}
	ra := RetryAfterOf(err)
	if ra > p.MaxRetryAfter {
		return 0, false
	}
	return max(ra, p.Backoff(attempt)), true
}

// Backoff returns a jittered wait for the given attempt: uniform in [bound/2, bound], where bound
// doubles from InitialBackoff up to MaxBackoff.
func (p RetryPolicy) Backoff(attempt int) time.Duration {
	return backoff.Policy{Initial: p.InitialBackoff, Max: p.MaxBackoff, Jitter: 0.5}.Delay(attempt)
}
