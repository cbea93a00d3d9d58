// Package doctor is the read-only check of a deployment (vidm-sync-worker check): with the
// worker's own configuration it asks NATS and every tenant's identity system each thing the worker
// relies on, and says what worked, what did not and what it did not understand. It never starts a
// sync, never writes to NATS and never prints a secret.
package doctor

import (
	"context"
	"log/slog"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
)

// Status is one check's outcome.
type Status string

const (
	OK   Status = "ok"
	Warn Status = "warn" // works, but needs a look
	Fail Status = "fail" // the worker would not work this way
	Skip Status = "skip" // not checked, and why
)

// Check is one question asked and its answer.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Data is what the check read, for machines (--json): directories, a parsed status, a chain.
	Data any `json:"data,omitempty"`
}

// Section is the checks of NATS, or of one tenant.
type Section struct {
	Name   string  `json:"name"`
	Kind   string  `json:"kind,omitempty"` // the tenant's backend
	URL    string  `json:"url,omitempty"`  // credentials removed
	Checks []Check `json:"checks"`
}

// Report is the whole check: OK when no check failed.
type Report struct {
	OK      bool      `json:"ok"`
	NATS    Section   `json:"nats"`
	Tenants []Section `json:"tenants"`
}

// Options are the command's flags.
type Options struct {
	// Group or User, when set, is looked up as the readiness check would after a sync, in
	// Directory (a name or domain; "" is the first directory the tenant allows) of Tenant ("" is
	// the default tenant).
	Group, User, Directory, Tenant string
	// Timeout bounds each network call, so that a hung server cannot hold the check. Default 10s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Run checks NATS and every tenant.
func Run(ctx context.Context, cfg config.Config, o Options) Report {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := Report{NATS: checkNATS(ctx, cfg, o)}
	r.Tenants = checkTenants(ctx, cfg, o)
	r.OK = !failed(r.NATS)
	for _, t := range r.Tenants {
		r.OK = r.OK && !failed(t)
	}
	return r
}

func failed(s Section) bool {
	for _, c := range s.Checks {
		if c.Status == Fail {
			return true
		}
	}
	return false
}

// bounded runs f with the per-call timeout.
func bounded[T any](ctx context.Context, o Options, f func(context.Context) (T, error)) (T, error) {
	cctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	return f(cctx)
}
