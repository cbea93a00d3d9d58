package httpcore

import (
	"context"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
)

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
