package admin

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/control"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/logbuf"
)

const (
	adminToken = "adm-7Qx2Lm9Pz4Kc8Vw1"
	readToken  = "read-3Hn6Tj0Ys5Rb2Ge9"
)

// harness is admin.New over a fake Source, with the handler's log captured.
type harness struct {
	t    *testing.T
	src  *fakeSource
	h    http.Handler
	logs *logbuf.Buffer
	now  *time.Time
}

func newHarness(t *testing.T, cfg Config, src *fakeSource) *harness {
	t.Helper()
	if src == nil {
		src = richState(false)
	}
	hs := &harness{t: t, src: src, logs: &logbuf.Buffer{}}
	now := testNow
	hs.now = &now
	cfg.Logger = slog.New(slog.NewTextHandler(hs.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// Read through the pointer, so a test can move the clock; tests do so only between requests.
	cfg.Now = func() time.Time { return *hs.now }
	cfg.Version = "v1.4.0-test"
	hs.h = New(cfg, src)
	return hs
}

func fullConfig() Config { return Config{Token: adminToken, ReadToken: readToken} }

type req struct {
	method, target, body string
	token                string // bearer; "" = none
	cookie               *http.Cookie
	header               http.Header
}

func (hs *harness) do(r req) *httptest.ResponseRecorder {
	hs.t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr := httptest.NewRequest(r.method, r.target, body)
	for k, vs := range r.header {
		hr.Header[k] = vs
	}
	if r.body != "" && hr.Header.Get("Content-Type") == "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.cookie != nil {
		hr.AddCookie(r.cookie)
	}
	w := httptest.NewRecorder()
	hs.h.ServeHTTP(w, hr)
	return w
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json; body %s", ct, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decoding %s: %v", w.Body, err)
	}
	return v
}

const (
	corpPath    = "/api/v1/directories/default/" + idCorp
	labPath     = "/api/v1/directories/default/" + idLab
	partnerPath = "/api/v1/directories/default/" + idPartner
	retailPath  = "/api/v1/directories/default/" + idRetail
)

// TestRoutes calls every route with the admin token and checks the answer and what the Source
// was asked.
func TestRoutes(t *testing.T) {
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	probe := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name+" ok") })
	}
	tests := []struct {
		name      string
		r         req
		status    int
		check     func(t *testing.T, w *httptest.ResponseRecorder)
		wantCalls []string
	}{
		{"status page", req{method: "GET", target: "/"}, 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			if !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") || !strings.Contains(w.Body.String(), "Corp AD") {
				t.Errorf("page: %s %.200s", w.Header().Get("Content-Type"), w.Body)
			}
		}, nil},
		{"login form", req{method: "GET", target: "/login"}, 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			if !strings.Contains(w.Body.String(), `id="login-form"`) {
				t.Errorf("no login form: %.300s", w.Body)
			}
		}, []string{}},
		{"sign in", req{method: "POST", target: "/login", body: "token=" + readToken, header: form}, 303, func(t *testing.T, w *httptest.ResponseRecorder) {
			if w.Header().Get("Location") != "/" || len(w.Result().Cookies()) != 1 {
				t.Errorf("sign-in: Location %q, cookies %v", w.Header().Get("Location"), w.Result().Cookies())
			}
		}, []string{}},
		{"sign out", req{method: "POST", target: "/logout"}, 303, func(t *testing.T, w *httptest.ResponseRecorder) {
			if w.Header().Get("Location") != "/login" {
				t.Errorf("sign-out: Location %q", w.Header().Get("Location"))
			}
		}, []string{}},
		{"metrics", req{method: "GET", target: "/metrics"}, 200, bodyIs("metrics ok"), []string{}},
		{"healthz", req{method: "GET", target: "/healthz"}, 200, bodyIs("healthz ok"), []string{}},
		{"readyz", req{method: "GET", target: "/readyz"}, 200, bodyIs("readyz ok"), []string{}},
		{"list directories", req{method: "GET", target: "/api/v1/directories"}, 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			v := decode[control.DirectoryList](t, w)
			if len(v.Directories) != 6 || v.Total != 6 || v.Next != "" || v.Directories[0].Name != "Corp AD" || v.Directories[0].CurrentRun == nil {
				t.Errorf("directories: %+v", v)
			}
		}, []string{"Directories"}},
		{"stuck directories", req{method: "GET", target: "/api/v1/directories?state=stuck"}, 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			v := decode[control.DirectoryList](t, w)
			if len(v.Directories) != 1 || v.Total != 1 || v.Directories[0].Name != "HR AD" {
				t.Fatalf("stuck directories: %+v", v)
			}
			tr := v.Directories[0].CurrentRun.Trouble
			if tr == nil || !tr.Stuck || tr.Failures != 7 || !strings.Contains(tr.Error, "svc-dirsync is disabled") || v.Directories[0].CurrentRun.Pages != 7 {
				t.Errorf("stuck run: %+v", v.Directories[0].CurrentRun)
			}
		}, []string{"Directories"}},
		{"one directory", req{method: "GET", target: labPath}, 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			d := decode[control.Directory](t, w)
			if d.Name != "Lab AD" || d.State != control.StatePending || d.PendingTriggers != 3 || d.LastRun.Error.Code != "VIDM_SYNC_FAILED" {
				t.Errorf("directory: %+v", d)
			}
		}, []string{"Directory default/" + idLab}},
		{"runs, default limit", req{method: "GET", target: corpPath + "/runs"}, 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			v := decode[struct{ Runs []control.Run }](t, w)
			if len(v.Runs) != 3 || v.Runs[0].Status != control.RunRunning || v.Runs[0].Triggers[0].Group != "proj-alpha-admins" {
				t.Errorf("runs: %+v", v.Runs)
			}
		}, []string{"Runs default/" + idCorp + " limit=20"}},
		{"runs, limit", req{method: "GET", target: corpPath + "/runs?limit=1"}, 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			if v := decode[struct{ Runs []control.Run }](t, w); len(v.Runs) != 1 {
				t.Errorf("runs: %+v", v.Runs)
			}
		}, []string{"Runs default/" + idCorp + " limit=1"}},
		{"sync", req{method: "POST", target: retailPath + "/sync", token: adminToken}, 202, func(t *testing.T, w *httptest.ResponseRecorder) {
			if v := decode[control.SyncRequest](t, w); v.EventID == "" || v.Queued {
				t.Errorf("sync request: %+v", v)
			}
		}, []string{"RequestSync default/" + idRetail + ` queue=false reason=""`}},
		{"sync queued with reason", req{method: "POST", target: corpPath + "/sync?queue=true", token: adminToken, body: `{"reason":"bulk import"}`}, 202, func(t *testing.T, w *httptest.ResponseRecorder) {
			if v := decode[control.SyncRequest](t, w); !v.Queued {
				t.Errorf("sync request: %+v", v)
			}
		}, []string{"RequestSync default/" + idCorp + ` queue=true reason="bulk import"`}},
		{"sync, bare ?queue", req{method: "POST", target: corpPath + "/sync?queue", token: adminToken}, 202, nil,
			[]string{"RequestSync default/" + idCorp + ` queue=true reason=""`}},
		{"pause", req{method: "POST", target: retailPath + "/pause", token: adminToken, body: `{"reason":"AD migration"}`}, 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			if d := decode[control.Directory](t, w); d.State != control.StatePaused || d.Paused.Reason != "AD migration" {
				t.Errorf("paused directory: %+v", d)
			}
		}, []string{"Pause default/" + idRetail + ` reason="AD migration"`}},
		{"pause without body", req{method: "POST", target: retailPath + "/pause", token: adminToken}, 200, nil,
			[]string{"Pause default/" + idRetail + ` reason=""`}},
		{"resume", req{method: "POST", target: partnerPath + "/resume", token: adminToken}, 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			if d := decode[control.Directory](t, w); d.State != control.StatePending || d.Paused != nil {
				t.Errorf("resumed directory: %+v", d)
			}
		}, []string{"Resume default/" + idPartner}},
		{"resume with empty object", req{method: "POST", target: partnerPath + "/resume", token: adminToken, body: `{}`}, 200, nil,
			[]string{"Resume default/" + idPartner}},
		{"dead letters, default limit", req{method: "GET", target: "/api/v1/dead-letters"}, 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			if v := decode[control.DeadLetters](t, w); v.Total != 7 || len(v.Items) != 3 || v.Items[0].Code != "UNKNOWN_DIRECTORY" {
				t.Errorf("dead letters: %+v", v)
			}
		}, []string{"DeadLetters limit=50"}},
		{"dead letters, a page", req{method: "GET", target: "/api/v1/dead-letters?limit=2"}, 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			if v := decode[control.DeadLetters](t, w); len(v.Items) != 2 || v.Next != 409 {
				t.Errorf("dead letters: %+v", v)
			}
		}, []string{"DeadLetters limit=2"}},
		{"dead letters, the next page", req{method: "GET", target: "/api/v1/dead-letters?limit=2&before=409"}, 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			if v := decode[control.DeadLetters](t, w); len(v.Items) != 1 || v.Items[0].Seq != 377 || v.Next != 0 {
				t.Errorf("dead letters: %+v", v)
			}
		}, []string{"DeadLetters limit=2 before=409"}},
		{"dead letters, max limit", req{method: "GET", target: "/api/v1/dead-letters?limit=1000"}, 200, nil, []string{"DeadLetters limit=1000"}},
		{"redrive some", req{method: "POST", target: "/api/v1/dead-letters/redrive", token: adminToken, body: `{"sequences":[412,5]}`}, 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			v := decode[control.RedriveResult](t, w)
			if !slices.Equal(v.Redriven, []uint64{412}) || len(v.Failed) != 1 || v.Failed[0].Seq != 5 {
				t.Errorf("redrive: %+v", v)
			}
		}, []string{"Redrive [412 5]"}},
		{"redrive all", req{method: "POST", target: "/api/v1/dead-letters/redrive", token: adminToken}, 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			if v := decode[control.RedriveResult](t, w); len(v.Redriven) != 3 {
				t.Errorf("redrive: %+v", v)
			}
		}, []string{"Redrive []"}},
		{"tenants", req{method: "GET", target: "/api/v1/tenants"}, 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			v := decode[struct{ Tenants []control.Tenant }](t, w)
			if len(v.Tenants) != 1 || v.Tenants[0].Name != "default" || v.Tenants[0].Backend.Kind != "vidm" {
				t.Errorf("tenants: %+v", v.Tenants)
			}
		}, []string{"Tenants"}},
		{"tenants reload", req{method: "POST", target: "/api/v1/tenants/reload", token: adminToken}, 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			if v := decode[control.ReloadResult](t, w); v.File == "" || len(v.Tenants) != 1 {
				t.Errorf("reload: %+v", v)
			}
		}, []string{"ReloadTenants"}},
		{"cancel", req{method: "POST", target: labPath + "/cancel", token: adminToken, body: `{"by":"alice","reason":"wrong group names"}`}, 202, func(t *testing.T, w *httptest.ResponseRecorder) {
			if v := decode[control.Cancellation](t, w); v.Triggers != 3 || v.By != "alice (admin API)" || v.Reason != "wrong group names" {
				t.Errorf("cancellation: %+v", v)
			}
		}, []string{"Cancel default/" + idLab + ` by="alice (admin API)" reason="wrong group names"`}},
		{"cancel form", req{method: "GET", target: "/directories/default/" + idLab + "/cancel"}, 200, func(t *testing.T, w *httptest.ResponseRecorder) {
			// A bearer token is no session: the page says how to cancel, without a form.
			if b := w.Body.String(); !strings.Contains(b, `id="cancel-sign-in"`) || strings.Contains(b, `id="cancel-form"`) {
				t.Errorf("cancel page: %.600s", b)
			}
		}, []string{"Directory default/" + idLab}},
		{"cancel form sent without a session", req{method: "POST", target: "/directories/default/" + idLab + "/cancel", body: "by=x&reason=y", header: form}, 403, nil, []string{}},
		{"redrive, empty list is all", req{method: "POST", target: "/api/v1/dead-letters/redrive", token: adminToken, body: `{"sequences":[]}`}, 200, nil,
			[]string{"Redrive []"}},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, Config{Token: adminToken, ReadToken: readToken, Metrics: probe("metrics"), Healthz: probe("healthz"), Readyz: probe("readyz")}, nil)
			if tt.r.token == "" && tt.r.method == "GET" {
				tt.r.token = readToken
			}
			w := hs.do(tt.r)
			if w.Code != tt.status {
				t.Fatalf("%s %s: %d, want %d; body %s", tt.r.method, tt.r.target, w.Code, tt.status, w.Body)
			}
			if tt.check != nil {
				tt.check(t, w)
			}
			if tt.wantCalls != nil {
				if got := hs.src.Calls(); !slices.Equal(got, tt.wantCalls) && len(tt.wantCalls)+len(got) > 0 {
					t.Errorf("Source calls %q, want %q", got, tt.wantCalls)
				}
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", w.Header().Get("Cache-Control"))
			}
		})
		covered[routeOf(t, tt.r.method, tt.r.target)] = true
	}
	for _, rt := range routes() {
		if !covered[rt.method+" "+rt.path] {
			t.Errorf("route %s %s has no test case", rt.method, rt.path)
		}
	}
}

func bodyIs(want string) func(*testing.T, *httptest.ResponseRecorder) {
	return func(t *testing.T, w *httptest.ResponseRecorder) {
		if w.Body.String() != want {
			t.Errorf("body %q, want %q", w.Body, want)
		}
	}
}

// routeOf names the route table entry a request matches, by asking a mux built from routes().
func routeOf(t *testing.T, method, target string) string {
	t.Helper()
	mux := http.NewServeMux()
	names := map[string]string{}
	for _, rt := range routes() {
		mux.HandleFunc(rt.pattern(), func(http.ResponseWriter, *http.Request) {})
		names[rt.pattern()] = rt.method + " " + rt.path
	}
	_, pattern := mux.Handler(httptest.NewRequest(method, target, nil))
	return names[pattern]
}

// TestAuthMatrix: who may call what, with which answer.
func TestAuthMatrix(t *testing.T) {
	get := func(target string) req { return req{method: "GET", target: target} }
	post := func(target string) req { return req{method: "POST", target: target} }
	with := func(r req, token string) req { r.token = token; return r }
	tests := []struct {
		name   string
		cfg    Config
		r      req
		status int
		msg    string // in the error
	}{
		{"GET API without token", fullConfig(), get("/api/v1/directories"), 401, "bearer token"},
		{"GET page without token", fullConfig(), get("/"), 401, ""},
		{"GET with wrong token", fullConfig(), with(get("/api/v1/directories"), "nope"), 401, "bearer token"},
		{"GET with another scheme", fullConfig(), req{method: "GET", target: "/api/v1/directories", header: http.Header{"Authorization": {"Basic " + readToken}}}, 401, ""},
		{"GET with read token", fullConfig(), with(get("/api/v1/directories"), readToken), 200, ""},
		{"GET page with read token", fullConfig(), with(get("/"), readToken), 200, ""},
		{"GET with admin token", fullConfig(), with(get("/api/v1/dead-letters"), adminToken), 200, ""},
		{"GET with lower-case scheme", fullConfig(), req{method: "GET", target: "/api/v1/directories", header: http.Header{"Authorization": {"bearer " + readToken}}}, 200, ""},
		{"POST without token", fullConfig(), post(retailPath + "/sync"), 401, "ADMIN_TOKEN"},
		{"POST with wrong token", fullConfig(), with(post(retailPath+"/sync"), "nope"), 401, "not valid"},
		{"POST with read token", fullConfig(), with(post(retailPath+"/pause"), readToken), 403, "the read-only token cannot"},
		{"POST redrive with read token", fullConfig(), with(post("/api/v1/dead-letters/redrive"), readToken), 403, "the read-only token cannot"},
		{"POST with admin token", fullConfig(), with(post(retailPath+"/sync"), adminToken), 202, ""},
		{"ReadOpen GET without token", Config{Token: adminToken, ReadOpen: true}, get("/api/v1/directories"), 200, ""},
		{"ReadOpen page without token", Config{Token: adminToken, ReadOpen: true}, get("/"), 200, ""},
		{"ReadOpen GET with wrong token", Config{Token: adminToken, ReadOpen: true}, with(get("/api/v1/directories"), "nope"), 401, ""},
		{"ReadOpen POST without token", Config{Token: adminToken, ReadOpen: true}, post(retailPath + "/sync"), 401, "ADMIN_TOKEN"},
		{"ReadOpen POST with admin token", Config{Token: adminToken, ReadOpen: true}, with(post(retailPath+"/resume"), adminToken), 200, ""},
		{"no ADMIN_TOKEN: POST refused", Config{ReadToken: readToken}, with(post(retailPath+"/sync"), readToken), 403, "ADMIN_TOKEN is not set"},
		{"no ADMIN_TOKEN: POST without token", Config{ReadOpen: true}, post("/api/v1/dead-letters/redrive"), 403, "ADMIN_TOKEN is not set"},
		{"no tokens: GET refused", Config{}, get("/api/v1/directories"), 401, ""},
		{"no tokens: empty bearer refused", Config{}, req{method: "GET", target: "/api/v1/directories", header: http.Header{"Authorization": {"Bearer "}}}, 401, ""},
		{"probes open", fullConfig(), get("/healthz"), 404, "not configured"},
		{"login form open", fullConfig(), get("/login"), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, tt.cfg, nil)
			w := hs.do(tt.r)
			if w.Code != tt.status {
				t.Fatalf("%d, want %d; body %s", w.Code, tt.status, w.Body)
			}
			if got := w.Header().Get("WWW-Authenticate"); (w.Code == 401) != (got == `Bearer realm="vidm-sync-worker"`) {
				t.Errorf("WWW-Authenticate %q on %d", got, w.Code)
			}
			if tt.msg != "" {
				if e := decode[errorBody](t, w); !strings.Contains(e.Error, tt.msg) {
					t.Errorf("error %q, want it to mention %q", e.Error, tt.msg)
				}
			}
			if w.Code >= 400 && strings.HasPrefix(tt.r.target, "/api/") && len(hs.src.Calls()) > 0 {
				t.Errorf("refused request reached the Source: %q", hs.src.Calls())
			}
			for _, secret := range []string{adminToken, readToken} {
				if strings.Contains(w.Body.String(), secret) || strings.Contains(hs.logs.String(), secret) {
					t.Errorf("token %q echoed (body %q, log %q)", secret, w.Body, hs.logs)
				}
			}
		})
	}
}

// login signs in through POST /login and returns the session cookie.
func (hs *harness) login(token string, tls bool) (*httptest.ResponseRecorder, *http.Cookie) {
	hs.t.Helper()
	hr := httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
	hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if tls {
		hr = httptest.NewRequest("POST", "https://worker.example.com/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	w := httptest.NewRecorder()
	hs.h.ServeHTTP(w, hr)
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie {
			return w, c
		}
	}
	return w, nil
}

// TestLoginCookie: the browser's session from /login opens the GET routes and nothing else.
func TestLoginCookie(t *testing.T) {
	hs := newHarness(t, fullConfig(), nil)

	w, c := hs.login("wrong", false)
	if w.Code != 401 || c != nil || !strings.Contains(w.Body.String(), "That token is not valid") {
		t.Fatalf("wrong token: %d cookie %v body %.300s", w.Code, c, w.Body)
	}
	if strings.Contains(w.Body.String(), `value="wrong"`) {
		t.Error("the typed token is echoed into the form")
	}

	w, c = hs.login(readToken, false)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" || c == nil {
		t.Fatalf("sign-in: %d Location %q cookie %v", w.Code, w.Header().Get("Location"), c)
	}
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Path != "/" || c.MaxAge <= 0 {
		t.Errorf("cookie attributes: %+v", c)
	}
	if strings.Contains(c.Value, readToken) {
		t.Error("the cookie carries the token")
	}
	cookie := &http.Cookie{Name: c.Name, Value: c.Value}

	for _, target := range []string{"/", "/api/v1/directories", corpPath + "/runs", "/api/v1/dead-letters"} {
		if w := hs.do(req{method: "GET", target: target, cookie: cookie}); w.Code != 200 {
			t.Errorf("GET %s with the cookie: %d", target, w.Code)
		}
	}
	if w := hs.do(req{method: "GET", target: "/", cookie: cookie}); !strings.Contains(w.Body.String(), `id="logout"`) {
		t.Error("a signed-in page offers no sign-out")
	}
	for _, target := range []string{retailPath + "/sync", retailPath + "/pause", partnerPath + "/resume", "/api/v1/dead-letters/redrive"} {
		if w := hs.do(req{method: "POST", target: target, cookie: cookie}); w.Code != 401 {
			t.Errorf("POST %s with the cookie: %d, want 401", target, w.Code)
		}
	}
	// Even a session signed in with the admin token never writes.
	_, ac := hs.login(adminToken, false)
	if w := hs.do(req{method: "POST", target: retailPath + "/pause", cookie: &http.Cookie{Name: ac.Name, Value: ac.Value}}); w.Code != 401 {
		t.Errorf("POST with an admin session cookie: %d, want 401", w.Code)
	}
	if len(hs.src.Calls()) == 0 || slices.ContainsFunc(hs.src.Calls(), func(c string) bool { return !strings.HasPrefix(c, "D") && !strings.HasPrefix(c, "Runs") }) {
		t.Errorf("Source calls %q: a write got through", hs.src.Calls())
	}

	tampered := &http.Cookie{Name: c.Name, Value: c.Value[:len(c.Value)-1] + string(c.Value[len(c.Value)-1]^1)}
	if w := hs.do(req{method: "GET", target: "/api/v1/directories", cookie: tampered}); w.Code != 401 {
		t.Errorf("tampered cookie: %d", w.Code)
	}
	// Sessions live in the process that issued them: another (a restart) does not know them.
	other := newHarness(t, fullConfig(), nil)
	if w := other.do(req{method: "GET", target: "/api/v1/directories", cookie: cookie}); w.Code != 401 {
		t.Errorf("cookie on another process: %d", w.Code)
	}

	// Logout ends the session on the server: the old cookie, replayed, no longer works.
	w = hs.do(req{method: "POST", target: "/logout", cookie: cookie})
	cleared := w.Result().Cookies()
	if w.Code != http.StatusSeeOther || len(cleared) != 1 || cleared[0].MaxAge >= 0 || cleared[0].Value != "" {
		t.Errorf("logout: %d cookies %+v", w.Code, cleared)
	}
	if w := hs.do(req{method: "GET", target: "/api/v1/directories", cookie: cookie}); w.Code != 401 {
		t.Errorf("cookie replayed after logout: %d", w.Code)
	}

	_, c = hs.login(readToken, false)
	cookie = &http.Cookie{Name: c.Name, Value: c.Value}
	*hs.now = hs.now.Add(sessionTTL + time.Second)
	if w := hs.do(req{method: "GET", target: "/api/v1/directories", cookie: cookie}); w.Code != 401 {
		t.Errorf("expired cookie: %d", w.Code)
	}

	if _, c := hs.login(readToken, true); c == nil || !c.Secure {
		t.Errorf("sign-in over TLS: cookie %+v, want Secure", c)
	}
	if strings.Contains(hs.logs.String(), readToken) || strings.Contains(hs.logs.String(), adminToken) {
		t.Error("a token is in the log")
	}
}

// TestErrors: the status codes and JSON bodies of failures.
func TestErrors(t *testing.T) {
	tests := []struct {
		name   string
		r      req
		fail   map[string]error
		status int
		msg    string
		check  func(t *testing.T, w *httptest.ResponseRecorder)
	}{
		{"unknown directory", req{method: "GET", target: "/api/v1/directories/default/nope"}, nil, 404, `directory "nope" of tenant "default": not found`, nil},
		{"runs of unknown directory", req{method: "GET", target: "/api/v1/directories/other/x/runs"}, nil, 404, "not found", nil},
		{"sync of unknown directory", req{method: "POST", target: "/api/v1/directories/default/nope/sync", token: adminToken}, nil, 404, "not found", nil},
		{"sync while running", req{method: "POST", target: corpPath + "/sync", token: adminToken}, nil, 409, "already in flight", func(t *testing.T, w *httptest.ResponseRecorder) {
			e := decode[errorBody](t, w)
			if e.Reason != "running" || e.CurrentRun == nil || e.CurrentRun.RunID != "run-01HXC7M2" || e.CurrentRun.Triggers[0].Group != "proj-alpha-admins" {
				t.Errorf("conflict: %+v", e)
			}
		}},
		{"sync while paused", req{method: "POST", target: partnerPath + "/sync", token: adminToken}, nil, 409, "is paused", func(t *testing.T, w *httptest.ResponseRecorder) {
			if e := decode[errorBody](t, w); e.Reason != "paused" || e.CurrentRun != nil {
				t.Errorf("conflict: %+v", e)
			}
		}},
		{"bad JSON", req{method: "POST", target: retailPath + "/sync", token: adminToken, body: `{"reason":`}, nil, 400, "invalid JSON", nil},
		{"array body", req{method: "POST", target: retailPath + "/pause", token: adminToken, body: `["x"]`}, nil, 400, "must be a JSON object", nil},
		{"null body", req{method: "POST", target: retailPath + "/pause", token: adminToken, body: `null`}, nil, 400, "must be a JSON object", nil},
		{"unknown field", req{method: "POST", target: retailPath + "/pause", token: adminToken, body: `{"reasn":"typo"}`}, nil, 400, "unknown field", nil},
		{"wrong type", req{method: "POST", target: "/api/v1/dead-letters/redrive", token: adminToken, body: `{"sequences":"all"}`}, nil, 400, "invalid JSON", nil},
		{"sequence zero", req{method: "POST", target: "/api/v1/dead-letters/redrive", token: adminToken, body: `{"sequences":[0]}`}, nil, 400, "start at 1", nil},
		{"two objects", req{method: "POST", target: retailPath + "/pause", token: adminToken, body: `{} {}`}, nil, 400, "data after", nil},
		{"body too large", req{method: "POST", target: retailPath + "/pause", token: adminToken, body: `{"reason":"` + strings.Repeat("x", maxBody) + `"}`}, nil, 413, "larger than", nil},
		{"reason too long", req{method: "POST", target: retailPath + "/pause", token: adminToken, body: `{"reason":"` + strings.Repeat("x", maxReason+1) + `"}`}, nil, 400, "at most", nil},
		{"resume with a field", req{method: "POST", target: partnerPath + "/resume", token: adminToken, body: `{"reason":"x"}`}, nil, 400, "unknown field", nil},
		{"bad queue", req{method: "POST", target: retailPath + "/sync?queue=maybe", token: adminToken}, nil, 400, "queue must be", nil},
		{"limit zero", req{method: "GET", target: "/api/v1/dead-letters?limit=0"}, nil, 400, "limit must be", nil},
		{"limit too large", req{method: "GET", target: "/api/v1/dead-letters?limit=1001"}, nil, 400, "limit must be", nil},
		{"limit not a number", req{method: "GET", target: corpPath + "/runs?limit=ten"}, nil, 400, "limit must be", nil},
		{"wrong method", req{method: "DELETE", target: corpPath}, nil, 405, "method not allowed", func(t *testing.T, w *httptest.ResponseRecorder) {
			if allow := w.Header().Get("Allow"); !strings.Contains(allow, "GET") {
				t.Errorf("Allow %q", allow)
			}
		}},
		{"GET on a POST route", req{method: "GET", target: corpPath + "/sync"}, nil, 405, "method not allowed", func(t *testing.T, w *httptest.ResponseRecorder) {
			if allow := w.Header().Get("Allow"); allow != "POST" {
				t.Errorf("Allow %q, want POST", allow)
			}
		}},
		{"POST on the page", req{method: "POST", target: "/"}, nil, 405, "method not allowed", nil},
		{"unknown path", req{method: "GET", target: "/api/v2/things"}, nil, 404, "not found", nil},
		{"unknown path under a directory", req{method: "GET", target: corpPath + "/nothing"}, nil, 404, "not found", nil},
		{"source failure", req{method: "GET", target: "/api/v1/directories"}, map[string]error{"Directories": errBroken}, 500, "internal error", nil},
		{"source failure on write", req{method: "POST", target: retailPath + "/resume", token: adminToken}, map[string]error{"Resume": errBroken}, 500, "internal error", nil},
		{"wrapped conflict", req{method: "POST", target: retailPath + "/sync", token: adminToken},
			map[string]error{"RequestSync": fmt.Errorf("sync request: %w", &control.ConflictError{Reason: "paused", Message: "directory \"Retail AD\" is paused"})}, 409, "is paused", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := richState(false)
			src.Fail = tt.fail
			hs := newHarness(t, fullConfig(), src)
			if tt.r.token == "" {
				tt.r.token = readToken
			}
			w := hs.do(tt.r)
			if w.Code != tt.status {
				t.Fatalf("%d, want %d; body %s", w.Code, tt.status, w.Body)
			}
			e := decode[errorBody](t, w)
			if !strings.Contains(e.Error, tt.msg) {
				t.Errorf("error %q, want it to contain %q", e.Error, tt.msg)
			}
			if tt.check != nil {
				tt.check(t, w)
			}
			if tt.status == 500 {
				if strings.Contains(w.Body.String(), "DIRSYNC_RUNS") {
					t.Errorf("500 body leaks the detail: %s", w.Body)
				}
				if !strings.Contains(hs.logs.String(), "DIRSYNC_RUNS") {
					t.Errorf("the detail is not logged: %s", hs.logs)
				}
			}
		})
	}
}

// TestProbes: /metrics, /healthz and /readyz are the given handlers, open whatever the tokens,
// and 404 when not given.
func TestProbes(t *testing.T) {
	ready := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Error("the probe saw an Authorization header it should not need")
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "vidm: not reachable")
	})
	hs := newHarness(t, Config{Token: adminToken, ReadToken: readToken, Readyz: ready}, nil)
	if w := hs.do(req{method: "GET", target: "/readyz"}); w.Code != 503 || w.Body.String() != "vidm: not reachable" {
		t.Errorf("readyz: %d %q", w.Code, w.Body)
	}
	for _, p := range []string{"/metrics", "/healthz"} {
		if w := hs.do(req{method: "GET", target: p}); w.Code != 404 || decode[errorBody](t, w).Error == "" {
			t.Errorf("%s without a handler: %d %s", p, w.Code, w.Body)
		}
	}
	if w := hs.do(req{method: "HEAD", target: "/readyz"}); w.Code != 503 {
		t.Errorf("HEAD /readyz: %d", w.Code)
	}
}

func TestDefaults(t *testing.T) {
	src := richState(false)
	h := New(Config{ReadOpen: true}, src)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 200 || !strings.Contains(w.Body.String(), `<meta http-equiv="refresh" content="5">`) {
		t.Errorf("page with defaults: %d %.300s", w.Code, w.Body)
	}
	if !slices.Contains(src.Calls(), "Runs default/"+idCorp+" limit=20") {
		t.Errorf("history runs default: calls %q", src.Calls())
	}
}

// manyDirectories is a worker with n directories named dir-0000 … and nothing else.
func manyDirectories(n int) *fakeSource {
	f := &fakeSource{Now: testNow, RunHistory: map[string][]control.Run{}}
	for i := range n {
		state := control.StateIdle
		if i%40 == 7 {
			state = control.StateStuck
		}
		f.Dirs = append(f.Dirs, control.Directory{Tenant: "default", DirectoryID: fmt.Sprintf("id-%04d", i), Name: fmt.Sprintf("dir-%04d", i), State: state, Known: true})
	}
	return f
}

// TestDirectoryListPages: the directory list is answered a page at a time; following next visits
// every directory once, in order, even when one is removed between two pages; state filters;
// bad parameters are refused.
func TestDirectoryListPages(t *testing.T) {
	page := func(t *testing.T, hs *harness, target string) control.DirectoryList {
		t.Helper()
		w := hs.do(req{method: "GET", target: target, token: readToken})
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", target, w.Code, w.Body)
		}
		return decode[control.DirectoryList](t, w)
	}
	tests := []struct {
		name      string
		query     string // besides after
		removeAt  int    // remove the first directory of this page (from 1) before asking for it; 0: none
		wantPages []int  // directories per page
		wantTotal int
	}{
		{"default limit", "", 0, []int{100, 100, 50}, 250},
		{"limit 1000", "limit=1000", 0, []int{250}, 250},
		{"limit 99", "limit=99", 0, []int{99, 99, 52}, 250},
		{"a directory removed between pages", "limit=100", 2, []int{100, 100, 50}, 249},
		{"stuck only", "state=stuck&limit=5", 0, []int{5, 2}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := manyDirectories(250)
			hs := newHarness(t, fullConfig(), src)
			var got []int
			var names []string
			total := 0
			after := ""
			for n := 1; ; n++ {
				if n == tt.removeAt {
					src.Change(func(src *fakeSource) {
						src.Dirs = src.Dirs[1:] // a directory already listed: nothing may shift
					})
				}
				target := "/api/v1/directories?" + tt.query
				if after != "" {
					target += "&after=" + url.QueryEscape(after)
				}
				p := page(t, hs, target)
				got = append(got, len(p.Directories))
				for _, d := range p.Directories {
					names = append(names, d.Name)
				}
				total = p.Total
				if p.Next == "" {
					break
				}
				if n > 10 {
					t.Fatal("no last page")
				}
				after = p.Next
			}
			if !slices.Equal(got, tt.wantPages) || total != tt.wantTotal {
				t.Errorf("pages %v (total %d), want %v (total %d)", got, total, tt.wantPages, tt.wantTotal)
			}
			if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
				t.Errorf("directories out of order or repeated: %v", names)
			}
			// Every directory listed once: the one removed was on the first page.
			if want := sum(tt.wantPages); len(names) != want {
				t.Errorf("%d directories listed, want %d", len(names), want)
			}
		})
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "state=busy", "after=%21%21", "after=" + base64url("only-two\x00parts")} {
		t.Run("refused "+q, func(t *testing.T) {
			hs := newHarness(t, fullConfig(), manyDirectories(3))
			if w := hs.do(req{method: "GET", target: "/api/v1/directories?" + q, token: readToken}); w.Code != 400 {
				t.Errorf("%s: %d %s", q, w.Code, w.Body)
			}
		})
	}
}

func sum(ns []int) (n int) {
	for _, v := range ns {
		n += v
	}
	return n
}

func base64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// A captured cookie reveals nothing about the token: two sign-ins with the same token get
// unrelated values, neither holding the token or a digest of it.
func TestSessionCookieRevealsNothingAboutTheToken(t *testing.T) {
	hs := newHarness(t, fullConfig(), nil)
	_, a := hs.login(adminToken, false)
	_, b := hs.login(adminToken, false)
	if a == nil || b == nil || a.Value == b.Value {
		t.Fatalf("two sign-ins gave %v and %v", a, b)
	}
	sum := sha256.Sum256([]byte(adminToken))
	for _, c := range []*http.Cookie{a, b} {
		raw, err := base64.RawURLEncoding.DecodeString(c.Value)
		if err != nil || len(raw) != 32 {
			t.Fatalf("cookie %q is not 32 random bytes", c.Value)
		}
		for _, leak := range []string{adminToken, hex.EncodeToString(sum[:]), base64.RawURLEncoding.EncodeToString(sum[:]), string(sum[:8])} {
			if strings.Contains(c.Value, leak) || strings.Contains(string(raw), leak) {
				t.Fatalf("cookie %q carries %q", c.Value, leak)
			}
		}
	}
}

// Guessing at /login is slowed per client address: after a few failures the same client gets
// 429 with Retry-After, even with the right token, while another client still signs in; the wait
// doubles with each failure, and ends.
func TestSignInBackoffPerClient(t *testing.T) {
	hs := newHarness(t, fullConfig(), nil)
	from := func(addr, token string) *httptest.ResponseRecorder {
		hr := httptest.NewRequest("POST", "/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		hr.RemoteAddr = addr
		w := httptest.NewRecorder()
		hs.h.ServeHTTP(w, hr)
		return w
	}
	const guesser, colleague = "198.51.100.7:50000", "203.0.113.9:41000"
	for i := range freeSignIns {
		if w := from(guesser, fmt.Sprintf("guess-%d", i)); w.Code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i, w.Code)
		}
	}
	w := from(guesser, adminToken)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("after %d failures: %d Retry-After %q, want 429 and 1", freeSignIns, w.Code, w.Header().Get("Retry-After"))
	}
	if w := from(colleague, readToken); w.Code != http.StatusSeeOther {
		t.Fatalf("another client: %d, want a sign-in", w.Code)
	}
	*hs.now = hs.now.Add(time.Second)
	if w := from(guesser, "guess-again"); w.Code != http.StatusUnauthorized {
		t.Fatalf("after waiting: %d, want 401", w.Code)
	}
	if w := from(guesser, adminToken); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "2" {
		t.Fatalf("the next wait: %d Retry-After %q, want 429 and 2", w.Code, w.Header().Get("Retry-After"))
	}
	*hs.now = hs.now.Add(2 * time.Second)
	if w := from(guesser, adminToken); w.Code != http.StatusSeeOther {
		t.Fatalf("the right token after the wait: %d, want a sign-in", w.Code)
	}
	if w := from(guesser, "guess-after-success"); w.Code != http.StatusUnauthorized {
		t.Fatalf("a success resets the count: %d, want 401", w.Code)
	}
}
