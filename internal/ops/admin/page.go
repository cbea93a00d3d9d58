package admin

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/control"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

//go:embed templates/*.html
var templateFS embed.FS

func parseTemplates() *template.Template {
	return template.Must(template.New("").ParseFS(templateFS, "templates/*.html"))
}

// The page's view model: every text and attribute is computed here, so the templates only place
// strings (which html/template escapes for their context).
type pageView struct {
	Version    string
	Now        timeView
	Refresh    int    // seconds; 0 = auto-refresh off
	RefreshURL string // toggles auto-refresh, keeping the opened directories
	SignedIn   bool   // through the session cookie: offer to sign out
	Summary    summaryView
	Problems   []string
	// Stuck lists the directories whose run keeps failing, above everything else.
	Stuck       []dirView
	Directories []dirView
	// DirectoriesMore: directories not shown (the page shows at most pageDirectories).
	DirectoriesMore int
	DeadTotal       uint64
	DeadLetters     []deadView
	DeadKnown       bool
	DeadPartial     bool // more dead letters than listed
}

type summaryView struct {
	Directories, Stuck, Syncing, Pending, PendingTriggers, Paused, Failed int
}

type dirView struct {
	Key, Anchor, OpenURL         string
	CancelURL                    string // the cancel form, while triggers are pending
	Name, Tenant, ID, Type       string
	Backend                      string
	Domains, Connectors          []string
	Known                        bool
	State, StateText, StateClass string
	StateDetail                  []string
	Covering                     []triggerView // the run in flight's triggers, first few
	CoveringMore                 int
	CoveringOf                   string // the run in flight's trigger count, when more than shown
	// Trouble: the run in flight keeps failing (Stuck once dirsync.StuckAfter times in a row).
	Trouble          *troubleView
	LastRun          *runView
	LastCovering     []triggerView // the last run's triggers, first few
	LastCoveringMore int
	LastCoveringOf   string
	Runs             []runView
	RunsErr          string
	Open             bool
}

type runView struct {
	ID, Status, StatusClass, Phase, Holder, Connector string
	Attempts                                          []contract.Attempt
	Delegation                                        *backend.Delegation
	Readiness                                         *dirsync.Readiness
	Progress                                          *int
	Created, Started, Finished                        timeView
	Duration                                          string
	TriggerCount                                      int
	TriggerCountText                                  string // 100,000
	Triggers                                          []triggerView
	TriggersMore                                      int
	Error                                             *control.RunError
	// Pages is the number of result events the run is (or will be) reported in, when more than one.
	Pages    int
	InFlight bool
	Trouble  *troubleView
}

// troubleView is a run in flight that keeps failing.
type troubleView struct {
	Failures    int
	Since, Last timeView
	For         string // how long it has been failing
	Error       string
	Stuck       bool
}

type triggerView struct {
	ID, Type, Source, Kind, What string
	Accepted                     timeView
}

type deadView struct {
	control.DeadLetter
	At timeView
}

// timeView is a time as shown (UTC, short when it is today) and as machine-readable text.
type timeView struct {
	Text, ISO, Full, Ago string
}

const (
	coveringShown   = 5   // trigger names shown in the directory table for a run in flight
	triggersPerRun  = 500 // triggers listed per run in the run history
	pageSourceCalls = 4   // concurrent Runs calls while rendering the page
	// pageDirectories bounds the directories the page lists (stuck ones first); the admin API
	// pages through all of them.
	pageDirectories = 500
	// maxOpen and maxOpenLen bound ?open=: every directory's link repeats the opened list, so
	// the page grows with directories × opened.
	maxOpen    = 20
	maxOpenLen = 160
)

func (s *server) statusPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := s.now()
	q := r.URL.Query()
	v := pageView{Version: s.cfg.Version, Now: s.timeView(now, now), SignedIn: s.signedIn(r)}
	v.Refresh = int(math.Ceil(s.cfg.Refresh.Seconds()))
	opened := q["open"]
	if len(opened) > maxOpen || slices.ContainsFunc(opened, func(o string) bool { return len(o) > maxOpenLen }) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("open= names at most %d directories of at most %d characters each", maxOpen, maxOpenLen))
		return
	}
	if q.Get("refresh") == "off" {
		v.Refresh = 0
	}
	v.RefreshURL = pageURL(opened, v.Refresh == 0, "") // the other way round

	status := http.StatusOK
	all, err := s.src.Directories(ctx)
	if err != nil {
		s.log.ErrorContext(ctx, "status page: reading the directories", "err", err)
		v.Problems = append(v.Problems, "The directories could not be read; the worker's log has the details.")
		status = http.StatusInternalServerError
	}
	// Stuck directories first, then the list's own order; at most pageDirectories of them.
	dirs := slices.Clone(all)
	slices.SortStableFunc(dirs, func(a, b control.Directory) int {
		return cmp.Compare(stuckRank(a), stuckRank(b))
	})
	if len(dirs) > pageDirectories {
		v.DirectoriesMore = len(dirs) - pageDirectories
		dirs = dirs[:pageDirectories]
	}
	v.Directories = make([]dirView, len(dirs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pageSourceCalls)
	for i, d := range dirs {
		v.Directories[i] = s.dirView(d, now, opened, v.Refresh != 0)
		if v.Directories[i].Trouble != nil && v.Directories[i].Trouble.Stuck {
			v.Stuck = append(v.Stuck, v.Directories[i])
		}
		g.Go(func() error {
			runs, err := s.src.Runs(gctx, d.Tenant, d.DirectoryID, s.cfg.HistoryRuns)
			if err != nil {
				s.log.ErrorContext(ctx, "status page: reading runs", "directory", d.Name, "err", err)
				v.Directories[i].RunsErr = "The runs could not be read; the worker's log has the details."
				return nil // the rest of the page is still worth showing
			}
			for _, run := range runs {
				v.Directories[i].Runs = append(v.Directories[i].Runs, s.runView(run, now))
			}
			return nil
		})
	}
	dead, deadErr := s.src.DeadLetters(ctx, pageDeadLetters, 0)
	_ = g.Wait()
	if deadErr != nil {
		s.log.ErrorContext(ctx, "status page: reading dead letters", "err", deadErr)
		v.Problems = append(v.Problems, "The dead letters could not be read; the worker's log has the details.")
	} else {
		v.DeadKnown, v.DeadTotal = true, dead.Total
		for _, d := range dead.Items {
			v.DeadLetters = append(v.DeadLetters, deadView{DeadLetter: d, At: s.timeView(d.Time, now)})
		}
		v.DeadPartial = uint64(len(v.DeadLetters)) < dead.Total
	}
	for _, d := range all {
		v.Summary.Directories++
		v.Summary.PendingTriggers += d.PendingTriggers
		switch d.State {
		case control.StateStuck:
			v.Summary.Stuck++
		case control.StateSyncing:
			v.Summary.Syncing++
		case control.StatePaused:
			v.Summary.Paused++
		case control.StatePending:
			v.Summary.Pending++
		}
		if d.CurrentRun == nil && d.LastRun != nil && d.LastRun.Status == control.RunFailed {
			v.Summary.Failed++
		}
	}
	s.render(ctx, w, status, "status", v)
}

func (s *server) renderLogin(w http.ResponseWriter, status int, problem string) {
	s.render(context.Background(), w, status, "login", struct {
		Problem, Version  string
		ReadOpen, NoToken bool
	}{problem, s.cfg.Version, s.cfg.ReadOpen, !s.admin.set && !s.reader.set})
}

func (s *server) render(ctx context.Context, w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := s.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		s.log.ErrorContext(ctx, "admin page", "template", name, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error; the worker's log has the details")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// No script at all, no external loads: a name that slipped past escaping could not run.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// stuckRank puts stuck directories first.
func stuckRank(d control.Directory) int {
	if d.State == control.StateStuck {
		return 0
	}
	return 1
}

// pageURL is the page's URL with these directories' runs opened and auto-refresh on or off.
func pageURL(open []string, refresh bool, anchor string) string {
	q := url.Values{}
	for _, o := range open {
		q.Add("open", o)
	}
	if !refresh {
		q.Set("refresh", "off")
	}
	u := "/"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	if anchor != "" {
		u += "#" + anchor
	}
	return u
}

// anchorID makes an element id of a directory key: letters, digits, '-' and '_' only.
func anchorID(tenant, id string) string {
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
				return r
			}
			return '_'
		}, s)
	}
	return "dir-" + clean(tenant) + "--" + clean(id)
}

func (s *server) dirView(d control.Directory, now time.Time, opened []string, refresh bool) dirView {
	key := d.Tenant + "/" + d.DirectoryID
	v := dirView{
		Key: key, Anchor: anchorID(d.Tenant, d.DirectoryID),
		Name: d.Name, Tenant: d.Tenant, ID: d.DirectoryID, Type: d.Type, Domains: d.Domains, Known: d.Known,
		Backend: d.Backend, Connectors: d.Connectors,
		State: string(d.State), StateClass: string(d.State),
		Open: slices.Contains(opened, key) || slices.Contains(opened, "all"),
	}
	open := opened
	if !v.Open {
		open = append(slices.Clip(opened), key)
	}
	v.OpenURL = pageURL(open, refresh, v.Anchor)
	if d.PendingTriggers > 0 {
		v.CancelURL = "/directories/" + url.PathEscape(d.Tenant) + "/" + url.PathEscape(d.DirectoryID) + "/cancel"
	}
	if run := d.CurrentRun; run != nil && run.Trouble != nil {
		v.Trouble = s.troubleView(*run.Trouble, now)
	}
	switch d.State {
	case control.StateStuck:
		v.StateText = "stuck"
		if tr := v.Trouble; tr != nil {
			v.StateText = "stuck: " + plural(tr.Failures, "failure", "failures") + " in a row"
		}
		if run := d.CurrentRun; run != nil {
			v.StateDetail = append(v.StateDetail, "run "+run.RunID+" ("+orDash(run.Phase)+") retries by itself; fix the cause and it resumes")
			v.Covering, v.CoveringMore, v.CoveringOf = s.covering(*run, now)
		}
		if d.PendingTriggers > 0 {
			v.StateDetail = append(v.StateDetail, plural(d.PendingTriggers, "more trigger waits", "more triggers wait")+" for the follow-up run")
		}
	case control.StateSyncing:
		v.StateText = "syncing"
		if run := d.CurrentRun; run != nil {
			since := run.CreatedAt
			if run.StartedAt != nil {
				since = *run.StartedAt
			}
			t := s.timeView(since, now)
			v.StateText = fmt.Sprintf("syncing since %s (%s)", t.Text, humanDuration(now.Sub(since)))
			switch {
			case run.Status == control.RunQueued:
				v.StateDetail = append(v.StateDetail, "run "+run.RunID+": vIDM not asked yet ("+orDash(run.Phase)+")")
			case run.Holder != "":
				v.StateDetail = append(v.StateDetail, "run "+run.RunID+" on "+run.Holder)
			default:
				v.StateDetail = append(v.StateDetail, "run "+run.RunID)
			}
			v.Covering, v.CoveringMore, v.CoveringOf = s.covering(*run, now)
		}
		if d.PendingTriggers > 0 {
			v.StateDetail = append(v.StateDetail, plural(d.PendingTriggers, "more trigger waits", "more triggers wait")+" for the follow-up run")
		}
	case control.StatePaused:
		v.StateText = "paused"
		if p := d.Paused; p != nil {
			v.StateText = "paused since " + s.timeView(p.Since, now).Text
			if p.Reason != "" {
				v.StateText += ": " + p.Reason
			}
		}
		if d.PendingTriggers > 0 {
			v.StateDetail = append(v.StateDetail, plural(d.PendingTriggers, "trigger is", "triggers are")+" held until it is resumed")
		}
	case control.StatePending:
		v.StateText = "pending " + plural(d.PendingTriggers, "trigger", "triggers")
	case control.StateIdle:
		v.StateText = "idle"
	default:
		v.StateText, v.StateClass = string(d.State), "unknown"
	}
	if d.LastRun != nil {
		lr := s.runView(*d.LastRun, now)
		v.LastRun = &lr
		v.LastCovering, v.LastCoveringMore, v.LastCoveringOf = s.covering(*d.LastRun, now)
	}
	return v
}

// covering lists the first few triggers of a run, and how many more there are: enough to answer
// "was my group in it?" without opening the run history. The run's triggers are a sample; its
// TriggerCount is the total (of, as text, when more than shown).
func (s *server) covering(r control.Run, now time.Time) (shown []triggerView, more int, of string) {
	for _, t := range r.Triggers[:min(len(r.Triggers), coveringShown)] {
		shown = append(shown, s.triggerView(t, now))
	}
	more = max(r.TriggerCount, len(r.Triggers)) - len(shown)
	if more > 0 {
		of = thousands(max(r.TriggerCount, len(r.Triggers)))
	}
	return shown, more, of
}

func (s *server) troubleView(tr control.Trouble, now time.Time) *troubleView {
	return &troubleView{Failures: tr.Failures, Since: s.timeView(tr.Since, now), Last: s.timeView(tr.Last, now),
		For: humanDuration(now.Sub(tr.Since)), Error: tr.Error, Stuck: tr.Stuck}
}

func (s *server) runView(r control.Run, now time.Time) runView {
	v := runView{
		ID: r.RunID, Status: r.Status, StatusClass: strings.ToLower(r.Status), Phase: r.Phase,
		Holder: r.Holder, Connector: r.Connector, Attempts: r.Attempts, Delegation: r.Delegation, Readiness: r.Readiness, Progress: r.Progress, Created: s.timeView(r.CreatedAt, now),
		TriggerCount: r.TriggerCount, TriggerCountText: thousands(r.TriggerCount), Error: r.Error,
		InFlight: r.FinishedAt == nil,
	}
	if r.Pages > 1 {
		v.Pages = r.Pages
	}
	if r.Trouble != nil {
		v.Trouble = s.troubleView(*r.Trouble, now)
	}
	if r.StartedAt != nil {
		v.Started = s.timeView(*r.StartedAt, now)
	}
	if r.FinishedAt != nil {
		v.Finished = s.timeView(*r.FinishedAt, now)
	}
	switch {
	case r.DurationMs > 0:
		v.Duration = humanDuration(time.Duration(r.DurationMs) * time.Millisecond)
	case r.StartedAt != nil && r.FinishedAt != nil:
		v.Duration = humanDuration(r.FinishedAt.Sub(*r.StartedAt))
	case r.StartedAt != nil:
		v.Duration = humanDuration(now.Sub(*r.StartedAt))
	}
	for i, t := range r.Triggers {
		if i == triggersPerRun {
			break
		}
		v.Triggers = append(v.Triggers, s.triggerView(t, now))
	}
	v.TriggersMore = max(r.TriggerCount, len(r.Triggers)) - len(v.Triggers)
	return v
}

func (s *server) triggerView(t control.Trigger, now time.Time) triggerView {
	v := triggerView{ID: t.ID, Type: t.Type, Source: t.Source, Accepted: s.timeView(t.AcceptedAt, now)}
	switch {
	case t.Group != "":
		v.Kind, v.What = "group", t.Group
	case t.User != "":
		v.Kind, v.What = "user", t.User
	default:
		// A sync request names no group or user; who asked is what a person wants to know.
		v.Kind, v.What = "request", t.Source
	}
	return v
}

// timeView shows t in UTC: the time of day when it is today, with the date otherwise.
func (s *server) timeView(t, now time.Time) timeView {
	if t.IsZero() {
		return timeView{}
	}
	t, now = t.UTC(), now.UTC()
	v := timeView{ISO: t.Format(time.RFC3339), Full: t.Format("2006-01-02 15:04:05 UTC")}
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		v.Text = t.Format("15:04:05")
	} else {
		v.Text = t.Format("Jan 2 15:04")
	}
	if now.After(t) {
		v.Ago = humanDuration(now.Sub(t)) + " ago"
	}
	return v
}

// humanDuration is a duration as people say it: 42s, 3m 12s, 12m, 2h 05m, 3d 4h.
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return "<1s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour && int(d.Seconds())%60 == 0:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour && int(d.Minutes())%60 == 0:
		return fmt.Sprintf("%dh", int(d.Hours()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return thousands(n) + " " + many
}

// thousands writes n with thousands separators: 100,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
