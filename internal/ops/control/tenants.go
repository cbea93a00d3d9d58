package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
)

// Tenant is one configured identity system as the operator sees it.
type Tenant struct {
	Name               string              `json:"name"`
	Default            bool                `json:"default"`
	Backend            backend.Description `json:"backend"`
	AllowList          []string            `json:"allowList,omitempty"` // empty: every directory
	MaxConcurrentSyncs int                 `json:"maxConcurrentSyncs"`
	Schedules          []Schedule          `json:"schedules,omitempty"`
}

// Schedule is a directory's safety-net sync schedule and its next slot.
type Schedule struct {
	Directory string     `json:"directory"`
	Cron      string     `json:"cron"`
	Next      *time.Time `json:"next,omitempty"`
}

// ReloadResult is the answer to a reload: the tenants now in use.
type ReloadResult struct {
	File    string   `json:"file"`
	Tenants []Tenant `json:"tenants"`
}

// Tenants are the worker's tenants: a listing, and a reload of the tenants file.
type Tenants interface {
	List() []Tenant
	// Reload re-reads the tenants file and applies it; the error explains a refusal, and the
	// configuration in use then stays.
	Reload(ctx context.Context) (file string, err error)
}

// ErrReloadRejected: the tenants file was not applied (invalid, unreadable, or there is none).
var ErrReloadRejected = errors.New("tenants configuration not applied")

// Tenants lists the configured tenants, the default first.
func (s *Service) Tenants(context.Context) ([]Tenant, error) {
	if s.cfg.Tenants == nil {
		return []Tenant{}, nil
	}
	return s.cfg.Tenants.List(), nil
}

// ReloadTenants re-reads the tenants file, as SIGHUP does, and answers with the tenants now in use.
func (s *Service) ReloadTenants(ctx context.Context) (ReloadResult, error) {
	if s.cfg.Tenants == nil {
		return ReloadResult{}, fmt.Errorf("%w: this worker has no tenants to reload", ErrReloadRejected)
	}
	file, err := s.cfg.Tenants.Reload(ctx)
	if err != nil {
		return ReloadResult{}, fmt.Errorf("%w: %w", ErrReloadRejected, err)
	}
	return ReloadResult{File: file, Tenants: s.cfg.Tenants.List()}, nil
}
