package cenats

import (
	"fmt"
	"strconv"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/safetext"
)

// Bounds on what a DecodeError may carry. Reasons end up in dead-letter headers and logs, so they
// must stay short and printable whatever the input was.
const (
	maxReasonBytes  = 256
	maxSnippetBytes = 48 // of offending input, before quoting
)

// DecodeError reports a NATS message that is not a CloudEvent this binding accepts. Reason is a
// short human message, at most 256 bytes of valid UTF-8 without control characters, that quotes at
// most a few dozen bytes of the offending input; it is safe for a dead-letter header or a log line.
type DecodeError struct {
	Reason string
}

func (e *DecodeError) Error() string { return "cloudevent: " + e.Reason }

// decodeErrorf builds a DecodeError. Arguments that come from the message must go through snippet
// first; the result is cleaned and bounded again anyway.
func decodeErrorf(format string, args ...any) *DecodeError {
	return &DecodeError{Reason: safetext.Clean(fmt.Sprintf(format, args...), maxReasonBytes)}
}

// snippet quotes the start of untrusted input for an error message: at most maxSnippetBytes of it,
// with control characters and invalid UTF-8 escaped.
func snippet(s string) string {
	if len(s) <= maxSnippetBytes {
		return strconv.Quote(s)
	}
	return strconv.Quote(safetext.Truncate(s, maxSnippetBytes)) + "…"
}
