package backend

import (
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/backoff"
)

// Expected is when a directory's syncs have ended, after the POST, in its recent history: Low
// the soonest, High the latest. The zero value says there is no history.
type Expected struct {
	Low, High time.Duration
}

// Known reports a history to plan from.
func (e Expected) Known() bool { return e.High > 0 && e.Low <= e.High }

// PollPlan is when Wait polls a sync. Without a history it is the doubling schedule: a poll at
// once, then after Initial, doubling to Max. With one it spends the polls the doubling schedule
// would make on average for syncs of those lengths, no more, where they tell something: evenly
// over the span in which the directory's syncs have ended, none before it (a steady history: one
// poll just after the end it predicts), so the end of a sync is seen within one step instead of
// within up to Max. A sync that outlasts the span is then polled with waits doubling from the
// floor to Max.
type PollPlan struct {
	Initial, Max time.Duration
	// Floor is the least wait between two polls of a sync; at most Initial.
	Floor    time.Duration
	Expected Expected
	// Dated: the identity system's status carries start times, so a sync just POSTed can be
	// told from the previous one without seeing it RUNNING: the doubling schedule then skips
	// its poll at once (nearly always RUNNING) and starts after Initial.
	Dated bool
}

// DefaultPollFloor is PollPlan.Floor when unset.
const DefaultPollFloor = 500 * time.Millisecond

func (p PollPlan) withDefaults() PollPlan {
	if p.Floor <= 0 {
		p.Floor = DefaultPollFloor
	}
	if p.Initial <= 0 {
		p.Initial = time.Second
	}
	p.Max = max(p.Max, p.Initial)
	// Never more careful than the doubling schedule's own first wait: a backend polled every
	// few milliseconds by configuration is not to be waited on for half a second.
	p.Floor = min(p.Floor, p.Initial)
	return p
}

// doubling is the schedule without a history; the jitter keeps replicas' polls apart.
func (p PollPlan) doubling() backoff.Policy {
	return backoff.Policy{Initial: p.Initial, Max: p.Max, Jitter: 0.2}
}

// DoublingPolls is how many polls the doubling schedule makes for a sync whose end is reported
// d after the POST: the first at once (after Initial when Dated), the last the first at or
// after d.
func (p PollPlan) DoublingPolls(d time.Duration) int {
	p = p.withDefaults()
	pol := backoff.Policy{Initial: p.Initial, Max: p.Max}
	n, at, k := 1, time.Duration(0), 1
	if p.Dated {
		at, k = p.Initial, 2
	}
	for at < d {
		at += pol.Bound(k)
		k++
		n++
	}
	return n
}

// span is where the plan polls, after the POST, and the step between its polls: from just after
// the soonest end in the history to just after the latest (lead: a twentieth of it, between
// 20ms and the floor, for the identity system to report what ended).
func (p PollPlan) span() (from, to, step time.Duration) {
	e := p.Expected
	lead := min(max(e.High/20, 20*time.Millisecond), p.Floor)
	from, to = e.Low+lead, e.High+lead
	if to-from < p.Floor {
		// A steady history: one poll just after the end it predicts.
		return to, to, p.Floor
	}
	// A sync ending mid-span costs about (mid-from)/step + 1.5 polls (the first at from, then
	// one per step up to the first at or past its end): as many as the doubling schedule makes
	// on average for syncs ending across the span.
	mid := (from + to) / 2
	step = max(p.Floor, to-from)
	if budget := p.meanDoublingPolls(); budget > 2 {
		step = max(p.Floor, time.Duration(float64(mid-from)/(budget-1.5)))
	}
	return from, to, step
}

// meanDoublingPolls averages DoublingPolls over ends spread evenly across the expected span.
func (p PollPlan) meanDoublingPolls() float64 {
	e := p.Expected
	const samples = 32
	if e.High == e.Low {
		return float64(p.DoublingPolls(e.High))
	}
	total := 0
	for i := range samples {
		total += p.DoublingPolls(e.Low + (e.High-e.Low)*time.Duration(i)/(samples-1))
	}
	return float64(total) / samples
}

// First is the wait before the first poll, elapsed after the POST.
func (p PollPlan) First(elapsed time.Duration) time.Duration {
	p = p.withDefaults()
	if !p.Expected.Known() {
		if p.Dated {
			return max(p.Initial-elapsed, 0)
		}
		return 0
	}
	from, _, _ := p.span()
	return max(from-elapsed, 0)
}

// Next is the wait after poll n (from 1), made elapsed after the POST.
func (p PollPlan) Next(n int, elapsed time.Duration) time.Duration {
	p = p.withDefaults()
	if !p.Expected.Known() {
		if p.Dated {
			n++ // the poll at once was skipped: the same times after it
		}
		return p.doubling().Delay(n)
	}
	from, to, step := p.span()
	if elapsed < to {
		// The next step on the grid from "from", so a poll that came late does not shift the
		// rest; never less than the floor.
		next := from + (elapsed-from)/step*step + step
		if elapsed < from {
			next = from
		}
		return max(next-elapsed, p.Floor)
	}
	// Outlasted its history: back off from the floor, doubling to Max.
	dense := int((to-from)/step) + 1
	return backoff.Policy{Initial: p.Floor, Max: p.Max}.Bound(max(n-dense, 1))
}
