package vidmsim

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// vRA 7.4+'s identity service: a tenant-scoped login and the identity stores of a tenant, keyed by
// domain. Paths, bodies and codes follow the vRA 7 REST API guide; what the guide leaves open is
// marked as the simulator's assumption where it is decided.

// The vRA 7 endpoints, for faults and counters.
const (
	EndpointVRA7Login       Endpoint = "vra7-login"       // POST /identity/api/tokens
	EndpointVRA7Directories Endpoint = "vra7-directories" // GET  /identity/api/tenants/{tenant}/directories
	EndpointVRA7SyncStart   Endpoint = "vra7-sync-start"  // POST .../directories/{domain}/sync
	EndpointVRA7SyncStatus  Endpoint = "vra7-sync-status" // GET  .../directories/{domain}/status
)

const (
	pathVRA7Tokens  = "/identity/api/tokens"
	pathVRA7Tenants = "/identity/api/tenants/"
)

// Paging of the directory list: vRA's pageable lists default to 20 rows; the simulator refuses
// more than vra7MaxLimit per page so that a client cannot get away with one huge page.
const (
	vra7DefaultLimit = 20
	vra7MaxLimit     = 500
)

// vRA reports errors with numeric codes. 90135 is the authentication failure vRA answers; the
// other codes are the simulator's own (the guide does not list them), distinct so tests can tell
// the answers apart.
const (
	vra7CodeAuthFailed     = 90135
	vra7CodeBadRequest     = 90001
	vra7CodeTenantNotFound = 90002
	vra7CodeNotFound       = 90003
	vra7CodeSyncRunning    = 90004
)

// vra7Error is vRA's error body.
type vra7Error struct {
	Errors []vra7ErrorItem `json:"errors"`
}

type vra7ErrorItem struct {
	Code          int     `json:"code"`
	Source        *string `json:"source"`
	Message       string  `json:"message"`
	SystemMessage string  `json:"systemMessage"`
	MoreInfoURL   *string `json:"moreInfoUrl"`
}

func writeVRA7Error(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, mediaJSON, vra7Error{Errors: []vra7ErrorItem{{Code: code, Message: msg, SystemMessage: msg}}})
}

// classifyVRA7 resolves vRA 7's routes. Tenant and domain are one escaped path segment each; a
// known path with the wrong method keeps its endpoint so that faults and counters see it.
func (s *Server) classifyVRA7(r *http.Request) route {
	p := r.URL.EscapedPath()
	if p == pathVRA7Tokens {
		return route{endpoint: EndpointVRA7Login, allow: http.MethodPost, methodOK: r.Method == http.MethodPost,
			handle: s.handleVRA7Login}
	}
	rest, ok := strings.CutPrefix(p, pathVRA7Tenants)
	if !ok {
		return route{}
	}
	segs := strings.Split(rest, "/")
	for i, seg := range segs {
		v, err := url.PathUnescape(seg)
		if err != nil || v == "" || v == "." || v == ".." {
			return route{}
		}
		segs[i] = v
	}
	if rt, ok := s.vra7PrincipalRoute(r, segs); ok {
		return rt
	}
	switch {
	case len(segs) == 2 && segs[1] == "directories":
		tenant := segs[0]
		return route{endpoint: EndpointVRA7Directories, allow: http.MethodGet, methodOK: r.Method == http.MethodGet,
			handle: func(w http.ResponseWriter, r *http.Request) { s.handleVRA7Directories(w, r, tenant) }}
	case len(segs) == 4 && segs[1] == "directories" && segs[3] == "sync":
		tenant, domain := segs[0], segs[2]
		return route{endpoint: EndpointVRA7SyncStart, allow: http.MethodPost, methodOK: r.Method == http.MethodPost,
			handle: func(w http.ResponseWriter, r *http.Request) { s.handleVRA7SyncStart(w, r, tenant, domain) }}
	case len(segs) == 4 && segs[1] == "directories" && segs[3] == "status":
		tenant, domain := segs[0], segs[2]
		return route{endpoint: EndpointVRA7SyncStatus, allow: http.MethodGet, methodOK: r.Method == http.MethodGet,
			handle: func(w http.ResponseWriter, r *http.Request) { s.handleVRA7SyncStatus(w, r, tenant, domain) }}
	}
	return route{}
}

type vra7LoginRequest struct {
	Username *string `json:"username"`
	Password *string `json:"password"`
	Tenant   *string `json:"tenant"`
}

type vra7LoginResponse struct {
	Expires string `json:"expires"`
	ID      string `json:"id"`
	Tenant  string `json:"tenant"`
}

// vra7Time is how vRA writes instants: RFC 3339 in UTC with milliseconds.
const vra7Time = "2006-01-02T15:04:05.000Z07:00"

func (s *Server) handleVRA7Login(w http.ResponseWriter, r *http.Request) {
	if !checkMedia(w, r, mediaJSON, false, mediaJSON) {
		return
	}
	b, err := readBody(r)
	if err != nil {
		writeVRA7Error(w, http.StatusBadRequest, vra7CodeBadRequest, err.Error())
		return
	}
	var req vra7LoginRequest
	if err := decodeOneObject(b, &req, true); err != nil {
		writeVRA7Error(w, http.StatusBadRequest, vra7CodeBadRequest,
			"body must be {\"username\", \"password\", \"tenant\"}: "+err.Error())
		return
	}
	if req.Username == nil || req.Password == nil || req.Tenant == nil {
		writeVRA7Error(w, http.StatusBadRequest, vra7CodeBadRequest, "username, password and tenant are required")
		return
	}
	// One answer for an unknown tenant and a bad password, as vRA gives: the caller learns nothing
	// about which tenants or users exist. The password is never echoed.
	if *req.Tenant != s.tenant || !s.userOK(*req.Username, *req.Password) {
		writeVRA7Error(w, http.StatusUnauthorized, vra7CodeAuthFailed,
			fmt.Sprintf("Authentication failed for user %q in tenant %q.", *req.Username, *req.Tenant))
		return
	}
	// Read before issuing, so the reported expiry is never later than the one the token gets.
	expires := s.now().Add(s.tokenTTL)
	tok, _ := s.issueToken(*req.Username, "")
	writeJSON(w, http.StatusOK, mediaJSON, vra7LoginResponse{
		Expires: expires.UTC().Format(vra7Time), ID: tok, Tenant: s.tenant,
	})
}

// vra7Guard runs the checks every tenant-scoped call shares, in vRA's order: token, tenant,
// Accept. It reports false when it has answered.
func (s *Server) vra7Guard(w http.ResponseWriter, r *http.Request, tenant string) bool {
	if !s.authorize(w, r) {
		return false
	}
	if tenant != s.tenant {
		writeVRA7Error(w, http.StatusNotFound, vra7CodeTenantNotFound, fmt.Sprintf("Tenant %q not found.", tenant))
		return false
	}
	return checkMedia(w, r, mediaJSON, false, "")
}

// vra7Store is one identity store of the list.
type vra7Store struct {
	Type        string  `json:"@type"`
	Domain      string  `json:"domain"`
	Name        string  `json:"name"`
	Description *string `json:"description"`
	Alias       string  `json:"alias"`
	StoreType   string  `json:"type"`
	URL         string  `json:"url"`
	Password    *string `json:"password"` // always null, as vRA answers
}

type vra7Page struct {
	Links    []any        `json:"links"`
	Content  []vra7Store  `json:"content"`
	Metadata vra7Metadata `json:"metadata"`
}

type vra7Metadata struct {
	Size          int `json:"size"`
	TotalElements int `json:"totalElements"`
	TotalPages    int `json:"totalPages"`
	Number        int `json:"number"`
	Offset        int `json:"offset"`
}

// vra7StoresLocked lists the directories as vRA's identity stores. vRA keys a store by its domain,
// so a directory without one is not listed, and of directories sharing a first domain only the
// first (in configuration order) is.
func (s *Server) vra7StoresLocked() []vra7Store {
	var out []vra7Store
	seen := map[string]bool{}
	for _, d := range s.dirs {
		if len(d.Domains) == 0 || seen[d.Domains[0]] {
			continue
		}
		seen[d.Domains[0]] = true
		st := vra7Store{Type: "IdentityStore", Domain: d.Domains[0], Name: d.Name, StoreType: "LDAP",
			URL: "ldap://dc." + d.Domains[0] + ":389"}
		if strings.HasPrefix(d.Type, "ACTIVE_DIRECTORY") {
			st.StoreType = "AD"
		}
		if len(d.Domains) > 1 {
			st.Alias = d.Domains[1]
		}
		out = append(out, st)
	}
	return out
}

// vra7DirectoryLocked finds the directory vRA knows by domain (exact match: the client must send
// back the domain it was given).
func (s *Server) vra7DirectoryLocked(domain string) (Directory, bool) {
	for _, d := range s.dirs {
		if len(d.Domains) > 0 && d.Domains[0] == domain {
			return d, true
		}
	}
	return Directory{}, false
}

// vra7Paging reads page (1-based) and limit. Anything else in the query is refused: a client that
// sends parameters vRA would interpret differently should find out here.
func vra7Paging(raw string) (page, limit int, err error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed query: %w", err)
	}
	page, limit = 1, vra7DefaultLimit
	for k, vs := range q {
		if len(vs) != 1 {
			return 0, 0, fmt.Errorf("query parameter %q must be given once", k)
		}
		n, err := strconv.Atoi(vs[0])
		switch {
		case k != "page" && k != "limit":
			return 0, 0, fmt.Errorf("unsupported query parameter %q", k)
		case err != nil:
			return 0, 0, fmt.Errorf("%s must be an integer", k)
		case k == "page" && n < 1:
			return 0, 0, fmt.Errorf("page must be 1 or more (pages count from 1)")
		case k == "limit" && (n < 1 || n > vra7MaxLimit):
			return 0, 0, fmt.Errorf("limit must be between 1 and %d", vra7MaxLimit)
		case k == "page":
			page = n
		default:
			limit = n
		}
	}
	return page, limit, nil
}

func (s *Server) handleVRA7Directories(w http.ResponseWriter, r *http.Request, tenant string) {
	if !s.vra7Guard(w, r, tenant) {
		return
	}
	page, limit, err := vra7Paging(r.URL.RawQuery)
	if err != nil {
		writeVRA7Error(w, http.StatusBadRequest, vra7CodeBadRequest, err.Error())
		return
	}
	s.mu.Lock()
	all := s.vra7StoresLocked()
	s.mu.Unlock()
	// A page past the end is empty, not an error, as with vRA's other pageable lists.
	from := min((page-1)*limit, len(all))
	to := min(from+limit, len(all))
	writeJSON(w, http.StatusOK, mediaJSON, vra7Page{
		Links:   []any{},
		Content: append([]vra7Store{}, all[from:to]...),
		Metadata: vra7Metadata{Size: limit, TotalElements: len(all), TotalPages: (len(all) + limit - 1) / limit,
			Number: page, Offset: (page - 1) * limit},
	})
}

func writeVRA7DomainNotFound(w http.ResponseWriter, domain, tenant string) {
	// The message vRA's guide quotes for this case.
	writeVRA7Error(w, http.StatusNotFound, vra7CodeNotFound,
		fmt.Sprintf("Cannot find a directory with domain name '%s' in tenant '%s'!", domain, tenant))
}

func (s *Server) handleVRA7SyncStart(w http.ResponseWriter, r *http.Request, tenant, domain string) {
	if !s.vra7Guard(w, r, tenant) {
		return
	}
	// vRA 7's sync takes no body (there is no ignoreSafeguards). One sent anyway is refused, so a
	// client cannot believe a flag it sent had an effect.
	b, err := readBody(r)
	if err != nil {
		writeVRA7Error(w, http.StatusBadRequest, vra7CodeBadRequest, err.Error())
		return
	}
	if len(bytes.TrimSpace(b)) != 0 {
		writeVRA7Error(w, http.StatusBadRequest, vra7CodeBadRequest, "the sync request takes no body")
		return
	}
	s.mu.Lock()
	d, ok := s.vra7DirectoryLocked(domain)
	s.mu.Unlock()
	if !ok {
		writeVRA7DomainNotFound(w, domain, tenant)
		return
	}
	run, status, conflict := s.startFromAPI(d.ID, s.now(), SyncRecord{
		RequestID:   r.Header.Get("X-Request-Id"),
		Traceparent: r.Header.Get("Traceparent"),
	})
	switch status {
	case http.StatusNotFound: // removed between the lookup and the start
		writeVRA7DomainNotFound(w, domain, tenant)
		return
	case http.StatusConflict:
		writeVRA7Error(w, http.StatusConflict, vra7CodeSyncRunning, conflict)
		return
	}
	s.notifyStart(run)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// vra7SyncStatus is the status answer. The guide shows only status and message (null when there
// is none); the epoch-millisecond dates are the simulator's assumption, which clients must not
// depend on.
type vra7SyncStatus struct {
	SyncStatus vra7SyncStatusBody `json:"syncStatus"`
}

type vra7SyncStatusBody struct {
	Status        string  `json:"status"`
	Message       *string `json:"message"`
	SyncStartDate *int64  `json:"syncStartDate,omitempty"`
	SyncEndDate   *int64  `json:"syncEndDate,omitempty"`
}

func (s *Server) handleVRA7SyncStatus(w http.ResponseWriter, r *http.Request, tenant, domain string) {
	if !s.vra7Guard(w, r, tenant) {
		return
	}
	now := s.now()
	s.mu.Lock()
	d, ok := s.vra7DirectoryLocked(domain)
	s.finalizeLocked(now)
	var rec *SyncRecord
	if ok {
		if l := s.latest[d.ID]; l != nil {
			cp := l.rec
			rec = &cp
		}
	}
	s.mu.Unlock()
	if !ok {
		writeVRA7DomainNotFound(w, domain, tenant)
		return
	}
	writeJSON(w, http.StatusOK, mediaJSON, vra7SyncStatus{SyncStatus: vra7StatusOf(rec)})
}

// vra7StatusOf is the status of the latest run; UNDEFINED when none ever ran.
func vra7StatusOf(rec *SyncRecord) vra7SyncStatusBody {
	if rec == nil {
		return vra7SyncStatusBody{Status: StatusUndefined}
	}
	body := vra7SyncStatusBody{Status: rec.Status, SyncStartDate: epochMillis(rec.StartedAt)}
	if rec.Message != "" {
		body.Message = &rec.Message
	}
	if !rec.FinishedAt.IsZero() {
		body.SyncEndDate = epochMillis(rec.FinishedAt)
	}
	return body
}

func epochMillis(t time.Time) *int64 {
	ms := t.UnixMilli()
	return &ms
}
