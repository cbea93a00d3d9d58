package vidmsim_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// TestStrictness checks each refusal and the order of the checks: path → method → auth → Accept →
// Content-Type → body → directory → logic.
func TestStrictness(t *testing.T) {
	const good = `{"ignoreSafeguards":false}`
	auth := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	list := func(tok string) []string { return append(auth(tok), "Accept", mediaList) }
	post := func(tok string) []string { return append(auth(tok), "Accept", mediaV1, "Content-Type", mediaSyncBody) }
	tests := []struct {
		name      string
		method    string
		path      string
		body      string
		headers   func(tok string) []string
		status    int
		code      string
		wantAllow string
	}{
		{"unknown path", "GET", "/SAAS/nope", "", list, 404, "http.not.found", ""},
		{"trailing slash", "GET", pathDirs + "/", "", list, 404, "http.not.found", ""},
		{"empty directory segment", "GET", pathDirs + "//syncprofile/sync", "", list, 404, "http.not.found", ""},
		{"extra segment", "GET", pathDirs + "/a/b/syncprofile/sync", "", list, 404, "http.not.found", ""},
		{"root", "GET", "/", "", list, 404, "http.not.found", ""},
		{"POST directories", "POST", pathDirs, "", list, 405, "http.method.not.allowed", "GET"},
		{"DELETE sync", "DELETE", syncPath(corpID), "", post, 405, "http.method.not.allowed", "GET, POST"},
		{"GET oauth", "GET", pathOAuth, "", list, 405, "http.method.not.allowed", "POST"},
		{"GET login", "GET", pathLogin, "", list, 405, "http.method.not.allowed", "POST"},
		{"method before auth", "PUT", pathDirs, "", func(string) []string { return nil }, 405, "http.method.not.allowed", "GET"},
		{"no auth", "GET", pathDirs, "", func(string) []string { return []string{"Accept", mediaList} }, 401, "auth.required", ""},
		{"basic auth", "GET", pathDirs, "", func(string) []string {
			return []string{"Accept", mediaList, "Authorization", basic(clientID, clientSecret)}
		}, 401, "auth.required", ""},
		{"bearer without token", "GET", pathDirs, "", func(string) []string {
			return []string{"Accept", mediaList, "Authorization", "Bearer "}
		}, 401, "auth.required", ""},
		{"unknown token", "GET", pathDirs, "", func(string) []string {
			return []string{"Accept", mediaList, "Authorization", "Bearer abc.def.ghi"}
		}, 401, "auth.token.invalid", ""},
		{"HZN scheme", "GET", pathDirs, "", func(tok string) []string {
			return []string{"Accept", mediaList, "Authorization", "HZN " + tok}
		}, 200, "", ""},
		{"lower-case bearer", "GET", pathDirs, "", func(tok string) []string {
			return []string{"Accept", mediaList, "Authorization", "bearer " + tok}
		}, 200, "", ""},
		{"auth before accept", "GET", pathDirs, "", func(string) []string { return []string{"Accept", "text/html"} }, 401, "auth.required", ""},
		{"accept missing", "GET", pathDirs, "", auth, 406, "http.media.not.acceptable", ""},
		{"accept */*", "GET", pathDirs, "", func(tok string) []string { return append(auth(tok), "Accept", "*/*") }, 406, "http.media.not.acceptable", ""},
		{"accept application/json", "GET", pathDirs, "", func(tok string) []string { return append(auth(tok), "Accept", "application/json") }, 406, "http.media.not.acceptable", ""},
		{"accept q=0", "GET", pathDirs, "", func(tok string) []string { return append(auth(tok), "Accept", mediaList+";q=0") }, 406, "http.media.not.acceptable", ""},
		{"accept list with params and case", "GET", pathDirs, "", func(tok string) []string {
			return append(auth(tok), "Accept", "application/json, "+strings.ToUpper(mediaList)+"; charset=utf-8")
		}, 200, "", ""},
		{"status accept wrong", "GET", syncPath(corpID), "", func(tok string) []string { return append(auth(tok), "Accept", mediaList) }, 406, "http.media.not.acceptable", ""},
		{"sync accept before content type", "POST", syncPath(corpID), good, func(tok string) []string {
			return append(auth(tok), "Accept", "application/json", "Content-Type", "text/plain")
		}, 406, "http.media.not.acceptable", ""},
		{"sync content type json", "POST", syncPath(corpID), good, func(tok string) []string {
			return append(auth(tok), "Accept", mediaV1, "Content-Type", "application/json")
		}, 415, "http.media.unsupported", ""},
		{"sync content type missing", "POST", syncPath(corpID), good, func(tok string) []string {
			return append(auth(tok), "Accept", mediaV1)
		}, 415, "http.media.unsupported", ""},
		{"sync content type with charset", "POST", syncPath(corpID), good, func(tok string) []string {
			return append(auth(tok), "Accept", mediaV1, "Content-Type", mediaSyncBody+"; charset=UTF-8")
		}, 200, "", ""},
		{"content type before body", "POST", syncPath(corpID), "{", func(tok string) []string {
			return append(auth(tok), "Accept", mediaV1, "Content-Type", "text/plain")
		}, 415, "http.media.unsupported", ""},
		{"body invalid json", "POST", syncPath(corpID), "{", post, 400, "request.body.invalid", ""},
		{"body empty", "POST", syncPath(corpID), "", post, 400, "request.body.invalid", ""},
		{"body null", "POST", syncPath(corpID), "null", post, 400, "request.body.invalid", ""},
		{"body array", "POST", syncPath(corpID), "[]", post, 400, "request.body.invalid", ""},
		{"body wrong type", "POST", syncPath(corpID), `{"ignoreSafeguards":"false"}`, post, 400, "request.body.invalid", ""},
		{"body unknown field", "POST", syncPath(corpID), `{"ignoreSafeguards":false,"force":true}`, post, 400, "request.body.invalid", ""},
		{"body trailing data", "POST", syncPath(corpID), `{"ignoreSafeguards":false}{}`, post, 400, "request.body.invalid", ""},
		{"body missing field means false", "POST", syncPath(corpID), `{}`, post, 200, "", ""},
		{"body before directory", "POST", syncPath("nope"), "{", post, 400, "request.body.invalid", ""},
		{"unknown directory POST", "POST", syncPath("nope"), good, post, 404, "connector.directory.not.found", ""},
		{"unknown directory GET", "GET", syncPath("nope"), "", func(tok string) []string {
			return append(auth(tok), "Accept", mediaV1)
		}, 404, "connector.directory.not.found", ""},
		{"escaped unknown directory", "GET", pathDirs + "/a%2Fb/syncprofile/sync", "", func(tok string) []string {
			return append(auth(tok), "Accept", mediaV1)
		}, 404, "connector.directory.not.found", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			r := e.do(tc.method, tc.path, tc.body, tc.headers(e.token())...)
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, tc.status, r.body)
			}
			if got := r.errorCode(); got != tc.code {
				t.Errorf("error code = %q, want %q", got, tc.code)
			}
			if got := r.header.Get("Allow"); got != tc.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tc.wantAllow)
			}
			if tc.status >= 400 && !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Errorf("error Content-Type = %q", r.header.Get("Content-Type"))
			}
		})
	}
}

func TestEscapedDirectoryID(t *testing.T) {
	e := newEnv(t, func(c *vidmsim.Config) {
		c.Directories = append(c.Directories, vidmsim.Directory{ID: "a b/c", Name: "Odd"})
	})
	tok := e.token()
	if r := e.startSync(tok, "a%20b%2Fc", false); r.status != http.StatusOK {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	if st := e.syncStatus(tok, "a%20b%2Fc"); st.Status != "RUNNING" || st.DirectoryID != "a b/c" {
		t.Fatalf("status = %+v", st)
	}
}

func TestTokenLifetime(t *testing.T) {
	tests := []struct {
		name   string
		act    func(e *env)
		code   string
		before bool // the token still works just before act's effect
	}{
		{"expired by TTL", func(e *env) { e.clock.Advance(time.Hour) }, "auth.token.expired", false},
		{"ExpireTokens", func(e *env) { e.sim.ExpireTokens() }, "auth.token.expired", false},
		{"RevokeTokens", func(e *env) { e.sim.RevokeTokens() }, "auth.token.revoked", false},
		{"revoke after expire", func(e *env) { e.sim.ExpireTokens(); e.sim.RevokeTokens() }, "auth.token.revoked", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			tok := e.token()
			e.clock.Advance(time.Hour - time.Second)
			if r := e.listDirs(tok); r.status != http.StatusOK {
				t.Fatalf("before: %d %s", r.status, r.body)
			}
			e.clock.Advance(-(time.Hour - time.Second))
			tc.act(e)
			r := e.listDirs(tok)
			if r.status != http.StatusUnauthorized || r.errorCode() != tc.code {
				t.Fatalf("after: %d %s, want 401 %s", r.status, r.body, tc.code)
			}
			if r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			// A fresh login works again: the client's "log in once more" path.
			if r := e.listDirs(e.token()); r.status != http.StatusOK {
				t.Fatalf("new token: %d %s", r.status, r.body)
			}
		})
	}
}

func TestCountersAndStatuses(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token()
	e.listDirs(tok)
	e.listDirs("bogus")
	e.do(http.MethodGet, "/nope", "")
	e.startSync(tok, corpID, false)
	e.startSync(tok, corpID, false)
	e.syncStatus(tok, corpID)

	counts := map[vidmsim.Endpoint]int{
		vidmsim.EndpointOAuthToken: 1, vidmsim.EndpointSystemLogin: 0, vidmsim.EndpointDirectories: 2,
		vidmsim.EndpointSyncStart: 2, vidmsim.EndpointSyncStatus: 1, "": 1,
	}
	for ep, want := range counts {
		if got := e.sim.Requests(ep); got != want {
			t.Errorf("Requests(%q) = %d, want %d", ep, got, want)
		}
	}
	statuses := map[vidmsim.Endpoint]map[int]int{
		vidmsim.EndpointDirectories: {200: 1, 401: 1},
		vidmsim.EndpointSyncStart:   {200: 1, 409: 1},
		"":                          {404: 1},
	}
	for ep, want := range statuses {
		got := e.sim.RequestsByStatus(ep)
		if len(got) != len(want) {
			t.Errorf("RequestsByStatus(%q) = %v, want %v", ep, got, want)
		}
		for code, n := range want {
			if got[code] != n {
				t.Errorf("RequestsByStatus(%q)[%d] = %d, want %d", ep, code, got[code], n)
			}
		}
	}
	if e.sim.Logins() != 1 || e.sim.RejectedSyncPosts() != 1 {
		t.Errorf("Logins = %d, RejectedSyncPosts = %d", e.sim.Logins(), e.sim.RejectedSyncPosts())
	}
}

// TestLogsNoSecrets: requests are logged, but never tokens, passwords or client secrets.
func TestLogsNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	var mu = make(chan struct{}, 1)
	e := newEnv(t, func(c *vidmsim.Config) {
		c.Logger = slog.New(slog.NewTextHandler(lockedWriter{&buf, mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	tok := e.token()
	e.do(http.MethodPost, pathLogin, `{"username":"sync-admin","password":"example-password","issueToken":"true"}`,
		"Content-Type", "application/json")
	e.listDirs(tok)
	e.startSync(tok, corpID, false)
	e.clock.Advance(time.Minute)
	e.syncStatus(tok, corpID)

	mu <- struct{}{}
	logs := buf.String()
	<-mu
	if !strings.Contains(logs, "endpoint=directories") || !strings.Contains(logs, "status=200") {
		t.Errorf("request log missing:\n%s", logs)
	}
	secrets := append([]string{clientSecret, password}, e.sim.IssuedTokens()...)
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("log contains a secret %q", s[:4]+"…")
		}
	}
}

type lockedWriter struct {
	buf *bytes.Buffer
	mu  chan struct{}
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu <- struct{}{}
	defer func() { <-w.mu }()
	return w.buf.Write(p)
}
