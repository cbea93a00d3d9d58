package main

// The -tenants demo: one worker serving four identity systems at once, each played by a
// simulator flavor over TLS on loopback, all of them named in a generated tenants file.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sethvargo/go-envconfig"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natsdev"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// The -tenants demo's own defaults: four backends' worth of triggers and syncs must still finish
// in seconds.
const (
	tenantsTriggers     = 15
	tenantsSyncDuration = time.Second
	tenantsWindow       = 300 * time.Millisecond
)

// The VCF Okta broker's sync-client token expires within the warning time, so that the worker's
// first token check raises a warning.
const (
	oktaTokenExpiresIn = 72 * time.Hour
	oktaTokenWarning   = 168 * time.Hour
)

// The connectors of corp's Corp AD, in failover order; the first is down.
const (
	connectorDown = "connector-a.corp.example.com"
	connectorUp   = "connector-b.corp.example.com"
)

// masked replaces a secret wherever the demo prints something that might hold one.
const masked = "********"

// demoDirectory is a directory of a demo tenant and the triggers it gets in the burst.
type demoDirectory struct {
	name     string
	triggers int
}

// demoTenant is one tenant: the simulator playing its backend and its entry in the tenants file.
type demoTenant struct {
	name    string
	flavor  vidmsim.Flavor
	sim     *vidmsim.Server
	srv     *http.Server
	url     string
	caFile  string            // relative to the tenants file, as the file names it
	auth    string            // the entry's auth section, YAML lines without their indent
	extra   string            // further keys of the entry, YAML lines without their indent
	secrets map[string]string // secret file, relative to the tenants file → its value
	dirs    []demoDirectory
	// byDefault: the tenant's triggers name no tenant, so they show the defaultTenant routing.
	byDefault bool
}

// tenantSpec is what a demo tenant is before its simulator listens: the tenant, the simulator's
// config, and how its auth section reads once the URL is known.
type tenantSpec struct {
	tenant demoTenant
	sim    vidmsim.Config
	auth   func(url string) string
}

// tenantSpecs are the four tenants: one per flavor, each with its own random credential.
func tenantSpecs(o options, now time.Time) []tenantSpec {
	per := o.perDirectory
	corpSecret, cloudToken, labPassword, vcfPassword := rand.Text(), rand.Text(), rand.Text(), rand.Text()
	return []tenantSpec{{
		tenant: demoTenant{name: "corp", flavor: vidmsim.FlavorVIDM, byDefault: true,
			secrets: map[string]string{"secrets/corp-client-secret": corpSecret},
			dirs:    []demoDirectory{{"Corp AD", per}, {"EMEA AD", per}}},
		sim: vidmsim.Config{Flavor: vidmsim.FlavorVIDM, Clients: []vidmsim.Client{{ID: "vidm-sync-worker", Secret: corpSecret}},
			Directories: []vidmsim.Directory{
				{ID: "dir-corp-ad", Name: "Corp AD", Domains: []string{"corp.example.com"},
					Connectors: []string{connectorDown, connectorUp}, DownConnectors: []string{connectorDown}},
				{ID: "dir-emea-ad", Name: "EMEA AD", Domains: []string{"emea.example.com"}},
			}},
		auth: func(string) string {
			return "mode: oauth\nclientId: vidm-sync-worker\nclientSecretFile: secrets/corp-client-secret"
		},
	}, {
		tenant: demoTenant{name: "cloud", flavor: vidmsim.FlavorVRACloud,
			secrets: map[string]string{"secrets/cloud-refresh-token": cloudToken},
			dirs:    []demoDirectory{{"Cloud AD", per}, {"Partners AD", per}}},
		sim: vidmsim.Config{Flavor: vidmsim.FlavorVRACloud, RefreshTokens: []string{cloudToken},
			Directories: []vidmsim.Directory{
				{ID: "dir-cloud-ad", Name: "Cloud AD", Domains: []string{"cloud.example.com"}},
				{ID: "dir-partners-ad", Name: "Partners AD", Domains: []string{"partners.example.com"}},
			}},
		// The simulator plays CSP's token exchange too, so the token URL is the simulator's.
		auth: func(url string) string {
			return "mode: refresh-token\nrefreshTokenFile: secrets/cloud-refresh-token\ntokenURL: " + url + "/csp/gateway/am/api/auth/api-tokens/authorize"
		},
	}, {
		tenant: demoTenant{name: "lab", flavor: vidmsim.FlavorVRA7,
			secrets: map[string]string{"secrets/lab-password": labPassword},
			dirs:    []demoDirectory{{"Lab AD", per}, {"Test AD", per}}},
		sim: vidmsim.Config{Flavor: vidmsim.FlavorVRA7, Tenant: "vsphere.local", Users: []vidmsim.User{{Username: "svc-dirsync", Password: labPassword}},
			Directories: []vidmsim.Directory{
				{ID: "dir-lab-ad", Name: "Lab AD", Domains: []string{"lab.example.com"}},
				{ID: "dir-test-ad", Name: "Test AD", Domains: []string{"test.lab.example.com"}},
			}},
		auth: func(string) string {
			return "mode: password\nusername: svc-dirsync\npasswordFile: secrets/lab-password\ntenant: vsphere.local"
		},
	}, {
		tenant: demoTenant{name: "vcf", flavor: vidmsim.FlavorVCF,
			secrets: map[string]string{"secrets/vcf-password": vcfPassword},
			extra:   "syncClientTokenWarning: " + fmtHours(oktaTokenWarning) + "   # Okta's sync-client token expires sooner: a warning",
			// VCF starts no sync: one trigger each shows what the worker reports instead.
			dirs: []demoDirectory{{"OktaDirectory", 1}, {"Mgmt AD", 1}}},
		sim: vidmsim.Config{Flavor: vidmsim.FlavorVCF, Users: []vidmsim.User{{Username: "administrator@vsphere.local", Password: vcfPassword}},
			Directories: []vidmsim.Directory{
				{ID: "vcf-okta", Name: "OktaDirectory", Domains: []string{"okta.example.com"}, VCF: &vidmsim.VCFSource{
					ProviderID: "159498c4-6e0e-4757-ae4b-dcb6aaa93216", ProviderName: "Okta", ProviderType: vidmsim.VCFProviderBroker,
					SourceType: vidmsim.VCFSourceOkta, SyncClientTokenExpiresAt: now.Add(oktaTokenExpiresIn).UTC().Truncate(time.Second)}},
				{ID: "vcf-mgmt-ad", Name: "Mgmt AD", Domains: []string{"mgmt.example.com"}, VCF: &vidmsim.VCFSource{
					ProviderID: "3262279b-09b0-44eb-a3be-f4bded4f0851", ProviderType: vidmsim.VCFProviderEmbedded,
					SourceType: vidmsim.VCFSourceActiveDirectory}},
			}},
		auth: func(string) string {
			return "mode: password\nusername: administrator@vsphere.local\npasswordFile: secrets/vcf-password"
		},
	}}
}

func fmtHours(d time.Duration) string { return fmt.Sprintf("%dh", int(d.Hours())) }

// startTenant starts t's simulator over TLS on a free loopback port and writes its CA to dir.
func startTenant(spec tenantSpec, dir string, o options, log *slog.Logger) (*demoTenant, error) {
	t := spec.tenant
	cfg := spec.sim
	cfg.SyncDuration, cfg.TokenTTL = o.syncDuration, time.Hour
	cfg.Logger = log.With("component", "vidm-sim", "tenant", t.name)
	sim, err := vidmsim.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("tenant %s: %w", t.name, err)
	}
	cert, certPEM, err := vidmsim.SelfSignedCert()
	if err != nil {
		return nil, err
	}
	t.caFile = "ca/" + t.name + "-ca.pem"
	if err := writeFile(filepath.Join(dir, t.caFile), certPEM); err != nil {
		return nil, err
	}
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t.sim, t.url = sim, "https://"+ln.Addr().String()
	t.auth = spec.auth(t.url)
	t.srv = &http.Server{
		Handler:           sim,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() { _ = t.srv.ServeTLS(ln, "", "") }()
	return &t, nil
}

func (t *demoTenant) close() {
	t.sim.Resume() // a hung request would hold Shutdown until its timeout
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = t.srv.Shutdown(ctx)
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// tenantsYAML is the tenants file for ts; corp, the first, is the default tenant.
func tenantsYAML(ts []*demoTenant) string {
	var b strings.Builder
	b.WriteString("# Generated by vidm-sync-demo -tenants; paths are relative to this file's directory.\n")
	b.WriteString("# Triggers without \"tenant\" go to defaultTenant.\n")
	fmt.Fprintf(&b, "defaultTenant: %s\ntenants:\n", ts[0].name)
	indent := func(s, pre string) string { return pre + strings.ReplaceAll(s, "\n", "\n"+pre) + "\n" }
	for _, t := range ts {
		fmt.Fprintf(&b, "  %s:\n    backend: %s\n    url: %s\n    auth:\n", t.name, t.flavor, t.url)
		b.WriteString(indent(t.auth, "      "))
		fmt.Fprintf(&b, "    tls:\n      caFile: %s\n", t.caFile)
		if t.extra != "" {
			b.WriteString(indent(t.extra, "    "))
		}
	}
	return b.String()
}

// writeTenantsFile writes the file and its secret files into dir and returns the file's path.
func writeTenantsFile(dir string, ts []*demoTenant) (string, error) {
	for _, t := range ts {
		for rel, v := range t.secrets {
			if err := writeFile(filepath.Join(dir, rel), []byte(v+"\n")); err != nil {
				return "", err
			}
		}
	}
	path := filepath.Join(dir, "tenants.yaml")
	return path, writeFile(path, []byte(tenantsYAML(ts)))
}

// mask hides every tenant's secrets in s. The file holds only references to secret files, but
// what the demo prints is masked anyway, so no later change to the file can leak one.
func mask(s string, ts []*demoTenant) string {
	for _, t := range ts {
		for _, v := range t.secrets {
			s = strings.ReplaceAll(s, v, masked)
		}
	}
	return s
}

// tenantEvent is one event of the results stream: a sync result or a token warning.
type tenantEvent struct {
	typ     string
	data    contract.Data
	warning contract.TokenWarningData
}

func runTenants(ctx context.Context, o options, stdout io.Writer, log *slog.Logger) error {
	dir := o.tenantsDir
	if dir == "" {
		d, err := os.MkdirTemp("", "vidm-sync-demo-tenants-")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(d) }()
		dir = d
	}
	ns, err := natsdev.Start(natsdev.Options{})
	if err != nil {
		return fmt.Errorf("embedded NATS: %w", err)
	}
	defer ns.Shutdown()

	var ts []*demoTenant
	defer func() {
		for _, t := range ts {
			t.close()
		}
	}()
	for _, spec := range tenantSpecs(o, time.Now()) {
		t, err := startTenant(spec, dir, o, log)
		if err != nil {
			return err
		}
		ts = append(ts, t)
	}
	file, err := writeTenantsFile(dir, ts)
	if err != nil {
		return err
	}

	cfg, err := config.Load(ctx, envconfig.MapLookuper(map[string]string{
		"NATS_URL":              ns.URL(),
		"TENANTS_FILE":          file,
		"COALESCE_WINDOW":       o.window.String(),
		"POLL_INITIAL_INTERVAL": "100ms",
		"POLL_MAX_INTERVAL":     "250ms",
		"SYNC_DEADLINE":         o.timeout.String(),
		"RESULT_SOURCE":         "urn:vidm-sync-worker:demo",
		"ADMIN_ADDR":            "127.0.0.1:0",
	}), false)
	if err != nil {
		return err
	}
	js, workerDone, stop, err := startWorker(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stop()
	printSetup(stdout, ns.URL(), file, ts)
	if err := awaitConsumer(ctx, js, cfg, workerDone, o.timeout); err != nil {
		return err
	}
	sent, err := publishTenants(ctx, js, ts, stdout)
	if err != nil {
		return err
	}
	events, waitErr := awaitTenantResults(ctx, js, cfg.ResultStream, sent, o.timeout)

	syncs := printTenantSyncs(stdout, ts)
	printTenantResults(stdout, events)
	warnings := printWarnings(stdout, events)
	reported := map[string]bool{}
	for _, e := range events {
		if e.typ == contract.TypeCompleted || e.typ == contract.TypeFailed {
			for _, tr := range e.data.Triggers {
				reported[tr.ID] = true
			}
		}
	}
	missing := 0
	for id := range sent {
		if !reported[id] {
			missing++
		}
	}
	fmt.Fprintf(stdout, "\n%d triggers published, %d reported, %d missing; %d syncs across %d backends (a per-trigger script would have run %d)\n",
		len(sent), len(sent)-missing, missing, syncs, len(ts), len(sent))
	problems := checkTenants(events, warnings, missing)
	if waitErr != nil {
		problems = append([]string{waitErr.Error()}, problems...)
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	fmt.Fprintln(stdout, "checks passed: vidm, vra-cloud and vra7 results COMPLETED, VCF results DELEGATED, the failover shown, one token warning")
	return nil
}

func printSetup(out io.Writer, natsURL, file string, ts []*demoTenant) {
	fmt.Fprintf(out, "One worker, four identity systems: embedded NATS %s and a simulator per backend over TLS\n\n", natsURL)
	w := newTable(out)
	fmt.Fprintln(w, "  TENANT\tBACKEND\tURL\tDIRECTORIES")
	for i, t := range ts {
		var names []string
		for _, d := range t.dirs {
			names = append(names, d.name)
		}
		def := ""
		if i == 0 {
			def = " (default tenant)"
		}
		fmt.Fprintf(w, "  %s%s\t%s\t%s\t%s\n", t.name, def, t.flavor, t.url, strings.Join(names, ", "))
	}
	w.flush()
	content := tenantsYAML(ts)
	fmt.Fprintf(out, "\nTENANTS_FILE=%s\n\n", file)
	for _, l := range strings.Split(strings.TrimSuffix(mask(content, ts), "\n"), "\n") {
		fmt.Fprintln(out, "    "+l)
	}
	fmt.Fprintf(out, "\nand beside it (one line each, shown masked; the simulators stop with the demo, -tenants-dir keeps the files):\n")
	for _, t := range ts {
		for _, rel := range sortedKeys(t.secrets) {
			fmt.Fprintf(out, "    %s: %s\n", rel, masked)
		}
	}
	fmt.Fprintln(out)
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// awaitConsumer waits until the worker has created its streams and consumer: a trigger published
// before the stream exists would be refused.
func awaitConsumer(ctx context.Context, js jetstream.JetStream, cfg config.Config, workerDone <-chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := js.Consumer(ctx, cfg.TriggerStream, cfg.Consumer); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the worker did not create its consumer in time")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-workerDone:
			return fmt.Errorf("worker stopped: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// publishTenants sends each tenant's burst, every tenant's at once.
func publishTenants(ctx context.Context, js jetstream.JetStream, ts []*demoTenant, out io.Writer) (map[string]bool, error) {
	sent := map[string]bool{}
	for _, t := range ts {
		n := 0
		var names []string
		for _, d := range t.dirs {
			names = append(names, d.name)
			for i := range d.triggers {
				tr := trigger.Trigger{Type: "ad.group.created", Source: "urn:demo:pipeline", Tenant: t.name, Directory: d.name,
					Group: fmt.Sprintf("proj-%s-%s-%03d", t.name, strings.ToLower(strings.Fields(d.name)[0]), i)}
				if t.byDefault {
					tr.Tenant = ""
				}
				e, err := trigger.NewEvent(tr)
				if err != nil {
					return nil, err
				}
				msg, err := cenats.EncodeBinary("dirsync.trigger.demo", e)
				if err != nil {
					return nil, err
				}
				if _, err := js.PublishMsg(ctx, msg); err != nil {
					return nil, err
				}
				sent[e.ID()] = true
				n++
			}
		}
		how := "tenant " + t.name
		if t.byDefault {
			how = "no tenant named: the default tenant"
		}
		fmt.Fprintf(out, "published %2d ad.group.created triggers for %-5s (%s; %s)\n", n, t.name, strings.Join(names, ", "), how)
	}
	return sent, nil
}

// awaitTenantResults reads the results stream from its start until every sent trigger is in a
// terminal result and the token warning has arrived, or the timeout passes.
func awaitTenantResults(ctx context.Context, js jetstream.JetStream, stream string, sent map[string]bool, timeout time.Duration) ([]tenantEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	var events []tenantEvent
	reported, warned := map[string]bool{}, false
	for len(reported) < len(sent) || !warned {
		m, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			var what []string
			if n := len(sent) - len(reported); n > 0 {
				what = append(what, fmt.Sprintf("%d triggers not reported", n))
			}
			if !warned {
				what = append(what, "no token warning")
			}
			return events, fmt.Errorf("%s within %s: %w", strings.Join(what, " and "), timeout, err)
		}
		e, err := cenats.Decode(m.Headers(), m.Data())
		if err != nil {
			return events, err
		}
		ev := tenantEvent{typ: e.Type()}
		if e.Type() == contract.TypeSyncClientTokenExpiring {
			err, warned = json.Unmarshal(e.Data(), &ev.warning), true
		} else {
			err = json.Unmarshal(e.Data(), &ev.data)
		}
		if err != nil {
			return events, err
		}
		events = append(events, ev)
		if ev.typ == contract.TypeCompleted || ev.typ == contract.TypeFailed {
			for _, t := range ev.data.Triggers {
				if sent[t.ID] {
					reported[t.ID] = true
				}
			}
		}
	}
	return events, nil
}

// printTenantSyncs prints, per tenant and directory, the syncs its simulator ran for the worker
// beside the triggers published to it, and returns the total.
func printTenantSyncs(out io.Writer, ts []*demoTenant) int {
	fmt.Fprintf(out, "\nSyncs each identity system ran for the worker, beside the triggers published to each directory:\n")
	w := newTable(out)
	fmt.Fprintln(w, "  TENANT\tBACKEND\tDIRECTORY\tTRIGGERS\tSYNCS\tOUTCOME")
	total := 0
	for _, t := range ts {
		for _, d := range t.dirs {
			var own []vidmsim.SyncRecord
			for _, r := range t.sim.SyncLog() {
				if r.DirectoryName == d.name && !r.Foreign {
					own = append(own, r)
				}
			}
			total += len(own)
			var how []string
			for _, r := range own {
				h := r.Status
				if len(r.Attempts) > 1 {
					as := make([]contract.Attempt, len(r.Attempts))
					for i, a := range r.Attempts {
						as[i] = contract.Attempt(a)
					}
					h += " after failover: " + attemptPath(as)
				}
				how = append(how, h)
			}
			if t.flavor == vidmsim.FlavorVCF {
				how = append(how, "none started: VCF has no sync, the identity provider keeps it current")
			}
			fmt.Fprintf(w, "  %s\t%s\t%s\t%d\t%d\t%s\n", t.name, t.flavor, d.name, d.triggers, len(own), strings.Join(how, "; "))
		}
	}
	w.flush()
	return total
}

// attemptPath is a failover as "c1 FAILED → c2 COMPLETED".
func attemptPath(as []contract.Attempt) string {
	var parts []string
	for _, a := range as {
		parts = append(parts, a.Connector+" "+a.Status)
	}
	return strings.Join(parts, " → ")
}

func printTenantResults(out io.Writer, events []tenantEvent) {
	fmt.Fprintf(out, "\nResult events on the results stream:\n")
	w := newTable(out)
	fmt.Fprintln(w, "  TYPE\tTENANT\tDIRECTORY\tSTATUS\tTRIGGERS\tCONNECTOR / ATTEMPTS\tDELEGATION")
	for _, e := range events {
		if e.typ == contract.TypeSyncClientTokenExpiring {
			continue
		}
		d := e.data
		status, n, conn, deleg := "-", "", "", ""
		if e.typ != contract.TypeStarted {
			status, n = d.Status, fmt.Sprint(len(d.Triggers))
		}
		switch {
		case len(d.Attempts) > 1:
			conn = attemptPath(d.Attempts)
		case d.Connector != "":
			conn = d.Connector
		}
		if g := d.Delegation; g != nil {
			deleg = g.Kind + " " + g.Provider
			if g.TokenExpiresAt != nil {
				deleg += ", token expires " + g.TokenExpiresAt.UTC().Format(time.RFC3339)
			}
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.typ, d.Tenant, d.DirectoryName, status, n, conn, deleg)
	}
	w.flush()
}

func printWarnings(out io.Writer, events []tenantEvent) []contract.TokenWarningData {
	var ws []contract.TokenWarningData
	for _, e := range events {
		if e.typ == contract.TypeSyncClientTokenExpiring {
			ws = append(ws, e.warning)
		}
	}
	fmt.Fprintf(out, "\nWarning events (%s):\n", contract.TypeSyncClientTokenExpiring)
	if len(ws) == 0 {
		fmt.Fprintln(out, "  none")
	}
	for _, x := range ws {
		fmt.Fprintf(out, "  tenant %s, provider %s: expires %s (in %s, warns %s before): %s\n", x.Tenant, x.Provider,
			x.ExpiresAt.UTC().Format(time.RFC3339), (time.Duration(x.ExpiresInSeconds) * time.Second).Round(time.Minute),
			fmtHours(time.Duration(x.WarnBeforeSeconds)*time.Second), x.Message)
	}
	return ws
}

// table is a tabwriter whose lines lose the padding of empty last columns.
type table struct {
	*tabwriter.Writer
	buf strings.Builder
	out io.Writer
}

func newTable(out io.Writer) *table {
	t := &table{out: out}
	t.Writer = tabwriter.NewWriter(&t.buf, 2, 4, 2, ' ', 0)
	return t
}

func (t *table) flush() {
	_ = t.Flush()
	for _, l := range strings.Split(strings.TrimSuffix(t.buf.String(), "\n"), "\n") {
		fmt.Fprintln(t.out, strings.TrimRight(l, " "))
	}
}

// checkTenants lists what the demo promises and the run did not show.
func checkTenants(events []tenantEvent, warnings []contract.TokenWarningData, missing int) []string {
	var problems []string
	if missing > 0 {
		problems = append(problems, fmt.Sprintf("%d triggers not reported", missing))
	}
	failover := false
	seen := map[string]bool{}
	for _, e := range events {
		if e.typ != contract.TypeCompleted && e.typ != contract.TypeFailed {
			continue
		}
		d := e.data
		seen[d.Tenant] = true
		want := contract.StatusCompleted
		if d.Tenant == "vcf" {
			want = contract.StatusDelegated
		}
		if d.Status != want {
			msg := ""
			if d.Error != nil {
				msg = ": " + d.Error.Code + " " + d.Error.Message
			}
			problems = append(problems, fmt.Sprintf("tenant %s directory %s reported %s%s, want %s", d.Tenant, d.DirectoryName, d.Status, msg, want))
		}
		if n := len(d.Attempts); n > 1 && d.Attempts[0].Connector == connectorDown && d.Attempts[0].Status == contract.StatusFailed &&
			d.Attempts[n-1].Connector == connectorUp && d.Attempts[n-1].Status == contract.StatusCompleted {
			failover = true
		}
	}
	for _, name := range []string{"corp", "cloud", "lab", "vcf"} {
		if !seen[name] {
			problems = append(problems, "no result for tenant "+name)
		}
	}
	if !failover {
		problems = append(problems, "no result shows the failover from "+connectorDown+" to "+connectorUp)
	}
	if len(warnings) != 1 || warnings[0].Tenant != "vcf" || warnings[0].Provider != "Okta" {
		problems = append(problems, fmt.Sprintf("%d token warnings, want one for Okta of tenant vcf", len(warnings)))
	}
	return problems
}
