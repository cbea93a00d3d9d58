package systems_test

import (
	"errors"
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/systems"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/vcf"
)

// Each kind gets its system's client, with that system's default auth mode; no kind gets another's.
func TestNewPicksTheKindsSystem(t *testing.T) {
	const base = "https://identity.example.com"
	tests := []struct {
		cfg  httpcore.Config
		want backend.Description
	}{
		{httpcore.Config{BaseURL: base, ClientID: "id", ClientSecret: "secret"},
			backend.Description{Kind: backend.KindVIDM, BaseURL: base, Safeguards: true, Connectors: true}},
		{httpcore.Config{Kind: backend.KindVIDM, BaseURL: base, AuthMode: httpcore.AuthSystem, Username: "u", Password: "p"},
			backend.Description{Kind: backend.KindVIDM, BaseURL: base, Safeguards: true, Connectors: true}},
		{httpcore.Config{Kind: backend.KindVRACloud, BaseURL: base, RefreshToken: "api-token"},
			backend.Description{Kind: backend.KindVRACloud, BaseURL: base, Safeguards: true, Connectors: true}},
		{httpcore.Config{Kind: backend.KindVRA7, BaseURL: base, Username: "u", Password: "p", Tenant: "vsphere.local"},
			backend.Description{Kind: backend.KindVRA7, BaseURL: base}},
		{httpcore.Config{Kind: backend.KindVCF, BaseURL: base, Username: "u", Password: "p"},
			backend.Description{Kind: backend.KindVCF, BaseURL: base, Delegation: true}},
	}
	for _, tt := range tests {
		c, err := systems.New(tt.cfg)
		if err != nil {
			t.Fatalf("%s: %v", tt.cfg.Kind, err)
		}
		if got := c.Describe(); got != tt.want {
			t.Errorf("%s: Describe = %+v, want %+v", tt.cfg.Kind, got, tt.want)
		}
		c.Close()
	}
}

func TestNewRefusesWhatFitsNoSystem(t *testing.T) {
	for name, cfg := range map[string]httpcore.Config{
		"unknown kind":           {Kind: "kerberos-realm", BaseURL: "https://identity.example.com", ClientID: "id", ClientSecret: "secret"},
		"another system's mode":  {Kind: backend.KindVRA7, BaseURL: "https://identity.example.com", AuthMode: httpcore.AuthOAuth, ClientID: "id", ClientSecret: "secret"},
		"missing its credential": {Kind: backend.KindVRACloud, BaseURL: "https://identity.example.com"},
	} {
		if _, err := systems.New(cfg); !errors.Is(err, httpcore.ErrInvalidArgument) {
			t.Errorf("%s: New = %v, want ErrInvalidArgument", name, err)
		}
	}
	// A system's own New refuses another kind's configuration rather than reading it as its own.
	if _, err := vcf.New(httpcore.Config{Kind: backend.KindVIDM, BaseURL: "https://identity.example.com", Username: "u", Password: "p"}); !errors.Is(err, httpcore.ErrInvalidArgument) {
		t.Errorf("vcf.New with a vIDM configuration = %v, want ErrInvalidArgument", err)
	}
}
