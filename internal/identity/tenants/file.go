// Package tenants reads the tenants file: the named identity systems (vIDM, vRA 7, vRA Cloud, VCF)
// one worker deployment serves, with their credentials, allow-lists, limits and schedules.
//
// The file is YAML or JSON, decoded strictly: an unknown key is an error naming it, and every
// problem is reported at once, one per line, each with its location (tenants.corp.auth.mode).
// Secrets are only read from files, and their values never appear in an error or a log value.
package tenants

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/schedule/cronspec"
	"sigs.k8s.io/yaml"
)

// Kind is a backend kind.
type Kind string

// Backend kinds.
const (
	KindVIDM     Kind = "vidm"
	KindVRA7     Kind = "vra7"
	KindVRACloud Kind = "vra-cloud"
	KindVCF      Kind = "vcf"
)

// Auth modes.
const (
	AuthOAuth        = "oauth"         // vidm only
	AuthSystem       = "system"        // vidm only
	AuthPassword     = "password"      // vra7 and vcf
	AuthRefreshToken = "refresh-token" // vra-cloud only
)

const (
	// MaxConcurrentSyncsLimit is the largest maxConcurrentSyncs a tenant may set.
	MaxConcurrentSyncsLimit = 64
	// maxFileBytes bounds the tenants file; a real one is a few kilobytes.
	maxFileBytes = 1 << 20
	// maxSecretBytes bounds a secret file, so that naming the wrong file (a CA bundle, a log) is
	// reported rather than sent as a credential.
	maxSecretBytes = 64 << 10
	// maxDirectoryLen is the trigger schema's limit on a directory name.
	maxDirectoryLen = 256
	redacted        = "[redacted]"
)

// tenantName is the trigger schema's tenant pattern: a tenant a trigger cannot name could only ever
// be reached as the default.
var tenantName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// File is a loaded and validated tenants file.
type File struct {
	DefaultTenant string
	Tenants       map[string]Tenant // key = tenant name (also in Tenant.Name)
}

// Tenant is one identity system, with the Defaults filled in.
type Tenant struct {
	Name                   string
	Backend                Kind
	URL                    string
	Auth                   Auth
	TLS                    TLS
	Directories            []string      // allow-list (names or domains, case-insensitive); empty = all
	MaxConcurrentSyncs     int           // 0 in the file → Defaults.MaxConcurrentSyncs
	RequestTimeout         time.Duration // 0 → Defaults.RequestTimeout
	Poll                   Poll          // zero fields → Defaults
	Readiness              Readiness     // unset → Defaults
	SyncClientTokenWarning time.Duration // vcf only; 0 → Defaults.SyncClientTokenWarning; rejected for other kinds
	Schedules              []Schedule
	// AllowIgnoreSafeguards lets the tenant's publishers ask vIDM to ignore its sync safeguards
	// (a trigger's ignoreSafeguards). Off by default: one trigger would lift them for every
	// trigger its run coalesces. The admin API may ask regardless.
	AllowIgnoreSafeguards bool
}

// Auth is a tenant's credentials. Its String form, JSON form and log value redact the secrets.
type Auth struct {
	Mode         string
	ClientID     string
	ClientSecret string // read from ClientSecretFile
	Username     string
	Password     string // read from PasswordFile
	RefreshToken string // read from RefreshTokenFile
	VRATenant    string // vra7: "tenant" key
	TokenURL     string // vra-cloud: "tokenURL" key; "" = the client's default
	// The file paths as written, resolved relative to the tenants file's directory.
	ClientSecretFile, PasswordFile, RefreshTokenFile string
}

// TLS is a tenant's TLS settings.
type TLS struct {
	CAFile             string // resolved relative to the tenants file's directory
	InsecureSkipVerify bool
}

// Poll is how a sync's status is polled. ConfirmAfter is how long after the POST a terminal
// status is accepted without a sign that the sync ran (RUNNING seen, or a start time other than
// the previous sync's): until then it may be the previous sync's, still reported.
type Poll struct{ Initial, Max, Deadline, ConfirmAfter time.Duration }

// Readiness is the check, after a completed sync, that each covered group or user arrived in the
// identity store. RecheckAfter is how long after the sync's end a principal not found is looked
// up once more (the store may index asynchronously).
type Readiness struct {
	Check        bool
	RecheckAfter time.Duration
}

// Schedule is a directory's safety-net sync schedule.
type Schedule struct {
	Directory        string
	Cron             string // as written; valid for cronspec.Parse
	IgnoreSafeguards bool
}

// Defaults fill what the file leaves out (the worker passes values from its environment
// configuration).
type Defaults struct {
	MaxConcurrentSyncs     int
	RequestTimeout         time.Duration
	Poll                   Poll
	Readiness              Readiness
	SyncClientTokenWarning time.Duration
	// SecretsDir confines the secret files a tenant names (clientSecretFile, passwordFile,
	// refreshTokenFile), and relative ones resolve in it: whoever edits the tenants file must not
	// make the worker read, and send as credentials, a file of its own. "" means the tenants
	// file's directory.
	SecretsDir string
	// Reserved are files no tenant may name as a secret (the worker's own: admin token, NATS
	// credentials), even inside SecretsDir.
	Reserved []string
	// AllowHTTP accepts http:// tenant URLs: credentials then cross the network in clear. Off
	// unless the operator opts out in the worker's environment (ALLOW_INSECURE_HTTP).
	AllowHTTP bool
}

// Load reads, parses and validates the file at path; relative file references resolve against
// path's directory.
func Load(path string, d Defaults) (File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return File{}, fmt.Errorf("tenants file: %w", err)
	}
	f, problems := parse(data, filepath.Dir(path), os.ReadFile, d)
	if len(problems) > 0 {
		return File{}, problemsError("invalid tenants file "+path, problems)
	}
	return f, nil
}

// Parse does what Load does for data already read: dir is where relative references resolve, and
// readFile reads the secret and CA files (os.ReadFile when nil).
func Parse(data []byte, dir string, readFile func(string) ([]byte, error), d Defaults) (File, error) {
	if readFile == nil {
		readFile = os.ReadFile
	}
	f, problems := parse(data, dir, readFile, d)
	if len(problems) > 0 {
		return File{}, problemsError("invalid tenants file", problems)
	}
	return f, nil
}

// Tenant returns the named tenant; "" means DefaultTenant.
func (f File) Tenant(name string) (Tenant, bool) {
	t, ok := f.Tenants[cmp.Or(name, f.DefaultTenant)]
	return t, ok
}

// Names returns the tenant names, sorted.
func (f File) Names() []string { return slices.Sorted(maps.Keys(f.Tenants)) }

// Allows reports whether the tenant's allow-list admits a directory with this name and these
// domains: true when the list is empty or any of them matches an entry case-insensitively.
func (t Tenant) Allows(name string, domains []string) bool {
	if len(t.Directories) == 0 {
		return true
	}
	for _, entry := range t.Directories {
		if strings.EqualFold(entry, name) {
			return true
		}
		for _, d := range domains {
			if strings.EqualFold(entry, d) {
				return true
			}
		}
	}
	return false
}

// LogValue is everything useful for a start-up log line; secrets are never included.
func (f File) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, len(f.Tenants))
	for _, name := range f.Names() {
		attrs = append(attrs, slog.Attr{Key: name, Value: f.Tenants[name].LogValue()})
	}
	return slog.GroupValue(slog.String("defaultTenant", f.DefaultTenant), slog.Attr{Key: "tenants", Value: slog.GroupValue(attrs...)})
}

// LogValue is everything useful for a start-up log line; secrets are never included (a set secret
// shows as "[redacted]").
func (t Tenant) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("name", t.Name),
		slog.String("backend", string(t.Backend)),
		slog.String("url", t.URL),
		{Key: "auth", Value: t.Auth.LogValue()},
	}
	var tls []slog.Attr
	if t.TLS.CAFile != "" {
		tls = append(tls, slog.String("caFile", t.TLS.CAFile))
	}
	if t.TLS.InsecureSkipVerify {
		tls = append(tls, slog.Bool("insecureSkipVerify", true))
	}
	if len(tls) > 0 {
		attrs = append(attrs, slog.Attr{Key: "tls", Value: slog.GroupValue(tls...)})
	}
	if len(t.Directories) > 0 {
		attrs = append(attrs, slog.Any("directories", t.Directories))
	}
	attrs = append(attrs,
		slog.Int("maxConcurrentSyncs", t.MaxConcurrentSyncs),
		slog.Duration("requestTimeout", t.RequestTimeout),
		slog.Group("poll", slog.Duration("initial", t.Poll.Initial), slog.Duration("max", t.Poll.Max), slog.Duration("deadline", t.Poll.Deadline),
			slog.Duration("confirmAfter", t.Poll.ConfirmAfter)),
		slog.Group("readiness", slog.Bool("check", t.Readiness.Check), slog.Duration("recheckAfter", t.Readiness.RecheckAfter)),
	)
	if t.Backend == KindVCF {
		attrs = append(attrs, slog.Duration("syncClientTokenWarning", t.SyncClientTokenWarning))
	}
	if t.AllowIgnoreSafeguards {
		attrs = append(attrs, slog.Bool("allowIgnoreSafeguards", true))
	}
	if len(t.Schedules) > 0 {
		s := make([]string, len(t.Schedules))
		for i, sc := range t.Schedules {
			s[i] = sc.Directory + ": " + sc.Cron
			if sc.IgnoreSafeguards {
				s[i] += " (ignoring safeguards)"
			}
		}
		attrs = append(attrs, slog.Any("schedules", s))
	}
	return slog.GroupValue(attrs...)
}

// LogValue shows the mode, identities and file paths, and "[redacted]" for each secret that is set.
func (a Auth) LogValue() slog.Value {
	var attrs []slog.Attr
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	r := a.redacted()
	add("mode", r.Mode)
	add("clientId", r.ClientID)
	add("clientSecret", r.ClientSecret)
	add("clientSecretFile", r.ClientSecretFile)
	add("username", r.Username)
	add("password", r.Password)
	add("passwordFile", r.PasswordFile)
	add("tenant", r.VRATenant)
	add("refreshToken", r.RefreshToken)
	add("refreshTokenFile", r.RefreshTokenFile)
	add("tokenURL", r.TokenURL)
	return slog.GroupValue(attrs...)
}

// plainAuth is Auth without its methods, for printing a redacted copy.
type plainAuth Auth

// redacted returns a copy with each set secret replaced by "[redacted]".
func (a Auth) redacted() plainAuth {
	r := plainAuth(a)
	for _, s := range []*string{&r.ClientSecret, &r.Password, &r.RefreshToken} {
		if *s != "" {
			*s = redacted
		}
	}
	return r
}

// Format prints a with its secrets redacted, whatever the verb: a Tenant printed with %v or %+v
// must not leak them.
func (a Auth) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, fmt.FormatString(f, verb), a.redacted())
}

// MarshalJSON encodes a with its secrets redacted, so that a Tenant shown on a status page or in
// a debug dump does not leak them.
func (a Auth) MarshalJSON() ([]byte, error) { return json.Marshal(a.redacted()) }

// --- decoding ---

// rawFile and the types below mirror the file's keys; their json tags are the only keys accepted.
type rawFile struct {
	DefaultTenant string               `json:"defaultTenant"`
	Tenants       map[string]rawTenant `json:"tenants"`
}

type rawTenant struct {
	Backend                string        `json:"backend"`
	URL                    string        `json:"url"`
	Auth                   rawAuth       `json:"auth"`
	TLS                    rawTLS        `json:"tls"`
	Directories            []string      `json:"directories"`
	MaxConcurrentSyncs     int           `json:"maxConcurrentSyncs"`
	RequestTimeout         duration      `json:"requestTimeout"`
	Poll                   rawPoll       `json:"poll"`
	Readiness              rawReadiness  `json:"readiness"`
	SyncClientTokenWarning duration      `json:"syncClientTokenWarning"`
	Schedules              []rawSchedule `json:"schedules"`
	AllowIgnoreSafeguards  bool          `json:"allowIgnoreSafeguards"`
}

type rawAuth struct {
	Mode             string `json:"mode"`
	ClientID         string `json:"clientId"`
	ClientSecretFile string `json:"clientSecretFile"`
	Username         string `json:"username"`
	PasswordFile     string `json:"passwordFile"`
	RefreshTokenFile string `json:"refreshTokenFile"`
	Tenant           string `json:"tenant"`
	TokenURL         string `json:"tokenURL"`
}

type rawTLS struct {
	CAFile             string `json:"caFile"`
	InsecureSkipVerify bool   `json:"insecureSkipVerify"`
}

type rawPoll struct {
	Initial      duration `json:"initial"`
	Max          duration `json:"max"`
	Deadline     duration `json:"deadline"`
	ConfirmAfter duration `json:"confirmAfter"`
}

type rawReadiness struct {
	Check        *bool    `json:"check"`
	RecheckAfter duration `json:"recheckAfter"`
}

type rawSchedule struct {
	Directory        string `json:"directory"`
	Cron             string `json:"cron"`
	IgnoreSafeguards bool   `json:"ignoreSafeguards"`
}

// duration decodes a Go duration string ("2s", "336h"). A malformed one is kept as err, so that
// validation reports it with its location (an error from UnmarshalJSON would carry none).
type duration struct {
	d   time.Duration
	set bool
	err error
}

func (d *duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("a duration must be a string such as \"30s\"")
	}
	d.set = true
	d.d, d.err = time.ParseDuration(s)
	return nil
}

// inlineSecretFileKey returns the *File key to use instead of an inline secret key of auth.
func inlineSecretFileKey(key string) (string, bool) {
	switch key {
	case "clientSecret", "password", "refreshToken":
		return key + "File", true
	}
	return "", false
}

// problem is one thing wrong with the file, at a location such as tenants.corp.auth.mode.
type problem struct{ loc, msg string }

func (p problem) Error() string { return p.loc + ": " + p.msg }

type problems []problem

func (p *problems) add(loc, format string, args ...any) {
	*p = append(*p, problem{loc, fmt.Sprintf(format, args...)})
}

func problemsError(prefix string, ps problems) error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return fmt.Errorf("%s:\n%w", prefix, errors.Join(errs...))
}

// simpleKey matches keys that need no quoting in a location.
var simpleKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// child is the location of key under loc: loc.key, or loc["key"] for a key with other characters
// (a location is printed on one line whatever the key holds).
func child(loc, key string) string {
	if !simpleKey.MatchString(key) {
		return fmt.Sprintf("%s[%q]", loc, key)
	}
	if loc == "" {
		return key
	}
	return loc + "." + key
}

const rootLoc = "(top level)"

func parse(data []byte, dir string, readFile func(string) ([]byte, error), d Defaults) (File, problems) {
	var ps problems
	if len(data) > maxFileBytes {
		ps.add(rootLoc, "the file is larger than %d bytes", maxFileBytes)
		return File{}, ps
	}
	// YAML is a superset of JSON, so one path serves both; the strict conversion rejects
	// duplicate keys.
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		ps.add(rootLoc, "not valid YAML or JSON: %s", oneLine(err.Error()))
		return File{}, ps
	}
	// First the shape, on a generic tree: every unknown key, inline secret and wrong type at once,
	// each with its location, where the typed decoder would stop at the first with no location.
	var tree any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		ps.add(rootLoc, "not valid YAML or JSON: %v", err)
		return File{}, ps
	}
	checkShape(&ps, "", tree, reflect.TypeFor[rawFile]())
	if len(ps) > 0 {
		return File{}, ps
	}
	var raw rawFile
	dec = json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields() // checkShape already did; kept as the backstop
	if err := dec.Decode(&raw); err != nil {
		ps.add(rootLoc, "%v", err)
		return File{}, ps
	}
	v := validator{dir: dir, readFile: readFile, d: d}
	f := v.file(raw)
	if len(v.ps) == 0 {
		// The published schema (schemas/config) must accept what the checks above accepted; it
		// can only add a problem where the two have drifted apart, which its test prevents.
		checkSchema(&v.ps, js)
	}
	return f, v.ps
}

// oneLine joins a multi-line message (the YAML decoder lists its errors on lines of their own), so
// that every problem keeps to one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, ":\n", ": ")), " ")
}

// checkShape checks v, a tree from encoding/json with UseNumber, against type t of the raw types:
// keys known, types right. Values are never echoed: one may be a secret in the wrong place.
func checkShape(ps *problems, loc string, v any, t reflect.Type) {
	at := cmp.Or(loc, rootLoc)
	if v == nil {
		return // null or an empty YAML value: the zero value
	}
	if t == reflect.TypeFor[duration]() {
		if _, ok := v.(string); !ok {
			ps.add(at, "must be a duration such as \"30s\" or \"336h\", not %s", kindOf(v))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			ps.add(at, "must be a mapping, not %s", kindOf(v))
			return
		}
		fields := make(map[string]reflect.Type, t.NumField())
		for i := range t.NumField() {
			f := t.Field(i)
			fields[strings.Split(f.Tag.Get("json"), ",")[0]] = f.Type
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			ft, ok := fields[k]
			switch {
			case ok:
				checkShape(ps, child(loc, k), m[k], ft)
			case t == reflect.TypeFor[rawAuth]() && isInlineSecret(k):
				fileKey, _ := inlineSecretFileKey(k)
				ps.add(child(loc, k), "secrets are not accepted inline; put the secret in a file and name it with %s", fileKey)
			default:
				ps.add(child(loc, k), "unknown key%s", suggest(k, fields))
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			ps.add(at, "must be a mapping, not %s", kindOf(v))
			return
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			checkShape(ps, child(loc, k), m[k], t.Elem())
		}
	case reflect.Slice:
		a, ok := v.([]any)
		if !ok {
			ps.add(at, "must be a list, not %s", kindOf(v))
			return
		}
		for i, e := range a {
			checkShape(ps, fmt.Sprintf("%s[%d]", at, i), e, t.Elem())
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			ps.add(at, "must be a string, not %s", kindOf(v))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			ps.add(at, "must be true or false, not %s", kindOf(v))
		}
	case reflect.Int:
		n, ok := v.(json.Number)
		if !ok {
			ps.add(at, "must be a whole number, not %s", kindOf(v))
			return
		}
		if _, err := n.Int64(); err != nil {
			ps.add(at, "must be a whole number")
		}
	}
}

func isInlineSecret(key string) bool {
	_, ok := inlineSecretFileKey(key)
	return ok
}

// suggest names a known key that differs from key only in case.
func suggest(key string, fields map[string]reflect.Type) string {
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if strings.EqualFold(k, key) {
			return fmt.Sprintf(" (did you mean %s?)", k)
		}
	}
	return ""
}

func kindOf(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "true or false"
	case json.Number:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

// validator checks a decoded file and builds the File, collecting every problem.
type validator struct {
	dir      string
	readFile func(string) ([]byte, error)
	d        Defaults
	ps       problems
}

func (v *validator) file(raw rawFile) File {
	f := File{DefaultTenant: raw.DefaultTenant, Tenants: make(map[string]Tenant, len(raw.Tenants))}
	names := slices.Sorted(maps.Keys(raw.Tenants))
	switch {
	case len(names) == 0:
		v.ps.add("tenants", "at least one tenant is required")
	case raw.DefaultTenant == "" && len(names) == 1:
		f.DefaultTenant = names[0]
	case raw.DefaultTenant == "":
		v.ps.add("defaultTenant", "required when there is more than one tenant (one of %s)", strings.Join(names, ", "))
	case !slices.Contains(names, raw.DefaultTenant):
		v.ps.add("defaultTenant", "%q is not a tenant of this file (%s)", raw.DefaultTenant, strings.Join(names, ", "))
	}
	for _, name := range names {
		f.Tenants[name] = v.tenant(child("tenants", name), name, raw.Tenants[name])
	}
	return f
}

func (v *validator) tenant(loc, name string, r rawTenant) Tenant {
	t := Tenant{
		Name:               name,
		Backend:            Kind(r.Backend),
		URL:                r.URL,
		Directories:        r.Directories,
		MaxConcurrentSyncs: cmp.Or(r.MaxConcurrentSyncs, v.d.MaxConcurrentSyncs),
		TLS:                TLS{InsecureSkipVerify: r.TLS.InsecureSkipVerify},

		AllowIgnoreSafeguards: r.AllowIgnoreSafeguards,
	}
	if !tenantName.MatchString(name) {
		v.ps.add(loc, "a tenant name must be 1 to 63 lower-case letters, digits and '-', starting with a letter or digit (the tenant a trigger names)")
	}
	switch t.Backend {
	case KindVIDM, KindVRA7, KindVRACloud, KindVCF:
	case "":
		v.ps.add(child(loc, "backend"), "required (vidm, vra7, vra-cloud or vcf)")
	default:
		v.ps.add(child(loc, "backend"), "%q is not vidm, vra7, vra-cloud or vcf", r.Backend)
	}
	if r.URL == "" {
		v.ps.add(child(loc, "url"), "required")
	} else {
		v.checkURL(child(loc, "url"), r.URL, !v.d.AllowHTTP)
	}
	t.Auth = v.auth(child(loc, "auth"), t.Backend, r.Auth)
	if r.TLS.CAFile != "" {
		t.TLS.CAFile = v.path(r.TLS.CAFile)
		if b, ok := v.read(child(child(loc, "tls"), "caFile"), t.TLS.CAFile); ok && len(bytes.TrimSpace(b)) == 0 {
			v.ps.add(child(child(loc, "tls"), "caFile"), "%s is empty", t.TLS.CAFile)
		}
	}
	for i, dir := range r.Directories {
		if strings.TrimSpace(dir) == "" {
			v.ps.add(fmt.Sprintf("%s[%d]", child(loc, "directories"), i), "must not be empty")
		}
	}

	if n := r.MaxConcurrentSyncs; n < 0 || n > MaxConcurrentSyncsLimit {
		v.ps.add(child(loc, "maxConcurrentSyncs"), "%d is not between 0 (the default) and %d", n, MaxConcurrentSyncsLimit)
	}
	t.RequestTimeout = v.duration(child(loc, "requestTimeout"), r.RequestTimeout, v.d.RequestTimeout)
	pl := child(loc, "poll")
	t.Poll = Poll{
		Initial:  v.duration(child(pl, "initial"), r.Poll.Initial, v.d.Poll.Initial),
		Max:      v.duration(child(pl, "max"), r.Poll.Max, v.d.Poll.Max),
		Deadline: v.duration(child(pl, "deadline"), r.Poll.Deadline, v.d.Poll.Deadline),

		ConfirmAfter: v.duration(child(pl, "confirmAfter"), r.Poll.ConfirmAfter, v.d.Poll.ConfirmAfter),
	}
	rd := child(loc, "readiness")
	t.Readiness = Readiness{Check: v.d.Readiness.Check,
		RecheckAfter: v.duration(child(rd, "recheckAfter"), r.Readiness.RecheckAfter, v.d.Readiness.RecheckAfter)}
	if r.Readiness.Check != nil {
		t.Readiness.Check = *r.Readiness.Check
	}
	// Checked when the file sets either: defaults that disagree are the environment's problem.
	if (r.Poll.Initial.set || r.Poll.Max.set) && t.Poll.Initial > 0 && t.Poll.Max > 0 && t.Poll.Initial > t.Poll.Max {
		v.ps.add(pl, "initial %s is longer than max %s", t.Poll.Initial, t.Poll.Max)
	}
	if r.SyncClientTokenWarning.set && t.Backend != KindVCF {
		v.ps.add(child(loc, "syncClientTokenWarning"), "only for backend vcf")
	} else if t.Backend == KindVCF {
		t.SyncClientTokenWarning = v.duration(child(loc, "syncClientTokenWarning"), r.SyncClientTokenWarning, v.d.SyncClientTokenWarning)
	}
	t.Schedules = v.schedules(child(loc, "schedules"), t, r.Schedules)
	return t
}

// InsecureURLs lists the tenants whose URL (or token URL) is plain http://, for a warning.
func (f File) InsecureURLs() []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(f.Tenants)) {
		t := f.Tenants[name]
		if strings.HasPrefix(strings.ToLower(t.URL), "http://") || strings.HasPrefix(strings.ToLower(t.Auth.TokenURL), "http://") {
			out = append(out, name)
		}
	}
	return out
}

// duration returns d's value, or def when the file leaves it out; given, it must be positive.
func (v *validator) duration(loc string, d duration, def time.Duration) time.Duration {
	switch {
	case !d.set:
		return def
	case d.err != nil:
		v.ps.add(loc, "%v", d.err)
	case d.d <= 0:
		v.ps.add(loc, "%s must be positive", d.d)
	}
	return d.d
}

// authField is an auth key beyond mode, which each mode needs, allows or rejects.
type authField struct {
	key string
	val string
}

func (v *validator) auth(loc string, backend Kind, r rawAuth) Auth {
	a := Auth{Mode: r.Mode, ClientID: r.ClientID, Username: r.Username, VRATenant: r.Tenant, TokenURL: r.TokenURL}
	var modes []string
	switch backend {
	case KindVIDM:
		modes = []string{AuthOAuth, AuthSystem}
	case KindVRA7, KindVCF:
		modes = []string{AuthPassword}
	case KindVRACloud:
		modes = []string{AuthRefreshToken}
	default:
		return a // the backend is reported; which mode fits is unknown
	}
	if r.Mode == "" {
		v.ps.add(child(loc, "mode"), "required for backend %s (%s)", backend, strings.Join(modes, " or "))
		return a
	}
	if !slices.Contains(modes, r.Mode) {
		v.ps.add(child(loc, "mode"), "%q is not valid for backend %s (want %s)", r.Mode, backend, strings.Join(modes, " or "))
		return a
	}
	var need, allow []string
	switch r.Mode {
	case AuthOAuth:
		need = []string{"clientId", "clientSecretFile"}
	case AuthSystem:
		need = []string{"username", "passwordFile"}
	case AuthPassword:
		need = []string{"username", "passwordFile"}
		if backend == KindVRA7 {
			need = append(need, "tenant")
		}
	case AuthRefreshToken:
		need = []string{"refreshTokenFile"}
		allow = []string{"tokenURL"}
	}
	for _, f := range []authField{
		{"clientId", r.ClientID}, {"clientSecretFile", r.ClientSecretFile}, {"username", r.Username},
		{"passwordFile", r.PasswordFile}, {"refreshTokenFile", r.RefreshTokenFile}, {"tenant", r.Tenant},
		{"tokenURL", r.TokenURL},
	} {
		needed := slices.Contains(need, f.key)
		switch {
		case needed && f.val == "":
			v.ps.add(child(loc, f.key), "required with mode %s", r.Mode)
		case !needed && !slices.Contains(allow, f.key) && f.val != "":
			v.ps.add(child(loc, f.key), "not used with mode %s of backend %s", r.Mode, backend)
		}
	}
	if r.TokenURL != "" && r.Mode == AuthRefreshToken {
		v.checkURL(child(loc, "tokenURL"), r.TokenURL, !v.d.AllowHTTP)
	}
	secret := func(key, path string, dst, dstPath *string) {
		if path == "" || !slices.Contains(need, key) {
			return
		}
		p, ok := v.secretPath(child(loc, key), path)
		if !ok {
			return
		}
		*dstPath = p
		*dst = v.secret(child(loc, key), p)
	}
	secret("clientSecretFile", r.ClientSecretFile, &a.ClientSecret, &a.ClientSecretFile)
	secret("passwordFile", r.PasswordFile, &a.Password, &a.PasswordFile)
	secret("refreshTokenFile", r.RefreshTokenFile, &a.RefreshToken, &a.RefreshTokenFile)
	return a
}

// path resolves p against the tenants file's directory.
func (v *validator) path(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(v.dir, p)
}

// secretPath resolves a secret file's path and confines it to the secrets directory: no ".."
// element, nothing outside the directory (symbolic links followed where the file exists), and
// none of the worker's own secret files.
func (v *validator) secretPath(loc, p string) (string, bool) {
	if slices.Contains(strings.Split(filepath.ToSlash(p), "/"), "..") {
		v.ps.add(loc, "%s must not contain \"..\"", p)
		return "", false
	}
	dir := filepath.Clean(cmp.Or(v.d.SecretsDir, v.dir))
	full := filepath.Clean(p)
	if !filepath.IsAbs(p) {
		full = filepath.Join(dir, p)
	}
	if !within(dir, full) || !within(resolved(dir), resolved(full)) {
		v.ps.add(loc, "%s is outside the secrets directory %s (TENANTS_SECRETS_DIR)", p, dir)
		return "", false
	}
	for _, r := range v.d.Reserved {
		if r != "" && (filepath.Clean(r) == full || resolved(r) == resolved(full)) {
			v.ps.add(loc, "%s is one of the worker's own secret files", p)
			return "", false
		}
	}
	return full, true
}

// within reports whether path is dir or below it (both clean).
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// resolved is p with its symbolic links followed, or p when that fails (a file that does not
// exist is reported when it is read).
func resolved(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

// read reads a referenced file, reporting failure at loc.
func (v *validator) read(loc, path string) ([]byte, bool) {
	b, err := v.readFile(path)
	if err != nil {
		// A PathError repeats the operation and the path; the path is said once.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		v.ps.add(loc, "cannot read %s: %v", path, err)
		return nil, false
	}
	return b, true
}

// secret reads a secret file: one value, trimmed of surrounding white space. No message says
// anything about the content beyond its size.
func (v *validator) secret(loc, path string) string {
	b, ok := v.read(loc, path)
	if !ok {
		return ""
	}
	if len(b) > maxSecretBytes {
		v.ps.add(loc, "%s is larger than %d bytes; is it the right file?", path, maxSecretBytes)
		return ""
	}
	s := strings.TrimSpace(string(b))
	switch {
	case s == "":
		v.ps.add(loc, "%s is empty", path)
		return ""
	case strings.ContainsFunc(s, unicode.IsControl):
		v.ps.add(loc, "%s holds more than one line or a control character; a secret file holds one value", path)
		return ""
	}
	return s
}

// checkURL checks an http(s) URL with a host and nothing after the path; httpsOnly for token
// endpoints. A URL that carries credentials is not echoed.
func (v *validator) checkURL(loc, raw string, httpsOnly bool) {
	u, err := url.Parse(raw)
	schemes := "https:// or http://"
	if httpsOnly {
		schemes = "https://"
	}
	switch {
	case err != nil:
		v.ps.add(loc, "is not a URL")
	case u.User != nil:
		v.ps.add(loc, "must not carry credentials; use the auth keys")
	case u.Scheme != "https" && (httpsOnly || u.Scheme != "http"):
		if u.Scheme == "http" {
			schemes += " (http:// sends credentials in clear; the worker's ALLOW_INSECURE_HTTP=true accepts it)"
		}
		v.ps.add(loc, "%q must start with %s", raw, schemes)
	case u.Host == "" || u.Hostname() == "":
		v.ps.add(loc, "%q has no host", raw)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		v.ps.add(loc, "%q must not have a query or fragment", raw)
	}
}

func (v *validator) schedules(loc string, t Tenant, rs []rawSchedule) []Schedule {
	if len(rs) == 0 {
		return nil
	}
	out := make([]Schedule, 0, len(rs))
	seen := make(map[string]int, len(rs))
	for i, r := range rs {
		at := fmt.Sprintf("%s[%d]", loc, i)
		s := Schedule(r)
		switch msg := checkDirectoryName(r.Directory); {
		case msg != "":
			v.ps.add(child(at, "directory"), "%s", msg)
		case !t.Allows(r.Directory, nil):
			v.ps.add(child(at, "directory"), "%q is not in the tenant's directories", r.Directory)
		}
		if r.Directory != "" {
			k := strings.ToLower(r.Directory)
			if j, dup := seen[k]; dup {
				v.ps.add(child(at, "directory"), "%q already has a schedule (%s[%d])", r.Directory, loc, j)
			} else {
				seen[k] = i
			}
		}
		if r.IgnoreSafeguards && !t.AllowIgnoreSafeguards {
			v.ps.add(child(at, "ignoreSafeguards"), "needs allowIgnoreSafeguards: true on the tenant")
		}
		if r.Cron == "" {
			v.ps.add(child(at, "cron"), "required")
		} else if _, err := cronspec.Parse(r.Cron); err != nil {
			v.ps.add(child(at, "cron"), "%v", err)
		}
		out = append(out, s)
	}
	return out
}

// checkDirectoryName applies the trigger schema's rule for a directory name, which a scheduled
// trigger must pass: 1 to 256 characters, no control characters, no leading or trailing space.
func checkDirectoryName(s string) string {
	switch {
	case s == "":
		return "required"
	case utf8.RuneCountInString(s) > maxDirectoryLen:
		return fmt.Sprintf("is longer than %d characters", maxDirectoryLen)
	case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7F }):
		return "must not contain control characters"
	case s[0] == ' ' || s[len(s)-1] == ' ':
		return fmt.Sprintf("%q must not start or end with a space", s)
	}
	return ""
}
