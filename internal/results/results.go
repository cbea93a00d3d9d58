// Package results publishes the events that tell downstream services what a directory sync did:
// vidm.directory.sync.started, then .completed or .failed, as binary-mode CloudEvents on JetStream.
// Event ids derive from the run id, so a re-publish after a crash is de-duplicated by the stream.
package results

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/dirstate"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/safetext"
)

// Event types.
const (
	TypeStarted   = "vidm.directory.sync.started"
	TypeCompleted = "vidm.directory.sync.completed"
	TypeFailed    = "vidm.directory.sync.failed"
)

// Error codes of failed results.
const (
	CodeSyncFailed        = "VIDM_SYNC_FAILED"         // vIDM ran the sync and reported FAILED
	CodeSyncTimeout       = "VIDM_SYNC_TIMEOUT"        // the sync did not finish before the deadline
	CodeDirectoryNotFound = "VIDM_DIRECTORY_NOT_FOUND" // the directory vanished between intake and sync
	CodeUnauthorized      = "VIDM_UNAUTHORIZED"        // vIDM rejected the worker's credentials
	CodeVIDMError         = "VIDM_ERROR"               // any other permanent vIDM answer
	CodeUnknownTenant     = "UNKNOWN_TENANT"           // the tenant was removed from the configuration
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

// Publisher publishes result events.
type Publisher struct {
	js     jetstream.JetStream
	prefix string // subject prefix; events go to prefix.started|completed|failed
	source string // CloudEvent source: this worker deployment
}

// New returns a Publisher.
func New(js jetstream.JetStream, subjectPrefix, source string) *Publisher {
	return &Publisher{js: js, prefix: subjectPrefix, source: source}
}

// Started publishes that the run's sync was started in vIDM.
func (p *Publisher) Started(ctx context.Context, r *dirstate.Run) error {
	data := StartedData{
		Tenant: r.Tenant, DirectoryID: r.DirectoryID, DirectoryName: r.DirectoryName,
		RunID: r.RunID, StartedAt: r.StartedAt.UTC(),
	}
	msg, err := p.encode(r, r.RunID+".started", TypeStarted, "started", r.StartedAt, data)
	if err != nil {
		return err
	}
	return p.send(ctx, r, TypeStarted, msg)
}

// Finished publishes page n (from 1) of the run's outcome, completed or failed, listing the
// triggers of that page. A run of one page is reported in one event, as before paging existed.
func (p *Publisher) Finished(ctx context.Context, r *dirstate.Run, n int, triggers []dirstate.Trigger) error {
	msg, typ, err := p.finishedMsg(r, n, triggers)
	if err != nil {
		return err
	}
	return p.send(ctx, r, typ, msg)
}

// finishedMsg is page n of the completed or failed event of a reported run, and its type.
func (p *Publisher) finishedMsg(r *dirstate.Run, n int, triggers []dirstate.Trigger) (*nats.Msg, string, error) {
	if r.Outcome == nil {
		return nil, "", fmt.Errorf("run %s has no outcome", r.RunID)
	}
	data := PageData(r, n, triggers)
	typ, kind := TypeCompleted, "completed"
	if data.Status == StatusFailed {
		typ, kind = TypeFailed, "failed"
	}
	msg, err := p.encode(r, PageEventID(r.RunID, n, r.Pages), typ, kind, r.Outcome.FinishedAt, data)
	return msg, typ, err
}

func (p *Publisher) send(ctx context.Context, r *dirstate.Run, typ string, msg *nats.Msg) error {
	if _, err := p.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish %s for run %s: %w", typ, r.RunID, err)
	}
	return nil
}

// encode builds the binary-mode message of one result event; apart from the publish it is all the
// work of reporting a run, so it is kept separate to be measured on its own.
func (p *Publisher) encode(r *dirstate.Run, id, typ, kind string, at time.Time, data any) (*nats.Msg, error) {
	e := event.New()
	e.SetID(id)
	e.SetSource(p.source)
	e.SetType(typ)
	e.SetSubject(r.DirectoryName)
	e.SetTime(at)
	if r.Traceparent != "" {
		// The first covered trigger's trace, so one trace shows the pipeline step, the sync
		// and the consumer of the result.
		e.SetExtension("traceparent", r.Traceparent)
	}
	if err := e.SetData(event.ApplicationJSON, data); err != nil {
		return nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	msg, err := cenats.EncodeBinary(p.prefix+"."+kind, e)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	return msg, nil
}

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
	Attempts []backend.Attempt `json:"attempts,omitempty"`
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

// maxDelegationMessageLen is the result schema's bound on delegation.message.
const maxDelegationMessageLen = 2048

// Delegation says who keeps a directory current when there is no sync to start.
type Delegation struct {
	Kind           string     `json:"kind"` // SCIM or LDAP
	ProviderID     string     `json:"providerId,omitempty"`
	Provider       string     `json:"provider,omitempty"`
	Source         string     `json:"source,omitempty"`
	TokenExpiresAt *time.Time `json:"tokenExpiresAt,omitempty"`
	Message        string     `json:"message,omitempty"`
}

// PageData builds the data of page n of a reported run's result, listing triggers; a run of one
// page has no page fields.
func PageData(r *dirstate.Run, n int, triggers []dirstate.Trigger) Data {
	d := ResultData(r)
	d.Triggers = make([]Trigger, len(triggers))
	for i, t := range triggers {
		d.Triggers[i] = Trigger{ID: t.ID, Source: t.Source, Type: t.Type, Group: t.Group, User: t.User}
	}
	if r.Pages > 1 {
		d.Page, d.Pages, d.TriggerCount = n, r.Pages, r.Count
	}
	return d
}

// ResultData builds the result data of a reported run, without its triggers (PageData lists
// them). A run that never reached vIDM counts from when it was created.
func ResultData(r *dirstate.Run) Data {
	o := r.Outcome
	started := r.StartedAt
	if started.IsZero() {
		started = r.CreatedAt
	}
	d := Data{
		Tenant: r.Tenant, DirectoryID: r.DirectoryID, DirectoryName: r.DirectoryName, RunID: r.RunID,
		StartedAt: started.UTC(), FinishedAt: o.FinishedAt.UTC(),
		DurationMs: max(0, o.FinishedAt.Sub(started).Milliseconds()),
		Status:     o.Status,
		Triggers:   []Trigger{},
	}
	if o.Status == StatusFailed {
		d.Error = &Error{Code: o.ErrCode, Message: o.ErrMessage, Retryable: o.Retryable}
	}
	d.Connector, d.Attempts = o.Connector, o.Attempts
	if dl := o.Delegation; dl != nil {
		// The provider's strings come from the backend: bounded and cleaned to the schema.
		d.Delegation = &Delegation{Kind: dl.Kind, ProviderID: safetext.Clean(dl.ProviderID, maxProviderIDLen),
			Provider: safetext.Clean(dl.ProviderName, maxProviderLen), Source: safetext.Clean(dl.Source, maxSourceLen),
			Message: safetext.Clean(dl.Message, maxDelegationMessageLen)}
		if !dl.TokenExpiresAt.IsZero() {
			t := dl.TokenExpiresAt.UTC()
			d.Delegation.TokenExpiresAt = &t
		}
	}
	return d
}
