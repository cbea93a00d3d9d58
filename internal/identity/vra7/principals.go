package vra7

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
)

// vRA 7 reads one principal per request by its id, name@domain: GET …/groups/{id} for a group,
// GET …/principals/{id} for a user. It has no search taking several names, so there is no
// batching: one request per distinct principal and candidate domain (docs/vidm-api.md).

const lookupOp = "look up principals"

// LookupPrincipals reads each distinct principal; a failed read leaves only that principal Unknown.
func (a API) LookupPrincipals(ctx context.Context, c *httpcore.Client, dir backend.Directory, ps []backend.Principal) ([]backend.Found, error) {
	out := httpcore.UnknownAll(len(ps))
	done := map[string]int{} // key → index answered first
	var errs []error
	for i, p := range ps {
		key := strings.ToLower(string(p.Kind) + "\x00" + p.Name + "\x00" + p.Domain)
		if j, ok := done[key]; ok {
			out[i] = out[j]
			continue
		}
		done[key] = i
		f, err := a.lookupOne(ctx, c, p, candidateIDs(dir, p))
		if err != nil {
			errs = append(errs, err)
		}
		out[i] = f
	}
	return out, errors.Join(errs...)
}

// candidateIDs are the ids the principal may have: the name as given when it is already
// name@domain, else name@ the trigger's domain, else name@ each of the directory's domains (a
// vRA 7 directory is keyed by its domain, so it has at least its id).
func candidateIDs(dir backend.Directory, p backend.Principal) []string {
	switch {
	case strings.Contains(p.Name, "@"):
		return []string{p.Name}
	case p.Domain != "":
		return []string{p.Name + "@" + p.Domain}
	}
	domains := dir.Domains
	if len(domains) == 0 {
		domains = []string{dir.ID}
	}
	ids := make([]string, 0, len(domains))
	for _, d := range domains {
		ids = append(ids, p.Name+"@"+d)
	}
	return ids
}

// lookupOne reads the candidates: one found is Visible, none NotFound, several Unknown (the name
// exists in more than one domain and the trigger named none).
func (a API) lookupOne(ctx context.Context, c *httpcore.Client, p backend.Principal, ids []string) (backend.Found, error) {
	unknown := backend.Found{Visibility: backend.Unknown}
	var found []string
	for _, id := range ids {
		got, ok, err := a.readPrincipal(ctx, c, p.Kind, id)
		if err != nil {
			return unknown, err
		}
		if ok {
			found = append(found, got)
		}
	}
	switch len(found) {
	case 0:
		return backend.Found{Visibility: backend.NotFound}, nil
	case 1:
		if err := httpcore.CheckPrincipalID(lookupOp, found[0]); err != nil {
			return unknown, err
		}
		return backend.Found{Visibility: backend.Visible, ID: found[0]}, nil
	}
	return unknown, &httpcore.Error{Op: lookupOp,
		Err: fmt.Errorf("%q: %w (%s)", p.Name, httpcore.ErrAmbiguousPrincipal, strings.Join(found, ", "))}
}

// readPrincipal GETs one principal; a 404 is "not there", not a failure.
func (a API) readPrincipal(ctx context.Context, c *httpcore.Client, kind backend.PrincipalKind, id string) (string, bool, error) {
	cl, err := a.principalCall(kind, id)
	if err != nil {
		return "", false, &httpcore.Error{Op: lookupOp, Err: err}
	}
	body, err := c.Do(ctx, cl)
	var e *httpcore.Error
	if errors.As(err, &e) && e.StatusCode == http.StatusNotFound {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	got, err := parsePrincipal(body)
	return got, err == nil, err
}

func (a API) principalCall(kind backend.PrincipalKind, id string) (httpcore.Call, error) {
	if err := vra7Segment("tenant", a.tenant); err != nil {
		return httpcore.Call{}, err
	}
	if err := vra7Segment("principal id", id); err != nil {
		return httpcore.Call{}, err
	}
	coll := "groups"
	if kind == backend.PrincipalUser {
		coll = "principals"
	}
	p := pathVRA7Tenants + a.tenant + "/" + coll + "/" + id
	raw := pathVRA7Tenants + url.PathEscape(a.tenant) + "/" + coll + "/" + url.PathEscape(id)
	return httpcore.Call{Op: lookupOp, Method: http.MethodGet, Path: p, RawPath: raw,
		Accept: httpcore.MediaJSON, Bearer: true, Endpoint: httpcore.EndpointLookup}, nil
}

// parsePrincipal reads a group or user and returns its id, principalId's name@domain.
func parsePrincipal(body []byte) (string, error) {
	var v struct {
		PrincipalID *struct {
			Name   string `json:"name"`
			Domain string `json:"domain"`
		} `json:"principalId"`
	}
	err := json.Unmarshal(body, &v)
	if err == nil && (v.PrincipalID == nil || v.PrincipalID.Name == "" || v.PrincipalID.Domain == "") {
		err = errors.New("no principalId with a name and a domain")
	}
	if err != nil {
		return "", httpcore.RetryableError(lookupOp, fmt.Errorf("%w: principal: %s", httpcore.ErrInvalidResponse, httpcore.DescribeJSONError(err)))
	}
	return v.PrincipalID.Name + "@" + v.PrincipalID.Domain, nil
}
