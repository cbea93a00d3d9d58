// Package tokenwatch checks, periodically, when the SCIM sync-client tokens of VCF tenants'
// external identity providers (Okta, Microsoft Entra ID) expire. Those providers push users and
// groups into VCF with the token; once it expires nothing new arrives and nothing fails loudly, so
// the worker warns ahead: a log line and a gauge at every check, and a
// vidm.identity.synctoken.expiring event at most once per tenant, provider, expiry and UTC day.
//
// The tokens themselves are never seen: a Source reports whose token it is and when it expires.
package tokenwatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/results"
)

const (
	// DefaultInterval is the time between checks when Config.Interval is not set: tokens live for
	// days or months, so an hourly look costs VCF one request per tenant and misses nothing.
	DefaultInterval = time.Hour
	// sourceTimeout bounds one tenant's read, so that an unresponsive identity broker cannot hold
	// up the other tenants' checks.
	sourceTimeout = 30 * time.Second
	// publishTimeout bounds one warning's publish.
	publishTimeout = 10 * time.Second
)

// Source reports the sync-client tokens of one tenant (httpcore.Client for a VCF tenant satisfies it).
type Source interface {
	SyncClientTokens(ctx context.Context) ([]backend.SyncClientToken, error)
}

// Target is one tenant to check.
type Target struct {
	Tenant string
	Source Source
	// WarnBefore is how long before expiry the tenant's tokens are warned about; zero warns only
	// about expired tokens.
	WarnBefore time.Duration
}

// Publisher publishes a warning (results.Publisher satisfies it).
type Publisher interface {
	TokenExpiring(ctx context.Context, w results.TokenWarning) error
}

// Observer is told what every check found (metrics.Metrics satisfies it). Its methods must not
// block.
type Observer interface {
	// TokenExpiry reports a token's expiry at every check. A zero expiresAt means the provider
	// is no longer reported (its token, the provider or the tenant is gone).
	TokenExpiry(tenant, provider string, expiresAt time.Time)
	// TokenWarned reports that a warning event was published.
	TokenWarned(tenant, provider string)
	// TokenCheckFailed reports that a tenant's tokens could not be read.
	TokenCheckFailed(tenant string)
}

// Config configures a Watcher.
type Config struct {
	Interval time.Duration // between checks; DefaultInterval when zero or negative
	Logger   *slog.Logger
	Now      func() time.Time                     // default time.Now
	After    func(time.Duration) <-chan time.Time // default time.After; tests inject a fake
}

// Watcher checks targets' tokens. Run and Check are safe for concurrent use; checks run one at a
// time.
type Watcher struct {
	cfg     Config
	targets func() []Target
	pub     Publisher
	obs     Observer
	log     *slog.Logger

	mu sync.Mutex // one check at a time; guards what follows
	// warned holds, per tenant, provider id and expiry, the UTC day this replica published its
	// warning, so that it publishes once a day; entries of other days are dropped at each check.
	warned map[warnKey]string
	// reported holds, per tenant, the provider labels given to Observer.TokenExpiry by the last
	// successful check, so that a provider gone since can be reported gone.
	reported map[string]map[string]bool
}

type warnKey struct {
	tenant, providerID string
	expiresAt          time.Time
}

// New returns a Watcher. targets is called at every check, so that a configuration reload takes
// effect at the next one. A nil pub logs warnings without publishing them; a nil obs is allowed.
func New(cfg Config, targets func() []Target, pub Publisher, obs Observer) *Watcher {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if obs == nil {
		obs = nopObserver{}
	}
	return &Watcher{cfg: cfg, targets: targets, pub: pub, obs: obs, log: log,
		warned: map[warnKey]string{}, reported: map[string]map[string]bool{}}
}

// Run checks at once, then at every multiple of the interval (wall-clock aligned, so that replicas
// check at the same moments and their same-day warnings fall well within the results stream's
// duplicate window), until ctx ends; then it returns nil.
func (w *Watcher) Run(ctx context.Context) error {
	for {
		if ctx.Err() != nil {
			return nil
		}
		w.Check(ctx)
		now := w.cfg.Now()
		next := now.Truncate(w.cfg.Interval).Add(w.cfg.Interval)
		select {
		case <-ctx.Done():
			return nil
		case <-w.cfg.After(next.Sub(now)):
		}
	}
}

// Check checks every target once: a failing source is logged and reported, and the others are
// still checked.
func (w *Watcher) Check(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Now()
	today := now.UTC().Format(time.DateOnly)
	for k, day := range w.warned {
		if day != today {
			delete(w.warned, k)
		}
	}
	current := map[string]bool{}
	for _, t := range w.targets() {
		current[t.Tenant] = true
		if ctx.Err() != nil {
			return
		}
		w.checkTarget(ctx, t, now, today)
	}
	// Tenants removed from the configuration: their providers are gone too.
	for tenant, providers := range w.reported {
		if current[tenant] {
			continue
		}
		for p := range providers {
			w.obs.TokenExpiry(tenant, p, time.Time{})
		}
		delete(w.reported, tenant)
	}
}

func (w *Watcher) checkTarget(ctx context.Context, t Target, now time.Time, today string) {
	log := w.log.With("tenant", t.Tenant)
	tokens, err := w.read(ctx, t)
	switch {
	case errors.Is(err, backend.ErrNotSupported):
		// Not an identity broker with sync clients: nothing to watch, and nothing wrong.
		log.Debug("tenant has no sync-client tokens to check", "error", err)
		return
	case err != nil:
		// The last reported expiries stay: they are still the best knowledge there is.
		log.Warn("cannot check the tenant's sync-client tokens", "error", err)
		w.obs.TokenCheckFailed(t.Tenant)
		return
	}
	seen := map[string]bool{}
	for _, tok := range tokens {
		if tok.ExpiresAt.IsZero() {
			continue
		}
		provider := cmp.Or(tok.ProviderName, tok.ProviderID)
		seen[provider] = true
		w.obs.TokenExpiry(t.Tenant, provider, tok.ExpiresAt)
		left := tok.ExpiresAt.Sub(now)
		if left > t.WarnBefore {
			continue
		}
		msg := "SCIM sync-client token expires soon: generate a new one in SDDC Manager and configure it in the IdP"
		if left <= 0 {
			msg = "SCIM sync-client token has expired: users and groups no longer arrive until a new one is generated in SDDC Manager and configured in the IdP"
		}
		log.Warn(msg, "provider", provider, "provider_id", tok.ProviderID, "source", tok.Source,
			"expires_at", tok.ExpiresAt.UTC().Format(time.RFC3339), "expires_in", left.Round(time.Second).String())
		w.warn(ctx, log, t, tok, provider, now, today)
	}
	for p := range w.reported[t.Tenant] {
		if !seen[p] {
			w.obs.TokenExpiry(t.Tenant, p, time.Time{})
		}
	}
	w.reported[t.Tenant] = seen
}

func (w *Watcher) read(ctx context.Context, t Target) ([]backend.SyncClientToken, error) {
	if t.Source == nil {
		return nil, errors.New("no source configured")
	}
	ctx, cancel := context.WithTimeout(ctx, sourceTimeout)
	defer cancel()
	tokens, err := t.Source.SyncClientTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("sync-client tokens: %w", err)
	}
	return tokens, nil
}

// warn publishes the token's warning unless this replica did today; a failed publish is tried
// again at the next check.
func (w *Watcher) warn(ctx context.Context, log *slog.Logger, t Target, tok backend.SyncClientToken, provider string, now time.Time, today string) {
	key := warnKey{tenant: t.Tenant, providerID: tok.ProviderID, expiresAt: tok.ExpiresAt.UTC()}
	if w.pub == nil || w.warned[key] == today {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if err := w.pub.TokenExpiring(ctx, results.TokenWarning{Tenant: t.Tenant, Token: tok, WarnBefore: t.WarnBefore, Now: now}); err != nil {
		log.Warn("cannot publish the sync-client token warning; trying again at the next check", "provider", provider, "error", err)
		return
	}
	w.warned[key] = today
	w.obs.TokenWarned(t.Tenant, provider)
}

type nopObserver struct{}

func (nopObserver) TokenExpiry(string, string, time.Time) {}
func (nopObserver) TokenWarned(string, string)            {}
func (nopObserver) TokenCheckFailed(string)               {}
