package chaos

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// DirStats compares the load and the syncs of one directory.
type DirStats struct {
	Name      string
	Triggers  int // accepted
	Syncs     int // syncs the workers started (foreign ones excluded)
	Foreign   int
	Results   int // runs reported (a run reported in pages counts once)
	MaxAtOnce int
}

// Report is what a chaos run observed. Violations lists the broken invariants.
type Report struct {
	Seed                         int64
	Cluster                      bool // the broker was a three-node cluster, R3
	LoadPhase, DrainPhase, Total time.Duration

	Planned, InvalidPlanned int
	Accepted                int // valid and PubAck'd
	InvalidSent             int // invalid and PubAck'd
	NotAccepted             int // publish gave up
	Reported                int // accepted and in a terminal result
	ReportedCompleted       int
	ReportedFailed          int
	Lost                    []string // accepted, in no terminal result
	ReportedTwice           int      // in more than one terminal result event
	ResultEvents            int
	RunsReported            int // distinct runs among the result events
	PagedRuns, MaxPages     int // runs reported in several events (pages), and the most pages of one
	FailedByCode            map[string]int
	EarlyCoverage           []string // reported by a sync that vIDM started before the trigger was published

	DeadLetters    int // messages in the dead-letter stream
	DeadLettered   int // distinct original messages dead-lettered
	InvalidNotDead int // invalid, accepted, not dead-lettered
	ValidDead      int // valid triggers dead-lettered
	DeadByCode     map[string]int

	Syncs, ForeignSyncs int
	MaxSyncsInFlight    int // per directory, the highest
	RejectedPosts       int // POSTs answered 409 because a sync the workers started was running
	RacedForeign        int // POSTs answered 409 because a foreign sync started after the status check
	VIDMStatus          map[string]map[int]int
	Dirs                []DirStats

	LatencyP50, LatencyP99, LatencyMax time.Duration
	LatencySamples                     int
	LatencySource                      string

	SecretsFound  []string // "<log file>: <which secret>"
	Faults        FaultCounts
	DrainTimedOut bool
}

// Violations lists every broken invariant; empty means the run passed.
func (r *Report) Violations() []string {
	var v []string
	add := func(cond bool, format string, args ...any) {
		if cond {
			v = append(v, fmt.Sprintf(format, args...))
		}
	}
	add(r.Accepted == 0, "no trigger was accepted")
	add(r.NotAccepted > 0, "%d triggers could not be published within %s", r.NotAccepted, publishPatience)
	add(len(r.Lost) > 0, "%d accepted triggers lost (e.g. %s)", len(r.Lost), firstFew(r.Lost))
	add(r.ReportedTwice > 0, "%d triggers reported by more than one run", r.ReportedTwice)
	add(len(r.EarlyCoverage) > 0, "%d triggers reported by a sync started before they were published (e.g. %s)", len(r.EarlyCoverage), firstFew(r.EarlyCoverage))
	add(r.InvalidNotDead > 0, "%d invalid triggers not dead-lettered", r.InvalidNotDead)
	add(r.ValidDead > 0, "%d valid triggers dead-lettered", r.ValidDead)
	add(r.MaxSyncsInFlight > 1, "%d syncs of one directory ran at once", r.MaxSyncsInFlight)
	add(r.RejectedPosts > 0, "%d sync POSTs while a sync was running", r.RejectedPosts)
	add(len(r.SecretsFound) > 0, "secrets in process output: %s", strings.Join(r.SecretsFound, "; "))
	add(len(r.Faults.Errors) > 0, "fault injection failed: %s", strings.Join(r.Faults.Errors, "; "))
	return v
}

func firstFew(ids []string) string {
	if len(ids) > 3 {
		return strings.Join(ids[:3], ", ") + ", …"
	}
	return strings.Join(ids, ", ")
}

// WriteTable prints the report as a table, violations last.
func (r *Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, v any, want string) { fmt.Fprintf(tw, "%s\t%v\t%s\n", k, v, want) }
	fmt.Fprintf(tw, "CHECK\tVALUE\tEXPECTED\n")
	row("seed", r.Seed, "")
	if r.Cluster {
		row("broker", fmt.Sprintf("%d-node JetStream cluster, R%d streams and buckets", clusterNodes, clusterNodes), "")
	}
	row("load+faults / drain / total", fmt.Sprintf("%s / %s / %s", r.LoadPhase.Round(time.Second), r.DrainPhase.Round(time.Second), r.Total.Round(time.Second)), "")
	row("triggers planned (invalid)", fmt.Sprintf("%d (%d)", r.Planned, r.InvalidPlanned), "")
	row("triggers accepted (valid, PubAck)", r.Accepted, "> 0")
	row("publishes given up", r.NotAccepted, "0")
	row("reported (completed / failed)", fmt.Sprintf("%d (%d / %d)", r.Reported, r.ReportedCompleted, r.ReportedFailed), fmt.Sprint(r.Accepted))
	row("lost", len(r.Lost), "0")
	row("reported twice", r.ReportedTwice, "0")
	row("covered by a sync started before publish", len(r.EarlyCoverage), "0")
	row("terminal result events (runs; runs in pages, most pages)", fmt.Sprintf("%d (%d; %d, %d)", r.ResultEvents, r.RunsReported, r.PagedRuns, r.MaxPages), "")
	row("failed results by code", fmtCounts(r.FailedByCode, "%s=%d", "-"), "")
	row("dead-lettered (distinct / messages)", fmt.Sprintf("%d / %d", r.DeadLettered, r.DeadLetters), fmt.Sprintf("%d (invalid sent)", r.InvalidSent))
	row("dead letters by code", fmtCounts(r.DeadByCode, "%s=%d", "-"), "")
	row("invalid not dead-lettered / valid dead-lettered", fmt.Sprintf("%d / %d", r.InvalidNotDead, r.ValidDead), "0 / 0")
	row("syncs run by workers (foreign)", fmt.Sprintf("%d (%d)", r.Syncs, r.ForeignSyncs), "")
	row("max syncs in flight per directory", r.MaxSyncsInFlight, "1")
	row("POSTs while a sync was running", r.RejectedPosts, "0")
	row("POSTs that raced a foreign sync's start (answered 409, no 2nd sync)", r.RacedForeign, "")
	row("latency trigger→terminal result p50/p99/max", fmt.Sprintf("%s / %s / %s", r.LatencyP50.Round(time.Millisecond), r.LatencyP99.Round(time.Millisecond), r.LatencyMax.Round(time.Millisecond)), "")
	row("latency measured", fmt.Sprintf("%d samples, %s", r.LatencySamples, r.LatencySource), "")
	row("secrets found in process output", len(r.SecretsFound), "0")
	f := r.Faults
	row("faults: SIGKILL / SIGTERM / replica starts after", fmt.Sprintf("%d / %d / %d", f.Kills, f.Terms, f.ReplicaRestarts), "")
	row("faults: NATS restarts / vIDM pauses / token revocations", fmt.Sprintf("%d / %d / %d", f.NATSRestarts, f.VIDMPauses, f.Revocations), "")
	if r.Cluster {
		row("faults: stream-leader restarts (leader moved) / majority outages", fmt.Sprintf("%d (%d) / %d", f.LeaderRestarts, f.LeaderMoves, f.MajorityOutages), "")
	}
	row("faults: foreign syncs / fault rotations / skipped", fmt.Sprintf("%d / %d / %d", f.ForeignSyncs, f.Rotations, f.Skipped), "")
	row("replica exits nobody asked for", f.Crashes, "")
	for _, ep := range endpoints {
		row("vIDM "+string(ep)+" answers", fmtCounts(r.VIDMStatus[string(ep)], "%d×%d", ""), "")
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	r.writeDirs(w)
	for _, n := range f.CrashNotes {
		fmt.Fprintln(w, "note:", n)
	}
	if v := r.Violations(); len(v) > 0 {
		fmt.Fprintln(w, "\nVIOLATIONS:")
		for _, s := range v {
			fmt.Fprintln(w, "  -", s)
		}
	} else {
		fmt.Fprintln(w, "\nall invariants hold")
	}
}

func (r *Report) writeDirs(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "DIRECTORY\tTRIGGERS\tSYNCS\tFOREIGN\tRESULTS\tMAX AT ONCE\t\n")
	for _, d := range r.Dirs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t\n", d.Name, d.Triggers, d.Syncs, d.Foreign, d.Results, d.MaxAtOnce)
	}
	_ = tw.Flush()
}

// fmtCounts renders counts sorted by key, each as fmt.Sprintf(item, key, count), or empty when
// there are none.
func fmtCounts[K cmp.Ordered](m map[K]int, item, empty string) string {
	if len(m) == 0 {
		return empty
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf(item, k, m[k])
	}
	return strings.Join(parts, " ")
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
