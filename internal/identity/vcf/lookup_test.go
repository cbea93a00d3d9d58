package vcf

import (
	"context"
	"errors"
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
)

// VCF's broker delegates identities to the external IdP: there is nothing to ask, and the
// client says so instead of answering NotFound.
func TestLookupUnsupported(t *testing.T) {
	e := newVCFEnv(t)
	var lookup backend.PrincipalLookup = e.client
	ps := []backend.Principal{{Kind: backend.PrincipalGroup, Name: "sales"}, {Kind: backend.PrincipalUser, Name: "jdoe"}}
	got, err := lookup.LookupPrincipals(context.Background(), backend.Directory{ID: "p/s"}, ps)
	if !errors.Is(err, backend.ErrLookupUnsupported) || httpcore.IsRetryable(err) {
		t.Fatalf("err = %v, want a permanent ErrLookupUnsupported", err)
	}
	if len(got) != 2 || got[0].Visibility != backend.Unknown || got[1].Visibility != backend.Unknown {
		t.Fatalf("got %+v", got)
	}
	if n := e.sim.Logins(); n != 0 {
		t.Fatalf("logins = %d: nothing should be sent", n)
	}
}
