package vidm

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

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

// parseDirectories reads the list body; entries without an id are skipped, since nothing can be
// synced without one.
func parseDirectories(body []byte) ([]Directory, error) {
	var resp struct {
		Items *[]directoryItem `json:"items"`
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
			out = append(out, d.directory())
		}
	}
	return out, nil
}

// directoryItem is one entry of vIDM's directory list as it is sent.
type directoryItem struct {
	ID          string   `json:"directoryId"`
	Name        string   `json:"name"`
	Type        string   `json:"type"`
	Domains     []string `json:"domains,omitempty"`
	SyncEnabled bool     `json:"syncConfigurationEnabled,omitempty"`
	// The sync connectors in failover order (vIDM 19.03+). Their shape is not publicly
	// documented, so both are kept raw and read tolerantly: a shape this client does not know
	// loses the connectors, never the directory.
	SyncConnectors json.RawMessage `json:"syncConnectors,omitempty"`
	Connectors     json.RawMessage `json:"connectors,omitempty"`
}

// maxConnectors bounds the connectors kept per directory.
const maxConnectors = 32

func (d directoryItem) directory() Directory {
	dir := Directory{ID: d.ID, Name: d.Name, Type: d.Type, Domains: d.Domains, SyncEnabled: d.SyncEnabled}
	for _, raw := range []json.RawMessage{d.SyncConnectors, d.Connectors} {
		if dir.Connectors = parseConnectors(raw); dir.Connectors != nil {
			break
		}
	}
	return dir
}

// parseConnectors reads a connector list, in order: an array of names, or of objects naming the
// connector under name, host, hostname or connectorId (mixed arrays too). Unreadable items and
// repeats are skipped; nil when nothing usable is there.
func parseConnectors(raw json.RawMessage) []string {
	var items []json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &items) != nil {
		return nil
	}
	var out []string
	for _, item := range items {
		name := clip(connectorName(item), maxConnectorLen)
		if name == "" || slices.Contains(out, name) {
			continue
		}
		if out = append(out, name); len(out) == maxConnectors {
			break
		}
	}
	return out
}
