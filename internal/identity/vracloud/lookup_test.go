package vracloud_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// vRA Cloud looks principals up through its connector's SCIM API, as vIDM does.
func TestLookupPrincipals(t *testing.T) {
	e := newCloudEnv(t)
	ctx := context.Background()
	dir, err := e.client.ResolveDirectory(ctx, "EMEA AD")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.sim.StartForeignSync(dir.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Second)
	ps := []backend.Principal{
		{Kind: backend.PrincipalGroup, Name: "sales"},
		{Kind: backend.PrincipalUser, Name: "jdoe@emea.example.com"},
		{Kind: backend.PrincipalGroup, Name: "sales", Domain: "corp.example.com"},
	}
	got, err := e.client.LookupPrincipals(ctx, dir, ps)
	want := []backend.Found{
		{Visibility: backend.Visible, ID: vidmsim.PrincipalID(dir.ID, vidmsim.KindGroup, "emea.example.com", "sales")},
		{Visibility: backend.Visible, ID: vidmsim.PrincipalID(dir.ID, vidmsim.KindUser, "emea.example.com", "jdoe")},
		{Visibility: backend.NotFound},
	}
	if err != nil || len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}

	e.sim.SetFault(vidmsim.EndpointSCIMUsers, vidmsim.Fault{Status: http.StatusBadGateway})
	got, err = e.client.LookupPrincipals(ctx, dir, ps)
	if !httpcore.IsRetryable(err) || errors.Is(err, backend.ErrLookupUnsupported) {
		t.Fatalf("err = %v, want retryable", err)
	}
	if got[0] != want[0] || got[1].Visibility != backend.Unknown || got[2] != want[2] {
		t.Fatalf("with users failing: %+v", got)
	}
}
