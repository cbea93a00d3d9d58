// Package health serves the liveness and readiness endpoints. Liveness says only that the process
// serves HTTP: restarting a worker cannot fix NATS or vIDM, so their state belongs to readiness,
// which runs named checks, each bounded by a timeout, and reports every check's result as JSON.
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"
)

// DefaultTimeout bounds each check of a readiness request.
const DefaultTimeout = 2 * time.Second

// Check is one named readiness check. Run reports nil when the thing it checks is fine, or why
// not; it should honour ctx (a check that does not is abandoned at the timeout).
type Check struct {
	Name string // the key of its result in the readiness answer
	Run  func(ctx context.Context) error
	// Parts, when set, gives the result of each part (tenant) in the check's last run, for the
	// verbose readiness answer.
	Parts func() map[string]error
}

// Options configures Health.
type Options struct {
	// Checks are run by readiness. Names must be unique.
	Checks []Check
	// Timeout bounds each check. Default DefaultTimeout.
	Timeout time.Duration
	// Logger receives a line when readiness changes. Default: discard.
	Logger *slog.Logger
}

// Health serves /healthz and /readyz.
type Health struct {
	timeout time.Duration
	log     *slog.Logger

	mu        sync.Mutex
	checks    []Check
	lastReady *bool // nil until the first readiness request
}

// New returns a Health for opts.
func New(opts Options) *Health {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Health{checks: slices.Clone(opts.Checks), timeout: opts.Timeout, log: opts.Logger}
}

// Set replaces the check of the same name, or adds c: a worker starts with a check that says it
// is starting and sets the real one once the part it checks exists.
func (h *Health) Set(c Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if i := slices.IndexFunc(h.checks, func(old Check) bool { return old.Name == c.Name }); i >= 0 {
		h.checks[i] = c
		return
	}
	h.checks = append(h.checks, c)
}

// CheckResult is one check's entry in the readiness answer.
type CheckResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Report is the readiness answer.
type Report struct {
	Status string                 `json:"status"` // "ready" or "not ready"
	Checks map[string]CheckResult `json:"checks"`
	// Tenants is each tenant's own result (/readyz?verbose): the vidm check passes while any
	// tenant's identity system answers.
	Tenants map[string]CheckResult `json:"tenants,omitempty"`
}

// Healthz answers 200 {"status":"ok"} for as long as the process serves requests.
func (h *Health) Healthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// Readyz runs every check and answers 200 when all pass, 503 otherwise, with each check's result.
func (h *Health) Readyz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := h.Run(r.Context())
		if r.URL.Query().Has("verbose") {
			rep.Tenants = h.parts()
		}
		code := http.StatusOK
		if rep.Status != "ready" {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, r, code, rep)
	})
}

// parts is the per-tenant results of the checks that have them, from their last run.
func (h *Health) parts() map[string]CheckResult {
	h.mu.Lock()
	checks := slices.Clone(h.checks)
	h.mu.Unlock()
	out := map[string]CheckResult{}
	for _, c := range checks {
		if c.Parts == nil {
			continue
		}
		for name, err := range c.Parts() {
			if err != nil {
				out[name] = CheckResult{Error: err.Error()}
			} else {
				out[name] = CheckResult{OK: true}
			}
		}
	}
	return out
}

// Run runs all checks concurrently, each with the timeout, and reports their results.
func (h *Health) Run(ctx context.Context) Report {
	h.mu.Lock()
	checks := slices.Clone(h.checks)
	h.mu.Unlock()
	rep := Report{Status: "ready", Checks: make(map[string]CheckResult, len(checks))}
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(checks))
	for _, c := range checks {
		go func() { results <- result{c.Name, h.runOne(ctx, c.Run)} }()
	}
	for range checks {
		r := <-results
		if r.err != nil {
			rep.Status = "not ready"
			rep.Checks[r.name] = CheckResult{Error: r.err.Error()}
		} else {
			rep.Checks[r.name] = CheckResult{OK: true}
		}
	}
	h.noteChange(rep)
	return rep
}

// runOne bounds a check by the timeout even if it ignores its context.
func (h *Health) runOne(ctx context.Context, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("check panicked: %v", p)
			}
		}()
		done <- check(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer within %s: %w", h.timeout, ctx.Err())
	}
}

// noteChange logs when readiness flips, with the failing checks, so the log explains a pod
// leaving its Service without anyone polling /readyz by hand.
func (h *Health) noteChange(rep Report) {
	ready := rep.Status == "ready"
	h.mu.Lock()
	changed := h.lastReady == nil || *h.lastReady != ready
	h.lastReady = &ready
	h.mu.Unlock()
	if !changed {
		return
	}
	if ready {
		h.log.Info("ready")
		return
	}
	var failing []any
	for _, name := range slices.Sorted(maps.Keys(rep.Checks)) {
		if c := rep.Checks[name]; !c.OK {
			failing = append(failing, slog.String(name, c.Error))
		}
	}
	h.log.Warn("not ready", slog.Group("failing", failing...))
}

func writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // cannot happen for the types above
		http.Error(w, "encoding the answer failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(append(body, '\n'))
	}
}
