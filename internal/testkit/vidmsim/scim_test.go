package vidmsim_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

const (
	pathGroups = "/SAAS/jersey/manager/api/scim/Groups"
	pathUsers  = "/SAAS/jersey/manager/api/scim/Users"
)

type scimList struct {
	TotalResults int `json:"totalResults"`
	ItemsPerPage int `json:"itemsPerPage"`
	StartIndex   int `json:"startIndex"`
	Resources    []struct {
		ID          string `json:"id"`
		DisplayName string `json:"displayName"`
		UserName    string `json:"userName"`
		Workspace   struct {
			Domain string `json:"domain"`
		} `json:"urn:scim:schemas:extension:workspace:1.0"`
	} `json:"Resources"`
}

func (e *env) scim(tok, p string, q url.Values) response {
	e.t.Helper()
	return e.do(http.MethodGet, p+"?"+q.Encode(), "", "Authorization", "Bearer "+tok, "Accept", "application/json")
}

func (e *env) scimList(tok, p string, q url.Values) scimList {
	e.t.Helper()
	r := e.scim(tok, p, q)
	if r.status != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", p, r.status, r.body)
	}
	var l scimList
	mustUnmarshal(e.t, r.body, &l)
	return l
}

// completeSync starts a sync of the directory and lets it complete.
func (e *env) completeSync(tok, id string) {
	e.t.Helper()
	if r := e.startSync(tok, id, false); r.status != http.StatusOK {
		e.t.Fatalf("start sync: %d %s", r.status, r.body)
	}
	e.clock.Advance(11 * time.Second)
	if st := e.syncStatus(tok, id); st.Status != vidmsim.StatusCompleted {
		e.t.Fatalf("sync status = %s", st.Status)
	}
}

func filterOf(attr string, names ...string) url.Values {
	terms := make([]string, len(names))
	for i, n := range names {
		terms[i] = attr + ` eq "` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(n) + `"`
	}
	return url.Values{"filter": {strings.Join(terms, " or ")}}
}

func TestSCIMStrictness(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	good := filterOf("displayName", "sales").Encode()
	tests := []struct {
		name, method, path, accept, auth string
		wantStatus                       int
	}{
		{"wrong method", http.MethodPost, pathGroups + "?" + good, "application/json", "Bearer " + tok, 405},
		{"no token", http.MethodGet, pathGroups + "?" + good, "application/json", "", 401},
		{"vendor media type only", http.MethodGet, pathGroups + "?" + good, mediaV1, "Bearer " + tok, 406},
		{"no filter", http.MethodGet, pathUsers, "application/json", "Bearer " + tok, 400},
		{"unknown parameter", http.MethodGet, pathGroups + "?" + good + "&sortBy=displayName", "application/json", "Bearer " + tok, 400},
		{"users by displayName", http.MethodGet, pathUsers + "?" + good, "application/json", "Bearer " + tok, 400},
		{"co operator", http.MethodGet, pathGroups + "?filter=" + url.QueryEscape(`displayName co "s"`), "application/json", "Bearer " + tok, 400},
		{"and", http.MethodGet, pathGroups + "?filter=" + url.QueryEscape(`displayName eq "a" and displayName eq "b"`), "application/json", "Bearer " + tok, 400},
		{"unclosed parenthesis", http.MethodGet, pathGroups + "?filter=" + url.QueryEscape(`(displayName eq "a"`), "application/json", "Bearer " + tok, 400},
		{"and of names", http.MethodGet, pathGroups + "?filter=" + url.QueryEscape(`(displayName eq "a") and (displayName eq "b")`), "application/json", "Bearer " + tok, 400},
		{"names narrowed to domains", http.MethodGet, pathGroups + "?filter=" + url.QueryEscape(`(displayName eq "a" or displayName eq "b") and (`+vidmsim.SCIMDomainAttr+` eq "corp.example.com")`), "application/json", "Bearer " + tok, 200},
		{"unterminated", http.MethodGet, pathGroups + "?filter=" + url.QueryEscape(`displayName eq "a`), "application/json", "Bearer " + tok, 400},
		{"startIndex 0", http.MethodGet, pathGroups + "?" + good + "&startIndex=0", "application/json", "Bearer " + tok, 400},
		{"count twice", http.MethodGet, pathGroups + "?" + good + "&count=1&count=2", "application/json", "Bearer " + tok, 400},
		{"ok", http.MethodGet, pathGroups + "?" + good + "&startIndex=1&count=5", "application/json", "Bearer " + tok, 200},
		{"operators any case", http.MethodGet, pathGroups + "?filter=" + url.QueryEscape(`DISPLAYNAME EQ "a" OR displayname eq "b"`), "application/json", "Bearer " + tok, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := []string{"Accept", tc.accept}
			if tc.auth != "" {
				h = append(h, "Authorization", tc.auth)
			}
			r := e.do(tc.method, tc.path, "", h...)
			if r.status != tc.wantStatus {
				t.Fatalf("status = %d, want %d: %s", r.status, tc.wantStatus, r.body)
			}
			if tc.wantStatus == 400 && !strings.Contains(string(r.body), `"scimType":"invalidFilter"`) {
				t.Errorf("400 body is not SCIM's error: %s", r.body)
			}
		})
	}
	t.Run("expired token", func(t *testing.T) {
		e.sim.ExpireTokens()
		if r := e.scim(tok, pathGroups, filterOf("displayName", "sales")); r.status != 401 || r.errorCode() != "auth.token.expired" {
			t.Fatalf("status = %d %s", r.status, r.body)
		}
	})
}

func TestSCIMVisibility(t *testing.T) {
	e := newEnv(t, func(c *vidmsim.Config) {
		c.Directories[0].OutOfScope = []string{"ext-*"}
		c.Directories[0].Domains = []string{"corp.example.com", "corp.local"}
	})
	tok := e.token()
	q := filterOf("displayName", "sales", "EXT-partners")
	if l := e.scimList(tok, pathGroups, q); l.TotalResults != 0 {
		t.Fatalf("before any sync: %+v", l)
	}
	e.completeSync(tok, corpID)
	l := e.scimList(tok, pathGroups, q)
	if l.TotalResults != 1 || l.Resources[0].DisplayName != "sales" || l.Resources[0].Workspace.Domain != "corp.example.com" {
		t.Fatalf("after a sync: %+v (out-of-scope ext-partners must stay hidden)", l)
	}
	salesID := l.Resources[0].ID
	if again := e.scimList(tok, pathGroups, q); again.Resources[0].ID != salesID {
		t.Fatal("ids are not stable")
	}

	// Created after the sync: invisible until a sync that starts after it completes.
	if err := e.sim.AddPrincipal(corpID, vidmsim.KindGroup, "new-team", "corp.local", true); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.AddPrincipal(corpID, vidmsim.KindGroup, "hidden-team", "corp.local", false); err != nil {
		t.Fatal(err)
	}
	q = filterOf("displayName", "new-team", "hidden-team")
	if l := e.scimList(tok, pathGroups, q); l.TotalResults != 0 {
		t.Fatalf("before the next sync: %+v", l)
	}
	if r := e.startSync(tok, corpID, false); r.status != 200 {
		t.Fatal(r.status)
	}
	if l := e.scimList(tok, pathGroups, q); l.TotalResults != 0 {
		t.Fatalf("while the sync runs: %+v", l)
	}
	e.clock.Advance(11 * time.Second)
	l = e.scimList(tok, pathGroups, q)
	if l.TotalResults != 1 || l.Resources[0].DisplayName != "new-team" || l.Resources[0].Workspace.Domain != "corp.local" {
		t.Fatalf("after the next sync: %+v", l)
	}
	// Users: the same model, by userName; name@domain finds the user of that domain.
	ul := e.scimList(tok, pathUsers, filterOf("userName", "jdoe", "jdoe@corp.example.com"))
	if ul.TotalResults != 1 || ul.Resources[0].UserName != "jdoe" {
		t.Fatalf("users: %+v", ul)
	}
}

func TestSCIMDomainsAndPaging(t *testing.T) {
	e := newEnv(t, func(c *vidmsim.Config) {
		c.SCIMMaxCount = 2
		c.Directories[0].Domains = []string{"corp.example.com", "corp.local"}
		c.Directories[0].Principals = []vidmsim.ADPrincipal{
			{Kind: vidmsim.KindGroup, Name: "ops", Domain: "corp.example.com"},
			{Kind: vidmsim.KindGroup, Name: "ops", Domain: "corp.local"},
		}
	})
	tok := e.token()
	e.completeSync(tok, corpID)
	e.completeSync(tok, "dir-emea-ad")
	// ops: two in Corp AD (one per domain) and the default one in EMEA AD.
	var ids []string
	for start := 1; ; start += 2 {
		q := filterOf("displayName", "ops")
		q.Set("startIndex", strconv.Itoa(start))
		q.Set("count", "50") // capped at 2
		l := e.scimList(tok, pathGroups, q)
		if l.TotalResults != 3 || l.StartIndex != start {
			t.Fatalf("page %d: %+v", start, l)
		}
		for _, r := range l.Resources {
			ids = append(ids, r.Workspace.Domain+"/"+r.ID)
		}
		if len(l.Resources) == 0 || start+len(l.Resources) > l.TotalResults {
			break
		}
	}
	if len(ids) != 3 || !strings.HasPrefix(ids[0], "corp.example.com/") || !strings.HasPrefix(ids[1], "corp.local/") ||
		!strings.HasPrefix(ids[2], "emea.example.com/") {
		t.Fatalf("pages = %q", ids)
	}
	// A quote and a backslash in a name stay inside the string (EMEA AD has its default one too).
	if err := e.sim.AddPrincipal(corpID, vidmsim.KindGroup, `q"uo\te`, "", true); err != nil {
		t.Fatal(err)
	}
	e.completeSync(tok, corpID)
	if l := e.scimList(tok, pathGroups, filterOf("displayName", `q"uo\te`)); l.TotalResults != 2 || l.Resources[0].DisplayName != `q"uo\te` || l.Resources[0].Workspace.Domain != "corp.example.com" {
		t.Fatalf("escaped name: %+v", l)
	}
}

func TestSCIMFaults(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	e.sim.SetFault(vidmsim.EndpointSCIMUsers, vidmsim.Fault{Status: http.StatusServiceUnavailable, RetryAfter: time.Second, Times: 1})
	r := e.scim(tok, pathUsers, filterOf("userName", "jdoe"))
	if r.status != 503 || r.header.Get("Retry-After") != "1" {
		t.Fatalf("faulted: %d %v", r.status, r.header)
	}
	if r := e.scim(tok, pathUsers, filterOf("userName", "jdoe")); r.status != 200 {
		t.Fatalf("after the fault: %d", r.status)
	}
	if n := e.sim.Requests(vidmsim.EndpointSCIMUsers); n != 2 {
		t.Fatalf("requests = %d", n)
	}
	if n := e.sim.RequestsByStatus(vidmsim.EndpointSCIMUsers)[503]; n != 1 {
		t.Fatalf("503s = %d", n)
	}
}

func TestAddPrincipalRefusals(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		dir, kind, name, domain string
	}{
		{"nope", "group", "a", ""}, {corpID, "role", "a", ""}, {corpID, "group", " ", ""}, {corpID, "group", "a", "other.example.com"},
	} {
		if err := e.sim.AddPrincipal(tc.dir, vidmsim.PrincipalKind(tc.kind), tc.name, tc.domain, true); err == nil {
			t.Errorf("AddPrincipal(%+v) succeeded", tc)
		}
	}
	bad := vidmsim.ExampleConfig()
	bad.Directories[0].OutOfScope = []string{"["}
	if _, err := vidmsim.New(bad); err == nil {
		t.Error("a bad glob pattern was accepted")
	}
}
