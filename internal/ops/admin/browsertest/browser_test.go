package browsertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/admin"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/adminfake"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/logbuf"
)

// ChromiumPath is Debian's Chromium, which .ci/run installs.
const ChromiumPath = "/usr/bin/chromium"

// browserTimeout bounds each page operation; Chromium's first start on a cold CI machine is
// the slowest part.
const browserTimeout = 60 * time.Second

// Browser is a headless Chromium driving one tab, recording the JavaScript dialogs and the
// console and log errors the pages it opens produce.
type Browser struct {
	ctx context.Context // the tab; the browser was started with it

	mu       sync.Mutex
	dialogs  []string
	problems []string
}

// NewBrowser starts headless Chromium for the test and closes it at cleanup. Without Chromium
// the test is skipped, or fails under CI (CI=true), which installs it.
func NewBrowser(t testing.TB) *Browser {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Chromium is missing (%v); .ci/run installs it with apt-get", err)
		}
		t.Skipf("Chromium is not installed at %s (apt-get install chromium); skipping the browser test", ChromiumPath)
	}
	out := &logbuf.Buffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		// The machine's network is closed: without these Chromium's own background
		// connections are refused and it stalls.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(out),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first Do starts the browser and binds it to ctx, so it gets no deadline of its own;
	// a hung start is ended by cancelling the allocator instead.
	stop := time.AfterFunc(2*browserTimeout, cancelAlloc)
	err := chromedp.Do(ctx)
	stop.Stop()
	if err != nil {
		t.Fatalf("starting Chromium: %v\n%s", err, out)
	}
	b := &Browser{ctx: ctx}
	b.watch()
	return b
}

// watch records dialogs (and dismisses them, so a page cannot block) and errors the pages log.
func (b *Browser) watch() {
	dialogs := chromedp.Events(b.ctx, page.JavascriptDialogOpening)
	console := chromedp.Events(b.ctx, runtime.ConsoleAPICalled)
	entries := chromedp.Events(b.ctx, log.EntryAdded)
	exceptions := chromedp.Events(b.ctx, runtime.ExceptionThrown)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.note(&b.dialogs, string(ev.Type)+": "+ev.Message)
			_, _ = chromedp.Call(b.ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	go func() {
		for ev, err := range console {
			if err != nil {
				return
			}
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				b.note(&b.problems, "console."+string(ev.Type))
			}
		}
	}()
	go func() {
		for ev, err := range entries {
			if err != nil {
				return
			}
			// A 401 is the expected answer to a page loaded before signing in, not a fault.
			if ev.Entry.Level == log.EntryLevelError && !strings.Contains(ev.Entry.Text, "status of 401") {
				b.note(&b.problems, string(ev.Entry.Source)+": "+ev.Entry.Text+" "+ev.Entry.URL)
			}
		}
	}()
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			b.note(&b.problems, "exception: "+ev.ExceptionDetails.Text)
		}
	}()
}

func (b *Browser) note(list *[]string, s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	*list = append(*list, s)
}

// forget clears the dialogs and problems recorded so far: each load is judged on its own.
func (b *Browser) forget() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dialogs, b.problems = nil, nil
}

// Dialogs returns the JavaScript dialogs (alert, confirm, prompt) opened since the last load.
func (b *Browser) Dialogs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.dialogs)
}

// Problems returns the errors logged since the last load: console errors, uncaught exceptions, and
// the browser's own (a refused resource, a Content-Security-Policy violation).
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.problems)
}

// StatusPage is what a person sees of the status page.
type StatusPage struct {
	URL, Title string
	// Text is document.body.innerText after every run history (<details>) was opened by a click
	// on its summary: the text a person can read and find with Ctrl-F.
	Text string
	// Refresh is the content of the auto-refresh meta element, "" without one.
	Refresh string
	// Directories are the rows of the directory table, from their data-* attributes.
	Directories []PageDirectory
	// Runs is the text of each directory's opened run history, by directory name.
	Runs map[string]string
	// Active counts <script> elements and on* event-handler attributes: markup that could run.
	Active int
}

// PageDirectory is one row of the directory table.
type PageDirectory struct {
	Name        string `json:"name"`
	Tenant      string `json:"tenant"`
	DirectoryID string `json:"directoryId"`
	State       string `json:"state"`
}

// ReadStatusPage opens pageURL (the status page, or a URL that leads to it), opens every run
// history by clicking its summary, and reads the page.
func (b *Browser) ReadStatusPage(pageURL string) (StatusPage, error) {
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	b.forget()
	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL), chromedp.WaitReady(chromedp.CSS("body"))); err != nil {
		return StatusPage{}, fmt.Errorf("loading %s: %w", pageURL, err)
	}
	return b.read(ctx)
}

func (b *Browser) read(ctx context.Context) (StatusPage, error) {
	var p StatusPage
	var err error
	if p.URL, err = chromedp.Run(ctx, chromedp.Location()); err != nil {
		return p, err
	}
	if p.Title, err = chromedp.Run(ctx, chromedp.Title()); err != nil {
		return p, err
	}
	if p.Refresh, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('meta[http-equiv="refresh"]')?.content ?? ""`)); err != nil {
		return p, err
	}
	if p.Directories, err = chromedp.Run(ctx, chromedp.Evaluate[[]PageDirectory](
		`[...document.querySelectorAll('tr.directory')].map(r => ({name: r.dataset.directory, tenant: r.dataset.tenant, directoryId: r.dataset.directoryId, state: r.dataset.state}))`)); err != nil {
		return p, err
	}
	closed, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('details.runs:not([open])').length`))
	if err != nil {
		return p, err
	}
	if closed > 0 {
		// Click every closed summary, as a person would (each click opens the first one still
		// closed), then wait until none is closed.
		steps := make([]chromedp.Action[chromedp.Void], 0, closed+1)
		for range closed {
			steps = append(steps, chromedp.Click(chromedp.CSS("details.runs:not([open]) > summary")))
		}
		steps = append(steps, chromedp.WaitNotPresent(chromedp.CSS("details.runs:not([open])")))
		if err := chromedp.Do(ctx, steps...); err != nil {
			return p, fmt.Errorf("opening the run histories: %w", err)
		}
	}
	if p.Text, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`)); err != nil {
		return p, err
	}
	if p.Runs, err = chromedp.Run(ctx, chromedp.Evaluate[map[string]string](
		`Object.fromEntries([...document.querySelectorAll('details.runs')].map(d => [d.dataset.directory, d.innerText]))`)); err != nil {
		return p, err
	}
	p.Active, err = chromedp.Run(ctx, chromedp.Evaluate[int](
		`document.querySelectorAll('script').length + [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.toLowerCase().startsWith('on'))).length`))
	return p, err
}

// errSignInRefused: the login form answered that the token is not valid.
var errSignInRefused = errors.New("sign-in refused")

// SignIn signs in on baseURL's login form (types the token and submits the form) and reads the
// status page it leads to.
func (b *Browser) SignIn(baseURL, token string) (StatusPage, error) {
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	b.forget()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(strings.TrimSuffix(baseURL, "/")+"/login"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("login-submit")),
		// Either the status page or the form again with its complaint.
		chromedp.WaitVisible(chromedp.CSS("#summary, #login-problem")),
	); err != nil {
		return StatusPage{}, fmt.Errorf("signing in at %s: %w", baseURL, err)
	}
	refused, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById('login-problem') !== null`))
	if err != nil {
		return StatusPage{}, err
	}
	if refused {
		return StatusPage{}, errSignInRefused
	}
	return b.read(ctx)
}

// Screenshot saves a full-page PNG of pageURL, 1280 px wide.
func (b *Browser) Screenshot(pageURL, path string) error {
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(pageURL),
		chromedp.WaitVisible(chromedp.ID("summary")),
	); err != nil {
		return fmt.Errorf("loading %s: %w", pageURL, err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return fmt.Errorf("screenshot: %w", err)
	}
	return os.WriteFile(path, png, 0o644)
}

// CheckStatusPage runs the checks that hold for any worker's status page: it loads, shows the
// summary, refreshes itself, every directory row has a known state, nothing on it can run
// script, no dialog opened and nothing was logged as an error.
func CheckStatusPage(t testing.TB, b *Browser, pageURL string) StatusPage {
	t.Helper()
	p, err := b.ReadStatusPage(pageURL)
	if err != nil {
		t.Fatal(err)
	}
	checkPage(t, b, p)
	return p
}

func checkPage(t testing.TB, b *Browser, p StatusPage) {
	t.Helper()
	for _, want := range []string{"vIDM directory syncs", "directories", "syncing", "pending triggers", "paused", "dead letters", "Dead letters"} {
		if !strings.Contains(p.Text, want) {
			t.Errorf("the page does not show %q; it reads:\n%s", want, p.Text)
		}
	}
	if p.Refresh == "" {
		t.Error("the page does not refresh itself (no meta refresh)")
	}
	for _, d := range p.Directories {
		if !slices.Contains([]string{"stuck", "idle", "pending", "syncing", "paused"}, d.State) || d.Name == "" {
			t.Errorf("directory row %+v", d)
		}
	}
	if p.Active != 0 {
		t.Errorf("%d script elements or event-handler attributes on the page", p.Active)
	}
	if d := b.Dialogs(); len(d) > 0 {
		t.Errorf("dialogs opened: %q", d)
	}
	if pr := b.Problems(); len(pr) > 0 {
		t.Errorf("the page logged errors: %q", pr)
	}
}

// The admin port's tokens, as in the admin package's tests.
const (
	adminToken = "adm-7Qx2Lm9Pz4Kc8Vw1"
	readToken  = "read-3Hn6Tj0Ys5Rb2Ge9"
)

// handler is admin.New over src as the admin package's tests make it: their fixed clock, a test
// version, and the handler's log kept out of the test's output.
func handler(cfg admin.Config, src admin.Source) http.Handler {
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Now = func() time.Time { return adminfake.Now }
	cfg.Version = "v1.4.0-test"
	return admin.New(cfg, src)
}

// TestStatusPageInBrowser loads the status page in headless Chromium and checks what a person
// sees in each directory state, that hostile names stay text, and signing in through the form.
func TestStatusPageInBrowser(t *testing.T) {
	b := NewBrowser(t)

	t.Run("states", func(t *testing.T) {
		srv := httptest.NewServer(handler(admin.Config{Token: adminToken, ReadToken: readToken, ReadOpen: true, Refresh: time.Minute}, adminfake.RichState(true)))
		defer srv.Close()
		p := CheckStatusPage(t, b, srv.URL+"/")
		if p.Refresh != "60" {
			t.Errorf("meta refresh %q, want 60", p.Refresh)
		}
		for _, want := range []string{
			"Corp AD", "Lab AD", "Partner Directory", "Retail AD", "Old Test AD", adminfake.HostileName,
			"syncing since 14:28:53 (3m 12s)", "pending 3 triggers", "paused since 12:32:05: vIDM upgrade window (CHG0042137)",
			"LDAP bind failed for CN=svc-vidm,OU=Service Accounts,DC=lab,DC=example,DC=com: invalid credentials",
			"covers group proj-alpha-admins", "UNKNOWN_DIRECTORY", "dirsync.trigger.pipeline.provisioning",
			`"><img src=x onerror=alert(2)>`, "<svg onload=alert(5)>",
		} {
			if !strings.Contains(p.Text, want) {
				t.Errorf("the page does not show %q", want)
			}
		}
		states := map[string]string{}
		for _, d := range p.Directories {
			states[d.Name] = d.State
		}
		wantStates := map[string]string{"Corp AD": "syncing", "Lab AD": "pending", "Partner Directory": "paused", "Retail AD": "idle", adminfake.HostileName: "paused"}
		for name, state := range wantStates {
			if states[name] != state {
				t.Errorf("%s: state %q, want %q (rows %+v)", name, states[name], state, p.Directories)
			}
		}
		// "Did my group sync?": the run history, opened, names the groups each run covered.
		if r := p.Runs["Corp AD"]; !strings.Contains(r, "proj-alpha-admins") || !strings.Contains(r, "proj-beta-readers") || !strings.Contains(r, "COMPLETED") {
			t.Errorf("Corp AD's run history reads:\n%s", r)
		}
		if r := p.Runs["Lab AD"]; !strings.Contains(r, "lab-k8s-operators") || !strings.Contains(r, "VIDM_SYNC_FAILED") {
			t.Errorf("Lab AD's run history reads:\n%s", r)
		}
	})

	// The checks above would pass trivially if the browser could not see dialogs or script.
	t.Run("the checks can fail", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `<!doctype html><title>x</title><body><p onclick="x()">hi</p><script>alert("boom")</script>`)
		}))
		defer srv.Close()
		p, err := b.ReadStatusPage(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		if d := b.Dialogs(); len(d) != 1 || !strings.Contains(d[0], "boom") || p.Active != 2 {
			t.Errorf("dialogs %q, active markup %d; want the alert and 2", d, p.Active)
		}
	})

	t.Run("sign in", func(t *testing.T) {
		srv := httptest.NewServer(handler(admin.Config{Token: adminToken, ReadToken: readToken, Refresh: time.Minute}, adminfake.RichState(false)))
		defer srv.Close()
		p, err := b.ReadStatusPage(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(p.Text, "Corp AD") || !strings.Contains(p.Text, "Sign in") {
			t.Fatalf("without signing in the page reads:\n%s", p.Text)
		}
		if _, err := b.SignIn(srv.URL, "not-the-token"); !errors.Is(err, errSignInRefused) {
			t.Fatalf("signing in with a wrong token: %v", err)
		}
		p, err = b.SignIn(srv.URL, readToken)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(p.Text, "pending 3 triggers") || !strings.Contains(p.Text, "sign out") || p.URL != srv.URL+"/" {
			t.Errorf("after signing in (%s) the page reads:\n%s", p.URL, p.Text)
		}
		// The session holds across loads (the auto-refresh), until signing out.
		CheckStatusPage(t, b, srv.URL+"/")
		ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("login-form"))); err != nil {
			t.Fatalf("signing out: %v", err)
		}
		if p, err := b.ReadStatusPage(srv.URL + "/"); err != nil || strings.Contains(p.Text, "Corp AD") {
			t.Errorf("after signing out: %v\n%s", err, p.Text)
		}
		if pr := b.Problems(); len(pr) > 0 {
			t.Errorf("the pages logged errors: %q", pr)
		}
	})

	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		t.Run("screenshot", func(t *testing.T) {
			h := admin.New(admin.Config{ReadOpen: true, Refresh: 30 * time.Second, Version: "v1.4.0", Now: func() time.Time { return adminfake.Now }}, adminfake.RichState(false))
			srv := httptest.NewServer(h)
			defer srv.Close()
			path := filepath.Join("..", "..", "..", "..", "docs", "status-page.png")
			if err := b.Screenshot(srv.URL+"/?open=default/"+adminfake.IDHR+"&open=default/"+adminfake.IDCorp, path); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s", path)
		})
	}
}
