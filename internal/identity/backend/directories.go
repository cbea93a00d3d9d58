package backend

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/singleflight"
)

// DirectoryCache reuses a backend's directory list for a TTL (concurrent refreshes share one
// request) and resolves trigger references against it through an index: every trigger is
// resolved, and shops have hundreds of directories.
type DirectoryCache struct {
	ttl, missRefresh time.Duration
	now              func() time.Time
	fetch            func(context.Context) ([]Directory, error)
	flight           singleflight.Group
	index            atomic.Pointer[directoryIndex]

	mu      sync.Mutex
	dirs    []Directory
	fetched time.Time
}

// NewDirectoryCache returns a cache over fetch. missRefresh is the least time between two
// refreshes caused by a reference that matched nothing, so that a flood of unknown names does not
// become a flood of list calls.
func NewDirectoryCache(ttl, missRefresh time.Duration, now func() time.Time, fetch func(context.Context) ([]Directory, error)) *DirectoryCache {
	return &DirectoryCache{ttl: ttl, missRefresh: missRefresh, now: now, fetch: fetch}
}

// List returns the directories, from the cache when it is younger than the TTL. An older list is
// still answered at once while a refresh runs in the background: a backend that hangs or fails
// must not hold up every trigger that names a directory it has already listed (and, with several
// tenants, the intake slots of the others). Only the first list, and a reference the list does
// not know (Resolve), wait for the backend. The returned slice is shared: callers must not modify it.
func (dc *DirectoryCache) List(ctx context.Context) ([]Directory, error) {
	dc.mu.Lock()
	dirs, fetched := dc.dirs, dc.fetched
	dc.mu.Unlock()
	if !fetched.IsZero() && dc.now().Sub(fetched) >= dc.ttl {
		dc.refresh(ctx)
		return dirs, nil
	}
	return dc.list(ctx, dc.ttl)
}

// refresh starts one fetch in the background (none while one runs); its answer replaces the list.
func (dc *DirectoryCache) refresh(ctx context.Context) {
	_ = dc.flight.DoChan("list", func() (any, error) { return dc.fetchAndStore(ctx) })
}

func (dc *DirectoryCache) fetchAndStore(ctx context.Context) (any, error) {
	d, err := dc.fetch(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}
	dc.Store(d)
	return d, nil
}

// Store replaces the cached list with one just fetched (a probe's answer).
func (dc *DirectoryCache) Store(dirs []Directory) {
	dc.mu.Lock()
	dc.dirs, dc.fetched = dirs, dc.now()
	dc.mu.Unlock()
}

func (dc *DirectoryCache) list(ctx context.Context, maxAge time.Duration) ([]Directory, error) {
	dc.mu.Lock()
	if !dc.fetched.IsZero() && dc.now().Sub(dc.fetched) < maxAge {
		d := dc.dirs
		dc.mu.Unlock()
		return d, nil
	}
	dc.mu.Unlock()
	ch := dc.flight.DoChan("list", func() (any, error) { return dc.fetchAndStore(ctx) })
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("list directories: %w", ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]Directory), nil
	}
}

// Resolve finds the directory a trigger means: an exact name first, then a directory whose domains
// include ref; both compared case-insensitively. A reference that matches nothing in the cached
// list refreshes it (at most once per missRefresh) before the answer is "not found". Failures are a
// *DirectoryError wrapping ErrDirectoryNotFound or ErrAmbiguousDirectory, or the list call's error.
func (dc *DirectoryCache) Resolve(ctx context.Context, ref string) (Directory, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return Directory{}, &DirectoryError{Query: ref, Err: ErrDirectoryNotFound}
	}
	dirs, err := dc.List(ctx)
	if err != nil {
		return Directory{}, err
	}
	d, err := dc.indexOf(dirs).match(dirs, ref)
	if !errors.Is(err, ErrDirectoryNotFound) {
		return d, err
	}
	if dirs, err = dc.list(ctx, dc.missRefresh); err != nil {
		return Directory{}, err
	}
	return MatchDirectory(dirs, ref)
}

type directoryIndex struct {
	src              []Directory
	byName, byDomain map[string][]Directory
}

// indexOf returns the index of dirs, building it when the cached list changed.
func (dc *DirectoryCache) indexOf(dirs []Directory) *directoryIndex {
	if ix := dc.index.Load(); ix != nil && len(ix.src) == len(dirs) && (len(dirs) == 0 || &ix.src[0] == &dirs[0]) {
		return ix
	}
	ix := &directoryIndex{src: dirs, byName: map[string][]Directory{}, byDomain: map[string][]Directory{}}
	for _, d := range dirs {
		ix.byName[strings.ToLower(d.Name)] = append(ix.byName[strings.ToLower(d.Name)], d)
		for _, dom := range d.Domains {
			ix.byDomain[strings.ToLower(dom)] = append(ix.byDomain[strings.ToLower(dom)], d)
		}
	}
	dc.index.Store(ix)
	return ix
}

// match resolves ref as MatchDirectory does. A reference the index does not know (different
// Unicode case folding, or no such directory) takes the full scan, so the rules stay the same.
func (ix *directoryIndex) match(dirs []Directory, ref string) (Directory, error) {
	key := strings.ToLower(ref)
	if m := ix.byName[key]; len(m) == 1 {
		return m[0], nil
	}
	if _, named := ix.byName[key]; !named {
		if m := ix.byDomain[key]; len(m) == 1 {
			return m[0], nil
		}
	}
	return MatchDirectory(dirs, ref)
}

// MatchDirectory applies the resolution rules to one list.
func MatchDirectory(dirs []Directory, ref string) (Directory, error) {
	byName := filter(dirs, func(d Directory) bool { return strings.EqualFold(d.Name, ref) })
	if len(byName) == 0 {
		byName = filter(dirs, func(d Directory) bool {
			return slices.ContainsFunc(d.Domains, func(dom string) bool { return strings.EqualFold(dom, ref) })
		})
	}
	switch len(byName) {
	case 0:
		return Directory{}, &DirectoryError{Query: Clip(ref, 256), Err: ErrDirectoryNotFound}
	case 1:
		return byName[0], nil
	}
	names := make([]string, len(byName))
	for i, d := range byName {
		names[i] = d.Name
	}
	return Directory{}, &DirectoryError{Query: Clip(ref, 256), Candidates: names, Err: ErrAmbiguousDirectory}
}

func filter(dirs []Directory, keep func(Directory) bool) []Directory {
	var out []Directory
	for _, d := range dirs {
		if keep(d) {
			out = append(out, d)
		}
	}
	return out
}

// Clip bounds a server-provided string and keeps it valid UTF-8 so it is safe in logs and events.
func Clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
