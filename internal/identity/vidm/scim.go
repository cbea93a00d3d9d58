package vidm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
)

// The readiness check's lookup over vIDM's SCIM API (docs/vidm-api.md, Principal lookup): groups
// by displayName, users by userName, with `or` filters of at most scimBatch terms, paged.

const (
	pathSCIMGroups = "/SAAS/jersey/manager/api/scim/Groups"
	pathSCIMUsers  = "/SAAS/jersey/manager/api/scim/Users"
	// scimMaxTerms and scimFilterBytes bound one filter: as many names as fit in about 3 kB of
	// filter (about 4 kB once URL-encoded, half the 8 kB request line and headers vIDM's
	// Tomcat and common proxies accept), at most 50 (vIDM documents no limit; the simulator
	// refuses more, as a strict server might). A burst of 10,000 distinct groups then costs vIDM
	// about 200 requests instead of 500.
	scimMaxTerms    = 50
	scimFilterBytes = 3000
	// scimTermBytes is what a term costs in the filter beside its value: `displayName eq ""`
	// and ` or `.
	scimTermBytes = 24
	// scimCount is the page size asked for; vIDM may serve fewer (its default is 20).
	scimCount = 100
	// scimMaxPages stops a server whose totalResults never ends.
	scimMaxPages = 50
)

// LookupPrincipals looks the principals up over SCIM, groups and users separately; a batch that
// fails after the client's retries leaves only its own principals Unknown.
func (API) LookupPrincipals(ctx context.Context, c *httpcore.Client, dir backend.Directory, ps []backend.Principal) ([]backend.Found, error) {
	out := httpcore.UnknownAll(len(ps))
	var errs []error
	for _, kind := range []backend.PrincipalKind{backend.PrincipalGroup, backend.PrincipalUser} {
		for _, b := range batches(planLookups(dir, ps, kind)) {
			res, err := fetchBatch(ctx, c, kind, b)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, q := range b {
				f, err := q.resolve(res)
				if err != nil {
					errs = append(errs, err)
				}
				for _, i := range q.idxs {
					out[i] = f
				}
			}
		}
	}
	return out, errors.Join(errs...)
}

// lookup is one distinct principal: how it may appear in the store, and where it was asked.
type lookup struct {
	label   string // for errors: the principal as given
	wants   []want
	allowed []string // domains a match may be in; nil: any
	idxs    []int
}

// want is one form of the principal: value as userName or displayName, in domain when set.
type want struct{ value, domain string }

// planLookups de-duplicates the principals of kind (names and domains compared
// case-insensitively, as AD does) and works out their forms.
func planLookups(dir backend.Directory, ps []backend.Principal, kind backend.PrincipalKind) []*lookup {
	var out []*lookup
	byKey := map[string]*lookup{}
	for i, p := range ps {
		if p.Kind != kind {
			continue
		}
		key := strings.ToLower(p.Name + "\x00" + p.Domain)
		if l := byKey[key]; l != nil {
			l.idxs = append(l.idxs, i)
			continue
		}
		l := &lookup{label: p.Name, wants: []want{{value: p.Name}}, allowed: dir.Domains, idxs: []int{i}}
		if p.Domain != "" {
			l.label, l.allowed = p.Name+" in "+p.Domain, []string{p.Domain}
		} else if local, suffix, ok := cutUPN(p.Name); ok && kind == backend.PrincipalUser {
			// A UPN: vIDM's userName is usually the sAMAccountName with the domain beside it;
			// the whole UPN is asked for too, for directories that map userName to the UPN.
			l.wants = append(l.wants, want{value: local, domain: suffix})
		}
		byKey[key] = l
		out = append(out, l)
	}
	return out
}

// cutUPN splits name@domain at its last @.
func cutUPN(v string) (local, domain string, ok bool) {
	i := strings.LastIndexByte(v, '@')
	if i <= 0 || i == len(v)-1 {
		return v, "", false
	}
	return v[:i], v[i+1:], true
}

// batches packs lookups into requests of at most scimMaxTerms filter values and about
// scimFilterBytes of filter, lookups of the same allowed domains together (one request narrows
// to them).
func batches(ls []*lookup) [][]*lookup {
	var out [][]*lookup
	cur, n, size := map[string][]*lookup{}, map[string]int{}, map[string]int{}
	var order []string
	for _, l := range ls {
		k := strings.ToLower(strings.Join(l.allowed, "\x00"))
		if _, ok := cur[k]; !ok {
			order = append(order, k)
		}
		cost := 0
		for _, w := range l.wants {
			cost += len(w.value) + scimTermBytes
		}
		if len(cur[k]) > 0 && (n[k]+len(l.wants) > scimMaxTerms || size[k]+cost > scimFilterBytes) {
			out, cur[k], n[k], size[k] = append(out, cur[k]), nil, 0, 0
		}
		cur[k], n[k], size[k] = append(cur[k], l), n[k]+len(l.wants), size[k]+cost
	}
	for _, k := range order {
		if len(cur[k]) > 0 {
			out = append(out, cur[k])
		}
	}
	return out
}

// scimDomainAttr is the filter attribute of the domain in VMware's workspace extension (an
// assumption: SCIM 1.1's URN-qualified attribute; docs/vidm-api.md).
const scimDomainAttr = "urn:scim:schemas:extension:workspace:1.0:domain"

// scimFilter is the batch's names, narrowed to its allowed domains when byDomain and it has
// some: `(displayName eq "a" or …) and (…:domain eq "d" or …)`. Without the domains a name
// common to many domains (a shop with hundreds of directories) would page through every one.
func scimFilter(attr string, ls []*lookup, byDomain bool) (string, error) {
	names, err := scimTerms(attr, ls)
	if err != nil || !byDomain || len(ls[0].allowed) == 0 {
		return names, err
	}
	var doms []string
	for _, d := range ls[0].allowed {
		q, err := scimString(d)
		if err != nil {
			return "", err
		}
		doms = append(doms, scimDomainAttr+" eq "+q)
	}
	return "(" + names + ") and (" + strings.Join(doms, " or ") + ")", nil
}

// scimTerms joins the values as `attr eq "v"` terms with or; each value is a JSON string, so a
// quote or backslash in a name cannot end it early.
func scimTerms(attr string, ls []*lookup) (string, error) {
	var terms []string
	seen := map[string]bool{}
	for _, l := range ls {
		for _, w := range l.wants {
			if seen[strings.ToLower(w.value)] {
				continue
			}
			seen[strings.ToLower(w.value)] = true
			q, err := scimString(w.value)
			if err != nil {
				return "", err
			}
			terms = append(terms, attr+" eq "+q)
		}
	}
	return strings.Join(terms, " or "), nil
}

func scimString(v string) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // <, > and & are fine in a filter and clearer unescaped
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("%w: name %q: %w", httpcore.ErrInvalidArgument, v, err)
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// fetchBatch asks for the batch's values, narrowed to their domains, and reads every page of the
// answer. A server that refuses the domain condition (400) is asked again by name only: the
// domains are then told apart from the answer.
func fetchBatch(ctx context.Context, c *httpcore.Client, kind backend.PrincipalKind, b []*lookup) ([]scimResource, error) {
	res, err := fetchPages(ctx, c, kind, b, true)
	var he *httpcore.Error
	if errors.As(err, &he) && he.StatusCode == http.StatusBadRequest && len(b[0].allowed) > 0 {
		c.Logger().Debug("the SCIM API refused a domain condition; looking up by name only", "err", err)
		return fetchPages(ctx, c, kind, b, false)
	}
	return res, err
}

func fetchPages(ctx context.Context, c *httpcore.Client, kind backend.PrincipalKind, b []*lookup, byDomain bool) ([]scimResource, error) {
	const op = "look up principals"
	p, attr := pathSCIMGroups, "displayName"
	if kind == backend.PrincipalUser {
		p, attr = pathSCIMUsers, "userName"
	}
	filter, err := scimFilter(attr, b, byDomain)
	if err != nil {
		return nil, &httpcore.Error{Op: op, Err: err}
	}
	var all []scimResource
	for start, page := 1, 0; ; page++ {
		if page == scimMaxPages {
			return nil, httpcore.RetryableError(op, fmt.Errorf("%w: more than %d pages of SCIM results", httpcore.ErrInvalidResponse, scimMaxPages))
		}
		body, err := c.Do(ctx, httpcore.Call{Op: op, Method: http.MethodGet, Path: p,
			Query:  url.Values{"filter": {filter}, "startIndex": {strconv.Itoa(start)}, "count": {strconv.Itoa(scimCount)}},
			Accept: httpcore.MediaJSON, Bearer: true, Endpoint: httpcore.EndpointLookup})
		if err != nil {
			return nil, err
		}
		res, total, err := parseSCIMList(kind, body)
		if err != nil {
			return nil, err
		}
		all = append(all, res...)
		start += len(res)
		if len(res) == 0 || start > total {
			return all, nil
		}
	}
}

// scimResource is one group or user as the lookup reads it.
type scimResource struct {
	ID, Name, Domain string
}

// parseSCIMList reads a SCIM list answer: totalResults is required, Resources may be missing
// when empty. The domain is that of VMware's workspace extension
// (urn:scim:schemas:extension:workspace:1.0), else the suffix of a name@domain.
func parseSCIMList(kind backend.PrincipalKind, body []byte) ([]scimResource, int, error) {
	var v struct {
		TotalResults *int `json:"totalResults"`
		Resources    []struct {
			ID          string `json:"id"`
			DisplayName string `json:"displayName"`
			UserName    string `json:"userName"`
			Workspace   *struct {
				Domain string `json:"domain"`
			} `json:"urn:scim:schemas:extension:workspace:1.0"`
		} `json:"Resources"`
	}
	err := json.Unmarshal(body, &v)
	if err == nil && (v.TotalResults == nil || *v.TotalResults < 0) {
		err = errors.New("no totalResults")
	}
	if err != nil {
		return nil, 0, httpcore.RetryableError("look up principals",
			fmt.Errorf("%w: SCIM list: %s", httpcore.ErrInvalidResponse, httpcore.DescribeJSONError(err)))
	}
	out := make([]scimResource, 0, len(v.Resources))
	for _, r := range v.Resources {
		res := scimResource{ID: r.ID, Name: r.DisplayName}
		if kind == backend.PrincipalUser {
			res.Name = r.UserName
		}
		if r.Workspace != nil {
			res.Domain = r.Workspace.Domain
		}
		if _, suffix, ok := cutUPN(res.Name); ok && res.Domain == "" {
			res.Domain = suffix
		}
		out = append(out, res)
	}
	return out, *v.TotalResults, nil
}

// resolve answers the lookup from its batch's resources: one distinct match is Visible, none
// NotFound; several (an unqualified name in more than one domain) Unknown, since guessing would
// report the wrong principal ready.
func (l *lookup) resolve(res []scimResource) (backend.Found, error) {
	const op = "look up principals"
	ids := map[string]bool{}
	var id string
	for _, r := range res {
		if l.matches(r) && !ids[r.ID] {
			ids[r.ID], id = true, r.ID
		}
	}
	switch {
	case len(ids) == 0:
		return backend.Found{Visibility: backend.NotFound}, nil
	case len(ids) > 1:
		return backend.Found{Visibility: backend.Unknown}, &httpcore.Error{Op: op,
			Err: fmt.Errorf("%q: %w (%d matches): name its domain", l.label, httpcore.ErrAmbiguousPrincipal, len(ids))}
	}
	if err := httpcore.CheckPrincipalID(op, id); err != nil {
		return backend.Found{Visibility: backend.Unknown}, err
	}
	return backend.Found{Visibility: backend.Visible, ID: id}, nil
}

// matches reports whether r is one of the lookup's forms in an allowed domain. Names are compared
// case-insensitively; a group may be named name@domain by the store.
func (l *lookup) matches(r scimResource) bool {
	if l.allowed != nil && !containsFold(l.allowed, r.Domain) {
		return false
	}
	for _, w := range l.wants {
		nameOK := strings.EqualFold(r.Name, w.value) || (r.Domain != "" && strings.EqualFold(r.Name, w.value+"@"+r.Domain))
		if nameOK && (w.domain == "" || strings.EqualFold(r.Domain, w.domain)) {
			return true
		}
	}
	return false
}

func containsFold(list []string, v string) bool {
	for _, s := range list {
		if strings.EqualFold(s, v) {
			return true
		}
	}
	return false
}
