// Package vidmsim is a strict, in-process simulator of the parts of the VMware Identity Manager
// (vIDM) API that vidm-sync-worker uses (see docs/vidm-api.md). It exists because vIDM cannot be
// reached from development and CI machines; it is deliberately stricter than vIDM so that a client
// that passes against it also passes against the real thing.
package vidmsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// Directory types vIDM reports; others exist, these are the ones the simulator's examples use.
const (
	TypeActiveDirectoryLDAP = "ACTIVE_DIRECTORY_LDAP"
	TypeActiveDirectoryIWA  = "ACTIVE_DIRECTORY_IWA"
	TypeLocalDirectory      = "LOCAL_DIRECTORY"
)

const (
	defaultTokenTTL     = time.Hour
	defaultSyncDuration = 2 * time.Second
)

// Directory is one vIDM directory the simulator knows.
type Directory struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Type    string   `json:"type,omitempty"` // default ACTIVE_DIRECTORY_LDAP
	Domains []string `json:"domains,omitempty"`
	// SyncDuration is how long a sync of this directory runs; 0 means Config.SyncDuration.
	SyncDuration time.Duration `json:"syncDuration,omitempty"`
	// FailMessage, when non-empty, makes every sync of this directory end FAILED with it.
	FailMessage string `json:"failMessage,omitempty"`
	// SafeguardViolation makes syncs started with ignoreSafeguards=false end FAILED, as vIDM does
	// when a sync would delete more users/groups than its safeguard thresholds allow.
	SafeguardViolation bool `json:"safeguardViolation,omitempty"`
	// SyncDisabled lists the directory with syncConfigurationEnabled: false.
	SyncDisabled bool `json:"syncDisabled,omitempty"`

	// Connectors are the directory's sync connectors in failover order (vIDM 19.03+); a sync runs
	// on the first one that is not down. Empty: one unnamed connector, as before 19.03.
	Connectors []string `json:"connectors,omitempty"`
	// DownConnectors are unavailable: a sync fails over past them (each is an attempt in the
	// status), and fails when every connector is down.
	DownConnectors []string `json:"downConnectors,omitempty"`

	// VCF flavor: the identity provider this directory (an identity source) belongs to.
	VCF *VCFSource `json:"vcf,omitempty"`

	// OutOfScope are glob patterns (path.Match, case-insensitive) of group and user names that
	// exist in AD but lie outside the directory's sync scope: the store never shows them.
	OutOfScope []string `json:"outOfScope,omitempty"`
	// Principals exist in the directory's AD from the server's start. Any other name asked for
	// exists too, in the first domain (see AddPrincipal); these add other domains and scope.
	Principals []ADPrincipal `json:"principals,omitempty"`
}

// Flavor selects which identity system's API the simulator speaks.
type Flavor string

const (
	FlavorVIDM     Flavor = "vidm"      // vIDM / Workspace ONE Access (default)
	FlavorVRACloud Flavor = "vra-cloud" // vIDM's API behind vRA Cloud, with a refresh-token login
	FlavorVRA7     Flavor = "vra7"      // vRA 7.4+ identity service
	FlavorVCF      Flavor = "vcf"       // VCF SDDC Manager identity providers
)

// Client is an OAuth 2.0 client (client credentials grant).
type Client struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

// User is a local account accepted by the system login endpoint.
type User struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Config configures a Server. Zero values get the documented defaults in New. The JSON tags document
// the config-file names; MarshalJSON/UnmarshalJSON do the work so durations read as "2s".
type Config struct {
	// Flavor is the API spoken; default FlavorVIDM. Every flavor shares the directories, tokens,
	// sync model and faults; only paths, media types and bodies differ.
	Flavor Flavor `json:"flavor,omitempty"`
	// Tenant is the vRA 7 tenant (FlavorVRA7); default "vsphere.local".
	Tenant string `json:"tenant,omitempty"`
	// RefreshTokens are the API tokens FlavorVRACloud's token endpoint accepts.
	RefreshTokens []string    `json:"refreshTokens,omitempty"`
	Directories   []Directory `json:"directories"`
	Clients       []Client    `json:"clients,omitempty"`
	Users         []User      `json:"users,omitempty"`
	// TokenTTL is the OAuth expires_in and the system-login JWT lifetime; default 1h.
	TokenTTL time.Duration `json:"tokenTTL,omitempty"`
	// SyncDuration is the default sync length; default 2s.
	SyncDuration time.Duration `json:"syncDuration,omitempty"`
	// Now is the clock for token expiry and sync progress; default time.Now. Tests pass a fake clock.
	Now func() time.Time `json:"-"`
	// Logger receives request logs at Debug; default discards.
	Logger *slog.Logger `json:"-"`
	// Seed makes fault Rate decisions reproducible.
	Seed int64 `json:"seed,omitempty"`
	// OnSyncStart, when set, is called with the record of every sync as it starts (API and foreign
	// ones), after the simulator's lock is released, so it may call back into the Server. Benchmarks
	// use it to timestamp the moment vIDM is asked to sync.
	OnSyncStart func(SyncRecord) `json:"-"`
	// StatusBody is the shape of the vidm and vra-cloud flavors' sync-status answer (vIDM's real
	// body is not documented):
	// StatusBodyFull (default), StatusBodyNoDates or StatusBodyUnexpected.
	StatusBody StatusBody `json:"statusBody,omitempty"`
	// StartLag is how long after its POST a sync begins; until then the status still reports
	// the previous sync, as a system that starts syncs asynchronously would. Default 0.
	StartLag time.Duration `json:"startLag,omitempty"`
	// SCIMMaxCount caps the resources of one SCIM page (count); default 100.
	SCIMMaxCount int `json:"scimMaxCount,omitempty"`
}

// StatusBody selects the shape of the sync-status answer, so that tests cover what a real
// system might send.
type StatusBody string

const (
	// StatusBodyFull: status, start and end dates, progress, message (the default).
	StatusBodyFull StatusBody = "full"
	// StatusBodyNoDates: status and message only, with no dates and no progress.
	StatusBodyNoDates StatusBody = "no-dates"
	// StatusBodyUnexpected: a shape no client knows, with the state under unfamiliar names.
	StatusBodyUnexpected StatusBody = "unexpected"
)

// duration is a time.Duration written in JSON as a Go duration string ("2s", "1h0m0s").
type duration time.Duration

func (d duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"2s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = duration(v)
	return nil
}

// The JSON forms carry the durations as strings; the Go types keep plain time.Duration so that
// tests and callers write natural Go.
type directoryJSON struct {
	ID                 string        `json:"id"`
	Name               string        `json:"name"`
	Type               string        `json:"type,omitempty"`
	Domains            []string      `json:"domains,omitempty"`
	SyncDuration       duration      `json:"syncDuration,omitempty"`
	FailMessage        string        `json:"failMessage,omitempty"`
	SafeguardViolation bool          `json:"safeguardViolation,omitempty"`
	SyncDisabled       bool          `json:"syncDisabled,omitempty"`
	Connectors         []string      `json:"connectors,omitempty"`
	DownConnectors     []string      `json:"downConnectors,omitempty"`
	VCF                *VCFSource    `json:"vcf,omitempty"`
	OutOfScope         []string      `json:"outOfScope,omitempty"`
	Principals         []ADPrincipal `json:"principals,omitempty"`
}

type configJSON struct {
	Flavor        Flavor          `json:"flavor,omitempty"`
	Tenant        string          `json:"tenant,omitempty"`
	RefreshTokens []string        `json:"refreshTokens,omitempty"`
	Directories   []directoryJSON `json:"directories"`
	Clients       []Client        `json:"clients,omitempty"`
	Users         []User          `json:"users,omitempty"`
	TokenTTL      duration        `json:"tokenTTL,omitempty"`
	SyncDuration  duration        `json:"syncDuration,omitempty"`
	Seed          int64           `json:"seed,omitempty"`
	StatusBody    StatusBody      `json:"statusBody,omitempty"`
	StartLag      duration        `json:"startLag,omitempty"`
	SCIMMaxCount  int             `json:"scimMaxCount,omitempty"`
}

func (d Directory) toJSON() directoryJSON {
	return directoryJSON{
		ID: d.ID, Name: d.Name, Type: d.Type, Domains: d.Domains,
		SyncDuration: duration(d.SyncDuration), FailMessage: d.FailMessage,
		SafeguardViolation: d.SafeguardViolation, Connectors: d.Connectors, DownConnectors: d.DownConnectors, VCF: d.VCF,
		SyncDisabled: d.SyncDisabled,
		OutOfScope:   d.OutOfScope, Principals: d.Principals,
	}
}

func (j directoryJSON) toDirectory() Directory {
	return Directory{
		ID: j.ID, Name: j.Name, Type: j.Type, Domains: j.Domains,
		SyncDuration: time.Duration(j.SyncDuration), FailMessage: j.FailMessage,
		SafeguardViolation: j.SafeguardViolation, Connectors: j.Connectors, DownConnectors: j.DownConnectors, VCF: j.VCF,
		SyncDisabled: j.SyncDisabled,
		OutOfScope:   j.OutOfScope, Principals: j.Principals,
	}
}

// MarshalJSON writes durations as Go duration strings.
func (d Directory) MarshalJSON() ([]byte, error) { return json.Marshal(d.toJSON()) }

// UnmarshalJSON reads durations as Go duration strings and rejects unknown fields (typos in a
// config file should fail loudly, not be ignored).
func (d *Directory) UnmarshalJSON(b []byte) error {
	var j directoryJSON
	if err := decodeStrict(b, &j); err != nil {
		return err
	}
	*d = j.toDirectory()
	return nil
}

// MarshalJSON writes durations as Go duration strings; Now and Logger are not serialised.
func (c Config) MarshalJSON() ([]byte, error) {
	j := configJSON{
		Flavor: c.Flavor, Tenant: c.Tenant, RefreshTokens: c.RefreshTokens,
		Clients: c.Clients, Users: c.Users, TokenTTL: duration(c.TokenTTL),
		SyncDuration: duration(c.SyncDuration), Seed: c.Seed, StatusBody: c.StatusBody, SCIMMaxCount: c.SCIMMaxCount,
		StartLag:    duration(c.StartLag),
		Directories: make([]directoryJSON, 0, len(c.Directories)),
	}
	for _, d := range c.Directories {
		j.Directories = append(j.Directories, d.toJSON())
	}
	return json.Marshal(j)
}

// UnmarshalJSON is the inverse of MarshalJSON and rejects unknown fields. Now and Logger are left
// as they were.
func (c *Config) UnmarshalJSON(b []byte) error {
	var j configJSON
	if err := decodeStrict(b, &j); err != nil {
		return err
	}
	c.Flavor, c.Tenant, c.RefreshTokens = j.Flavor, j.Tenant, j.RefreshTokens
	c.Clients, c.Users, c.Seed, c.StatusBody = j.Clients, j.Users, j.Seed, j.StatusBody
	c.SCIMMaxCount = j.SCIMMaxCount
	c.TokenTTL, c.SyncDuration = time.Duration(j.TokenTTL), time.Duration(j.SyncDuration)
	c.StartLag = time.Duration(j.StartLag)
	c.Directories = make([]Directory, 0, len(j.Directories))
	for _, d := range j.Directories {
		c.Directories = append(c.Directories, d.toDirectory())
	}
	return nil
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err // callers wrap; context added here would repeat at every nesting level
	}
	return nil
}

// LoadConfig reads a JSON config (the format ExampleConfig marshals to) and validates it.
func LoadConfig(r io.Reader) (Config, error) {
	dec := json.NewDecoder(r)
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("vidmsim: decode config: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("vidmsim: decode config: trailing data after the JSON object")
	}
	if err := validateConfig(cfg); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// ExampleConfig is the configuration cmd/vidm-sim uses without -config. Its credentials are
// public examples, not secrets.
func ExampleConfig() Config {
	return Config{
		Directories: []Directory{
			{ID: "dir-corp-ad", Name: "Corp AD", Type: TypeActiveDirectoryLDAP, Domains: []string{"corp.example.com"}},
			{ID: "dir-emea-ad", Name: "EMEA AD", Type: TypeActiveDirectoryLDAP, Domains: []string{"emea.example.com"}},
			{ID: "dir-lab-iwa", Name: "Lab IWA", Type: TypeActiveDirectoryIWA, Domains: []string{"lab.example.com"}},
			{ID: "dir-system", Name: "System Directory", Type: TypeLocalDirectory},
		},
		Clients:      []Client{{ID: "vidm-sync-worker", Secret: "example-client-secret"}},
		Users:        []User{{Username: "sync-admin", Password: "example-password"}},
		TokenTTL:     time.Hour,
		SyncDuration: 3 * time.Second,
	}
}

func validateConfig(cfg Config) error {
	var errs []error
	if cfg.TokenTTL < 0 {
		errs = append(errs, errors.New("tokenTTL must not be negative"))
	}
	if cfg.StartLag < 0 {
		errs = append(errs, fmt.Errorf("startLag %s must not be negative", cfg.StartLag))
	}
	if cfg.SyncDuration < 0 {
		errs = append(errs, errors.New("syncDuration must not be negative"))
	}
	if cfg.SCIMMaxCount < 0 {
		errs = append(errs, errors.New("scimMaxCount must not be negative"))
	}
	if err := validateVCFDirectories(cfg.Directories); err != nil {
		errs = append(errs, err)
	}
	switch cfg.StatusBody {
	case "", StatusBodyFull, StatusBodyNoDates, StatusBodyUnexpected:
	default:
		errs = append(errs, fmt.Errorf("statusBody %q is not full, no-dates or unexpected", cfg.StatusBody))
	}
	switch cfg.Flavor {
	case "", FlavorVIDM, FlavorVRACloud, FlavorVRA7, FlavorVCF:
	default:
		errs = append(errs, fmt.Errorf("flavor %q is not vidm, vra-cloud, vra7 or vcf", cfg.Flavor))
	}
	ids, names := map[string]bool{}, map[string]bool{}
	for i, d := range cfg.Directories {
		if err := validateDirectory(d); err != nil {
			errs = append(errs, fmt.Errorf("directories[%d]: %w", i, err))
			continue
		}
		if ids[d.ID] {
			errs = append(errs, fmt.Errorf("directories[%d]: duplicate id %q", i, d.ID))
		}
		if names[strings.ToLower(d.Name)] {
			errs = append(errs, fmt.Errorf("directories[%d]: duplicate name %q", i, d.Name))
		}
		ids[d.ID], names[strings.ToLower(d.Name)] = true, true
	}
	clientIDs := map[string]bool{}
	for i, c := range cfg.Clients {
		switch {
		case c.ID == "" || c.Secret == "":
			errs = append(errs, fmt.Errorf("clients[%d]: id and secret must not be empty", i))
		case clientIDs[c.ID]:
			errs = append(errs, fmt.Errorf("clients[%d]: duplicate id %q", i, c.ID))
		}
		clientIDs[c.ID] = true
	}
	usernames := map[string]bool{}
	for i, u := range cfg.Users {
		switch {
		case u.Username == "" || u.Password == "":
			errs = append(errs, fmt.Errorf("users[%d]: username and password must not be empty", i))
		case usernames[u.Username]:
			errs = append(errs, fmt.Errorf("users[%d]: duplicate username %q", i, u.Username))
		}
		usernames[u.Username] = true
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("vidmsim: invalid config: %w", err)
	}
	return nil
}

// validateDirectory checks one directory on its own; uniqueness is the caller's business.
func validateDirectory(d Directory) error {
	switch {
	case d.ID == "" || d.ID == "." || d.ID == "..":
		return fmt.Errorf("id %q is not usable as a path segment", d.ID)
	case strings.TrimSpace(d.Name) == "":
		return errors.New("name must not be empty")
	case d.SyncDuration < 0:
		return errors.New("syncDuration must not be negative")
	}
	return validatePrincipals(d)
}
