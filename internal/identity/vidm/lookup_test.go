package vidm_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/identitytest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// The readiness lookup against the simulator's SCIM API over HTTPS.

func corpDir(t *testing.T, e *simEnv) backend.Directory {
	t.Helper()
	d, err := e.client.ResolveDirectory(context.Background(), "Corp AD")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func group(name, domain string) backend.Principal {
	return backend.Principal{Kind: backend.PrincipalGroup, Name: name, Domain: domain}
}

func user(name, domain string) backend.Principal {
	return backend.Principal{Kind: backend.PrincipalUser, Name: name, Domain: domain}
}

func visible(id string) backend.Found { return backend.Found{Visibility: backend.Visible, ID: id} }

var notFound = backend.Found{Visibility: backend.NotFound}

func TestLookupPrincipals(t *testing.T) {
	e := newSimEnv(t, withSim(func(c *vidmsim.Config) { c.Directories[0].OutOfScope = []string{"ext-*"} }))
	dir := corpDir(t, e)
	ctx := context.Background()
	for _, p := range []struct{ name, domain string }{{"ops", "corp.example.com"}, {"ops", "corp.local"}, {`a "quoted" \ name`, ""}} {
		if err := e.sim.AddPrincipal("dir-corp", vidmsim.KindGroup, p.name, p.domain, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.sim.AddPrincipal("dir-corp", vidmsim.KindGroup, "in-ad-only", "", false); err != nil {
		t.Fatal(err)
	}
	if got, err := e.client.LookupPrincipals(ctx, dir, []backend.Principal{group("sales", "")}); err != nil || got[0] != notFound {
		t.Fatalf("before any sync: %+v, %v", got, err)
	}
	identitytest.CompleteSync(t, e.client, dir.ID)
	id := func(kind vidmsim.PrincipalKind, domain, name string) string {
		return vidmsim.PrincipalID("dir-corp", kind, domain, name)
	}
	tests := []struct {
		name string
		p    backend.Principal
		want backend.Found
	}{
		{"in scope", group("sales", ""), visible(id(vidmsim.KindGroup, "corp.example.com", "sales"))},
		{"in scope, domain named", group("Sales", "CORP.example.com"), visible(id(vidmsim.KindGroup, "corp.example.com", "sales"))},
		{"out of scope by pattern", group("ext-partners", ""), notFound},
		{"out of scope in AD", group("in-ad-only", ""), notFound},
		{"another directory's domain", group("sales", "emea.example.com"), notFound},
		{"first of two domains", group("ops", "corp.example.com"), visible(id(vidmsim.KindGroup, "corp.example.com", "ops"))},
		{"second of two domains", group("ops", "corp.local"), visible(id(vidmsim.KindGroup, "corp.local", "ops"))},
		{"quotes and backslash", group(`a "quoted" \ name`, ""), visible(id(vidmsim.KindGroup, "corp.example.com", `a "quoted" \ name`))},
		{"user", user("jdoe", ""), visible(id(vidmsim.KindUser, "corp.example.com", "jdoe"))},
		{"user as UPN", user("jdoe@corp.example.com", ""), visible(id(vidmsim.KindUser, "corp.example.com", "jdoe"))},
		{"user as UPN of another directory", user("jdoe@emea.example.com", ""), notFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.client.LookupPrincipals(ctx, dir, []backend.Principal{tc.p})
			if err != nil || len(got) != 1 || got[0] != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	t.Run("unqualified name in two domains", func(t *testing.T) {
		got, err := e.client.LookupPrincipals(ctx, dir, []backend.Principal{group("ops", ""), group("sales", "")})
		if !errors.Is(err, httpcore.ErrAmbiguousPrincipal) || httpcore.IsRetryable(err) {
			t.Fatalf("err = %v, want a permanent ErrAmbiguousPrincipal", err)
		}
		if got[0].Visibility != backend.Unknown || got[1].Visibility != backend.Visible {
			t.Fatalf("got %+v", got)
		}
	})
}

func TestLookupBatchesAndPages(t *testing.T) {
	e := newSimEnv(t, withSim(func(c *vidmsim.Config) { c.SCIMMaxCount = 7 }))
	dir := corpDir(t, e)
	identitytest.CompleteSync(t, e.client, dir.ID)
	var ps []backend.Principal
	for i := range 200 {
		ps = append(ps, group(fmt.Sprintf("team-%03d", i), ""))
	}
	ps = append(ps, ps[0], group("TEAM-001", "")) // repeats cost nothing
	got, err := e.client.LookupPrincipals(context.Background(), dir, ps)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range got {
		want := vidmsim.PrincipalID("dir-corp", vidmsim.KindGroup, "corp.example.com", fmt.Sprintf("team-%03d", i%200))
		if i == 201 {
			want = vidmsim.PrincipalID("dir-corp", vidmsim.KindGroup, "corp.example.com", "team-001")
		}
		if f != visible(want) {
			t.Fatalf("principal %d: %+v", i, f)
		}
	}
	// 4 batches of 50 names; each matches 50 groups in Corp AD plus 50 in EMEA AD (unsynced:
	// hidden), so 50 results in pages of 7: 8 pages each.
	if n := e.sim.Requests(vidmsim.EndpointSCIMGroups); n != 32 {
		t.Fatalf("SCIM requests = %d, want 32 (4 batches × 8 pages)", n)
	}
}

func TestLookupFewRequests(t *testing.T) {
	e := newSimEnv(t)
	dir := corpDir(t, e)
	identitytest.CompleteSync(t, e.client, dir.ID)
	var ps []backend.Principal
	for i := range 200 {
		ps = append(ps, group(fmt.Sprintf("g%d", i), ""))
	}
	if _, err := e.client.LookupPrincipals(context.Background(), dir, ps); err != nil {
		t.Fatal(err)
	}
	if n := e.sim.Requests(vidmsim.EndpointSCIMGroups); n > 4 {
		t.Fatalf("SCIM requests = %d, want at most 4 (50 names a request)", n)
	}
	if n := e.sim.Requests(vidmsim.EndpointSCIMUsers); n != 0 {
		t.Fatalf("users asked without users: %d", n)
	}
}

// A name common to every directory of a large shop is narrowed to the directory's domains in the
// request itself, so the answer does not page through every domain; a server that refuses the
// domain condition (400) is asked again by name only.
func TestLookupNarrowsToTheDirectorysDomains(t *testing.T) {
	e := newSimEnv(t, withSim(func(c *vidmsim.Config) {
		for i := range 300 {
			c.Directories = append(c.Directories, vidmsim.Directory{ID: fmt.Sprintf("dir-%03d", i), Name: fmt.Sprintf("Dir %03d", i),
				Domains: []string{fmt.Sprintf("d%03d.example.com", i)}})
		}
	}))
	for i := range 300 {
		identitytest.CompleteSync(t, e.client, fmt.Sprintf("dir-%03d", i))
	}
	dir := corpDir(t, e)
	identitytest.CompleteSync(t, e.client, dir.ID)
	ctx := context.Background()
	want := visible(vidmsim.PrincipalID("dir-corp", vidmsim.KindGroup, "corp.example.com", "Domain Admins"))
	got, err := e.client.LookupPrincipals(ctx, dir, []backend.Principal{group("Domain Admins", "")})
	if err != nil || got[0] != want || e.sim.Requests(vidmsim.EndpointSCIMGroups) != 1 {
		t.Fatalf("%+v, %v after %d requests; want %+v in one request", got, err, e.sim.Requests(vidmsim.EndpointSCIMGroups), want)
	}
	e.sim.SetFault(vidmsim.EndpointSCIMGroups, vidmsim.Fault{Status: http.StatusBadRequest, Times: 1})
	got, err = e.client.LookupPrincipals(ctx, dir, []backend.Principal{group("Domain Admins", "")})
	if err != nil || got[0] != want {
		t.Fatalf("after a refused domain condition: %+v, %v; want %+v by name only", got, err, want)
	}
}

func TestLookupFailures(t *testing.T) {
	e := newSimEnv(t)
	dir := corpDir(t, e)
	identitytest.CompleteSync(t, e.client, dir.ID)
	ctx := context.Background()
	ps := []backend.Principal{group("sales", ""), user("jdoe", "")}

	t.Run("503 on groups", func(t *testing.T) {
		e.sim.SetFault(vidmsim.EndpointSCIMGroups, vidmsim.Fault{Status: http.StatusServiceUnavailable})
		defer e.sim.ClearFaults()
		before := e.sim.Requests(vidmsim.EndpointSCIMGroups)
		got, err := e.client.LookupPrincipals(ctx, dir, ps)
		if err == nil || !httpcore.IsRetryable(err) {
			t.Fatalf("err = %v, want retryable", err)
		}
		if got[0].Visibility != backend.Unknown || got[1].Visibility != backend.Visible {
			t.Fatalf("got %+v: only the failed batch is Unknown", got)
		}
		if n := e.sim.Requests(vidmsim.EndpointSCIMGroups) - before; n != e.cfg.Retry.MaxAttempts {
			t.Fatalf("attempts = %d, want %d", n, e.cfg.Retry.MaxAttempts)
		}
	})
	t.Run("401 logs in again once", func(t *testing.T) {
		e.sim.SetFault(vidmsim.EndpointSCIMUsers, vidmsim.Fault{Status: http.StatusUnauthorized, Times: 1})
		logins := e.sim.Logins()
		got, err := e.client.LookupPrincipals(ctx, dir, ps)
		if err != nil || got[0].Visibility != backend.Visible || got[1].Visibility != backend.Visible {
			t.Fatalf("got %+v, %v", got, err)
		}
		if n := e.sim.Logins() - logins; n != 1 {
			t.Fatalf("logins = %d, want 1", n)
		}
	})
	t.Run("expired token", func(t *testing.T) {
		e.sim.ExpireTokens()
		if got, err := e.client.LookupPrincipals(ctx, dir, ps); err != nil || got[0].Visibility != backend.Visible {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
	t.Run("nothing to look up", func(t *testing.T) {
		if got, err := e.client.LookupPrincipals(ctx, dir, nil); err != nil || len(got) != 0 {
			t.Fatalf("got %+v, %v", got, err)
		}
	})
}
