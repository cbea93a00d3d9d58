package chaos

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// observations is everything the checks read once the run is over.
type observations struct {
	o        Options
	sent     []sent
	results  []resultEvent
	dead     []deadLetter
	arrivals map[string]time.Time
	sim      *vidmsim.Server
	logs     []string // replica log files
	secrets  []string // the client secret, then every token vIDM issued
}

func analyze(obs observations, rep *Report) {
	rep.Seed = obs.o.Seed
	accepted := map[string]sent{}
	for _, s := range obs.sent {
		switch {
		case !s.acked:
			rep.NotAccepted++
		case s.invalid != validTrigger:
			rep.InvalidSent++
		default:
			rep.Accepted++
			accepted[s.id] = s
		}
	}
	analyzeResults(obs, accepted, rep)
	analyzeDead(obs, rep)
	analyzeSyncs(obs, accepted, rep)
	rep.SecretsFound = scanSecrets(obs.logs, obs.secrets)
}

func analyzeResults(obs observations, accepted map[string]sent, rep *Report) {
	rep.ResultEvents = len(obs.results)
	rep.FailedByCode = map[string]int{}
	first := map[string]resultEvent{}
	// The distinct events that list each trigger: a run reported in pages lists each trigger in
	// one page, and a page re-published after a crash has the same id (the stream keeps one).
	events := map[string]map[string]bool{}
	pages := map[string]int{}
	for _, r := range obs.results {
		if r.data.Error != nil {
			rep.FailedByCode[r.data.Error.Code]++
		}
		pages[r.data.RunID] = max(r.data.Pages, 1)
		for _, t := range r.data.Triggers {
			if events[t.ID] == nil {
				events[t.ID] = map[string]bool{}
				first[t.ID] = r
			}
			events[t.ID][r.id] = true
			if s, ok := accepted[t.ID]; ok && syncedAfter(r.data) && r.data.StartedAt.Before(s.publishedAt.Truncate(time.Millisecond)) {
				rep.EarlyCoverage = append(rep.EarlyCoverage, t.ID)
			}
		}
	}
	rep.RunsReported = len(pages)
	for _, n := range pages {
		if n > 1 {
			rep.PagedRuns++
		}
		rep.MaxPages = max(rep.MaxPages, n)
	}
	var lat []time.Duration
	fromArrival := 0
	for id, s := range accepted {
		r, ok := first[id]
		if !ok {
			rep.Lost = append(rep.Lost, id)
			continue
		}
		rep.Reported++
		if r.typ == contract.TypeCompleted {
			rep.ReportedCompleted++
		} else {
			rep.ReportedFailed++
		}
		if len(events[id]) > 1 {
			rep.ReportedTwice++
		}
		at, ok := obs.arrivals[id]
		if ok {
			fromArrival++
		} else {
			at = r.data.FinishedAt
		}
		lat = append(lat, at.Sub(s.publishedAt))
	}
	slices.Sort(rep.Lost)
	slices.Sort(lat)
	rep.LatencySamples = len(lat)
	rep.LatencyP50, rep.LatencyP99 = percentile(lat, 0.50), percentile(lat, 0.99)
	if len(lat) > 0 {
		rep.LatencyMax = lat[len(lat)-1]
	}
	rep.LatencySource = fmt.Sprintf("publish → result seen in stream (100 ms polling) for %d, → result finishedAt for %d", fromArrival, len(lat)-fromArrival)
}

// syncedAfter reports whether the result's startedAt is a vIDM sync start (not a run that failed
// before it reached vIDM).
func syncedAfter(d contract.Data) bool {
	return d.Status == "COMPLETED" || (d.Error != nil && d.Error.Code == contract.CodeSyncFailed)
}

func analyzeDead(obs observations, rep *Report) {
	rep.DeadLetters = len(obs.dead)
	rep.DeadByCode = map[string]int{}
	deadSeqs := map[uint64]bool{}
	for _, d := range obs.dead {
		if !deadSeqs[d.origSeq] {
			rep.DeadByCode[d.code]++
		}
		deadSeqs[d.origSeq] = true
	}
	rep.DeadLettered = len(deadSeqs)
	for _, s := range obs.sent {
		switch {
		case !s.acked:
		case s.invalid != validTrigger && !deadSeqs[s.seq]:
			rep.InvalidNotDead++
		case s.invalid == validTrigger && deadSeqs[s.seq]:
			rep.ValidDead++
		}
	}
}

func analyzeSyncs(obs observations, accepted map[string]sent, rep *Report) {
	rep.RacedForeign = obs.sim.RejectedSyncPostsOnForeign()
	rep.RejectedPosts = obs.sim.RejectedSyncPosts() - rep.RacedForeign
	rep.VIDMStatus = map[string]map[int]int{}
	for _, ep := range endpoints {
		rep.VIDMStatus[string(ep)] = obs.sim.RequestsByStatus(ep)
	}
	rep.Dirs = make([]DirStats, obs.o.Directories)
	for i := range rep.Dirs {
		rep.Dirs[i] = DirStats{Name: dirName(i), MaxAtOnce: obs.sim.MaxConcurrentSyncs(dirID(i))}
		rep.MaxSyncsInFlight = max(rep.MaxSyncsInFlight, rep.Dirs[i].MaxAtOnce)
	}
	for _, s := range accepted {
		rep.Dirs[s.dir].Triggers++
	}
	for _, rec := range obs.sim.SyncLog() {
		i := slices.IndexFunc(rep.Dirs, func(d DirStats) bool { return d.Name == rec.DirectoryName })
		if i < 0 {
			continue
		}
		if rec.Foreign {
			rep.ForeignSyncs++
			rep.Dirs[i].Foreign++
		} else {
			rep.Syncs++
			rep.Dirs[i].Syncs++
		}
	}
	counted := map[string]bool{} // a run reported in pages is one result
	for _, r := range obs.results {
		if counted[r.data.RunID] {
			continue
		}
		counted[r.data.RunID] = true
		if i := slices.IndexFunc(rep.Dirs, func(d DirStats) bool { return d.Name == r.data.DirectoryName }); i >= 0 {
			rep.Dirs[i].Results++
		}
	}
}

// scanSecrets reports every secret found in a log file, by file and kind (never the secret).
func scanSecrets(files, secrets []string) []string {
	var found []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for i, s := range secrets {
			if s != "" && bytes.Contains(b, []byte(s)) {
				what := "client secret"
				if i > 0 {
					what = fmt.Sprintf("token #%d", i)
				}
				found = append(found, f+": "+what)
			}
		}
	}
	return found
}
