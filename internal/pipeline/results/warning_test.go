package results

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
	"github.com/vidm-sync-worker/vidm-sync-worker/schemas"
)

var oktaToken = backend.SyncClientToken{
	ProviderID: "159498c4-6e0e-4757-ae4b-dcb6aaa93216", ProviderName: "Okta", Source: "OKTA",
	Domains: []string{"external-okta-idp.com"}, ExpiresAt: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
}

// warningSchema compiles the warning's data schema as the contract states it, formats asserted.
func warningSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	b, err := schemas.FS.ReadFile(schemas.SyncTokenExpiring)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(schemas.BaseURL+schemas.SyncTokenExpiring, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(schemas.BaseURL + schemas.SyncTokenExpiring)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// resultStream starts an embedded JetStream server with a results stream over dirsync.result.>.
func resultStream(t *testing.T) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	js := natstest.JetStream(t)
	s, err := js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: "DIRSYNC_RESULTS", Subjects: []string{"dirsync.result.>"}, Duplicates: 30 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	return js, s
}

// A warning published into a real stream: its subject, attributes and de-duplication id, and data
// that the contract's schema accepts. The same warning again the same day is stored once; the next
// day, or for a renewed token, it is a new event.
func TestTokenExpiringPublishes(t *testing.T) {
	ctx := context.Background()
	js, stream := resultStream(t)
	p := New(js, "dirsync.result", "urn:vidm-sync-worker:test", nil)
	sch := warningSchema(t)
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	w := TokenWarning{Tenant: "vcf", Token: oktaToken, WarnBefore: 14 * 24 * time.Hour, Now: now}

	if err := p.TokenExpiring(ctx, w); err != nil {
		t.Fatal(err)
	}
	later := w
	later.Now = now.Add(23*time.Hour + 59*time.Minute) // a second replica, the same UTC day
	if err := p.TokenExpiring(ctx, later); err != nil {
		t.Fatal(err)
	}
	if n := msgs(t, stream); n != 1 {
		t.Fatalf("the same day's warning twice: %d messages stored, want 1", n)
	}

	raw, err := stream.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	wantID := "synctoken:vcf/159498c4-6e0e-4757-ae4b-dcb6aaa93216@2026-12-01T00:00:00Z/2026-11-25"
	if raw.Subject != "dirsync.result.warning" || raw.Header.Get("Nats-Msg-Id") != wantID {
		t.Errorf("stored on %s with Nats-Msg-Id %q, want dirsync.result.warning and %q", raw.Subject, raw.Header.Get("Nats-Msg-Id"), wantID)
	}
	e, err := cenats.Decode(raw.Header, raw.Data)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID() != wantID || e.Type() != contract.TypeSyncClientTokenExpiring || e.Source() != "urn:vidm-sync-worker:test" ||
		e.Subject() != "Okta" || !e.Time().Equal(now) {
		t.Errorf("event attributes: %s", e.Context)
	}
	var doc any
	if err := json.Unmarshal(e.Data(), &doc); err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(doc); err != nil {
		t.Errorf("data invalid against %s: %v\n%s", schemas.SyncTokenExpiring, err, e.Data())
	}
	// Exactly these fields: nothing a token could hide in.
	wantKeys := []string{"domains", "expiresAt", "expiresInSeconds", "message", "provider", "providerId", "source", "tenant", "warnBeforeSeconds"}
	if got := slices.Sorted(maps.Keys(doc.(map[string]any))); !slices.Equal(got, wantKeys) {
		t.Errorf("data fields %v, want %v", got, wantKeys)
	}
	var d contract.TokenWarningData
	if err := json.Unmarshal(e.Data(), &d); err != nil {
		t.Fatal(err)
	}
	if d.ExpiresInSeconds != 6*86400 || d.WarnBeforeSeconds != 14*86400 || !d.ExpiresAt.Equal(oktaToken.ExpiresAt) ||
		d.ProviderID != oktaToken.ProviderID || !slices.Equal(d.Domains, oktaToken.Domains) {
		t.Errorf("data = %+v", d)
	}
	wantMsg := "the SCIM sync-client token of Okta (tenant vcf) expires 2026-12-01T00:00:00Z, in 6 days: " +
		"generate a new one in SDDC Manager and configure it in the IdP, or users and groups stop arriving"
	if d.Message != wantMsg {
		t.Errorf("message %q\nwant    %q", d.Message, wantMsg)
	}

	nextDay := w
	nextDay.Now = now.Add(24 * time.Hour)
	renewed := w
	renewed.Token.ExpiresAt = oktaToken.ExpiresAt.Add(90 * 24 * time.Hour)
	otherTenant := w
	otherTenant.Tenant = "vcf-lab"
	for _, again := range []TokenWarning{nextDay, renewed, otherTenant} {
		if err := p.TokenExpiring(ctx, again); err != nil {
			t.Fatal(err)
		}
	}
	if n := msgs(t, stream); n != 4 {
		t.Errorf("the next day's, a renewed token's and another tenant's warnings: %d messages stored, want 4", n)
	}
}

func msgs(t *testing.T, s jetstream.Stream) uint64 {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestTokenExpiringPublishError(t *testing.T) {
	js := natstest.JetStream(t) // no stream over the subject: JetStream has no responder
	p := New(js, "dirsync.result", "urn:test", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := p.TokenExpiring(ctx, TokenWarning{Tenant: "vcf", Token: oktaToken, Now: oktaToken.ExpiresAt.Add(-time.Hour)})
	if err == nil || !strings.Contains(err.Error(), contract.TypeSyncClientTokenExpiring) || !strings.Contains(err.Error(), "Okta") {
		t.Errorf("error %v, want one naming the event type and the provider", err)
	}
}

// The data of warnings at the edges: expired tokens, a provider without a name, values from the
// identity system too long or with control characters (cleaned to the schema's bounds, so the
// event stays valid), and warnings that cannot be built.
func TestTokenWarningData(t *testing.T) {
	sch := warningSchema(t)
	exp := oktaToken.ExpiresAt
	long := strings.Repeat("x", 300)
	tests := []struct {
		name    string
		w       TokenWarning
		wantErr bool
		check   func(t *testing.T, d contract.TokenWarningData)
	}{
		{
			name: "expires in 5 hours",
			w:    TokenWarning{Tenant: "vcf", Token: oktaToken, WarnBefore: 24 * time.Hour, Now: exp.Add(-5*time.Hour - 30*time.Minute)},
			check: func(t *testing.T, d contract.TokenWarningData) {
				if d.ExpiresInSeconds != 5*3600+1800 || !strings.Contains(d.Message, "in 5 hours:") {
					t.Errorf("in %ds: %q", d.ExpiresInSeconds, d.Message)
				}
			},
		},
		{
			name: "expires in 1 day",
			w:    TokenWarning{Tenant: "vcf", Token: oktaToken, WarnBefore: 7 * 24 * time.Hour, Now: exp.Add(-47 * time.Hour)},
			check: func(t *testing.T, d contract.TokenWarningData) {
				if !strings.Contains(d.Message, "in 1 day:") {
					t.Errorf("%q", d.Message)
				}
			},
		},
		{
			name: "expires in seconds",
			w:    TokenWarning{Tenant: "vcf", Token: oktaToken, WarnBefore: time.Hour, Now: exp.Add(-10 * time.Second)},
			check: func(t *testing.T, d contract.TokenWarningData) {
				if d.ExpiresInSeconds != 10 || !strings.Contains(d.Message, "in less than a minute:") {
					t.Errorf("in %ds: %q", d.ExpiresInSeconds, d.Message)
				}
			},
		},
		{
			name: "expired two days ago",
			w:    TokenWarning{Tenant: "vcf", Token: oktaToken, WarnBefore: 7 * 24 * time.Hour, Now: exp.Add(49 * time.Hour)},
			check: func(t *testing.T, d contract.TokenWarningData) {
				want := "the SCIM sync-client token of Okta (tenant vcf) expired 2026-12-01T00:00:00Z, 2 days ago: users and groups no longer arrive; " +
					"generate a new one in SDDC Manager and configure it in the IdP"
				if d.ExpiresInSeconds != -49*3600 || d.Message != want {
					t.Errorf("in %ds: %q", d.ExpiresInSeconds, d.Message)
				}
			},
		},
		{
			name: "expiring right now counts as expired",
			w:    TokenWarning{Tenant: "vcf", Token: oktaToken, Now: exp},
			check: func(t *testing.T, d contract.TokenWarningData) {
				if d.ExpiresInSeconds != 0 || d.WarnBeforeSeconds != 0 || !strings.Contains(d.Message, "expired") {
					t.Errorf("in %ds, window %ds: %q", d.ExpiresInSeconds, d.WarnBeforeSeconds, d.Message)
				}
			},
		},
		{
			name: "no provider name, no source, no domains",
			w: TokenWarning{Tenant: "vcf", Now: exp.Add(-time.Hour),
				Token: backend.SyncClientToken{ProviderID: "p-1", ExpiresAt: exp}},
			check: func(t *testing.T, d contract.TokenWarningData) {
				if d.Provider != "p-1" || d.Source != "" || d.Domains != nil {
					t.Errorf("data = %+v", d)
				}
			},
		},
		{
			name: "values out of bounds are cleaned",
			w: TokenWarning{Tenant: "vcf", Now: exp.Add(-time.Hour), WarnBefore: -time.Hour,
				Token: backend.SyncClientToken{ProviderID: long, ProviderName: "Okta\nprod\x7f" + long, Source: long,
					Domains: append([]string{"", "bad\tdomain"}, slices.Repeat([]string{long}, 70)...), ExpiresAt: exp}},
			check: func(t *testing.T, d contract.TokenWarningData) {
				if len(d.Domains) != 64 || d.Domains[0] != "bad?domain" || !strings.HasPrefix(d.Provider, "Okta?prod?") || d.WarnBeforeSeconds != 0 {
					t.Errorf("data = %+v", d)
				}
			},
		},
		{name: "no tenant", w: TokenWarning{Token: oktaToken, Now: exp}, wantErr: true},
		{name: "no provider id", w: TokenWarning{Tenant: "vcf", Token: backend.SyncClientToken{ProviderName: "Okta", ExpiresAt: exp}, Now: exp}, wantErr: true},
		{name: "no expiry", w: TokenWarning{Tenant: "vcf", Token: backend.SyncClientToken{ProviderID: "p"}, Now: exp}, wantErr: true},
		{name: "no check time", w: TokenWarning{Tenant: "vcf", Token: oktaToken}, wantErr: true},
	}
	p := New(nil, "dirsync.result", "urn:test", nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := p.tokenWarningEvent(tt.w)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("built %s", e.Data())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var doc any
			if err := json.Unmarshal(e.Data(), &doc); err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(doc); err != nil {
				t.Errorf("invalid against the schema: %v\n%s", err, e.Data())
			}
			var d contract.TokenWarningData
			if err := json.Unmarshal(e.Data(), &d); err != nil {
				t.Fatal(err)
			}
			if e.Subject() != d.Provider {
				t.Errorf("subject %q, want the provider %q", e.Subject(), d.Provider)
			}
			tt.check(t, d)
		})
	}
}

func TestTokenWarningID(t *testing.T) {
	exp := time.Date(2026, 12, 1, 0, 0, 0, 500_000_000, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		now  time.Time
		want string
	}{
		{"morning", time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), "synctoken:vcf/p-1@2026-11-30T23:00:00Z/2026-11-25"},
		{"last second of the day", time.Date(2026, 11, 25, 23, 59, 59, 0, time.UTC), "synctoken:vcf/p-1@2026-11-30T23:00:00Z/2026-11-25"},
		// The day is UTC's, whatever the zone of the clock.
		{"local time past midnight", time.Date(2026, 11, 26, 0, 30, 0, 0, time.FixedZone("CET", 3600)), "synctoken:vcf/p-1@2026-11-30T23:00:00Z/2026-11-25"},
		{"next day", time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC), "synctoken:vcf/p-1@2026-11-30T23:00:00Z/2026-11-26"},
	}
	for _, tt := range tests {
		if got := TokenWarningID("vcf", "p-1", exp, tt.now); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
