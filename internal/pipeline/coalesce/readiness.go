package coalesce

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/backoff"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

// The hints of the readiness check, each at most dirsync.MaxHint bytes: every entry of a result
// page may carry one.
const (
	HintNotVisible  = "not found after the sync: probably outside the directory's sync scope (its group DNs or user filter)"
	HintUnknown     = "the lookup failed after retries; the worker's log says why"
	HintUnsupported = "not checked: this identity system offers no lookup the worker can use"
	HintBadID       = "the identity store answered an id this worker does not accept"
	HintOverBudget  = "not checked: the run covers more triggers than READINESS_MAX_PER_RUN"
)

// checkReadiness looks up the group or user of each trigger of a page of a completed (or
// delegated) run, and sets the triggers' Ready. A principal not found by a lookup made before
// the tenant's RecheckAfter has passed since the outcome was recorded is looked up once more at
// that moment: the store may index what the sync brought asynchronously. A failed lookup never
// holds the result back: those principals are reported unknown.
func (e *Engine) checkReadiness(ctx context.Context, t Tenant, run *dirsync.Run, page []dirsync.Trigger) {
	if !t.Readiness || run.Outcome == nil ||
		(run.Outcome.Status != contract.StatusCompleted && run.Outcome.Status != contract.StatusDelegated) {
		return
	}
	page = e.withinBudget(run, page)
	ps, at := principals(page)
	if len(ps) == 0 {
		return
	}
	dir := e.directory(ctx, t, run) // once for the page and its re-check
	found := e.lookup(ctx, t, run, dir, ps)
	if due := run.Outcome.RecordedAt.Add(t.RecheckAfter); anyNotFound(found) && e.cfg.Now().Before(due) {
		if err := backoff.Wait(ctx, due.Sub(e.cfg.Now())); err != nil {
			return // stopping: the page is checked again by whoever resumes the run
		}
		again, idx := notFound(ps, found)
		for i, f := range e.lookup(ctx, t, run, dir, again) {
			found[idx[i]] = f
		}
	}
	for i := range page {
		if j, ok := at[i]; ok {
			page[i].Ready = readyOf(found[j])
		}
	}
}

// withinBudget marks the triggers of page beyond the run's ReadinessMax not checked, and returns
// the part that is to be checked. The earlier pages' count is the run's tally.
func (e *Engine) withinBudget(run *dirsync.Run, page []dirsync.Trigger) []dirsync.Trigger {
	done := 0
	if r := run.Readiness; r != nil {
		done = r.Visible + r.NotVisible + r.Unknown + r.NotChecked
	}
	left := max(e.cfg.ReadinessMax-done, 0)
	if left >= len(page) {
		return page
	}
	for i := left; i < len(page); i++ {
		if _, ok := page[i].Principal(); ok {
			page[i].Ready = &dirsync.Ready{Answer: dirsync.AnswerNotChecked, Hint: HintOverBudget}
		}
	}
	return page[:left]
}

// lookup asks the tenant's backend about ps; principals it could not answer are Unknown.
func (e *Engine) lookup(ctx context.Context, t Tenant, run *dirsync.Run, dir backend.Directory, ps []backend.Principal) []lookupAnswer {
	out := make([]lookupAnswer, len(ps))
	l, ok := t.Backend.(backend.PrincipalLookup)
	if !ok {
		for i := range out {
			out[i].unsupported = true
		}
		return out
	}
	found, err := l.LookupPrincipals(ctx, dir, ps)
	unsupported := errors.Is(err, backend.ErrLookupUnsupported)
	if err != nil && !unsupported {
		e.log.WarnContext(ctx, "looking up the sync's groups and users failed; they are reported unknown", "run_id", run.RunID,
			"directory", run.DirectoryName, "principals", len(ps), "err", err)
	}
	for i := range out {
		out[i].unsupported = unsupported
		if i < len(found) {
			out[i].Found = found[i]
		}
	}
	return out
}

// directory is the run's directory as the backend lists it (its domains tell principals apart),
// or just its id and name when the list does not answer.
func (e *Engine) directory(ctx context.Context, t Tenant, run *dirsync.Run) backend.Directory {
	if r, ok := t.Backend.(directoryResolver); ok {
		if d, err := r.ResolveDirectory(ctx, run.DirectoryName); err == nil && d.ID == run.DirectoryID {
			return d
		}
	}
	return backend.Directory{ID: run.DirectoryID, Name: run.DirectoryName}
}

type directoryResolver interface {
	ResolveDirectory(ctx context.Context, ref string) (backend.Directory, error)
}

type lookupAnswer struct {
	backend.Found
	unsupported bool
}

// principals lists the page's distinct principals, and for each trigger naming one its index.
func principals(page []dirsync.Trigger) ([]backend.Principal, map[int]int) {
	var ps []backend.Principal
	seen := map[backend.Principal]int{}
	at := map[int]int{}
	for i, t := range page {
		p, ok := t.Principal()
		if !ok {
			continue
		}
		j, dup := seen[p]
		if !dup {
			j = len(ps)
			seen[p] = j
			ps = append(ps, p)
		}
		at[i] = j
	}
	return ps, at
}

func anyNotFound(found []lookupAnswer) bool {
	for _, f := range found {
		if f.Visibility == backend.NotFound {
			return true
		}
	}
	return false
}

// notFound returns the principals not found and their indexes in ps.
func notFound(ps []backend.Principal, found []lookupAnswer) ([]backend.Principal, []int) {
	var out []backend.Principal
	var idx []int
	for i, f := range found {
		if f.Visibility == backend.NotFound {
			out, idx = append(out, ps[i]), append(idx, i)
		}
	}
	return out, idx
}

func readyOf(a lookupAnswer) *dirsync.Ready {
	switch {
	case a.unsupported:
		return &dirsync.Ready{Answer: dirsync.AnswerNotChecked, Hint: HintUnsupported}
	case a.Visibility == backend.Visible && acceptableID(a.ID):
		return &dirsync.Ready{Answer: dirsync.AnswerVisible, PrincipalID: a.ID}
	case a.Visibility == backend.Visible:
		return &dirsync.Ready{Answer: dirsync.AnswerUnknown, Hint: HintBadID}
	case a.Visibility == backend.NotFound:
		return &dirsync.Ready{Answer: dirsync.AnswerNotVisible, Hint: HintNotVisible}
	}
	return &dirsync.Ready{Answer: dirsync.AnswerUnknown, Hint: HintUnknown}
}

// acceptableID bounds an id as the result event encodes it, so a page stays within its reserve,
// and keeps it printable: pipelines put it in commands and HTTP headers.
func acceptableID(id string) bool {
	b, err := json.Marshal(id)
	return err == nil && id != "" && len(b) <= backend.MaxPrincipalID+2 &&
		!strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f || r == utf8.RuneError })
}
