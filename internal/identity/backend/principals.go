package backend

import (
	"context"
	"errors"
)

// PrincipalKind is what a trigger names: a group or a user.
type PrincipalKind string

const (
	PrincipalGroup PrincipalKind = "group"
	PrincipalUser  PrincipalKind = "user"
)

// Principal is a group or user to look up in a directory's identity store after its sync.
type Principal struct {
	Kind PrincipalKind
	// Name is the group's name, or the user's name or UPN, as the trigger gave it.
	Name string
	// Domain is the AD domain the trigger named; "" means any of the directory's domains. It
	// tells apart principals whose names repeat across domains.
	Domain string
}

// Visibility is what a lookup found out about one principal.
type Visibility string

const (
	// Visible: the identity store has the principal; Found.ID is its id there.
	Visible Visibility = "VISIBLE"
	// NotFound: the store answered and does not have it.
	NotFound Visibility = "NOT_FOUND"
	// Unknown: the lookup failed (the error returned with the answer says why).
	Unknown Visibility = "UNKNOWN"
)

// Found is the answer for one principal.
type Found struct {
	Visibility Visibility
	ID         string // the store's id of the principal (vIDM's SCIM id) when Visible
}

// MaxPrincipalID bounds an id a lookup may return: a longer one is refused as a bad answer, so
// that a result event's size stays bounded whatever the store sends.
const MaxPrincipalID = 200

// PrincipalLookup is implemented by backends that can look principals up in a directory's
// identity store (vIDM and vRA Cloud over SCIM, vRA 7's identity service). Backends without it,
// or whose answer wraps ErrLookupUnsupported, cannot tell whether a principal arrived.
type PrincipalLookup interface {
	// LookupPrincipals answers one Found per principal, in order, batching the requests. A
	// non-nil error means some lookups failed after the client's retries: those principals are
	// Unknown, the others are answered. The error is classified like every other (IsRetryable).
	LookupPrincipals(ctx context.Context, dir Directory, ps []Principal) ([]Found, error)
}

// ErrLookupUnsupported: the backend cannot look principals up (VCF's delegated identity sources).
var ErrLookupUnsupported = errors.New("principal lookup is not supported by this backend")
