package vidm

import (
	"context"
	"fmt"
	"net/url"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
)

// syncPath returns the unescaped and escaped paths of a directory's sync resource. The id is one
// escaped segment, so no id can change which resource is addressed.
func syncPath(directoryID string) (string, string, error) {
	switch directoryID {
	case "", ".", "..":
		return "", "", fmt.Errorf("%w: directory id %q", ErrInvalidArgument, directoryID)
	}
	const suffix = "/syncprofile/sync"
	return pathDirectories + "/" + directoryID + suffix,
		pathDirectories + "/" + url.PathEscape(directoryID) + suffix, nil
}

// WaitOptions tunes WaitForSync.
type WaitOptions = backend.WaitOptions

// WaitForSync polls a directory's sync until it is COMPLETED or FAILED (see backend.Wait), with
// the client's logger and clock unless opts names others.
func (c *Client) WaitForSync(ctx context.Context, directoryID string, opts WaitOptions) (SyncState, error) {
	if opts.Logger == nil {
		opts.Logger = c.log
	}
	if opts.Now == nil {
		opts.Now = c.cfg.Now
	}
	return backend.Wait(ctx, c, directoryID, opts)
}
