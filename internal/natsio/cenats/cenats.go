// Package cenats is a thin CloudEvents binding over NATS messages, after the CloudEvents NATS
// protocol binding (version 1.0.3: binary and structured content modes), using the event model of
// github.com/cloudevents/sdk-go/v2. It only converts between messages and events: acknowledging,
// retrying and dead-lettering stay with the caller, which is why sdk-go's own NATS JetStream
// protocol (it acknowledges on receipt) is not used.
//
// Binary mode carries each attribute in a "ce-<name>" header, percent-encoded as the binding
// specifies, and the data as the payload. Structured mode carries the whole event as JSON, with
// Content-Type application/cloudevents+json. Header names are matched case-insensitively, as NATS
// defines them, although nats.Header's own methods are case-sensitive.
package cenats

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/safetext"
)

const (
	// HeaderPrefix starts the name of every binary-mode attribute header ("ce-id", "ce-type", …).
	HeaderPrefix = "ce-"
	// ContentTypeStructured marks a structured-mode message: the payload is the whole event as JSON.
	ContentTypeStructured = "application/cloudevents+json"
	// MaxDataBytes bounds the payload of a message Decode accepts (in structured mode, the whole
	// event) and the data an Encode function sends.
	MaxDataBytes = 1 << 20
)

const (
	headerContentType = "Content-Type"
	// The binary-mode header names of the context attributes, spelled out so that encoding does
	// not build them per event.
	headerSpecVersion     = HeaderPrefix + attrSpecVersion
	headerID              = HeaderPrefix + attrID
	headerSource          = HeaderPrefix + attrSource
	headerType            = HeaderPrefix + attrType
	headerSubject         = HeaderPrefix + attrSubject
	headerTime            = HeaderPrefix + attrTime
	headerDataSchema      = HeaderPrefix + attrDataSchema
	headerDataContentType = HeaderPrefix + attrDataContentType
	// maxExtensionName is the CloudEvents limit on attribute names.
	maxExtensionName = 20
	// maxErrorEcho bounds how much of a library error message (which may quote input) is kept.
	maxErrorEcho = 64
	// maxValidationMessage bounds one message of sdk-go's Validate, which are fixed texts (they do
	// not quote the value) but can be long.
	maxValidationMessage = 120
)

// The CloudEvents 1.0 context attributes. Anything else in ce-* headers or at the top level of a
// structured event is an extension.
const (
	attrSpecVersion     = "specversion"
	attrID              = "id"
	attrSource          = "source"
	attrType            = "type"
	attrSubject         = "subject"
	attrTime            = "time"
	attrDataSchema      = "dataschema"
	attrDataContentType = "datacontenttype"
)

func isContextAttribute(name string) bool {
	switch name {
	case attrSpecVersion, attrID, attrSource, attrType, attrSubject, attrTime, attrDataSchema, attrDataContentType:
		return true
	}
	return false
}

// isReservedName reports names that may not be extensions: the context attributes and the members
// that carry data in the JSON format.
func isReservedName(name string) bool {
	return isContextAttribute(name) || name == "data" || name == "data_base64"
}

// validExtensionName is the CloudEvents naming rule: 1 to 20 lower-case ASCII letters or digits.
func validExtensionName(name string) bool {
	if name == "" || len(name) > maxExtensionName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// Decode reads a NATS message as a CloudEvent.
//
// Structured mode: the Content-Type header's media type (case-insensitive, parameters ignored) is
// application/cloudevents+json (or the bare application/cloudevents); the payload is the event in
// the JSON format. A message with neither a Content-Type nor any ce-* header (as a server older than
// NATS 2.2 or a header-less publisher delivers it) is also read as structured.
//
// Binary mode, otherwise: ce-specversion, ce-id, ce-source and ce-type are required; ce-subject,
// ce-time (RFC 3339), ce-dataschema and ce-datacontenttype are optional; any other ce-<name> is the
// extension <name> (ce-traceparent → "traceparent"). datacontenttype comes from ce-datacontenttype,
// else from Content-Type, else is application/json when there is data. The data is the payload
// itself (not copied).
//
// Every rejection is a *DecodeError. Decode never panics.
func Decode(h nats.Header, payload []byte) (event.Event, error) {
	if len(payload) > MaxDataBytes {
		return event.Event{}, decodeErrorf("payload of %d bytes exceeds the limit of %d", len(payload), MaxDataBytes)
	}
	hv, derr := readHeaders(h)
	if derr != nil {
		return event.Event{}, derr
	}
	if hv.hasContentType {
		structured, err := isStructuredContentType(hv.contentType)
		if err != nil {
			return event.Event{}, err
		}
		if structured {
			e, err := decodeStructured(payload)
			if err != nil {
				return event.Event{}, err
			}
			return e, nil
		}
	}
	if len(hv.attrs) == 0 && !hv.hasContentType {
		e, err := decodeStructured(payload)
		if err != nil {
			return event.Event{}, decodeErrorf("no ce-* headers, and the payload is not a structured event: %s", err.Reason)
		}
		return e, nil
	}
	return decodeBinary(hv, payload)
}

// isStructuredContentType tells structured mode from binary mode by the Content-Type header. Other
// CloudEvents formats (batch, Avro, Protobuf) are not supported and rejected.
func isStructuredContentType(ct string) (bool, *DecodeError) {
	mt := mediaType(ct)
	switch {
	case mt == ContentTypeStructured || mt == "application/cloudevents":
		return true, nil
	case strings.HasPrefix(mt, "application/cloudevents"):
		return false, decodeErrorf("unsupported CloudEvents content type %s", snippet(mt))
	}
	return false, nil
}

// mediaType is the lower-case media type of a content type, parameters ignored, also when they do
// not parse.
func mediaType(ct string) string {
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		return mt
	}
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// isSuffixJSON reports the */*+json media types whose data the JSON format carries as a JSON value
// but sdk-go treats as a string (it knows only application/json, text/json and its own types), so
// that this binding reads and writes such data itself.
func isSuffixJSON(ct string) bool {
	mt := mediaType(ct)
	return strings.HasSuffix(mt, "+json") && !strings.HasPrefix(mt, "application/cloudevents")
}

func decodeBinary(hv headerView, payload []byte) (event.Event, error) {
	attrs := make(map[string]string, len(hv.attrs))
	// Sorted so that the header reported in an error does not depend on map order.
	for _, name := range sortedKeys(hv.attrs) {
		raw := hv.attrs[name]
		if !isContextAttribute(name) {
			if !validExtensionName(name) || isReservedName(name) {
				return event.Event{}, decodeErrorf("header %s: extension names must be 1 to %d lower-case letters or digits", snippet(HeaderPrefix+name), maxExtensionName)
			}
		}
		v, err := decodeHeaderValue(raw)
		if err == nil && v == "" && isContextAttribute(name) {
			// Absent and empty differ for extensions only; a context attribute is never empty.
			err = errEmptyValue
		}
		if err == nil {
			err = checkString(v)
		}
		if err != nil {
			return event.Event{}, headerError(HeaderPrefix+name, err)
		}
		attrs[name] = v
	}
	for _, name := range []string{attrSpecVersion, attrID, attrSource, attrType} {
		if _, ok := attrs[name]; !ok {
			return event.Event{}, decodeErrorf("required header %s%s is missing", HeaderPrefix, name)
		}
	}
	if sv := attrs[attrSpecVersion]; sv != event.CloudEventsVersionV1 {
		return event.Event{}, decodeErrorf("specversion %s is not supported (want %s)", snippet(sv), event.CloudEventsVersionV1)
	}

	e := event.New(event.CloudEventsVersionV1)
	e.SetID(attrs[attrID])
	e.SetSource(attrs[attrSource])
	e.SetType(attrs[attrType])
	if v, ok := attrs[attrSubject]; ok {
		e.SetSubject(v)
	}
	if v, ok := attrs[attrTime]; ok {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return event.Event{}, decodeErrorf("header ce-time %s is not an RFC 3339 timestamp", snippet(v))
		}
		e.SetTime(t)
	}
	if v, ok := attrs[attrDataSchema]; ok {
		e.SetDataSchema(v)
	}
	switch v, ok := attrs[attrDataContentType]; {
	case ok:
		e.SetDataContentType(v)
	case hv.hasContentType:
		e.SetDataContentType(hv.contentType)
	case len(payload) > 0:
		e.SetDataContentType(event.ApplicationJSON)
	}
	for name, v := range attrs {
		if !isContextAttribute(name) {
			e.SetExtension(name, v)
		}
	}
	if len(payload) > 0 {
		e.DataEncoded = payload
	}
	if reason := checkEvent(e); reason != "" {
		return event.Event{}, decodeErrorf("%s", reason)
	}
	return e, nil
}

func decodeStructured(payload []byte) (event.Event, *DecodeError) {
	// The JSON format requires UTF-8; sdk-go's parser would not notice.
	if !utf8.Valid(payload) {
		return event.Event{}, decodeErrorf("structured event is not valid UTF-8")
	}
	// A strict pass with encoding/json first: sdk-go's parser (json-iterator, "fastest" config) is
	// lenient, and it lower-cases member names, which hides names the naming rule forbids.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(payload, &top); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return event.Event{}, decodeErrorf("structured event is a JSON %s, not an object", typeErr.Value)
		}
		return event.Event{}, decodeErrorf("structured event is not valid JSON: %s", safetext.Truncate(err.Error(), maxErrorEcho))
	}
	if top == nil {
		return event.Event{}, decodeErrorf("structured event is JSON null, not an object")
	}
	for _, name := range sortedKeys(top) {
		if !isReservedName(name) && !validExtensionName(name) {
			return event.Event{}, decodeErrorf("member %s: extension names must be 1 to %d lower-case letters or digits", snippet(name), maxExtensionName)
		}
	}
	if _, ok := top[attrSpecVersion]; !ok {
		return event.Event{}, decodeErrorf("structured event has no specversion")
	}
	var jsonData json.RawMessage
	if raw, ok := top["data"]; ok && isSuffixJSON(jsonString(top[attrDataContentType])) {
		// Parse the attributes without the data, and take the data as the JSON value it is.
		jsonData = raw
		delete(top, "data")
		b, err := json.Marshal(top)
		if err != nil {
			return event.Event{}, decodeErrorf("structured event: %s", safetext.Truncate(err.Error(), maxErrorEcho))
		}
		payload = b
	}
	var e event.Event
	if err := e.UnmarshalJSON(payload); err != nil {
		return event.Event{}, decodeErrorf("invalid structured event: %s", safetext.Truncate(strings.TrimSpace(err.Error()), maxErrorEcho))
	}
	if e.Context == nil || e.SpecVersion() != event.CloudEventsVersionV1 {
		return event.Event{}, decodeErrorf("specversion %s is not supported (want %s)", snippet(e.SpecVersion()), event.CloudEventsVersionV1)
	}
	if jsonData != nil {
		e.DataEncoded, e.DataBase64 = jsonData, false
	}
	// The binary path sets id, type and subject through sdk-go's setters, which trim white space:
	// the same event must decode the same either way (a trigger's id is its identity).
	if id := strings.TrimSpace(e.ID()); id != "" {
		_ = e.Context.SetID(id) // an id of white space alone is left for checkEvent to refuse
	}
	_ = e.Context.SetType(e.Type())
	if sub := e.Subject(); sub != "" {
		_ = e.Context.SetSubject(sub)
	}
	if reason := checkEvent(e); reason != "" {
		return event.Event{}, decodeErrorf("%s", reason)
	}
	return e, nil
}

// jsonString is the string a raw JSON value holds, or "" if it holds none.
func jsonString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// checkEvent applies what both modes, and both directions, require beyond the sdk's Validate: the
// CloudEvents string rules, the extension naming rule and the data limit. It returns "" or a
// reason that quotes at most a snippet of input.
func checkEvent(e event.Event) string {
	if e.Context == nil {
		return "event has no context"
	}
	if e.SpecVersion() != event.CloudEventsVersionV1 {
		return fmt.Sprintf("specversion %s is not supported (want %s)", snippet(e.SpecVersion()), event.CloudEventsVersionV1)
	}
	if err := e.Validate(); err != nil {
		return validationReason(err)
	}
	// Reported in this order: extension names, then the attributes' strings, then the
	// extensions' strings.
	exts := extensions(e)
	names := sortedKeys(exts)
	for _, name := range names {
		if !validExtensionName(name) || isReservedName(name) {
			return fmt.Sprintf("extension %s: names must be 1 to %d lower-case letters or digits", snippet(name), maxExtensionName)
		}
	}
	for _, s := range [...]struct{ name, value string }{
		{attrID, e.ID()},
		{attrSource, e.Source()},
		{attrType, e.Type()},
		{attrSubject, e.Subject()},
		{attrDataSchema, e.DataSchema()},
		{attrDataContentType, e.DataContentType()},
	} {
		if err := checkString(s.value); err != nil {
			return fmt.Sprintf("attribute %s %v", s.name, err)
		}
	}
	for _, name := range names {
		if v, ok := exts[name].(string); ok {
			if err := checkString(v); err != nil {
				return fmt.Sprintf("attribute %s %v", name, err)
			}
		}
	}
	if len(e.Data()) > MaxDataBytes {
		return fmt.Sprintf("data of %d bytes exceeds the limit of %d", len(e.Data()), MaxDataBytes)
	}
	return ""
}

// validationReason renders sdk-go's ValidationError (a map, so in random order, with newlines)
// as one sorted line.
func validationReason(err error) string {
	var ve event.ValidationError
	if !errors.As(err, &ve) {
		return safetext.Truncate(strings.TrimSpace(err.Error()), maxErrorEcho)
	}
	parts := make([]string, 0, len(ve))
	for _, k := range slices.Sorted(maps.Keys(ve)) {
		parts = append(parts, "attribute "+k+": "+safetext.Truncate(strings.TrimSpace(ve[k].Error()), maxValidationMessage))
	}
	return strings.Join(parts, "; ")
}

// EncodeBinary builds a binary-mode message: a ce-* header (percent-encoded) for every set
// attribute and extension, the data as the payload, Content-Type set to the datacontenttype, and
// Nats-Msg-Id set to the event id (in the same encoding as ce-id, which leaves ids of printable
// ASCII without space, '"' or '%' unchanged), so that JetStream de-duplicates a re-publish. The
// event is validated first with the rules Decode applies.
//
// The datacontenttype is also sent as ce-datacontenttype, as the binding requires; Decode prefers
// that header to Content-Type. Content-Type is left out when the datacontenttype is itself a
// CloudEvents media type, which a receiver would take for structured mode.
func EncodeBinary(subject string, e event.Event) (*nats.Msg, error) {
	if err := checkEncode(subject, e); err != nil {
		return nil, err
	}
	exts := extensions(e)
	// The header's values share one backing array and the map is sized once: a result or trigger
	// is encoded per event, and one small allocation per header was most of the cost.
	vals := make([]string, 0, 10+len(exts))
	h := make(nats.Header, 10+len(exts))
	set := func(name, value string) {
		vals = append(vals, value)
		h[name] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set(headerSpecVersion, percentEncode(e.SpecVersion()))
	set(headerID, percentEncode(e.ID()))
	set(headerSource, percentEncode(e.Source()))
	set(headerType, percentEncode(e.Type()))
	if v := e.Subject(); v != "" {
		set(headerSubject, percentEncode(v))
	}
	if t := e.Time(); !t.IsZero() {
		set(headerTime, percentEncode(types.FormatTime(t)))
	}
	if v := e.DataSchema(); v != "" {
		set(headerDataSchema, percentEncode(v))
	}
	if ct := e.DataContentType(); ct != "" {
		set(headerDataContentType, percentEncode(ct))
		if mt, _, err := mime.ParseMediaType(ct); err == nil && !strings.HasPrefix(mt, "application/cloudevents") {
			set(headerContentType, ct)
		}
	}
	for _, name := range sortedKeys(exts) {
		s, err := types.Format(exts[name])
		if err != nil {
			return nil, fmt.Errorf("cloudevent: extension %s: %w", name, err)
		}
		set(HeaderPrefix+name, percentEncode(s))
	}
	set(nats.MsgIdHdr, percentEncode(e.ID()))
	return &nats.Msg{Subject: subject, Header: h, Data: e.Data()}, nil
}

// sortedKeys returns m's keys in order, allocated once (slices.Sorted(maps.Keys) grows its slice
// step by step).
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Extension returns the value of one extension attribute, without copying the event's extensions
// as the sdk's Extensions() does.
func Extension(e event.Event, name string) (any, bool) {
	v, ok := extensions(e)[name]
	return v, ok
}

// extensions returns the event's extensions for reading. The sdk's Extensions() copies the map on
// every call; the events here carry a *EventContextV1, whose map is read directly.
func extensions(e event.Event) map[string]any {
	if ec, ok := e.Context.(*event.EventContextV1); ok {
		return ec.Extensions
	}
	return e.Extensions()
}

// EncodeStructured builds a structured-mode message: Content-Type application/cloudevents+json and
// the event in the JSON format as the payload, with Nats-Msg-Id set as EncodeBinary sets it.
func EncodeStructured(subject string, e event.Event) (*nats.Msg, error) {
	if err := checkEncode(subject, e); err != nil {
		return nil, err
	}
	b, err := marshalStructured(e)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxDataBytes {
		return nil, fmt.Errorf("cloudevent: structured event of %d bytes exceeds the limit of %d", len(b), MaxDataBytes)
	}
	m := nats.NewMsg(subject)
	m.Header.Set(headerContentType, ContentTypeStructured)
	m.Header.Set(nats.MsgIdHdr, percentEncode(e.ID()))
	m.Data = b
	return m, nil
}

func checkEncode(subject string, e event.Event) error {
	if subject == "" {
		return errors.New("cloudevent: empty NATS subject")
	}
	if reason := checkEvent(e); reason != "" {
		return fmt.Errorf("cloudevent: cannot encode: %s", reason)
	}
	return nil
}

// marshalStructured is the event in the JSON format. For */*+json data it writes the data as the
// JSON value it is, where sdk-go would write a string.
func marshalStructured(e event.Event) ([]byte, error) {
	data := e.Data()
	if data == nil || e.DataBase64 || !isSuffixJSON(e.DataContentType()) {
		b, err := e.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("cloudevent: encode structured: %w", err)
		}
		return b, nil
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("cloudevent: cannot encode: datacontenttype %s but the data is not JSON", e.DataContentType())
	}
	attrs := e.Clone()
	attrs.DataEncoded = nil
	b, err := attrs.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("cloudevent: encode structured: %w", err)
	}
	if len(b) == 0 || b[len(b)-1] != '}' {
		return nil, errors.New("cloudevent: encode structured: attributes are not a JSON object")
	}
	b = append(b[:len(b)-1], `,"data":`...)
	b = append(b, data...)
	return append(b, '}'), nil
}
