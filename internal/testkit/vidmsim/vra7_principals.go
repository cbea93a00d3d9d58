package vidmsim

import (
	"fmt"
	"net/http"
	"strings"
)

// vRA 7's principal reads, one principal per request: GET …/groups/{name@domain} and
// GET …/principals/{name@domain} (public scripts call them so; the bodies below keep the fields
// those scripts read). vRA 7 has no search that takes several names, so there is no batching.

// The vRA 7 principal endpoints, for faults and counters.
const (
	EndpointVRA7Group     Endpoint = "vra7-group"     // GET /identity/api/tenants/{tenant}/groups/{name@domain}
	EndpointVRA7Principal Endpoint = "vra7-principal" // GET /identity/api/tenants/{tenant}/principals/{name@domain}
)

// vra7CodePrincipalNotFound is the simulator's own code for an unknown principal (chosen).
const vra7CodePrincipalNotFound = 90005

type vra7PrincipalID struct {
	Domain string `json:"domain"`
	Name   string `json:"name"`
}

type vra7Group struct {
	Type        string          `json:"@type"`
	GroupType   string          `json:"groupType"`
	Name        string          `json:"name"`
	Domain      string          `json:"domain"`
	Description *string         `json:"description"`
	PrincipalID vra7PrincipalID `json:"principalId"`
}

type vra7User struct {
	Type         string          `json:"@type"`
	Name         string          `json:"name"`
	FirstName    string          `json:"firstName"`
	LastName     string          `json:"lastName"`
	EmailAddress string          `json:"emailAddress"`
	Description  *string         `json:"description"`
	Locked       bool            `json:"locked"`
	Disabled     bool            `json:"disabled"`
	PrincipalID  vra7PrincipalID `json:"principalId"`
	TenantName   string          `json:"tenantName"`
}

// vra7PrincipalRoute resolves …/groups/{id} and …/principals/{id} (segments already unescaped).
func (s *Server) vra7PrincipalRoute(r *http.Request, segs []string) (route, bool) {
	if len(segs) != 3 {
		return route{}, false
	}
	kind, ep := KindGroup, EndpointVRA7Group
	switch segs[1] {
	case "groups":
	case "principals":
		kind, ep = KindUser, EndpointVRA7Principal
	default:
		return route{}, false
	}
	tenant, id := segs[0], segs[2]
	return route{endpoint: ep, allow: http.MethodGet, methodOK: r.Method == http.MethodGet,
		handle: func(w http.ResponseWriter, r *http.Request) { s.handleVRA7Principal(w, r, tenant, kind, id) }}, true
}

// handleVRA7Principal answers one principal: token → tenant → Accept → id → the lookup. A
// principal the store does not show is 404, as vRA answers an unknown id.
func (s *Server) handleVRA7Principal(w http.ResponseWriter, r *http.Request, tenant string, kind PrincipalKind, id string) {
	if !s.vra7Guard(w, r, tenant) {
		return
	}
	if r.URL.RawQuery != "" {
		writeVRA7Error(w, http.StatusBadRequest, vra7CodeBadRequest, "the principal read takes no query")
		return
	}
	_, domain, ok := cutDomain(id)
	if !ok {
		writeVRA7Error(w, http.StatusBadRequest, vra7CodeBadRequest, fmt.Sprintf("principal id %q must be name@domain", id))
		return
	}
	now := s.now()
	s.mu.Lock()
	var hit *foundPrincipal
	for _, f := range s.lookupLocked(kind, []string{id}, now) {
		if strings.EqualFold(f.domain, domain) {
			hit = &f // the first directory holding the domain, as vRA keys its stores by domain
			break
		}
	}
	s.mu.Unlock()
	if hit == nil {
		writeVRA7Error(w, http.StatusNotFound, vra7CodePrincipalNotFound,
			fmt.Sprintf("Principal '%s' not found in tenant '%s'.", id, tenant))
		return
	}
	pid := vra7PrincipalID{Domain: hit.domain, Name: hit.name}
	if kind == KindGroup {
		writeJSON(w, http.StatusOK, mediaJSON, vra7Group{Type: "Group", GroupType: "SSO", Name: hit.name,
			Domain: hit.domain, PrincipalID: pid})
		return
	}
	writeJSON(w, http.StatusOK, mediaJSON, vra7User{Type: "User", Name: hit.name, FirstName: hit.name,
		EmailAddress: hit.name + "@" + hit.domain, PrincipalID: pid, TenantName: s.tenant})
}
