package httpcore

import (
	"context"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
)

// Directory is one entry of the directory list (backend.Directory).
type Directory = backend.Directory

// Directories returns the directories, from the cache when it is younger than the TTL. The
// returned slice is shared: callers must not modify it.
func (c *Client) Directories(ctx context.Context) ([]Directory, error) { return c.dirs.List(ctx) }

// ResolveDirectory finds the directory a trigger means: an exact name first, then a directory whose
// domains include ref; both compared case-insensitively (backend.DirectoryCache.Resolve).
func (c *Client) ResolveDirectory(ctx context.Context, ref string) (Directory, error) {
	return c.dirs.Resolve(ctx, ref)
}
