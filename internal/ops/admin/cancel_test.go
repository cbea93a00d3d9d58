package admin

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// signIn signs a browser in with token and returns its session cookie.
func signIn(t *testing.T, hs *harness, token string) *http.Cookie {
	t.Helper()
	w := hs.do(req{method: "POST", target: "/login", body: "token=" + token, header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}})
	if w.Code != http.StatusSeeOther || len(w.Result().Cookies()) != 1 {
		t.Fatalf("sign-in: %d %v", w.Code, w.Result().Cookies())
	}
	return w.Result().Cookies()[0]
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// formToken opens the cancel form as the browser with cookie and returns its anti-forgery token.
func openForm(t *testing.T, hs *harness, target string, cookie *http.Cookie) string {
	t.Helper()
	w := hs.do(req{method: "GET", target: target, cookie: cookie})
	m := csrfField.FindStringSubmatch(w.Body.String())
	if w.Code != http.StatusOK || m == nil {
		t.Fatalf("cancel form: %d, no csrf field in %.800s", w.Code, w.Body)
	}
	return html.UnescapeString(m[1])
}

// TestCancelForm: the status page's form cancels only for a same-origin browser signed in with
// ADMIN_TOKEN that sends the token its own page gave it; everything else is refused before the
// Source is asked.
func TestCancelForm(t *testing.T) {
	target := "/directories/default/" + idLab + "/cancel"
	sameOrigin := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Sec-Fetch-Site": {"same-origin"}}
	post := func(cookie *http.Cookie, h http.Header, form url.Values) req {
		return req{method: "POST", target: target, cookie: cookie, header: h, body: form.Encode()}
	}
	with := func(h http.Header, k, v string) http.Header {
		h = h.Clone()
		h.Set(k, v)
		return h
	}
	tests := []struct {
		name   string
		r      func(admin, reader, other *http.Cookie, token, otherToken string) req
		status int
		want   string // in the answer
		cancel bool   // the Source was asked to cancel
	}{
		{"sent from the page", func(admin, _, _ *http.Cookie, token, _ string) req {
			return post(admin, sameOrigin, url.Values{"csrf": {token}, "by": {"alice"}, "reason": {"wrong group names"}})
		}, 200, `id="cancel-done" data-triggers="3"`, true},
		{"from another site (Sec-Fetch-Site)", func(admin, _, _ *http.Cookie, token, _ string) req {
			return post(admin, with(sameOrigin, "Sec-Fetch-Site", "cross-site"), url.Values{"csrf": {token}, "by": {"alice"}, "reason": {"x"}})
		}, 403, "only be sent from the worker", false},
		{"from another site (Origin)", func(admin, _, _ *http.Cookie, token, _ string) req {
			h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {"https://evil.example"}}
			return post(admin, h, url.Values{"csrf": {token}, "by": {"alice"}, "reason": {"x"}})
		}, 403, "only be sent from the worker", false},
		{"without the form's token", func(admin, _, _ *http.Cookie, _, _ string) req {
			return post(admin, sameOrigin, url.Values{"by": {"alice"}, "reason": {"x"}})
		}, 403, "did not come from this page", false},
		{"with another session's token", func(admin, _, _ *http.Cookie, _, otherToken string) req {
			return post(admin, sameOrigin, url.Values{"csrf": {otherToken}, "by": {"alice"}, "reason": {"x"}})
		}, 403, "did not come from this page", false},
		{"signed in with the read-only token", func(_, reader, _ *http.Cookie, token, _ string) req {
			return post(reader, sameOrigin, url.Values{"csrf": {token}, "by": {"alice"}, "reason": {"x"}})
		}, 403, "read-only token cannot", false},
		{"not signed in", func(_, _, _ *http.Cookie, token, _ string) req {
			return post(nil, sameOrigin, url.Values{"csrf": {token}, "by": {"alice"}, "reason": {"x"}})
		}, 403, "Sign in with ADMIN_TOKEN", false},
		{"without a reason", func(admin, _, _ *http.Cookie, token, _ string) req {
			return post(admin, sameOrigin, url.Values{"csrf": {token}, "by": {"alice"}})
		}, 400, "say why", false},
		{"a name with a line break", func(admin, _, _ *http.Cookie, token, _ string) req {
			return post(admin, sameOrigin, url.Values{"csrf": {token}, "by": {"alice\nINFO forged"}, "reason": {"x"}})
		}, 400, "printable", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t, fullConfig(), nil)
			admin, reader, other := signIn(t, hs, adminToken), signIn(t, hs, readToken), signIn(t, hs, adminToken)
			if w := hs.do(req{method: "GET", target: target, cookie: reader}); strings.Contains(w.Body.String(), `id="cancel-form"`) {
				t.Fatal("a read-only session was shown the cancel form")
			}
			token, otherToken := openForm(t, hs, target, admin), openForm(t, hs, target, other)
			if token == otherToken {
				t.Fatal("two sessions share a form token")
			}
			w := hs.do(tt.r(admin, reader, other, token, otherToken))
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.want) {
				t.Fatalf("status %d (want %d), body lacks %q: %.1500s", w.Code, tt.status, tt.want, w.Body)
			}
			cancelled := slices.ContainsFunc(hs.src.Calls(), func(c string) bool { return strings.HasPrefix(c, "Cancel ") })
			if cancelled != tt.cancel {
				t.Errorf("Source calls %q; cancel asked: %v, want %v", hs.src.Calls(), cancelled, tt.cancel)
			}
			if tt.cancel && !slices.Contains(hs.src.Calls(), `Cancel default/`+idLab+` by="alice (status page)" reason="wrong group names"`) {
				t.Errorf("Source calls %q", hs.src.Calls())
			}
		})
	}
}

// TestStatusPageLinksTheCancelForm: a directory with pending triggers links its cancel form; one
// without does not.
func TestStatusPageLinksTheCancelForm(t *testing.T) {
	hs := newHarness(t, fullConfig(), nil)
	_, page := getPage(t, hs, "/")
	if r := row(t, page, "Lab AD"); !strings.Contains(r, `href="/directories/default/`+idLab+`/cancel"`) {
		t.Errorf("Lab AD (3 pending) has no cancel link: %s", r)
	}
	if r := row(t, page, "Retail AD"); strings.Contains(r, "cancel-link") {
		t.Errorf("Retail AD (none pending) has a cancel link: %s", r)
	}
}
