package httpcore

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 0 ", 0},
		{"-4", 0},
		{"soon", 0},
		{"999999999", 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestBackoffIsJitteredAndCapped(t *testing.T) {
	p := RetryPolicy{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}.withDefaults()
	for attempt := 1; attempt <= 8; attempt++ {
		bound := min(100*time.Millisecond<<(attempt-1), time.Second)
		seen := map[time.Duration]bool{}
		for range 200 {
			d := p.Backoff(attempt)
			if d < bound/2 || d > bound {
				t.Fatalf("attempt %d: backoff %v outside [%v, %v]", attempt, d, bound/2, bound)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Fatalf("attempt %d: only %d distinct waits: not jittered", attempt, len(seen))
		}
	}
}

func TestRetryDecision(t *testing.T) {
	p := RetryPolicy{MaxAttempts: 3, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, MaxRetryAfter: 10 * time.Second}.withDefaults()
	tests := []struct {
		name    string
		attempt int
		err     error
		retry   bool
		atLeast time.Duration
	}{
		{"503", 1, &Error{StatusCode: 503, retryable: true}, true, 0},
		{"429 with Retry-After", 1, &Error{StatusCode: 429, retryable: true, RetryAfter: 2 * time.Second}, true, 2 * time.Second},
		{"Retry-After beyond the cap goes back to the caller", 1, &Error{StatusCode: 429, retryable: true, RetryAfter: time.Minute}, false, 0},
		{"404", 1, &Error{StatusCode: 404}, false, 0},
		{"attempts used up", 3, &Error{StatusCode: 503, retryable: true}, false, 0},
	}
	for _, tt := range tests {
		wait, ok := p.next(tt.attempt, tt.err)
		if ok != tt.retry || wait < tt.atLeast {
			t.Errorf("%s: next = (%v, %v), want retry=%v wait>=%v", tt.name, wait, ok, tt.retry, tt.atLeast)
		}
	}
}

func TestStatusClassification(t *testing.T) {
	for code, want := range map[int]bool{400: false, 401: false, 403: false, 404: false, 405: false, 406: false,
		408: true, 409: false, 415: false, 429: true, 500: true, 502: true, 503: true, 504: true} {
		if statusRetryable(code) != want {
			t.Errorf("statusRetryable(%d) = %v, want %v", code, !want, want)
		}
	}
}
