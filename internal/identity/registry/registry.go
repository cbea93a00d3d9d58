// Package registry holds the identity systems the worker serves: one configured client per tenant
// of the tenants file, replaced whole on a reload, and the engine's, intake's and scheduler's views
// of them.
package registry

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/tenants"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/coalesce"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/schedule"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/schedule/cronspec"
)

// Backend is a tenant's client: a backend.Backend that can release its connections.
type Backend interface {
	backend.Backend
	Close()
}

// BuildFunc makes the client of one tenant (the worker builds them with systems.New and its
// metrics).
type BuildFunc func(tenants.Tenant) (Backend, error)

// Registry serves every configured tenant's backend and settings, and swaps them all at once when
// the file is reloaded. Whoever took a tenant keeps it to the end of what it does, so a reload
// never disturbs a run in flight.
type Registry struct {
	build BuildFunc
	mu    sync.Mutex // serialises Replace
	cur   atomic.Pointer[set]
}

// set is one generation of the configuration.
type set struct {
	file    tenants.File
	byName  map[string]*Entry
	byToken map[string]*Entry // dirstate key token of the tenant → entry
}

// Entry is one tenant as the worker runs it.
type Entry struct {
	Tenant  tenants.Tenant
	Backend Backend
}

// NewRegistry builds every tenant's backend; any failure fails the whole.
func New(f tenants.File, build BuildFunc) (*Registry, error) {
	r := &Registry{build: build}
	s, err := r.newSet(f)
	if err != nil {
		return nil, err
	}
	r.cur.Store(s)
	return r, nil
}

func (r *Registry) newSet(f tenants.File) (*set, error) {
	s := &set{file: f, byName: map[string]*Entry{}, byToken: map[string]*Entry{}}
	for _, name := range f.Names() {
		t := f.Tenants[name]
		b, err := r.build(t)
		if err != nil {
			for _, e := range s.byName {
				e.Backend.Close()
			}
			return nil, fmt.Errorf("tenant %q: %w", name, err)
		}
		e := &Entry{Tenant: t, Backend: b}
		s.byName[name] = e
		s.byToken[dirsync.TenantToken(name)] = e
	}
	return s, nil
}

// Replace switches to f once every backend of it is built; on any error the configuration in use
// stays as it was. The old backends are closed (their idle connections): runs still using them
// finish, opening new connections if they must.
func (r *Registry) Replace(f tenants.File) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, err := r.newSet(f)
	if err != nil {
		return err
	}
	old := r.cur.Swap(s)
	for _, e := range old.byName {
		e.Backend.Close()
	}
	return nil
}

// File is the configuration in use.
func (r *Registry) File() tenants.File { return r.cur.Load().file }

// Entries lists the tenants in use, by name.
func (r *Registry) Entries() []*Entry {
	s := r.cur.Load()
	out := make([]*Entry, 0, len(s.byName))
	for _, e := range s.byName {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *Entry) int { return cmp.Compare(a.Tenant.Name, b.Tenant.Name) })
	return out
}

// Entry returns the named tenant; "" is the default tenant.
func (r *Registry) Entry(name string) (*Entry, error) {
	s := r.cur.Load()
	if name == "" {
		name = s.file.DefaultTenant
	}
	e, ok := s.byName[name]
	if !ok {
		return nil, fmt.Errorf("tenant %q (configured: %v): %w", backend.Clip(name, 64), s.file.Names(), backend.ErrUnknownTenant)
	}
	return e, nil
}

// Close closes every backend in use.
func (r *Registry) Close() {
	for _, e := range r.cur.Load().byName {
		e.Backend.Close()
	}
}

// Resolve finds the directory ref names in the tenant's backend (intake.Resolver): tenant "" is
// the default tenant, and a directory outside the tenant's allow-list is refused.
func (r *Registry) Resolve(ctx context.Context, tenant, ref string) (string, backend.Directory, error) {
	e, err := r.Entry(tenant)
	if err != nil {
		return "", backend.Directory{}, err
	}
	d, err := e.Backend.ResolveDirectory(ctx, ref)
	if err != nil {
		return e.Tenant.Name, backend.Directory{}, err
	}
	if !e.Tenant.Allows(d.Name, d.Domains) {
		return e.Tenant.Name, backend.Directory{}, fmt.Errorf("%q resolves to directory %q of tenant %q: %w",
			backend.Clip(ref, 256), d.Name, e.Tenant.Name, backend.ErrDirectoryNotAllowed)
	}
	return e.Tenant.Name, d, nil
}

// AllowsIgnoreSafeguards reports whether the tenant lets triggers ask vIDM to ignore its
// safeguards (intake.Resolver); an unknown tenant does not.
func (r *Registry) AllowsIgnoreSafeguards(name string) bool {
	e, err := r.Entry(name)
	return err == nil && e.Tenant.AllowIgnoreSafeguards
}

// Tenant is the engine's view of a tenant (coalesce.Tenants).
func (r *Registry) Tenant(name string) (coalesce.Tenant, error) {
	e, err := r.Entry(name)
	if err != nil {
		return coalesce.Tenant{}, err
	}
	t := e.Tenant
	return coalesce.Tenant{Backend: e.Backend, MaxConcurrent: t.MaxConcurrentSyncs,
		PollInitial: t.Poll.Initial, PollMax: t.Poll.Max, SyncDeadline: t.Poll.Deadline, ConfirmAfter: t.Poll.ConfirmAfter,
		Readiness: t.Readiness.Check, RecheckAfter: t.Readiness.RecheckAfter}, nil
}

// Group returns the tenant of a directory key and its concurrency limit (coalesce.Tenants).
// Keys of tenants no longer configured share one group without a limit of their own: their runs
// only report that the tenant is gone.
func (r *Registry) Group(d dirsync.DirKey) (string, int) {
	if e, ok := r.cur.Load().byToken[d.TenantToken()]; ok {
		return e.Tenant.Name, e.Tenant.MaxConcurrentSyncs
	}
	return "", 0
}

// TotalConcurrency is the sum of the tenants' limits: the replica-wide cap that lets every tenant
// reach its own.
func (r *Registry) TotalConcurrency() int {
	n := 0
	for _, e := range r.cur.Load().byName {
		n += e.Tenant.MaxConcurrentSyncs
	}
	return n
}

// Schedules returns every tenant's scheduled safety-net syncs.
func (r *Registry) Schedules() ([]schedule.Entry, error) { return Schedules(r.File()) }

// Schedules returns the scheduled safety-net syncs of every tenant of f.
func Schedules(f tenants.File) ([]schedule.Entry, error) {
	var out []schedule.Entry
	for _, name := range f.Names() {
		t := f.Tenants[name]
		for _, sc := range t.Schedules {
			spec, err := cronspec.Parse(sc.Cron)
			if err != nil {
				return nil, fmt.Errorf("tenant %q: schedule of %q: %w", name, sc.Directory, err)
			}
			out = append(out, schedule.Entry{Tenant: name, Directory: sc.Directory, Spec: spec, IgnoreSafeguards: sc.IgnoreSafeguards})
		}
	}
	return out, nil
}
