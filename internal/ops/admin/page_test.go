package admin

import (
	stdhtml "html"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

func getPage(t *testing.T, hs *harness, target string) (int, string) {
	t.Helper()
	w := hs.do(req{method: "GET", target: target, token: readToken})
	if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	return w.Code, w.Body.String()
}

// row returns the HTML of the directory table row whose data-directory is name.
func row(t *testing.T, html, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<tr id="dir-[^"]*" class="directory" data-directory="` + regexp.QuoteMeta(name) + `".*?</tr>`).FindString(html)
	if m == "" {
		t.Fatalf("no row for directory %q", name)
	}
	return m
}

// text strips tags and collapses white space: roughly what a person reads.
func text(html string) string {
	s := regexp.MustCompile(`(?s)<style>.*?</style>`).ReplaceAllString(html, " ")
	s = regexp.MustCompile(`</?(div|td|th|tr|p|li|h\d|section|table|thead|tbody|ul|summary|details|br|b|header|footer|main)\b[^>]*>`).ReplaceAllString(s, " ")
	s = regexp.MustCompile(`<[^>]*>`).ReplaceAllString(s, "")
	return strings.Join(strings.Fields(stdhtml.UnescapeString(s)), " ")
}

// TestStatusPageStates: each directory state, the last run and the run history read as a
// person would want them.
func TestStatusPageStates(t *testing.T) {
	hs := newHarness(t, fullConfig(), nil)
	status, html := getPage(t, hs, "/")
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	tests := []struct {
		dir   string
		state string
		texts []string // in the row's text
	}{
		{"Corp AD", "syncing", []string{"syncing since 14:28:53 (3m 12s)", "run run-01HXC7M2 on vidm-sync-worker-7d9f8-x2k4q",
			"2 more triggers wait for the follow-up run", "covers group proj-alpha-admins, group proj-alpha-devs, user jdoe@corp.example.com",
			"COMPLETED", "finished 13:31:24 (1h ago) · took 1m 21s", "covered group proj-beta-readers, group proj-beta-admins", "corp.example.com, emea.corp.example.com", "tenant default · vidm · ACTIVE_DIRECTORY_LDAP"}},
		{"Lab AD", "pending", []string{"pending 3 triggers", "FAILED", "VIDM_SYNC_FAILED LDAP bind failed for CN=svc-vidm,OU=Service Accounts,DC=lab,DC=example,DC=com: invalid credentials", "took 2m"}},
		{"Partner Directory", "paused", []string{"paused since 12:32:05: vIDM upgrade window (CHG0042137)", "4 triggers are held until it is resumed"}},
		{"Retail AD", "idle", []string{"idle", "DELEGATED", "(25m ago)", "took 58s", "covered group proj-retail-pos-ops"}},
		{"Old Test AD", "idle", []string{"not in vIDM", "VIDM_SYNC_TIMEOUT the sync did not finish within 30m0s retryable", "finished May 10 13:02"}},
	}
	for _, tt := range tests {
		r := row(t, html, tt.dir)
		if !strings.Contains(r, `data-state="`+tt.state+`"`) {
			t.Errorf("%s: no data-state=%q in %s", tt.dir, tt.state, r)
		}
		for _, want := range tt.texts {
			if !strings.Contains(text(r), want) {
				t.Errorf("%s: %q not in %q", tt.dir, want, text(r))
			}
		}
	}
	all := text(html)
	for _, want := range []string{
		"vidm-sync-worker v1.4.0-test", "2026-05-12 14:32:05 UTC", "refreshes every 5s",
		"6 directories 1 stuck 1 syncing 21 pending triggers 1 paused 2 last run failed 7 dead letters",
		// Run history: every run with the triggers it covered, group names included.
		"proj-beta-readers", "proj-beta-admins", "lab-k8s-operators", "user asmith@lab.example.com", "proj-retail-pos-ops",
		"request urn:pipeline:ad-provisioning vidm.directory.sync.requested",
		// Dead letters.
		"Dead letters (7)", "the latest 3", "UNKNOWN_DIRECTORY", `no vIDM directory is named or has the domain "corp.exmaple.com"`,
		"dirsync.trigger.pipeline.provisioning", "MALFORMED", "not a CloudEvent",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("page text lacks %q", want)
		}
	}
	for _, want := range []string{
		`<meta http-equiv="refresh" content="5">`,
		`(<a href="/?refresh=off">stop</a>)`,
		`<details id="runs-dir-default--` + idCorp + `" class="runs" data-directory="Corp AD">`,
		`data-run-id="run-01HXC5T7" data-status="FAILED"`,
		`data-kind="group" data-name="proj-alpha-admins"`,
		`<tr class="dead-letter" data-seq="412" data-code="UNKNOWN_DIRECTORY">`,
		`id="summary-dead-letters" href="#dead-letters" data-count="7"`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(html, `id="logout"`) {
		t.Error("sign-out offered to a bearer-token client")
	}
}

// TestStatusPageEscapes: hostile directory names, reasons, errors and group names are shown as
// text, never as markup.
func TestStatusPageEscapes(t *testing.T) {
	hs := newHarness(t, fullConfig(), richState(true))
	_, html := getPage(t, hs, "/?open=all")
	for _, bad := range []string{"<script>", "<img", "<b onmouseover", "<svg", "</td><script>", "<i>"} {
		if strings.Contains(html, bad) {
			t.Errorf("page contains raw %q", bad)
		}
	}
	for _, want := range []string{
		`&lt;script&gt;alert(1)&lt;/script&gt;`,
		`&#34;&gt;&lt;img src=x onerror=alert(2)&gt;`,
		`paused since 14:31:05: &lt;b onmouseover=alert(3)&gt;x&lt;/b&gt;`,
		`&lt;/td&gt;&lt;script&gt;alert(4)&lt;/script&gt;`,
		`&lt;svg onload=alert(5)&gt;`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks the escaped %s", want)
		}
	}
	if !strings.Contains(html, `data-directory="&lt;script&gt;alert(1)&lt;/script&gt;"`) {
		t.Error("the hostile name is not escaped in its data-directory attribute")
	}
}

// TestStatusPageLinks: ?open keeps a directory's runs open across refreshes, ?refresh=off stops
// the refresh; both survive in the page's own links.
func TestStatusPageLinks(t *testing.T) {
	hs := newHarness(t, fullConfig(), nil)
	_, html := getPage(t, hs, "/?open=default/"+idLab+"&refresh=off")
	if strings.Contains(html, `http-equiv="refresh"`) || !strings.Contains(html, "auto-refresh off") {
		t.Error("refresh=off still refreshes")
	}
	if !strings.Contains(html, `id="runs-dir-default--`+idLab+`" class="runs" data-directory="Lab AD" open>`) {
		t.Error("the opened directory's runs are closed")
	}
	if strings.Contains(html, `data-directory="Corp AD" open>`) {
		t.Error("a directory not asked for is open")
	}
	// Corp AD's link opens it too, keeping Lab AD open and the refresh off.
	want := `href="/?open=default%2F` + idLab + `&amp;open=default%2F` + idCorp + `&amp;refresh=off#dir-default--` + idCorp + `"`
	if !strings.Contains(html, want) {
		t.Errorf("Corp AD's link: want %s in %s", want, row(t, html, "Corp AD"))
	}
	if !strings.Contains(html, `<a href="/?open=default%2F`+idLab+`">start</a>`) {
		t.Error("no link to restart the refresh")
	}
}

// ?open= is bounded: every directory's link repeats it, so an unbounded list multiplies the page.
func TestStatusPageOpenIsBounded(t *testing.T) {
	hs := newHarness(t, fullConfig(), nil)
	many := "/?open=all" + strings.Repeat("&open=default/"+idLab, maxOpen)
	long := "/?open=" + strings.Repeat("x", maxOpenLen+1)
	for _, target := range []string{many, long} {
		if w := hs.do(req{method: "GET", target: target, token: readToken}); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "open= names at most") {
			t.Errorf("GET %.60s…: %d %.200s, want 400", target, w.Code, w.Body)
		}
	}
	if w := hs.do(req{method: "GET", target: "/?open=all" + strings.Repeat("&open=default/"+idLab, maxOpen-1), token: readToken}); w.Code != http.StatusOK {
		t.Errorf("%d opened directories: %d, want 200", maxOpen, w.Code)
	}
}

// TestStatusPageSourceFailures: the page shows what it could read and says what it could not,
// without the detail (which goes to the log).
func TestStatusPageSourceFailures(t *testing.T) {
	t.Run("directories", func(t *testing.T) {
		src := richState(false)
		src.Fail = map[string]error{"Directories": errBroken}
		hs := newHarness(t, fullConfig(), src)
		status, html := getPage(t, hs, "/")
		if status != 500 || !strings.Contains(html, "The directories could not be read") || !strings.Contains(html, "UNKNOWN_DIRECTORY") {
			t.Errorf("%d %s", status, text(html))
		}
		if strings.Contains(html, "DIRSYNC_RUNS") || !strings.Contains(hs.logs.String(), "DIRSYNC_RUNS") {
			t.Error("the detail is on the page or not in the log")
		}
	})
	t.Run("runs and dead letters", func(t *testing.T) {
		src := richState(false)
		src.Fail = map[string]error{"Runs": errBroken, "DeadLetters": errBroken}
		hs := newHarness(t, fullConfig(), src)
		status, html := getPage(t, hs, "/")
		if status != 200 || !strings.Contains(html, "The runs could not be read") || !strings.Contains(html, "The dead letters could not be read") ||
			!strings.Contains(text(html), "pending 3 triggers") || !strings.Contains(text(html), "? dead letters") {
			t.Errorf("%d %s", status, text(html))
		}
	})
	t.Run("empty", func(t *testing.T) {
		hs := newHarness(t, fullConfig(), &fakeSource{})
		status, html := getPage(t, hs, "/")
		if status != 200 || !strings.Contains(html, `id="no-directories"`) || !strings.Contains(html, `id="no-dead-letters"`) {
			t.Errorf("%d %s", status, text(html))
		}
	})
}

// TestLoginPage: the 401 page is the sign-in form, and it says when signing in cannot work.
func TestLoginPage(t *testing.T) {
	hs := newHarness(t, fullConfig(), nil)
	w := hs.do(req{method: "GET", target: "/"})
	if w.Code != 401 || !strings.Contains(w.Body.String(), `<form id="login-form" method="post" action="/login">`) {
		t.Errorf("unauthenticated page: %d %.300s", w.Code, w.Body)
	}
	if strings.Contains(w.Body.String(), "Corp AD") || len(hs.src.Calls()) != 0 {
		t.Error("the unauthenticated page shows directories")
	}
	none := newHarness(t, Config{}, nil)
	if w := none.do(req{method: "GET", target: "/login"}); !strings.Contains(w.Body.String(), "nobody can sign in") {
		t.Errorf("login without tokens: %.500s", w.Body)
	}
	open := newHarness(t, Config{ReadOpen: true}, nil)
	if w := open.do(req{method: "GET", target: "/login"}); !strings.Contains(w.Body.String(), "signing in is not needed") {
		t.Errorf("login with ReadOpen: %.500s", w.Body)
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "<1s", 999 * time.Millisecond: "<1s", 42 * time.Second: "42s", 192 * time.Second: "3m 12s",
		12 * time.Minute: "12m", time.Hour + 4*time.Minute + 59*time.Second: "1h 04m", 2 * time.Hour: "2h", 76 * time.Hour: "3d 4h",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestStatusPageShowsBackendsConnectorsAndDelegations: which backend a directory is on, its
// sync connectors in failover order, a sync that failed over to the next connector, and a
// directory the identity provider keeps current (VCF) read as such, and the groups a completed
// sync did not bring.
func TestStatusPageShowsBackendsConnectorsAndDelegations(t *testing.T) {
	hs := newHarness(t, fullConfig(), richState(false))
	code, html := getPage(t, hs, "/?open=default/"+idCorp)
	if code != 200 {
		t.Fatalf("status page: %d", code)
	}
	corp := text(row(t, html, "Corp AD"))
	for _, want := range []string{"tenant default · vidm", "connectors connector-01.corp.example.com → connector-02.corp.example.com",
		"connector-01.corp.example.com FAILED (connector connector-01.corp.example.com unavailable) → connector-02.corp.example.com COMPLETED"} {
		if !strings.Contains(corp, want) {
			t.Errorf("Corp AD row lacks %q:\n%s", want, corp)
		}
	}
	if !strings.Contains(corp, "1 visible · 1 not visible (outside the sync scope?): proj-beta-admins") {
		t.Errorf("Corp AD row does not show the group the readiness check did not find:\n%s", corp)
	}
	retail := row(t, html, "Retail AD")
	if !strings.Contains(retail, `data-status="DELEGATED"`) || !strings.Contains(retail, `data-kind="SCIM"`) ||
		!strings.Contains(text(retail), "pushed by its SCIM sync client") || !strings.Contains(text(retail), "· vcf") {
		t.Errorf("Retail AD row does not read as delegated to Okta's SCIM client:\n%s", text(retail))
	}
}

// TestStatusPageStuckAndLargeRuns: a stuck directory is at the top, above the table, with its
// failures, since when and the error; a run failing but not yet stuck shows its failures; a run
// of 100,000 triggers reads as a sample of its total, reported in several result events.
func TestStatusPageStuckAndLargeRuns(t *testing.T) {
	hs := newHarness(t, fullConfig(), richState(false))
	_, html := getPage(t, hs, "/?open=default/"+idHR)
	stuck := regexp.MustCompile(`(?s)<section id="stuck".*?</section>`).FindString(html)
	if stuck == "" {
		t.Fatalf("no stuck section:\n%s", text(html))
	}
	if strings.Index(html, `<section id="stuck"`) > strings.Index(html, `<section id="directories"`) {
		t.Error("the stuck section is below the directory table")
	}
	tests := []struct {
		where string
		got   string
		want  []string
		not   []string
	}{
		{"stuck section", text(stuck), []string{"Stuck: 1 directory whose run keeps failing", "HR AD",
			"failed 7 times in a row since 13:54:05 (38m), last 14:30:05: starting the sync: vIDM answered 401: the OAuth client svc-dirsync is disabled",
			"resumes once the cause is gone", "holds back the runs after this one"}, []string{"Corp AD"}},
		{"HR AD row", text(row(t, html, "HR AD")), []string{"stuck: 7 failures in a row", "failed 7 times in a row",
			"svc-dirsync is disabled", "(first 5 of 100,000)", "12 more triggers wait for the follow-up run",
			"covered group hr-onboarding-wave-01, group hr-onboarding-wave-02, group hr-onboarding-wave-03 (first 3 of 2,500)"}, nil},
		{"Corp AD row", text(row(t, html, "Corp AD")), []string{"syncing since", "failed 2 times in a row since 14:30:55 (1m 10s), last 14:31:45: polling the sync status: vIDM answered 503 Service Unavailable"}, []string{"stuck"}},
		{"Lab AD row", text(row(t, html, "Lab AD")), []string{"pending 3 triggers"}, []string{"failed 2 times", "in a row"}},
		{"HR AD runs", text(regexp.MustCompile(`(?s)<details id="runs-dir-default--` + idHR + `".*?</details>`).FindString(html)),
			[]string{"to be reported in 7 result events", "first 10 of 100,000 triggers; the run's result events list them all",
				"hr-onboarding-wave-10", "first 3 of 2,500 triggers"}, []string{"reported in 1 result events"}},
	}
	for _, tt := range tests {
		for _, want := range tt.want {
			if !strings.Contains(tt.got, want) {
				t.Errorf("%s: %q not in\n%s", tt.where, want, tt.got)
			}
		}
		for _, bad := range tt.not {
			if strings.Contains(tt.got, bad) {
				t.Errorf("%s: %q in\n%s", tt.where, bad, tt.got)
			}
		}
	}
	// Stuck first in the table too, and marked as such.
	if first := regexp.MustCompile(`<tr id="dir-[^"]*" class="directory" data-directory="([^"]*)"`).FindStringSubmatch(html); first == nil || first[1] != "HR AD" {
		t.Errorf("first row %v, want HR AD", first)
	}
	if !strings.Contains(html, `data-directory="HR AD" data-tenant="default" data-directory-id="`+idHR+`" data-state="stuck"`) ||
		!strings.Contains(html, `id="summary-stuck" href="#stuck" data-count="1"`) {
		t.Error("the stuck row or summary is not marked")
	}

	// Nothing stuck: no section, the summary's stuck count is 0.
	calm := richState(false)
	calm.Dirs = calm.Dirs[:len(calm.Dirs)-1]
	_, html = getPage(t, newHarness(t, fullConfig(), calm), "/")
	if strings.Contains(html, `<section id="stuck"`) || !strings.Contains(html, `id="summary-stuck" href="#stuck" data-count="0"`) {
		t.Errorf("without a stuck directory: %s", text(html))
	}
}

// TestStatusPageBoundsDirectories: with more directories than the page lists, it lists the stuck
// ones first, at most pageDirectories rows, and says how many more the API has.
func TestStatusPageBoundsDirectories(t *testing.T) {
	src := manyDirectories(pageDirectories + 120)
	hs := newHarness(t, fullConfig(), src)
	_, html := getPage(t, hs, "/")
	rows := regexp.MustCompile(`<tr id="dir-[^"]*" class="directory" data-directory="([^"]*)"[^>]*data-state="([^"]*)"`).FindAllStringSubmatch(html, -1)
	if len(rows) != pageDirectories {
		t.Fatalf("%d rows, want %d", len(rows), pageDirectories)
	}
	stuck := (pageDirectories + 120 + 32) / 40 // i%40 == 7
	for i, r := range rows {
		if (i < stuck) != (r[2] == "stuck") {
			t.Fatalf("row %d is %s %s; want the %d stuck directories first", i, r[1], r[2], stuck)
		}
	}
	if !strings.Contains(text(html), "and 120 more directories, not listed here") ||
		!strings.Contains(html, `id="summary-directories" data-count="620"`) {
		t.Errorf("the page does not say what it left out: %s", text(html))
	}
	if n := len(src.Calls()); n > pageDirectories+2 {
		t.Errorf("%d calls to the Source for one page", n)
	}
}
