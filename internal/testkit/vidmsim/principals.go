package vidmsim

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// The simulated Active Directory behind each directory: which groups and users exist, whether
// they are in the directory's sync scope, and so whether the identity store (SCIM, vRA 7's
// principals) shows them. The readiness check of the worker asks exactly this after a sync.
//
// By default every group or user name asked for exists in AD since the server started and is in
// scope, so the demo and tests that do not care need no set-up. A directory's OutOfScope patterns,
// its configured Principals and AddPrincipal change that (docs/vidm-api.md, Principal lookup).

// PrincipalKind is what a principal is in AD.
type PrincipalKind string

const (
	KindGroup PrincipalKind = "group"
	KindUser  PrincipalKind = "user"
)

// ADPrincipal is a group or user configured in a directory's AD from the server's start.
type ADPrincipal struct {
	Kind PrincipalKind `json:"kind"`
	Name string        `json:"name"`
	// Domain is one of the directory's domains; "" means its first one.
	Domain string `json:"domain,omitempty"`
	// OutOfScope keeps it out of the directory's sync scope (also when a pattern matches its name).
	OutOfScope bool `json:"outOfScope,omitempty"`
}

// principalKey identifies a principal: names and domains are compared case-insensitively, as AD does.
type principalKey struct {
	dir, kind, domain, name string
}

func keyOf(dir string, kind PrincipalKind, domain, name string) principalKey {
	return principalKey{dir: dir, kind: string(kind), domain: strings.ToLower(domain), name: strings.ToLower(name)}
}

// nameKey is a name in a directory, whatever its domain: once one principal of that name is
// created explicitly, the default principal of that name no longer exists.
type nameKey struct{ dir, kind, name string }

// adPrincipal is one principal in AD.
type adPrincipal struct {
	kind    PrincipalKind
	name    string // as created
	domain  string // as the directory lists it
	created time.Time
	inScope bool
	dirIdx  int // the directory's position, for a stable answer order
}

// PrincipalID is the id the simulator's store gives the principal of a directory (domain as the
// directory lists it), for tests that check a lookup's answer.
func PrincipalID(directoryID string, kind PrincipalKind, domain, name string) string {
	return principalID(keyOf(directoryID, kind, domain, name))
}

// principalID is the store's id of a principal: a UUID derived from what identifies it, so that
// it is the same in every run and differs across directories and domains.
func principalID(k principalKey) string {
	h := sha256.Sum256([]byte(k.dir + "\x00" + k.kind + "\x00" + k.domain + "\x00" + k.name))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x50 // version 5 style: name-based
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func validKind(k PrincipalKind) bool { return k == KindGroup || k == KindUser }

// domainOf returns the directory's spelling of domain ("" → its first domain) and whether the
// directory has it. A directory without domains takes only "".
func domainOf(d Directory, domain string) (string, bool) {
	if domain == "" {
		if len(d.Domains) == 0 {
			return "", true
		}
		return d.Domains[0], true
	}
	for _, have := range d.Domains {
		if strings.EqualFold(have, domain) {
			return have, true
		}
	}
	return "", false
}

// validatePrincipals checks a directory's out-of-scope patterns and configured principals.
func validatePrincipals(d Directory) error {
	var errs []error
	for i, p := range d.OutOfScope {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			errs = append(errs, fmt.Errorf("outOfScope[%d]: %q is not a glob pattern", i, p))
		}
	}
	for i, p := range d.Principals {
		switch _, ok := domainOf(d, p.Domain); {
		case !validKind(p.Kind):
			errs = append(errs, fmt.Errorf("principals[%d]: kind %q is not group or user", i, p.Kind))
		case strings.TrimSpace(p.Name) == "":
			errs = append(errs, fmt.Errorf("principals[%d]: name must not be empty", i))
		case !ok:
			errs = append(errs, fmt.Errorf("principals[%d]: domain %q is not one of the directory's", i, p.Domain))
		}
	}
	return errors.Join(errs...)
}

// outOfScope reports whether a pattern of d matches name (case-insensitively).
func outOfScope(d Directory, name string) bool {
	return slices.ContainsFunc(d.OutOfScope, func(p string) bool {
		ok, _ := path.Match(strings.ToLower(p), strings.ToLower(name))
		return ok
	})
}

// addPrincipalLocked records p in the directory at index idx.
func (s *Server) addPrincipalLocked(idx int, kind PrincipalKind, name, domain string, inScope bool, at time.Time) {
	d := s.dirs[idx]
	domain, _ = domainOf(d, domain)
	s.principals[keyOf(d.ID, kind, domain, name)] = &adPrincipal{
		kind: kind, name: name, domain: domain, created: at, inScope: inScope, dirIdx: idx,
	}
	s.named[nameKey{d.ID, string(kind), strings.ToLower(name)}] = true
}

// AddPrincipal creates a group or user in the AD of a directory now (the server's clock), in or
// out of its sync scope. The store shows it only after a sync of the directory that started at
// or after this moment has completed, and never when it is out of scope. The default principal of
// that name (existing since the server's start) is replaced in every domain of the directory.
func (s *Server) AddPrincipal(directoryID string, kind PrincipalKind, name, domain string, inScope bool) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := slices.IndexFunc(s.dirs, func(d Directory) bool { return d.ID == directoryID })
	switch {
	case idx < 0:
		return fmt.Errorf("vidmsim: add principal: unknown directory %q", directoryID)
	case !validKind(kind):
		return fmt.Errorf("vidmsim: add principal: kind %q is not group or user", kind)
	case strings.TrimSpace(name) == "":
		return errors.New("vidmsim: add principal: name must not be empty")
	}
	if _, ok := domainOf(s.dirs[idx], domain); !ok {
		return fmt.Errorf("vidmsim: add principal: directory %q has no domain %q", directoryID, domain)
	}
	s.addPrincipalLocked(idx, kind, name, domain, inScope, now)
	return nil
}

// principalsLocked lists the principals of kind that a lookup of value finds in every directory,
// visible or not, in directory order. value is a name or name@domain.
func (s *Server) principalsLocked(kind PrincipalKind, value string) []*adPrincipal {
	var out []*adPrincipal
	local, suffix, qualified := cutDomain(value)
	for idx, d := range s.dirs {
		for _, p := range s.explicitLocked(d.ID, kind) {
			if strings.EqualFold(p.name, value) || (qualified && strings.EqualFold(p.name, local) && strings.EqualFold(p.domain, suffix)) {
				out = append(out, p)
			}
		}
		if p := s.implicitLocked(idx, kind, value); p != nil {
			out = append(out, p)
		}
	}
	return out
}

// explicitLocked returns the configured and added principals of a directory, in a stable order.
func (s *Server) explicitLocked(dirID string, kind PrincipalKind) []*adPrincipal {
	var out []*adPrincipal
	for k, p := range s.principals {
		if k.dir == dirID && p.kind == kind {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *adPrincipal) int {
		return strings.Compare(strings.ToLower(a.domain+"\x00"+a.name), strings.ToLower(b.domain+"\x00"+b.name))
	})
	return out
}

// implicitLocked is the default principal value names in directory idx: it exists since the
// server's start in the directory's first domain only (value may be name@ that domain; name@
// any other known domain has no default here), unless a principal of that name was created explicitly. Directories without
// domains (local ones) have no AD and so no default principals.
func (s *Server) implicitLocked(idx int, kind PrincipalKind, value string) *adPrincipal {
	d := s.dirs[idx]
	if len(d.Domains) == 0 {
		return nil
	}
	name, domain := value, d.Domains[0]
	if local, suffix, ok := cutDomain(value); ok {
		switch {
		case strings.EqualFold(suffix, domain):
			name = local
		case s.anyDomainLocked(suffix):
			return nil // name@ another domain: the default lives in the first domain only
		}
	}
	if s.named[nameKey{d.ID, string(kind), strings.ToLower(name)}] {
		return nil
	}
	return &adPrincipal{kind: kind, name: name, domain: domain, created: s.started, inScope: !outOfScope(d, name), dirIdx: idx}
}

// anyDomainLocked reports whether some directory has the domain.
func (s *Server) anyDomainLocked(domain string) bool {
	return slices.ContainsFunc(s.dirs, func(d Directory) bool {
		_, ok := domainOf(d, domain)
		return ok && domain != ""
	})
}

// cutDomain splits name@domain at its last @.
func cutDomain(v string) (local, domain string, ok bool) {
	i := strings.LastIndexByte(v, '@')
	if i <= 0 || i == len(v)-1 {
		return v, "", false
	}
	return v[:i], v[i+1:], true
}

// lastCompletedStartLocked is, per directory id, the start of its latest-started COMPLETED sync.
func (s *Server) lastCompletedStartLocked(now time.Time) map[string]time.Time {
	s.finalizeLocked(now)
	out := map[string]time.Time{}
	for _, run := range s.runs {
		if run.rec.Status == StatusCompleted && run.rec.StartedAt.After(out[run.rec.DirectoryID]) {
			out[run.rec.DirectoryID] = run.rec.StartedAt
		}
	}
	return out
}

// visible reports whether the store shows p: in scope, and synced by a completed sync that
// started at or after p was created.
func (p *adPrincipal) visible(dirID string, synced map[string]time.Time) bool {
	start, ok := synced[dirID]
	return p.inScope && ok && !start.Before(p.created)
}

// lookupLocked answers the values of one query: the visible principals, each once, in directory,
// domain and name order.
func (s *Server) lookupLocked(kind PrincipalKind, values []string, now time.Time) []foundPrincipal {
	synced := s.lastCompletedStartLocked(now)
	seen := map[string]bool{}
	var out []foundPrincipal
	for _, v := range values {
		for _, p := range s.principalsLocked(kind, v) {
			d := s.dirs[p.dirIdx]
			id := principalID(keyOf(d.ID, kind, p.domain, p.name))
			if seen[id] || !p.visible(d.ID, synced) {
				continue
			}
			seen[id] = true
			out = append(out, foundPrincipal{id: id, name: p.name, domain: p.domain, dirIdx: p.dirIdx, created: p.created})
		}
	}
	slices.SortStableFunc(out, func(a, b foundPrincipal) int {
		if a.dirIdx != b.dirIdx {
			return a.dirIdx - b.dirIdx
		}
		return strings.Compare(strings.ToLower(a.domain+"\x00"+a.name), strings.ToLower(b.domain+"\x00"+b.name))
	})
	return out
}

// foundPrincipal is a visible principal as the lookup endpoints report it.
type foundPrincipal struct {
	id, name, domain string
	dirIdx           int
	created          time.Time
}
