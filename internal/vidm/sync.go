package vidm

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"
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

// StartSync asks vIDM to sync a directory. A sync already running is an error wrapping
// ErrSyncInProgress; no second sync is started.
func (c *Client) StartSync(ctx context.Context, directoryID string, ignoreSafeguards bool) error {
	p, raw, err := syncPath(directoryID)
	if err != nil {
		return &Error{Op: "start sync", Err: err}
	}
	body, err := json.Marshal(struct {
		IgnoreSafeguards bool `json:"ignoreSafeguards"`
	}{ignoreSafeguards})
	if err != nil {
		return &Error{Op: "start sync", Err: err}
	}
	_, err = c.do(ctx, call{
		op:          "start sync",
		method:      http.MethodPost,
		path:        p,
		rawPath:     raw,
		accept:      mediaHorizonV1,
		contentType: mediaSyncRequest,
		body:        body,
		bearer:      true,
	})
	return err
}

// SyncStatus reads the state of the directory's current or latest sync.
func (c *Client) SyncStatus(ctx context.Context, directoryID string) (SyncState, error) {
	p, raw, err := syncPath(directoryID)
	if err != nil {
		return SyncState{}, &Error{Op: "sync status", Err: err}
	}
	body, err := c.do(ctx, call{
		op:      "sync status",
		method:  http.MethodGet,
		path:    p,
		rawPath: raw,
		accept:  mediaHorizonV1,
		bearer:  true,
	})
	if err != nil {
		return SyncState{}, err
	}
	st, err := ParseSyncState(body)
	if err != nil {
		// A proxy's HTML page or a truncated body is usually passing: the poll is repeated.
		return SyncState{}, &Error{Op: "sync status", StatusCode: http.StatusOK, Err: err, retryable: true}
	}
	return st, nil
}

// WaitOptions tunes WaitForSync. Zero values take the defaults.
type WaitOptions struct {
	// InitialInterval is the first wait between polls. Default 1s.
	InitialInterval time.Duration
	// MaxInterval caps the growing wait between polls. Default 15s.
	MaxInterval time.Duration
	// Timeout bounds the whole wait. Default 30m. The context's deadline applies as well.
	Timeout time.Duration
	// Before is the state read before the sync was started. A terminal state that has the same
	// start time as Before is the previous sync still being reported, not the new one, and is
	// waited past. Comparing vIDM's own timestamps avoids trusting clocks on two machines.
	Before *SyncState
	// Progress, if set, is called with every state read.
	Progress func(SyncState)
}

func (o WaitOptions) withDefaults() WaitOptions {
	if o.InitialInterval <= 0 {
		o.InitialInterval = time.Second
	}
	if o.MaxInterval <= 0 {
		o.MaxInterval = 15 * time.Second
	}
	if o.MaxInterval < o.InitialInterval {
		o.MaxInterval = o.InitialInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Minute
	}
	return o
}

// WaitForSync polls a directory's sync until it is COMPLETED or FAILED and returns that state; a
// FAILED sync is a result, not an error. RUNNING, UNDEFINED and unknown statuses keep it polling, as
// do retryable errors (vIDM briefly unreachable). It returns an error wrapping ErrSyncTimeout
// (retryable) when the timeout passes, a permanent error at once, or the context's error.
func (c *Client) WaitForSync(ctx context.Context, directoryID string, opts WaitOptions) (SyncState, error) {
	opts = opts.withDefaults()
	deadline := c.cfg.Now().Add(opts.Timeout)
	interval := opts.InitialInterval
	var last SyncState
	var lastErr error
	for {
		st, err := c.SyncStatus(ctx, directoryID)
		switch {
		case err != nil && !IsRetryable(err):
			return last, err
		case err != nil:
			lastErr = err
			c.log.Warn("polling vIDM sync status failed; still waiting", "directory_id", directoryID, "err", err)
		default:
			last, lastErr = st, nil
			if opts.Progress != nil {
				opts.Progress(st)
			}
			if st.Status.Terminal() && !isPrevious(st, opts.Before) {
				return st, nil
			}
		}
		wait := min(jitter(interval), deadline.Sub(c.cfg.Now()))
		if wait <= 0 {
			return last, timeoutError(last, lastErr, opts.Timeout)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return last, &Error{Op: "wait for sync", Err: ctx.Err()}
		case <-t.C:
		}
		interval = min(interval*2, opts.MaxInterval)
	}
}

func isPrevious(st SyncState, before *SyncState) bool {
	return before != nil && !before.StartedAt.IsZero() && st.StartedAt.Equal(before.StartedAt)
}

func timeoutError(last SyncState, lastErr error, timeout time.Duration) error {
	msg := fmt.Sprintf("last status %s after %s", last.Status, timeout)
	if last.Status == "" {
		msg = fmt.Sprintf("no status read in %s", timeout)
	}
	if lastErr != nil {
		msg += fmt.Sprintf(" (last error: %v)", lastErr)
	}
	return &Error{Op: "wait for sync", Message: msg, Err: ErrSyncTimeout, retryable: true}
}

// jitter spreads polls of many directories by up to ±10%.
func jitter(d time.Duration) time.Duration {
	spread := int64(d) / 10
	if spread <= 0 {
		return d
	}
	return d - time.Duration(spread) + time.Duration(rand.Int64N(2*spread+1))
}
