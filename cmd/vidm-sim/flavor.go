package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// exampleRefreshToken is the vRA Cloud API token of the example configuration. It is a public
// example, printed by -print-config and named in docs/vidm-api.md, not a secret.
const exampleRefreshToken = "example-refresh-token"

// defaultVRA7Tenant is the tenant vidmsim.New assumes when the configuration names none; the
// start-up log repeats it so that a user knows which tenant to log in to.
const defaultVRA7Tenant = "vsphere.local"

// flavorList names the values -flavor accepts, for the usage and its errors.
const flavorList = "vidm, vra-cloud, vra7 or vcf"

// parseFlavor checks a -flavor value; "" means "the config's flavor, else vidm".
func parseFlavor(s string) (vidmsim.Flavor, error) {
	switch f := vidmsim.Flavor(s); f {
	case "", vidmsim.FlavorVIDM, vidmsim.FlavorVRACloud, vidmsim.FlavorVRA7, vidmsim.FlavorVCF:
		return f, nil
	}
	return "", fmt.Errorf("-flavor %q: want %s", s, flavorList)
}

// exampleConfig is the configuration used without -config. Each flavor's example is usable as
// it stands: its credentials are the ones its login endpoint accepts, and credentials the flavor
// has no endpoint for are left out so that neither -print-config nor the start-up log offers them.
func exampleConfig(f vidmsim.Flavor) vidmsim.Config {
	switch f {
	case vidmsim.FlavorVCF:
		return vidmsim.ExampleVCFConfig()
	case vidmsim.FlavorVRACloud:
		cfg := vidmsim.ExampleConfig()
		// vRA Cloud logs in only through CSP's API-token exchange.
		cfg.Flavor, cfg.Clients, cfg.Users = f, nil, nil
		cfg.RefreshTokens = []string{exampleRefreshToken}
		return cfg
	case vidmsim.FlavorVRA7:
		cfg := vidmsim.ExampleConfig()
		// vRA 7 logs in with a username and password in a tenant; it has no OAuth clients.
		cfg.Flavor, cfg.Clients, cfg.Tenant = f, nil, defaultVRA7Tenant
		return cfg
	}
	cfg := vidmsim.ExampleConfig()
	cfg.Flavor = f // "" without -flavor: the example exactly as vidmsim defines it
	return cfg
}

// effectiveFlavor is the flavor the simulator will speak: vidmsim.New's default for "".
func effectiveFlavor(cfg vidmsim.Config) vidmsim.Flavor {
	if cfg.Flavor == "" {
		return vidmsim.FlavorVIDM
	}
	return cfg.Flavor
}

// flavorEndpoints are the endpoints a flavor serves, for /_sim/stats.
func flavorEndpoints(f vidmsim.Flavor) []vidmsim.Endpoint {
	switch f {
	case vidmsim.FlavorVRACloud:
		return []vidmsim.Endpoint{vidmsim.EndpointCSPAuthorize, vidmsim.EndpointDirectories,
			vidmsim.EndpointSyncStart, vidmsim.EndpointSyncStatus, vidmsim.EndpointSCIMGroups, vidmsim.EndpointSCIMUsers}
	case vidmsim.FlavorVRA7:
		return []vidmsim.Endpoint{vidmsim.EndpointVRA7Login, vidmsim.EndpointVRA7Directories,
			vidmsim.EndpointVRA7SyncStart, vidmsim.EndpointVRA7SyncStatus, vidmsim.EndpointVRA7Group, vidmsim.EndpointVRA7Principal}
	case vidmsim.FlavorVCF:
		return []vidmsim.Endpoint{vidmsim.EndpointVCFTokens, vidmsim.EndpointVCFProviders, vidmsim.EndpointVCFProvider}
	}
	return []vidmsim.Endpoint{vidmsim.EndpointOAuthToken, vidmsim.EndpointSystemLogin, vidmsim.EndpointDirectories,
		vidmsim.EndpointSyncStart, vidmsim.EndpointSyncStatus, vidmsim.EndpointSCIMGroups, vidmsim.EndpointSCIMUsers}
}

// The paths announced at start; they are the simulator's, repeated here because vidmsim keeps
// them unexported. TestRunFlavors logs in through each one, so a drift fails there.
const (
	pathOAuthToken   = "/SAAS/auth/oauthtoken"
	pathSystemLogin  = "/SAAS/API/1.0/REST/auth/system/login"
	pathDirectories  = "/SAAS/jersey/manager/api/connectormanagement/directoryconfigs"
	pathCSPAuthorize = "/csp/gateway/am/api/auth/api-tokens/authorize"
	pathVRA7Tokens   = "/identity/api/tokens"
	pathVCFTokens    = "/v1/tokens"
	pathVCFProviders = "/v1/identity-providers"
)

// logStart announces the URL, the flavor, and who may log in where. Secrets stay out of the log,
// the example ones too: a log line does not know whether its values are examples. -print-config
// shows the example credentials instead.
func logStart(ctx context.Context, logger *slog.Logger, base string, cfg vidmsim.Config, fromExample bool) {
	f := effectiveFlavor(cfg)
	attrs := []slog.Attr{slog.String("url", base), slog.String("flavor", string(f))}
	var clients, users, dirs []string
	for _, c := range cfg.Clients {
		clients = append(clients, c.ID)
	}
	for _, u := range cfg.Users {
		users = append(users, u.Username)
	}
	for _, d := range cfg.Directories {
		dirs = append(dirs, d.Name)
	}
	var missing string // the credentials the flavor needs and the config lacks
	switch f {
	case vidmsim.FlavorVRACloud:
		// The client's token URL is a whole URL (vRA Cloud's default is CSP's console).
		attrs = append(attrs, slog.String("token_url", base+pathCSPAuthorize),
			slog.Int("refresh_tokens", len(cfg.RefreshTokens)),
			slog.String("directories_path", pathDirectories), slog.Any("directories", dirs))
		if len(cfg.RefreshTokens) == 0 {
			missing = "refreshTokens"
		}
	case vidmsim.FlavorVRA7:
		tenant := cfg.Tenant
		if tenant == "" {
			tenant = defaultVRA7Tenant
		}
		// vRA 7 addresses a store by its first domain, and lists only stores that have one.
		var domains []string
		for _, d := range cfg.Directories {
			if len(d.Domains) > 0 && !slices.Contains(domains, d.Domains[0]) {
				domains = append(domains, d.Domains[0])
			}
		}
		attrs = append(attrs, slog.String("login_path", pathVRA7Tokens), slog.String("tenant", tenant),
			slog.Any("users", users),
			slog.String("directories_path", "/identity/api/tenants/"+url.PathEscape(tenant)+"/directories"),
			slog.Any("directory_domains", domains))
		if len(cfg.Users) == 0 {
			missing = "users"
		}
	case vidmsim.FlavorVCF:
		var providers []string
		for _, d := range cfg.Directories {
			if d.VCF == nil {
				continue
			}
			p := fmt.Sprintf("%s (%s)", d.VCF.ProviderID, d.VCF.ProviderType)
			if !slices.Contains(providers, p) {
				providers = append(providers, p)
			}
		}
		attrs = append(attrs, slog.String("login_path", pathVCFTokens), slog.Any("users", users),
			slog.String("providers_path", pathVCFProviders), slog.Any("identity_providers", providers))
		if len(cfg.Users) == 0 {
			missing = "users"
		}
		if len(providers) == 0 {
			logger.Warn("vidm-sim: no directory has a vcf section, so the vcf flavor lists no identity providers")
		}
	default:
		attrs = append(attrs, slog.String("oauth_path", pathOAuthToken), slog.Any("oauth_clients", clients),
			slog.String("login_path", pathSystemLogin), slog.Any("users", users),
			slog.String("directories_path", pathDirectories), slog.Any("directories", dirs))
		if len(cfg.Clients) == 0 && len(cfg.Users) == 0 {
			missing = "clients or users"
		}
	}
	if fromExample {
		attrs = append(attrs, slog.String("example_credentials", "vidm-sim -print-config -flavor "+string(f)))
	}
	logger.LogAttrs(ctx, slog.LevelInfo, "vidm-sim listening", attrs...)
	if missing != "" {
		logger.Warn("vidm-sim: the config has no " + missing + ": nothing can log in to the " + string(f) + " flavor")
	}
}
