// Package contract is the worker's event contract in Go, the counterpart of the JSON Schemas and
// the AsyncAPI document in schemas/: the event types, the result statuses and error codes, the
// dead-letter codes and headers, the event ids, and the payloads of result and warning events.
// Publishers' tools (the CLI, the await package) import it without linking the engine or its
// state; schemas/ tests hold the two in step.
package contract

import (
	"strconv"
	"time"
)

// TypeSyncRequested is the type of an explicit request to sync a directory.
const TypeSyncRequested = "vidm.directory.sync.requested"

// Event types.
const (
	TypeStarted   = "vidm.directory.sync.started"
	TypeCompleted = "vidm.directory.sync.completed"
	TypeFailed    = "vidm.directory.sync.failed"
)

// TypeSyncClientTokenExpiring is the type of the warning that an external identity provider's SCIM
// sync-client token (VCF with Okta or Entra ID) expires soon or has expired.
const TypeSyncClientTokenExpiring = "vidm.identity.synctoken.expiring"

// Error codes of failed results.
const (
	CodeSyncFailed        = "VIDM_SYNC_FAILED"         // vIDM ran the sync and reported FAILED
	CodeSyncTimeout       = "VIDM_SYNC_TIMEOUT"        // the sync did not finish before the deadline
	CodeDirectoryNotFound = "VIDM_DIRECTORY_NOT_FOUND" // the directory vanished between intake and sync
	CodeUnauthorized      = "VIDM_UNAUTHORIZED"        // vIDM rejected the worker's credentials
	CodeVIDMError         = "VIDM_ERROR"               // any other permanent vIDM answer
	CodeUnknownTenant     = "UNKNOWN_TENANT"           // the tenant was removed from the configuration
	CodeSyncDisabled      = "VIDM_SYNC_DISABLED"       // the directory's sync was turned off after the trigger was accepted
	CodeCancelled         = "CANCELLED"                // an operator cancelled the trigger before a run took it; no sync ran
)

// Result statuses.
const (
	StatusCompleted = "COMPLETED"
	StatusFailed    = "FAILED"
	// StatusDelegated: the identity provider keeps the directory current by itself (VCF with
	// Okta or Entra ID pushing over SCIM, or an identity source reading LDAP live); no sync was
	// started, and Data.Delegation says who does the work. Published as a completed event.
	StatusDelegated = "DELEGATED"
)

// DeadCode classifies a trigger rejected by decoding; it is stable, for metrics labels and dead-letter headers.
type DeadCode string

const (
	// CodeMalformed: not a CloudEvent, or data that is not JSON: bad JSON or UTF-8, nested too
	// deep, too large, missing.
	CodeMalformed DeadCode = "MALFORMED"
	// CodeUnknownType: a CloudEvent of a type the worker does not handle.
	CodeUnknownType DeadCode = "UNKNOWN_TYPE"
	// CodeSchema: the data breaks its JSON Schema, or the event breaks a rule of its type, such as
	// ad.group.* without a group. Reason names the failing JSON pointers and rules.
	CodeSchema DeadCode = "SCHEMA_VIOLATION"
	// CodeUnsupportedContentType: the data is not JSON (datacontenttype other than
	// application/json or */*+json, or a charset other than UTF-8).
	CodeUnsupportedContentType DeadCode = "UNSUPPORTED_CONTENT_TYPE"
)

// Dead-letter codes of triggers that decode but cannot be accepted (strings, as the headers carry them).
const (
	CodeUnknownDirectory    = "UNKNOWN_DIRECTORY"
	CodeAmbiguousDirectory  = "AMBIGUOUS_DIRECTORY"
	CodeDirectoryNotAllowed = "DIRECTORY_NOT_ALLOWED"
	// CodeDirectorySyncDisabled: the directory's sync is turned off in the identity system
	// (syncConfigurationEnabled: false); a sync would bring nothing.
	CodeDirectorySyncDisabled = "DIRECTORY_SYNC_DISABLED"
	// CodeSafeguardsNotAllowed: the trigger asks to ignore vIDM's safeguards on a tenant that does
	// not let publishers ask (allowIgnoreSafeguards), without the admin API's grant.
	CodeSafeguardsNotAllowed = "SAFEGUARDS_NOT_ALLOWED"
)

// Headers a dead letter carries besides the original message's own.
const (
	HeaderDeadCode    = "Dirsync-Dead-Code"
	HeaderDeadReason  = "Dirsync-Dead-Reason"
	HeaderDeadSubject = "Dirsync-Original-Subject"
	HeaderDeadSeq     = "Dirsync-Original-Sequence"
	// A stub, kept instead of a message too large to dead-letter whole: the payload (and, when
	// they too are large, the headers) are left out; their size and digest identify them.
	HeaderDeadOmitted = "Dirsync-Omitted"
	HeaderDeadSize    = "Dirsync-Original-Size"
	HeaderDeadSHA256  = "Dirsync-Original-Sha256"
)

// Omitted parts of a stub dead letter (HeaderDeadOmitted values).
const (
	OmittedPayload = "payload"
	OmittedAll     = "payload,headers"
)

// StartedData is the data of a started event.
type StartedData struct {
	Tenant        string    `json:"tenant"`
	DirectoryID   string    `json:"directoryId"`
	DirectoryName string    `json:"directoryName"`
	RunID         string    `json:"runId"`
	StartedAt     time.Time `json:"startedAt"`
}

// Trigger is one covered trigger in a result.
type Trigger struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	Type   string `json:"type"`
	Group  string `json:"group,omitempty"`
	User   string `json:"user,omitempty"`
	// Visible says whether the identity store has the group or user after the sync (the
	// readiness check). Absent when it was not checked or the lookup failed: Hint says which.
	Visible *bool `json:"visible,omitempty"`
	// PrincipalID is the store's id of the group or user (vIDM's SCIM id) when Visible.
	PrincipalID string `json:"principalId,omitempty"`
	// Hint explains a principal not visible, or not checked.
	Hint string `json:"hint,omitempty"`
}

// Error explains a failed result.
type Error struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

// Data is the data of a completed or failed event.
type Data struct {
	Tenant        string    `json:"tenant"`
	DirectoryID   string    `json:"directoryId"`
	DirectoryName string    `json:"directoryName"`
	RunID         string    `json:"runId"`
	StartedAt     time.Time `json:"startedAt"`
	FinishedAt    time.Time `json:"finishedAt"`
	DurationMs    int64     `json:"durationMs"`
	Status        string    `json:"status"`
	Triggers      []Trigger `json:"triggers"`
	Error         *Error    `json:"error,omitempty"`
	// Connector is the sync connector that ran the sync, when the backend says.
	Connector string `json:"connector,omitempty"`
	// Attempts lists the connectors in failover order when the sync moved from one to the next.
	Attempts []Attempt `json:"attempts,omitempty"`
	// Delegation is set with status DELEGATED.
	Delegation *Delegation `json:"delegation,omitempty"`
	// Page and Pages say which part of its run's result this event is when the run covers more
	// triggers than fit in one message: the run is reported as Pages events (page 1..Pages) with
	// the same runId, each listing a disjoint part of the triggers, each with its own event id
	// (PageEventID). A run reported in one event has neither, exactly as before paging existed.
	Page  int `json:"page,omitempty"`
	Pages int `json:"pages,omitempty"`
	// TriggerCount is how many triggers the whole run covers over all its pages; set with Pages.
	TriggerCount int `json:"triggerCount,omitempty"`
}

// PageEventID is the event id of page (1-based) of a run's terminal result in pages events: the
// run id and ".result" for a run reported in one event, as before paging existed, and
// "<runId>.result.<page>" otherwise. Deterministic, so a page re-published after a crash is
// de-duplicated by the results stream.
func PageEventID(runID string, page, pages int) string {
	if pages <= 1 {
		return runID + ".result"
	}
	return runID + ".result." + strconv.Itoa(page)
}

// Delegation says who keeps a directory current when there is no sync to start.
type Delegation struct {
	Kind           string     `json:"kind"` // SCIM or LDAP
	ProviderID     string     `json:"providerId,omitempty"`
	Provider       string     `json:"provider,omitempty"`
	Source         string     `json:"source,omitempty"`
	TokenExpiresAt *time.Time `json:"tokenExpiresAt,omitempty"`
	Message        string     `json:"message,omitempty"`
}

// Attempt is one connector's part in a sync.
type Attempt struct {
	Connector string `json:"connector"`
	Status    string `json:"status"`
	Message   string `json:"message,omitempty"`
}

// TokenWarningData is the data of a vidm.identity.synctoken.expiring event.
type TokenWarningData struct {
	Tenant     string    `json:"tenant"`
	ProviderID string    `json:"providerId"`
	Provider   string    `json:"provider"`
	Source     string    `json:"source,omitempty"`
	Domains    []string  `json:"domains,omitempty"`
	ExpiresAt  time.Time `json:"expiresAt"`
	// ExpiresInSeconds is negative once the token has expired.
	ExpiresInSeconds  int64  `json:"expiresInSeconds"`
	WarnBeforeSeconds int64  `json:"warnBeforeSeconds"`
	Message           string `json:"message"`
}
