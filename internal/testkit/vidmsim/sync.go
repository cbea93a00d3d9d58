package vidmsim

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Sync statuses as vIDM reports them.
const (
	StatusRunning   = "RUNNING"
	StatusCompleted = "COMPLETED"
	StatusFailed    = "FAILED"
	StatusUndefined = "UNDEFINED" // no sync has run yet
)

// safeguardMessage is the failure of a sync that would exceed the safeguard thresholds.
const safeguardMessage = "sync safeguard thresholds exceeded: the sync would delete more users or groups than allowed; " +
	"review the changes or sync with ignoreSafeguards=true"

// SyncRecord is one sync run as the simulator saw it.
type SyncRecord struct {
	RunID            string    `json:"runId"`
	DirectoryID      string    `json:"directoryId"`
	DirectoryName    string    `json:"directoryName"`
	StartedAt        time.Time `json:"startedAt"`
	FinishedAt       time.Time `json:"finishedAt,omitzero"` // zero while running
	Status           string    `json:"status"`              // RUNNING, COMPLETED, FAILED
	Message          string    `json:"message,omitempty"`
	IgnoreSafeguards bool      `json:"ignoreSafeguards"`
	Foreign          bool      `json:"foreign"`               // started via StartForeignSync, not the API
	RequestID        string    `json:"requestId,omitempty"`   // X-Request-Id of the POST that started it
	Traceparent      string    `json:"traceparent,omitempty"` // traceparent of that POST
	// Connector ran the sync; empty when every sync connector was down.
	Connector string `json:"connector,omitempty"`
	// Attempts lists the connectors tried, in failover order, when the sync did not run on the
	// first one (as vIDM's Sync Log shows it); the last one's status follows the sync's. A record
	// handed out is never modified afterwards: the simulator replaces the slice instead.
	Attempts []Attempt `json:"attempts,omitempty"`
}

// Attempt is one sync connector's part in a sync.
type Attempt struct {
	Connector string `json:"connector"`
	Status    string `json:"status"`
	Message   string `json:"message,omitempty"`
}

// defaultConnector names the one connector of a directory without a Sync Connectors list, as
// vIDM had before 19.03.
const defaultConnector = "connector-1"

// syncRun is a SyncRecord plus how it will end, decided when it starts so that a later
// SetDirectory or SetConnectorDown does not rewrite a run already under way.
type syncRun struct {
	rec        SyncRecord
	duration   time.Duration
	endStatus  string
	endMessage string
	prev       *syncRun // the directory's sync before this one, reported until this one begins
}

func withDirectoryDefaults(d Directory) Directory {
	if d.Type == "" {
		d.Type = TypeActiveDirectoryLDAP
	}
	// Copies, so that neither the caller's slices nor a directory handed out alias the server's.
	d.Domains = append([]string(nil), d.Domains...)
	d.Connectors = slices.Clone(d.Connectors)
	d.DownConnectors = slices.Clone(d.DownConnectors)
	d.OutOfScope = slices.Clone(d.OutOfScope)
	d.Principals = slices.Clone(d.Principals)
	return d
}

// connectorPlan is which connector a sync of d runs on, decided when it starts: the first sync
// connector not down, each one skipped an attempt FAILED. ran is empty when all are down.
func connectorPlan(d Directory) (ran string, attempts []Attempt) {
	if len(d.Connectors) == 0 {
		return defaultConnector, nil
	}
	for _, c := range d.Connectors {
		if !slices.Contains(d.DownConnectors, c) {
			if len(attempts) == 0 {
				return c, nil // no failover: vIDM lists no attempts
			}
			return c, append(attempts, Attempt{Connector: c, Status: StatusRunning})
		}
		attempts = append(attempts, Attempt{Connector: c, Status: StatusFailed, Message: fmt.Sprintf("connector %s unavailable", c)})
	}
	return "", attempts
}

// allDownMessage is the failure of a sync for which no sync connector was available.
func allDownMessage(d Directory) string {
	return "no sync connector available: " + strings.Join(d.Connectors, ", ") + " unavailable"
}

// outcome decides how a sync of d ends. FailMessage wins because it means "every sync fails".
func outcome(d Directory, ignoreSafeguards bool) (status, message string) {
	switch {
	case d.FailMessage != "":
		return StatusFailed, d.FailMessage
	case d.SafeguardViolation && !ignoreSafeguards:
		return StatusFailed, safeguardMessage
	default:
		return StatusCompleted, ""
	}
}

// finalizeLocked ends every run whose time is up. Syncs end lazily, whenever state is read, so
// the simulator needs no timers and a fake clock drives it completely.
func (s *Server) finalizeLocked(now time.Time) {
	for _, run := range s.runs {
		if run.rec.Status != StatusRunning {
			continue
		}
		end := run.rec.StartedAt.Add(run.duration)
		if now.Before(end) {
			continue
		}
		run.rec.Status, run.rec.Message, run.rec.FinishedAt = run.endStatus, run.endMessage, end
		if n := len(run.rec.Attempts); n > 0 && run.rec.Attempts[n-1].Status == StatusRunning {
			// A new slice: records handed out earlier share the old one.
			att := slices.Clone(run.rec.Attempts)
			att[n-1].Status, att[n-1].Message = run.endStatus, run.endMessage
			run.rec.Attempts = att
		}
		s.log.Info("vidm-sim sync finished", slog.String("directory", run.rec.DirectoryName),
			slog.String("run_id", run.rec.RunID), slog.String("status", run.rec.Status))
	}
}

func (s *Server) directoryLocked(id string) (Directory, bool) {
	for _, d := range s.dirs {
		if d.ID == id {
			return d, true
		}
	}
	return Directory{}, false
}

// errSyncRunning is returned when a directory already has a sync RUNNING.
var errSyncRunning = errors.New("a sync is already running for the directory")

// startLocked starts a run for d unless one is running; the caller holds s.mu and has finalized.
func (s *Server) startLocked(d Directory, now time.Time, dur time.Duration, rec SyncRecord) (*syncRun, error) {
	if prev := s.latest[d.ID]; prev != nil && prev.rec.Status == StatusRunning {
		return nil, errSyncRunning
	}
	if dur <= 0 {
		dur = s.syncDur
		if d.SyncDuration > 0 {
			dur = d.SyncDuration
		}
	}
	rec.RunID, rec.DirectoryID, rec.DirectoryName = newUUID(), d.ID, d.Name
	rec.StartedAt, rec.Status = now, StatusRunning
	rec.Connector, rec.Attempts = connectorPlan(d)
	run := &syncRun{rec: rec, duration: dur, prev: s.latest[d.ID]}
	run.endStatus, run.endMessage = outcome(d, rec.IgnoreSafeguards)
	if rec.Connector == "" {
		// Nothing can run the sync: it fails at once, ended by the next read of the state.
		run.duration, run.endStatus, run.endMessage = 0, StatusFailed, allDownMessage(d)
	}
	s.runs = append(s.runs, run)
	s.latest[d.ID] = run

	// Counted from the log rather than assumed, so MaxConcurrentSyncs really checks the invariant.
	running := 0
	for _, r := range s.runs {
		if r.rec.DirectoryID == d.ID && r.rec.Status == StatusRunning {
			running++
		}
	}
	s.maxRunning[d.ID] = max(s.maxRunning[d.ID], running)
	s.log.Info("vidm-sim sync started", slog.String("directory", d.Name), slog.String("run_id", rec.RunID),
		slog.Bool("foreign", rec.Foreign), slog.String("request_id", rec.RequestID), slog.String("connector", rec.Connector))
	return run, nil
}

// newUUID returns a random (version 4) UUID, the shape vIDM uses for ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

type directoryItem struct {
	Type                     string   `json:"type"`
	Name                     string   `json:"name"`
	DirectoryID              string   `json:"directoryId"`
	Domains                  []string `json:"domains,omitempty"`
	SyncConfigurationEnabled bool     `json:"syncConfigurationEnabled"`
	// SyncConnectors is the Sync Connectors list in failover order, when one is configured.
	SyncConnectors []connectorRef `json:"syncConnectors,omitempty"`
	Links          map[string]any `json:"_links"`
}

type connectorRef struct {
	Name string `json:"name"`
}

type directoryList struct {
	Items []directoryItem `json:"items"`
	Links map[string]any  `json:"_links"`
}

func (s *Server) handleDirectories(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r) || !checkMedia(w, r, mediaDirectoryList, false, "") {
		return
	}
	list := directoryList{Items: []directoryItem{}, Links: map[string]any{}}
	s.mu.Lock()
	for _, d := range s.dirs {
		item := directoryItem{
			Type: d.Type, Name: d.Name, DirectoryID: d.ID, Domains: d.Domains,
			SyncConfigurationEnabled: !d.SyncDisabled, Links: map[string]any{},
		}
		for _, c := range d.Connectors {
			item.SyncConnectors = append(item.SyncConnectors, connectorRef{Name: c})
		}
		list.Items = append(list.Items, item)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, mediaDirectoryList, list)
}

type syncRequest struct {
	IgnoreSafeguards *bool `json:"ignoreSafeguards"`
}

func (s *Server) handleSyncStart(w http.ResponseWriter, r *http.Request, dirID string) {
	if !s.authorize(w, r) || !checkMedia(w, r, mediaHorizonV1, false, mediaSyncProfile) {
		return
	}
	ignore, err := parseSyncRequest(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "request.body.invalid", err.Error())
		return
	}
	now := s.now()
	run, status, conflict := s.startFromAPI(dirID, now, SyncRecord{
		IgnoreSafeguards: ignore,
		RequestID:        r.Header.Get("X-Request-Id"),
		Traceparent:      r.Header.Get("Traceparent"),
	})
	switch status {
	case http.StatusNotFound:
		writeDirectoryNotFound(w, dirID)
		return
	case http.StatusConflict:
		writeError(w, http.StatusConflict, "connector.directory.sync.in.progress", conflict)
		return
	}
	s.notifyStart(run)
	writeJSON(w, http.StatusOK, mediaHorizonV1, struct{}{})
}

// startFromAPI starts a sync for a POST under the lock; the status is 404 for an unknown
// directory and 409 (with the message vIDM gives) when one is running.
func (s *Server) startFromAPI(dirID string, now time.Time, rec SyncRecord) (started SyncRecord, status int, conflict string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.directoryLocked(dirID)
	if !ok {
		return SyncRecord{}, http.StatusNotFound, ""
	}
	s.finalizeLocked(now)
	run, err := s.startLocked(d, now.Add(s.startLag), 0, rec)
	if err != nil {
		s.rejectPosts++
		if run := s.latest[d.ID]; run != nil && run.rec.Foreign {
			s.rejectOnForeign++
		}
		return SyncRecord{}, http.StatusConflict, fmt.Sprintf("A sync is already in progress for directory %s.", d.Name)
	}
	return run.rec, http.StatusOK, ""
}

// notifyStart calls the OnSyncStart hook; the caller must not hold s.mu.
func (s *Server) notifyStart(rec SyncRecord) {
	if s.onStart != nil {
		s.onStart(rec)
	}
}

// parseSyncRequest reads {"ignoreSafeguards": bool}. Unknown fields are refused: the simulator is
// stricter than vIDM so that what passes here passes there.
func parseSyncRequest(r *http.Request) (bool, error) {
	b, err := readBody(r)
	if err != nil {
		return false, err
	}
	var req syncRequest
	if err := decodeOneObject(b, &req, true); err != nil {
		return false, fmt.Errorf(`body must be {"ignoreSafeguards": true|false}: %w`, err)
	}
	return req.IgnoreSafeguards != nil && *req.IgnoreSafeguards, nil
}

func writeDirectoryNotFound(w http.ResponseWriter, id string) {
	writeError(w, http.StatusNotFound, "connector.directory.not.found", fmt.Sprintf("Directory %q not found.", id))
}

// syncStatus is the poll answer (chosen, see docs/vidm-api.md). Pointers make the UNDEFINED answer
// carry only directoryId and status, and syncEndDate null while running.
type syncStatus struct {
	DirectoryID        string  `json:"directoryId"`
	Status             string  `json:"status"`
	SyncStartDate      *int64  `json:"syncStartDate,omitempty"`
	SyncEndDate        *int64  `json:"syncEndDate"`
	ProgressPercentage *int    `json:"progressPercentage,omitempty"`
	Message            *string `json:"message,omitempty"`
	// Connector ran the sync; Attempts are there only when it failed over (SyncRecord).
	Connector string    `json:"connector,omitempty"`
	Attempts  []Attempt `json:"attempts,omitempty"`
}

type undefinedStatus struct {
	DirectoryID string `json:"directoryId"`
	Status      string `json:"status"`
}

func (s *Server) handleSyncStatus(w http.ResponseWriter, r *http.Request, dirID string) {
	if !s.authorize(w, r) || !checkMedia(w, r, mediaHorizonV1, false, "") {
		return
	}
	now := s.now()
	s.mu.Lock()
	_, ok := s.directoryLocked(dirID)
	s.finalizeLocked(now)
	var run *syncRun
	if ok {
		l := s.latest[dirID]
		if l != nil && l.rec.StartedAt.After(now) {
			l = l.prev // not begun yet (StartLag): the previous sync is still the one reported
		}
		if l != nil {
			cp := *l
			run = &cp
		}
	}
	s.mu.Unlock()
	switch {
	case !ok:
		writeDirectoryNotFound(w, dirID)
	case run == nil:
		writeJSON(w, http.StatusOK, mediaHorizonV1, undefinedStatus{DirectoryID: dirID, Status: StatusUndefined})
	default:
		writeJSON(w, http.StatusOK, mediaHorizonV1, s.statusBodyOf(run, now))
	}
}

// unexpectedStatus is StatusBodyUnexpected's answer: the state under names no client knows.
type unexpectedStatus struct {
	DirectoryID string `json:"directoryId"`
	SyncState   struct {
		Phase string `json:"phase"`
		Begun int64  `json:"begunEpoch"`
	} `json:"syncState"`
}

// statusBodyOf shapes the poll answer as the server's configured StatusBody says.
func (s *Server) statusBodyOf(run *syncRun, now time.Time) any {
	st := statusOf(run, now)
	switch s.statusBody {
	case StatusBodyNoDates:
		st.SyncStartDate, st.SyncEndDate, st.ProgressPercentage = nil, nil, nil
		return struct {
			DirectoryID string  `json:"directoryId"`
			Status      string  `json:"status"`
			Message     *string `json:"message,omitempty"`
		}{st.DirectoryID, st.Status, st.Message}
	case StatusBodyUnexpected:
		var u unexpectedStatus
		u.DirectoryID, u.SyncState.Phase, u.SyncState.Begun = st.DirectoryID, "PHASE_"+st.Status, *st.SyncStartDate/1000
		return u
	}
	return st
}

func statusOf(run *syncRun, now time.Time) syncStatus {
	start := run.rec.StartedAt.UnixMilli()
	st := syncStatus{
		DirectoryID: run.rec.DirectoryID, Status: run.rec.Status, SyncStartDate: &start,
		Message: &run.rec.Message, Connector: run.rec.Connector, Attempts: run.rec.Attempts,
	}
	progress := 100
	if run.rec.Status == StatusRunning {
		progress = 0
		if run.duration > 0 { // a run with no connector lasts no time, and is ended before it is read
			elapsed := now.Sub(run.rec.StartedAt)
			progress = min(max(int(elapsed*100/run.duration), 0), 99)
		}
	} else {
		end := run.rec.FinishedAt.UnixMilli()
		st.SyncEndDate = &end
	}
	st.ProgressPercentage = &progress
	return st
}

// StartForeignSync starts a sync as vIDM's scheduler or an administrator would, outside the API.
// d <= 0 uses the directory's sync duration. It fails if the directory is unknown or already syncing.
func (s *Server) StartForeignSync(directoryID string, d time.Duration) error {
	now := s.now()
	s.mu.Lock()
	dir, ok := s.directoryLocked(directoryID)
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("vidmsim: start foreign sync: unknown directory %q", directoryID)
	}
	s.finalizeLocked(now)
	run, err := s.startLocked(dir, now, d, SyncRecord{Foreign: true})
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("vidmsim: start foreign sync of %q: %w", directoryID, err)
	}
	rec := run.rec
	s.mu.Unlock()
	s.notifyStart(rec)
	return nil
}

// SetDirectory adds d, or replaces the directory with the same ID, at run time. Runs already
// under way keep the outcome they started with.
func (s *Server) SetDirectory(d Directory) error {
	if err := validateDirectory(d); err != nil {
		return fmt.Errorf("vidmsim: set directory: %w", err)
	}
	d = withDirectoryDefaults(d)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := -1
	for i, have := range s.dirs {
		if have.ID == d.ID {
			idx = i
			continue
		}
		if strings.EqualFold(have.Name, d.Name) {
			return fmt.Errorf("vidmsim: set directory: name %q already used by %q", d.Name, have.ID)
		}
	}
	if idx < 0 {
		idx = len(s.dirs)
		s.dirs = append(s.dirs, d)
	} else {
		s.dirs[idx] = d
	}
	for _, p := range d.Principals { // created now: they are new to the AD the simulator shows
		s.addPrincipalLocked(idx, p.Kind, p.Name, p.Domain, !p.OutOfScope && !outOfScope(d, p.Name), now)
	}
	return nil
}

// SetConnectorDown marks one of a directory's sync connectors unavailable (down) or available
// again. Syncs already under way keep the connector they started on; the next sync fails over.
// The connector must be in the directory's Connectors.
func (s *Server) SetConnectorDown(directoryID, connector string, down bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := slices.IndexFunc(s.dirs, func(d Directory) bool { return d.ID == directoryID })
	if idx < 0 {
		return fmt.Errorf("vidmsim: set connector down: unknown directory %q", directoryID)
	}
	d := s.dirs[idx]
	if !slices.Contains(d.Connectors, connector) {
		return fmt.Errorf("vidmsim: set connector down: directory %q has no sync connector %q", directoryID, connector)
	}
	// A new slice: Directory values copied out earlier share the old one.
	downs := slices.DeleteFunc(slices.Clone(d.DownConnectors), func(c string) bool { return c == connector })
	if down {
		downs = append(downs, connector)
	}
	s.dirs[idx].DownConnectors = downs
	return nil
}

// SyncLog returns every run in start order, with statuses brought up to date.
func (s *Server) SyncLog() []SyncRecord {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.finalizeLocked(now)
	out := make([]SyncRecord, 0, len(s.runs))
	for _, run := range s.runs {
		out = append(out, run.rec)
	}
	return out
}

// RejectedSyncPosts returns how many sync POSTs were answered 409 because a sync was running.
func (s *Server) RejectedSyncPosts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejectPosts
}

// RejectedSyncPostsOnForeign returns how many of those hit a sync started by someone else
// (StartForeignSync). A foreign sync can start between a client's status check and its POST; the
// 409 then keeps vIDM at one sync, and no client can avoid that race.
func (s *Server) RejectedSyncPostsOnForeign() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejectOnForeign
}

// MaxConcurrentSyncs returns the most syncs ever running at once for the directory (must be 1).
func (s *Server) MaxConcurrentSyncs(directoryID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxRunning[directoryID]
}

// Requests returns how many requests reached ep, counted before faults, rejected ones included.
func (s *Server) Requests(ep Endpoint) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[ep]
}

// RequestsByStatus returns the answered status codes for ep; requests answered with nothing
// (reset, aborted, client gone while hung) count as status 0.
func (s *Server) RequestsByStatus(ep Endpoint) map[int]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int]int, len(s.byStatus[ep]))
	for k, v := range s.byStatus[ep] {
		out[k] = v
	}
	return out
}
