// Package vcf speaks VCF's identity broker (SDDC Manager's identity providers). It is an
// httpcore.API; the client machinery is httpcore's.
package vcf

// VCF's identity broker (SDDC Manager, reference 004) has no directory sync API. Its identity
// sources are either read live from AD/LDAP (the Embedded IDP's ActiveDirectory and OpenLdap
// sources, Microsoft ADFS with its ldap section) or pushed by the external IdP's SCIM sync client
// (FEDERATED_IDP_BROKER with Okta or Microsoft Entra ID). The client therefore never pretends to
// sync: a directory's status is DELEGATED, naming who keeps it current. The SCIM token itself is
// never read: the list answer does not carry it, and the endpoint that generates one (POST
// .../sync-client) is never called.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
)

const (
	pathVCFTokens    = "/v1/tokens"
	pathVCFProviders = "/v1/identity-providers"
	vcfTypeBroker    = "FEDERATED_IDP_BROKER"
	vcfStatusRaw     = "DELEGATED"
	// maxVCFName bounds a server-provided name inside a message.
	maxVCFName = 128
)

// API is VCF's identity broker (SDDC Manager's /v1/identity-providers).
type API struct{}

// New validates cfg and returns a client of SDDC Manager's identity broker (cfg.Kind becomes
// backend.KindVCF). It does not contact VCF.
func New(cfg httpcore.Config) (*httpcore.Client, error) { return httpcore.New(cfg, API{}) }

// Kind is backend.KindVCF.
func (API) Kind() backend.Kind { return backend.KindVCF }

// DefaultAuthMode is the password login.
func (API) DefaultAuthMode() httpcore.AuthMode { return httpcore.AuthPassword }

// CheckAuth accepts the password login with a username and a password.
func (API) CheckAuth(cfg httpcore.Config) error {
	if cfg.AuthMode == httpcore.AuthPassword {
		return httpcore.NeedCredentials(cfg, "a username and a password", cfg.Username != "" && cfg.Password != "")
	}
	return httpcore.AuthModeMismatch(cfg)
}

func vcfListCall() httpcore.Call {
	return httpcore.Call{Op: "list identity providers", Method: http.MethodGet, Path: pathVCFProviders,
		Accept: httpcore.MediaJSON, Bearer: true, Endpoint: httpcore.EndpointDirectories}
}

// ListDirectories lists the identity providers.
func (API) ListDirectories() httpcore.Call { return vcfListCall() }

// ParseDirectories returns one directory per identity source, with the id
// "<provider id>/<source name>".
func (API) ParseDirectories(body []byte) ([]httpcore.Directory, error) {
	providers, err := parseVCFProviders(body)
	if err != nil {
		return nil, err
	}
	out := []httpcore.Directory{}
	for _, p := range providers {
		for _, s := range p.sources() {
			out = append(out, s.directory())
		}
	}
	return out, nil
}

// StartSync refuses: VCF starts no syncs, and a worker that tried would only be retrying forever.
func (API) StartSync(directoryID string, _ bool) (httpcore.Call, error) {
	return httpcore.Call{}, fmt.Errorf("%w: VCF's identity broker has no directory sync; %q is kept current by its identity provider (see its sync status)",
		backend.ErrNotSupported, backend.Clip(directoryID, 256))
}

// SyncStatus reads the directory's provider; ParseSyncState picks the source out of it.
func (API) SyncStatus(directoryID string) (httpcore.Call, error) {
	providerID, _, err := splitVCFDirectoryID(directoryID)
	if err != nil {
		return httpcore.Call{}, err
	}
	return httpcore.Call{Op: "read identity provider", Method: http.MethodGet,
		Path:    pathVCFProviders + "/" + providerID,
		RawPath: pathVCFProviders + "/" + url.PathEscape(providerID),
		Accept:  httpcore.MediaJSON, Bearer: true, Endpoint: httpcore.EndpointSyncStatus}, nil
}

// ParseSyncState reports the source as DELEGATED. A source its provider no longer has is a
// *DirectoryError wrapping ErrDirectoryNotFound (permanent); a provider that is gone altogether
// is already a 404 from SyncStatus.
func (API) ParseSyncState(directoryID string, body []byte) (httpcore.SyncState, error) {
	providerID, name, err := splitVCFDirectoryID(directoryID)
	if err != nil {
		return httpcore.SyncState{}, err
	}
	var p vcfProviderJSON
	if err := json.Unmarshal(body, &p); err != nil {
		return httpcore.SyncState{}, fmt.Errorf("%w: identity provider: %s", httpcore.ErrInvalidResponse, httpcore.DescribeJSONError(err))
	}
	switch {
	case p.ID == "":
		p.ID = providerID
	case p.ID != providerID:
		return httpcore.SyncState{}, fmt.Errorf("%w: asked for identity provider %q, got %q", httpcore.ErrInvalidResponse,
			backend.Clip(providerID, maxVCFName), backend.Clip(p.ID, maxVCFName))
	}
	for _, s := range p.sources() {
		if s.name == name {
			return s.syncState(), nil
		}
	}
	return httpcore.SyncState{}, &httpcore.DirectoryError{Query: backend.Clip(directoryID, 256), Err: httpcore.ErrDirectoryNotFound}
}

// Describe: VCF's directories are delegated.
func (API) Describe(d *backend.Description) { d.Delegation = true }

// vcfDirectoryID names a source uniquely and stably: the provider id (a UUID) and the source's
// name, which is unique within its provider, both escaped, so that the id has no spaces (the
// event schemas forbid them) and exactly one "/".
func vcfDirectoryID(providerID, name string) string {
	return url.PathEscape(providerID) + "/" + url.PathEscape(name)
}

func splitVCFDirectoryID(id string) (providerID, name string, err error) {
	rawProvider, rawName, ok := strings.Cut(id, "/")
	if ok {
		providerID, err = url.PathUnescape(rawProvider)
	}
	if ok && err == nil {
		name, err = url.PathUnescape(rawName)
	}
	switch {
	case !ok || err != nil || name == "":
		return "", "", fmt.Errorf("%w: VCF directory id %q is not <provider id>/<source name>", httpcore.ErrInvalidArgument, backend.Clip(id, 256))
	case providerID == "" || providerID == "." || providerID == "..":
		return "", "", fmt.Errorf("%w: VCF provider id %q", httpcore.ErrInvalidArgument, backend.Clip(providerID, 256))
	}
	return providerID, name, nil
}

// The answers, as reference 004 shows them; only what the worker uses is decoded (no ldap
// credentials, no OIDC client).
type vcfProviderJSON struct {
	ID              string          `json:"id"`
	Name            string          `json:"name"`
	Type            string          `json:"type"`
	Status          string          `json:"status"`
	DomainNames     []string        `json:"domainNames"`
	IdentitySources []vcfSourceJSON `json:"identitySources"`
	LDAP            *vcfLDAPJSON    `json:"ldap"`
	FedIdp          *vcfFedIdpJSON  `json:"fedIdp"`
}

type vcfSourceJSON struct {
	Name        string       `json:"name"`
	Type        string       `json:"type"`
	DomainNames []string     `json:"domainNames"`
	LDAP        *vcfLDAPJSON `json:"ldap"`
}

type vcfLDAPJSON struct {
	Type       string `json:"type"`
	DomainName string `json:"domainName"`
}

type vcfFedIdpJSON struct {
	Name          string `json:"name"`
	Source        string `json:"source"`
	DirectoryList *struct {
		Name          string   `json:"name"`
		DefaultDomain string   `json:"defaultDomain"`
		Domains       []string `json:"domains"`
	} `json:"directoryList"`
	SyncClientTokenInfo *struct {
		ExpireAt json.RawMessage `json:"expireAt"`
	} `json:"syncClientTokenInfo"`
}

func parseVCFProviders(body []byte) ([]vcfProviderJSON, error) {
	var resp struct {
		Elements *[]vcfProviderJSON `json:"elements"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.Elements == nil {
		why := "no elements array"
		if err != nil {
			why = httpcore.DescribeJSONError(err)
		}
		return nil, httpcore.RetryableError("list identity providers", fmt.Errorf("%w: identity providers: %s", httpcore.ErrInvalidResponse, why))
	}
	return *resp.Elements, nil
}

// vcfSource is one identity source as the worker sees it.
type vcfSource struct {
	providerID, providerName, providerType string
	inactive                               bool
	name, typ                              string
	domains                                []string
	scim                                   bool      // pushed by a SCIM sync client, not read over LDAP
	tokenExpires                           time.Time // the SCIM sync-client token's expiry, when reported
}

// sources lists the provider's identity sources, by the provider's shape rather than its type
// name so that a renamed type still reads. SystemDomain (vsphere.local) and LocalOs (localos) are
// left out: they hold vCenter's own accounts, nothing an external directory change could affect.
// Providers or sources without an id or name cannot be addressed and are left out too.
func (p vcfProviderJSON) sources() []vcfSource {
	if p.ID == "" {
		return nil
	}
	base := vcfSource{providerID: p.ID, providerName: p.Name, providerType: p.Type,
		inactive: strings.EqualFold(p.Status, "inactive")}
	var out []vcfSource
	add := func(s vcfSource) {
		if s.name != "" {
			out = append(out, s)
		}
	}
	switch {
	case p.FedIdp != nil || strings.EqualFold(p.Type, vcfTypeBroker):
		s := base
		s.scim = true
		if f := p.FedIdp; f != nil {
			s.typ, s.name = f.Source, f.Name
			if s.providerName == "" {
				s.providerName = f.Name
			}
			if dl := f.DirectoryList; dl != nil {
				s.name = firstNonEmpty(dl.Name, s.name)
				s.domains = withDomain(dl.Domains, dl.DefaultDomain)
			}
			if ti := f.SyncClientTokenInfo; ti != nil {
				s.tokenExpires, _ = parseVCFTime(ti.ExpireAt)
			}
		}
		s.name = firstNonEmpty(s.name, p.Name)
		add(s)
	case p.IdentitySources != nil:
		for _, src := range p.IdentitySources {
			typ := src.Type
			if typ == "" && src.LDAP != nil {
				typ = src.LDAP.Type
			}
			if strings.EqualFold(typ, "SystemDomain") || strings.EqualFold(typ, "LocalOs") {
				continue
			}
			s := base
			s.name, s.typ, s.domains = src.Name, typ, src.DomainNames
			if src.LDAP != nil {
				s.domains = withDomain(s.domains, src.LDAP.DomainName)
			}
			add(s)
		}
	default: // Microsoft ADFS, or another external provider that reads AD over LDAP
		s := base
		s.name, s.typ, s.domains = p.Name, p.Type, p.DomainNames
		if p.LDAP != nil {
			s.domains = withDomain(s.domains, p.LDAP.DomainName)
		}
		add(s)
	}
	return out
}

func (s vcfSource) directory() httpcore.Directory {
	return httpcore.Directory{ID: vcfDirectoryID(s.providerID, s.name), Name: s.name, Type: s.typ, Domains: s.domains}
}

func (s vcfSource) syncState() httpcore.SyncState {
	d := &backend.Delegation{
		Kind: backend.DelegationLDAP, ProviderID: s.providerID, ProviderName: s.providerName,
		Source: s.typ, Message: s.message(),
	}
	if s.scim {
		d.Kind, d.TokenExpiresAt = backend.DelegationSCIM, s.tokenExpires
	}
	return httpcore.SyncState{Status: backend.StatusDelegated, Raw: vcfStatusRaw, Message: d.Message, Progress: -1, Delegation: d}
}

// message says, in one sentence for the result event and the status page, why nothing is synced.
func (s vcfSource) message() string {
	var b strings.Builder
	if s.inactive {
		fmt.Fprintf(&b, "the identity provider %s is inactive in VCF; ", backend.Clip(firstNonEmpty(s.providerName, s.providerID), maxVCFName))
	}
	if s.scim {
		fmt.Fprintf(&b, "users and groups of %s are pushed by its SCIM sync client; VCF has no sync to start",
			backend.Clip(firstNonEmpty(s.providerName, s.name), maxVCFName))
		if s.tokenExpires.IsZero() {
			b.WriteString(" (VCF reports no sync-client token)")
		} else {
			fmt.Fprintf(&b, " (sync-client token expires %s)", s.tokenExpires.UTC().Format(time.RFC3339))
		}
		return b.String()
	}
	by, from := "the identity source", "the directory server"
	switch {
	case strings.EqualFold(s.typ, "ActiveDirectory"):
		from = "Active Directory"
	case strings.EqualFold(s.typ, "OpenLdap"):
		from = "OpenLDAP"
	case strings.Contains(strings.ToUpper(s.providerType), "ADFS"):
		by, from = "the identity provider ("+backend.Clip(s.providerType, maxVCFName)+")", "Active Directory"
	}
	fmt.Fprintf(&b, "users and groups of %s are read from %s over LDAP by %s; VCF has no sync to start",
		backend.Clip(s.name, maxVCFName), from, by)
	return b.String()
}

// parseVCFTime reads expireAt: RFC 3339 (VCF writes milliseconds), or epoch seconds or
// milliseconds should a version send a number.
func parseVCFTime(raw json.RawMessage) (time.Time, bool) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
		return t.UTC(), err == nil
	}
	var n float64
	if json.Unmarshal(raw, &n) == nil {
		t := httpcore.EpochTime(n)
		return t, !t.IsZero()
	}
	return time.Time{}, false
}

// withDomain returns domains with d added when it is missing (a default domain, an ldap
// domainName), without changing the slice it was given.
func withDomain(domains []string, d string) []string {
	if d == "" || slices.ContainsFunc(domains, func(have string) bool { return strings.EqualFold(have, d) }) {
		return domains
	}
	return append(append([]string(nil), domains...), d)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// Login obtains an access token from SDDC Manager. The refresh token VCF returns beside it is
// not kept: logging in again with the password needs no second secret in memory.
func (API) Login(ctx context.Context, c *httpcore.Client) (httpcore.Token, error) {
	cfg := c.Config()
	reqBody, err := json.Marshal(struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}{cfg.Username, cfg.Password})
	if err != nil {
		return httpcore.Token{}, &httpcore.Error{Op: "vcf login", Err: err}
	}
	body, err := c.Do(ctx, httpcore.Call{Op: "vcf login", Method: http.MethodPost, Path: pathVCFTokens,
		Accept: httpcore.MediaJSON, ContentType: httpcore.MediaJSON, Body: reqBody, Endpoint: httpcore.EndpointLogin})
	if err != nil {
		return httpcore.Token{}, err
	}
	var resp struct {
		AccessToken string `json:"accessToken"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.AccessToken == "" {
		return httpcore.Token{}, &httpcore.Error{Op: "vcf login", Err: fmt.Errorf("%w: no accessToken in the token response", httpcore.ErrInvalidResponse)}
	}
	return c.SessionToken(resp.AccessToken), nil
}

// SyncClientTokens lists VCF's identity providers (one uncached call) and returns the SCIM
// sync-client token expiry of each FEDERATED_IDP_BROKER provider that has a token, so that an
// expiry can be alerted on before the IdP's pushes start failing. The tokens themselves are
// never read (httpcore.SyncClientLister).
func (API) SyncClientTokens(ctx context.Context, c *httpcore.Client) ([]backend.SyncClientToken, error) {
	body, err := c.Do(ctx, vcfListCall())
	if err != nil {
		return nil, err
	}
	providers, err := parseVCFProviders(body)
	if err != nil {
		return nil, err
	}
	out := []backend.SyncClientToken{}
	for _, p := range providers {
		if p.FedIdp == nil || p.FedIdp.SyncClientTokenInfo == nil {
			continue
		}
		srcs := p.sources()
		if len(srcs) == 0 {
			continue
		}
		s := srcs[0]
		exp, ok := parseVCFTime(p.FedIdp.SyncClientTokenInfo.ExpireAt)
		if !ok {
			// Reported rather than failing the whole list: the other providers' expiries still count.
			c.Logger().Warn("VCF reports a sync-client token expiry this client cannot read; provider skipped",
				"provider_id", backend.Clip(p.ID, maxVCFName), "provider", backend.Clip(s.providerName, maxVCFName))
			continue
		}
		out = append(out, backend.SyncClientToken{ProviderID: p.ID, ProviderName: s.providerName,
			Source: s.typ, Domains: s.domains, ExpiresAt: exp})
	}
	return out, nil
}
