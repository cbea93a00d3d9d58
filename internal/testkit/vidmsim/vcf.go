package vidmsim

// The VCF flavor: SDDC Manager's token endpoint and its read-only identity-providers API
// (reference 004). VCF has no directory sync: the simulator serves the providers built from the
// configured directories that carry a VCFSource, nothing else. Writes (adding providers, generating
// a sync-client token) are not simulated: the worker must never make them.

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// The VCF endpoints.
const (
	EndpointVCFTokens    Endpoint = "vcf-tokens"             // POST /v1/tokens
	EndpointVCFProviders Endpoint = "vcf-identity-providers" // GET  /v1/identity-providers
	EndpointVCFProvider  Endpoint = "vcf-identity-provider"  // GET  /v1/identity-providers/{id}
)

const (
	pathVCFTokens    = "/v1/tokens"
	pathVCFProviders = "/v1/identity-providers"
)

// Identity provider types as VCF reports them.
const (
	VCFProviderEmbedded = "Embedded"
	VCFProviderADFS     = "Microsoft ADFS"
	VCFProviderBroker   = "FEDERATED_IDP_BROKER"
)

// Identity source types: the embedded provider's sources, then the broker's external IdPs.
const (
	VCFSourceActiveDirectory = "ActiveDirectory"
	VCFSourceOpenLDAP        = "OpenLdap"
	VCFSourceSystemDomain    = "SystemDomain" // vsphere.local
	VCFSourceLocalOS         = "LocalOs"      // localos
	VCFSourceOkta            = "OKTA"
	VCFSourceEntraID         = "MICROSOFT_ENTRA_ID"
)

// Provider statuses.
const (
	VCFStatusActive   = "active"
	VCFStatusInactive = "inactive"
)

// defaultSCIMURL is reported when a broker's ScimURL is empty; in VCF it points at vCenter's
// identity broker, not at SDDC Manager.
const defaultSCIMURL = "https://vcenter.vcf.example/usergroup/t/CUSTOMER/scim/v2"

// VCFSource places a directory under a VCF identity provider (FlavorVCF); directories without one
// are not listed in that flavor. Directories with the same ProviderID form one provider: the
// Embedded provider lists each as an identity source (named Directory.Name), an ADFS or
// FEDERATED_IDP_BROKER provider has exactly one. The LDAP and OIDC details VCF also reports
// (base DNs, server endpoints, OIDC client) are derived from the directory's first domain.
type VCFSource struct {
	// ProviderID is the provider's id (VCF uses UUIDs); one path segment.
	ProviderID string `json:"providerId"`
	// ProviderName is the provider's name. Default "Embedded IDP" for Embedded, "Okta" or
	// "Entra ID" for a broker; an ADFS provider's name is always Directory.Name.
	ProviderName string `json:"providerName,omitempty"`
	// ProviderType is "Embedded", "Microsoft ADFS" or "FEDERATED_IDP_BROKER".
	ProviderType string `json:"providerType"`
	// SourceType: for Embedded "ActiveDirectory", "OpenLdap", "SystemDomain" or "LocalOs"; for a
	// broker "OKTA" or "MICROSOFT_ENTRA_ID"; empty for ADFS (its ldap section reads "Oidc").
	SourceType string `json:"sourceType,omitempty"`
	// Status is the provider's: "active" (default) or "inactive".
	Status string `json:"status,omitempty"`
	// SyncClientTokenExpiresAt is when the broker's SCIM sync-client token expires; zero means no
	// token has been generated, and syncClientTokenInfo is left out. Broker only.
	SyncClientTokenExpiresAt time.Time `json:"syncClientTokenExpiresAt,omitzero"`
	// SyncClientTokenTTL is the number VCF reports as syncClientTokenTTL with a token (the
	// reference shows 263000 and does not give the unit). Broker only.
	SyncClientTokenTTL int64 `json:"syncClientTokenTTL,omitempty"`
	// ScimURL is the broker's SCIM endpoint; default a vCenter URL. Broker only.
	ScimURL string `json:"scimUrl,omitempty"`
}

// classifyVCF resolves VCF's routes; vIDM's /SAAS paths do not exist here and answer 404. Only
// reads are served on the providers: the worker has no business changing them.
func (s *Server) classifyVCF(r *http.Request) route {
	p := r.URL.EscapedPath()
	switch p {
	case pathVCFTokens:
		return route{endpoint: EndpointVCFTokens, allow: http.MethodPost, methodOK: r.Method == http.MethodPost,
			handle: s.handleVCFToken}
	case pathVCFProviders:
		return route{endpoint: EndpointVCFProviders, allow: http.MethodGet, methodOK: r.Method == http.MethodGet,
			handle: s.handleVCFProviders}
	}
	seg, ok := strings.CutPrefix(p, pathVCFProviders+"/")
	if !ok || seg == "" || strings.Contains(seg, "/") {
		return route{}
	}
	id, err := url.PathUnescape(seg)
	if err != nil || id == "" {
		return route{}
	}
	return route{endpoint: EndpointVCFProvider, allow: http.MethodGet, methodOK: r.Method == http.MethodGet,
		directoryID: id, handle: func(w http.ResponseWriter, r *http.Request) { s.handleVCFProvider(w, r, id) }}
}

// vcfError is VCF's error body.
type vcfError struct {
	ErrorCode string `json:"errorCode"`
	Message   string `json:"message"`
}

func writeVCFError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, mediaJSON, vcfError{ErrorCode: code, Message: msg})
}

// vcfMediaOK answers 406 or 415 in VCF's error shape. VCF speaks plain JSON: a missing Accept,
// */* and application/json are all fine.
func vcfMediaOK(w http.ResponseWriter, r *http.Request, needBody bool) bool {
	if !acceptOK(r.Header.Values("Accept"), mediaJSON, true) {
		writeVCFError(w, http.StatusNotAcceptable, "NOT_ACCEPTABLE", "Accept must allow "+mediaJSON)
		return false
	}
	if needBody && !contentTypeIs(r, mediaJSON) {
		writeVCFError(w, http.StatusUnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be "+mediaJSON)
		return false
	}
	return true
}

type vcfTokenRequest struct {
	Username *string `json:"username"`
	Password *string `json:"password"`
}

type vcfTokenPair struct {
	AccessToken  string          `json:"accessToken"`
	RefreshToken vcfRefreshToken `json:"refreshToken"`
}

type vcfRefreshToken struct {
	ID string `json:"id"`
}

// handleVCFToken issues an access token for a local account. The refresh token is an id only, as
// VCF returns it; the simulator does not accept it back.
func (s *Server) handleVCFToken(w http.ResponseWriter, r *http.Request) {
	if !vcfMediaOK(w, r, true) {
		return
	}
	b, err := readBody(r)
	var req vcfTokenRequest
	if err == nil {
		err = decodeOneObject(b, &req, false)
	}
	if err != nil || req.Username == nil || req.Password == nil {
		writeVCFError(w, http.StatusBadRequest, "INVALID_INPUT", "The body must be a JSON object with username and password.")
		return
	}
	if !s.userOK(*req.Username, *req.Password) {
		// Neither the username nor the password is echoed: error bodies end up in logs.
		writeVCFError(w, http.StatusUnauthorized, "AUTHENTICATION_FAILED", "Bad username or password.")
		return
	}
	tok, _ := s.issueToken(*req.Username, "")
	writeJSON(w, http.StatusOK, mediaJSON, vcfTokenPair{AccessToken: tok, RefreshToken: vcfRefreshToken{ID: newUUID()}})
}

func (s *Server) handleVCFProviders(w http.ResponseWriter, r *http.Request) {
	if !s.authorize(w, r) || !vcfMediaOK(w, r, false) {
		return
	}
	writeJSON(w, http.StatusOK, mediaJSON, vcfProviderList{Elements: s.vcfProviders()})
}

func (s *Server) handleVCFProvider(w http.ResponseWriter, r *http.Request, id string) {
	if !s.authorize(w, r) || !vcfMediaOK(w, r, false) {
		return
	}
	for _, p := range s.vcfProviders() {
		if p.ID == id {
			writeJSON(w, http.StatusOK, mediaJSON, p)
			return
		}
	}
	writeVCFError(w, http.StatusNotFound, "IDENTITY_PROVIDER_NOT_FOUND", "Identity provider not found.")
}

// The bodies, field for field as reference 004 shows them (the struct order is the reference's
// key order).
type vcfProviderList struct {
	Elements []vcfProvider `json:"elements"`
}

type vcfProvider struct {
	ID              string                `json:"id"`
	Name            string                `json:"name"`
	Type            string                `json:"type"`
	DomainNames     []string              `json:"domainNames,omitempty"`     // ADFS
	IdentitySources *[]vcfIdentitySource  `json:"identitySources,omitempty"` // Embedded; [] when empty
	LDAP            *vcfLDAP              `json:"ldap,omitempty"`            // ADFS
	OIDC            *vcfOIDC              `json:"oidc,omitempty"`            // ADFS
	Status          string                `json:"status"`
	FedIdp          *vcfFederatedProvider `json:"fedIdp,omitempty"` // broker
}

type vcfIdentitySource struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	DomainNames []string `json:"domainNames"`
	LDAP        *vcfLDAP `json:"ldap,omitempty"` // not for SystemDomain and LocalOs
}

type vcfLDAP struct {
	Type          string           `json:"type"`
	DomainName    string           `json:"domainName"`
	DomainAlias   string           `json:"domainAlias"`
	Username      string           `json:"username"`
	SourceDetails vcfSourceDetails `json:"sourceDetails"`
}

type vcfSourceDetails struct {
	UsersBaseDN     string    `json:"usersBaseDn"`
	GroupsBaseDN    string    `json:"groupsBaseDn"`
	CertChain       *[]string `json:"certChain,omitempty"` // embedded sources carry it, ADFS does not
	ServerEndpoints []string  `json:"serverEndpoints"`
}

type vcfOIDC struct {
	ClientID          string `json:"clientId"`
	DiscoveryEndpoint string `json:"discoveryEndpoint"`
}

type vcfFederatedProvider struct {
	Name                string                  `json:"name"`
	Source              string                  `json:"source"`
	DirectoryList       vcfDirectoryList        `json:"directoryList"`
	OIDCInfo            vcfOIDC                 `json:"oidcInfo"`
	SyncClientTokenTTL  *int64                  `json:"syncClientTokenTTL,omitempty"`
	SyncClientTokenInfo *vcfSyncClientTokenInfo `json:"syncClientTokenInfo,omitempty"`
}

type vcfDirectoryList struct {
	Name          string   `json:"name"`
	DefaultDomain string   `json:"defaultDomain"`
	Domains       []string `json:"domains"`
}

type vcfSyncClientTokenInfo struct {
	ExpireAt string `json:"expireAt"`
	ScimURL  string `json:"scimUrl"`
}

// vcfExpireAtLayout is RFC 3339 with milliseconds, as VCF writes expireAt.
const vcfExpireAtLayout = "2006-01-02T15:04:05.000Z07:00"

// vcfProviders builds the providers from a snapshot of the directories, in the order their first
// directory is configured.
func (s *Server) vcfProviders() []vcfProvider {
	s.mu.Lock()
	dirs := make([]Directory, 0, len(s.dirs))
	for _, d := range s.dirs {
		if d.VCF != nil {
			v := *d.VCF // a copy: the caller's config may share the pointer
			d.VCF = &v
			dirs = append(dirs, d)
		}
	}
	s.mu.Unlock()
	return buildVCFProviders(dirs)
}

func buildVCFProviders(dirs []Directory) []vcfProvider {
	out := []vcfProvider{}
	index := map[string]int{}
	for _, d := range dirs {
		i, ok := index[d.VCF.ProviderID]
		if !ok {
			i = len(out)
			index[d.VCF.ProviderID] = i
			out = append(out, newVCFProvider(d))
		}
		if d.VCF.ProviderType == VCFProviderEmbedded {
			*out[i].IdentitySources = append(*out[i].IdentitySources, vcfIdentitySourceOf(d))
		}
	}
	return out
}

// newVCFProvider builds the provider d belongs to; an Embedded provider starts with no sources.
func newVCFProvider(d Directory) vcfProvider {
	v := d.VCF
	p := vcfProvider{ID: v.ProviderID, Name: vcfProviderName(d), Type: v.ProviderType, Status: v.Status}
	if p.Status == "" {
		p.Status = VCFStatusActive
	}
	domain := firstDomain(d)
	switch v.ProviderType {
	case VCFProviderEmbedded:
		p.IdentitySources = &[]vcfIdentitySource{}
	case VCFProviderADFS:
		p.DomainNames = append([]string{}, d.Domains...)
		ldap := vcfLDAPOf("Oidc", domain)
		p.LDAP = &ldap
		p.OIDC = &vcfOIDC{ClientID: derivedUUID("oidc", v.ProviderID),
			DiscoveryEndpoint: "https://adfs." + domain + "/adfs/.well-known/openid-configuration"}
	case VCFProviderBroker:
		f := &vcfFederatedProvider{
			Name: p.Name, Source: v.SourceType,
			DirectoryList: vcfDirectoryList{Name: d.Name, DefaultDomain: domain, Domains: append([]string{}, d.Domains...)},
			OIDCInfo: vcfOIDC{ClientID: derivedUUID("oidc", v.ProviderID),
				DiscoveryEndpoint: "https://login." + domain + "/.well-known/openid-configuration"},
		}
		if !v.SyncClientTokenExpiresAt.IsZero() {
			ttl, scim := v.SyncClientTokenTTL, v.ScimURL
			if scim == "" {
				scim = defaultSCIMURL
			}
			f.SyncClientTokenTTL = &ttl
			f.SyncClientTokenInfo = &vcfSyncClientTokenInfo{
				ExpireAt: v.SyncClientTokenExpiresAt.UTC().Format(vcfExpireAtLayout), ScimURL: scim}
		}
		p.FedIdp = f
	}
	return p
}

func vcfProviderName(d Directory) string {
	v := d.VCF
	switch {
	case v.ProviderType == VCFProviderADFS:
		return d.Name
	case v.ProviderName != "":
		return v.ProviderName
	case v.ProviderType == VCFProviderEmbedded:
		return "Embedded IDP"
	case v.SourceType == VCFSourceOkta:
		return "Okta"
	case v.SourceType == VCFSourceEntraID:
		return "Entra ID"
	}
	return d.Name
}

func vcfIdentitySourceOf(d Directory) vcfIdentitySource {
	src := vcfIdentitySource{Name: d.Name, Type: d.VCF.SourceType, DomainNames: append([]string{}, d.Domains...)}
	if t := d.VCF.SourceType; t == VCFSourceActiveDirectory || t == VCFSourceOpenLDAP {
		ldap := vcfLDAPOf(t, firstDomain(d))
		ldap.SourceDetails.CertChain = &[]string{}
		src.LDAP = &ldap
	}
	return src
}

// vcfLDAPOf derives an LDAP section from the domain; the bind password is never part of it.
func vcfLDAPOf(typ, domain string) vcfLDAP {
	dn := "dc=" + strings.Join(strings.Split(domain, "."), ",dc=")
	alias, _, _ := strings.Cut(domain, ".")
	return vcfLDAP{
		Type: typ, DomainName: domain, DomainAlias: alias, Username: "svc-vcf-ldap@" + domain,
		SourceDetails: vcfSourceDetails{
			UsersBaseDN: "cn=Users," + dn, GroupsBaseDN: "ou=Groups," + dn,
			ServerEndpoints: []string{"ldap://dc01." + domain, "ldap://dc02." + domain},
		},
	}
}

func firstDomain(d Directory) string {
	if len(d.Domains) == 0 {
		return ""
	}
	return d.Domains[0]
}

// derivedUUID is a stable UUID-shaped id, so the same config always answers the same body.
func derivedUUID(kind, of string) string {
	b := sha256.Sum256([]byte(kind + "\x00" + of))
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// SetSyncClientTokenExpiry moves the SCIM sync-client token expiry of a FEDERATED_IDP_BROKER
// provider; the zero time removes the token (no syncClientTokenInfo is reported).
func (s *Server) SetSyncClientTokenExpiry(providerID string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	found := false
	for i, d := range s.dirs {
		if d.VCF == nil || d.VCF.ProviderID != providerID {
			continue
		}
		if d.VCF.ProviderType != VCFProviderBroker {
			return fmt.Errorf("vidmsim: provider %q is %s, not %s: it has no sync-client token",
				providerID, d.VCF.ProviderType, VCFProviderBroker)
		}
		v := *d.VCF // replaced, not changed in place: the pointer may be the caller's
		v.SyncClientTokenExpiresAt = at
		s.dirs[i].VCF = &v
		found = true
	}
	if !found {
		return fmt.Errorf("vidmsim: no VCF identity provider %q", providerID)
	}
	return nil
}

// validateVCFDirectories checks the VCF sources of dirs, each on its own and as providers (the
// directories sharing a ProviderID). Directories without a VCFSource are skipped. validateConfig
// and SetDirectory (on the list it would produce) are meant to call it.
func validateVCFDirectories(dirs []Directory) error {
	var errs []error
	type provider struct {
		first int // index of its first directory
		n     int
	}
	providers := map[string]*provider{}
	embedded := ""
	for i, d := range dirs {
		if d.VCF == nil {
			continue
		}
		if err := validateVCFSource(d); err != nil {
			errs = append(errs, fmt.Errorf("directories[%d]: vcf: %w", i, err))
			continue
		}
		v := d.VCF
		p := providers[v.ProviderID]
		if p == nil {
			providers[v.ProviderID] = &provider{first: i, n: 1}
			if v.ProviderType == VCFProviderEmbedded {
				if embedded != "" {
					errs = append(errs, fmt.Errorf("directories[%d]: vcf: a second Embedded provider %q (VCF has one, %q)", i, v.ProviderID, embedded))
				}
				embedded = v.ProviderID
			}
			continue
		}
		p.n++
		f := dirs[p.first].VCF
		switch {
		case f.ProviderType != v.ProviderType:
			errs = append(errs, fmt.Errorf("directories[%d]: vcf: provider %q is %s in directories[%d], %s here", i, v.ProviderID, f.ProviderType, p.first, v.ProviderType))
		case v.ProviderType != VCFProviderEmbedded:
			errs = append(errs, fmt.Errorf("directories[%d]: vcf: provider %q is %s and already has its directory (directories[%d])", i, v.ProviderID, v.ProviderType, p.first))
		case f.ProviderName != v.ProviderName:
			errs = append(errs, fmt.Errorf("directories[%d]: vcf: provider %q is named %q in directories[%d], %q here", i, v.ProviderID, f.ProviderName, p.first, v.ProviderName))
		case vcfStatusOf(f) != vcfStatusOf(v):
			errs = append(errs, fmt.Errorf("directories[%d]: vcf: provider %q is %s in directories[%d], %s here", i, v.ProviderID, vcfStatusOf(f), p.first, vcfStatusOf(v)))
		}
	}
	return errors.Join(errs...)
}

func vcfStatusOf(v *VCFSource) string {
	if v.Status == "" {
		return VCFStatusActive
	}
	return v.Status
}

// validateVCFSource checks one directory's VCF fields.
func validateVCFSource(d Directory) error {
	v := d.VCF
	switch v.ProviderID {
	case "", ".", "..":
		return fmt.Errorf("providerId %q is not usable as a path segment", v.ProviderID)
	}
	if strings.Contains(v.ProviderID, "/") {
		return fmt.Errorf("providerId %q must not contain '/'", v.ProviderID)
	}
	if v.Status != "" && v.Status != VCFStatusActive && v.Status != VCFStatusInactive {
		return fmt.Errorf("status %q is not active or inactive", v.Status)
	}
	if len(d.Domains) == 0 || slices.ContainsFunc(d.Domains, func(s string) bool { return strings.TrimSpace(s) == "" }) {
		return errors.New("at least one non-empty domain is needed: VCF reports domain names for every source")
	}
	broker := v.ProviderType == VCFProviderBroker
	switch v.ProviderType {
	case VCFProviderEmbedded:
		switch v.SourceType {
		case VCFSourceActiveDirectory, VCFSourceOpenLDAP, VCFSourceSystemDomain, VCFSourceLocalOS:
		default:
			return fmt.Errorf("sourceType %q of an Embedded provider is not ActiveDirectory, OpenLdap, SystemDomain or LocalOs", v.SourceType)
		}
	case VCFProviderADFS:
		if v.SourceType != "" {
			return fmt.Errorf("sourceType %q: an ADFS provider has none", v.SourceType)
		}
		if v.ProviderName != "" && v.ProviderName != d.Name {
			return fmt.Errorf("providerName %q: an ADFS provider is named by its directory (%q)", v.ProviderName, d.Name)
		}
	case VCFProviderBroker:
		if v.SourceType != VCFSourceOkta && v.SourceType != VCFSourceEntraID {
			return fmt.Errorf("sourceType %q of a %s provider is not OKTA or MICROSOFT_ENTRA_ID", v.SourceType, VCFProviderBroker)
		}
	default:
		return fmt.Errorf("providerType %q is not Embedded, Microsoft ADFS or FEDERATED_IDP_BROKER", v.ProviderType)
	}
	switch {
	case !broker && (!v.SyncClientTokenExpiresAt.IsZero() || v.SyncClientTokenTTL != 0 || v.ScimURL != ""):
		return fmt.Errorf("syncClientTokenExpiresAt, syncClientTokenTTL and scimUrl belong to %s providers only", VCFProviderBroker)
	case v.SyncClientTokenTTL < 0:
		return errors.New("syncClientTokenTTL must not be negative")
	}
	if v.ScimURL != "" {
		u, err := url.Parse(v.ScimURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("scimUrl %q is not an absolute https URL", v.ScimURL)
		}
	}
	return nil
}

// ExampleVCFConfig is a FlavorVCF configuration with one provider of each kind: the Embedded IDP
// (its system domains and an AD and an OpenLDAP source), ADFS, and Okta and Entra ID behind the
// identity broker. Its credentials are public examples, not secrets.
func ExampleVCFConfig() Config {
	expires := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	emb := func(t string) *VCFSource {
		return &VCFSource{ProviderID: "3262279b-09b0-44eb-a3be-f4bded4f0851", ProviderName: "Embedded IDP",
			ProviderType: VCFProviderEmbedded, SourceType: t}
	}
	return Config{
		Flavor: FlavorVCF,
		Directories: []Directory{
			{ID: "vcf-vsphere-local", Name: "vsphere.local", Domains: []string{"vsphere.local"}, VCF: emb(VCFSourceSystemDomain)},
			{ID: "vcf-localos", Name: "localos", Domains: []string{"localos"}, VCF: emb(VCFSourceLocalOS)},
			{ID: "vcf-corp-ad", Name: "Corp AD", Domains: []string{"corp.example.com"}, VCF: emb(VCFSourceActiveDirectory)},
			{ID: "vcf-lab-ldap", Name: "Lab LDAP", Domains: []string{"lab.example.com"}, VCF: emb(VCFSourceOpenLDAP)},
			{ID: "vcf-adfs", Name: "Corp ADFS", Domains: []string{"partners.example.com"},
				VCF: &VCFSource{ProviderID: "82ce7b07-f878-41af-9ac3-e343bcb347dc", ProviderType: VCFProviderADFS}},
			{ID: "vcf-okta", Name: "OktaDirectory", Domains: []string{"okta.example.com"},
				VCF: &VCFSource{ProviderID: "159498c4-6e0e-4757-ae4b-dcb6aaa93216", ProviderName: "Okta",
					ProviderType: VCFProviderBroker, SourceType: VCFSourceOkta,
					SyncClientTokenExpiresAt: expires, SyncClientTokenTTL: 263000}},
			{ID: "vcf-entra", Name: "entra_dir", Domains: []string{"entra.example.com"},
				VCF: &VCFSource{ProviderID: "aadd13f5-c05e-491b-9312-23e743175904", ProviderName: "Entra ID",
					ProviderType: VCFProviderBroker, SourceType: VCFSourceEntraID,
					SyncClientTokenExpiresAt: expires, SyncClientTokenTTL: 263000}},
		},
		Users:    []User{{Username: "administrator@vsphere.local", Password: "example-password"}},
		TokenTTL: time.Hour,
	}
}
