// Package admin serves the worker's admin port: the status page for people, the JSON admin API
// for scripts (directories, runs, sync requests, pause and resume, dead letters and their
// re-drive), and the probes and metrics handlers it is given. The routes, their access rules and
// their answers are described in schemas/openapi.yaml, which the tests hold to this package.
package admin

import (
	"context"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/control"
)

// Config configures the admin handler.
type Config struct {
	// Token allows every route (bearer token); ReadToken allows the GET routes only. "" means
	// that kind of access is not configured: without Token every POST answers 403.
	Token, ReadToken string
	// ReadOpen opens the GET routes (status page and API) to anyone, without a token.
	ReadOpen bool
	// Refresh is the status page's auto-refresh interval (default 5s).
	Refresh time.Duration
	// HistoryRuns is how many recent runs the status page shows per directory, and the default
	// ?limit of the runs endpoint (default 20).
	HistoryRuns int
	// Metrics, Healthz and Readyz are mounted at /metrics, /healthz and /readyz, always open;
	// nil answers 404.
	Metrics, Healthz, Readyz http.Handler
	// Version is shown in the status page's footer.
	Version string
	Logger  *slog.Logger
	Now     func() time.Time
}

// Source is what the admin API needs; *control.Service implements it.
type Source interface {
	Directories(ctx context.Context) ([]control.Directory, error)
	// Directory returns control.ErrNotFound for an unknown directory.
	Directory(ctx context.Context, tenant, directoryID string) (control.Directory, error)
	// Runs returns the run in flight first, then the newest first; control.ErrNotFound.
	Runs(ctx context.Context, tenant, directoryID string, limit int) ([]control.Run, error)
	// RequestSync returns a *control.ConflictError (errors.Is control.ErrConflict) while a run
	// is in flight or the directory is paused and queue is false; control.ErrNotFound.
	RequestSync(ctx context.Context, tenant, directoryID string, o control.SyncOptions) (control.SyncRequest, error)
	Pause(ctx context.Context, tenant, directoryID, reason string) (control.Directory, error)
	Resume(ctx context.Context, tenant, directoryID string) (control.Directory, error)
	// Cancel orders the directory's pending triggers no run has taken reported as cancelled;
	// a *control.ConflictError when there are none; control.ErrNotFound.
	Cancel(ctx context.Context, tenant, directoryID, by, reason string) (control.Cancellation, error)
	// DeadLetters returns at most limit dead letters older than sequence before (0: the newest).
	DeadLetters(ctx context.Context, limit int, before uint64) (control.DeadLetters, error)
	// Redrive re-drives the dead letters with these sequences; none means all of them.
	Redrive(ctx context.Context, seqs []uint64) (control.RedriveResult, error)
	Tenants(ctx context.Context) ([]control.Tenant, error)
	// ReloadTenants applies the tenants file; control.ErrReloadRejected when it is not applied.
	ReloadTenants(ctx context.Context) (control.ReloadResult, error)
}

// Defaults and limits.
const (
	defaultRefresh     = 5 * time.Second
	defaultHistoryRuns = 20
	defaultDeadLetters = 50
	defaultDirectories = 100
	maxLimit           = 1000 // ?limit= on directories, runs and dead letters
	maxBody            = 64 << 10
	pageDeadLetters    = 20 // dead letters listed on the status page
)

// access says who may call a route.
type access int

const (
	accessOpen  access = iota // anyone: probes, metrics, the login form
	accessRead                // Token or ReadToken as bearer, the session cookie, or anyone with ReadOpen
	accessWrite               // Token as bearer only: never the cookie, so there is no CSRF surface
)

// route is one entry of the admin port's route table. The mux is built from routes(), and the
// OpenAPI test compares the same table with schemas/openapi.yaml.
type route struct {
	method string
	path   string // as in the OpenAPI document; {name} is a path segment
	access access
	serve  func(*server, http.ResponseWriter, *http.Request)
}

// pattern is the route's http.ServeMux pattern.
func (rt route) pattern() string {
	p := rt.path
	if p == "/" {
		p = "/{$}" // the page only, not a catch-all
	}
	return rt.method + " " + p
}

const dirPath = "/api/v1/directories/{tenant}/{directoryId}"

func routes() []route {
	return []route{
		{http.MethodGet, "/", accessRead, (*server).statusPage},
		{http.MethodGet, "/login", accessOpen, (*server).loginForm},
		{http.MethodPost, "/login", accessOpen, (*server).login},
		{http.MethodPost, "/logout", accessOpen, (*server).logout},
		{http.MethodGet, "/metrics", accessOpen, (*server).metrics},
		{http.MethodGet, "/healthz", accessOpen, (*server).healthz},
		{http.MethodGet, "/readyz", accessOpen, (*server).readyz},
		{http.MethodGet, "/api/v1/directories", accessRead, (*server).listDirectories},
		{http.MethodGet, dirPath, accessRead, (*server).getDirectory},
		{http.MethodGet, dirPath + "/runs", accessRead, (*server).listRuns},
		{http.MethodPost, dirPath + "/sync", accessWrite, (*server).requestSync},
		{http.MethodPost, dirPath + "/pause", accessWrite, (*server).pause},
		{http.MethodPost, dirPath + "/resume", accessWrite, (*server).resume},
		{http.MethodPost, dirPath + "/cancel", accessWrite, (*server).cancel},
		// The status page's cancel form: its POST checks the session, the origin and the
		// form's token itself (cancelSubmit).
		{http.MethodGet, "/directories/{tenant}/{directoryId}/cancel", accessRead, (*server).cancelForm},
		{http.MethodPost, "/directories/{tenant}/{directoryId}/cancel", accessOpen, (*server).cancelSubmit},
		{http.MethodGet, "/api/v1/dead-letters", accessRead, (*server).listDeadLetters},
		{http.MethodPost, "/api/v1/dead-letters/redrive", accessWrite, (*server).redrive},
		{http.MethodGet, "/api/v1/tenants", accessRead, (*server).listTenants},
		{http.MethodPost, "/api/v1/tenants/reload", accessWrite, (*server).reloadTenants},
	}
}

type server struct {
	cfg      Config
	src      Source
	log      *slog.Logger
	now      func() time.Time
	mux      *http.ServeMux
	tmpl     *template.Template
	admin    secret // Token
	reader   secret // ReadToken
	sessions *sessions
	signIns  *signIns
	origins  *http.CrossOriginProtection // the page's forms: same-origin browsers only
	formKey  []byte                      // keys the forms' anti-forgery tokens
}

// New returns the admin port's handler.
func New(cfg Config, src Source) http.Handler {
	if cfg.Refresh <= 0 {
		cfg.Refresh = defaultRefresh
	}
	if cfg.HistoryRuns <= 0 {
		cfg.HistoryRuns = defaultHistoryRuns
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &server{
		cfg:    cfg,
		src:    src,
		log:    cfg.Logger,
		now:    cfg.Now,
		mux:    http.NewServeMux(),
		tmpl:   parseTemplates(),
		admin:  newSecret(cfg.Token),
		reader: newSecret(cfg.ReadToken),
	}
	s.sessions, s.signIns = newSessions(cfg.Now), newSignIns(cfg.Now)
	s.origins, s.formKey = http.NewCrossOriginProtection(), randomBytes(32)
	for _, rt := range routes() {
		s.mux.Handle(rt.pattern(), s.guard(rt))
	}
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if _, pattern := s.mux.Handler(r); pattern == "" {
		// No route: the mux answers 404, 405 (with Allow) or a redirect to the clean path;
		// the errors are turned into JSON like every other error of the API.
		w = &jsonMuxErrors{ResponseWriter: w}
	}
	s.mux.ServeHTTP(w, r)
}

// jsonMuxErrors replaces the mux's plain-text 404 and 405 answers with JSON ones.
type jsonMuxErrors struct {
	http.ResponseWriter
	replaced bool
}

func (w *jsonMuxErrors) WriteHeader(code int) {
	switch code {
	case http.StatusNotFound:
		w.replaced = true
		writeError(w.ResponseWriter, code, "not found")
	case http.StatusMethodNotAllowed:
		w.replaced = true
		writeError(w.ResponseWriter, code, "method not allowed; allowed: "+w.Header().Get("Allow"))
	default:
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *jsonMuxErrors) Write(b []byte) (int, error) {
	if w.replaced {
		return len(b), nil // the mux's text body, already replaced
	}
	return w.ResponseWriter.Write(b)
}

func (s *server) metrics(w http.ResponseWriter, r *http.Request) { s.mount(s.cfg.Metrics, w, r) }
func (s *server) healthz(w http.ResponseWriter, r *http.Request) { s.mount(s.cfg.Healthz, w, r) }
func (s *server) readyz(w http.ResponseWriter, r *http.Request)  { s.mount(s.cfg.Readyz, w, r) }

func (s *server) mount(h http.Handler, w http.ResponseWriter, r *http.Request) {
	if h == nil {
		writeError(w, http.StatusNotFound, "not configured on this worker")
		return
	}
	h.ServeHTTP(w, r)
}
