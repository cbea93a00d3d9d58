package httpcore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
)

// API is one identity system's endpoints and bodies. The Client's machinery (the shared token,
// retries, 401 handling, classification, metrics, TLS, redaction) serves every system; an API only
// says which requests to send and how to read the answers.
type API interface {
	// Kind is the identity system the API speaks to.
	Kind() backend.Kind
	// DefaultAuthMode is the auth mode of a Config that names none.
	DefaultAuthMode() AuthMode
	// CheckAuth reports whether cfg's auth mode fits the system and has the credentials it needs
	// (NeedCredentials, AuthModeMismatch).
	CheckAuth(cfg Config) error
	// Login obtains a new token with the configured auth mode, sending its requests with c.Do.
	Login(ctx context.Context, c *Client) (Token, error)
	// ListDirectories is the call that lists directories; ParseDirectories reads its answer.
	ListDirectories() Call
	ParseDirectories(body []byte) ([]Directory, error)
	// StartSync is the call that starts a sync of the directory.
	StartSync(directoryID string, ignoreSafeguards bool) (Call, error)
	// SyncStatus is the call that reads the directory's sync; ParseSyncState reads its answer.
	SyncStatus(directoryID string) (Call, error)
	ParseSyncState(directoryID string, body []byte) (SyncState, error)
	// Describe fills in what the system supports.
	Describe(d *backend.Description)
}

// DirectoryLister is an API whose directory list takes more than one call (vRA 7's pages): the
// Client lists with it instead of ListDirectories.
type DirectoryLister interface {
	Directories(ctx context.Context, c *Client) ([]Directory, error)
}

// SyncClientLister is an API whose identity providers have SCIM sync clients (VCF's broker).
type SyncClientLister interface {
	SyncClientTokens(ctx context.Context, c *Client) ([]backend.SyncClientToken, error)
}

// Call is one logical API request; Client.Do runs it with retries.
type Call struct {
	Op          string // for errors and logs, e.g. "start sync"
	Method      string
	Path        string // unescaped
	RawPath     string // escaped form of Path, when it differs
	Query       url.Values
	Accept      string
	ContentType string
	Body        []byte
	Bearer      bool // attach the cached token (and re-login once on 401)
	BasicUser   string
	BasicPass   string
	// Endpoint names the call for the observer (one of the Endpoint constants); "" is
	// EndpointOther.
	Endpoint string
	// AbsURL, when set, is the whole request URL instead of the base URL plus Path: a token
	// service on another host (vRA Cloud's console).
	AbsURL *url.URL
}

// Describe says which backend this client talks to and what it supports.
func (c *Client) Describe() backend.Description {
	d := backend.Description{Kind: c.cfg.Kind, BaseURL: c.base.String()}
	c.api.Describe(&d)
	return d
}

// fetchDirectories calls the list endpoint.
func (c *Client) fetchDirectories(ctx context.Context) ([]Directory, error) {
	if l, ok := c.api.(DirectoryLister); ok {
		return l.Directories(ctx, c) // paged: one call per page
	}
	body, err := c.Do(ctx, c.api.ListDirectories())
	if err != nil {
		return nil, err
	}
	return c.api.ParseDirectories(body)
}

// StartSync asks the backend to sync a directory. A sync already running is an error wrapping
// ErrSyncInProgress; no second sync is started.
func (c *Client) StartSync(ctx context.Context, directoryID string, ignoreSafeguards bool) error {
	cl, err := c.api.StartSync(directoryID, ignoreSafeguards)
	if err != nil {
		return &Error{Op: "start sync", Err: err}
	}
	_, err = c.Do(ctx, cl)
	return err
}

// SyncStatus reads the state of the directory's current or latest sync.
func (c *Client) SyncStatus(ctx context.Context, directoryID string) (SyncState, error) {
	cl, err := c.api.SyncStatus(directoryID)
	if err != nil {
		return SyncState{}, &Error{Op: "sync status", Err: err}
	}
	body, err := c.Do(ctx, cl)
	if err != nil {
		return SyncState{}, err
	}
	st, err := c.api.ParseSyncState(directoryID, body)
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

// SyncClientTokens lists the SCIM sync-client token expiry of each identity provider that has a
// token (SyncClientLister: VCF), so that an expiry can be alerted on before the IdP's pushes
// start failing. Other backends have no sync clients: an error wrapping ErrNotSupported.
func (c *Client) SyncClientTokens(ctx context.Context) ([]backend.SyncClientToken, error) {
	l, ok := c.api.(SyncClientLister)
	if !ok {
		return nil, &Error{Op: "sync client tokens", Err: fmt.Errorf("%w: %s has no SCIM sync clients (VCF's identity broker has)",
			backend.ErrNotSupported, c.cfg.Kind)}
	}
	return l.SyncClientTokens(ctx, c)
}

// Config is the client's configuration, with the defaults filled in.
func (c *Client) Config() Config { return c.cfg }

// Logger is the client's logger.
func (c *Client) Logger() *slog.Logger { return c.log }
