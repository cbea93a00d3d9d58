// Package systems maps a backend.Kind to its identity system's client: the one place that knows
// every system's package.
package systems

import (
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/tenants"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/vcf"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/vidm"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/vra7"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/vracloud"
)

// New validates cfg and returns a client of the identity system cfg.Kind names (default
// backend.KindVIDM). It does not contact the system.
func New(cfg httpcore.Config) (*httpcore.Client, error) {
	switch cfg.Kind {
	case "", backend.KindVIDM:
		return vidm.New(cfg)
	case backend.KindVRACloud:
		return vracloud.New(cfg)
	case backend.KindVRA7:
		return vra7.New(cfg)
	case backend.KindVCF:
		return vcf.New(cfg)
	}
	return httpcore.New(cfg, unknown{kind: cfg.Kind})
}

// unknown is the API of a kind no package speaks: New refuses every auth mode for it, as for any
// auth mode that does not fit, after checking the rest of the configuration.
type unknown struct {
	vidm.API
	kind backend.Kind
}

func (u unknown) Kind() backend.Kind                { return u.kind }
func (unknown) CheckAuth(cfg httpcore.Config) error { return httpcore.AuthModeMismatch(cfg) }

// Config maps a tenant of the tenants file to its client's configuration (the caller adds the
// logger and the observer).
func Config(t tenants.Tenant) httpcore.Config {
	return httpcore.Config{
		Kind:               backend.Kind(t.Backend),
		BaseURL:            t.URL,
		AuthMode:           httpcore.AuthMode(t.Auth.Mode),
		ClientID:           t.Auth.ClientID,
		ClientSecret:       t.Auth.ClientSecret,
		Username:           t.Auth.Username,
		Password:           t.Auth.Password,
		RefreshToken:       t.Auth.RefreshToken,
		TokenURL:           t.Auth.TokenURL,
		Tenant:             t.Auth.VRATenant,
		CAFile:             t.TLS.CAFile,
		InsecureSkipVerify: t.TLS.InsecureSkipVerify,
		RequestTimeout:     t.RequestTimeout,
	}
}
