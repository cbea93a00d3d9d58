package backoff_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/backoff"
)

func TestBound(t *testing.T) {
	for _, tc := range []struct {
		name    string
		p       backoff.Policy
		attempt int
		want    time.Duration
	}{
		{"first", backoff.Policy{Initial: time.Second, Max: time.Minute}, 1, time.Second},
		{"doubles", backoff.Policy{Initial: time.Second, Max: time.Minute}, 3, 4 * time.Second},
		{"capped", backoff.Policy{Initial: time.Second, Max: 10 * time.Second}, 5, 10 * time.Second},
		{"no cap", backoff.Policy{Initial: time.Second}, 6, 32 * time.Second},
		{"huge attempt capped", backoff.Policy{Initial: time.Second, Max: time.Hour}, 1 << 30, time.Hour},
		{"attempt zero is the first", backoff.Policy{Initial: time.Second, Max: time.Minute}, 0, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.Bound(tc.attempt); got != tc.want {
				t.Fatalf("Bound(%d) = %v, want %v", tc.attempt, got, tc.want)
			}
		})
	}
}

func TestUncappedBoundDoesNotOverflow(t *testing.T) {
	p := backoff.Policy{Initial: time.Second}
	prev := p.Bound(1)
	for attempt := 2; attempt < 1000; attempt++ {
		b := p.Bound(attempt)
		if b < prev {
			t.Fatalf("Bound(%d) = %v fell below Bound(%d) = %v", attempt, b, attempt-1, prev)
		}
		prev = b
	}
}

func TestDelayStaysInsideItsJitter(t *testing.T) {
	for _, tc := range []struct {
		jitter   float64
		min, max time.Duration
	}{
		{0, 8 * time.Second, 8 * time.Second},
		{0.5, 4 * time.Second, 8 * time.Second},
		{1, 0, 8 * time.Second},
		{0.2, 6400 * time.Millisecond, 8 * time.Second},
		{7, 0, 8 * time.Second}, // clamped to full jitter
	} {
		p := backoff.Policy{Initial: time.Second, Max: time.Minute, Jitter: tc.jitter}
		seen := map[time.Duration]bool{}
		for range 2000 {
			d := p.Delay(4)
			if d < tc.min || d > tc.max {
				t.Fatalf("jitter %v: Delay(4) = %v, want in [%v, %v]", tc.jitter, d, tc.min, tc.max)
			}
			seen[d] = true
		}
		if tc.jitter > 0 && len(seen) < 100 {
			t.Errorf("jitter %v: only %d distinct delays in 2000: not jittered", tc.jitter, len(seen))
		}
	}
}

func TestWait(t *testing.T) {
	if err := backoff.Wait(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := backoff.Wait(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a cancelled context = %v, want context.Canceled", err)
	}
	if time.Since(start) > time.Minute {
		t.Fatal("Wait on a cancelled context waited")
	}
	if err := backoff.Wait(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait(0) on a cancelled context = %v, want context.Canceled", err)
	}
}
