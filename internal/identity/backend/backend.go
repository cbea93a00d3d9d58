// Package backend is the vocabulary the worker shares with every identity system it can sync:
// vIDM (Workspace ONE Access), vRA Cloud through its connector, vRA 7.x's identity service and
// VCF's identity broker. The coalescing engine, intake and the operator surfaces depend on this
// package only; httpcore's Client implements it for each kind, with one package per identity
// system (vidm, vracloud, vra7, vcf) and package systems choosing by Kind.
package backend

import (
	"context"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
)

// Kind names an identity system.
type Kind string

const (
	KindVIDM     Kind = "vidm"      // VMware Identity Manager / Workspace ONE Access
	KindVRA7     Kind = "vra7"      // vRA 7.4+ identity service
	KindVRACloud Kind = "vra-cloud" // vRA Cloud with an on-premises vIDM connector
	KindVCF      Kind = "vcf"       // VMware Cloud Foundation identity broker (SDDC Manager)
)

// Backend is what the worker needs of an identity system. Implementations are safe for concurrent
// use and classify every failure as retryable or permanent (IsRetryable).
type Backend interface {
	// ResolveDirectory finds the directory a trigger names: its name or one of its domains.
	ResolveDirectory(ctx context.Context, ref string) (Directory, error)
	// SyncStatus reads the state of the directory's current or latest sync.
	SyncStatus(ctx context.Context, directoryID string) (SyncState, error)
	// StartSync starts a sync; one already running is an error wrapping ErrSyncInProgress.
	StartSync(ctx context.Context, directoryID string, ignoreSafeguards bool) error
	// Describe says what the backend is and what it supports.
	Describe() Description
}

// Description is what a backend is and can do, for logs, the status page and the README's table.
type Description struct {
	Kind    Kind   `json:"kind"`
	BaseURL string `json:"baseUrl"`
	// Safeguards: StartSync honours ignoreSafeguards.
	Safeguards bool `json:"safeguards"`
	// Connectors: directories and syncs report their sync connectors.
	Connectors bool `json:"connectors"`
	// Delegation: some directories are kept current by the identity provider itself (SCIM push,
	// live LDAP lookups); their sync status is DELEGATED and nothing is started.
	Delegation bool `json:"delegation"`
}

// Directory is one directory (identity source) of a backend.
type Directory struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Type    string   `json:"type,omitempty"`
	Domains []string `json:"domains,omitempty"`
	// SyncDisabled: the backend says explicitly that the directory's sync is turned off (vIDM's
	// syncConfigurationEnabled: false). A directory that does not say is not disabled.
	SyncDisabled bool `json:"syncDisabled,omitempty"`
	// Connectors are the directory's sync connectors in failover order, when the backend says.
	Connectors []string `json:"connectors,omitempty"`
}

// Status is a directory sync's state, normalised from whatever the backend reports.
type Status string

const (
	StatusRunning   Status = "RUNNING"
	StatusCompleted Status = "COMPLETED"
	StatusFailed    Status = "FAILED"
	// StatusUndefined: no sync is reported (none has run, or vRA's UNDEFINED).
	StatusUndefined Status = "UNDEFINED"
	// StatusUnknown: a value this client does not know; SyncState.Raw keeps it.
	StatusUnknown Status = "UNKNOWN"
	// StatusDelegated: the identity provider keeps the directory current by itself; there is no
	// sync to start (SyncState.Delegation says who).
	StatusDelegated Status = "DELEGATED"
)

// Terminal reports whether a sync in this status has finished.
func (s Status) Terminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusDelegated
}

// SyncState is what one poll of a directory's sync returned.
type SyncState struct {
	Status     Status
	Raw        string    // the status string as the backend sent it
	Message    string    // the backend's message or error details, if any
	StartedAt  time.Time // zero when not reported
	FinishedAt time.Time // zero when not reported or still running
	Progress   int       // percent, -1 when not reported
	Connector  string    // the connector that ran the sync, when reported
	// Attempts lists the connectors tried in failover order when the sync moved from one to the
	// next; empty when it ran on one connector (or the backend does not say).
	Attempts []contract.Attempt
	// Delegation is set with StatusDelegated.
	Delegation *Delegation
}

// Delegation kinds.
const (
	// DelegationSCIM: the external IdP (Okta, Entra ID) pushes users and groups through a SCIM
	// sync client, with a token that expires.
	DelegationSCIM = "SCIM"
	// DelegationLDAP: the identity source reads users and groups from AD/LDAP when asked.
	DelegationLDAP = "LDAP"
)

// Delegation says who keeps a directory current when the worker cannot start a sync.
type Delegation struct {
	Kind         string `json:"kind"`
	ProviderID   string `json:"providerId,omitempty"`
	ProviderName string `json:"provider,omitempty"`
	Source       string `json:"source,omitempty"` // OKTA, MICROSOFT_ENTRA_ID, ActiveDirectory…
	// TokenExpiresAt is when the SCIM sync client's token expires; zero when unknown or not SCIM.
	TokenExpiresAt time.Time `json:"tokenExpiresAt,omitzero"`
	Message        string    `json:"message,omitempty"`
}

// SyncClientToken is what a VCF identity broker says about an external IdP's SCIM sync-client
// token: never the token itself, only whose it is and when it expires.
type SyncClientToken struct {
	ProviderID   string    `json:"providerId"`
	ProviderName string    `json:"provider"`
	Source       string    `json:"source"` // OKTA, MICROSOFT_ENTRA_ID
	Domains      []string  `json:"domains,omitempty"`
	ExpiresAt    time.Time `json:"expiresAt"`
}
