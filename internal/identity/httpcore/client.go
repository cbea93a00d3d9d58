// Package httpcore is the HTTP client machinery every identity system's client shares: the one
// cached token, retries with jittered backoff, 401 handling, the classification of every failure
// as retryable or permanent (IsRetryable), redaction, TLS, the directory cache and the observer.
// It knows no identity system: each one (packages vidm, vracloud, vra7 and vcf beside this one)
// implements API, which says which requests to send and how to read the answers, and package
// systems picks the API of a Config's Kind.
//
// The client is safe for concurrent use, so that callers decide once, at the boundary, what to do
// with a failure.
package httpcore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/backoff"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
)

// AuthMode selects how the client obtains tokens.
type AuthMode string

const (
	// AuthOAuth uses the OAuth 2.0 client-credentials grant (preferred).
	AuthOAuth AuthMode = "oauth"
	// AuthSystem uses the system login with username and password (issueToken).
	AuthSystem AuthMode = "system"
	// AuthPassword logs in with username and password: vRA 7's identity service (with a tenant)
	// and VCF's SDDC Manager.
	AuthPassword AuthMode = "password"
	// AuthRefreshToken exchanges vRA Cloud's long-lived API token for access tokens.
	AuthRefreshToken AuthMode = "refresh-token"
)

// Media types every identity system uses.
const (
	MediaJSON = "application/json"
	MediaForm = "application/x-www-form-urlencoded"
)

// Config configures a Client. Zero durations take the defaults documented on each field.
type Config struct {
	// Kind is the identity system behind BaseURL. systems.New picks the API by it ("" is vIDM);
	// New takes "" for its API's kind and refuses any other.
	Kind backend.Kind

	// BaseURL is the vIDM instance, e.g. https://vidm.corp.example.com (paths start with /SAAS).
	BaseURL string

	AuthMode     AuthMode
	ClientID     string // AuthOAuth
	ClientSecret string // AuthOAuth
	Username     string // AuthSystem, AuthPassword
	Password     string // AuthSystem, AuthPassword
	// RefreshToken is vRA Cloud's long-lived API token (AuthRefreshToken).
	RefreshToken string
	// TokenURL is where AuthRefreshToken exchanges the refresh token for an access token;
	// default the VMware Cloud Services console's authorize endpoint.
	TokenURL string
	// Tenant is the vRA 7 tenant (AuthPassword with KindVRA7).
	Tenant string

	// CAFile is a PEM bundle added to the system roots, for vIDM behind a private CA.
	CAFile string
	// InsecureSkipVerify turns TLS verification off. It is logged as a warning at construction.
	InsecureSkipVerify bool

	// RequestTimeout bounds each HTTP attempt. Default 30s.
	RequestTimeout time.Duration
	// Retry governs retries of retryable failures.
	Retry RetryPolicy
	// DirectoryCacheTTL is how long the directory list is reused before it is refreshed; an older
	// list still answers while the refresh runs in the background (backend.DirectoryCache.List),
	// so a hung backend does not hold up triggers for directories it listed. Default 5m.
	DirectoryCacheTTL time.Duration
	// DirectoryMissRefresh is the least time between two refreshes caused by a reference that
	// matched nothing, so that a flood of unknown names does not become a flood of list calls.
	// Default 30s.
	DirectoryMissRefresh time.Duration
	// SessionTokenTTL is the lifetime assumed for a token that states none (no expires_in, not a
	// JWT with exp). Default 30m.
	SessionTokenTTL time.Duration
	// TokenRefreshMargin: a token is replaced this long before it expires (at most a fifth of its
	// lifetime). Default 1m.
	TokenRefreshMargin time.Duration
	// MaxResponseBytes bounds every response body read. Default 1 MiB.
	MaxResponseBytes int64
	// UserAgent is sent with every request. Default "vidm-sync-worker".
	UserAgent string

	// Logger receives debug lines per request and warnings per retry. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Transport overrides the HTTP transport (CAFile and InsecureSkipVerify are then ignored).
	Transport http.RoundTripper
	// Observer hears about every HTTP attempt and every token obtained. Default: none.
	Observer Observer
	// TracerProvider makes a client span of every HTTP attempt, a child of the caller's span;
	// the request carries that span's traceparent. Default: no spans.
	TracerProvider trace.TracerProvider
}

// LogValue masks the secrets so a Config can be logged as a whole.
func (c Config) LogValue() slog.Value {
	mask := func(s string) string {
		if s == "" {
			return ""
		}
		return "[redacted]"
	}
	return slog.GroupValue(
		slog.String("kind", string(c.Kind)),
		slog.String("base_url", c.BaseURL),
		slog.String("auth_mode", string(c.AuthMode)),
		slog.String("client_id", c.ClientID),
		slog.String("client_secret", mask(c.ClientSecret)),
		slog.String("username", c.Username),
		slog.String("password", mask(c.Password)),
		slog.String("refresh_token", mask(c.RefreshToken)),
		slog.String("token_url", c.TokenURL),
		slog.String("tenant", c.Tenant),
		slog.String("ca_file", c.CAFile),
		slog.Bool("insecure_skip_verify", c.InsecureSkipVerify),
	)
}

// Client talks to one instance of an identity system, through that system's API.
type Client struct {
	base     *url.URL
	http     *http.Client
	cfg      Config
	log      *slog.Logger
	tokens   *tokenCache
	dirs     *backend.DirectoryCache
	redactor *strings.Replacer
	obs      Observer
	tracer   trace.Tracer
	auth     authState
	api      API // the endpoints of cfg.Kind
}

// New validates cfg and returns a client that speaks api: one identity system's endpoints (the
// per-system packages' New functions pass theirs). It does not contact the identity system.
func New(cfg Config, api API) (*Client, error) {
	if cfg.Kind != "" && cfg.Kind != api.Kind() {
		return nil, fmt.Errorf("%w: a %s configuration given to the %s client", ErrInvalidArgument, cfg.Kind, api.Kind())
	}
	cfg = withDefaults(cfg, api)
	base, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if err := api.CheckAuth(cfg); err != nil {
		return nil, err
	}
	transport := cfg.Transport
	if transport == nil {
		tlsCfg, err := tlsConfig(cfg.CAFile, cfg.InsecureSkipVerify)
		if err != nil {
			return nil, err
		}
		if cfg.InsecureSkipVerify {
			cfg.Logger.Warn("TLS verification of vIDM is switched off; use VIDM_CA_FILE with the vIDM CA instead",
				"base_url", base.String())
		}
		transport = newTransport(tlsCfg)
	}
	c := &Client{
		base:     base,
		http:     &http.Client{Transport: transport, CheckRedirect: refuseRedirect},
		cfg:      cfg,
		log:      cfg.Logger,
		redactor: newRedactor(cfg.ClientSecret, cfg.Password, cfg.RefreshToken),
		obs:      cfg.Observer,
		tracer:   cfg.TracerProvider.Tracer("github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"),
		api:      api,
	}
	c.tokens = newTokenCache(cfg, c.login)
	c.dirs = backend.NewDirectoryCache(cfg.DirectoryCacheTTL, cfg.DirectoryMissRefresh, cfg.Now, c.fetchDirectories)
	return c, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func withDefaults(cfg Config, api API) Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.RequestTimeout, 30*time.Second)
	def(&cfg.DirectoryCacheTTL, 5*time.Minute)
	def(&cfg.DirectoryMissRefresh, 30*time.Second)
	def(&cfg.SessionTokenTTL, 30*time.Minute)
	def(&cfg.TokenRefreshMargin, time.Minute)
	cfg.Retry = cfg.Retry.withDefaults()
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 1 << 20
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "vidm-sync-worker"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Kind = api.Kind()
	if cfg.AuthMode == "" {
		cfg.AuthMode = api.DefaultAuthMode()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = noop.NewTracerProvider()
	}
	return cfg
}

func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(raw), "/"))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: vIDM base URL: %w", ErrInvalidArgument, err)
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("%w: vIDM base URL %q must start with https:// (or http://)", ErrInvalidArgument, raw)
	case u.Host == "":
		return nil, fmt.Errorf("%w: vIDM base URL %q has no host", ErrInvalidArgument, raw)
	case u.User != nil:
		return nil, fmt.Errorf("%w: vIDM base URL must not carry credentials; use the auth settings", ErrInvalidArgument)
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("%w: vIDM base URL %q must not have a query or fragment", ErrInvalidArgument, raw)
	}
	return u, nil
}

// NeedCredentials is an API's CheckAuth verdict on credentials its auth mode requires: nil if ok,
// otherwise an ErrInvalidArgument saying what is missing (what, never a value).
func NeedCredentials(cfg Config, what string, ok bool) error {
	if !ok {
		return fmt.Errorf("%w: %s auth for %s needs %s", ErrInvalidArgument, cfg.AuthMode, cfg.Kind, what)
	}
	return nil
}

// AuthModeMismatch is an API's CheckAuth verdict on an auth mode the identity system does not
// have.
func AuthModeMismatch(cfg Config) error {
	return fmt.Errorf("%w: auth mode %q does not fit backend %q (vidm: oauth or system; vra7 and vcf: password; vra-cloud: refresh-token)",
		ErrInvalidArgument, cfg.AuthMode, cfg.Kind)
}

// vIDM never redirects API calls; following one could send the bearer token elsewhere.
func refuseRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// newRedactor replaces configured secrets wherever a server message might echo them.
func newRedactor(secrets ...string) *strings.Replacer {
	var pairs []string
	for _, s := range secrets {
		if len(s) >= 4 {
			pairs = append(pairs, s, "[redacted]")
		}
	}
	return strings.NewReplacer(pairs...)
}

// Do runs cl with retries and returns the body of a 2xx answer: the per-system packages' logins
// and listings call it.
func (c *Client) Do(ctx context.Context, cl Call) ([]byte, error) {
	for attempt := 1; ; attempt++ {
		body, loginFailed, err := c.attemptWithAuth(ctx, cl)
		if err == nil {
			return body, nil
		}
		// A failed login was already retried inside the login call itself.
		wait, ok := c.cfg.Retry.next(attempt, err)
		if !ok || loginFailed {
			return nil, err
		}
		c.log.WarnContext(ctx, "vIDM call failed, retrying", "op", cl.Op, "attempt", attempt, "wait", wait, "err", err)
		if cerr := backoff.Wait(ctx, wait); cerr != nil {
			// The cancellation is the cause; the last error is context and must not decide errors.Is.
			return nil, &Error{Op: cl.Op, Err: fmt.Errorf("%w (last error: %v)", cerr, err)} //nolint:errorlint
		}
	}
}

// attemptWithAuth sends one request; on a 401 it replaces the token that failed and tries once more.
// loginFailed reports that the error came from obtaining a token.
func (c *Client) attemptWithAuth(ctx context.Context, cl Call) (body []byte, loginFailed bool, err error) {
	if !cl.Bearer {
		body, err = c.attempt(ctx, cl, "")
		return body, false, err
	}
	tok, err := c.tokens.get(ctx)
	if err != nil {
		return nil, true, err
	}
	body, err = c.attempt(ctx, cl, tok)
	var e *Error
	if err == nil || !errors.As(err, &e) || e.StatusCode != http.StatusUnauthorized {
		return body, false, err
	}
	c.log.InfoContext(ctx, "vIDM rejected the token, logging in again", "op", cl.Op, "code", e.Code)
	c.tokens.invalidate(tok)
	if tok, err = c.tokens.get(ctx); err != nil {
		return nil, true, err
	}
	body, err = c.attempt(ctx, cl, tok)
	// A freshly issued token rejected as well: the credentials, not the token, are the problem.
	c.noteAuthFailure(err)
	return body, false, err
}

// attempt sends one HTTP request with its own timeout and classifies the answer, in a client
// span of its own.
func (c *Client) attempt(ctx context.Context, cl Call, token string) (_ []byte, err error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	actx, span := c.tracer.Start(actx, cl.Method+" "+cl.Op, trace.WithSpanKind(trace.SpanKindClient))
	defer func() { endSpan(span, err) }()
	req, err := c.newRequest(actx, cl, token)
	if err != nil {
		return nil, &Error{Op: cl.Op, Err: err}
	}
	start := c.cfg.Now()
	t0 := time.Now() // the monotonic clock, for the observer: cfg.Now may be a test's fake
	endpoint := endpointOf(cl)
	if span.IsRecording() {
		span.SetAttributes(spanAttributes(req, c.cfg.Kind, endpoint)...)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.log.DebugContext(ctx, "vIDM request failed", "op", cl.Op, "method", cl.Method, "path", cl.Path, "err", err)
		terr := transportError(cl.Op, ctx, err)
		c.obs.Request(endpoint, 0, terr, time.Since(t0))
		return nil, terr
	}
	defer resp.Body.Close()
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	body, readErr := readLimited(resp.Body, c.cfg.MaxResponseBytes)
	c.log.DebugContext(ctx, "vIDM request", "op", cl.Op, "method", cl.Method, "path", cl.Path,
		"status", resp.StatusCode, "duration", c.cfg.Now().Sub(start))
	c.obs.Request(endpoint, resp.StatusCode, nil, time.Since(t0))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if readErr == nil && (cl.Bearer || endpoint == EndpointToken || endpoint == EndpointLogin) {
			c.auth.ok(c.cfg.Now())
		}
		if readErr != nil {
			return nil, &Error{Op: cl.Op, StatusCode: resp.StatusCode, Err: readErr,
				retryable: !errors.Is(readErr, ErrInvalidResponse)}
		}
		return body, nil
	}
	return nil, c.httpError(cl.Op, resp, body)
}

// spanAttributes describe a request on its span: the URL without its query (SCIM filters name
// groups and users), never a header.
func spanAttributes(req *http.Request, kind backend.Kind, endpoint string) []attribute.KeyValue {
	u := url.URL{Scheme: req.URL.Scheme, Host: req.URL.Host, Path: req.URL.Path, RawPath: req.URL.RawPath}
	port, err := strconv.Atoi(req.URL.Port())
	if err != nil {
		port = 443
		if req.URL.Scheme == "http" {
			port = 80
		}
	}
	return []attribute.KeyValue{semconv.HTTPRequestMethodKey.String(req.Method), semconv.URLFull(u.String()),
		semconv.ServerAddress(req.URL.Hostname()), semconv.ServerPort(port),
		attribute.String("dirsync.backend", string(kind)), attribute.String("dirsync.endpoint", endpoint)}
}

// endSpan ends an attempt's span with its error, if any: error.type is the HTTP status of an
// answer, else the kind of failure.
func endSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		errType := "transport"
		var e *Error
		switch {
		case errors.As(err, &e) && e.StatusCode != 0:
			errType = strconv.Itoa(e.StatusCode)
		case errors.Is(err, context.DeadlineExceeded):
			errType = "timeout"
		case errors.Is(err, context.Canceled):
			errType = "canceled"
		}
		span.SetAttributes(semconv.ErrorTypeKey.String(errType))
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

func (c *Client) newRequest(ctx context.Context, cl Call, token string) (*http.Request, error) {
	u := *c.base
	u.Path = c.base.Path + cl.Path
	if cl.RawPath != "" {
		u.RawPath = c.base.EscapedPath() + cl.RawPath
	}
	if cl.AbsURL != nil {
		u = *cl.AbsURL
	}
	u.RawQuery = cl.Query.Encode()
	var body io.Reader
	if cl.Body != nil {
		body = bytes.NewReader(cl.Body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.Method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", cl.Accept)
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	if cl.ContentType != "" {
		req.Header.Set("Content-Type", cl.ContentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if cl.BasicUser != "" {
		req.SetBasicAuth(cl.BasicUser, cl.BasicPass)
	}
	backend.SetRequestHeaders(ctx, req.Header)
	if trace.SpanFromContext(ctx).IsRecording() {
		// Traced: the request's own span is what the identity system sees as its parent (in
		// place of the trigger's traceparent SetRequestHeaders put there).
		propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	}
	return req, nil
}

// readLimited reads at most limit bytes; a longer body is ErrInvalidResponse rather than a
// silently truncated document.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading response: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: response larger than %d bytes", ErrInvalidResponse, limit)
	}
	return b, nil
}

// httpError classifies a non-2xx answer: retryable for 408, 429 and 5xx, permanent otherwise.
func (c *Client) httpError(op string, resp *http.Response, body []byte) *Error {
	code, msg := parseErrorBody(body)
	return &Error{
		Op:         op,
		StatusCode: resp.StatusCode,
		Code:       clip(c.redactor.Replace(code), 128),
		Message:    clip(c.redactor.Replace(msg), maxMessageLen),
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), c.cfg.Now()),
		retryable:  statusRetryable(resp.StatusCode),
		Err:        statusSentinel(resp.StatusCode),
	}
}

// parseErrorBody understands vIDM's {"errors":[{"code","message"}]}, OAuth's
// {"error","error_description"} and SCIM's {"scimType","detail"}; anything else (HTML error pages) yields nothing.
func parseErrorBody(body []byte) (code, msg string) {
	var v struct {
		Errors []struct {
			// vIDM sends codes as strings, vRA 7 as numbers (90135).
			Code    json.RawMessage `json:"code"`
			Message string          `json:"message"`
		} `json:"errors"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		Message          string `json:"message"`
		// SCIM 2's error: {"scimType", "detail", "status"}.
		ScimType string `json:"scimType"`
		Detail   string `json:"detail"`
	}
	if json.Unmarshal(body, &v) != nil {
		return "", ""
	}
	switch {
	case len(v.Errors) > 0:
		return strings.Trim(string(v.Errors[0].Code), `"`), v.Errors[0].Message
	case v.Error != "":
		return v.Error, v.ErrorDescription
	case v.Detail != "":
		return v.ScimType, v.Detail
	}
	return "", v.Message
}

// parseRetryAfter reads delta-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(min(secs, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour)
	}
	return 0
}
