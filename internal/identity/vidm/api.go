// Package vidm speaks the VMware Identity Manager (Workspace ONE Access) APIs that a directory
// sync needs: token issue (OAuth client credentials or the system login), the directory list,
// starting a sync and polling it. It is an httpcore.API; the client machinery is httpcore's.
// vRA Cloud's connector proxies the same API (package vracloud).
package vidm

import (
	"encoding/json"
	"net/http"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
)

// Media types vIDM insists on, per endpoint.
const (
	mediaDirectoryList = "application/vnd.vmware.horizon.manager.connector.management.directory.list+json"
	mediaHorizonV1     = "application/vnd.vmware.horizon.v1.0+json"
	mediaSyncRequest   = "application/vnd.vmware.horizon.manager.connector.management.directory.sync.profile.sync+json"
)

// Paths, relative to the base URL.
const (
	pathOAuthToken  = "/SAAS/auth/oauthtoken"
	pathSystemLogin = "/SAAS/API/1.0/REST/auth/system/login"
	pathDirectories = "/SAAS/jersey/manager/api/connectormanagement/directoryconfigs"
)

// API is vIDM's connector-management API (and vRA Cloud's, which proxies it).
type API struct{}

// New validates cfg and returns a client of a vIDM instance (cfg.Kind becomes backend.KindVIDM).
// It does not contact vIDM.
func New(cfg httpcore.Config) (*httpcore.Client, error) { return httpcore.New(cfg, API{}) }

// Kind is backend.KindVIDM.
func (API) Kind() backend.Kind { return backend.KindVIDM }

// DefaultAuthMode is the OAuth client-credentials grant.
func (API) DefaultAuthMode() httpcore.AuthMode { return httpcore.AuthOAuth }

// CheckAuth accepts OAuth with a client id and secret, or the system login with a username and
// password.
func (API) CheckAuth(cfg httpcore.Config) error {
	switch cfg.AuthMode {
	case httpcore.AuthOAuth:
		return httpcore.NeedCredentials(cfg, "a client id and a client secret", cfg.ClientID != "" && cfg.ClientSecret != "")
	case httpcore.AuthSystem:
		return httpcore.NeedCredentials(cfg, "a username and a password", cfg.Username != "" && cfg.Password != "")
	}
	return httpcore.AuthModeMismatch(cfg)
}

// ListDirectories is the directory configs' list.
func (API) ListDirectories() httpcore.Call {
	return httpcore.Call{Op: "list directories", Method: http.MethodGet, Path: pathDirectories,
		Accept: mediaDirectoryList, Bearer: true, Endpoint: httpcore.EndpointDirectories}
}

// ParseDirectories reads the answer of ListDirectories.
func (API) ParseDirectories(body []byte) ([]httpcore.Directory, error) { return parseDirectories(body) }

// StartSync posts the directory's sync, with ignoreSafeguards in the body.
func (API) StartSync(directoryID string, ignoreSafeguards bool) (httpcore.Call, error) {
	p, raw, err := syncPath(directoryID)
	if err != nil {
		return httpcore.Call{}, err
	}
	body, err := json.Marshal(struct {
		IgnoreSafeguards bool `json:"ignoreSafeguards"`
	}{ignoreSafeguards})
	if err != nil {
		return httpcore.Call{}, err
	}
	return httpcore.Call{Op: "start sync", Method: http.MethodPost, Path: p, RawPath: raw, Accept: mediaHorizonV1,
		ContentType: mediaSyncRequest, Body: body, Bearer: true, Endpoint: httpcore.EndpointSyncStart}, nil
}

// SyncStatus gets the directory's sync.
func (API) SyncStatus(directoryID string) (httpcore.Call, error) {
	p, raw, err := syncPath(directoryID)
	if err != nil {
		return httpcore.Call{}, err
	}
	return httpcore.Call{Op: "sync status", Method: http.MethodGet, Path: p, RawPath: raw, Accept: mediaHorizonV1,
		Bearer: true, Endpoint: httpcore.EndpointSyncStatus}, nil
}

// ParseSyncState reads the answer of SyncStatus (httpcore.ParseSyncState).
func (API) ParseSyncState(_ string, body []byte) (httpcore.SyncState, error) {
	return httpcore.ParseSyncState(body)
}

// Describe: vIDM honours ignoreSafeguards and reports sync connectors.
func (API) Describe(d *backend.Description) { d.Safeguards, d.Connectors = true, true }
