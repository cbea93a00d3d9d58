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

// Config is the worker's whole configuration.
type Config struct {
	// NATS
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

	// JetStream names (defaults from DESIGN.md)
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

	// vIDM
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

	// Behaviour
	CoalesceWindow      time.Duration `env:"COALESCE_WINDOW,default=2s"`
	PollInitialInterval time.Duration `env:"POLL_INITIAL_INTERVAL,default=2s"`
	PollMaxInterval     time.Duration `env:"POLL_MAX_INTERVAL,default=15s"`
	SyncDeadline        time.Duration `env:"SYNC_DEADLINE,default=30m"`
	MaxConcurrentSyncs  int           `env:"MAX_CONCURRENT_SYNCS,default=8"`
	LeaseTTL            time.Duration `env:"LEASE_TTL,default=30s"`
	PullBatch           int           `env:"PULL_BATCH,default=64"`
	MaxInFlight         int           `env:"MAX_IN_FLIGHT,default=512"` // trigger messages being recorded at once (consumer MaxAckPending)
	AckWait             time.Duration `env:"ACK_WAIT,default=30s"`
	// ResultSource is the CloudEvents source of result events. Default
	// "urn:vidm-sync-worker:" + the hostname (the pod name in Kubernetes).
	ResultSource string `env:"RESULT_SOURCE"`
	LogFormat    string `env:"LOG_FORMAT,default=text"` // text | json
	LogLevel     string `env:"LOG_LEVEL,default=info"`  // debug | info | warn | error

	// Operations: the admin port serves /metrics, /healthz, /readyz, the status page and the
	// admin API.
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

	// HTTP ingress (CloudEvents HTTP binding), off by default.
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

	// Dev is set by the dev command (cmd/vidm-sync-dev), never from the environment. It relaxes NATS_URL and VIDM_URL: an
	// empty one means the command starts an embedded NATS server or the vIDM simulator (see
	// EmbeddedNATS and SimulatedVIDM). (No env tag at all: go-envconfig rejects `env:"-"` as an
	// invalid variable name.)
	Dev bool
	// ownSecretFiles are the *_FILE paths the worker's own secrets came from: no tenant may name them.
	ownSecretFiles []string
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
func parseChecker(problems *problemList) envconfig.MutatorFunc {
	kinds := map[string]reflect.Type{}
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		f := t.Field(i)
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

	// NATS connection.
	if c.NATSURL == "" {
		if !c.Dev {
			p.add("NATS_URL", "required (or run vidm-sync-dev, make run, for an embedded server)")
		}
	} else {
		checkNATSURL(&p, c.NATSURL)
	}
	if c.EmbeddedNATS() {
		if !c.ManageStreams {
			p.add("MANAGE_STREAMS", "false needs NATS_URL: the embedded dev server has no externally managed streams")
		}
		if c.StreamReplicas != 1 {
			p.add("STREAM_REPLICAS", "must be 1 with the embedded dev server (a single node)")
		}
	}
	authMethods := 0
	for _, set := range []bool{c.NATSToken != "", c.NATSUser != "" || c.NATSPassword != "", c.NATSCredsFile != ""} {
		if set {
			authMethods++
		}
	}
	if authMethods > 1 {
		p.add("NATS_TOKEN", "set only one of NATS_TOKEN, NATS_USER with NATS_PASSWORD, and NATS_CREDS_FILE")
	}
	// Pairs: the problem names the half that is missing.
	for _, pair := range [][2]struct{ env, v string }{
		{{"NATS_USER", c.NATSUser}, {"NATS_PASSWORD", c.NATSPassword}},
		{{"NATS_CERT_FILE", c.NATSCertFile}, {"NATS_KEY_FILE", c.NATSKeyFile}},
	} {
		a, b := pair[0], pair[1]
		switch {
		case a.v != "" && b.v == "":
			p.add(b.env, "required with "+a.env+" (they go together)")
		case a.v == "" && b.v != "":
			p.add(a.env, "required with "+b.env+" (they go together)")
		}
	}
	if c.NATSName == "" {
		p.add("NATS_CLIENT_NAME", "must not be empty")
	}
	if msg := checkSubject(c.NATSInboxPrefix, false); msg != "" {
		p.add("NATS_INBOX_PREFIX", fmt.Sprintf("%q: %s", c.NATSInboxPrefix, msg))
	}

	// JetStream names.
	for _, n := range []struct{ env, v string }{
		{"TRIGGER_STREAM", c.TriggerStream}, {"RESULT_STREAM", c.ResultStream}, {"DEAD_STREAM", c.DeadStream},
		{"CONSUMER", c.Consumer},
	} {
		if msg := checkName(n.v); msg != "" {
			p.add(n.env, msg)
		}
	}
	for _, n := range []struct{ env, v string }{
		{"PENDING_BUCKET", c.PendingBucket}, {"RUNS_BUCKET", c.RunsBucket}, {"LEASE_BUCKET", c.LeaseBucket},
		{"HISTORY_BUCKET", c.HistoryBucket}, {"CONTROL_BUCKET", c.ControlBucket},
	} {
		if msg := checkBucket(n.v); msg != "" {
			p.add(n.env, msg)
		}
	}
	if c.TriggerStream == c.ResultStream || c.TriggerStream == c.DeadStream || c.ResultStream == c.DeadStream {
		p.add("TRIGGER_STREAM", "TRIGGER_STREAM, RESULT_STREAM and DEAD_STREAM must be three different streams")
	}
	if buckets := []string{c.PendingBucket, c.RunsBucket, c.LeaseBucket, c.HistoryBucket, c.ControlBucket}; len(slices.Compact(slices.Sorted(slices.Values(buckets)))) != len(buckets) {
		p.add("PENDING_BUCKET", "PENDING_BUCKET, RUNS_BUCKET, LEASE_BUCKET, HISTORY_BUCKET and CONTROL_BUCKET must be five different buckets")
	}
	subjectsOK := true
	if len(c.TriggerSubjects) == 0 {
		p.add("TRIGGER_SUBJECTS", "needs at least one subject")
		subjectsOK = false
	}
	for _, s := range c.TriggerSubjects {
		if msg := checkSubject(s, true); msg != "" {
			p.add("TRIGGER_SUBJECTS", fmt.Sprintf("%q: %s", s, msg))
			subjectsOK = false
		}
	}
	if msg := checkSubject(c.ResultSubjectPrefix, false); msg != "" {
		p.add("RESULT_SUBJECT_PREFIX", msg)
		subjectsOK = false
	}
	if msg := checkSubject(c.DeadSubject, false); msg != "" {
		p.add("DEAD_SUBJECT", msg)
		subjectsOK = false
	}
	if c.IngressEnabled {
		if msg := checkSubject(c.IngressSubject, false); msg != "" {
			p.add("INGRESS_SUBJECT", msg)
		} else if subjectsOK && !slices.ContainsFunc(c.TriggerSubjects, func(f string) bool { return subjectMatches(f, c.IngressSubject) }) {
			p.add("INGRESS_SUBJECT", fmt.Sprintf("%q is not one of the trigger subjects %q (TRIGGER_SUBJECTS)", c.IngressSubject, c.TriggerSubjects))
		}
		if c.IngressToken == "" {
			p.add("INGRESS_TOKEN", "required with INGRESS_ENABLED=true (or INGRESS_TOKEN_FILE)")
		}
		if c.IngressAddr == "" {
			p.add("INGRESS_ADDR", "must not be empty with INGRESS_ENABLED=true")
		}
		if c.IngressMaxWaiters < 1 || c.IngressMaxWaiters > 100000 {
			p.add("INGRESS_MAX_WAITERS", fmt.Sprintf("%d is not between 1 and 100000", c.IngressMaxWaiters))
		}
	}
	if c.AdminAddr == "" {
		p.add("ADMIN_ADDR", "must not be empty (it serves /healthz and /readyz)")
	}
	for _, m := range []struct {
		env string
		n   int64
	}{{"TRIGGER_STREAM_MAX_BYTES", c.TriggerStreamMaxBytes}, {"RESULT_STREAM_MAX_BYTES", c.ResultStreamMaxBytes}, {"DEAD_STREAM_MAX_BYTES", c.DeadStreamMaxBytes}} {
		if m.n != 0 && m.n < 1<<20 {
			p.add(m.env, fmt.Sprintf("%d bytes is less than 1 MiB (0: unlimited)", m.n))
		}
	}
	if c.AdminToken != "" && c.AdminToken == c.AdminReadToken {
		p.add("ADMIN_READ_TOKEN", "must differ from ADMIN_TOKEN")
	}
	for _, t := range []struct{ env, val string }{{"ADMIN_TOKEN", c.AdminToken}, {"ADMIN_READ_TOKEN", c.AdminReadToken}, {"INGRESS_TOKEN", c.IngressToken}} {
		if t.val != "" && len(t.val) < MinTokenLength {
			// The length only: a guessable token is a secret shown too.
			p.add(t.env, fmt.Sprintf("is %d characters; at least %d are required (for example: openssl rand -base64 32)", len(t.val), MinTokenLength))
		}
	}
	if subjectsOK {
		// The server refuses streams whose subjects overlap; say which variables clash.
		results := streams.ResultSubjects(c.ResultSubjectPrefix)[0]
		for i, s := range c.TriggerSubjects {
			if subjectsOverlap(s, results) {
				p.add("TRIGGER_SUBJECTS", fmt.Sprintf("%q overlaps the results subjects %q (RESULT_SUBJECT_PREFIX)", s, results))
			}
			if subjectsOverlap(s, c.DeadSubject) {
				p.add("TRIGGER_SUBJECTS", fmt.Sprintf("%q overlaps DEAD_SUBJECT %q", s, c.DeadSubject))
			}
			for _, other := range c.TriggerSubjects[i+1:] {
				if subjectsOverlap(s, other) {
					p.add("TRIGGER_SUBJECTS", fmt.Sprintf("%q and %q overlap", s, other))
				}
			}
		}
		if subjectsOverlap(results, c.DeadSubject) {
			p.add("DEAD_SUBJECT", fmt.Sprintf("%q overlaps the results subjects %q (RESULT_SUBJECT_PREFIX)", c.DeadSubject, results))
		}
	}
	if c.StreamReplicas < 1 || c.StreamReplicas > 5 {
		p.add("STREAM_REPLICAS", fmt.Sprintf("%d is not between 1 and 5", c.StreamReplicas))
	}

	// vIDM.
	if c.TenantsFile != "" {
		for _, v := range []struct{ env, val string }{{"VIDM_URL", c.VIDMURL}, {"VIDM_CLIENT_ID", c.VIDMClientID},
			{"VIDM_USERNAME", c.VIDMUsername}, {"VIDM_CA_FILE", c.VIDMCAFile}} {
			if v.val != "" {
				p.add(v.env, "set together with TENANTS_FILE; define the tenant in the file instead")
			}
		}
		if _, err := c.Tenants(); err != nil {
			p.add("TENANTS_FILE", err.Error())
		}
	} else if c.VIDMURL == "" {
		if !c.Dev {
			p.add("VIDM_URL", "required (or run vidm-sync-dev, make run, for the simulator)")
		}
	} else {
		checkVIDMURL(&p, c.VIDMURL, c.AllowInsecureHTTP)
	}
	// With the simulator the command supplies the credentials itself.
	if !c.SimulatedVIDM() && c.TenantsFile == "" {
		switch httpcore.AuthMode(c.VIDMAuthMode) {
		case httpcore.AuthOAuth:
			if c.VIDMClientID == "" {
				p.add("VIDM_CLIENT_ID", "required with VIDM_AUTH_MODE=oauth")
			}
			if c.VIDMClientSecret == "" {
				p.add("VIDM_CLIENT_SECRET", "required with VIDM_AUTH_MODE=oauth (or VIDM_CLIENT_SECRET_FILE)")
			}
		case httpcore.AuthSystem:
			if c.VIDMUsername == "" {
				p.add("VIDM_USERNAME", "required with VIDM_AUTH_MODE=system")
			}
			if c.VIDMPassword == "" {
				p.add("VIDM_PASSWORD", "required with VIDM_AUTH_MODE=system (or VIDM_PASSWORD_FILE)")
			}
		}
	}
	if m := httpcore.AuthMode(c.VIDMAuthMode); m != httpcore.AuthOAuth && m != httpcore.AuthSystem {
		p.add("VIDM_AUTH_MODE", fmt.Sprintf("%q is not oauth or system", c.VIDMAuthMode))
	}
	if msg := checkName(c.Tenant); msg != "" {
		p.add("VIDM_TENANT", msg)
	}

	// Durations and counts.
	for _, d := range []struct {
		env string
		v   time.Duration
	}{
		{"RESULT_DUPLICATE_WINDOW", c.ResultDuplicateWindow}, {"VIDM_REQUEST_TIMEOUT", c.VIDMRequestTimeout},
		{"POLL_INITIAL_INTERVAL", c.PollInitialInterval},
		{"POLL_MAX_INTERVAL", c.PollMaxInterval}, {"SYNC_DEADLINE", c.SyncDeadline},
		{"LEASE_TTL", c.LeaseTTL}, {"ACK_WAIT", c.AckWait},
		{"HISTORY_MAX_AGE", c.HistoryMaxAge}, {"STATUS_REFRESH", c.StatusRefresh},
		{"READY_VIDM_INTERVAL", c.ReadyVIDMInterval}, {"INGRESS_MAX_WAIT", c.IngressMaxWait},
		{"SYNC_CLIENT_TOKEN_WARNING", c.SyncClientTokenWarning}, {"SYNC_CLIENT_TOKEN_CHECK", c.SyncClientTokenCheck},
	} {
		if d.v <= 0 {
			p.add(d.env, fmt.Sprintf("%s must be positive", d.v))
		}
	}
	// 0 syncs at the first trigger; a burst still costs at most the running sync and a follow-up.
	if c.CoalesceWindow < 0 {
		p.add("COALESCE_WINDOW", fmt.Sprintf("%s must not be negative", c.CoalesceWindow))
	}
	if c.PollInitialInterval > 0 && c.PollMaxInterval > 0 && c.PollMaxInterval < c.PollInitialInterval {
		p.add("POLL_MAX_INTERVAL", fmt.Sprintf("%s is shorter than POLL_INITIAL_INTERVAL %s", c.PollMaxInterval, c.PollInitialInterval))
	}
	// Shorter leases make renewals a large share of the broker traffic and let a GC pause or a
	// slow broker round trip cost a holder its lease.
	if c.LeaseTTL > 0 && c.LeaseTTL < 3*time.Second {
		p.add("LEASE_TTL", fmt.Sprintf("%s is under the minimum 3s", c.LeaseTTL))
	}
	// A resumed run re-publishes its result with the same id after the old holder's lease
	// expired and a worker took over; the duplicate window must still hold the first publish.
	if c.LeaseTTL > 0 && c.ResultDuplicateWindow > 0 && c.ResultDuplicateWindow < 2*c.LeaseTTL {
		p.add("RESULT_DUPLICATE_WINDOW", fmt.Sprintf("%s is shorter than twice LEASE_TTL (%s)", c.ResultDuplicateWindow, 2*c.LeaseTTL))
	}
	if c.ResultDuplicateWindow > streams.ResultMaxAge {
		p.add("RESULT_DUPLICATE_WINDOW", fmt.Sprintf("%s is longer than the results stream's retention %s", c.ResultDuplicateWindow, streams.ResultMaxAge))
	}
	for _, n := range []struct {
		env string
		v   int
	}{{"MAX_CONCURRENT_SYNCS", c.MaxConcurrentSyncs}, {"PULL_BATCH", c.PullBatch}, {"MAX_IN_FLIGHT", c.MaxInFlight}, {"HISTORY_RUNS", c.HistoryRuns}} {
		if n.v < 1 {
			p.add(n.env, fmt.Sprintf("%d must be at least 1", n.v))
		}
	}
	// The server delivers at most MaxAckPending unacked messages; a larger batch never fills.
	if c.PullBatch > c.MaxInFlight && c.MaxInFlight >= 1 {
		p.add("PULL_BATCH", fmt.Sprintf("%d is larger than MAX_IN_FLIGHT %d", c.PullBatch, c.MaxInFlight))
	}

	// Events and logs.
	if c.ResultSource == "" {
		p.add("RESULT_SOURCE", "must not be empty")
	} else if _, err := url.Parse(c.ResultSource); err != nil || strings.ContainsFunc(c.ResultSource, unicode.IsSpace) {
		p.add("RESULT_SOURCE", fmt.Sprintf("%q is not a URI reference", c.ResultSource))
	}
	if f := strings.ToLower(c.LogFormat); f != "text" && f != "json" {
		p.add("LOG_FORMAT", fmt.Sprintf("%q is not text or json", c.LogFormat))
	}
	if _, ok := parseLevel(c.LogLevel); !ok {
		p.add("LOG_LEVEL", fmt.Sprintf("%q is not debug, info, warn or error", c.LogLevel))
	}
	return p
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
		MaxConcurrentSyncs:     c.MaxConcurrentSyncs,
		RequestTimeout:         c.VIDMRequestTimeout,
		Poll:                   tenants.Poll{Initial: c.PollInitialInterval, Max: c.PollMaxInterval, Deadline: c.SyncDeadline},
		SyncClientTokenWarning: c.SyncClientTokenWarning,
		SecretsDir:             c.TenantsSecretsDir,
		Reserved:               append(slices.Clone(c.ownSecretFiles), c.NATSCredsFile, c.NATSKeyFile),
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
		MaxConcurrentSyncs: d.MaxConcurrentSyncs, RequestTimeout: d.RequestTimeout, Poll: d.Poll,

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
		slog.Duration("sync_deadline", c.SyncDeadline),
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
		slog.Bool("ingress_enabled", c.IngressEnabled),
		slog.String("ingress_addr", c.IngressAddr),
		slog.String("ingress_token", mask(c.IngressToken)),
		slog.String("ingress_subject", c.IngressSubject),
		slog.Duration("ingress_max_wait", c.IngressMaxWait),
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
