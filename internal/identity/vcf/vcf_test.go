package vcf

// The VCF backend: the answers of reference 004 parsed as they are, and the client against the
// simulator's VCF flavor over real HTTP.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/vidm"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/fakeclock"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/logbuf"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

const (
	vcfUser      = "administrator@vsphere.local"
	vcfPassword  = "vcf-password-Pq93-do-not-log"
	vcfEmbedded  = "e0000000-0000-4000-8000-000000000001"
	vcfADFS      = "a0000000-0000-4000-8000-000000000002"
	vcfOkta      = "b0000000-0000-4000-8000-000000000003"
	vcfEntra     = "c0000000-0000-4000-8000-000000000004"
	vcfLegacy    = "d0000000-0000-4000-8000-000000000005"
	vcfCorpAD    = vcfEmbedded + "/Corp%20AD"
	vcfLabLDAP   = vcfEmbedded + "/Lab%20LDAP"
	vcfADFSDir   = vcfADFS + "/Partner%20ADFS" // the source name is escaped: ids have no spaces
	vcfOktaDir   = vcfOkta + "/OktaDirectory"
	vcfEntraDir  = vcfEntra + "/entra_dir"
	vcfLegacyDir = vcfLegacy + "/legacy_okta_dir"
)

var (
	vcfOktaExpiry  = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	vcfEntraExpiry = time.Date(2027, 1, 15, 8, 30, 0, 250e6, time.UTC)
)

// vcfSimDirectories has a provider of every kind, an inactive broker without a token, vCenter's
// own domains (never listed) and a directory that is not in VCF at all.
func vcfSimDirectories() []vidmsim.Directory {
	emb := func(t string) *vidmsim.VCFSource {
		return &vidmsim.VCFSource{ProviderID: vcfEmbedded, ProviderName: "Embedded IDP",
			ProviderType: vidmsim.VCFProviderEmbedded, SourceType: t}
	}
	broker := func(id, name, src string, exp time.Time) *vidmsim.VCFSource {
		return &vidmsim.VCFSource{ProviderID: id, ProviderName: name, ProviderType: vidmsim.VCFProviderBroker,
			SourceType: src, SyncClientTokenExpiresAt: exp, SyncClientTokenTTL: 263000}
	}
	legacy := broker(vcfLegacy, "Legacy Okta", vidmsim.VCFSourceOkta, time.Time{})
	legacy.Status = vidmsim.VCFStatusInactive
	return []vidmsim.Directory{
		{ID: "s-vsphere", Name: "vsphere.local", Domains: []string{"vsphere.local"}, VCF: emb(vidmsim.VCFSourceSystemDomain)},
		{ID: "s-localos", Name: "localos", Domains: []string{"localos"}, VCF: emb(vidmsim.VCFSourceLocalOS)},
		{ID: "s-corp", Name: "Corp AD", Domains: []string{"corp.example.com", "corp.local"}, VCF: emb(vidmsim.VCFSourceActiveDirectory)},
		{ID: "s-lab", Name: "Lab LDAP", Domains: []string{"lab.example.com"}, VCF: emb(vidmsim.VCFSourceOpenLDAP)},
		{ID: "s-adfs", Name: "Partner ADFS", Domains: []string{"partners.example.com"},
			VCF: &vidmsim.VCFSource{ProviderID: vcfADFS, ProviderType: vidmsim.VCFProviderADFS}},
		{ID: "s-okta", Name: "OktaDirectory", Domains: []string{"okta.example.com", "okta-alt.example.com"},
			VCF: broker(vcfOkta, "Okta", vidmsim.VCFSourceOkta, vcfOktaExpiry)},
		{ID: "s-entra", Name: "entra_dir", Domains: []string{"entra.example.com"},
			VCF: broker(vcfEntra, "Entra ID", vidmsim.VCFSourceEntraID, vcfEntraExpiry)},
		{ID: "s-legacy", Name: "legacy_okta_dir", Domains: []string{"legacy.example.com"}, VCF: legacy},
		{ID: "s-plain", Name: "Plain vIDM", Domains: []string{"plain.example.com"}},
	}
}

type vcfEnv struct {
	sim     *vidmsim.Server
	srv     *httptest.Server
	clock   *fakeclock.Clock
	logs    *logbuf.Buffer // the client's, at Debug
	simLogs *logbuf.Buffer
	cfg     httpcore.Config
	client  *httpcore.Client
}

func newVCFEnv(t *testing.T) *vcfEnv {
	t.Helper()
	e := &vcfEnv{clock: fakeclock.New(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)),
		logs: &logbuf.Buffer{}, simLogs: &logbuf.Buffer{}}
	sim, err := vidmsim.New(vidmsim.Config{
		Flavor: vidmsim.FlavorVCF, Directories: vcfSimDirectories(),
		Users:    []vidmsim.User{{Username: vcfUser, Password: vcfPassword}},
		TokenTTL: time.Hour, Now: e.clock.Now,
		Logger: slog.New(slog.NewJSONHandler(e.simLogs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.sim, e.srv = sim, httptest.NewServer(sim)
	t.Cleanup(e.srv.Close)
	// Every request must have been one of the three VCF endpoints: never the sync-client token
	// generator, never a vIDM path.
	t.Cleanup(func() {
		if n := sim.Requests(""); n != 0 {
			t.Errorf("%d requests went to paths the VCF client must not use", n)
		}
	})
	e.cfg = httpcore.Config{
		Kind: backend.KindVCF, BaseURL: e.srv.URL, AuthMode: httpcore.AuthPassword, Username: vcfUser, Password: vcfPassword,
		Retry:  httpcore.RetryPolicy{MaxAttempts: 4, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond},
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    e.clock.Now,
	}
	e.client = e.newClient(t, e.cfg)
	return e
}

func (e *vcfEnv) newClient(t *testing.T, cfg httpcore.Config) *httpcore.Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestVCFDirectories(t *testing.T) {
	e := newVCFEnv(t)
	got, err := e.client.Directories(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []httpcore.Directory{
		{ID: vcfCorpAD, Name: "Corp AD", Type: "ActiveDirectory", Domains: []string{"corp.example.com", "corp.local"}},
		{ID: vcfLabLDAP, Name: "Lab LDAP", Type: "OpenLdap", Domains: []string{"lab.example.com"}},
		{ID: vcfADFSDir, Name: "Partner ADFS", Type: "Microsoft ADFS", Domains: []string{"partners.example.com"}},
		{ID: vcfOktaDir, Name: "OktaDirectory", Type: "OKTA", Domains: []string{"okta.example.com", "okta-alt.example.com"}},
		{ID: vcfEntraDir, Name: "entra_dir", Type: "MICROSOFT_ENTRA_ID", Domains: []string{"entra.example.com"}},
		{ID: vcfLegacyDir, Name: "legacy_okta_dir", Type: "OKTA", Domains: []string{"legacy.example.com"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("directories:\n got %+v\nwant %+v", got, want)
	}
	if e.sim.Requests(vidmsim.EndpointVCFProviders) != 1 || e.sim.Logins() != 1 {
		t.Fatalf("list requests = %d, logins = %d; want 1 and 1", e.sim.Requests(vidmsim.EndpointVCFProviders), e.sim.Logins())
	}
}

func TestVCFResolveDirectory(t *testing.T) {
	e := newVCFEnv(t)
	tests := []struct {
		ref, wantID string // wantID "" means not found
	}{
		{"Corp AD", vcfCorpAD},
		{"corp.local", vcfCorpAD},
		{"CORP.EXAMPLE.COM", vcfCorpAD},
		{"Lab LDAP", vcfLabLDAP},
		{"lab.example.com", vcfLabLDAP},
		{"Partner ADFS", vcfADFSDir},
		{"partners.example.com", vcfADFSDir},
		{"OktaDirectory", vcfOktaDir},
		{"okta-alt.example.com", vcfOktaDir},
		{"entra_dir", vcfEntraDir},
		{"entra.example.com", vcfEntraDir},
		{"legacy.example.com", vcfLegacyDir},
		{"vsphere.local", ""}, // vCenter's own domain: nothing to sync
		{"localos", ""},
		{"Plain vIDM", ""}, // not in VCF
		{"Okta", ""},       // a provider's name is not a directory's
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			d, err := e.client.ResolveDirectory(t.Context(), tc.ref)
			if tc.wantID == "" {
				if !errors.Is(err, httpcore.ErrDirectoryNotFound) || httpcore.IsRetryable(err) {
					t.Fatalf("ResolveDirectory = %+v, %v; want a permanent ErrDirectoryNotFound", d, err)
				}
				return
			}
			if err != nil || d.ID != tc.wantID {
				t.Fatalf("ResolveDirectory = %+v, %v; want id %q", d, err, tc.wantID)
			}
		})
	}
}

func TestVCFSyncStatusDelegated(t *testing.T) {
	tests := []struct {
		name string
		id   string
		want backend.Delegation
	}{
		{"Okta", vcfOktaDir, backend.Delegation{Kind: backend.DelegationSCIM, ProviderID: vcfOkta, ProviderName: "Okta", Source: "OKTA",
			TokenExpiresAt: vcfOktaExpiry,
			Message:        "users and groups of Okta are pushed by its SCIM sync client; VCF has no sync to start (sync-client token expires 2026-12-01T00:00:00Z)"}},
		{"Entra ID", vcfEntraDir, backend.Delegation{Kind: backend.DelegationSCIM, ProviderID: vcfEntra, ProviderName: "Entra ID", Source: "MICROSOFT_ENTRA_ID",
			TokenExpiresAt: vcfEntraExpiry,
			Message:        "users and groups of Entra ID are pushed by its SCIM sync client; VCF has no sync to start (sync-client token expires 2027-01-15T08:30:00Z)"}},
		{"ADFS", vcfADFSDir, backend.Delegation{Kind: backend.DelegationLDAP, ProviderID: vcfADFS, ProviderName: "Partner ADFS", Source: "Microsoft ADFS",
			Message: "users and groups of Partner ADFS are read from Active Directory over LDAP by the identity provider (Microsoft ADFS); VCF has no sync to start"}},
		{"embedded AD", vcfCorpAD, backend.Delegation{Kind: backend.DelegationLDAP, ProviderID: vcfEmbedded, ProviderName: "Embedded IDP", Source: "ActiveDirectory",
			Message: "users and groups of Corp AD are read from Active Directory over LDAP by the identity source; VCF has no sync to start"}},
		{"embedded OpenLDAP", vcfLabLDAP, backend.Delegation{Kind: backend.DelegationLDAP, ProviderID: vcfEmbedded, ProviderName: "Embedded IDP", Source: "OpenLdap",
			Message: "users and groups of Lab LDAP are read from OpenLDAP over LDAP by the identity source; VCF has no sync to start"}},
		{"inactive broker without a token", vcfLegacyDir, backend.Delegation{Kind: backend.DelegationSCIM, ProviderID: vcfLegacy, ProviderName: "Legacy Okta", Source: "OKTA",
			Message: "the identity provider Legacy Okta is inactive in VCF; users and groups of Legacy Okta are pushed by its SCIM sync client; VCF has no sync to start (VCF reports no sync-client token)"}},
	}
	e := newVCFEnv(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.sim.Requests(vidmsim.EndpointVCFProvider)
			st, err := e.client.SyncStatus(t.Context(), tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if st.Status != backend.StatusDelegated || st.Raw != "DELEGATED" || !st.Status.Terminal() || st.Message != tc.want.Message {
				t.Fatalf("state = %+v", st)
			}
			if st.Delegation == nil || !reflect.DeepEqual(*st.Delegation, tc.want) {
				t.Fatalf("delegation:\n got %+v\nwant %+v", st.Delegation, tc.want)
			}
			if got := e.sim.Requests(vidmsim.EndpointVCFProvider) - before; got != 1 {
				t.Fatalf("%d provider reads, want 1", got)
			}
			// The poll loop ends at once: DELEGATED is terminal.
			if st, err := e.client.WaitForSync(t.Context(), tc.id, httpcore.WaitOptions{Timeout: time.Minute}); err != nil || st.Status != backend.StatusDelegated {
				t.Fatalf("WaitForSync = %+v, %v", st, err)
			}
		})
	}
}

func TestVCFStartSyncNotSupported(t *testing.T) {
	e := newVCFEnv(t)
	err := e.client.StartSync(t.Context(), vcfOktaDir, false)
	if !errors.Is(err, backend.ErrNotSupported) || httpcore.IsRetryable(err) {
		t.Fatalf("StartSync = %v; want a permanent ErrNotSupported", err)
	}
	if e.sim.Logins() != 0 || e.sim.Requests(vidmsim.EndpointVCFProviders)+e.sim.Requests(vidmsim.EndpointVCFProvider) != 0 {
		t.Fatal("StartSync sent requests; it has nothing to ask VCF")
	}
	want := backend.Description{Kind: backend.KindVCF, BaseURL: e.srv.URL, Delegation: true}
	if got := e.client.Describe(); got != want {
		t.Fatalf("Describe = %+v, want %+v", got, want)
	}
}

func TestVCFLogin(t *testing.T) {
	e := newVCFEnv(t)
	ctx := t.Context()
	if _, err := e.client.SyncStatus(ctx, vcfCorpAD); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.SyncStatus(ctx, vcfOktaDir); err != nil {
		t.Fatal(err)
	}
	if e.client.Logins() != 1 || e.sim.Requests(vidmsim.EndpointVCFTokens) != 1 {
		t.Fatalf("logins = %d, token requests = %d; two calls share one token", e.client.Logins(), e.sim.Requests(vidmsim.EndpointVCFTokens))
	}

	// A token VCF stopped accepting: one 401, one login, the call succeeds.
	e.sim.ExpireTokens()
	if _, err := e.client.SyncStatus(ctx, vcfCorpAD); err != nil {
		t.Fatal(err)
	}
	if e.client.Logins() != 2 || e.sim.RequestsByStatus(vidmsim.EndpointVCFProvider)[401] != 1 {
		t.Fatalf("after expiry: logins = %d, 401s = %d; want 2 and 1", e.client.Logins(), e.sim.RequestsByStatus(vidmsim.EndpointVCFProvider)[401])
	}

	// The JWT's exp drives renewal: near the end of its hour the client logs in before calling.
	e.clock.Advance(time.Hour - 30*time.Second)
	if _, err := e.client.SyncStatus(ctx, vcfCorpAD); err != nil {
		t.Fatal(err)
	}
	if e.client.Logins() != 3 || e.sim.RequestsByStatus(vidmsim.EndpointVCFProvider)[401] != 1 {
		t.Fatalf("near expiry: logins = %d, 401s = %d; want a renewal without a 401", e.client.Logins(), e.sim.RequestsByStatus(vidmsim.EndpointVCFProvider)[401])
	}
	if ok, authErr := e.client.AuthState(); ok.IsZero() || authErr != nil {
		t.Fatalf("AuthState = %v, %v", ok, authErr)
	}

	bad := e.cfg
	bad.Password = "wrong-" + vcfPassword
	badClient := e.newClient(t, bad)
	before := e.sim.Requests(vidmsim.EndpointVCFTokens)
	_, err := badClient.Directories(ctx)
	if !errors.Is(err, httpcore.ErrUnauthorized) || httpcore.IsRetryable(err) {
		t.Fatalf("wrong password: %v; want a permanent ErrUnauthorized", err)
	}
	if got := e.sim.Requests(vidmsim.EndpointVCFTokens) - before; got != 1 {
		t.Fatalf("wrong password tried %d times, want 1", got)
	}
	if _, authErr := badClient.AuthState(); !errors.Is(authErr, httpcore.ErrUnauthorized) {
		t.Fatalf("AuthState error = %v, want ErrUnauthorized", authErr)
	}
}

func TestVCFSyncClientTokens(t *testing.T) {
	e := newVCFEnv(t)
	ctx := t.Context()
	check := func(want []backend.SyncClientToken) {
		t.Helper()
		before := e.sim.Requests(vidmsim.EndpointVCFProviders)
		got, err := e.client.SyncClientTokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("tokens:\n got %+v\nwant %+v", got, want)
		}
		if n := e.sim.Requests(vidmsim.EndpointVCFProviders) - before; n != 1 {
			t.Fatalf("%d list requests, want 1 (uncached)", n)
		}
	}
	okta := backend.SyncClientToken{ProviderID: vcfOkta, ProviderName: "Okta", Source: "OKTA",
		Domains: []string{"okta.example.com", "okta-alt.example.com"}, ExpiresAt: vcfOktaExpiry}
	entra := backend.SyncClientToken{ProviderID: vcfEntra, ProviderName: "Entra ID", Source: "MICROSOFT_ENTRA_ID",
		Domains: []string{"entra.example.com"}, ExpiresAt: vcfEntraExpiry}
	check([]backend.SyncClientToken{okta, entra}) // Legacy Okta has no token

	renewed := time.Date(2027, 6, 1, 9, 15, 30, 125e6, time.UTC)
	if err := e.sim.SetSyncClientTokenExpiry(vcfOkta, renewed); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetSyncClientTokenExpiry(vcfEntra, time.Time{}); err != nil {
		t.Fatal(err)
	}
	okta.ExpiresAt = renewed
	check([]backend.SyncClientToken{okta})

	st, err := e.client.SyncStatus(ctx, vcfOktaDir)
	if err != nil || !st.Delegation.TokenExpiresAt.Equal(renewed) {
		t.Fatalf("SyncStatus after the renewal = %+v, %v", st.Delegation, err)
	}

	vidmCfg := e.cfg
	vidmCfg.Kind, vidmCfg.AuthMode = backend.KindVIDM, httpcore.AuthSystem
	vc, err := vidm.New(vidmCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vc.Close)
	if _, err := vc.SyncClientTokens(ctx); !errors.Is(err, backend.ErrNotSupported) || httpcore.IsRetryable(err) {
		t.Fatalf("vIDM SyncClientTokens = %v; want a permanent ErrNotSupported", err)
	}
}

func TestVCFFaultsRetried(t *testing.T) {
	tests := []struct {
		name string
		ep   vidmsim.Endpoint
		call func(ctx context.Context, c *httpcore.Client) error
	}{
		{"token", vidmsim.EndpointVCFTokens, func(ctx context.Context, c *httpcore.Client) error { return c.Probe(ctx) }},
		{"list", vidmsim.EndpointVCFProviders, func(ctx context.Context, c *httpcore.Client) error { return c.Probe(ctx) }},
		{"provider", vidmsim.EndpointVCFProvider, func(ctx context.Context, c *httpcore.Client) error {
			_, err := c.SyncStatus(ctx, vcfOktaDir)
			return err
		}},
		{"sync client tokens", vidmsim.EndpointVCFProviders, func(ctx context.Context, c *httpcore.Client) error {
			_, err := c.SyncClientTokens(ctx)
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newVCFEnv(t)
			e.sim.SetFault(tc.ep, vidmsim.Fault{Status: http.StatusServiceUnavailable, Times: 2})
			if err := tc.call(t.Context(), e.client); err != nil {
				t.Fatalf("two 503s then recovery: %v", err)
			}
			if got := e.sim.RequestsByStatus(tc.ep); got[503] != 2 || got[200] != 1 {
				t.Fatalf("statuses = %v, want two 503s and one 200", got)
			}
			if !strings.Contains(e.logs.String(), "retrying") {
				t.Fatal("no retry warning in the log")
			}
		})
	}
	t.Run("outage outlasts the retries", func(t *testing.T) {
		e := newVCFEnv(t)
		e.sim.SetFault(vidmsim.EndpointVCFProvider, vidmsim.Fault{Status: http.StatusServiceUnavailable})
		if _, err := e.client.SyncStatus(t.Context(), vcfOktaDir); !httpcore.IsRetryable(err) {
			t.Fatalf("SyncStatus = %v; want a retryable error", err)
		}
	})
}

func TestVCFSourceVanished(t *testing.T) {
	e := newVCFEnv(t)
	ctx := t.Context()
	for _, id := range []string{vcfOktaDir, vcfLabLDAP} {
		if _, err := e.client.SyncStatus(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// The broker's only directory leaves VCF: its provider is gone (404).
	if err := e.sim.SetDirectory(vidmsim.Directory{ID: "s-okta", Name: "OktaDirectory", Domains: []string{"okta.example.com"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.SyncStatus(ctx, vcfOktaDir); !errors.Is(err, httpcore.ErrDirectoryNotFound) || httpcore.IsRetryable(err) {
		t.Fatalf("provider gone: %v; want a permanent ErrDirectoryNotFound", err)
	}
	// One embedded source leaves: the provider still answers, without it. (Its permanence is
	// checked on parseSyncState in TestVCFParseSyncState: Client.SyncStatus currently marks every
	// parse error retryable.)
	if err := e.sim.SetDirectory(vidmsim.Directory{ID: "s-lab", Name: "Lab LDAP", Domains: []string{"lab.example.com"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.SyncStatus(ctx, vcfLabLDAP); !errors.Is(err, httpcore.ErrDirectoryNotFound) {
		t.Fatalf("source gone: %v; want ErrDirectoryNotFound", err)
	}
	if _, err := e.client.SyncStatus(ctx, vcfCorpAD); err != nil {
		t.Fatalf("the provider's other source: %v", err)
	}
}

// vcfTokenLike matches base64url-encoded JSON ("eyJ" is `{"`): any part of a JWT, the shape of
// VCF's access tokens and of the SCIM sync-client token alike.
var vcfTokenLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{10,}`)

// TestVCFNoSecretsInLogsOrErrors drives every path that logs or fails, with debug logging on, and
// looks for the password, every token the simulator issued and anything shaped like a token in
// the client's and the simulator's logs, the errors, and what the worker would publish.
func TestVCFNoSecretsInLogsOrErrors(t *testing.T) {
	e := newVCFEnv(t)
	ctx := t.Context()
	var errs []error
	var published []any
	keep := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	status := func(id string) {
		st, err := e.client.SyncStatus(ctx, id)
		keep(err)
		published = append(published, st.Delegation, st.Message)
	}
	_, err := e.client.Directories(ctx)
	keep(err)
	status(vcfOktaDir)
	e.sim.ExpireTokens()
	status(vcfCorpAD)
	e.sim.SetFault(vidmsim.EndpointVCFProvider, vidmsim.Fault{Status: http.StatusUnauthorized, Times: 2})
	status(vcfEntraDir)
	e.sim.SetFault(vidmsim.EndpointVCFProviders, vidmsim.Fault{Status: http.StatusServiceUnavailable})
	keep(e.client.Probe(ctx))
	_, err = e.client.SyncClientTokens(ctx)
	keep(err)
	e.sim.ClearFaults()
	tokens, err := e.client.SyncClientTokens(ctx)
	keep(err)
	published = append(published, tokens)
	keep(e.client.StartSync(ctx, vcfOktaDir, true))
	status(vcfEmbedded + "/no such source")
	bad := e.cfg
	bad.Password = "wrong-" + vcfPassword
	_, err = e.newClient(t, bad).Directories(ctx)
	keep(err)

	if len(errs) < 5 {
		t.Fatalf("only %d errors were produced; the test must exercise failures", len(errs))
	}
	pub, err := json.Marshal(published)
	if err != nil {
		t.Fatal(err)
	}
	out := e.logs.String() + "\n" + e.simLogs.String() + "\n" + string(pub)
	for _, err := range errs {
		out += "\n" + err.Error()
	}
	issued := e.sim.IssuedTokens()
	if len(issued) < 3 {
		t.Fatalf("the simulator issued %d tokens, want at least 3", len(issued))
	}
	secrets := []string{vcfPassword}
	for _, tok := range issued {
		// The whole token, and its payload and signature on their own: a truncated token leaks too.
		secrets = append(secrets, tok)
		if parts := strings.Split(tok, "."); len(parts) == 3 {
			secrets = append(secrets, parts[1], parts[2])
		}
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Fatalf("secret %.8s… found in logs, errors or published data", s)
		}
	}
	if m := vcfTokenLike.FindString(out); m != "" {
		t.Fatalf("something token-shaped (%.12s…) in logs, errors or published data", m)
	}
	if !strings.Contains(e.logs.String(), "retrying") || !strings.Contains(e.logs.String(), `"level":"DEBUG"`) {
		t.Fatal("the client's debug log and retry warnings were not captured")
	}
}

// vcfReference reads one of reference 004's answers.
func vcfReference(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vcfElement returns element i of a reference list answer, as GET /v1/identity-providers/{id}
// answers it.
func vcfElement(t *testing.T, file string, i int) []byte {
	t.Helper()
	var l struct {
		Elements []json.RawMessage `json:"elements"`
	}
	if err := json.Unmarshal(vcfReference(t, file), &l); err != nil || len(l.Elements) <= i {
		t.Fatalf("%s: %v", file, err)
	}
	return l.Elements[i]
}

func TestVCFParseReferenceDirectories(t *testing.T) {
	embedded := func(id string) httpcore.Directory {
		return httpcore.Directory{ID: id + "/embedded-ids-name", Name: "embedded-ids-name", Type: "ActiveDirectory", Domains: []string{"embedded-ids.com"}}
	}
	tests := []struct {
		file string
		want []httpcore.Directory
	}{
		{"vcf-identity-providers-adfs.json", []httpcore.Directory{
			embedded("1a9bd081-40c4-434d-af78-33a162522100"),
			{ID: "82ce7b07-f878-41af-9ac3-e343bcb347dc/My%20AD%20Identity%20Source", Name: "My AD Identity Source", Type: "Microsoft ADFS", Domains: []string{"external-idp.com"}},
		}},
		{"vcf-identity-providers-okta.json", []httpcore.Directory{
			embedded("3262279b-09b0-44eb-a3be-f4bded4f0851"),
			{ID: "159498c4-6e0e-4757-ae4b-dcb6aaa93216/OktaDirectory", Name: "OktaDirectory", Type: "OKTA", Domains: []string{"external-okta-idp.com"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			got, err := API{}.ParseDirectories(vcfReference(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("directories:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestVCFParseSyncState(t *testing.T) {
	adfsOne := vcfReference(t, "vcf-identity-provider-adfs.json")
	oktaBroker := vcfElement(t, "vcf-identity-providers-okta.json", 1)
	inactiveEmbedded := vcfElement(t, "vcf-identity-providers-okta.json", 0)
	const embeddedID = "3262279b-09b0-44eb-a3be-f4bded4f0851"
	tests := []struct {
		name    string
		id      string
		body    []byte
		want    *backend.Delegation
		wantErr error
	}{
		{"ADFS", "be12eb48-11ea-486a-bb7d-756d2e0e4ade/My%20AD%20Identity%20Source", adfsOne, &backend.Delegation{
			Kind: backend.DelegationLDAP, ProviderID: "be12eb48-11ea-486a-bb7d-756d2e0e4ade", ProviderName: "My AD Identity Source", Source: "Microsoft ADFS",
			Message: "users and groups of My AD Identity Source are read from Active Directory over LDAP by the identity provider (Microsoft ADFS); VCF has no sync to start"}, nil},
		{"Okta", "159498c4-6e0e-4757-ae4b-dcb6aaa93216/OktaDirectory", oktaBroker, &backend.Delegation{
			Kind: backend.DelegationSCIM, ProviderID: "159498c4-6e0e-4757-ae4b-dcb6aaa93216", ProviderName: "Okta", Source: "OKTA",
			TokenExpiresAt: time.Date(2024, 6, 21, 2, 43, 21, 998e6, time.UTC),
			Message:        "users and groups of Okta are pushed by its SCIM sync client; VCF has no sync to start (sync-client token expires 2024-06-21T02:43:21Z)"}, nil},
		{"inactive embedded", embeddedID + "/embedded-ids-name", inactiveEmbedded, &backend.Delegation{
			Kind: backend.DelegationLDAP, ProviderID: embeddedID, ProviderName: "Embedded IDP", Source: "ActiveDirectory",
			Message: "the identity provider Embedded IDP is inactive in VCF; users and groups of embedded-ids-name are read from Active Directory over LDAP by the identity source; VCF has no sync to start"}, nil},
		{"system domain is not a directory", embeddedID + "/vsphere.local", inactiveEmbedded, nil, httpcore.ErrDirectoryNotFound},
		{"vanished source", embeddedID + "/gone", inactiveEmbedded, nil, httpcore.ErrDirectoryNotFound},
		{"answer for another provider", "be12eb48-0000-0000-0000-000000000000/My AD Identity Source", adfsOne, nil, httpcore.ErrInvalidResponse},
		{"HTML", embeddedID + "/embedded-ids-name", []byte("<html>maintenance</html>"), nil, httpcore.ErrInvalidResponse},
		{"bad id", "no-slash", adfsOne, nil, httpcore.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := API{}.ParseSyncState(tc.id, tc.body)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || httpcore.IsRetryable(err) {
					t.Fatalf("err = %v (retryable %v), want permanent %v", err, httpcore.IsRetryable(err), tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.Status != backend.StatusDelegated || st.Raw != "DELEGATED" || st.Progress != -1 || st.Message != tc.want.Message {
				t.Fatalf("state = %+v", st)
			}
			if !reflect.DeepEqual(st.Delegation, tc.want) {
				t.Fatalf("delegation:\n got %+v\nwant %+v", st.Delegation, tc.want)
			}
		})
	}
}

func TestVCFParseDirectoriesErrors(t *testing.T) {
	tests := []struct {
		name, body string
		wantN      int // directories when no error is expected
		wantErr    bool
	}{
		{"empty", "", 0, true},
		{"HTML", "<html></html>", 0, true},
		{"no elements", `{}`, 0, true},
		{"null elements", `{"elements":null}`, 0, true},
		{"array", `[]`, 0, true},
		{"no providers", `{"elements":[]}`, 0, false},
		{"provider without id", `{"elements":[{"name":"x","type":"Microsoft ADFS","domainNames":["x.com"]}]}`, 0, false},
		{"broker without directoryList", `{"elements":[{"id":"p","name":"Okta","type":"FEDERATED_IDP_BROKER","fedIdp":{"name":"Okta","source":"OKTA"}}]}`, 1, false},
		{"source without domains", `{"elements":[{"id":"p","name":"E","type":"Embedded","identitySources":[{"name":"S","type":"ActiveDirectory","ldap":{"type":"ActiveDirectory","domainName":""}}]}]}`, 1, false},
		{"unknown fields", `{"elements":[{"id":"p","name":"N","type":"Something New","domainNames":["n.com"],"extra":{"a":1}}],"pageMetadata":{}}`, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dirs, err := API{}.ParseDirectories([]byte(tc.body))
			if tc.wantErr {
				if !errors.Is(err, httpcore.ErrInvalidResponse) || !httpcore.IsRetryable(err) {
					t.Fatalf("err = %v; want a retryable ErrInvalidResponse", err)
				}
				return
			}
			if err != nil || len(dirs) != tc.wantN || dirs == nil {
				t.Fatalf("dirs = %+v, %v; want %d directories", dirs, err, tc.wantN)
			}
			for _, d := range dirs {
				if slices.Contains(d.Domains, "") {
					t.Fatalf("directory %+v has an empty domain", d)
				}
			}
		})
	}
}

func TestVCFDirectoryIDs(t *testing.T) {
	tests := []struct {
		provider, name string
		path, rawPath  string
	}{
		{vcfOkta, "OktaDirectory", "/v1/identity-providers/" + vcfOkta, "/v1/identity-providers/" + vcfOkta},
		{"odd id/with slash", "a/b", "/v1/identity-providers/odd id/with slash", "/v1/identity-providers/odd%20id%2Fwith%20slash"},
	}
	for _, tc := range tests {
		id := vcfDirectoryID(tc.provider, tc.name)
		p, n, err := splitVCFDirectoryID(id)
		if err != nil || p != tc.provider || n != tc.name {
			t.Fatalf("split(%q) = %q, %q, %v", id, p, n, err)
		}
		cl, err := API{}.SyncStatus(id)
		if err != nil || cl.Path != tc.path || cl.RawPath != tc.rawPath || cl.Method != http.MethodGet || !cl.Bearer || cl.Endpoint != httpcore.EndpointSyncStatus {
			t.Fatalf("syncStatus(%q) = %+v, %v", id, cl, err)
		}
	}
	for _, bad := range []string{"", "no-slash", "/name", "provider/", "%zz/name", "../name", "./name"} {
		if _, err := (API{}).SyncStatus(bad); !errors.Is(err, httpcore.ErrInvalidArgument) {
			t.Errorf("syncStatus(%q) = %v, want ErrInvalidArgument", bad, err)
		}
	}
}
