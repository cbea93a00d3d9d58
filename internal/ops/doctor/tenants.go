package doctor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/systems"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/tenants"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/natsconn"
)

// maxStatusChecks bounds the directories whose sync status is read: a tenant with hundreds of
// directories is checked on a sample, and says so.
const maxStatusChecks = 20

// checkTenants checks each configured tenant's identity system.
func checkTenants(ctx context.Context, cfg config.Config, o Options) []Section {
	f, err := cfg.Tenants()
	if err != nil {
		return []Section{{Name: "tenants", Checks: []Check{{Name: "configuration", Status: Fail, Detail: err.Error()}}}}
	}
	var out []Section
	for _, name := range f.Names() {
		t := f.Tenants[name]
		sample := o.Group != "" || o.User != ""
		if o.Tenant != "" && o.Tenant != name || o.Tenant == "" && name != f.DefaultTenant {
			sample = false
		}
		out = append(out, checkTenant(ctx, t, o, sample))
	}
	return out
}

func checkTenant(ctx context.Context, t tenants.Tenant, o Options, sample bool) Section {
	s := Section{Name: t.Name, Kind: string(t.Backend), URL: natsconn.RedactURLs(t.URL)}
	hc := systems.Config(t)
	hc.Logger = o.Logger
	hc.RequestTimeout = min(cmp.Or(hc.RequestTimeout, o.Timeout), o.Timeout)
	c, err := systems.New(hc)
	if err != nil {
		s.Checks = append(s.Checks, Check{Name: "configuration", Status: Fail, Detail: err.Error()})
		return s
	}
	defer c.Close()
	s.Checks = append(s.Checks, tlsCheck(ctx, c, o))
	dirs, err := bounded(ctx, o, c.Directories)
	if err != nil {
		s.Checks = append(s.Checks, Check{Name: "login and directory list", Status: Fail, Detail: err.Error()})
		return s
	}
	s.Checks = append(s.Checks, Check{Name: "login and directory list", Status: OK,
		Detail: fmt.Sprintf("logged in (%s); %d directories: %s", hc.AuthMode, len(dirs), listDirectories(dirs)), Data: dirs})
	allowed := 0
	for _, d := range dirs {
		if !t.Allows(d.Name, d.Domains) {
			continue
		}
		if allowed++; allowed > maxStatusChecks {
			s.Checks = append(s.Checks, Check{Name: "sync status", Status: Skip,
				Detail: fmt.Sprintf("the first %d directories were checked; the others are read the same way", maxStatusChecks)})
			break
		}
		s.Checks = append(s.Checks, statusCheck(ctx, c, o, d))
	}
	if allowed == 0 {
		s.Checks = append(s.Checks, Check{Name: "directories", Status: Fail, Detail: "no directory is listed that the tenant's allow-list admits"})
	}
	if sample {
		s.Checks = append(s.Checks, lookupCheck(ctx, c, o, t, dirs))
	}
	return s
}

// listDirectories names the first directories with their ids, domains and a sync turned off.
func listDirectories(dirs []backend.Directory) string {
	const shown = 10
	var parts []string
	for i, d := range dirs {
		if i == shown {
			parts = append(parts, fmt.Sprintf("and %d more (--json lists them all)", len(dirs)-shown))
			break
		}
		p := fmt.Sprintf("%s (id %s", d.Name, d.ID)
		if len(d.Domains) > 0 {
			p += ", " + strings.Join(d.Domains, " ")
		}
		if d.SyncDisabled {
			p += ", sync turned off"
		}
		parts = append(parts, p+")")
	}
	return strings.Join(parts, "; ")
}

func tlsCheck(ctx context.Context, c *httpcore.Client, o Options) Check {
	ch, err := bounded(ctx, o, c.InspectTLS)
	switch {
	case err != nil:
		return Check{Name: "TLS", Status: Fail, Detail: err.Error()}
	case ch == nil:
		return Check{Name: "TLS", Status: Warn, Detail: "plain http://: credentials cross the network in clear"}
	}
	var b strings.Builder
	for i, cert := range ch.Certificates {
		if i > 0 {
			b.WriteString(" ← ")
		}
		fmt.Fprintf(&b, "%s (issued by %s, expires %s)", cert.Subject, cert.Issuer, cert.NotAfter.Format(time.DateOnly))
	}
	switch {
	case ch.Insecure:
		return Check{Name: "TLS", Status: Warn, Detail: "verification is switched off (insecure); chain: " + b.String(), Data: ch}
	case !ch.Verified:
		return Check{Name: "TLS", Status: Fail, Detail: fmt.Sprintf("%s; chain: %s (give the CA that signed it: VIDM_CA_FILE or the tenant's tls.caFile)",
			ch.VerifyError, b.String()), Data: ch}
	}
	return Check{Name: "TLS", Status: OK, Detail: "verified; chain: " + b.String(), Data: ch}
}

// statusReport is what a sync status check read.
type statusReport struct {
	Directory     backend.Directory   `json:"directory"`
	Status        backend.Status      `json:"status,omitempty"`
	Raw           string              `json:"raw,omitempty"`
	StartedAt     time.Time           `json:"startedAt,omitzero"`
	FinishedAt    time.Time           `json:"finishedAt,omitzero"`
	Progress      int                 `json:"progress"`
	Connector     string              `json:"connector,omitempty"`
	Delegation    *backend.Delegation `json:"delegation,omitempty"`
	NotUnderstood []string            `json:"notUnderstood,omitempty"`
	// Signals says which of the signals that tell the worker's sync from the previous one the
	// system gives: a start date, an end date (RUNNING can only be seen while a sync runs).
	Signals []string `json:"signals"`
}

func statusCheck(ctx context.Context, c *httpcore.Client, o Options, d backend.Directory) Check {
	name := "sync status of " + d.Name
	body, err := bounded(ctx, o, func(cc context.Context) ([]byte, error) { return c.RawSyncStatus(cc, d.ID) })
	if err != nil {
		return Check{Name: name, Status: Fail, Detail: err.Error()}
	}
	rep := statusReport{Directory: d, Progress: -1}
	st, perr := c.ParseStatusBody(d.ID, body)
	if perr == nil {
		rep.Status, rep.Raw, rep.StartedAt, rep.FinishedAt = st.Status, st.Raw, st.StartedAt, st.FinishedAt
		rep.Progress, rep.Connector, rep.Delegation = st.Progress, st.Connector, st.Delegation
	}
	if c.Describe().Kind != backend.KindVCF {
		rep.NotUnderstood = httpcore.DiagnoseSyncState(body)
	}
	rep.Signals = signals(st, perr)
	ck := Check{Name: name, Status: OK, Data: rep, Detail: describeState(st, perr)}
	if perr == nil && st.Status != backend.StatusDelegated {
		ck.Detail += "; signals: " + strings.Join(rep.Signals, ", ")
	}
	switch {
	case perr != nil:
		ck.Status, ck.Detail = Fail, fmt.Sprintf("not understood: %v; %s", perr, strings.Join(rep.NotUnderstood, "; "))
	case st.Status == backend.StatusUnknown:
		ck.Status = Fail
		ck.Detail += "; " + strings.Join(rep.NotUnderstood, "; ")
	case len(rep.NotUnderstood) > 0:
		ck.Status = Warn
		ck.Detail += "; " + strings.Join(rep.NotUnderstood, "; ")
	}
	if d.SyncDisabled {
		ck.Status = Warn
		ck.Detail = "sync turned off in the identity system (syncConfigurationEnabled: false): its triggers are dead-lettered DIRECTORY_SYNC_DISABLED; " + ck.Detail
	}
	return ck
}

func describeState(st backend.SyncState, err error) string {
	if err != nil {
		return ""
	}
	parts := []string{string(st.Status)}
	if st.Raw != "" && !strings.EqualFold(st.Raw, string(st.Status)) {
		parts[0] += fmt.Sprintf(" (sent as %q)", st.Raw)
	}
	if !st.StartedAt.IsZero() {
		parts = append(parts, "started "+st.StartedAt.UTC().Format(time.RFC3339))
	}
	if !st.FinishedAt.IsZero() {
		parts = append(parts, "finished "+st.FinishedAt.UTC().Format(time.RFC3339))
	}
	if st.Progress >= 0 {
		parts = append(parts, fmt.Sprintf("progress %d%%", st.Progress))
	}
	if st.Connector != "" {
		parts = append(parts, "connector "+st.Connector)
	}
	if d := st.Delegation; d != nil {
		parts = append(parts, fmt.Sprintf("kept current by %s (%s)", cmp.Or(d.ProviderName, d.Source), d.Kind))
		if !d.TokenExpiresAt.IsZero() {
			parts = append(parts, "sync-client token expires "+d.TokenExpiresAt.UTC().Format(time.DateOnly))
		}
	}
	return strings.Join(parts, ", ")
}

// signals lists what this status tells the worker about whether a sync is the one it asked for.
func signals(st backend.SyncState, err error) []string {
	switch {
	case err != nil:
		return []string{"none understood: a sync's end cannot be recognised"}
	case st.Status == backend.StatusDelegated:
		return []string{"delegated: no sync is started"}
	case st.Status == backend.StatusUndefined:
		return []string{"no sync has run yet: dates unknown until one has"}
	}
	out := []string{"start date: given"}
	if st.StartedAt.IsZero() {
		out[0] = "start date: not given (the worker then relies on seeing RUNNING, or POLL_CONFIRM_AFTER)"
	}
	switch {
	case st.Status == backend.StatusRunning:
		out = append(out, "RUNNING: seen now")
	case !st.FinishedAt.IsZero():
		out = append(out, "end date: given")
	default:
		out = append(out, "end date: not given (the worker reports its own time)")
	}
	return out
}

// lookupCheck looks the sample group or user up as the readiness check would.
func lookupCheck(ctx context.Context, c *httpcore.Client, o Options, t tenants.Tenant, dirs []backend.Directory) Check {
	p := backend.Principal{Kind: backend.PrincipalGroup, Name: o.Group}
	if o.User != "" {
		p = backend.Principal{Kind: backend.PrincipalUser, Name: o.User}
	}
	name := fmt.Sprintf("readiness lookup of %s %q", p.Kind, p.Name)
	d, err := sampleDirectory(t, dirs, o.Directory)
	if err != nil {
		return Check{Name: name, Status: Fail, Detail: err.Error()}
	}
	name += " in " + d.Name
	found, err := bounded(ctx, o, func(cc context.Context) ([]backend.Found, error) {
		return c.LookupPrincipals(cc, d, []backend.Principal{p})
	})
	switch {
	case errors.Is(err, backend.ErrLookupUnsupported):
		return Check{Name: name, Status: Skip, Detail: fmt.Sprintf("%s offers no lookup: results say \"not checked\"", t.Backend)}
	case err != nil || len(found) != 1:
		return Check{Name: name, Status: Fail, Detail: fmt.Sprintf("the lookup failed: %v", err)}
	case found[0].Visibility == backend.Visible:
		return Check{Name: name, Status: OK, Detail: "visible, id " + found[0].ID, Data: found[0]}
	}
	return Check{Name: name, Status: Warn, Data: found[0],
		Detail: "not found: if it exists in AD, it lies outside the directory's sync scope (or has not been synced yet)"}
}

func sampleDirectory(t tenants.Tenant, dirs []backend.Directory, ref string) (backend.Directory, error) {
	if ref != "" {
		d, err := backend.MatchDirectory(dirs, ref)
		if err != nil {
			return backend.Directory{}, err
		}
		return d, nil
	}
	for _, d := range dirs {
		if t.Allows(d.Name, d.Domains) {
			return d, nil
		}
	}
	return backend.Directory{}, errors.New("no directory to look in: give --directory")
}
