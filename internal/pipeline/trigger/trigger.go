// Package trigger turns a raw NATS message into a validated Trigger: a CloudEvent of an accepted
// type (ad.group.*, ad.user.* or vidm.directory.sync.requested) whose data conforms to its JSON
// Schema in package schemas. Every rejection is an *Error with a Code the worker uses to dead-letter
// the message and count it.
package trigger

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
)

const (
	typePrefixGroup = "ad.group."
	typePrefixUser  = "ad.user."
	// maxTypeLen matches the result schema's limit on a covered trigger's type, so that every
	// accepted trigger fits in the result event that reports it.
	maxTypeLen = 256
	// defaultSource is the source NewEvent uses when the Trigger names none.
	defaultSource = "urn:vidm-sync:cli"
	// extTraceparent is the W3C Trace Context extension of the CloudEvents distributed tracing
	// extension.
	extTraceparent = "traceparent"
)

// Trigger is one accepted trigger event, reduced to what the worker needs.
type Trigger struct {
	ID, Source, Type string
	Subject          string
	Time             time.Time // the event's time in UTC, zero if absent
	Traceparent      string    // W3C traceparent extension, "" if absent or malformed
	Tenant           string    // "" when the event names none (the caller applies the default)
	Directory        string    // vIDM directory name; wins over Domain
	Domain           string    // AD domain
	Group            string    // group name, ad.group.* only
	User             string    // user's upn when given, else its name; ad.user.* only
	IgnoreSafeguards bool
	Reason           string // vidm.directory.sync.requested only
}

// DirectoryRef is Directory when set, else Domain: what identifies the vIDM directory to sync.
func (t Trigger) DirectoryRef() string {
	if t.Directory != "" {
		return t.Directory
	}
	return t.Domain
}

func isGroupType(typ string) bool { return strings.HasPrefix(typ, typePrefixGroup) }
func isUserType(typ string) bool  { return strings.HasPrefix(typ, typePrefixUser) }

// acceptedType reports the accepted trigger types: vidm.directory.sync.requested, and ad.group.* and
// ad.user.* where * is one or more dot-separated segments of ASCII letters, digits, '_' and '-'
// starting with a letter or digit (the pattern the result schema allows for a covered trigger).
func acceptedType(typ string) bool {
	if typ == contract.TypeSyncRequested {
		return true
	}
	if len(typ) > maxTypeLen {
		return false
	}
	var rest string
	switch {
	case isGroupType(typ):
		rest = typ[len(typePrefixGroup):]
	case isUserType(typ):
		rest = typ[len(typePrefixUser):]
	default:
		return false
	}
	for seg := range strings.SplitSeq(rest, ".") {
		if seg == "" || !isAlnum(seg[0]) {
			return false
		}
		for i := 1; i < len(seg); i++ {
			if c := seg[i]; !isAlnum(c) && c != '_' && c != '-' {
				return false
			}
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

// validTraceparent checks the W3C Trace Context version 00 form 00-<32 hex>-<16 hex>-<2 hex>, lower
// case, with trace id and parent id not all zeros (the spec makes those invalid).
func validTraceparent(s string) bool {
	if len(s) != 55 || s[0:3] != "00-" || s[35] != '-' || s[52] != '-' {
		return false
	}
	traceID, parentID, flags := s[3:35], s[36:52], s[53:55]
	for _, part := range []string{traceID, parentID, flags} {
		for i := 0; i < len(part); i++ {
			if c := part[i]; ('0' > c || c > '9') && ('a' > c || c > 'f') {
				return false
			}
		}
	}
	return strings.Trim(traceID, "0") != "" && strings.Trim(parentID, "0") != ""
}

// nameRef is the group or user object of ad.* trigger data.
type nameRef struct {
	Name string `json:"name,omitempty"`
	UPN  string `json:"upn,omitempty"`
}

// userRef puts a user into the data as Decode reads it back: a value of the shape of a user
// principal name (name@suffix, no spaces) as upn, which Decode prefers and which allows 1024
// characters against a name's 256, anything else as name.
func userRef(user string) *nameRef {
	prefix, suffix, ok := strings.Cut(user, "@")
	if ok && prefix != "" && suffix != "" && !strings.ContainsAny(suffix, "@") && !strings.ContainsFunc(user, func(r rune) bool { return r <= ' ' || r == 0x7F }) {
		return &nameRef{UPN: user}
	}
	return &nameRef{Name: user}
}

// adData is the data of ad.group.* and ad.user.* events (schemas.ADTrigger).
type adData struct {
	Domain           string   `json:"domain,omitempty"`
	Directory        string   `json:"directory,omitempty"`
	Tenant           string   `json:"tenant,omitempty"`
	Group            *nameRef `json:"group,omitempty"`
	User             *nameRef `json:"user,omitempty"`
	IgnoreSafeguards bool     `json:"ignoreSafeguards,omitempty"`
}

// syncRequestedData is the data of vidm.directory.sync.requested events (schemas.SyncRequested).
type syncRequestedData struct {
	Tenant           string `json:"tenant,omitempty"`
	Directory        string `json:"directory,omitempty"`
	Domain           string `json:"domain,omitempty"`
	IgnoreSafeguards bool   `json:"ignoreSafeguards,omitempty"`
	Reason           string `json:"reason,omitempty"`
}

var errInvalidTrigger = errors.New("invalid trigger")

// NewEvent builds the trigger event for t, the inverse of Decoder.Decode (the CLI and tests use
// it): id t.ID or a new UUID v4, source t.Source or "urn:vidm-sync:cli", time t.Time or now,
// datacontenttype application/json, data per the type's schema, and the traceparent extension when
// t.Traceparent is set. It checks that the fields fit the type (a group for ad.group.*, a user for
// ad.user.*, a directory or domain always) but leaves the schema's value rules to Decode. A user
// of the form name@suffix goes into the data as its upn, any other as its name.
func NewEvent(t Trigger) (event.Event, error) {
	fail := func(format string, args ...any) (event.Event, error) {
		return event.Event{}, fmt.Errorf("%w: %s", errInvalidTrigger, fmt.Sprintf(format, args...))
	}
	if !acceptedType(t.Type) {
		return fail("type %q is not a trigger type", t.Type)
	}
	if t.DirectoryRef() == "" {
		return fail("directory or domain is required")
	}
	if t.Traceparent != "" && !validTraceparent(t.Traceparent) {
		return fail("traceparent %q is not a W3C traceparent", t.Traceparent)
	}
	var data any
	switch {
	case isGroupType(t.Type):
		if t.Group == "" || t.User != "" || t.Reason != "" {
			return fail("%s needs a group, and no user or reason", t.Type)
		}
		data = adData{Domain: t.Domain, Directory: t.Directory, Tenant: t.Tenant, Group: &nameRef{Name: t.Group}, IgnoreSafeguards: t.IgnoreSafeguards}
	case isUserType(t.Type):
		if t.User == "" || t.Group != "" || t.Reason != "" {
			return fail("%s needs a user, and no group or reason", t.Type)
		}
		data = adData{Domain: t.Domain, Directory: t.Directory, Tenant: t.Tenant, User: userRef(t.User), IgnoreSafeguards: t.IgnoreSafeguards}
	default:
		if t.Group != "" || t.User != "" {
			return fail("%s takes no group or user", t.Type)
		}
		data = syncRequestedData{Tenant: t.Tenant, Directory: t.Directory, Domain: t.Domain, IgnoreSafeguards: t.IgnoreSafeguards, Reason: t.Reason}
	}

	e := event.New(event.CloudEventsVersionV1)
	id := t.ID
	if id == "" {
		id = uuid.NewString()
	}
	e.SetID(id)
	e.SetSource(cmp.Or(t.Source, defaultSource))
	e.SetType(t.Type)
	if t.Subject != "" {
		e.SetSubject(t.Subject)
	}
	when := t.Time
	if when.IsZero() {
		when = time.Now()
	}
	e.SetTime(when.UTC())
	if err := e.SetData(event.ApplicationJSON, data); err != nil {
		return event.Event{}, fmt.Errorf("trigger data: %w", err)
	}
	if t.Traceparent != "" {
		e.SetExtension(extTraceparent, t.Traceparent)
	}
	if err := e.Validate(); err != nil {
		return event.Event{}, fmt.Errorf("%w: %w", errInvalidTrigger, err)
	}
	return e, nil
}
