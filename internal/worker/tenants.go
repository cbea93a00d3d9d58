package worker

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"

	"go.opentelemetry.io/otel/trace"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/registry"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/systems"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/tenants"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/tokenwatch"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/control"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/health"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/metrics"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/schedule"
)

// WithReload makes the worker re-read its tenants whenever reload delivers (the command sends on
// SIGHUP). A file that does not load keeps the configuration in use.
func WithReload(reload <-chan struct{}) Option { return func(o *options) { o.reload = reload } }

// clientBuilder builds each tenant's client with the worker's logger, metrics and tracer provider.
func clientBuilder(log *slog.Logger, m *metrics.Metrics, tp trace.TracerProvider) registry.BuildFunc {
	return func(t tenants.Tenant) (registry.Backend, error) {
		c := systems.Config(t)
		c.Logger = log.With("component", "vidm", "tenant", t.Name, "backend", string(t.Backend))
		c.Observer = m.Backend(t.Name)
		c.TracerProvider = tp
		return systems.New(c)
	}
}

// catalog lists every tenant's directories for the status page and the admin API.
type catalog struct{ reg *registry.Registry }

// lister is what the catalog needs of a tenant's client beyond the backend interface.
type lister interface {
	Directories(ctx context.Context) ([]backend.Directory, error)
	Probe(ctx context.Context) error
}

func (c catalog) Catalog(ctx context.Context) []control.TenantDirectories {
	entries := c.reg.Entries()
	out := make([]control.TenantDirectories, len(entries))
	var wg sync.WaitGroup
	for i, e := range entries {
		out[i] = control.TenantDirectories{Tenant: e.Tenant.Name, Backend: e.Backend.Describe()}
		l, ok := e.Backend.(lister)
		if !ok {
			continue
		}
		// One slow backend must not hold up the others' rows.
		wg.Go(func() { out[i].Directories, out[i].Err = l.Directories(ctx) })
	}
	wg.Wait()
	return out
}

func (c catalog) Probe(ctx context.Context) error {
	var errs []error
	for _, e := range c.reg.Entries() {
		if l, ok := e.Backend.(lister); ok {
			if err := l.Probe(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// backendStates is every tenant's client as the readiness check sees it.
func backendStates(reg *registry.Registry) func() map[string]health.VIDMState {
	return func() map[string]health.VIDMState {
		out := map[string]health.VIDMState{}
		for _, e := range reg.Entries() {
			if st, ok := e.Backend.(health.VIDMState); ok {
				out[e.Tenant.Name] = st
			}
		}
		return out
	}
}

// tokenTargets are the tenants whose backend reports SCIM sync-client tokens (VCF).
func tokenTargets(reg *registry.Registry) func() []tokenwatch.Target {
	return func() []tokenwatch.Target {
		var out []tokenwatch.Target
		for _, e := range reg.Entries() {
			if !e.Backend.Describe().Delegation {
				continue
			}
			if src, ok := e.Backend.(tokenwatch.Source); ok {
				out = append(out, tokenwatch.Target{Tenant: e.Tenant.Name, Source: src, WarnBefore: e.Tenant.SyncClientTokenWarning})
			}
		}
		return out
	}
}

// reloader applies a new tenants configuration: every backend rebuilt, the schedules replaced.
// Runs in flight keep the backend they started with. It also answers the tenants API.
type reloader struct {
	ctx   context.Context
	cfg   config.Config
	reg   *registry.Registry
	sched *schedule.Scheduler
	watch *tokenwatch.Watcher
	log   *slog.Logger
	done  func(ok bool) // metrics
	mu    sync.Mutex    // one reload at a time (SIGHUP and the API)
}

// Reload re-reads the tenants file (control.Tenants).
func (r *reloader) Reload(context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.apply()
	if err != nil {
		r.log.Error("tenants configuration rejected; the previous one stays in use", "file", r.cfg.TenantsFile, "err", err)
		r.done(false)
		return r.cfg.TenantsFile, err
	}
	r.log.Info("tenants configuration reloaded", "file", r.cfg.TenantsFile, "tenants", r.reg.File())
	r.done(true)
	// A new or changed VCF tenant's tokens are looked at now, not at the next hourly check.
	go r.watch.Check(context.WithoutCancel(r.ctx))
	return r.cfg.TenantsFile, nil
}

func (r *reloader) apply() error {
	if r.cfg.TenantsFile == "" {
		return errors.New("no TENANTS_FILE: the tenant comes from the VIDM_* environment, which a running process cannot re-read; restart it instead")
	}
	f, err := r.cfg.Tenants()
	if err != nil {
		return err
	}
	// The schedules are read before anything is swapped, so a refusal changes nothing.
	entries, err := registry.Schedules(f)
	if err != nil {
		return err
	}
	if err := r.reg.Replace(f); err != nil {
		return err
	}
	r.sched.Set(entries)
	warnInsecure(r.log, f)
	return nil
}

// warnInsecure says, at every start and reload, which tenants send credentials in clear
// (possible only with ALLOW_INSECURE_HTTP=true).
func warnInsecure(log *slog.Logger, f tenants.File) {
	if names := f.InsecureURLs(); len(names) > 0 {
		log.Warn("INSECURE: these tenants' identity systems are reached over plain http://; their credentials and tokens cross the network in clear (ALLOW_INSECURE_HTTP=true)", "tenants", names)
	}
}

// List describes the tenants in use (control.Tenants).
func (r *reloader) List() []control.Tenant {
	f := r.reg.File()
	next := r.sched.Next()
	var out []control.Tenant
	for _, e := range r.reg.Entries() {
		t := control.Tenant{Name: e.Tenant.Name, Default: e.Tenant.Name == f.DefaultTenant, Backend: e.Backend.Describe(),
			AllowList: e.Tenant.Directories, MaxConcurrentSyncs: e.Tenant.MaxConcurrentSyncs}
		for _, sc := range e.Tenant.Schedules {
			s := control.Schedule{Directory: sc.Directory, Cron: sc.Cron}
			if n, ok := next[schedule.Entry{Tenant: e.Tenant.Name, Directory: sc.Directory}.Key()]; ok && !n.IsZero() {
				s.Next = &n
			}
			t.Schedules = append(t.Schedules, s)
		}
		out = append(out, t)
	}
	slices.SortStableFunc(out, func(a, b control.Tenant) int {
		if a.Default != b.Default {
			if a.Default {
				return -1
			}
			return 1
		}
		return 0
	})
	return out
}

func (r *reloader) run(ctx context.Context, reload <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-reload:
			_, _ = r.Reload(ctx) // logged and counted; SIGHUP has no one to answer
		}
	}
}
