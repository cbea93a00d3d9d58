package vidmsim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

const (
	vra7Tenant   = "vsphere.local"
	vra7Tokens   = "/identity/api/tokens"
	vra7Dirs     = "/identity/api/tenants/" + vra7Tenant + "/directories"
	vra7Corp     = "corp.example.com" // ExampleConfig's Corp AD
	mediaJSONApp = "application/json"
)

func vra7Sync(domain string) string   { return vra7Dirs + "/" + domain + "/sync" }
func vra7Status(domain string) string { return vra7Dirs + "/" + domain + "/status" }

func newVRA7Env(t *testing.T, mutate func(*vidmsim.Config)) *env {
	t.Helper()
	return newEnv(t, func(c *vidmsim.Config) {
		c.Flavor = vidmsim.FlavorVRA7
		if mutate != nil {
			mutate(c)
		}
	})
}

func vra7LoginBody(user, pass, tenant string) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": pass, "tenant": tenant})
	return string(b)
}

// vra7Token logs in as ExampleConfig's user.
func vra7Token(e *env) string {
	e.t.Helper()
	r := e.do(http.MethodPost, vra7Tokens, vra7LoginBody(username, password, vra7Tenant),
		"Content-Type", mediaJSONApp, "Accept", mediaJSONApp)
	if r.status != http.StatusOK {
		e.t.Fatalf("vra7 login: %d %s", r.status, r.body)
	}
	var resp struct{ ID string }
	mustUnmarshal(e.t, r.body, &resp)
	return resp.ID
}

func vra7Auth(tok string) []string {
	return []string{"Authorization", "Bearer " + tok, "Accept", mediaJSONApp}
}

// vra7Code is the code of an error body as text: vRA's are numbers, the shared refusals (unknown
// path, method, media type, token) strings.
func vra7Code(r response) string {
	var e struct {
		Errors []struct{ Code json.RawMessage }
	}
	if json.Unmarshal(r.body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return strings.Trim(string(e.Errors[0].Code), `"`)
}

type vra7StatusBody struct {
	SyncStatus struct {
		Status        string  `json:"status"`
		Message       *string `json:"message"`
		SyncStartDate *int64  `json:"syncStartDate"`
		SyncEndDate   *int64  `json:"syncEndDate"`
	} `json:"syncStatus"`
}

func vra7StatusOf(e *env, tok, domain string) vra7StatusBody {
	e.t.Helper()
	r := e.do(http.MethodGet, vra7Status(domain), "", vra7Auth(tok)...)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), mediaJSONApp) {
		e.t.Fatalf("status of %s: %d %s %s", domain, r.status, r.header.Get("Content-Type"), r.body)
	}
	var st vra7StatusBody
	mustUnmarshal(e.t, r.body, &st)
	return st
}

func TestVRA7Login(t *testing.T) {
	good := vra7LoginBody(username, password, vra7Tenant)
	jsonHeaders := []string{"Content-Type", mediaJSONApp, "Accept", mediaJSONApp}
	tests := []struct {
		name    string
		method  string
		body    string
		headers []string
		status  int
		code    string
		allow   string
	}{
		{"good", "POST", good, jsonHeaders, 200, "", ""},
		{"charset and case", "POST", good, []string{"Content-Type", "Application/JSON; charset=UTF-8", "Accept", mediaJSONApp}, 200, "", ""},
		{"wrong password", "POST", vra7LoginBody(username, "wrong-"+password, vra7Tenant), jsonHeaders, 401, "90135", ""},
		{"unknown user", "POST", vra7LoginBody("nobody", password, vra7Tenant), jsonHeaders, 401, "90135", ""},
		{"unknown tenant", "POST", vra7LoginBody(username, password, "other.local"), jsonHeaders, 401, "90135", ""},
		{"tenant missing", "POST", `{"username":"sync-admin","password":"example-password"}`, jsonHeaders, 400, "90001", ""},
		{"unknown field", "POST", `{"username":"sync-admin","password":"example-password","tenant":"vsphere.local","issueToken":"true"}`, jsonHeaders, 400, "90001", ""},
		{"not an object", "POST", `[]`, jsonHeaders, 400, "90001", ""},
		{"trailing data", "POST", good + "{}", jsonHeaders, 400, "90001", ""},
		{"form content type", "POST", good, []string{"Content-Type", mediaForm, "Accept", mediaJSONApp}, 415, "http.media.unsupported", ""},
		{"content type missing", "POST", good, []string{"Accept", mediaJSONApp}, 415, "http.media.unsupported", ""},
		{"accept missing", "POST", good, []string{"Content-Type", mediaJSONApp}, 406, "http.media.not.acceptable", ""},
		{"accept */* only", "POST", good, []string{"Content-Type", mediaJSONApp, "Accept", "*/*"}, 406, "http.media.not.acceptable", ""},
		{"accept vIDM type", "POST", good, []string{"Content-Type", mediaJSONApp, "Accept", mediaV1}, 406, "http.media.not.acceptable", ""},
		{"GET", "GET", "", jsonHeaders, 405, "http.method.not.allowed", "POST"},
		{"DELETE", "DELETE", "", jsonHeaders, 405, "http.method.not.allowed", "POST"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newVRA7Env(t, nil)
			r := e.do(tc.method, vra7Tokens, tc.body, tc.headers...)
			if r.status != tc.status || vra7Code(r) != tc.code || r.header.Get("Allow") != tc.allow {
				t.Fatalf("answer %d code %q Allow %q (%s); want %d %q %q", r.status, vra7Code(r), r.header.Get("Allow"), r.body, tc.status, tc.code, tc.allow)
			}
			if strings.Contains(string(r.body), password) {
				t.Fatalf("the answer echoes the password: %s", r.body)
			}
			if tc.status != http.StatusOK {
				if e.sim.Logins() != 0 {
					t.Fatalf("a refused login issued a token")
				}
				return
			}
			var resp struct {
				Expires, ID, Tenant string
			}
			mustUnmarshal(t, r.body, &resp)
			if want := e.clock.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000Z"); resp.Expires != want {
				t.Errorf("expires = %q, want %q (now + TokenTTL)", resp.Expires, want)
			}
			if resp.ID == "" || resp.Tenant != vra7Tenant || e.sim.Logins() != 1 {
				t.Fatalf("login answer %s, logins %d", r.body, e.sim.Logins())
			}
			if st := e.do(http.MethodGet, vra7Dirs, "", vra7Auth(resp.ID)...); st.status != http.StatusOK {
				t.Fatalf("the issued token does not work: %d %s", st.status, st.body)
			}
		})
	}
}

// TestVRA7Strictness checks each refusal of the tenant-scoped endpoints and the order of the
// checks: path → method → auth → tenant → Accept → body → domain → logic.
func TestVRA7Strictness(t *testing.T) {
	auth := func(tok string) []string { return vra7Auth(tok) }
	accept := func(a string) func(string) []string {
		return func(tok string) []string { return []string{"Authorization", "Bearer " + tok, "Accept", a} }
	}
	none := func(string) []string { return []string{"Accept", mediaJSONApp} }
	tests := []struct {
		name    string
		method  string
		path    string
		body    string
		headers func(tok string) []string
		status  int
		code    string
		allow   string
	}{
		{"list", "GET", vra7Dirs, "", auth, 200, "", ""},
		{"status", "GET", vra7Status(vra7Corp), "", auth, 200, "", ""},
		{"start", "POST", vra7Sync(vra7Corp), "", auth, 204, "", ""},
		{"vIDM path in vra7 flavor", "GET", pathDirs, "", auth, 404, "http.not.found", ""},
		{"vIDM login in vra7 flavor", "POST", pathLogin, "", auth, 404, "http.not.found", ""},
		{"singular directory", "GET", "/identity/api/tenants/" + vra7Tenant + "/directory", "", auth, 404, "http.not.found", ""},
		{"trailing slash", "GET", vra7Dirs + "/", "", auth, 404, "http.not.found", ""},
		{"empty tenant", "GET", "/identity/api/tenants//directories", "", auth, 404, "http.not.found", ""},
		{"dot-dot tenant", "GET", "/identity/api/tenants/../directories", "", auth, 404, "http.not.found", ""},
		{"no tenants segment", "GET", "/identity/api/" + vra7Tenant + "/directories", "", auth, 404, "http.not.found", ""},
		{"single store", "GET", vra7Dirs + "/" + vra7Corp, "", auth, 404, "http.not.found", ""},
		{"vIDM sync suffix", "POST", vra7Dirs + "/" + vra7Corp + "/syncprofile/sync", "", auth, 404, "http.not.found", ""},
		{"dot-dot domain", "POST", vra7Sync(".."), "", auth, 404, "http.not.found", ""},
		{"POST list", "POST", vra7Dirs, "", auth, 405, "http.method.not.allowed", "GET"},
		{"GET sync", "GET", vra7Sync(vra7Corp), "", auth, 405, "http.method.not.allowed", "POST"},
		{"PUT sync", "PUT", vra7Sync(vra7Corp), "", auth, 405, "http.method.not.allowed", "POST"},
		{"POST status", "POST", vra7Status(vra7Corp), "", auth, 405, "http.method.not.allowed", "GET"},
		{"method before auth", "DELETE", vra7Status(vra7Corp), "", none, 405, "http.method.not.allowed", "GET"},
		{"no token", "GET", vra7Dirs, "", none, 401, "auth.required", ""},
		{"unknown token", "GET", vra7Status(vra7Corp), "", func(string) []string {
			return []string{"Authorization", "Bearer not-a-token", "Accept", mediaJSONApp}
		}, 401, "auth.token.invalid", ""},
		{"auth before tenant", "GET", "/identity/api/tenants/other.local/directories", "", none, 401, "auth.required", ""},
		{"wrong tenant list", "GET", "/identity/api/tenants/other.local/directories", "", auth, 404, "90002", ""},
		{"wrong tenant start", "POST", "/identity/api/tenants/other.local/directories/" + vra7Corp + "/sync", "", auth, 404, "90002", ""},
		{"tenant case matters", "GET", "/identity/api/tenants/VSPHERE.LOCAL/directories", "", auth, 404, "90002", ""},
		{"tenant before accept", "GET", "/identity/api/tenants/other.local/directories", "", accept("text/html"), 404, "90002", ""},
		{"accept missing", "GET", vra7Dirs, "", func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }, 406, "http.media.not.acceptable", ""},
		{"accept vIDM list type", "GET", vra7Dirs, "", accept(mediaList), 406, "http.media.not.acceptable", ""},
		{"accept */*", "GET", vra7Status(vra7Corp), "", accept("*/*"), 406, "http.media.not.acceptable", ""},
		{"accept q=0", "GET", vra7Status(vra7Corp), "", accept(mediaJSONApp + ";q=0"), 406, "http.media.not.acceptable", ""},
		{"accept list", "GET", vra7Status(vra7Corp), "", accept("text/html, application/json; charset=utf-8"), 200, "", ""},
		{"start accept vIDM type", "POST", vra7Sync(vra7Corp), "", accept(mediaV1), 406, "http.media.not.acceptable", ""},
		{"start with vIDM body", "POST", vra7Sync(vra7Corp), `{"ignoreSafeguards":true}`, auth, 400, "90001", ""},
		{"body before domain", "POST", vra7Sync("nowhere.example.com"), `{}`, auth, 400, "90001", ""},
		{"start unknown domain", "POST", vra7Sync("nowhere.example.com"), "", auth, 404, "90003", ""},
		{"status unknown domain", "GET", vra7Status("nowhere.example.com"), "", auth, 404, "90003", ""},
		{"domain is not the id", "GET", vra7Status("dir-corp-ad"), "", auth, 404, "90003", ""},
		{"domain is not the name", "GET", vra7Status("Corp%20AD"), "", auth, 404, "90003", ""},
		{"domain case matters", "GET", vra7Status("CORP.example.com"), "", auth, 404, "90003", ""},
		{"escaped slash stays in the domain", "GET", vra7Status("corp.example.com%2Fstatus"), "", auth, 404, "90003", ""},
		{"escaped domain", "GET", vra7Status("corp%2Eexample.com"), "", auth, 200, "", ""},
		{"empty domain", "GET", vra7Status(""), "", auth, 404, "http.not.found", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newVRA7Env(t, nil)
			r := e.do(tc.method, tc.path, tc.body, tc.headers(vra7Token(e))...)
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, tc.status, r.body)
			}
			if got := vra7Code(r); got != tc.code {
				t.Errorf("error code = %q, want %q (%s)", got, tc.code, r.body)
			}
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
			if tc.status >= 400 && !strings.HasPrefix(r.header.Get("Content-Type"), mediaJSONApp) {
				t.Errorf("error Content-Type = %q", r.header.Get("Content-Type"))
			}
			if tc.status == http.StatusNoContent && len(r.body) != 0 {
				t.Errorf("204 with a body: %q", r.body)
			}
			wantSyncs := 0
			if tc.status == http.StatusNoContent {
				wantSyncs = 1
			}
			if n := len(e.sim.SyncLog()); n != wantSyncs {
				t.Errorf("%d syncs started, want %d", n, wantSyncs)
			}
		})
	}
}

func TestVRA7TokenLifetime(t *testing.T) {
	tests := []struct {
		name string
		act  func(e *env)
		code string
	}{
		{"expired by TTL", func(e *env) { e.clock.Advance(time.Hour) }, "auth.token.expired"},
		{"ExpireTokens", func(e *env) { e.sim.ExpireTokens() }, "auth.token.expired"},
		{"RevokeTokens", func(e *env) { e.sim.RevokeTokens() }, "auth.token.revoked"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newVRA7Env(t, nil)
			tok := vra7Token(e)
			e.clock.Advance(time.Hour - time.Second)
			if r := e.do(http.MethodGet, vra7Status(vra7Corp), "", vra7Auth(tok)...); r.status != http.StatusOK {
				t.Fatalf("a second before expiry: %d %s", r.status, r.body)
			}
			e.clock.Advance(-(time.Hour - time.Second))
			tc.act(e)
			for _, p := range []struct{ method, path string }{
				{http.MethodGet, vra7Dirs}, {http.MethodPost, vra7Sync(vra7Corp)}, {http.MethodGet, vra7Status(vra7Corp)},
			} {
				r := e.do(p.method, p.path, "", vra7Auth(tok)...)
				if r.status != http.StatusUnauthorized || vra7Code(r) != tc.code || r.header.Get("WWW-Authenticate") == "" {
					t.Fatalf("%s %s after: %d %s, want 401 %s with WWW-Authenticate", p.method, p.path, r.status, r.body, tc.code)
				}
			}
			if n := len(e.sim.SyncLog()); n != 0 {
				t.Fatalf("a rejected token started %d syncs", n)
			}
			if r := e.do(http.MethodGet, vra7Dirs, "", vra7Auth(vra7Token(e))...); r.status != http.StatusOK {
				t.Fatalf("a fresh login does not work: %d %s", r.status, r.body)
			}
		})
	}
}

type vra7ListPage struct {
	Links   []any `json:"links"`
	Content []struct {
		Type   string `json:"@type"`
		Name   string `json:"name"`
		Domain string `json:"domain"`
		Kind   string `json:"type"`
		Alias  string `json:"alias"`
	} `json:"content"`
	Metadata struct {
		Size, TotalElements, TotalPages, Number, Offset int
	} `json:"metadata"`
}

func vra7ManyDirectories(n int) []vidmsim.Directory {
	dirs := make([]vidmsim.Directory, 0, n+2)
	for i := range n {
		d := vidmsim.Directory{ID: fmt.Sprintf("dir-%03d", i), Name: fmt.Sprintf("AD %03d", i),
			Domains: []string{fmt.Sprintf("d%03d.example.com", i)}}
		if i%10 == 3 {
			d.Type = vidmsim.TypeLocalDirectory
		}
		dirs = append(dirs, d)
	}
	// Neither is a vRA identity store: no domain, and a domain another directory already has.
	return append(dirs,
		vidmsim.Directory{ID: "dir-nodomain", Name: "No Domain", Type: vidmsim.TypeLocalDirectory},
		vidmsim.Directory{ID: "dir-dup", Name: "Duplicate", Domains: []string{"d000.example.com"}})
}

func TestVRA7DirectoryPaging(t *testing.T) {
	const n = 45
	e := newVRA7Env(t, func(c *vidmsim.Config) { c.Directories = vra7ManyDirectories(n) })
	tok := vra7Token(e)
	tests := []struct {
		query                      string
		status                     int
		entries, size, pages, page int
		first                      string
	}{
		{"", 200, 20, 20, 3, 1, "d000.example.com"},
		{"?page=2", 200, 20, 20, 3, 2, "d020.example.com"},
		{"?page=3&limit=20", 200, 5, 20, 3, 3, "d040.example.com"},
		{"?limit=45", 200, 45, 45, 1, 1, "d000.example.com"},
		{"?page=2&limit=44", 200, 1, 44, 2, 2, "d044.example.com"},
		{"?page=4&limit=20", 200, 0, 20, 3, 4, ""},
		{"?limit=500", 200, 45, 500, 1, 1, "d000.example.com"},
		{"?limit=501", 400, 0, 0, 0, 0, ""},
		{"?limit=0", 400, 0, 0, 0, 0, ""},
		{"?page=0", 400, 0, 0, 0, 0, ""},
		{"?page=-1", 400, 0, 0, 0, 0, ""},
		{"?page=one", 400, 0, 0, 0, 0, ""},
		{"?page=1&page=2", 400, 0, 0, 0, 0, ""},
		{"?size=10", 400, 0, 0, 0, 0, ""},
		{"?page=%zz", 400, 0, 0, 0, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			r := e.do(http.MethodGet, vra7Dirs+tc.query, "", vra7Auth(tok)...)
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status != http.StatusOK {
				if vra7Code(r) != "90001" {
					t.Fatalf("error body %s, want code 90001", r.body)
				}
				return
			}
			var p vra7ListPage
			mustUnmarshal(t, r.body, &p)
			m := p.Metadata
			if len(p.Content) != tc.entries || m.Size != tc.size || m.TotalPages != tc.pages || m.Number != tc.page ||
				m.TotalElements != n || m.Offset != (tc.page-1)*tc.size || p.Links == nil {
				t.Fatalf("page %s: %d entries, metadata %+v, links %v", tc.query, len(p.Content), m, p.Links)
			}
			if tc.entries > 0 && p.Content[0].Domain != tc.first {
				t.Fatalf("first entry %s, want %s", p.Content[0].Domain, tc.first)
			}
		})
	}

	// Read page by page, the list holds every domain once, in configuration order.
	var got []string
	for page := 1; ; page++ {
		r := e.do(http.MethodGet, fmt.Sprintf("%s?page=%d&limit=7", vra7Dirs, page), "", vra7Auth(tok)...)
		var p vra7ListPage
		mustUnmarshal(t, r.body, &p)
		for _, c := range p.Content {
			got = append(got, c.Domain)
			wantKind := "AD"
			if c.Domain[3] == '3' { // d..3: the LOCAL_DIRECTORY ones
				wantKind = "LDAP"
			}
			if c.Type != "IdentityStore" || c.Kind != wantKind || !strings.HasPrefix(c.Name, "AD ") {
				t.Errorf("entry %+v, want an IdentityStore of type %s", c, wantKind)
			}
		}
		if page >= p.Metadata.TotalPages {
			break
		}
	}
	if len(got) != n {
		t.Fatalf("%d stores over all pages, want %d: %v", len(got), n, got)
	}
	for i, d := range got {
		if want := fmt.Sprintf("d%03d.example.com", i); d != want {
			t.Fatalf("store %d is %s, want %s", i, d, want)
		}
	}
}

func TestVRA7StoreFields(t *testing.T) {
	e := newVRA7Env(t, func(c *vidmsim.Config) {
		c.Directories = []vidmsim.Directory{
			{ID: "dir-corp", Name: "Corp AD", Type: vidmsim.TypeActiveDirectoryIWA, Domains: []string{"corp.example.com", "corp.local"}},
			{ID: "dir-ldap", Name: "Open LDAP", Type: "OPEN_LDAP", Domains: []string{"ldap.example.com"}},
		}
	})
	r := e.do(http.MethodGet, vra7Dirs, "", vra7Auth(vra7Token(e))...)
	var p vra7ListPage
	mustUnmarshal(t, r.body, &p)
	if len(p.Content) != 2 {
		t.Fatalf("list %s", r.body)
	}
	corp, ldap := p.Content[0], p.Content[1]
	if corp.Name != "Corp AD" || corp.Domain != "corp.example.com" || corp.Alias != "corp.local" || corp.Kind != "AD" {
		t.Errorf("corp entry %+v", corp)
	}
	if ldap.Name != "Open LDAP" || ldap.Domain != "ldap.example.com" || ldap.Alias != "" || ldap.Kind != "LDAP" {
		t.Errorf("ldap entry %+v", ldap)
	}
	if strings.Contains(string(r.body), `"password":"`) {
		t.Errorf("a store carries a password: %s", r.body)
	}
}

func TestVRA7SyncLifecycle(t *testing.T) {
	var mu sync.Mutex
	var hooked []vidmsim.SyncRecord
	e := newVRA7Env(t, func(c *vidmsim.Config) {
		c.OnSyncStart = func(r vidmsim.SyncRecord) { mu.Lock(); hooked = append(hooked, r); mu.Unlock() }
	})
	tok := vra7Token(e)

	st := vra7StatusOf(e, tok, vra7Corp)
	if st.SyncStatus.Status != "UNDEFINED" || st.SyncStatus.Message != nil || st.SyncStatus.SyncStartDate != nil {
		t.Fatalf("before any sync: %+v, want UNDEFINED with a null message", st.SyncStatus)
	}
	start := e.clock.Now()
	if r := e.do(http.MethodPost, vra7Sync(vra7Corp), "", append(vra7Auth(tok), "X-Request-Id", "run-7")...); r.status != http.StatusNoContent {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	e.clock.Advance(9 * time.Second)
	st = vra7StatusOf(e, tok, vra7Corp)
	if s := st.SyncStatus; s.Status != "RUNNING" || s.SyncStartDate == nil || *s.SyncStartDate != start.UnixMilli() || s.SyncEndDate != nil {
		t.Fatalf("9s into a 10s sync: %+v, want RUNNING since %d", s, start.UnixMilli())
	}
	r := e.do(http.MethodPost, vra7Sync(vra7Corp), "", vra7Auth(tok)...)
	if r.status != http.StatusConflict || vra7Code(r) != "90004" || !strings.Contains(string(r.body), "already in progress") {
		t.Fatalf("second start while running: %d %s, want 409 90004", r.status, r.body)
	}
	e.clock.Advance(time.Second)
	st = vra7StatusOf(e, tok, vra7Corp)
	if s := st.SyncStatus; s.Status != "COMPLETED" || s.SyncEndDate == nil || *s.SyncEndDate != start.Add(10*time.Second).UnixMilli() || s.Message != nil {
		t.Fatalf("after SyncDuration: %+v, want COMPLETED at start+10s", s)
	}
	if r := e.do(http.MethodPost, vra7Sync(vra7Corp), "", vra7Auth(tok)...); r.status != http.StatusNoContent {
		t.Fatalf("start after completion: %d %s", r.status, r.body)
	}
	log := e.sim.SyncLog()
	if len(log) != 2 || log[0].DirectoryID != "dir-corp-ad" || log[0].RequestID != "run-7" || log[0].IgnoreSafeguards || log[0].Foreign {
		t.Fatalf("sync log %+v", log)
	}
	if e.sim.RejectedSyncPosts() != 1 || e.sim.MaxConcurrentSyncs("dir-corp-ad") != 1 {
		t.Fatalf("rejected %d, max concurrent %d; want 1, 1", e.sim.RejectedSyncPosts(), e.sim.MaxConcurrentSyncs("dir-corp-ad"))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hooked) != 2 || hooked[0].RunID != log[0].RunID {
		t.Fatalf("OnSyncStart saw %+v", hooked)
	}
}

func TestVRA7SyncOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		dir     vidmsim.Directory
		foreign bool
		advance time.Duration
		status  string
		message string
	}{
		{"completed", vidmsim.Directory{ID: "dir-corp-ad", Name: "Corp AD", Domains: []string{vra7Corp}}, false, 10 * time.Second, "COMPLETED", ""},
		{"failed", vidmsim.Directory{ID: "dir-corp-ad", Name: "Corp AD", Domains: []string{vra7Corp}, FailMessage: "LDAP bind failed: invalid credentials"},
			false, 10 * time.Second, "FAILED", "LDAP bind failed: invalid credentials"},
		{"own duration", vidmsim.Directory{ID: "dir-corp-ad", Name: "Corp AD", Domains: []string{vra7Corp}, SyncDuration: time.Minute},
			false, 10 * time.Second, "RUNNING", ""},
		// vRA 7 has no safeguards to ignore: the violation fails every API sync.
		{"safeguard violation", vidmsim.Directory{ID: "dir-corp-ad", Name: "Corp AD", Domains: []string{vra7Corp}, SafeguardViolation: true},
			false, 10 * time.Second, "FAILED", "safeguard"},
		{"foreign sync running", vidmsim.Directory{ID: "dir-corp-ad", Name: "Corp AD", Domains: []string{vra7Corp}}, true, 59 * time.Minute, "RUNNING", ""},
		{"foreign sync done", vidmsim.Directory{ID: "dir-corp-ad", Name: "Corp AD", Domains: []string{vra7Corp}}, true, time.Hour, "COMPLETED", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newVRA7Env(t, nil)
			if err := e.sim.SetDirectory(tc.dir); err != nil {
				t.Fatal(err)
			}
			tok := vra7Token(e)
			if tc.foreign {
				if err := e.sim.StartForeignSync(tc.dir.ID, time.Hour); err != nil {
					t.Fatal(err)
				}
				if s := vra7StatusOf(e, tok, vra7Corp).SyncStatus; s.Status != "RUNNING" {
					t.Fatalf("foreign sync shows as %s, want RUNNING", s.Status)
				}
				r := e.do(http.MethodPost, vra7Sync(vra7Corp), "", vra7Auth(tok)...)
				if r.status != http.StatusConflict || e.sim.RejectedSyncPostsOnForeign() != 1 {
					t.Fatalf("start over a foreign sync: %d %s (rejected on foreign %d), want 409", r.status, r.body, e.sim.RejectedSyncPostsOnForeign())
				}
			} else if r := e.do(http.MethodPost, vra7Sync(vra7Corp), "", vra7Auth(tok)...); r.status != http.StatusNoContent {
				t.Fatalf("start: %d %s", r.status, r.body)
			}
			e.clock.Advance(tc.advance)
			s := vra7StatusOf(e, vra7Token(e), vra7Corp).SyncStatus // the first token may have expired
			msg := ""
			if s.Message != nil {
				msg = *s.Message
			}
			if s.Status != tc.status || !strings.Contains(msg, tc.message) || (tc.message == "" && s.Message != nil) {
				t.Fatalf("status %s message %q, want %s with %q", s.Status, msg, tc.status, tc.message)
			}
			if (s.SyncEndDate != nil) != (tc.status != "RUNNING") {
				t.Fatalf("syncEndDate %v for %s", s.SyncEndDate, s.Status)
			}
		})
	}
}

func TestVRA7FaultsAndCounters(t *testing.T) {
	e := newVRA7Env(t, nil)
	e.sim.SetFault(vidmsim.EndpointVRA7Login, vidmsim.Fault{Status: http.StatusServiceUnavailable, Times: 1})
	r := e.do(http.MethodPost, vra7Tokens, vra7LoginBody(username, password, vra7Tenant),
		"Content-Type", mediaJSONApp, "Accept", mediaJSONApp)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("faulted login: %d", r.status)
	}
	tok := vra7Token(e)
	e.sim.SetFault(vidmsim.EndpointVRA7SyncStart, vidmsim.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second, Times: 1})
	if r := e.do(http.MethodPost, vra7Sync(vra7Corp), "", vra7Auth(tok)...); r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "1" {
		t.Fatalf("faulted start: %d Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	if r := e.do(http.MethodPost, vra7Sync(vra7Corp), "", vra7Auth(tok)...); r.status != http.StatusNoContent {
		t.Fatalf("start after the fault: %d", r.status)
	}
	e.sim.SetFault(vidmsim.EndpointVRA7SyncStatus, vidmsim.Fault{Status: http.StatusBadGateway, Times: 2})
	for range 3 {
		e.do(http.MethodGet, vra7Status(vra7Corp), "", vra7Auth(tok)...)
	}
	e.sim.SetFault(vidmsim.EndpointVRA7Directories, vidmsim.Fault{Status: http.StatusInternalServerError, Times: 1})
	e.do(http.MethodGet, vra7Dirs, "", vra7Auth(tok)...)
	e.do(http.MethodGet, vra7Dirs, "", vra7Auth(tok)...)
	e.do(http.MethodGet, "/identity/api/nowhere", "", vra7Auth(tok)...)

	tests := []struct {
		ep       vidmsim.Endpoint
		requests int
		byStatus map[int]int
	}{
		{vidmsim.EndpointVRA7Login, 2, map[int]int{503: 1, 200: 1}},
		{vidmsim.EndpointVRA7SyncStart, 2, map[int]int{429: 1, 204: 1}},
		{vidmsim.EndpointVRA7SyncStatus, 3, map[int]int{502: 2, 200: 1}},
		{vidmsim.EndpointVRA7Directories, 2, map[int]int{500: 1, 200: 1}},
		{"", 1, map[int]int{404: 1}},
		{vidmsim.EndpointSyncStatus, 0, map[int]int{}},
	}
	for _, tc := range tests {
		if got := e.sim.Requests(tc.ep); got != tc.requests {
			t.Errorf("Requests(%q) = %d, want %d", tc.ep, got, tc.requests)
		}
		got := e.sim.RequestsByStatus(tc.ep)
		if len(got) != len(tc.byStatus) {
			t.Errorf("RequestsByStatus(%q) = %v, want %v", tc.ep, got, tc.byStatus)
		}
		for code, n := range tc.byStatus {
			if got[code] != n {
				t.Errorf("RequestsByStatus(%q) = %v, want %v", tc.ep, got, tc.byStatus)
			}
		}
	}
	if e.sim.Logins() != 1 {
		t.Errorf("logins = %d, want 1 (the faulted one issued nothing)", e.sim.Logins())
	}
}
