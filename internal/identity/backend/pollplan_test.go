package backend_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
)

// simulate polls a sync whose end is reported end after the POST as the plan says, on a fake
// clock, and returns the number of polls and how late the end was seen.
func simulate(p backend.PollPlan, end time.Duration) (polls int, lag time.Duration, at []time.Duration) {
	t := p.First(0)
	for n := 1; ; n++ {
		at = append(at, t)
		if t >= end {
			return n, t - end, at
		}
		t += p.Next(n, t)
	}
}

func TestPollPlanWithoutHistoryIsTheDoublingSchedule(t *testing.T) {
	p := backend.PollPlan{Initial: 2 * time.Second, Max: 15 * time.Second}
	if w := p.First(0); w != 0 {
		t.Fatalf("first poll after %s, want at once", w)
	}
	_, _, at := simulate(p, 40*time.Second)
	// Bounds 2, 4, 8, 15, 15 s, each jittered down by at most 20%.
	bounds := []time.Duration{0, 2, 6, 14, 29, 44}
	for i, b := range bounds {
		hi, lo := b*time.Second, time.Duration(float64(b*time.Second)*0.8)
		if i >= len(at) || at[i] < lo || at[i] > hi {
			t.Fatalf("poll %d at %v, want within [%v, %v] (all: %v)", i+1, at, lo, hi, at)
		}
	}
	if n := p.DoublingPolls(5 * time.Second); n != 3 {
		t.Errorf("doubling polls for a 5s sync = %d, want 3 (at 0, 2 and 6 s)", n)
	}
}

// With a history, the end of a sync that ends within it is seen soon (half the syncs within a
// second unless the history spreads over minutes), polls are never closer than the floor, and
// they are on average no more than the doubling schedule's for the same syncs; a steady history
// costs one poll, just after the end it predicts.
func TestPollPlanFromHistory(t *testing.T) {
	tests := []struct {
		name           string
		low, high      time.Duration
		medianLag, lag time.Duration // at most, for ends spread over the history
	}{
		{"short, steady", 2 * time.Second, 2 * time.Second, time.Second, 600 * time.Millisecond},
		{"short, varying", 1 * time.Second, 4 * time.Second, time.Second, 2 * time.Second},
		{"long, steady", 2 * time.Minute, 2 * time.Minute, time.Second, 6 * time.Second},
		{"long, varying", 90 * time.Second, 150 * time.Second, 4 * time.Second, 8 * time.Second},
		{"sub-second", 200 * time.Millisecond, 300 * time.Millisecond, time.Second, 600 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := backend.PollPlan{Initial: 2 * time.Second, Max: 15 * time.Second}
			p := base
			p.Expected = backend.Expected{Low: tt.low, High: tt.high}
			var planned, doubling int
			var lags []time.Duration
			for i := range 51 {
				end := tt.low + (tt.high-tt.low)*time.Duration(i)/50
				polls, lag, at := simulate(p, end)
				dp, _, _ := simulate(base, end)
				planned, doubling = planned+polls, doubling+dp
				lags = append(lags, lag)
				for i := 1; i < len(at); i++ {
					if at[i]-at[i-1] < backend.DefaultPollFloor {
						t.Fatalf("polls %v and %v closer than the floor", at[i-1], at[i])
					}
				}
			}
			slices.Sort(lags)
			if median, worst := lags[len(lags)/2], lags[len(lags)-1]; median > tt.medianLag || worst > tt.lag {
				t.Errorf("seen late by %v (median), %v (worst); want at most %v, %v", median, worst, tt.medianLag, tt.lag)
			}
			if planned > doubling {
				t.Errorf("%d polls planned for 51 syncs, the doubling schedule makes %d", planned, doubling)
			}
			t.Logf("51 syncs: %d polls planned, %d doubling; lag median %v, worst %v", planned, doubling, lags[25], lags[50])
		})
	}
}

// A sync that outlasts its history is polled with the doubling schedule's growing waits, capped.
func TestPollPlanAfterTheHistoryBacksOff(t *testing.T) {
	p := backend.PollPlan{Initial: 2 * time.Second, Max: 15 * time.Second, Expected: backend.Expected{Low: 10 * time.Second, High: 10 * time.Second}}
	_, lag, at := simulate(p, 5*time.Minute)
	for i := 1; i < len(at); i++ {
		if d := at[i] - at[i-1]; d > 15*time.Second {
			t.Fatalf("wait %v between polls %d and %d, over the cap", d, i, i+1)
		}
	}
	if lag > 15*time.Second || len(at) > 30 {
		t.Errorf("a 5-minute sync planned for 10 s: %d polls, seen %v late", len(at), lag)
	}
	last := at[len(at)-1] - at[len(at)-2]
	if last < 12*time.Second {
		t.Errorf("long after its history the wait is %v, want near the cap", last)
	}
}

func ExamplePollPlan() {
	p := backend.PollPlan{Initial: 2 * time.Second, Max: 15 * time.Second, Expected: backend.Expected{Low: 20 * time.Second, High: 24 * time.Second}}
	_, lag, at := simulate(p, 22*time.Second+300*time.Millisecond)
	fmt.Println(at, lag)
	// Output: [20.5s 21.071428571s 21.642857142s 22.214285713s 22.785714284s] 485.714284ms
}

// With dated statuses and no history, the doubling schedule only drops its poll at once.
func TestPollPlanDatedSkipsThePollAtOnce(t *testing.T) {
	p := backend.PollPlan{Initial: 2 * time.Second, Max: 15 * time.Second, Dated: true}
	_, _, at := simulate(p, 20*time.Second)
	bounds := []time.Duration{2, 6, 14, 29}
	for i, b := range bounds {
		hi, lo := b*time.Second, time.Duration(float64(b*time.Second)*0.8)
		if i >= len(at) || at[i] < lo || at[i] > hi {
			t.Fatalf("poll %d at %v, want within [%v, %v] (all: %v)", i+1, at[i], lo, hi, at)
		}
	}
}
