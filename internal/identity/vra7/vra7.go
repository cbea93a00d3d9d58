// Package vra7 speaks vRA 7.4+'s identity service: a tenant-scoped login, and the tenant's
// identity stores (directories) addressed by their domain, listed page by page. It is an
// httpcore.API; the client machinery is httpcore's.
package vra7

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
)

// vRA 7.4+'s identity service: a tenant-scoped login, and identity stores addressed by their
// domain under /identity/api/tenants/{tenant}/directories.
const (
	pathVRA7Tokens  = "/identity/api/tokens"
	pathVRA7Tenants = "/identity/api/tenants/"
)

const (
	// vra7PageLimit is the page size asked for when reading every page: large enough that a
	// tenant's stores usually fit in one page, small enough for any server to accept.
	vra7PageLimit = 100
	// vra7MaxPages stops a server whose totalPages never ends (10,000 stores at vra7PageLimit).
	vra7MaxPages = 100
	// vra7OneCallLimit is the page size of the single-request listing of httpcore.API
	// (ListDirectories): the largest page vRA serves, so that one request holds every store of
	// any ordinary tenant.
	vra7OneCallLimit = 500
)

// API is vRA 7.4+'s identity service. Directory IDs are the stores' domains, which is what the
// sync paths take.
type API struct{ tenant string }

// New validates cfg and returns a client of the identity service of cfg.Tenant
// (cfg.Kind becomes backend.KindVRA7). It does not contact vRA.
func New(cfg httpcore.Config) (*httpcore.Client, error) {
	return httpcore.New(cfg, API{tenant: cfg.Tenant})
}

// Kind is backend.KindVRA7.
func (API) Kind() backend.Kind { return backend.KindVRA7 }

// DefaultAuthMode is the password login.
func (API) DefaultAuthMode() httpcore.AuthMode { return httpcore.AuthPassword }

// CheckAuth accepts the password login with a username, a password and a tenant.
func (API) CheckAuth(cfg httpcore.Config) error {
	if cfg.AuthMode == httpcore.AuthPassword {
		return httpcore.NeedCredentials(cfg, "a username, a password and a tenant", cfg.Username != "" && cfg.Password != "" && cfg.Tenant != "")
	}
	return httpcore.AuthModeMismatch(cfg)
}

// vra7Segment checks one path segment: escaping keeps "/" from changing the resource addressed,
// but "", "." and ".." would still do so.
func vra7Segment(what, v string) error {
	switch v {
	case "", ".", "..":
		return fmt.Errorf("%w: %s %q", httpcore.ErrInvalidArgument, what, v)
	}
	return nil
}

// path returns the unescaped and escaped paths of the tenant's store list, optionally
// followed by one domain and its action.
func (a API) path(domain, action string) (string, string, error) {
	if err := vra7Segment("tenant", a.tenant); err != nil {
		return "", "", err
	}
	p := pathVRA7Tenants + a.tenant + "/directories"
	raw := pathVRA7Tenants + url.PathEscape(a.tenant) + "/directories"
	if action == "" {
		return p, raw, nil
	}
	if err := vra7Segment("directory domain", domain); err != nil {
		return "", "", err
	}
	return p + "/" + domain + "/" + action, raw + "/" + url.PathEscape(domain) + "/" + action, nil
}

// pageCall is the request for one page (1-based) of the store list.
func (a API) pageCall(page, limit int) (httpcore.Call, error) {
	p, raw, err := a.path("", "")
	if err != nil {
		return httpcore.Call{}, err
	}
	return httpcore.Call{Op: "list directories", Method: http.MethodGet, Path: p, RawPath: raw,
		Query:  url.Values{"page": {strconv.Itoa(page)}, "limit": {strconv.Itoa(limit)}},
		Accept: httpcore.MediaJSON, Bearer: true, Endpoint: httpcore.EndpointDirectories}, nil
}

// ListDirectories is one request for the first page at the largest size vRA serves.
func (a API) ListDirectories() httpcore.Call {
	cl, err := a.pageCall(1, vra7OneCallLimit)
	if err != nil {
		// No request is sent: a bearer call logs in first, and Login refuses the tenants
		// that pageCall refuses (httpcore.ErrInvalidArgument, permanent).
		return httpcore.Call{Op: "list directories", Bearer: true, Endpoint: httpcore.EndpointDirectories}
	}
	return cl
}

// ParseDirectories reads the answer of ListDirectories. A list with more pages is refused rather
// than cut short: a missing store would dead-letter its triggers as unknown. Directories reads
// every page.
func (API) ParseDirectories(body []byte) ([]httpcore.Directory, error) {
	dirs, meta, err := parseVRA7Page(body)
	if err != nil {
		return nil, err
	}
	if meta.TotalPages > 1 {
		return nil, &httpcore.Error{Op: "list directories", Err: fmt.Errorf(
			"%w: the tenant has %d directories, more than one page of %d", httpcore.ErrInvalidResponse, meta.TotalElements, vra7OneCallLimit)}
	}
	return dirs, nil
}

// vra7PageMeta is the paging part of a vRA pageable list.
type vra7PageMeta struct {
	TotalElements int `json:"totalElements"`
	TotalPages    int `json:"totalPages"`
}

// vra7Store is one identity store as vRA sends it; other fields (url, userNameDn…) are ignored.
type vra7Store struct {
	Domain string `json:"domain"`
	Name   string `json:"name"`
	Type   string `json:"type"`
}

// parseVRA7Page reads one page. Stores without a domain are skipped: the sync paths need one.
func parseVRA7Page(body []byte) ([]httpcore.Directory, vra7PageMeta, error) {
	var resp struct {
		Content  *[]vra7Store `json:"content"`
		Metadata vra7PageMeta `json:"metadata"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.Content == nil {
		why := "no content array"
		if err != nil {
			why = httpcore.DescribeJSONError(err)
		}
		// Usually a proxy's page or a truncated body: worth another try.
		return nil, vra7PageMeta{}, httpcore.RetryableError("list directories",
			fmt.Errorf("%w: directory list: %s", httpcore.ErrInvalidResponse, why))
	}
	out := make([]httpcore.Directory, 0, len(*resp.Content))
	for _, s := range *resp.Content {
		if s.Domain != "" {
			out = append(out, httpcore.Directory{ID: s.Domain, Name: s.Name, Type: s.Type, Domains: []string{s.Domain}})
		}
	}
	return out, resp.Metadata, nil
}

// Directories reads every page of the store list, vra7PageLimit at a time, up to totalPages.
// httpcore.API lists with one call, so the Client lists with this instead (httpcore.DirectoryLister);
// ListDirectories serves up to one page of vra7OneCallLimit.
func (a API) Directories(ctx context.Context, c *httpcore.Client) ([]httpcore.Directory, error) {
	var out []httpcore.Directory
	seen := map[string]bool{}
	for page := 1; ; page++ {
		if page > vra7MaxPages {
			return nil, &httpcore.Error{Op: "list directories", Err: fmt.Errorf(
				"%w: directory list still not at its last page after %d pages", httpcore.ErrInvalidResponse, vra7MaxPages)}
		}
		cl, err := a.pageCall(page, vra7PageLimit)
		if err != nil {
			return nil, &httpcore.Error{Op: "list directories", Err: err}
		}
		body, err := c.Do(ctx, cl)
		if err != nil {
			return nil, err
		}
		dirs, meta, err := parseVRA7Page(body)
		if err != nil {
			return nil, err
		}
		// A store added or removed while paging shifts the others between pages; one seen twice
		// is kept once. A page with entries but nothing new means the server ignores page.
		added := 0
		for _, d := range dirs {
			if !seen[d.ID] {
				seen[d.ID] = true
				out = append(out, d)
				added++
			}
		}
		if page > 1 && len(dirs) > 0 && added == 0 {
			return nil, &httpcore.Error{Op: "list directories", Err: fmt.Errorf(
				"%w: page %d of the directory list repeats earlier pages", httpcore.ErrInvalidResponse, page)}
		}
		if len(dirs) == 0 || page >= meta.TotalPages {
			return out, nil
		}
	}
}

// StartSync ignores ignoreSafeguards: vRA 7's sync has no such setting (Describe says so) and
// takes no body.
func (a API) StartSync(domain string, _ bool) (httpcore.Call, error) {
	p, raw, err := a.path(domain, "sync")
	if err != nil {
		return httpcore.Call{}, err
	}
	return httpcore.Call{Op: "start sync", Method: http.MethodPost, Path: p, RawPath: raw, Accept: httpcore.MediaJSON,
		Bearer: true, Endpoint: httpcore.EndpointSyncStart}, nil
}

func (a API) SyncStatus(domain string) (httpcore.Call, error) {
	p, raw, err := a.path(domain, "status")
	if err != nil {
		return httpcore.Call{}, err
	}
	return httpcore.Call{Op: "sync status", Method: http.MethodGet, Path: p, RawPath: raw, Accept: httpcore.MediaJSON,
		Bearer: true, Endpoint: httpcore.EndpointSyncStatus}, nil
}

// ParseSyncState reads {"syncStatus":{"status","message"}}. Start and end dates, when present, are
// read too; vRA's guide does not show them (the simulator adds them), so nothing depends on them.
func (API) ParseSyncState(_ string, body []byte) (httpcore.SyncState, error) {
	return httpcore.ParseSyncState(body)
}

// Describe: vRA 7 has no safeguards, connectors or delegation to report.
func (API) Describe(d *backend.Description) {
	d.Safeguards, d.Connectors, d.Delegation = false, false, false
}

// Login obtains a tenant-scoped bearer token: POST /identity/api/tokens with username,
// password and tenant; the answer's id is the token and expires its expiry.
func (API) Login(ctx context.Context, c *httpcore.Client) (httpcore.Token, error) {
	cfg := c.Config()
	const op = "vra7 login"
	if err := vra7Segment("tenant", cfg.Tenant); err != nil {
		return httpcore.Token{}, &httpcore.Error{Op: op, Err: err}
	}
	reqBody, err := json.Marshal(map[string]string{
		"username": cfg.Username, "password": cfg.Password, "tenant": cfg.Tenant,
	})
	if err != nil {
		return httpcore.Token{}, &httpcore.Error{Op: op, Err: err}
	}
	body, err := c.Do(ctx, httpcore.Call{Op: op, Method: http.MethodPost, Path: pathVRA7Tokens,
		Accept: httpcore.MediaJSON, ContentType: httpcore.MediaJSON, Body: reqBody, Endpoint: httpcore.EndpointLogin})
	if err != nil {
		return httpcore.Token{}, err
	}
	var resp struct {
		ID      string `json:"id"`
		Expires string `json:"expires"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.ID == "" {
		return httpcore.Token{}, &httpcore.Error{Op: op, Err: fmt.Errorf("%w: no id in the token response", httpcore.ErrInvalidResponse)}
	}
	// An expiry that is missing, unreadable or already past (clock skew) falls back to the
	// configured lifetime; a token that dies earlier is replaced on its first 401.
	now := cfg.Now()
	exp := now.Add(cfg.SessionTokenTTL)
	if t, err := time.Parse(time.RFC3339Nano, resp.Expires); err == nil && t.After(now) {
		exp = t
	}
	return httpcore.Token{Value: resp.ID, Expires: exp}, nil
}
