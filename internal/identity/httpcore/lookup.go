package httpcore

import (
	"context"
	"errors"
	"fmt"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
)

// PrincipalFinder is an API that can look principals up in a directory's identity store (vIDM
// and vRA Cloud over SCIM, vRA 7's principal reads). It sends its requests with c.Do and answers
// as backend.PrincipalLookup does: one Found per principal, in order.
type PrincipalFinder interface {
	LookupPrincipals(ctx context.Context, c *Client, dir backend.Directory, ps []backend.Principal) ([]backend.Found, error)
}

// EndpointLookup labels the lookup requests for the observer.
const EndpointLookup = "lookup"

// ErrAmbiguousPrincipal: a name without a domain matched principals in several of the directory's
// domains, so the answer cannot say which one the trigger meant (permanent: give the domain).
var ErrAmbiguousPrincipal = errors.New("principal name matches in several domains")

// LookupPrincipals implements backend.PrincipalLookup through the API's PrincipalFinder. An API
// without one (VCF, whose broker delegates to the external IdP) answers every principal Unknown
// with a permanent error wrapping backend.ErrLookupUnsupported.
func (c *Client) LookupPrincipals(ctx context.Context, dir backend.Directory, ps []backend.Principal) ([]backend.Found, error) {
	f, ok := c.api.(PrincipalFinder)
	if !ok {
		return UnknownAll(len(ps)), &Error{Op: "look up principals",
			Err: fmt.Errorf("%w: %s", backend.ErrLookupUnsupported, c.cfg.Kind)}
	}
	if len(ps) == 0 {
		return []backend.Found{}, nil
	}
	return f.LookupPrincipals(ctx, c, dir, ps)
}

// UnknownAll is n Unknown answers.
func UnknownAll(n int) []backend.Found {
	out := make([]backend.Found, n)
	for i := range out {
		out[i].Visibility = backend.Unknown
	}
	return out
}

// CheckPrincipalID refuses an id no store would send: empty or longer than backend.MaxPrincipalID
// (a result event must stay bounded whatever the store answers).
func CheckPrincipalID(op, id string) error {
	if id == "" || len(id) > backend.MaxPrincipalID {
		return RetryableError(op, fmt.Errorf("%w: principal id empty or longer than %d bytes", ErrInvalidResponse, backend.MaxPrincipalID))
	}
	return nil
}
