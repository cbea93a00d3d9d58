package vidm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Directory is one entry of vIDM's directory list.
type Directory struct {
	ID          string   `json:"directoryId"`
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Domains     []string `json:"domains,omitempty"`
	SyncEnabled bool     `json:"syncConfigurationEnabled,omitempty"`
}

// directoryCache reuses the directory list for a TTL; concurrent refreshes share one request.
type directoryCache struct {
	mu          sync.Mutex
	dirs        []Directory
	fetched     time.Time
	ttl         time.Duration
	missRefresh time.Duration
	now         func() time.Time
	flight      singleflight.Group
	fetch       func(context.Context) ([]Directory, error)
}

func newDirectoryCache(cfg Config, fetch func(context.Context) ([]Directory, error)) *directoryCache {
	return &directoryCache{ttl: cfg.DirectoryCacheTTL, missRefresh: cfg.DirectoryMissRefresh, now: cfg.Now, fetch: fetch}
}

// list returns the cached list, refreshing it when older than maxAge.
func (dc *directoryCache) list(ctx context.Context, maxAge time.Duration) ([]Directory, error) {
	dc.mu.Lock()
	if !dc.fetched.IsZero() && dc.now().Sub(dc.fetched) < maxAge {
		d := dc.dirs
		dc.mu.Unlock()
		return d, nil
	}
	dc.mu.Unlock()
	ch := dc.flight.DoChan("list", func() (any, error) {
		d, err := dc.fetch(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		dc.mu.Lock()
		dc.dirs, dc.fetched = d, dc.now()
		dc.mu.Unlock()
		return d, nil
	})
	select {
	case <-ctx.Done():
		return nil, &Error{Op: "list directories", Err: ctx.Err()}
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]Directory), nil
	}
}

// Directories returns vIDM's directories, from the cache when it is younger than the TTL. The
// returned slice is shared: callers must not modify it.
func (c *Client) Directories(ctx context.Context) ([]Directory, error) {
	return c.dirs.list(ctx, c.cfg.DirectoryCacheTTL)
}

// ResolveDirectory finds the directory a trigger means: an exact name first, then a directory whose
// domains include ref; both compared case-insensitively. A reference that matches nothing in the
// cached list refreshes it (at most once per DirectoryMissRefresh) before the answer is "not found".
// Failures are a *DirectoryError wrapping ErrDirectoryNotFound or ErrAmbiguousDirectory, or the
// error of the list call.
func (c *Client) ResolveDirectory(ctx context.Context, ref string) (Directory, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return Directory{}, &DirectoryError{Query: ref, Err: ErrDirectoryNotFound}
	}
	dirs, err := c.Directories(ctx)
	if err != nil {
		return Directory{}, err
	}
	d, err := c.indexOf(dirs).match(dirs, ref)
	if !errors.Is(err, ErrDirectoryNotFound) {
		return d, err
	}
	if dirs, err = c.dirs.list(ctx, c.cfg.DirectoryMissRefresh); err != nil {
		return Directory{}, err
	}
	return matchDirectory(dirs, ref)
}

// directoryIndex finds directories by name and by domain in one cached list without scanning it:
// every trigger is resolved, and shops have hundreds of directories.
type directoryIndex struct {
	src              []Directory
	byName, byDomain map[string][]Directory
}

// indexOf returns the index of dirs, building it when the cached list changed.
func (c *Client) indexOf(dirs []Directory) *directoryIndex {
	if ix := c.index.Load(); ix != nil && len(ix.src) == len(dirs) && (len(dirs) == 0 || &ix.src[0] == &dirs[0]) {
		return ix
	}
	ix := &directoryIndex{src: dirs, byName: map[string][]Directory{}, byDomain: map[string][]Directory{}}
	for _, d := range dirs {
		ix.byName[strings.ToLower(d.Name)] = append(ix.byName[strings.ToLower(d.Name)], d)
		for _, dom := range d.Domains {
			ix.byDomain[strings.ToLower(dom)] = append(ix.byDomain[strings.ToLower(dom)], d)
		}
	}
	c.index.Store(ix)
	return ix
}

// match resolves ref as matchDirectory does. A reference the index does not know (different
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
	return matchDirectory(dirs, ref)
}

// matchDirectory applies the resolution rules to one list.
func matchDirectory(dirs []Directory, ref string) (Directory, error) {
	byName := filter(dirs, func(d Directory) bool { return strings.EqualFold(d.Name, ref) })
	if len(byName) == 0 {
		byName = filter(dirs, func(d Directory) bool {
			return slices.ContainsFunc(d.Domains, func(dom string) bool { return strings.EqualFold(dom, ref) })
		})
	}
	switch len(byName) {
	case 0:
		return Directory{}, &DirectoryError{Query: clip(ref, 256), Err: ErrDirectoryNotFound}
	case 1:
		return byName[0], nil
	}
	names := make([]string, len(byName))
	for i, d := range byName {
		names[i] = d.Name
	}
	return Directory{}, &DirectoryError{Query: clip(ref, 256), Candidates: names, Err: ErrAmbiguousDirectory}
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

// fetchDirectories calls the list endpoint.
func (c *Client) fetchDirectories(ctx context.Context) ([]Directory, error) {
	body, err := c.do(ctx, call{
		op:     "list directories",
		method: http.MethodGet,
		path:   pathDirectories,
		accept: mediaDirectoryList,
		bearer: true,
	})
	if err != nil {
		return nil, err
	}
	return parseDirectories(body)
}

// parseDirectories reads the list body; entries without an id are skipped, since nothing can be
// synced without one.
func parseDirectories(body []byte) ([]Directory, error) {
	var resp struct {
		Items *[]Directory `json:"items"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.Items == nil {
		why := "no items array"
		if err != nil {
			why = describeJSONError(err)
		}
		return nil, &Error{Op: "list directories", Err: fmt.Errorf("%w: directory list: %s", ErrInvalidResponse, why), retryable: true}
	}
	out := make([]Directory, 0, len(*resp.Items))
	for _, d := range *resp.Items {
		if d.ID != "" {
			out = append(out, d)
		}
	}
	return out, nil
}
