package backend

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors callers branch on with errors.Is, whatever the backend.
var (
	// ErrUnauthorized: the backend rejected the credentials, or a fresh token was rejected again.
	ErrUnauthorized = errors.New("credentials or token rejected")
	// ErrDirectoryNotFound: no directory matches the name, domain or id.
	ErrDirectoryNotFound = errors.New("directory not found")
	// ErrAmbiguousDirectory: several directories match a domain or name.
	ErrAmbiguousDirectory = errors.New("directory reference is ambiguous")
	// ErrSyncInProgress: the backend refused to start a sync because one is already running.
	ErrSyncInProgress = errors.New("a sync is already running for the directory")
	// ErrSyncTimeout: the sync did not reach a terminal status before the caller's deadline.
	ErrSyncTimeout = errors.New("sync did not finish before the deadline")
	// ErrInvalidResponse: an answer the client cannot understand (HTML, empty, too large).
	ErrInvalidResponse = errors.New("response could not be understood")
	// ErrInvalidArgument: the caller passed something that can never become a valid request.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotSupported: the backend has no such operation (VCF starts no syncs).
	ErrNotSupported = errors.New("not supported by this backend")
	// ErrUnknownTenant: no backend is configured under the tenant's name (or no longer is).
	ErrUnknownTenant = errors.New("tenant is not configured")
	// ErrDirectoryNotAllowed: the tenant's allow-list does not include the directory.
	ErrDirectoryNotAllowed = errors.New("directory is not in the tenant's allow-list")
)

// IsRetryable reports whether err is worth retrying later: network failures, timeouts, 429 and 5xx
// answers, and a sync that outlived its deadline. Bad credentials, unknown directories and other 4xx
// answers are permanent.
func IsRetryable(err error) bool {
	var r interface{ Retryable() bool }
	if errors.As(err, &r) {
		return r.Retryable()
	}
	return false
}

// DirectoryError is returned by ResolveDirectory when a reference matches no directory or several.
type DirectoryError struct {
	Query      string
	Candidates []string // names of the matching directories when ambiguous
	Err        error    // ErrDirectoryNotFound or ErrAmbiguousDirectory
}

func (e *DirectoryError) Error() string {
	if len(e.Candidates) > 0 {
		return fmt.Sprintf("%q: %v (matches %s)", e.Query, e.Err, strings.Join(e.Candidates, ", "))
	}
	return fmt.Sprintf("%q: %v", e.Query, e.Err)
}

func (e *DirectoryError) Unwrap() error { return e.Err }

// Retryable is false: the directory list was refreshed before this answer was given.
func (e *DirectoryError) Retryable() bool { return false }

// timeoutError is Wait's deadline: retryable, since a later look may find the sync finished.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string {
	return "wait for sync: " + e.msg + ": " + ErrSyncTimeout.Error()
}
func (e *timeoutError) Unwrap() error   { return ErrSyncTimeout }
func (e *timeoutError) Retryable() bool { return true }
