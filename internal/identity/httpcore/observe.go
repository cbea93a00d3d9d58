package httpcore

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Observer hears about every HTTP attempt the client makes and every token it obtains: metrics.
// Calls are synchronous and must return quickly.
type Observer interface {
	// Request: one HTTP attempt to endpoint (one of the Endpoint constants) ended. code is the
	// HTTP status; it is 0 when err != nil and no response arrived.
	Request(endpoint string, code int, err error, d time.Duration)
	// TokenIssued: a new token was obtained (OAuth token or system login).
	TokenIssued()
}

// The endpoints Observer.Request names. A fixed set, so that they can be metric labels.
const (
	EndpointToken       = "token"       // OAuth client-credentials token
	EndpointLogin       = "login"       // system login
	EndpointDirectories = "directories" // directory list
	EndpointSyncStart   = "sync_start"  // POST a directory's sync
	EndpointSyncStatus  = "sync_status" // GET a directory's sync
	EndpointOther       = "other"
)

type nopObserver struct{}

func (nopObserver) Request(string, int, error, time.Duration) {}
func (nopObserver) TokenIssued()                              {}

// endpointOf is the call's observer label: the one it names, else EndpointOther.
func endpointOf(cl Call) string {
	if cl.Endpoint != "" {
		return cl.Endpoint
	}
	return EndpointOther
}

// authState remembers when vIDM last proved the credentials good and the authentication failure
// seen since, for readiness: a worker whose credentials were revoked is not ready even while vIDM
// itself answers.
type authState struct {
	mu      sync.Mutex
	lastOK  time.Time
	lastErr error
}

func (a *authState) ok(at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastOK, a.lastErr = at, nil
}

func (a *authState) failed(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastErr = err
}

// AuthState reports the time of the last response that proved the credentials good (a 2xx from a
// token endpoint or from an endpoint called with a token; zero if none yet) and the authentication
// failure seen since then (nil once the credentials are proven good again). The error never holds
// a secret.
func (c *Client) AuthState() (lastOK time.Time, lastAuthErr error) {
	c.auth.mu.Lock()
	defer c.auth.mu.Unlock()
	return c.auth.lastOK, c.auth.lastErr
}

// noteAuthFailure records err if it says the credentials (not merely a token) were rejected.
func (c *Client) noteAuthFailure(err error) {
	if errors.Is(err, ErrUnauthorized) {
		c.auth.failed(err)
	}
}

// Probe lists the directories, bypassing the cache (and refreshing it with the answer): one
// authenticated round trip that shows whether vIDM is reachable and accepts the credentials now.
// It gives up when ctx ends.
func (c *Client) Probe(ctx context.Context) error {
	dirs, err := c.fetchDirectories(ctx)
	if err != nil {
		return err
	}
	c.dirs.Store(dirs)
	return nil
}
