package trigger

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/safetext"
	"github.com/vidm-sync-worker/vidm-sync-worker/schemas"
)

// maxDepth bounds the nesting of arrays and objects in trigger data. The schemas need 2 levels; the
// open top level of ad.* data lets publishers add context, and 32 leaves them plenty while keeping
// the JSON decoder (recursive) and the validator far from any stack or time trouble.
const maxDepth = 32

// resultTriggerRef is the result schema's definition of a covered trigger. Decode checks the
// accepted event's id, source and type against it, so that every accepted trigger can be reported
// in a valid result event (an id of 300 characters could not be).
const resultTriggerRef = schemas.BaseURL + schemas.SyncResult + "#/$defs/trigger"

// Decoder validates trigger events against the embedded JSON Schemas, compiled once. It is safe for
// concurrent use.
type Decoder struct {
	adTrigger     *jsonschema.Schema
	syncRequested *jsonschema.Schema
	resultTrigger *jsonschema.Schema
}

// NewDecoder compiles the schemas of package schemas (draft 2020-12, with format assertions, each
// file registered under schemas.BaseURL + its name).
func NewDecoder() (*Decoder, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// The schemas mean "format" (hostname, uri-reference) as an assertion.
	c.AssertFormat()
	for _, name := range schemas.Names() {
		b, err := schemas.FS.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("trigger: read schema %s: %w", name, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("trigger: parse schema %s: %w", name, err)
		}
		if err := c.AddResource(schemas.BaseURL+name, doc); err != nil {
			return nil, fmt.Errorf("trigger: add schema %s: %w", name, err)
		}
	}
	var d Decoder
	for _, s := range []struct {
		dst **jsonschema.Schema
		url string
	}{
		{&d.adTrigger, schemas.BaseURL + schemas.ADTrigger},
		{&d.syncRequested, schemas.BaseURL + schemas.SyncRequested},
		{&d.resultTrigger, resultTriggerRef},
	} {
		sch, err := c.Compile(s.url)
		if err != nil {
			return nil, fmt.Errorf("trigger: compile %s: %w", s.url, err)
		}
		*s.dst = sch
	}
	return &d, nil
}

// Decode reads a NATS message as a trigger: cenats.Decode; an accepted type; data that is JSON
// (datacontenttype absent, application/json or any */*+json, UTF-8), at most cenats.MaxDataBytes,
// nested at most 32 deep; valid against the type's schema; a group on ad.group.*, a user on
// ad.user.*. Every rejection is an *Error.
func (d *Decoder) Decode(h nats.Header, payload []byte) (Trigger, error) {
	e, err := cenats.Decode(h, payload)
	if err != nil {
		var de *cenats.DecodeError
		reason := "not a CloudEvent"
		if errors.As(err, &de) {
			reason = de.Reason
		}
		return Trigger{}, newError(contract.CodeMalformed, reason, "", "")
	}
	id, typ := e.ID(), e.Type()
	reject := func(code contract.DeadCode, reason string) (Trigger, error) {
		return Trigger{}, newError(code, reason, id, typ)
	}

	if !acceptedType(typ) {
		return reject(contract.CodeUnknownType, fmt.Sprintf("type %s is not a trigger type (want ad.group.*, ad.user.* or %s)", echo(typ), contract.TypeSyncRequested))
	}
	envelope := map[string]any{"id": id, "source": e.Source(), "type": typ}
	if err := d.resultTrigger.Validate(envelope); err != nil {
		return reject(contract.CodeSchema, schemaReason(err, true))
	}
	if reason := checkContentType(e.DataContentType()); reason != "" {
		return reject(contract.CodeUnsupportedContentType, reason)
	}

	data := e.Data()
	switch {
	case len(data) == 0:
		return reject(contract.CodeMalformed, "event has no data")
	case len(data) > cenats.MaxDataBytes:
		return reject(contract.CodeMalformed, fmt.Sprintf("data of %d bytes exceeds the limit of %d", len(data), cenats.MaxDataBytes))
	case !utf8.Valid(data):
		return reject(contract.CodeMalformed, "data is not valid UTF-8")
	case tooDeep(data, maxDepth):
		// Checked before parsing: encoding/json recurses once per level.
		return reject(contract.CodeMalformed, fmt.Sprintf("data nests deeper than %d levels", maxDepth))
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return reject(contract.CodeMalformed, "data is not valid JSON: "+safetext.Truncate(err.Error(), maxEchoBytes))
	}

	sch := d.adTrigger
	if typ == contract.TypeSyncRequested {
		sch = d.syncRequested
	}
	if err := sch.Validate(doc); err != nil {
		return reject(contract.CodeSchema, schemaReason(err, false))
	}
	obj, _ := doc.(map[string]any) // both schemas require an object
	switch {
	case isGroupType(typ) && obj["group"] == nil:
		return reject(contract.CodeSchema, "/group: required for ad.group.* events")
	case isUserType(typ) && obj["user"] == nil:
		return reject(contract.CodeSchema, "/user: required for ad.user.* events")
	}

	t := Trigger{
		ID:        id,
		Source:    e.Source(),
		Type:      typ,
		Subject:   e.Subject(),
		Tenant:    str(obj, "tenant"),
		Directory: str(obj, "directory"),
		Domain:    str(obj, "domain"),
	}
	if when := e.Time(); !when.IsZero() {
		t.Time = when.UTC()
	}
	ext, _ := cenats.Extension(e, extTraceparent)
	if tp, ok := ext.(string); ok && validTraceparent(tp) {
		t.Traceparent = tp
	}
	t.IgnoreSafeguards, _ = obj["ignoreSafeguards"].(bool)
	switch {
	case isGroupType(typ):
		g, _ := obj["group"].(map[string]any)
		t.Group = str(g, "name")
	case isUserType(typ):
		u, _ := obj["user"].(map[string]any)
		t.User = str(u, "upn")
		if t.User == "" {
			t.User = str(u, "name")
		}
	default:
		t.Reason = str(obj, "reason")
	}
	return t, nil
}

func str(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

// checkContentType accepts no datacontenttype (JSON by the CloudEvents default), application/json
// and any */*+json, in UTF-8. It returns "" or the reason for rejecting.
func checkContentType(ct string) string {
	if ct == "" {
		return ""
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "datacontenttype " + echo(ct) + " is not a media type"
	}
	if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return "datacontenttype " + echo(mt) + " is not JSON (want application/json)"
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return "charset " + echo(cs) + " is not supported (want utf-8)"
	}
	return ""
}

// tooDeep reports whether JSON text b nests arrays and objects more than max levels deep. It only
// tracks brackets outside strings, in one pass, so it is safe on any input, valid JSON or not.
func tooDeep(b []byte, max int) bool {
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
			if depth > max {
				return true
			}
		case ']', '}':
			depth--
		}
	}
	return false
}
