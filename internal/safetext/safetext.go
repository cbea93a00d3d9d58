// Package safetext bounds untrusted text (event attributes, server messages) before it goes into
// headers, logs and error strings: printable, valid UTF-8, of limited length.
package safetext

import (
	"strings"
	"unicode/utf8"
)

// Clean makes s printable valid UTF-8 of at most max bytes: invalid bytes and control characters
// become '?', and a cut is marked with "…".
func Clean(s string, max int) string {
	const ellipsis = "…"
	var b strings.Builder
	for i, r := range s {
		if (r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD")) || IsControl(r) {
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > max {
			return Truncate(b.String(), max-len(ellipsis)) + ellipsis
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Truncate cuts s to at most n bytes without splitting a rune.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// IsControl reports the C0 and C1 control characters and DEL, which the CloudEvents type system
// forbids in strings.
func IsControl(r rune) bool {
	return r < 0x20 || (r >= 0x7F && r <= 0x9F)
}
