package httpcore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
)

// Sentinel errors callers branch on with errors.Is: the backend package's, so that callers need
// not know which backend answered. Every error the client returns is an *Error or a
// *DirectoryError that wraps one of these or a transport error.
var (
	ErrUnauthorized       = backend.ErrUnauthorized
	ErrDirectoryNotFound  = backend.ErrDirectoryNotFound
	ErrAmbiguousDirectory = backend.ErrAmbiguousDirectory
	ErrSyncInProgress     = backend.ErrSyncInProgress
	ErrSyncTimeout        = backend.ErrSyncTimeout
	ErrInvalidResponse    = backend.ErrInvalidResponse
	ErrInvalidArgument    = backend.ErrInvalidArgument
)

// Error describes one failed operation of an identity system. It never holds a request body, header or token.
type Error struct {
	Op         string        // what the client was doing, e.g. "start sync"
	StatusCode int           // HTTP status, 0 when no response arrived
	Code       string        // vIDM's error code, when the body had one
	Message    string        // vIDM's error message, truncated and redacted
	RetryAfter time.Duration // from a Retry-After header
	retryable  bool
	Err        error // a sentinel above, or the transport error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("vidm: ")
	b.WriteString(e.Op)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether the same call may succeed later.
func (e *Error) Retryable() bool { return e.retryable }

// RetryableError is a retryable failure of op: usually an answer a proxy or a cut connection
// spoiled (a body that does not decode), worth another try.
func RetryableError(op string, err error) *Error { return &Error{Op: op, Err: err, retryable: true} }

// DirectoryError is returned by ResolveDirectory when a reference matches no directory or several.
type DirectoryError = backend.DirectoryError

// IsRetryable reports whether err is worth retrying later: network failures, timeouts, 429 and 5xx
// answers, and a sync that outlived its deadline. Bad credentials, unknown directories and other 4xx
// answers are permanent.
func IsRetryable(err error) bool { return backend.IsRetryable(err) }

// RetryAfterOf returns the delay vIDM asked for with Retry-After, or 0.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// statusRetryable classifies an HTTP answer at the boundary.
func statusRetryable(code int) bool {
	return code == 429 || code == 408 || code >= 500
}

// statusSentinel maps answers that callers branch on to a sentinel.
func statusSentinel(code int) error {
	switch code {
	case 401:
		return ErrUnauthorized
	case 404:
		return ErrDirectoryNotFound
	case 409:
		return ErrSyncInProgress
	}
	return nil
}

// transportError classifies an error from http.Client.Do. The caller's own cancellation is permanent,
// and so is a certificate vIDM's chain does not verify against (configuration, not weather);
// resets, EOF, refused connections, DNS failures and per-attempt timeouts are retryable.
func transportError(op string, callerCtx context.Context, err error) *Error {
	if callerCtx.Err() != nil {
		return &Error{Op: op, Err: callerCtx.Err()}
	}
	err = cleanTransportErr(err)
	return &Error{Op: op, Err: err, retryable: isNetworkError(err)}
}

func isNetworkError(err error) bool {
	var (
		verify  *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		rec     tls.RecordHeaderError
		ne      net.Error
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &host),
		errors.As(err, &invalid), errors.As(err, &rec):
		return false
	case errors.As(err, &ne),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	return false
}

// cleanTransportErr keeps the cause but drops *url.Error's copy of the URL: the URL holds nothing
// secret today, but errors must stay safe whatever a future query string carries.
func cleanTransportErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}
