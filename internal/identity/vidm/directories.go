package vidm

import (
	"encoding/json"
	"fmt"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
)

// parseDirectories reads the list body; entries without an id are skipped, since nothing can be
// synced without one.
func parseDirectories(body []byte) ([]httpcore.Directory, error) {
	var resp struct {
		Items *[]directoryItem `json:"items"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.Items == nil {
		why := "no items array"
		if err != nil {
			why = httpcore.DescribeJSONError(err)
		}
		return nil, httpcore.RetryableError("list directories", fmt.Errorf("%w: directory list: %s", httpcore.ErrInvalidResponse, why))
	}
	out := make([]httpcore.Directory, 0, len(*resp.Items))
	for _, d := range *resp.Items {
		if d.ID != "" {
			out = append(out, d.directory())
		}
	}
	return out, nil
}

// directoryItem is one entry of vIDM's directory list as it is sent.
type directoryItem struct {
	ID      string   `json:"directoryId"`
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Domains []string `json:"domains,omitempty"`
	// Kept raw: a boolean in public usage, but a string "false" must not cost the whole list.
	SyncEnabled json.RawMessage `json:"syncConfigurationEnabled,omitempty"`
	// The sync connectors in failover order (vIDM 19.03+). Their shape is not publicly
	// documented, so both are kept raw and read tolerantly: a shape this client does not know
	// loses the connectors, never the directory.
	SyncConnectors json.RawMessage `json:"syncConnectors,omitempty"`
	Connectors     json.RawMessage `json:"connectors,omitempty"`
}

func (d directoryItem) directory() httpcore.Directory {
	dir := httpcore.Directory{ID: d.ID, Name: d.Name, Type: d.Type, Domains: d.Domains,
		SyncDisabled: string(d.SyncEnabled) == "false" || string(d.SyncEnabled) == `"false"`}
	for _, raw := range []json.RawMessage{d.SyncConnectors, d.Connectors} {
		if dir.Connectors = httpcore.ParseConnectors(raw); dir.Connectors != nil {
			break
		}
	}
	return dir
}
