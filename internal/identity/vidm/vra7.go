package vidm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
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
	// vra7OneCallLimit is the page size of the single-request listing the api interface makes
	// (listDirectories): the largest page vRA serves, so that one request holds every store of
	// any ordinary tenant.
	vra7OneCallLimit = 500
)

// vra7API is vRA 7.4+'s identity service. Directory IDs are the stores' domains, which is what the
// sync paths take.
type vra7API struct{ tenant string }

// vra7Segment checks one path segment: escaping keeps "/" from changing the resource addressed,
// but "", "." and ".." would still do so.
func vra7Segment(what, v string) error {
	switch v {
	case "", ".", "..":
		return fmt.Errorf("%w: %s %q", ErrInvalidArgument, what, v)
	}
	return nil
}

// path returns the unescaped and escaped paths of the tenant's store list, optionally
// followed by one domain and its action.
func (a vra7API) path(domain, action string) (string, string, error) {
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
func (a vra7API) pageCall(page, limit int) (call, error) {
	p, raw, err := a.path("", "")
	if err != nil {
		return call{}, err
	}
	return call{op: "list directories", method: http.MethodGet, path: p, rawPath: raw,
		query:  url.Values{"page": {strconv.Itoa(page)}, "limit": {strconv.Itoa(limit)}},
		accept: mediaJSON, bearer: true, endpoint: EndpointDirectories}, nil
}

// listDirectories is one request for the first page at the largest size vRA serves.
func (a vra7API) listDirectories() call {
	cl, err := a.pageCall(1, vra7OneCallLimit)
	if err != nil {
		// No request is sent: a bearer call logs in first, and vra7Login refuses the tenants
		// that pageCall refuses (ErrInvalidArgument, permanent).
		return call{op: "list directories", bearer: true, endpoint: EndpointDirectories}
	}
	return cl
}

// parseDirectories reads the answer of listDirectories. A list with more pages is refused rather
// than cut short: a missing store would dead-letter its triggers as unknown. Client.vra7Directories
// reads every page.
func (vra7API) parseDirectories(body []byte) ([]Directory, error) {
	dirs, meta, err := parseVRA7Page(body)
	if err != nil {
		return nil, err
	}
	if meta.TotalPages > 1 {
		return nil, &Error{Op: "list directories", Err: fmt.Errorf(
			"%w: the tenant has %d directories, more than one page of %d", ErrInvalidResponse, meta.TotalElements, vra7OneCallLimit)}
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
func parseVRA7Page(body []byte) ([]Directory, vra7PageMeta, error) {
	var resp struct {
		Content  *[]vra7Store `json:"content"`
		Metadata vra7PageMeta `json:"metadata"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.Content == nil {
		why := "no content array"
		if err != nil {
			why = describeJSONError(err)
		}
		// Usually a proxy's page or a truncated body: worth another try.
		return nil, vra7PageMeta{}, &Error{Op: "list directories",
			Err: fmt.Errorf("%w: directory list: %s", ErrInvalidResponse, why), retryable: true}
	}
	out := make([]Directory, 0, len(*resp.Content))
	for _, s := range *resp.Content {
		if s.Domain != "" {
			out = append(out, Directory{ID: s.Domain, Name: s.Name, Type: s.Type, Domains: []string{s.Domain}})
		}
	}
	return out, resp.Metadata, nil
}

// vra7Directories reads every page of the store list, vra7PageLimit at a time, up to totalPages.
// The api interface lists with one call, so Client.fetchDirectories has to call this for
// KindVRA7 (as login calls vra7Login); until it does, listDirectories serves up to one page of
// vra7OneCallLimit.
func (c *Client) vra7Directories(ctx context.Context) ([]Directory, error) {
	a := vra7API{tenant: c.cfg.Tenant}
	var out []Directory
	seen := map[string]bool{}
	for page := 1; ; page++ {
		if page > vra7MaxPages {
			return nil, &Error{Op: "list directories", Err: fmt.Errorf(
				"%w: directory list still not at its last page after %d pages", ErrInvalidResponse, vra7MaxPages)}
		}
		cl, err := a.pageCall(page, vra7PageLimit)
		if err != nil {
			return nil, &Error{Op: "list directories", Err: err}
		}
		body, err := c.do(ctx, cl)
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
			return nil, &Error{Op: "list directories", Err: fmt.Errorf(
				"%w: page %d of the directory list repeats earlier pages", ErrInvalidResponse, page)}
		}
		if len(dirs) == 0 || page >= meta.TotalPages {
			return out, nil
		}
	}
}

// startSync ignores ignoreSafeguards: vRA 7's sync has no such setting (describe says so) and
// takes no body.
func (a vra7API) startSync(domain string, _ bool) (call, error) {
	p, raw, err := a.path(domain, "sync")
	if err != nil {
		return call{}, err
	}
	return call{op: "start sync", method: http.MethodPost, path: p, rawPath: raw, accept: mediaJSON,
		bearer: true, endpoint: EndpointSyncStart}, nil
}

func (a vra7API) syncStatus(domain string) (call, error) {
	p, raw, err := a.path(domain, "status")
	if err != nil {
		return call{}, err
	}
	return call{op: "sync status", method: http.MethodGet, path: p, rawPath: raw, accept: mediaJSON,
		bearer: true, endpoint: EndpointSyncStatus}, nil
}

// parseSyncState reads {"syncStatus":{"status","message"}}. Start and end dates, when present, are
// read too; vRA's guide does not show them (the simulator adds them), so nothing depends on them.
func (vra7API) parseSyncState(_ string, body []byte) (SyncState, error) { return ParseSyncState(body) }

// describe: vRA 7 has no safeguards, connectors or delegation to report.
func (vra7API) describe(d *backend.Description) {
	d.Safeguards, d.Connectors, d.Delegation = false, false, false
}

// vra7Login obtains a tenant-scoped bearer token: POST /identity/api/tokens with username,
// password and tenant; the answer's id is the token and expires its expiry.
func (c *Client) vra7Login(ctx context.Context) (token, error) {
	const op = "vra7 login"
	if err := vra7Segment("tenant", c.cfg.Tenant); err != nil {
		return token{}, &Error{Op: op, Err: err}
	}
	reqBody, err := json.Marshal(map[string]string{
		"username": c.cfg.Username, "password": c.cfg.Password, "tenant": c.cfg.Tenant,
	})
	if err != nil {
		return token{}, &Error{Op: op, Err: err}
	}
	body, err := c.do(ctx, call{op: op, method: http.MethodPost, path: pathVRA7Tokens,
		accept: mediaJSON, contentType: mediaJSON, body: reqBody, endpoint: EndpointLogin})
	if err != nil {
		return token{}, err
	}
	var resp struct {
		ID      string `json:"id"`
		Expires string `json:"expires"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.ID == "" {
		return token{}, &Error{Op: op, Err: fmt.Errorf("%w: no id in the token response", ErrInvalidResponse)}
	}
	// An expiry that is missing, unreadable or already past (clock skew) falls back to the
	// configured lifetime; a token that dies earlier is replaced on its first 401.
	now := c.cfg.Now()
	exp := now.Add(c.cfg.SessionTokenTTL)
	if t, err := time.Parse(time.RFC3339Nano, resp.Expires); err == nil && t.After(now) {
		exp = t
	}
	return token{value: resp.ID, expires: exp}, nil
}
