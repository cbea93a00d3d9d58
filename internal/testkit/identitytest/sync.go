package identitytest

import (
	"context"
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
)

// CompleteSync starts a sync of the directory through the client and waits until it completed,
// so that what the simulator's AD holds in scope becomes visible to lookups.
func CompleteSync(t *testing.T, c *httpcore.Client, directoryID string) {
	t.Helper()
	ctx := context.Background()
	if err := c.StartSync(ctx, directoryID, false); err != nil {
		t.Fatalf("start sync of %s: %v", directoryID, err)
	}
	st, err := c.WaitForSync(ctx, directoryID, FastWait())
	if err != nil || st.Status != backend.StatusCompleted {
		t.Fatalf("sync of %s: %+v, %v", directoryID, st, err)
	}
}
