package vidmsim

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Endpoint names one operation of the simulated API, for faults and counters.
type Endpoint string

// The simulated endpoints. Requests to unknown paths have the empty Endpoint.
const (
	EndpointOAuthToken  Endpoint = "oauth-token"  // POST /SAAS/auth/oauthtoken
	EndpointSystemLogin Endpoint = "system-login" // POST /SAAS/API/1.0/REST/auth/system/login
	EndpointDirectories Endpoint = "directories"  // GET  /SAAS/jersey/manager/api/connectormanagement/directoryconfigs
	EndpointSyncStart   Endpoint = "sync-start"   // POST .../directoryconfigs/{id}/syncprofile/sync
	EndpointSyncStatus  Endpoint = "sync-status"  // GET  .../directoryconfigs/{id}/syncprofile/sync
)

const (
	pathOAuthToken  = "/SAAS/auth/oauthtoken"
	pathSystemLogin = "/SAAS/API/1.0/REST/auth/system/login"
	pathDirectories = "/SAAS/jersey/manager/api/connectormanagement/directoryconfigs"
	suffixSync      = "/syncprofile/sync"
)

// Media types of docs/vidm-api.md.
const (
	mediaJSON          = "application/json"
	mediaForm          = "application/x-www-form-urlencoded"
	mediaDirectoryList = "application/vnd.vmware.horizon.manager.connector.management.directory.list+json"
	mediaHorizonV1     = "application/vnd.vmware.horizon.v1.0+json"
	mediaSyncProfile   = "application/vnd.vmware.horizon.manager.connector.management.directory.sync.profile.sync+json"
)

// maxBody bounds request bodies; every legitimate body is a few dozen bytes.
const maxBody = 64 << 10

// Server is the simulator: an http.Handler plus controls for tests. All methods are safe for
// concurrent use.
type Server struct {
	// Set in New and never changed: read without the lock.
	now      func() time.Time
	log      *slog.Logger
	signKey  []byte // HMAC key for the JWTs; random per server so tokens are unforgeable
	tokenTTL time.Duration
	syncDur  time.Duration
	onStart  func(SyncRecord) // nil: nobody listens
	flavor   Flavor
	// statusBody shapes the sync-status answer.
	statusBody StatusBody
	startLag   time.Duration // a POSTed sync begins this long after the POST
	tenant     string        // FlavorVRA7
	clients    map[string]string
	users      map[string]string
	started    time.Time // the AD's default principals exist since then
	scimMax    int

	mu              sync.Mutex
	refresh         []string    // FlavorVRACloud's accepted API tokens; RevokeRefreshToken changes them
	dirs            []Directory // in configuration order, the order the list endpoint answers
	tokens          map[string]*token
	issued          []string
	runs            []*syncRun // in start order
	latest          map[string]*syncRun
	maxRunning      map[string]int
	faults          map[Endpoint]*Fault
	rng             *mrand.Rand
	resume          chan struct{} // closed by Resume; hung requests wait on it
	requests        map[Endpoint]int
	byStatus        map[Endpoint]map[int]int
	logins          int
	rejectPosts     int
	rejectOnForeign int
	principals      map[principalKey]*adPrincipal // configured and added; see principals.go
	named           map[nameKey]bool
}

// New validates cfg, applies defaults and returns a ready Server.
func New(cfg Config) (*Server, error) {
	if err := validateConfig(cfg); err != nil {
		return nil, err
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = defaultTokenTTL
	}
	if cfg.SyncDuration == 0 {
		cfg.SyncDuration = defaultSyncDuration
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Flavor == "" {
		cfg.Flavor = FlavorVIDM
	}
	if cfg.Tenant == "" {
		cfg.Tenant = "vsphere.local"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SCIMMaxCount == 0 {
		cfg.SCIMMaxCount = defaultSCIMMaxCount
	}
	s := &Server{
		now:        cfg.Now,
		log:        cfg.Logger,
		signKey:    make([]byte, 32),
		tokenTTL:   cfg.TokenTTL,
		syncDur:    cfg.SyncDuration,
		onStart:    cfg.OnSyncStart,
		flavor:     cfg.Flavor,
		statusBody: cfg.StatusBody,
		startLag:   cfg.StartLag,
		tenant:     cfg.Tenant,
		refresh:    append([]string(nil), cfg.RefreshTokens...),
		clients:    map[string]string{},
		users:      map[string]string{},
		tokens:     map[string]*token{},
		latest:     map[string]*syncRun{},
		maxRunning: map[string]int{},
		faults:     map[Endpoint]*Fault{},
		rng:        mrand.New(mrand.NewPCG(uint64(cfg.Seed), uint64(cfg.Seed)^0x9e3779b97f4a7c15)), //nolint:gosec // G115: the seed's bits are wanted, not its value
		resume:     make(chan struct{}),
		requests:   map[Endpoint]int{},
		byStatus:   map[Endpoint]map[int]int{},
		started:    cfg.Now(),
		scimMax:    cfg.SCIMMaxCount,
		principals: map[principalKey]*adPrincipal{},
		named:      map[nameKey]bool{},
	}
	_, _ = rand.Read(s.signKey) // crypto/rand.Read never fails since Go 1.24
	for i, d := range cfg.Directories {
		s.dirs = append(s.dirs, withDirectoryDefaults(d))
		for _, p := range d.Principals {
			s.addPrincipalLocked(i, p.Kind, p.Name, p.Domain, !p.OutOfScope && !outOfScope(d, p.Name), s.started)
		}
	}
	for _, c := range cfg.Clients {
		s.clients[c.ID] = c.Secret
	}
	for _, u := range cfg.Users {
		s.users[u.Username] = u.Password
	}
	return s, nil
}

// route is what the path and method of a request resolve to.
type route struct {
	endpoint    Endpoint // empty for unknown paths
	allow       string   // methods the path supports, for 405
	methodOK    bool
	directoryID string // for the sync endpoints
	// handle answers the request once path, method and faults are dealt with; the flavors other
	// than vIDM route through it.
	handle func(w http.ResponseWriter, r *http.Request)
}

// classify resolves a request with the routes of the server's flavor.
func (s *Server) classify(r *http.Request) route {
	switch s.flavor {
	case FlavorVRA7:
		return s.classifyVRA7(r)
	case FlavorVCF:
		return s.classifyVCF(r)
	case FlavorVRACloud:
		return s.classifyCloud(r)
	}
	return classify(r)
}

// classify resolves a request by exact path. A known path with the wrong method is still
// attributed to that path's endpoint so that faults and counters see it.
func classify(r *http.Request) route {
	p := r.URL.EscapedPath()
	switch p {
	case pathOAuthToken:
		return route{endpoint: EndpointOAuthToken, allow: http.MethodPost, methodOK: r.Method == http.MethodPost}
	case pathSystemLogin:
		return route{endpoint: EndpointSystemLogin, allow: http.MethodPost, methodOK: r.Method == http.MethodPost}
	case pathDirectories:
		return route{endpoint: EndpointDirectories, allow: http.MethodGet, methodOK: r.Method == http.MethodGet}
	}
	if rt, ok := scimRoute(r, p); ok {
		return rt
	}
	rest, ok := strings.CutPrefix(p, pathDirectories+"/")
	if !ok {
		return route{}
	}
	seg, ok := strings.CutSuffix(rest, suffixSync)
	if !ok || seg == "" || strings.Contains(seg, "/") {
		return route{}
	}
	id, err := url.PathUnescape(seg)
	if err != nil || id == "" {
		return route{}
	}
	rt := route{allow: "GET, POST", directoryID: id, methodOK: true}
	switch r.Method {
	case http.MethodPost:
		rt.endpoint = EndpointSyncStart
	case http.MethodGet:
		rt.endpoint = EndpointSyncStatus
	default:
		rt.endpoint, rt.methodOK = EndpointSyncStatus, false
	}
	return rt
}

// ServeHTTP counts the request, applies any fault for its endpoint and then answers it the way
// vIDM does, checking path → method → auth → Accept → Content-Type → body → directory → logic.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rt := s.classify(r)
	s.mu.Lock()
	s.requests[rt.endpoint]++
	s.mu.Unlock()

	rec := &statusRecorder{ResponseWriter: w}
	abort := s.serve(rec, r, rt)
	s.recordStatus(rt.endpoint, rec.status)
	s.logRequest(r, rt.endpoint, rec.status, time.Since(start))
	if abort {
		// Makes net/http drop the connection (or reset the HTTP/2 stream) without answering.
		panic(http.ErrAbortHandler)
	}
}

// logRequest logs at Debug; headers other than X-Request-Id are left out, Authorization above all.
func (s *Server) logRequest(r *http.Request, ep Endpoint, status int, elapsed time.Duration) {
	attrs := []slog.Attr{
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("endpoint", string(ep)),
		slog.Int("status", status), slog.Duration("elapsed", elapsed),
	}
	if id := r.Header.Get("X-Request-Id"); id != "" {
		attrs = append(attrs, slog.String("request_id", id))
	}
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "vidm-sim request", attrs...)
}

// serve does the work of ServeHTTP; it reports whether the request must be aborted unanswered.
func (s *Server) serve(w *statusRecorder, r *http.Request, rt route) (abort bool) {
	if rt.endpoint != "" {
		if done, abort := s.applyFault(w, r, rt.endpoint); done {
			return abort
		}
	}
	switch {
	case rt.endpoint == "":
		writeError(w, http.StatusNotFound, "http.not.found", "No resource at "+r.URL.Path)
		return false
	case !rt.methodOK:
		w.Header().Set("Allow", rt.allow)
		writeError(w, http.StatusMethodNotAllowed, "http.method.not.allowed",
			fmt.Sprintf("Method %s is not allowed; allowed: %s", r.Method, rt.allow))
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	switch rt.endpoint {
	case EndpointOAuthToken:
		s.handleOAuthToken(w, r)
	case EndpointSystemLogin:
		s.handleSystemLogin(w, r)
	case EndpointDirectories:
		s.handleDirectories(w, r)
	case EndpointSyncStart:
		s.handleSyncStart(w, r, rt.directoryID)
	case EndpointSyncStatus:
		s.handleSyncStatus(w, r, rt.directoryID)
	case EndpointSCIMGroups, EndpointSCIMUsers:
		s.handleSCIM(w, r, rt.endpoint)
	default:
		rt.handle(w, r)
	}
	return false
}

func (s *Server) recordStatus(ep Endpoint, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.byStatus[ep]
	if m == nil {
		m = map[int]int{}
		s.byStatus[ep] = m
	}
	m[status]++
}

// statusRecorder remembers the answered status; 0 means nothing was answered (reset, abort).
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b) // unwrapped: io.Writer contract
}

// Unwrap lets http.ResponseController reach the Hijacker of the underlying writer.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// apiError is vIDM's error body: {"errors":[{"code","message"}]}.
type apiError struct {
	Errors []apiErrorItem `json:"errors"`
}

type apiErrorItem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, mediaJSON, apiError{Errors: []apiErrorItem{{Code: code, Message: msg}}})
}

func writeJSON(w http.ResponseWriter, status int, mediaType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the simulator's own types are marshalled; failing here is a programming error.
		panic(fmt.Sprintf("vidmsim: marshal response: %v", err))
	}
	w.Header().Set("Content-Type", mediaType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n')) // a write error means the client went away; nothing to do
}

// acceptOK reports whether the Accept header names want. Parameters and case are ignored; a list
// is fine if one entry matches. When lenient is true (the token endpoints), a missing header,
// application/json and */* are also accepted; the jersey endpoints insist on their vendor type.
func acceptOK(header []string, want string, lenient bool) bool {
	if len(header) == 0 || strings.TrimSpace(strings.Join(header, "")) == "" {
		return lenient
	}
	for _, h := range header {
		for _, part := range strings.Split(h, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil || refused(params) {
				continue
			}
			if mt == want || (lenient && (mt == "*/*" || mt == mediaJSON)) {
				return true
			}
		}
	}
	return false
}

// refused reports an explicit q=0, which means "not acceptable".
func refused(params map[string]string) bool {
	q, ok := params["q"]
	if !ok {
		return false
	}
	v, err := strconv.ParseFloat(q, 64)
	return err == nil && v == 0
}

// contentTypeIs reports whether the Content-Type header is want, ignoring parameters and case.
func contentTypeIs(r *http.Request, want string) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == want
}

// checkMedia answers 406 or 415 and reports false when the request's media types are wrong.
func checkMedia(w http.ResponseWriter, r *http.Request, accept string, lenient bool, contentType string) bool {
	if !acceptOK(r.Header.Values("Accept"), accept, lenient) {
		writeError(w, http.StatusNotAcceptable, "http.media.not.acceptable",
			"Accept must include "+accept)
		return false
	}
	if contentType != "" && !contentTypeIs(r, contentType) {
		writeError(w, http.StatusUnsupportedMediaType, "http.media.unsupported",
			"Content-Type must be "+contentType)
		return false
	}
	return true
}

// readBody reads the (size-limited) request body.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return b, nil
}
