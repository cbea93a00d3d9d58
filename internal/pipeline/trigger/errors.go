package trigger

import (
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/safetext"
)

// Limits on what an Error carries: it goes into dead-letter headers and logs.
const (
	maxReasonBytes = 512
	maxIDBytes     = 256 // EventID and EventType are cut to this
	maxLeafBytes   = 160 // one schema failure in a Reason
	maxLeaves      = 3   // schema failures named in a Reason; the rest are counted
	maxEchoBytes   = 48  // of untrusted input quoted in a Reason
)

// Error is a rejected trigger. Reason is at most 512 bytes of valid UTF-8 without control
// characters and quotes at most a few dozen bytes of the input. EventID and EventType are set when
// the message was a CloudEvent, cleaned the same way and cut to 256 bytes.
type Error struct {
	Code      contract.DeadCode
	Reason    string
	EventID   string
	EventType string
}

func (e *Error) Error() string {
	return "trigger rejected (" + string(e.Code) + "): " + e.Reason
}

func newError(code contract.DeadCode, reason, id, typ string) *Error {
	return &Error{
		Code:      code,
		Reason:    safetext.Clean(reason, maxReasonBytes),
		EventID:   safetext.Clean(id, maxIDBytes),
		EventType: safetext.Clean(typ, maxIDBytes),
	}
}

// echo quotes the start of untrusted input for a Reason.
func echo(s string) string {
	if len(s) <= maxEchoBytes {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q…", safetext.Truncate(s, maxEchoBytes))
}

// schemaReason renders a validation error as its leaf failures, "<JSON pointer>: <rule>" (or
// "attribute <name>: <rule>" for the event attributes), sorted, the first few named and the rest
// counted. The validator's own messages are not used as they are: they quote whole values (a 1 MiB
// string in a pattern failure).
func schemaReason(err error, attributes bool) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return "validation failed"
	}
	var leaves []string
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		var loc string
		switch {
		case attributes:
			loc = "attribute " + strings.Join(e.InstanceLocation, "/")
		case len(e.InstanceLocation) == 0:
			loc = "(root)"
		default:
			loc = jsonPointer(e.InstanceLocation)
		}
		leaves = append(leaves, safetext.Truncate(loc+": "+describe(e.ErrorKind), maxLeafBytes))
	}
	walk(ve)
	slices.Sort(leaves)
	leaves = slices.Compact(leaves)
	if len(leaves) == 0 {
		return "validation failed"
	}
	reason := strings.Join(leaves[:min(len(leaves), maxLeaves)], "; ")
	if n := len(leaves) - maxLeaves; n > 0 {
		reason += fmt.Sprintf("; and %d more", n)
	}
	return reason
}

func jsonPointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

// describe says which rule failed, briefly, quoting input only through echo. Limits and patterns
// come from our schemas, not from the input.
func describe(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.MaxLength:
		return fmt.Sprintf("length must be <= %d", k.Want)
	case *kind.MinLength:
		return fmt.Sprintf("length must be >= %d", k.Want)
	case *kind.Pattern:
		return "does not match pattern " + k.Want
	case *kind.Required:
		return "missing property " + strings.Join(quoteAll(k.Missing), ", ")
	case *kind.Type:
		return fmt.Sprintf("must be %s, not %s", strings.Join(k.Want, " or "), k.Got)
	case *kind.AdditionalProperties:
		if len(k.Properties) == 0 {
			return "unknown property"
		}
		// The validator lists them in map order; name the same one every time.
		first := slices.Min(k.Properties)
		more := ""
		if len(k.Properties) > 1 {
			more = fmt.Sprintf(" (and %d more)", len(k.Properties)-1)
		}
		return "unknown property " + echo(first) + more
	case *kind.Format:
		return "must be a valid " + k.Want
	case *kind.Enum, *kind.Const:
		return "value is not allowed"
	case *kind.Minimum:
		return "must be >= " + ratString(k.Want)
	case *kind.Maximum:
		return "must be <= " + ratString(k.Want)
	case *kind.FalseSchema:
		return "is not allowed"
	}
	return "fails " + strings.Join(k.KeywordPath(), "/")
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = echo(s)
	}
	return out
}

func ratString(r *big.Rat) string {
	if r == nil {
		return "?"
	}
	return r.RatString()
}
