package vra7

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

// vRA 7 reads each principal by name@domain; a 404 is NotFound, a failure Unknown.
func TestLookupPrincipals(t *testing.T) {
	e := newVRA7Env(t, true, func(s *vidmsim.Config, _ *httpcore.Config) {
		s.Directories[0].OutOfScope = []string{"ext-*"}
		s.Directories[0].Principals = []vidmsim.ADPrincipal{
			{Kind: vidmsim.KindGroup, Name: "ops", Domain: vra7Corp}, {Kind: vidmsim.KindGroup, Name: "ops", Domain: "corp.local"},
		}
	})
	ctx := context.Background()
	dir, err := e.client.ResolveDirectory(ctx, vra7Corp)
	if err != nil {
		t.Fatal(err)
	}
	dir.Domains = []string{vra7Corp, "corp.local"} // as a store with an alias would be asked
	if err := e.sim.StartForeignSync("dir-corp", time.Second); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Second)
	g := func(name, domain string) backend.Principal {
		return backend.Principal{Kind: backend.PrincipalGroup, Name: name, Domain: domain}
	}
	tests := []struct {
		name string
		p    backend.Principal
		want backend.Found
	}{
		{"group", g("sales", ""), backend.Found{Visibility: backend.Visible, ID: "sales@" + vra7Corp}},
		{"group, domain named", g("ops", "corp.local"), backend.Found{Visibility: backend.Visible, ID: "ops@corp.local"}},
		{"out of scope", g("ext-partners", ""), backend.Found{Visibility: backend.NotFound}},
		{"other directory's domain", g("sales", "emea.example.com"), backend.Found{Visibility: backend.NotFound}},
		{"user as UPN", backend.Principal{Kind: backend.PrincipalUser, Name: "jdoe@" + vra7Corp}, backend.Found{Visibility: backend.Visible, ID: "jdoe@" + vra7Corp}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.client.LookupPrincipals(ctx, dir, []backend.Principal{tc.p})
			if err != nil || got[0] != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	t.Run("ambiguous", func(t *testing.T) {
		got, err := e.client.LookupPrincipals(ctx, dir, []backend.Principal{g("ops", "")})
		if !errors.Is(err, httpcore.ErrAmbiguousPrincipal) || got[0].Visibility != backend.Unknown {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	t.Run("one request per principal and domain, repeats once", func(t *testing.T) {
		before := e.sim.Requests(vidmsim.EndpointVRA7Group)
		if _, err := e.client.LookupPrincipals(ctx, dir, []backend.Principal{g("a", ""), g("A", ""), g("b", vra7Corp)}); err != nil {
			t.Fatal(err)
		}
		if n := e.sim.Requests(vidmsim.EndpointVRA7Group) - before; n != 3 {
			t.Fatalf("requests = %d, want 3 (a in two domains, b in one)", n)
		}
	})
	t.Run("503", func(t *testing.T) {
		e.sim.SetFault(vidmsim.EndpointVRA7Principal, vidmsim.Fault{Status: http.StatusServiceUnavailable})
		defer e.sim.ClearFaults()
		got, err := e.client.LookupPrincipals(ctx, dir, []backend.Principal{g("sales", ""),
			{Kind: backend.PrincipalUser, Name: "jdoe@" + vra7Corp}})
		if !httpcore.IsRetryable(err) || got[0].Visibility != backend.Visible || got[1].Visibility != backend.Unknown {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
}
