// Package dirsync is the pipeline's vocabulary: a directory's key, the triggers accepted for it,
// and the run that syncs it and reports them, with its phases and outcome. The store
// (internal/pipeline/dirstate) keeps them; intake, the engine, results and the operator views
// work with them.
package dirsync

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
)

// DirKey names one (tenant, directory) pair as two KV key tokens.
type DirKey string

// NewDirKey builds the key of a directory. Ids that are not plain tokens are hashed so that no id
// can break out of its place in the key space.
func NewDirKey(tenant, directoryID string) DirKey {
	var buf [2*maxToken + 1]byte // on the stack: the string conversion is the only allocation
	b := appendToken(buf[:0], tenant)
	b = append(b, '.')
	return DirKey(appendToken(b, directoryID))
}

// maxToken is the longest id kept readable in a key; hashed tokens are 33 bytes.
const maxToken = 64

// plainToken reports ids that are their own key token: 1 to 64 of A-Z a-z 0-9 _ -.
// (A loop rather than a regular expression: keys are built for every trigger and run.)
func plainToken(s string) bool {
	if len(s) == 0 || len(s) > maxToken {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// appendToken appends s as a key token: itself when plain, else "h" and 32 hex digits of its hash.
func appendToken(b []byte, s string) []byte {
	if plainToken(s) {
		return append(b, s...)
	}
	sum := sha256.Sum256([]byte(s))
	return hex.AppendEncode(append(b, 'h'), sum[:16])
}

// Trigger is an accepted trigger as the pending set keeps it: what the result event must list.
type Trigger struct {
	ID               string    `json:"id"`
	Source           string    `json:"source"`
	Type             string    `json:"type"`
	Group            string    `json:"group,omitempty"`
	User             string    `json:"user,omitempty"`
	Domain           string    `json:"domain,omitempty"` // the AD domain the trigger named, if any
	Traceparent      string    `json:"traceparent,omitempty"`
	IntakeSpan       string    `json:"intakeSpan,omitempty"` // its intake span's traceparent, if traced: runs link to it
	Tenant           string    `json:"tenant"`
	DirectoryID      string    `json:"directoryId"`
	DirectoryName    string    `json:"directoryName"`
	IgnoreSafeguards bool      `json:"ignoreSafeguards,omitempty"`
	AcceptedAt       time.Time `json:"acceptedAt"`
	// Ready is what the readiness check found of the trigger's group or user, set on a page of
	// a reported run just before it is published; never stored.
	Ready *Ready `json:"-"`
}

// MaxHint bounds a Ready's Hint: a page of a result event must stay as small as its stored page
// plus a fixed reserve per trigger.
const MaxHint = 160

// Answer is what the readiness check found of one principal (the label values of
// dirsync_readiness_principals_total).
type Answer string

const (
	AnswerVisible    Answer = "visible"
	AnswerNotVisible Answer = "not_visible" // the store answered, and does not have it
	AnswerUnknown    Answer = "unknown"     // the lookup failed
	AnswerNotChecked Answer = "not_checked" // the identity system offers no lookup
)

// Ready is the readiness check's answer for one trigger's group or user.
type Ready struct {
	Answer      Answer
	PrincipalID string // with AnswerVisible
	Hint        string // why not visible, or not checked
}

// Visible is the result event's "visible": set only when the store answered.
func (r *Ready) Visible() *bool {
	var v bool
	switch r.Answer {
	case AnswerVisible:
		v = true
	case AnswerNotVisible:
	default:
		return nil
	}
	return &v
}

// Principal is the group or user the trigger names, if any.
func (t Trigger) Principal() (backend.Principal, bool) {
	switch {
	case t.Group != "":
		return backend.Principal{Kind: backend.PrincipalGroup, Name: t.Group, Domain: t.Domain}, true
	case t.User != "":
		return backend.Principal{Kind: backend.PrincipalUser, Name: t.User, Domain: t.Domain}, true
	}
	return backend.Principal{}, false
}

// Key is the trigger's pending key. CloudEvents are unique by (source, id), so a redelivered or
// re-published trigger lands on the same key and is recorded once.
func (t Trigger) Key() string {
	// Stack buffers for the hash input and the key: one allocation, the returned string.
	var in [256]byte
	sum := sha256.Sum256(append(append(append(in[:0], t.Source...), 0), t.ID...))
	var buf [2*maxToken + 2 + 32]byte
	b := appendToken(buf[:0], t.Tenant)
	b = append(b, '.')
	b = appendToken(b, t.DirectoryID)
	b = append(b, '.')
	return string(hex.AppendEncode(b, sum[:16]))
}

// Phase is how far a run has come; a holder that resumes a run continues from its phase.
type Phase string

const (
	// PhaseCollecting: the run's pages of covered triggers are being written; a holder that
	// resumes it writes them again.
	PhaseCollecting Phase = "collecting"
	// PhaseSnapshot: the covered triggers are fixed; vIDM has not been asked yet.
	PhaseSnapshot Phase = "snapshot"
	// PhasePosting: the POST may or may not have reached vIDM; BeforeStart tells them apart.
	PhasePosting Phase = "posting"
	// PhasePosted: vIDM accepted the POST; the sync is being polled.
	PhasePosted Phase = "posted"
	// PhaseReported: the outcome is fixed and is being published, then forgotten.
	PhaseReported Phase = "reported"
)

// Outcome is a run's terminal result.
type Outcome struct {
	Status     string    `json:"status"` // COMPLETED, FAILED or DELEGATED
	FinishedAt time.Time `json:"finishedAt"`
	ErrCode    string    `json:"errCode,omitempty"`
	ErrMessage string    `json:"errMessage,omitempty"`
	Retryable  bool      `json:"retryable,omitempty"`
	Connector  string    `json:"connector,omitempty"`
	// Attempts are the connectors the sync went through when it failed over.
	Attempts []contract.Attempt `json:"attempts,omitempty"`
	// Delegation says who keeps the directory current when the backend has no sync to start.
	Delegation *backend.Delegation `json:"delegation,omitempty"`
	// SyncDuration is how long the sync ran: the identity system's own start to end when it
	// reports both, else from our POST to the poll that saw the end. The next runs of the
	// directory plan their polls from it (backend.PollPlan).
	SyncDuration time.Duration `json:"syncDuration,omitempty"`
	// RecordedAt is when this worker fixed the outcome (its own clock, unlike FinishedAt): the
	// readiness check's re-check counts from it.
	RecordedAt time.Time `json:"recordedAt,omitzero"`
}

// Readiness tallies a run's readiness check over the pages published so far.
type Readiness struct {
	Visible    int `json:"visible"`
	NotVisible int `json:"notVisible"`
	Unknown    int `json:"unknown,omitempty"`
	NotChecked int `json:"notChecked,omitempty"`
	// NotVisibleSample names the first few principals not visible, for the operator views.
	NotVisibleSample []string `json:"notVisibleSample,omitempty"`
}

// notVisibleSample bounds Readiness.NotVisibleSample, and maxSampleName each name in it, so the
// run record stays small whatever the run covered.
const (
	notVisibleSample = 10
	maxSampleName    = 256
)

// Add counts the readiness of a page's triggers.
func (r *Readiness) Add(page []Trigger) {
	for _, t := range page {
		if t.Ready == nil {
			continue
		}
		switch t.Ready.Answer {
		case AnswerVisible:
			r.Visible++
		case AnswerNotChecked:
			r.NotChecked++
		case AnswerUnknown:
			r.Unknown++
		case AnswerNotVisible:
			r.NotVisible++
			if len(r.NotVisibleSample) < notVisibleSample {
				p, _ := t.Principal()
				r.NotVisibleSample = append(r.NotVisibleSample, backend.Clip(p.Name, maxSampleName))
			}
		}
	}
}

// Run is one directory sync and the triggers it covers. Its record stays the same size whatever
// the number of triggers: the covered triggers are kept in pages of their own (Page), each under
// half the broker's max_payload, and the record holds their count and a small sample.
type Run struct {
	RunID            string    `json:"runId"`
	Tenant           string    `json:"tenant"`
	DirectoryID      string    `json:"directoryId"`
	DirectoryName    string    `json:"directoryName"`
	Phase            Phase     `json:"phase"`
	CreatedAt        time.Time `json:"createdAt"`
	StartedAt        time.Time `json:"startedAt,omitzero"`   // when vIDM accepted our POST
	BeforeStart      time.Time `json:"beforeStart,omitzero"` // vIDM's start time of the sync before ours
	IgnoreSafeguards bool      `json:"ignoreSafeguards,omitempty"`
	// Count is the number of covered triggers, kept in Pages pages.
	Count int `json:"count"`
	Pages int `json:"pages"`
	// Collected is the newest pending-bucket revision among the covered triggers: those
	// recorded after it are left for the next run (or an operator's cancellation).
	Collected uint64 `json:"collected,omitempty"`
	// Sample is the first few covered triggers, for operator views.
	Sample []Trigger `json:"sample,omitempty"`
	// Traceparent is the first covered trigger's that has one: the run's vIDM requests and
	// result events carry it.
	Traceparent string `json:"traceparent,omitempty"`
	// IntakeSpan is the first covered trigger's intake span that has one (Trigger.IntakeSpan):
	// the parent of the run's spans, so that one trigger's trace reads publisher, intake, run,
	// identity-system calls, result.
	IntakeSpan string `json:"intakeSpan,omitempty"`
	// Published is the number of result pages already published, so a resumed run goes on
	// from the next.
	Published int      `json:"published,omitempty"`
	Outcome   *Outcome `json:"outcome,omitempty"`
	// Readiness tallies the readiness check of the pages published so far.
	Readiness *Readiness `json:"readiness,omitempty"`
	// Trouble is set while the run keeps failing, for operator views on every replica.
	Trouble *Trouble `json:"trouble,omitempty"`
	// Progress is the sync's progress in percent as the identity system last reported it
	// while it ran, for operator views; -1 or absent when it reports none.
	Progress *int `json:"progress,omitempty"`
	// Cancel is set on a run that reports an operator's cancellation instead of syncing: it
	// covers only the triggers recorded up to the order's revision, and never reaches vIDM.
	Cancel *Cancel `json:"cancel,omitempty"`
	// Triggers keeps a small run's covered triggers inline, as its one page (at most ten, a
	// few kilobytes: dirstate.SnapshotSmall), so starting it costs one write. Keys is how a
	// worker before paging kept them, read so that a run it left is finished after an upgrade.
	Keys     []string  `json:"keys,omitempty"`
	Triggers []Trigger `json:"triggers,omitempty"`
	// Version is the revision of the run's record as the store last read or wrote it; the
	// store's writes are compare-and-set on it, so a holder that lost the directory cannot
	// overwrite its successor's run. Never serialised.
	Version uint64 `json:"-"`
}

// Cancel is an operator's order to report a directory's pending triggers as cancelled.
type Cancel struct {
	ID     string    `json:"id"`
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
	// UpTo is the pending bucket's last revision when the order was given: triggers recorded
	// after it are not covered, so a pipeline that publishes after the cancel is synced.
	UpTo uint64 `json:"upTo"`
}

// Message is the failed result's message: who cancelled, when and why.
func (c *Cancel) Message() string {
	return fmt.Sprintf("cancelled by %s at %s before a sync took it: %s", c.By, c.At.UTC().Format(time.RFC3339), c.Reason)
}

// Trouble is why a run has not moved on: consecutive failures of its holders.
type Trouble struct {
	Failures int       `json:"failures"`
	Since    time.Time `json:"since"`
	Last     time.Time `json:"last"`
	Error    string    `json:"error"`
}

// StuckAfter is how many failures of a run in a row make its directory stuck: an ERROR line, the
// dirsync_directory_stuck gauge, and its state on the status page and in the admin API.
const StuckAfter = 5

// Stuck reports a run that failed StuckAfter times or more in a row.
func (t *Trouble) Stuck() bool { return t != nil && t.Failures >= StuckAfter }

// Dir returns the run's directory key.
func (r *Run) Dir() DirKey { return NewDirKey(r.Tenant, r.DirectoryID) }

// TenantToken is the key token of a tenant name, as NewDirKey writes it.
func TenantToken(tenant string) string { return string(appendToken(nil, tenant)) }

// TenantToken is the tenant part of the key.
func (d DirKey) TenantToken() string {
	t, _, _ := strings.Cut(string(d), ".")
	return t
}
