package vidm

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
)

// api is one backend kind's endpoints and bodies. The Client's machinery (the shared token,
// retries, 401 handling, classification, metrics, TLS, redaction) serves every kind; an api only
// says which requests to send and how to read the answers.
type api interface {
	// listDirectories is the call that lists directories; parseDirectories reads its answer.
	listDirectories() call
	parseDirectories(body []byte) ([]Directory, error)
	// startSync is the call that starts a sync of the directory.
	startSync(directoryID string, ignoreSafeguards bool) (call, error)
	// syncStatus is the call that reads the directory's sync; parseSyncState reads its answer.
	syncStatus(directoryID string) (call, error)
	parseSyncState(directoryID string, body []byte) (SyncState, error)
	// describe fills in what the kind supports.
	describe(d *backend.Description)
}

func apiFor(cfg Config) api {
	switch cfg.Kind {
	case backend.KindVRA7:
		return vra7API{tenant: cfg.Tenant}
	case backend.KindVCF:
		return vcfAPI{}
	}
	return vidmAPI{} // vIDM, and vRA Cloud through its connector: the same paths
}

func defaultAuthMode(k backend.Kind) AuthMode {
	switch k {
	case backend.KindVRA7, backend.KindVCF:
		return AuthPassword
	case backend.KindVRACloud:
		return AuthRefreshToken
	}
	return AuthOAuth
}

// Describe says which backend this client talks to and what it supports.
func (c *Client) Describe() backend.Description {
	d := backend.Description{Kind: c.cfg.Kind, BaseURL: c.base.String()}
	c.api.describe(&d)
	return d
}

// fetchDirectories calls the list endpoint.
func (c *Client) fetchDirectories(ctx context.Context) ([]Directory, error) {
	if c.cfg.Kind == backend.KindVRA7 {
		return c.vra7Directories(ctx) // paged: one call per page
	}
	body, err := c.do(ctx, c.api.listDirectories())
	if err != nil {
		return nil, err
	}
	return c.api.parseDirectories(body)
}

// StartSync asks the backend to sync a directory. A sync already running is an error wrapping
// ErrSyncInProgress; no second sync is started.
func (c *Client) StartSync(ctx context.Context, directoryID string, ignoreSafeguards bool) error {
	cl, err := c.api.startSync(directoryID, ignoreSafeguards)
	if err != nil {
		return &Error{Op: "start sync", Err: err}
	}
	_, err = c.do(ctx, cl)
	return err
}

// SyncStatus reads the state of the directory's current or latest sync.
func (c *Client) SyncStatus(ctx context.Context, directoryID string) (SyncState, error) {
	cl, err := c.api.syncStatus(directoryID)
	if err != nil {
		return SyncState{}, &Error{Op: "sync status", Err: err}
	}
	body, err := c.do(ctx, cl)
	if err != nil {
		return SyncState{}, err
	}
	st, err := c.api.parseSyncState(directoryID, body)
	var classified interface{ Retryable() bool }
	switch {
	case errors.As(err, &classified):
		return SyncState{}, err // the api decided (a VCF source that vanished is permanent)
	case err != nil:
		// A proxy's HTML page or a truncated body is usually passing: the poll is repeated.
		return SyncState{}, &Error{Op: "sync status", StatusCode: http.StatusOK, Err: err, retryable: true}
	}
	return st, nil
}

// vidmAPI is vIDM's connector-management API (and vRA Cloud's, which proxies it).
type vidmAPI struct{}

func (vidmAPI) listDirectories() call {
	return call{op: "list directories", method: http.MethodGet, path: pathDirectories,
		accept: mediaDirectoryList, bearer: true, endpoint: EndpointDirectories}
}

func (vidmAPI) parseDirectories(body []byte) ([]Directory, error) { return parseDirectories(body) }

func (vidmAPI) startSync(directoryID string, ignoreSafeguards bool) (call, error) {
	p, raw, err := syncPath(directoryID)
	if err != nil {
		return call{}, err
	}
	body, err := json.Marshal(struct {
		IgnoreSafeguards bool `json:"ignoreSafeguards"`
	}{ignoreSafeguards})
	if err != nil {
		return call{}, err
	}
	return call{op: "start sync", method: http.MethodPost, path: p, rawPath: raw, accept: mediaHorizonV1,
		contentType: mediaSyncRequest, body: body, bearer: true, endpoint: EndpointSyncStart}, nil
}

func (vidmAPI) syncStatus(directoryID string) (call, error) {
	p, raw, err := syncPath(directoryID)
	if err != nil {
		return call{}, err
	}
	return call{op: "sync status", method: http.MethodGet, path: p, rawPath: raw, accept: mediaHorizonV1,
		bearer: true, endpoint: EndpointSyncStatus}, nil
}

func (vidmAPI) parseSyncState(_ string, body []byte) (SyncState, error) { return ParseSyncState(body) }

func (vidmAPI) describe(d *backend.Description) { d.Safeguards, d.Connectors = true, true }
