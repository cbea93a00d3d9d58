package cenats

import (
	"errors"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/safetext"
)

// Header values are percent-encoded as the NATS binding (1.0.3) requires: space, '"', '%' and every
// byte outside printable ASCII become %XY. That keeps any attribute value, including non-ASCII
// directory names, intact through the NATS header line format.

const upperHex = "0123456789ABCDEF"

func mustEscape(c byte) bool {
	return c <= ' ' || c == '"' || c == '%' || c >= 0x7F
}

// percentEncode encodes s for a NATS header value. Encoding the UTF-8 bytes one by one is exactly
// the binding's "encode each character's UTF-8 bytes" rule.
func percentEncode(s string) string {
	i := 0
	for i < len(s) && !mustEscape(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		c := s[i]
		if mustEscape(c) {
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&0x0F])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

var (
	errBadQuoting = errors.New("has unbalanced double quotes")
	errBadPercent = errors.New("has an invalid percent-encoding")
)

// decodeHeaderValue undoes the binding's encoding: first RFC 7230 quoted-string unescaping (older
// publishers quoted values instead of encoding spaces), then one round of percent-decoding. The
// result is checked by checkString by the caller.
func decodeHeaderValue(raw string) (string, error) {
	v := raw
	if strings.HasPrefix(v, `"`) {
		if len(v) < 2 || !strings.HasSuffix(v, `"`) {
			return "", errBadQuoting
		}
		var b strings.Builder
		inner := v[1 : len(v)-1]
		for i := 0; i < len(inner); i++ {
			c := inner[i]
			switch c {
			case '\\':
				if i+1 == len(inner) {
					return "", errBadQuoting
				}
				i++
				b.WriteByte(inner[i])
			case '"':
				return "", errBadQuoting
			default:
				b.WriteByte(c)
			}
		}
		v = b.String()
	}
	if !strings.Contains(v, "%") {
		return v, nil
	}
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(v) {
			return "", errBadPercent
		}
		hi, ok1 := unhex(v[i+1])
		lo, ok2 := unhex(v[i+2])
		if !ok1 || !ok2 {
			return "", errBadPercent
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

var (
	errInvalidUTF8   = errors.New("is not valid UTF-8")
	errControl       = errors.New("contains a control character")
	errNoncharacter  = errors.New("contains a Unicode noncharacter")
	errEmptyValue    = errors.New("is empty")
	errHeaderRepeats = errors.New("is given more than once")
)

// checkString applies the CloudEvents type system's rule for String values: valid UTF-8 (which also
// excludes surrogates) without control characters (U+0000–U+001F, U+007F–U+009F) or noncharacters.
func checkString(s string) error {
	if !utf8.ValidString(s) {
		return errInvalidUTF8
	}
	for _, r := range s {
		switch {
		case safetext.IsControl(r):
			return errControl
		case (r >= 0xFDD0 && r <= 0xFDEF) || r&0xFFFE == 0xFFFE:
			return errNoncharacter
		}
	}
	return nil
}

// checkRawHeader rejects a raw header value with bytes no NATS header line can carry legitimately.
// Raw non-ASCII UTF-8 is tolerated (publishers that do not percent-encode), invalid UTF-8 is not.
func checkRawHeader(v string) error {
	for i := 0; i < len(v); i++ {
		if v[i] < ' ' || v[i] == 0x7F {
			return errControl
		}
	}
	if !utf8.ValidString(v) {
		return errInvalidUTF8
	}
	return nil
}

// headerView is what Decode needs from a nats.Header, looked up case-insensitively: NATS header
// names are case-insensitive (ADR-4), but nats.Header is a plain map and its Get is case-sensitive,
// so "CE-ID", "Ce-Id" and "ce-id" must all be found here. A name that appears under two spellings
// or with several values is ambiguous and rejected rather than resolved by map order.
type headerView struct {
	attrs          map[string]string // raw values of ce-* headers, by lower-case name without "ce-"
	contentType    string
	hasContentType bool
}

func readHeaders(h nats.Header) (headerView, *DecodeError) {
	v := headerView{attrs: make(map[string]string)}
	// Sorted so that the header reported in an error does not depend on map order.
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		lk := strings.ToLower(k)
		isCE := strings.HasPrefix(lk, HeaderPrefix)
		isCT := lk == "content-type"
		if !isCE && !isCT {
			continue
		}
		vals := h[k]
		if len(vals) == 0 {
			continue
		}
		if len(vals) > 1 {
			return v, headerError(k, errHeaderRepeats)
		}
		if err := checkRawHeader(vals[0]); err != nil {
			return v, headerError(k, err)
		}
		if isCT {
			if v.hasContentType {
				return v, headerError(k, errHeaderRepeats)
			}
			v.contentType, v.hasContentType = vals[0], true
			continue
		}
		name := lk[len(HeaderPrefix):]
		if _, dup := v.attrs[name]; dup {
			return v, headerError(k, errHeaderRepeats)
		}
		v.attrs[name] = vals[0]
	}
	return v, nil
}

func headerError(name string, err error) *DecodeError {
	return decodeErrorf("header %s %v", snippet(name), err)
}
