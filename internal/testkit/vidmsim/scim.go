package vidmsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// vIDM's SCIM API (SCIM 1.1 with VMware's workspace extension), the read side the readiness
// check uses: find groups by displayName and users by userName. vRA Cloud's connector serves it
// at the same paths.

// The SCIM endpoints, for faults and counters.
const (
	EndpointSCIMGroups Endpoint = "scim-groups" // GET /SAAS/jersey/manager/api/scim/Groups
	EndpointSCIMUsers  Endpoint = "scim-users"  // GET /SAAS/jersey/manager/api/scim/Users
)

const (
	pathSCIMGroups = "/SAAS/jersey/manager/api/scim/Groups"
	pathSCIMUsers  = "/SAAS/jersey/manager/api/scim/Users"
)

const (
	// defaultSCIMCount is vIDM's page size when count is not given (its API reference says 20).
	defaultSCIMCount = 20
	// defaultSCIMMaxCount caps count (chosen): a client must page beyond it.
	defaultSCIMMaxCount = 100
	// scimMaxTerms bounds the or-terms of one filter (chosen), so a client must batch.
	scimMaxTerms = 50
)

const (
	schemaListResponse = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	schemaError        = "urn:ietf:params:scim:api:messages:2.0:Error"
	schemaCore         = "urn:scim:schemas:core:1.0"
	// SchemaWorkspace is VMware's extension that carries a resource's domain.
	SchemaWorkspace = "urn:scim:schemas:extension:workspace:1.0"
)

// scimRoute resolves the SCIM paths; known paths with another method keep their endpoint.
func scimRoute(r *http.Request, p string) (route, bool) {
	var ep Endpoint
	switch p {
	case pathSCIMGroups:
		ep = EndpointSCIMGroups
	case pathSCIMUsers:
		ep = EndpointSCIMUsers
	default:
		return route{}, false
	}
	return route{endpoint: ep, allow: http.MethodGet, methodOK: r.Method == http.MethodGet}, true
}

// scimErrorBody is SCIM 2's error shape (chosen: vIDM's own SCIM errors are not documented).
type scimErrorBody struct {
	Schemas  []string `json:"schemas"`
	Status   string   `json:"status"`
	ScimType string   `json:"scimType,omitempty"`
	Detail   string   `json:"detail"`
}

func writeSCIMError(w http.ResponseWriter, status int, scimType, detail string) {
	writeJSON(w, status, mediaJSON, scimErrorBody{Schemas: []string{schemaError}, Status: strconv.Itoa(status),
		ScimType: scimType, Detail: detail})
}

type scimList struct {
	Schemas      []string       `json:"schemas"`
	TotalResults int            `json:"totalResults"`
	ItemsPerPage int            `json:"itemsPerPage"`
	StartIndex   int            `json:"startIndex"`
	Resources    []scimResource `json:"Resources"`
}

type scimResource struct {
	Schemas     []string      `json:"schemas"`
	ID          string        `json:"id"`
	DisplayName string        `json:"displayName,omitempty"`
	UserName    string        `json:"userName,omitempty"`
	Workspace   scimWorkspace `json:"urn:scim:schemas:extension:workspace:1.0"`
	Meta        scimMeta      `json:"meta"`
}

type scimWorkspace struct {
	Domain string `json:"domain"`
}

type scimMeta struct {
	Created      string `json:"created"`
	LastModified string `json:"lastModified"`
	Location     string `json:"location"`
	Version      string `json:"version"`
}

// scimQuery is a parsed SCIM list request.
type scimQuery struct {
	values, domains   []string
	startIndex, count int
}

// handleSCIM answers GET …/scim/Groups or …/scim/Users: token → Accept → query → the lookup.
func (s *Server) handleSCIM(w http.ResponseWriter, r *http.Request, ep Endpoint) {
	if !s.authorize(w, r) || !checkMedia(w, r, mediaJSON, false, "") {
		return
	}
	kind, attr, base := KindGroup, "displayName", pathSCIMGroups
	if ep == EndpointSCIMUsers {
		kind, attr, base = KindUser, "userName", pathSCIMUsers
	}
	q, err := parseSCIMQuery(r.URL.RawQuery, attr)
	if err != nil {
		writeSCIMError(w, http.StatusBadRequest, "invalidFilter", err.Error())
		return
	}
	now := s.now()
	s.mu.Lock()
	found := inDomains(s.lookupLocked(kind, q.values, now), q.domains)
	s.mu.Unlock()
	count := min(q.count, s.scimMax)
	from := min(q.startIndex-1, len(found))
	to := min(from+count, len(found))
	list := scimList{Schemas: []string{schemaListResponse}, TotalResults: len(found), StartIndex: q.startIndex,
		Resources: make([]scimResource, 0, to-from)}
	for _, f := range found[from:to] {
		list.Resources = append(list.Resources, scimResourceOf(kind, base, f))
	}
	list.ItemsPerPage = len(list.Resources)
	writeJSON(w, http.StatusOK, mediaJSON, list)
}

// inDomains keeps the principals in one of domains (all when there are none).
func inDomains(found []foundPrincipal, domains []string) []foundPrincipal {
	if len(domains) == 0 {
		return found
	}
	return slices.DeleteFunc(found, func(f foundPrincipal) bool {
		return !slices.ContainsFunc(domains, func(d string) bool { return strings.EqualFold(d, f.domain) })
	})
}

func scimResourceOf(kind PrincipalKind, base string, f foundPrincipal) scimResource {
	created := f.created.UTC().Format(time.RFC3339)
	res := scimResource{Schemas: []string{schemaCore, SchemaWorkspace}, ID: f.id,
		Workspace: scimWorkspace{Domain: f.domain},
		Meta:      scimMeta{Created: created, LastModified: created, Location: base + "/" + f.id, Version: `W/"1"`}}
	if kind == KindGroup {
		res.DisplayName = f.name
	} else {
		res.UserName = f.name
	}
	return res
}

// parseSCIMQuery reads filter (required), startIndex (from 1, default 1) and count (default 20),
// each at most once; any other parameter is refused, so that a client relying on one the
// simulator would ignore finds out.
func parseSCIMQuery(raw, attr string) (scimQuery, error) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return scimQuery{}, fmt.Errorf("malformed query: %w", err)
	}
	q := scimQuery{startIndex: 1, count: defaultSCIMCount}
	for k, vs := range vals {
		if len(vs) != 1 {
			return scimQuery{}, fmt.Errorf("query parameter %q must be given once", k)
		}
		switch k {
		case "filter":
			q.values, q.domains, err = parseSCIMFilter(vs[0], attr)
		case "startIndex":
			q.startIndex, err = parseSCIMInt(k, vs[0], 1)
		case "count":
			q.count, err = parseSCIMInt(k, vs[0], 0)
		default:
			err = fmt.Errorf("unsupported query parameter %q", k)
		}
		if err != nil {
			return scimQuery{}, err
		}
	}
	if q.values == nil {
		return scimQuery{}, errors.New("filter is required (the simulator does not list every resource)")
	}
	return q, nil
}

func parseSCIMInt(name, v string, least int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < least {
		return 0, fmt.Errorf("%s must be an integer of at least %d", name, least)
	}
	return n, nil
}

// SCIMDomainAttr is the filter attribute of VMware's workspace extension that holds a user's or
// group's domain (an assumption of docs/vidm-api.md: SCIM 1.1's URN-qualified attribute form).
const SCIMDomainAttr = SchemaWorkspace + ":domain"

// parseSCIMFilter reads `attr eq "value"` terms joined by ` or `, optionally narrowed to domains:
// `(attr eq "a" or …) and (urn:…:workspace:1.0:domain eq "d" or …)`. It returns the values and
// the domains (nil: any). The attribute names and operators are case-insensitive, as SCIM has
// them; a value is a JSON string, so `\"` and `\\` are its only way to hold a quote or a backslash.
func parseSCIMFilter(f, attr string) (values, domains []string, err error) {
	inner, grouped := strings.CutPrefix(f, "(")
	if !grouped {
		values, rest, err := parseSCIMTerms(f, attr)
		if err == nil && rest != "" {
			err = fmt.Errorf("expected ` or ` after a term, found %q", clipText(rest))
		}
		return values, nil, err
	}
	values, rest, err := parseSCIMTerms(inner, attr)
	if err != nil {
		return nil, nil, err
	}
	if rest == ")" {
		return values, nil, nil
	}
	after, ok := cutFold(rest, ") and (")
	if !ok {
		return nil, nil, fmt.Errorf("expected `) and (` after the names, found %q", clipText(rest))
	}
	domains, rest, err = parseSCIMTerms(after, SCIMDomainAttr)
	if err == nil && rest != ")" {
		err = fmt.Errorf("expected `)` after the domains, found %q", clipText(rest))
	}
	return values, domains, err
}

// parseSCIMTerms reads `attr eq "v"` terms joined by ` or ` at the start of f, and returns what
// follows them.
func parseSCIMTerms(f, attr string) (values []string, rest string, err error) {
	rest = f
	for {
		v, after, err := parseSCIMTerm(rest, attr)
		if err != nil {
			return nil, "", err
		}
		values = append(values, v)
		next, ok := cutFold(after, " or ")
		if !ok {
			return values, after, nil
		}
		if len(values) == scimMaxTerms {
			return nil, "", fmt.Errorf("a filter may join at most %d terms", scimMaxTerms)
		}
		rest = next
	}
}

// parseSCIMTerm reads one `attr eq "value"` at the start of f.
func parseSCIMTerm(f, attr string) (value, rest string, err error) {
	after, ok := cutFold(f, attr+" eq ")
	if !ok {
		return "", "", fmt.Errorf("expected `%s eq \"…\"`, found %q (only %s and eq are supported)", attr, clipText(f), attr)
	}
	if !strings.HasPrefix(after, `"`) {
		return "", "", fmt.Errorf("the value after eq must be a quoted string, found %q", clipText(after))
	}
	end := closingQuote(after)
	if end < 0 {
		return "", "", errors.New("unterminated string in filter")
	}
	if err := json.Unmarshal([]byte(after[:end+1]), &value); err != nil {
		return "", "", fmt.Errorf("bad string %s in filter: %w", clipText(after[:end+1]), err)
	}
	return value, after[end+1:], nil
}

// closingQuote finds the index of the quote ending the string that starts s, or -1.
func closingQuote(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// cutFold is strings.CutPrefix ignoring ASCII case.
func cutFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

func clipText(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
