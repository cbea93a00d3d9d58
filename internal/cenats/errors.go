package cenats

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
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
	return &DecodeError{Reason: clean(fmt.Sprintf(format, args...), maxReasonBytes)}
}

// snippet quotes the start of untrusted input for an error message: at most maxSnippetBytes of it,
// with control characters and invalid UTF-8 escaped.
func snippet(s string) string {
	if len(s) <= maxSnippetBytes {
		return strconv.Quote(s)
	}
	return strconv.Quote(truncate(s, maxSnippetBytes)) + "…"
}

// clean makes s printable valid UTF-8 of at most max bytes: invalid bytes and control characters
// become '?', and a cut is marked with "…".
func clean(s string, max int) string {
	const ellipsis = "…"
	var b strings.Builder
	for i, r := range s {
		if (r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD")) || isControl(r) {
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > max {
			return truncate(b.String(), max-len(ellipsis)) + ellipsis
		}
		b.WriteRune(r)
	}
	return b.String()
}

// truncate cuts s to at most n bytes without splitting a rune.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// isControl reports the C0 and C1 control characters and DEL, which the CloudEvents type system
// forbids in strings.
func isControl(r rune) bool {
	return r < 0x20 || (r >= 0x7F && r <= 0x9F)
}
