// Package control answers the operator's questions ("did my group sync?") and carries out their
// requests: every directory with its state, run history, a sync requested now, pausing and
// resuming a directory's syncs, and re-driving dead letters. It reads the worker's JetStream state
// and vIDM's directory list; the admin HTTP API and the status page present it.
package control

import (
	"errors"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

// State is what a directory is doing.
type State string

// Directory states, in the order an operator cares about them.
const (
	StateStuck   State = "stuck"   // its run failed dirsync.StuckAfter times in a row or more: see CurrentRun.Trouble
	StateSyncing State = "syncing" // a run holds the directory: waiting for, starting or polling a vIDM sync
	StatePaused  State = "paused"  // an operator paused it; triggers are accepted and kept pending
	StatePending State = "pending" // triggers are waiting for the coalescing window or a free slot
	StateIdle    State = "idle"
)

// Directory is one vIDM directory as the worker sees it.
type Directory struct {
	Tenant      string   `json:"tenant"`
	Backend     string   `json:"backend,omitempty"` // vidm, vra7, vra-cloud or vcf
	DirectoryID string   `json:"directoryId"`
	Name        string   `json:"name"`
	Type        string   `json:"type,omitempty"`
	Domains     []string `json:"domains,omitempty"`
	// Connectors are the directory's sync connectors in failover order, when the backend says.
	Connectors      []string `json:"connectors,omitempty"`
	State           State    `json:"state"`
	PendingTriggers int      `json:"pendingTriggers"`
	Paused          *Pause   `json:"paused,omitempty"`
	CurrentRun      *Run     `json:"currentRun,omitempty"`
	LastRun         *Run     `json:"lastRun,omitempty"`
	// Known is false for a directory that has state in the worker but is no longer in vIDM's
	// directory list (renamed or deleted).
	Known bool `json:"known"`
}

// Pause records who paused a directory and why.
type Pause struct {
	Since  time.Time `json:"since"`
	Reason string    `json:"reason,omitempty"`
}

// Run status values, after the task model of sync engines: queued (snapshot taken, vIDM not yet
// asked), running, then a terminal outcome.
const (
	RunQueued    = "QUEUED"
	RunRunning   = "RUNNING"
	RunCompleted = "COMPLETED"
	RunFailed    = "FAILED"
)

// Run is one directory sync and the triggers it covers.
type Run struct {
	RunID  string `json:"runId"`
	Status string `json:"status"` // QUEUED, RUNNING, COMPLETED, FAILED, DELEGATED
	// Phase is the run's internal phase while in flight (collecting, snapshot, posting, posted,
	// reported).
	Phase      string     `json:"phase,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
	StartedAt  *time.Time `json:"startedAt,omitempty"`  // vIDM accepted the sync
	FinishedAt *time.Time `json:"finishedAt,omitempty"` // terminal runs only
	// DurationMs is the sync's duration: start to finish, or start to now while running.
	DurationMs   int64  `json:"durationMs,omitempty"`
	Holder       string `json:"holder,omitempty"` // the replica driving a run in flight
	TriggerCount int    `json:"triggerCount"`
	// Triggers are the first few the run covers (at most 10); the result events list them all.
	Triggers  []Trigger `json:"triggers"`
	Error     *RunError `json:"error,omitempty"`
	Connector string    `json:"connector,omitempty"`
	// Attempts: the connectors the sync failed over through, in order.
	Attempts []contract.Attempt `json:"attempts,omitempty"`
	// Delegation: for a DELEGATED run, who keeps the directory current.
	Delegation *backend.Delegation `json:"delegation,omitempty"`
	// Progress: the running sync's progress in percent, as the identity system last reported it.
	Progress *int `json:"progress,omitempty"`
	// Readiness: what the readiness check found of the covered groups and users, with the first
	// few not visible by name.
	Readiness *dirsync.Readiness `json:"readiness,omitempty"`
	// Pages is how many result events the run is reported in (more than one for a run whose
	// triggers do not fit in one message).
	Pages int `json:"pages,omitempty"`
	// Trouble: a run in flight whose holders keep failing; Stuck once they failed
	// dirsync.StuckAfter times in a row.
	Trouble *Trouble `json:"trouble,omitempty"`
}

// Trouble is why a run in flight has not moved on.
type Trouble struct {
	Failures int       `json:"failures"`
	Since    time.Time `json:"since"`
	Last     time.Time `json:"last"`
	Error    string    `json:"error"`
	Stuck    bool      `json:"stuck"`
}

// Trigger is one trigger a run covers.
type Trigger struct {
	ID         string    `json:"id"`
	Source     string    `json:"source"`
	Type       string    `json:"type"`
	Group      string    `json:"group,omitempty"`
	User       string    `json:"user,omitempty"`
	AcceptedAt time.Time `json:"acceptedAt"`
}

// RunError explains a failed run.
type RunError struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

// DeadLetter is one message in the dead-letter stream.
type DeadLetter struct {
	Seq             uint64    `json:"seq"`
	Time            time.Time `json:"time"`
	Code            string    `json:"code"`
	Reason          string    `json:"reason"`
	OriginalSubject string    `json:"originalSubject"`
	OriginalSeq     uint64    `json:"originalSeq,omitempty"`
	EventID         string    `json:"eventId,omitempty"`   // when the message was a decodable CloudEvent
	EventType       string    `json:"eventType,omitempty"` // idem
	Size            int       `json:"size"`
	// Omitted says what a stub left out ("payload" or "payload,headers"): the message was too
	// large to keep whole. OriginalSize and OriginalSHA256 identify what was left out.
	Omitted        string `json:"omitted,omitempty"`
	OriginalSize   int    `json:"originalSize,omitempty"`
	OriginalSHA256 string `json:"originalSha256,omitempty"`
}

// DeadLetters is a page of dead letters, newest first, and how many there are in all.
type DeadLetters struct {
	Total uint64       `json:"total"`
	Items []DeadLetter `json:"items"`
	// Next is the cursor of the next (older) page: pass it as ?before=; absent on the last page.
	Next uint64 `json:"next,omitempty"`
}

// DirectoryList is a page of the directory list, in its order (CompareDirectories).
type DirectoryList struct {
	Directories []Directory `json:"directories"`
	// Total is how many directories match, over every page.
	Total int `json:"total"`
	// Next is the cursor of the next page: pass it as ?after=; absent on the last page.
	Next string `json:"next,omitempty"`
}

// SyncRequest is the answer to a sync requested through the admin API: the trigger published
// for it, which the worker coalesces like any other.
// SyncOptions are an operator's choices for a requested sync.
type SyncOptions struct {
	Queue  bool   // sync after the run in flight (or the pause) instead of refusing
	Reason string // shown in the trigger and the run
	// IgnoreSafeguards asks vIDM to ignore its sync safeguards for this request's run, on any
	// tenant: the admin token is the authority, carried as a signed grant.
	IgnoreSafeguards bool
}

type SyncRequest struct {
	EventID string `json:"eventId"`
	// Queued is true when a run was already in flight (or the directory paused) and the
	// request was queued for the follow-up (?queue=true).
	Queued bool `json:"queued"`
}

// Cancellation is the answer to a cancel request: the order the worker carries out next.
type Cancellation struct {
	ID     string    `json:"id"`
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	// Triggers is how many pending triggers no run had taken when the order was given; each
	// is reported failed with code CANCELLED. A run that takes some of them first syncs them.
	Triggers int `json:"triggers"`
	// CurrentRun is the run in flight, which the cancellation does not touch.
	CurrentRun *Run `json:"currentRun,omitempty"`
}

// RedriveResult lists what a re-drive did.
type RedriveResult struct {
	Redriven []uint64         `json:"redriven"`
	Failed   []RedriveFailure `json:"failed,omitempty"`
}

// RedriveFailure is a dead letter that could not be re-driven, and why.
type RedriveFailure struct {
	Seq   uint64 `json:"seq"`
	Error string `json:"error"`
}

// Sentinel errors the admin API maps to HTTP statuses.
var (
	ErrNotFound = errors.New("not found") // 404
	ErrConflict = errors.New("conflict")  // 409; the error is a *ConflictError
)

// ConflictError is a sync request refused because a run is in flight or the directory is
// paused; ?queue=true queues it instead.
type ConflictError struct {
	Reason     string // "running", "paused", "started" or "nothing_pending"
	CurrentRun *Run
	Message    string
}

func (e *ConflictError) Error() string { return e.Message }

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }
