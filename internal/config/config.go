// Package config reads the worker's configuration from the environment.
//
// Every setting is an environment variable (see Config). An empty variable counts as unset, so
// that `FOO=` in a manifest means "the default" rather than "zero". Secrets can come from files
// (NATS_PASSWORD_FILE, ...), as mounted by Kubernetes or Docker secrets. Load reports every
// problem at once, each naming its variable, and never repeats a secret.
package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/sethvargo/go-envconfig"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/tenants"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/natsconn"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/streams"
)

// Config is the worker's whole configuration, by concern. Each concern validates itself; the
// checks that span two of them are Config's own (crossChecks). The embedded structs keep every
// variable's name and promote their fields, so cfg.NATSURL reads as before.
type Config struct {
	NATS
	Streams
	Identity
	Coalescing
	Intake
	Admin
	Ingress
	Logging
	Tracing

	// Dev is set by the dev command (cmd/vidm-sync-dev), never from the environment. It relaxes NATS_URL and VIDM_URL: an
	// empty one means the command starts an embedded NATS server or the vIDM simulator (see
	// EmbeddedNATS and SimulatedVIDM). (No env tag at all: go-envconfig rejects `env:"-"` as an
	// invalid variable name.)
	Dev bool
	// ownSecretFiles are the *_FILE paths the worker's own secrets came from: no tenant may name them.
	ownSecretFiles []string
}

// NATS is the connection to the broker.
type NATS struct {
	NATSURL       string `env:"NATS_URL"` // required unless Dev; comma-separated for several servers
	NATSUser      string `env:"NATS_USER"`
	NATSPassword  string `env:"NATS_PASSWORD"` // secret; or NATS_PASSWORD_FILE
	NATSToken     string `env:"NATS_TOKEN"`    // secret; or NATS_TOKEN_FILE
	NATSCredsFile string `env:"NATS_CREDS_FILE"`
	NATSCAFile    string `env:"NATS_CA_FILE"`
	NATSCertFile  string `env:"NATS_CERT_FILE"`
	NATSKeyFile   string `env:"NATS_KEY_FILE"`
	NATSName      string `env:"NATS_CLIENT_NAME,default=vidm-sync-worker"`
	// NATSInboxPrefix is the prefix of the subjects replies reach the worker on: with one per
	// NATS user, permissions keep each user from reading another's replies.
	NATSInboxPrefix string `env:"NATS_INBOX_PREFIX,default=_INBOX"`
}

// Streams are the JetStream resources the worker uses, with their limits, and the source of the
// events it publishes.
type Streams struct {
	TriggerStream         string        `env:"TRIGGER_STREAM,default=DIRSYNC_TRIGGERS"`
	TriggerSubjects       []string      `env:"TRIGGER_SUBJECTS,default=dirsync.trigger.>"` // comma-separated
	ResultStream          string        `env:"RESULT_STREAM,default=DIRSYNC_RESULTS"`
	ResultSubjectPrefix   string        `env:"RESULT_SUBJECT_PREFIX,default=dirsync.result"` // results go to <prefix>.<started|completed|failed>
	DeadStream            string        `env:"DEAD_STREAM,default=DIRSYNC_DEAD"`
	DeadSubject           string        `env:"DEAD_SUBJECT,default=dirsync.dead"`
	Consumer              string        `env:"CONSUMER,default=vidm-sync-worker"`
	PendingBucket         string        `env:"PENDING_BUCKET,default=DIRSYNC_PENDING"`
	RunsBucket            string        `env:"RUNS_BUCKET,default=DIRSYNC_RUNS"`
	LeaseBucket           string        `env:"LEASE_BUCKET,default=DIRSYNC_LEASES"`
	HistoryBucket         string        `env:"HISTORY_BUCKET,default=DIRSYNC_HISTORY"` // finished runs, for the status page and admin API
	ControlBucket         string        `env:"CONTROL_BUCKET,default=DIRSYNC_CONTROL"` // operator switches: paused directories
	ManageStreams         bool          `env:"MANAGE_STREAMS,default=true"`            // false: resources are managed externally; the worker only binds
	StreamReplicas        int           `env:"STREAM_REPLICAS,default=1"`
	ResultDuplicateWindow time.Duration `env:"RESULT_DUPLICATE_WINDOW,default=30m"` // must outlast a lease expiry plus a restart
	// The streams' size on disk, in bytes (0: unlimited). A full trigger stream refuses new
	// triggers; the results and dead-letter streams drop their oldest messages.
	TriggerStreamMaxBytes int64 `env:"TRIGGER_STREAM_MAX_BYTES,default=1073741824"`
	ResultStreamMaxBytes  int64 `env:"RESULT_STREAM_MAX_BYTES,default=1073741824"`
	DeadStreamMaxBytes    int64 `env:"DEAD_STREAM_MAX_BYTES,default=268435456"`

	// ResultSource is the CloudEvents source of result events. Default
	// "urn:vidm-sync-worker:" + the hostname (the pod name in Kubernetes).
	ResultSource string `env:"RESULT_SOURCE"`
}

// Identity is the identity systems served: one from the VIDM_* variables, or a tenants file.
type Identity struct {
	VIDMURL                string        `env:"VIDM_URL"`                     // required unless Dev
	VIDMAuthMode           string        `env:"VIDM_AUTH_MODE,default=oauth"` // oauth | system
	VIDMClientID           string        `env:"VIDM_CLIENT_ID"`
	VIDMClientSecret       string        `env:"VIDM_CLIENT_SECRET"` // secret; or VIDM_CLIENT_SECRET_FILE
	VIDMUsername           string        `env:"VIDM_USERNAME"`
	VIDMPassword           string        `env:"VIDM_PASSWORD"` // secret; or VIDM_PASSWORD_FILE
	VIDMCAFile             string        `env:"VIDM_CA_FILE"`
	VIDMInsecureSkipVerify bool          `env:"VIDM_INSECURE_SKIP_VERIFY,default=false"`
	VIDMRequestTimeout     time.Duration `env:"VIDM_REQUEST_TIMEOUT,default=30s"`
	// TenantsFile is a YAML or JSON file defining several tenants (identity systems, each with
	// its backend kind, URL, auth, TLS, allow-list, concurrency, polling and schedules). It
	// replaces the VIDM_* settings, which then must not be set. Reloaded on SIGHUP.
	TenantsFile string `env:"TENANTS_FILE"`
	// TenantsSecretsDir confines the secret files a tenants file names, and relative names
	// resolve in it; "" means the tenants file's directory. Mount tenants' secrets apart from the
	// worker's own: none of the worker's *_FILE secrets may be named even inside it.
	TenantsSecretsDir string `env:"TENANTS_SECRETS_DIR"`
	// AllowInsecureHTTP accepts http:// identity-system URLs (VIDM_URL, tenant url and tokenURL):
	// credentials then cross the network in clear. Logged as a warning at every start and reload.
	AllowInsecureHTTP bool `env:"ALLOW_INSECURE_HTTP,default=false"`
	// VIDMAllowIgnoreSafeguards lets publishers' triggers ask vIDM to ignore its sync safeguards
	// (the tenants file's allowIgnoreSafeguards for the VIDM_* tenant).
	VIDMAllowIgnoreSafeguards bool `env:"VIDM_ALLOW_IGNORE_SAFEGUARDS,default=false"`
	// SyncClientTokenWarning: a VCF tenant warns this long before an Okta/Entra ID sync-client
	// token expires (a tenants file may set its own).
	SyncClientTokenWarning time.Duration `env:"SYNC_CLIENT_TOKEN_WARNING,default=336h"`
	// SyncClientTokenCheck is how often VCF tenants' sync-client tokens are checked.
	SyncClientTokenCheck time.Duration `env:"SYNC_CLIENT_TOKEN_CHECK,default=1h"`
	// Tenant is the tenant that triggers without "tenant" belong to; triggers naming another
	// tenant are dead-lettered.
	Tenant string `env:"VIDM_TENANT,default=default"`
}

// Coalescing is how triggers become runs: the window, the polling of a sync, the leases and how
// many syncs run at once.
type Coalescing struct {
	CoalesceWindow      time.Duration `env:"COALESCE_WINDOW,default=2s"`
	PollInitialInterval time.Duration `env:"POLL_INITIAL_INTERVAL,default=2s"`
	PollMaxInterval     time.Duration `env:"POLL_MAX_INTERVAL,default=15s"`
	// PollFromHistory plans each sync's polls from when the directory's recent syncs ended,
	// spending no more polls than the doubling schedule (POLL_INITIAL_INTERVAL to
	// POLL_MAX_INTERVAL) would, but where the end is expected; PollFloor is the least wait
	// between two of them.
	PollFromHistory bool          `env:"POLL_FROM_HISTORY,default=true"`
	PollFloor       time.Duration `env:"POLL_FLOOR,default=500ms"`
	SyncDeadline    time.Duration `env:"SYNC_DEADLINE,default=30m"`
	// PollConfirmAfter: a terminal status read this long after the POST is accepted even without
	// a sign that the sync ran (RUNNING seen, or a start time other than the previous sync's).
	PollConfirmAfter time.Duration `env:"POLL_CONFIRM_AFTER,default=20s"`
	// ReadinessCheck looks up each covered group or user after a completed sync;
	// ReadinessRecheckAfter is when, after the sync's end, one not found is looked up again.
	ReadinessCheck        bool          `env:"READINESS_CHECK,default=true"`
	ReadinessRecheckAfter time.Duration `env:"READINESS_RECHECK_AFTER,default=5s"`
	// ReadinessMaxPerRun bounds the covered triggers of one run that are looked up.
	ReadinessMaxPerRun int           `env:"READINESS_MAX_PER_RUN,default=2000"`
	MaxConcurrentSyncs int           `env:"MAX_CONCURRENT_SYNCS,default=64"`
	LeaseTTL           time.Duration `env:"LEASE_TTL,default=30s"`
}

// Intake is how many trigger messages are pulled and recorded at once.
type Intake struct {
	PullBatch   int           `env:"PULL_BATCH,default=64"`
	MaxInFlight int           `env:"MAX_IN_FLIGHT,default=512"` // trigger messages being recorded at once (consumer MaxAckPending)
	AckWait     time.Duration `env:"ACK_WAIT,default=30s"`
}

// Admin is the admin port: metrics, probes, the status page and the admin API.
type Admin struct {
	AdminAddr string `env:"ADMIN_ADDR,default=:9090"`
	// AdminToken allows every admin API call (bearer token); without it the write endpoints
	// answer 403. Secret; or ADMIN_TOKEN_FILE.
	AdminToken string `env:"ADMIN_TOKEN"`
	// AdminReadToken allows the status page and the read-only API. Secret; or ADMIN_READ_TOKEN_FILE.
	AdminReadToken string `env:"ADMIN_READ_TOKEN"`
	// AdminReadOpen opens the status page and the read-only API without a token (inside a
	// trusted network). /metrics, /healthz and /readyz are always open.
	AdminReadOpen bool `env:"ADMIN_READ_OPEN,default=false"`
	// HistoryMaxAge is how long finished runs stay in the history bucket.
	HistoryMaxAge time.Duration `env:"HISTORY_MAX_AGE,default=168h"`
	// HistoryRuns is how many recent runs per directory the status page and API show.
	HistoryRuns int `env:"HISTORY_RUNS,default=20"`
	// StatusRefresh is the status page's auto-refresh interval.
	StatusRefresh time.Duration `env:"STATUS_REFRESH,default=5s"`
	// ReadyVIDMInterval: /readyz needs a vIDM answer with accepted credentials within this
	// interval; when none came by itself, readiness asks vIDM (at most once per interval).
	ReadyVIDMInterval time.Duration `env:"READY_VIDM_INTERVAL,default=1m"`
	// AdminTLSCertFile and AdminTLSKeyFile serve the admin port over HTTPS instead of HTTP: PEM
	// files, re-read when their content changes (both or neither).
	AdminTLSCertFile string `env:"ADMIN_TLS_CERT_FILE"`
	AdminTLSKeyFile  string `env:"ADMIN_TLS_KEY_FILE"`
	// AdminTLSCAFile is the CA `vidm-sync-worker healthcheck` verifies the admin port's
	// certificate with; unset, it trusts the certificate in ADMIN_TLS_CERT_FILE itself. The
	// worker does not read it.
	AdminTLSCAFile string `env:"ADMIN_TLS_CA_FILE"`
}

// AdminTLS reports whether the admin port serves HTTPS.
func (c Admin) AdminTLS() bool { return c.AdminTLSCertFile != "" }

// Ingress is the CloudEvents HTTP ingress (HTTP binding), off by default.
type Ingress struct {
	IngressEnabled bool   `env:"INGRESS_ENABLED,default=false"`
	IngressAddr    string `env:"INGRESS_ADDR,default=:8080"`
	// IngressToken is the bearer token publishers present. Required with INGRESS_ENABLED.
	// Secret; or INGRESS_TOKEN_FILE.
	IngressToken string `env:"INGRESS_TOKEN"`
	// IngressSubject is the subject the ingress publishes triggers to; a trigger subject.
	IngressSubject string `env:"INGRESS_SUBJECT,default=dirsync.trigger.http"`
	// IngressMaxWait caps ?wait= on POST /events.
	IngressMaxWait time.Duration `env:"INGRESS_MAX_WAIT,default=10m"`
	// IngressMaxWaiters bounds the ?wait requests waiting at once; beyond it they get 429.
	IngressMaxWaiters int `env:"INGRESS_MAX_WAITERS,default=256"`
	// IngressTLSCertFile and IngressTLSKeyFile serve the ingress over HTTPS instead of HTTP: PEM
	// files, re-read when their content changes (both or neither).
	IngressTLSCertFile string `env:"INGRESS_TLS_CERT_FILE"`
	IngressTLSKeyFile  string `env:"INGRESS_TLS_KEY_FILE"`
	// IngressTLSClientCAFile makes client certificates required on the ingress, verified
	// against the CAs in this PEM file (re-read like the certificate). With INGRESS_TOKEN as
	// well, a publisher needs both; without it, the certificate alone.
	IngressTLSClientCAFile string `env:"INGRESS_TLS_CLIENT_CA_FILE"`
	// IngressTLSClientNames, when set, are the client certificates accepted (comma-separated):
	// each is matched against a certificate's subject common name and its DNS, e-mail and URI
	// names.
	IngressTLSClientNames []string `env:"INGRESS_TLS_CLIENT_NAMES"`
}

// IngressTLS reports whether the ingress serves HTTPS.
func (c Ingress) IngressTLS() bool { return c.IngressTLSCertFile != "" }

// Logging is the log's format and level.
type Logging struct {
	LogFormat string `env:"LOG_FORMAT,default=text"` // text | json
	LogLevel  string `env:"LOG_LEVEL,default=info"`  // debug | info | warn | error
}

// MinTokenLength is the shortest admin or ingress token accepted: 32 characters of a random
// token put guessing out of reach even without the sign-in backoff.
const MinTokenLength = 32

// secrets are the settings that may come from a file (VAR_FILE) and are never shown.
func (c *Config) secrets() []struct {
	env   string
	field *string
} {
	return []struct {
		env   string
		field *string
	}{
		{"NATS_PASSWORD", &c.NATSPassword},
		{"NATS_TOKEN", &c.NATSToken},
		{"VIDM_CLIENT_SECRET", &c.VIDMClientSecret},
		{"VIDM_PASSWORD", &c.VIDMPassword},
		{"ADMIN_TOKEN", &c.AdminToken},
		{"ADMIN_READ_TOKEN", &c.AdminReadToken},
		{"INGRESS_TOKEN", &c.IngressToken},
		{"OTEL_EXPORTER_OTLP_HEADERS", &c.OTLPHeaders},
		{"OTEL_EXPORTER_OTLP_TRACES_HEADERS", &c.OTLPTracesHeaders},
	}
}

// Load reads the configuration through l (envconfig.OsLookuper() in production), reads the
// *_FILE secrets, fills computed defaults and validates. dev says the dev command loads it.
func Load(ctx context.Context, l envconfig.Lookuper, dev bool) (Config, error) {
	return load(ctx, l, dev, os.Hostname)
}

// LoadEnv is Load from a getenv function (os.Getenv in a main): the commands' one way to read
// their configuration.
func LoadEnv(ctx context.Context, getenv func(string) string, dev bool) (Config, error) {
	return Load(ctx, envconfig.LookuperFunc(func(k string) (string, bool) {
		v := getenv(k)
		return v, v != ""
	}), dev)
}

// load is Load with the hostname source injected, for tests.
func load(ctx context.Context, l envconfig.Lookuper, dev bool, hostname func() (string, error)) (Config, error) {
	l = emptyIsUnset{l}
	var c Config
	// Values that do not parse are collected rather than returned one at a time, so that Load
	// reports every problem at once; the field stays zero and its Validate error is dropped.
	var problems problemList
	parse := parseChecker(&problems)
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{
		Target:   &c,
		Lookuper: l,
		Mutators: []envconfig.Mutator{parse},
	}); err != nil {
		return Config{}, fmt.Errorf("reading the environment: %w", err)
	}
	c.Dev = dev
	// "a, b" is how people write lists; the names themselves never have surrounding spaces.
	for i, n := range c.IngressTLSClientNames {
		c.IngressTLSClientNames[i] = strings.TrimSpace(n)
	}

	for _, sec := range c.secrets() {
		readSecretFile(l, sec.env, sec.field, &problems)
		if path, ok := l.Lookup(sec.env + "_FILE"); ok {
			c.ownSecretFiles = append(c.ownSecretFiles, path)
		}
	}
	if c.ResultSource == "" {
		h, err := hostname()
		if err != nil || h == "" {
			problems.add("RESULT_SOURCE", fmt.Sprintf("not set, and the hostname to derive it from is unknown (%v)", err))
		} else {
			c.ResultSource = "urn:vidm-sync-worker:" + h
		}
	}

	// Validate's complaint about a variable that already failed to parse or to be read would
	// only repeat the problem (a zero duration "must be positive"), so it is left out.
	failed := problems.vars()
	problems.join(c.validate(), failed)
	if err := problems.err(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// emptyIsUnset makes VAR= behave as an unset variable, so the default applies.
type emptyIsUnset struct{ l envconfig.Lookuper }

func (e emptyIsUnset) Lookup(key string) (string, bool) {
	v, ok := e.l.Lookup(key)
	return v, ok && v != ""
}

// parseChecker returns a mutator that checks each value parses as its field's type. A value
// that does not is recorded and replaced by "" (which go-envconfig leaves as the zero value),
// so processing continues with the next variable.
// settings are Config's fields with the concerns' fields in place of the concerns.
func settings() []reflect.StructField {
	var out []reflect.StructField
	for _, f := range reflect.VisibleFields(reflect.TypeFor[Config]()) {
		if !f.Anonymous {
			out = append(out, f)
		}
	}
	return out
}

func parseChecker(problems *problemList) envconfig.MutatorFunc {
	kinds := map[string]reflect.Type{}
	for _, f := range settings() {
		if key, _, _ := strings.Cut(f.Tag.Get("env"), ","); key != "" {
			kinds[key] = f.Type
		}
	}
	return func(_ context.Context, key, _, _, v string) (string, bool, error) {
		typ, ok := kinds[key]
		if !ok {
			return v, false, nil
		}
		var err error
		switch {
		case typ == reflect.TypeFor[time.Duration]():
			_, err = time.ParseDuration(v)
		case typ.Kind() == reflect.Int:
			_, err = strconv.ParseInt(v, 0, strconv.IntSize)
		case typ.Kind() == reflect.Bool:
			_, err = strconv.ParseBool(v)
		}
		if err != nil {
			// Only non-secret variables are parsed, so the value may be shown.
			problems.add(key, fmt.Sprintf("%q is not a valid %s", v, typ))
			return "", true, nil
		}
		return v, false, nil
	}
}

// readSecretFile fills *field from the file named by VAR_FILE, if that is set.
func readSecretFile(l envconfig.Lookuper, name string, field *string, problems *problemList) {
	fileVar := name + "_FILE"
	path, ok := l.Lookup(fileVar)
	if !ok {
		return
	}
	if *field != "" {
		problems.add(name, fmt.Sprintf("both %s and %s are set; set one", name, fileVar))
		return
	}
	b, err := os.ReadFile(path) //nolint:gosec // the operator names the file on purpose
	if err != nil {
		// The *PathError names the path and the reason, never the content.
		problems.add(fileVar, fmt.Sprintf("reading the secret for %s: %v", name, err))
		return
	}
	// Files written by editors and `echo` end in a newline that is not part of the secret.
	secret := strings.TrimRightFunc(string(b), unicode.IsSpace)
	if secret == "" {
		problems.add(fileVar, fmt.Sprintf("the file %q is empty", path))
		return
	}
	*field = secret
}

// Validate checks the whole configuration and reports every problem, each naming its variable.
func (c Config) Validate() error {
	var p problemList
	p.join(c.validate(), nil)
	return p.err()
}

func (c Config) validate() problemList {
	var p problemList
	c.NATS.validate(&p, c.Dev)
	subjectsOK := c.Streams.validate(&p)
	c.Identity.validate(&p, c.Dev, c.SimulatedVIDM())
	c.Coalescing.validate(&p)
	c.Intake.validate(&p)
	c.Admin.validate(&p)
	c.Ingress.validate(&p)
	c.Logging.validate(&p)
	c.Tracing.validate(&p)
	c.crossChecks(&p, subjectsOK)
	return p
}

// crossChecks are the checks that span two concerns.
func (c Config) crossChecks(p *problemList, subjectsOK bool) {
	if c.EmbeddedNATS() {
		if !c.ManageStreams {
			p.add("MANAGE_STREAMS", "false needs NATS_URL: the embedded dev server has no externally managed streams")
		}
		if c.StreamReplicas != 1 {
			p.add("STREAM_REPLICAS", "must be 1 with the embedded dev server (a single node)")
		}
	}
	if c.IngressEnabled {
		if msg := checkSubject(c.IngressSubject, false); msg != "" {
			p.add("INGRESS_SUBJECT", msg)
		} else if subjectsOK && !slices.ContainsFunc(c.TriggerSubjects, func(f string) bool { return subjectMatches(f, c.IngressSubject) }) {
			p.add("INGRESS_SUBJECT", fmt.Sprintf("%q is not one of the trigger subjects %q (TRIGGER_SUBJECTS)", c.IngressSubject, c.TriggerSubjects))
		}
	}
	// A resumed run re-publishes its result with the same id after the old holder's lease
	// expired and a worker took over; the duplicate window must still hold the first publish.
	if c.LeaseTTL > 0 && c.ResultDuplicateWindow > 0 && c.ResultDuplicateWindow < 2*c.LeaseTTL {
		p.add("RESULT_DUPLICATE_WINDOW", fmt.Sprintf("%s is shorter than twice LEASE_TTL (%s)", c.ResultDuplicateWindow, 2*c.LeaseTTL))
	}
	// The file's defaults come from the other concerns (concurrency, polling).
	if c.TenantsFile != "" {
		if _, err := c.Tenants(); err != nil {
			p.add("TENANTS_FILE", err.Error())
		}
	}
}

// checkNATSURL accepts one or more comma-separated server URLs. A URL's text is never shown:
// it may carry credentials, which are rejected for that reason.
func checkNATSURL(p *problemList, raw string) {
	for _, one := range strings.Split(raw, ",") {
		one = strings.TrimSpace(one)
		if one == "" {
			p.add("NATS_URL", "has an empty entry")
			continue
		}
		if !strings.Contains(one, "://") {
			one = "nats://" + one // nats.go's own default scheme
		}
		u, err := url.Parse(one)
		switch {
		case err != nil:
			p.add("NATS_URL", "is not a valid URL")
		case u.User != nil:
			p.add("NATS_URL", "must not carry credentials; use NATS_USER/NATS_PASSWORD, NATS_TOKEN or NATS_CREDS_FILE")
		case u.Scheme != "nats" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss":
			p.add("NATS_URL", fmt.Sprintf("scheme %q is not nats, tls, ws or wss", u.Scheme))
		case u.Hostname() == "":
			p.add("NATS_URL", fmt.Sprintf("%q has no host", u.Redacted()))
		}
	}
}

// checkVIDMURL mirrors internal/identity/httpcore's rules, so that a bad URL is reported with the rest.
func checkVIDMURL(p *problemList, raw string, allowHTTP bool) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(raw), "/"))
	switch {
	case err != nil:
		p.add("VIDM_URL", "is not a valid URL") // the text might carry credentials
	case u.User != nil:
		p.add("VIDM_URL", "must not carry credentials; use VIDM_CLIENT_ID/VIDM_CLIENT_SECRET or VIDM_USERNAME/VIDM_PASSWORD")
	case u.Scheme == "http" && !allowHTTP:
		p.add("VIDM_URL", fmt.Sprintf("%q must start with https:// (http:// sends credentials in clear; ALLOW_INSECURE_HTTP=true accepts it)", raw))
	case u.Scheme != "https" && u.Scheme != "http":
		p.add("VIDM_URL", fmt.Sprintf("%q must start with https://", raw))
	case u.Host == "":
		p.add("VIDM_URL", fmt.Sprintf("%q has no host", raw))
	case u.RawQuery != "" || u.Fragment != "":
		p.add("VIDM_URL", fmt.Sprintf("%q must not have a query or fragment", raw))
	}
}

// checkName checks a stream, consumer or tenant name: one NATS subject token that is also safe
// as a file name (the server stores streams under their names).
func checkName(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case strings.ContainsAny(s, ".*>/\\"):
		return fmt.Sprintf("%q must not contain '.', '*', '>', '/' or '\\'", s)
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }):
		return fmt.Sprintf("%q must not contain spaces or control characters", s)
	case len(s) > 255:
		return "is longer than 255 characters"
	}
	return ""
}

// checkBucket applies nats.go's rule for key-value bucket names.
func checkBucket(s string) string {
	if s == "" {
		return "must not be empty"
	}
	allowed := func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
	}
	for _, r := range s {
		if !allowed(r) {
			return fmt.Sprintf("%q may contain only letters, digits, '_' and '-'", s)
		}
	}
	return ""
}

// checkSubject checks a subject: dot-separated non-empty tokens without spaces. A filter (the
// trigger subjects) may use '*' as a whole token and '>' as its last token; other subjects are
// literal.
func checkSubject(s string, filter bool) string {
	if s == "" {
		return "must not be empty"
	}
	tokens := strings.Split(s, ".")
	for i, t := range tokens {
		switch {
		case t == "":
			return fmt.Sprintf("%q has an empty token", s)
		case strings.ContainsFunc(t, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }):
			return fmt.Sprintf("%q must not contain spaces or control characters", s)
		case filter && t == "*":
		case filter && t == ">" && i == len(tokens)-1:
		case strings.ContainsAny(t, "*>"):
			if filter {
				return fmt.Sprintf("%q: '*' must be a whole token and '>' the last token", s)
			}
			return fmt.Sprintf("%q must not contain '*' or '>'", s)
		}
	}
	return ""
}

// subjectMatches reports whether the literal subject s matches filter.
func subjectMatches(filter, s string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(s, ".")
	for i, f := range ft {
		switch {
		case f == ">":
			return len(st) > i
		case i >= len(st):
			return false
		case f != "*" && f != st[i]:
			return false
		}
	}
	return len(ft) == len(st)
}

// subjectsOverlap reports whether some subject matches both filters.
func subjectsOverlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(at) && i < len(bt); i++ {
		switch {
		case at[i] == ">" || bt[i] == ">":
			return true
		case at[i] == "*" || bt[i] == "*" || at[i] == bt[i]:
		default:
			return false
		}
	}
	return len(at) == len(bt)
}

func parseLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn", "warning":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return 0, false
}

// Level is LOG_LEVEL as a slog level (info if invalid; Load rejects invalid values).
func (c Config) Level() slog.Level {
	l, _ := parseLevel(c.LogLevel)
	return l
}

// EmbeddedNATS reports that the command is to start an embedded NATS server (the dev command without
// NATS_URL).
func (c Config) EmbeddedNATS() bool { return c.Dev && c.NATSURL == "" }

// SimulatedVIDM reports that the command is to start the vIDM simulator and fill in VIDMURL and
// the credentials itself (the dev command without VIDM_URL).
func (c Config) SimulatedVIDM() bool { return c.Dev && c.VIDMURL == "" && c.TenantsFile == "" }

// TenantDefaults are what a tenants file leaves out, from the environment.
func (c Config) TenantDefaults() tenants.Defaults {
	return tenants.Defaults{
		MaxConcurrentSyncs: c.MaxConcurrentSyncs,
		RequestTimeout:     c.VIDMRequestTimeout,
		Poll: tenants.Poll{Initial: c.PollInitialInterval, Max: c.PollMaxInterval, Deadline: c.SyncDeadline,
			ConfirmAfter: c.PollConfirmAfter},
		Readiness:              tenants.Readiness{Check: c.ReadinessCheck, RecheckAfter: c.ReadinessRecheckAfter},
		SyncClientTokenWarning: c.SyncClientTokenWarning,
		SecretsDir:             c.TenantsSecretsDir,
		Reserved:               append(slices.Clone(c.ownSecretFiles), c.NATSCredsFile, c.NATSKeyFile, c.AdminTLSKeyFile, c.IngressTLSKeyFile),
		AllowHTTP:              c.AllowInsecureHTTP,
	}
}

// Tenants is the tenants the worker serves: TENANTS_FILE read now (so a reload calls it again),
// or else the one vIDM tenant of the VIDM_* settings.
func (c Config) Tenants() (tenants.File, error) {
	d := c.TenantDefaults()
	if c.TenantsFile != "" {
		return tenants.Load(c.TenantsFile, d)
	}
	t := tenants.Tenant{
		Name: c.Tenant, Backend: tenants.KindVIDM, URL: c.VIDMURL,
		Auth: tenants.Auth{Mode: c.VIDMAuthMode, ClientID: c.VIDMClientID, ClientSecret: c.VIDMClientSecret,
			Username: c.VIDMUsername, Password: c.VIDMPassword},
		TLS:                tenants.TLS{CAFile: c.VIDMCAFile, InsecureSkipVerify: c.VIDMInsecureSkipVerify},
		MaxConcurrentSyncs: d.MaxConcurrentSyncs, RequestTimeout: d.RequestTimeout, Poll: d.Poll, Readiness: d.Readiness,

		AllowIgnoreSafeguards: c.VIDMAllowIgnoreSafeguards,
	}
	return tenants.File{DefaultTenant: c.Tenant, Tenants: map[string]tenants.Tenant{c.Tenant: t}}, nil
}

// VIDM maps the configuration to the vIDM client's (httpcore.Config, for vidm.New). The caller
// sets Logger (and, with the simulator, the URL and credentials).
func (c Config) VIDM() httpcore.Config {
	return httpcore.Config{
		BaseURL:            c.VIDMURL,
		AuthMode:           httpcore.AuthMode(c.VIDMAuthMode),
		ClientID:           c.VIDMClientID,
		ClientSecret:       c.VIDMClientSecret,
		Username:           c.VIDMUsername,
		Password:           c.VIDMPassword,
		CAFile:             c.VIDMCAFile,
		InsecureSkipVerify: c.VIDMInsecureSkipVerify,
		RequestTimeout:     c.VIDMRequestTimeout,
	}
}

// NATSConn is the NATS connection's settings for natsconn.Connect.
func (c Config) NATSConn() natsconn.Options {
	return natsconn.Options{
		URL: c.NATSURL, Name: c.NATSName, CredsFile: c.NATSCredsFile, Token: c.NATSToken,
		User: c.NATSUser, Password: c.NATSPassword, CAFile: c.NATSCAFile, CertFile: c.NATSCertFile, KeyFile: c.NATSKeyFile,
		InboxPrefix: c.NATSInboxPrefix,
	}
}

// StreamNames are the JetStream resource names for internal/natsio/streams.
func (c Config) StreamNames() streams.Names {
	return streams.Names{
		TriggerStream:       c.TriggerStream,
		TriggerSubjects:     c.TriggerSubjects,
		ResultStream:        c.ResultStream,
		ResultSubjectPrefix: c.ResultSubjectPrefix,
		DeadStream:          c.DeadStream,
		DeadSubject:         c.DeadSubject,
		Consumer:            c.Consumer,
		PendingBucket:       c.PendingBucket,
		RunsBucket:          c.RunsBucket,
		LeaseBucket:         c.LeaseBucket,
		HistoryBucket:       c.HistoryBucket,
		ControlBucket:       c.ControlBucket,
	}
}

// StreamSettings are the JetStream settings for streams.Ensure.
func (c Config) StreamSettings() streams.Settings {
	return streams.Settings{
		Replicas:              c.StreamReplicas,
		ResultDuplicateWindow: c.ResultDuplicateWindow,
		LeaseTTL:              c.LeaseTTL,
		HistoryMaxAge:         c.HistoryMaxAge,
		AckWait:               c.AckWait,
		MaxAckPending:         c.MaxInFlight,
		TriggerMaxBytes:       c.TriggerStreamMaxBytes,
		ResultMaxBytes:        c.ResultStreamMaxBytes,
		DeadMaxBytes:          c.DeadStreamMaxBytes,
	}
}

// LogValue shows every setting, with secrets as "[redacted]" when set and "" when not, so that
// the configuration can be logged at start.
func (c Config) LogValue() slog.Value {
	mask := func(s string) string {
		if s == "" {
			return ""
		}
		return "[redacted]"
	}
	return slog.GroupValue(
		slog.String("nats_url", natsconn.RedactURLs(c.NATSURL)),
		slog.String("nats_user", c.NATSUser),
		slog.String("nats_password", mask(c.NATSPassword)),
		slog.String("nats_token", mask(c.NATSToken)),
		slog.String("nats_creds_file", c.NATSCredsFile),
		slog.String("nats_ca_file", c.NATSCAFile),
		slog.String("nats_cert_file", c.NATSCertFile),
		slog.String("nats_key_file", c.NATSKeyFile),
		slog.String("nats_client_name", c.NATSName),
		slog.String("nats_inbox_prefix", c.NATSInboxPrefix),
		slog.String("trigger_stream", c.TriggerStream),
		slog.Any("trigger_subjects", c.TriggerSubjects),
		slog.String("result_stream", c.ResultStream),
		slog.String("result_subject_prefix", c.ResultSubjectPrefix),
		slog.String("dead_stream", c.DeadStream),
		slog.String("dead_subject", c.DeadSubject),
		slog.String("consumer", c.Consumer),
		slog.String("pending_bucket", c.PendingBucket),
		slog.String("runs_bucket", c.RunsBucket),
		slog.String("lease_bucket", c.LeaseBucket),
		slog.String("history_bucket", c.HistoryBucket),
		slog.String("control_bucket", c.ControlBucket),
		slog.Bool("manage_streams", c.ManageStreams),
		slog.Int("stream_replicas", c.StreamReplicas),
		slog.Duration("result_duplicate_window", c.ResultDuplicateWindow),
		slog.Int64("trigger_stream_max_bytes", c.TriggerStreamMaxBytes),
		slog.Int64("result_stream_max_bytes", c.ResultStreamMaxBytes),
		slog.Int64("dead_stream_max_bytes", c.DeadStreamMaxBytes),
		slog.String("vidm_url", natsconn.RedactURLs(c.VIDMURL)),
		slog.String("vidm_auth_mode", c.VIDMAuthMode),
		slog.String("vidm_client_id", c.VIDMClientID),
		slog.String("vidm_client_secret", mask(c.VIDMClientSecret)),
		slog.String("vidm_username", c.VIDMUsername),
		slog.String("vidm_password", mask(c.VIDMPassword)),
		slog.String("vidm_ca_file", c.VIDMCAFile),
		slog.Bool("vidm_insecure_skip_verify", c.VIDMInsecureSkipVerify),
		slog.Duration("vidm_request_timeout", c.VIDMRequestTimeout),
		slog.String("vidm_tenant", c.Tenant),
		slog.String("tenants_file", c.TenantsFile),
		slog.Int("ingress_max_waiters", c.IngressMaxWaiters),
		slog.String("tenants_secrets_dir", c.TenantsSecretsDir),
		slog.Bool("allow_insecure_http", c.AllowInsecureHTTP),
		slog.Bool("vidm_allow_ignore_safeguards", c.VIDMAllowIgnoreSafeguards),
		slog.Any("secret_files", c.ownSecretFiles),
		slog.Duration("sync_client_token_warning", c.SyncClientTokenWarning),
		slog.Duration("sync_client_token_check", c.SyncClientTokenCheck),
		slog.Duration("coalesce_window", c.CoalesceWindow),
		slog.Duration("poll_initial_interval", c.PollInitialInterval),
		slog.Duration("poll_max_interval", c.PollMaxInterval),
		slog.Bool("poll_from_history", c.PollFromHistory),
		slog.Duration("poll_floor", c.PollFloor),
		slog.Duration("sync_deadline", c.SyncDeadline),
		slog.Duration("poll_confirm_after", c.PollConfirmAfter),
		slog.Bool("readiness_check", c.ReadinessCheck),
		slog.Duration("readiness_recheck_after", c.ReadinessRecheckAfter),
		slog.Int("readiness_max_per_run", c.ReadinessMaxPerRun),
		slog.Int("max_concurrent_syncs", c.MaxConcurrentSyncs),
		slog.Duration("lease_ttl", c.LeaseTTL),
		slog.Int("pull_batch", c.PullBatch),
		slog.Int("max_in_flight", c.MaxInFlight),
		slog.Duration("ack_wait", c.AckWait),
		slog.String("result_source", c.ResultSource),
		slog.String("log_format", c.LogFormat),
		slog.String("log_level", c.LogLevel),
		slog.String("admin_addr", c.AdminAddr),
		slog.String("admin_token", mask(c.AdminToken)),
		slog.String("admin_read_token", mask(c.AdminReadToken)),
		slog.Bool("admin_read_open", c.AdminReadOpen),
		slog.Duration("history_max_age", c.HistoryMaxAge),
		slog.Int("history_runs", c.HistoryRuns),
		slog.Duration("status_refresh", c.StatusRefresh),
		slog.Duration("ready_vidm_interval", c.ReadyVIDMInterval),
		slog.String("admin_tls_cert_file", c.AdminTLSCertFile),
		slog.String("admin_tls_key_file", c.AdminTLSKeyFile),
		slog.String("admin_tls_ca_file", c.AdminTLSCAFile),
		slog.Bool("ingress_enabled", c.IngressEnabled),
		slog.String("ingress_addr", c.IngressAddr),
		slog.String("ingress_token", mask(c.IngressToken)),
		slog.String("ingress_subject", c.IngressSubject),
		slog.Duration("ingress_max_wait", c.IngressMaxWait),
		slog.String("ingress_tls_cert_file", c.IngressTLSCertFile),
		slog.String("ingress_tls_key_file", c.IngressTLSKeyFile),
		slog.String("ingress_tls_client_ca_file", c.IngressTLSClientCAFile),
		slog.Any("ingress_tls_client_names", c.IngressTLSClientNames),
		slog.Bool("otel_sdk_disabled", c.OTelSDKDisabled),
		slog.String("otel_traces_exporter", c.OTelTracesExporter),
		slog.String("otel_exporter_otlp_endpoint", natsconn.RedactURLs(c.OTLPEndpoint)),
		slog.String("otel_exporter_otlp_traces_endpoint", natsconn.RedactURLs(c.OTLPTracesEndpoint)),
		slog.String("otel_exporter_otlp_protocol", c.OTLPProtocol),
		slog.String("otel_exporter_otlp_traces_protocol", c.OTLPTracesProtocol),
		slog.String("otel_exporter_otlp_headers", headerNames(c.OTLPHeaders)),
		slog.String("otel_exporter_otlp_traces_headers", headerNames(c.OTLPTracesHeaders)),
		slog.String("otel_service_name", c.OTelServiceName),
		slog.String("otel_resource_attributes", c.OTelResourceAttributes),
		slog.String("otel_traces_sampler", c.OTelTracesSampler),
		slog.String("otel_traces_sampler_arg", c.OTelTracesSamplerArg),
		slog.Bool("dev", c.Dev),
	)
}

// problemList collects configuration problems, each naming its variable.
type problemList []problem

type problem struct{ env, msg string }

func (p problem) Error() string { return p.env + ": " + p.msg }

func (p *problemList) add(env, msg string) { *p = append(*p, problem{env, msg}) }

// join appends other's problems, except those about a variable in skip.
func (p *problemList) join(other problemList, skip map[string]bool) {
	for _, q := range other {
		if !skip[q.env] {
			*p = append(*p, q)
		}
	}
}

func (p problemList) vars() map[string]bool {
	m := make(map[string]bool, len(p))
	for _, q := range p {
		m[q.env] = true
		m[strings.TrimSuffix(q.env, "_FILE")] = true // an unreadable X_FILE: don't also say X is missing
	}
	return m
}

func (p problemList) err() error {
	if len(p) == 0 {
		return nil
	}
	errs := make([]error, len(p))
	for i, q := range p {
		errs[i] = q
	}
	return fmt.Errorf("invalid configuration:\n%w", errors.Join(errs...))
}

// RequestSubject is the trigger subject the worker itself publishes to: sync requests from the
// admin API. It is INGRESS_SUBJECT when a trigger subject covers it, else the first trigger
// subject with its wildcards replaced by "admin".
func (c Config) RequestSubject() string {
	for _, f := range c.TriggerSubjects {
		if subjectMatches(f, c.IngressSubject) {
			return c.IngressSubject
		}
	}
	if len(c.TriggerSubjects) == 0 {
		return c.IngressSubject
	}
	tokens := strings.Split(c.TriggerSubjects[0], ".")
	for i, t := range tokens {
		if t == "*" || t == ">" {
			tokens[i] = "admin"
		}
	}
	return strings.Join(tokens, ".")
}
