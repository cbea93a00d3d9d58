// Package cronspec parses the schedules of safety-net syncs: cron expressions, descriptors and
// @every intervals, with the limits that keep a schedule from flooding vIDM. The tenants file is
// checked with it; the scheduler fires on it.
package cronspec

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// MinEvery is the shortest @every interval Parse accepts: a scheduled sync more often than
// this would flood vIDM, and events already cover the fast path.
const MinEvery = time.Minute

// maxSpecLen bounds a spec: it goes into every scheduled trigger's reason.
const maxSpecLen = 256

var errEmptySpec = errors.New("schedule: empty spec")

// Spec is a parsed schedule: a standard 5-field cron expression, a descriptor such as @hourly or
// @daily, or "@every <duration>" of at least MinEvery, optionally prefixed with CRON_TZ=<zone>.
// Cron expressions are evaluated in UTC unless CRON_TZ (or TZ) names a zone, so that replicas in
// different local zones agree on the slots. @every slots are aligned to multiples of the interval
// (counted from Go's zero time, so @every 1h fires on the hour), not to when the process started:
// every replica then fires the same slot, and the trigger stream's duplicate window stores it once.
// The zero Spec never fires.
type Spec struct {
	raw   string
	sched cron.Schedule
	every time.Duration // > 0 for @every
}

// Parse parses s with cron.ParseStandard. It rejects an empty spec, @every shorter than
// MinEvery and a spec that never fires (such as "0 0 30 2 *"); every error names the spec.
func Parse(s string) (spec Spec, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Spec{}, errEmptySpec
	}
	if len(s) > maxSpecLen {
		return Spec{}, fmt.Errorf("schedule: spec %.32q… is longer than %d characters", s, maxSpecLen)
	}
	// cron.Parse slices up to the first space after a TZ= prefix and panics without one.
	if (strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=")) && !strings.Contains(s, " ") {
		return Spec{}, fmt.Errorf("schedule: spec %q: a time zone prefix needs a schedule after it", s)
	}
	defer func() {
		// Defence in depth: the spec comes from a configuration file, and a parser panic must not
		// take the worker down with it.
		if r := recover(); r != nil {
			spec, err = Spec{}, fmt.Errorf("schedule: spec %q cannot be parsed", s)
		}
	}()
	sched, err := cron.ParseStandard(s)
	if err != nil {
		return Spec{}, fmt.Errorf("schedule: spec %q: %w", s, err)
	}
	spec = Spec{raw: s, sched: sched}
	if cd, ok := sched.(cron.ConstantDelaySchedule); ok {
		if cd.Delay < MinEvery {
			return Spec{}, fmt.Errorf("schedule: spec %q: @every interval %s is shorter than the minimum %s", s, cd.Delay, MinEvery)
		}
		spec.every = cd.Delay
	}
	// A fixed reference keeps the check independent of when the file is loaded; cron looks
	// five years ahead, so 29 February is found.
	if spec.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return Spec{}, fmt.Errorf("schedule: spec %q never fires", s)
	}
	return spec, nil
}

// Next returns the first firing strictly after after, in UTC, or the zero time if there is none.
func (s Spec) Next(after time.Time) time.Time {
	switch {
	case s.sched == nil:
		return time.Time{}
	case s.every > 0:
		return after.UTC().Truncate(s.every).Add(s.every)
	}
	return s.sched.Next(after.UTC()).UTC()
}

// String returns the spec as written (trimmed).
func (s Spec) String() string { return s.raw }
