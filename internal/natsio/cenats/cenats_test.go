package cenats_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// newEvent is a complete event with every optional attribute set and two extensions.
func newEvent(t *testing.T) event.Event {
	t.Helper()
	e := event.New(event.CloudEventsVersionV1)
	e.SetID("5c1e7a52-0f0e-4d8e-9a41-6b7f3e2d9c10")
	e.SetSource("https://pipelines.corp.example.com/provision-project")
	e.SetType("ad.group.created")
	e.SetSubject("Corp AD – Zürich 50% \"east\"") // space, quotes, percent and non-ASCII
	e.SetTime(time.Date(2025, 11, 23, 14, 52, 7, 123000000, time.UTC))
	e.SetDataSchema("https://vidm-sync-worker.dev/schemas/ad-trigger.data.schema.json")
	e.SetExtension("traceparent", traceparent)
	e.SetExtension("partitionkey", "corp.example.com")
	if err := e.SetData(event.ApplicationJSON, map[string]any{"domain": "corp.example.com", "group": map[string]string{"name": "proj-alpha-admins"}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	return e
}

// assertSameEvent compares what both modes must carry over unchanged.
func assertSameEvent(t *testing.T, got, want event.Event) {
	t.Helper()
	checks := []struct{ name, got, want string }{
		{"specversion", got.SpecVersion(), want.SpecVersion()},
		{"id", got.ID(), want.ID()},
		{"source", got.Source(), want.Source()},
		{"type", got.Type(), want.Type()},
		{"subject", got.Subject(), want.Subject()},
		{"dataschema", got.DataSchema(), want.DataSchema()},
		{"datacontenttype", got.DataContentType(), want.DataContentType()},
		{"data", string(got.Data()), string(want.Data())},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !got.Time().Equal(want.Time()) {
		t.Errorf("time = %v, want %v", got.Time(), want.Time())
	}
	if !maps.Equal(got.Extensions(), want.Extensions()) {
		t.Errorf("extensions = %v, want %v", got.Extensions(), want.Extensions())
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	want := newEvent(t)
	m, err := cenats.EncodeBinary("dirsync.trigger.corp", want)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "dirsync.trigger.corp" {
		t.Errorf("subject = %q", m.Subject)
	}
	wantHeaders := map[string]string{
		"ce-specversion":     "1.0",
		"ce-id":              want.ID(),
		"ce-source":          want.Source(),
		"ce-type":            "ad.group.created",
		"ce-time":            "2025-11-23T14:52:07.123Z",
		"ce-subject":         "Corp%20AD%20%E2%80%93%20Z%C3%BCrich%2050%25%20%22east%22",
		"ce-dataschema":      want.DataSchema(),
		"ce-datacontenttype": "application/json",
		"ce-traceparent":     traceparent,
		"ce-partitionkey":    "corp.example.com",
		"Content-Type":       "application/json",
		nats.MsgIdHdr:        want.ID(),
	}
	for k, v := range wantHeaders {
		if got := m.Header.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("header %s = %q, want [%q]", k, got, v)
		}
	}
	if len(m.Header) != len(wantHeaders) {
		t.Errorf("headers = %v, want exactly %d", m.Header, len(wantHeaders))
	}
	if !bytes.Equal(m.Data, want.Data()) {
		t.Errorf("payload = %s, want the data %s", m.Data, want.Data())
	}
	got, err := cenats.Decode(m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	assertSameEvent(t, got, want)
}

func TestStructuredRoundTrip(t *testing.T) {
	want := newEvent(t)
	m, err := cenats.EncodeStructured("dirsync.trigger.corp", want)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get("Content-Type"); got != cenats.ContentTypeStructured {
		t.Errorf("Content-Type = %q", got)
	}
	if got := m.Header.Get(nats.MsgIdHdr); got != want.ID() {
		t.Errorf("Nats-Msg-Id = %q, want %q", got, want.ID())
	}
	var doc map[string]any
	if err := json.Unmarshal(m.Data, &doc); err != nil {
		t.Fatalf("payload is not JSON: %v", err)
	}
	if doc["specversion"] != "1.0" || doc["traceparent"] != traceparent {
		t.Errorf("payload = %s", m.Data)
	}
	got, err := cenats.Decode(m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	assertSameEvent(t, got, want)
}

// A message id with characters that need encoding gets the same encoding in Nats-Msg-Id as in
// ce-id, so that both publishes of one event carry the same id.
func TestMsgIDEncoding(t *testing.T) {
	e := newEvent(t)
	e.SetID("run 42/ü")
	for name, encode := range map[string]func(string, event.Event) (*nats.Msg, error){
		"binary": cenats.EncodeBinary, "structured": cenats.EncodeStructured,
	} {
		m, err := encode("s", e)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get(nats.MsgIdHdr); got != "run%2042/%C3%BC" {
			t.Errorf("%s: Nats-Msg-Id = %q", name, got)
		}
	}
}

// binaryHeader is a minimal valid binary-mode header.
func binaryHeader() nats.Header {
	return nats.Header{
		"ce-specversion": {"1.0"},
		"ce-id":          {"id-1"},
		"ce-source":      {"/test"},
		"ce-type":        {"ad.group.created"},
	}
}

func TestHeaderNamesAreCaseInsensitive(t *testing.T) {
	h := nats.Header{
		"CE-SPECVERSION": {"1.0"},
		"Ce-Id":          {"id-1"},
		"ce-Source":      {"/test"},
		"cE-tYpE":        {"ad.group.created"},
		"CE-TraceParent": {traceparent},
		"content-type":   {"application/json; charset=utf-8"},
	}
	e, err := cenats.Decode(h, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if e.ID() != "id-1" || e.Source() != "/test" || e.Type() != "ad.group.created" {
		t.Errorf("attributes = %s", e.Context)
	}
	if got := e.Extensions()["traceparent"]; got != traceparent {
		t.Errorf("traceparent = %v", got)
	}
	if got := e.DataContentType(); got != "application/json; charset=utf-8" {
		t.Errorf("datacontenttype = %q", got)
	}

	structured := nats.Header{"CONTENT-TYPE": {"Application/CloudEvents+JSON; charset=UTF-8"}}
	e, err = cenats.Decode(structured, []byte(`{"specversion":"1.0","id":"x","source":"/s","type":"t"}`))
	if err != nil {
		t.Fatal(err)
	}
	if e.ID() != "x" {
		t.Errorf("id = %q", e.ID())
	}
}

func TestDecodeBinaryDetails(t *testing.T) {
	tests := []struct {
		name   string
		header nats.Header
		data   string
		check  func(t *testing.T, e event.Event)
	}{
		{
			name:   "datacontenttype defaults to JSON when there is data",
			header: binaryHeader(),
			data:   `{"a":1}`,
			check: func(t *testing.T, e event.Event) {
				if e.DataContentType() != event.ApplicationJSON || string(e.Data()) != `{"a":1}` {
					t.Errorf("datacontenttype %q, data %q", e.DataContentType(), e.Data())
				}
			},
		},
		{
			name:   "no data, no datacontenttype",
			header: binaryHeader(),
			check: func(t *testing.T, e event.Event) {
				if e.DataContentType() != "" || e.Data() != nil {
					t.Errorf("datacontenttype %q, data %q", e.DataContentType(), e.Data())
				}
			},
		},
		{
			name:   "ce-datacontenttype wins over Content-Type",
			header: with(binaryHeader(), "ce-datacontenttype", "application/vnd.example+json", "Content-Type", "text/plain"),
			data:   `{}`,
			check: func(t *testing.T, e event.Event) {
				if e.DataContentType() != "application/vnd.example+json" {
					t.Errorf("datacontenttype %q", e.DataContentType())
				}
			},
		},
		{
			name:   "percent-decoding accepts lower case and needless escapes",
			header: with(binaryHeader(), "ce-subject", "Euro%20%e2%82%ac%20%F0%9F%98%80%41"),
			check: func(t *testing.T, e event.Event) {
				if e.Subject() != "Euro € 😀A" {
					t.Errorf("subject %q", e.Subject())
				}
			},
		},
		{
			name:   "quoted-string values of older publishers",
			header: with(binaryHeader(), "ce-subject", `"Corp AD \"east\""`),
			check: func(t *testing.T, e event.Event) {
				if e.Subject() != `Corp AD "east"` {
					t.Errorf("subject %q", e.Subject())
				}
			},
		},
		{
			name:   "raw UTF-8 from a publisher that does not encode",
			header: with(binaryHeader(), "ce-subject", "Zürich"),
			check: func(t *testing.T, e event.Event) {
				if e.Subject() != "Zürich" {
					t.Errorf("subject %q", e.Subject())
				}
			},
		},
		{
			name:   "time with an offset",
			header: with(binaryHeader(), "ce-time", "2025-11-23T15:52:07.5+01:00"),
			check: func(t *testing.T, e event.Event) {
				if want := time.Date(2025, 11, 23, 14, 52, 7, 5e8, time.UTC); !e.Time().Equal(want) {
					t.Errorf("time %v, want %v", e.Time(), want)
				}
			},
		},
		{
			name:   "headers other than ce-* and Content-Type are ignored",
			header: with(binaryHeader(), "Nats-Msg-Id", "id-1", "X-Whatever", "\x01"),
			check:  func(t *testing.T, e event.Event) {},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := cenats.Decode(tt.header, []byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, e)
		})
	}
}

// with returns h plus the given name/value pairs (a value replaces an existing one).
func with(h nats.Header, kv ...string) nats.Header {
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = []string{kv[i+1]}
	}
	return h
}

func without(h nats.Header, names ...string) nats.Header {
	for _, n := range names {
		delete(h, n)
	}
	return h
}

func TestDecodeRejects(t *testing.T) {
	long := strings.Repeat("x", 5000)
	tests := []struct {
		name    string
		header  nats.Header
		payload string
		want    string // in the Reason
	}{
		{"no headers, not JSON", nil, "hello", "no ce-* headers"},
		{"no headers, empty payload", nats.Header{}, "", "no ce-* headers"},
		{"no headers, JSON without specversion", nil, `{"id":"x"}`, "no specversion"},
		{"missing ce-id", without(binaryHeader(), "ce-id"), "{}", "ce-id is missing"},
		{"missing ce-source", without(binaryHeader(), "ce-source"), "{}", "ce-source is missing"},
		{"missing ce-type", without(binaryHeader(), "ce-type"), "{}", "ce-type is missing"},
		{"missing ce-specversion", without(binaryHeader(), "ce-specversion"), "{}", "ce-specversion is missing"},
		{"specversion 0.3", with(binaryHeader(), "ce-specversion", "0.3"), "{}", `specversion "0.3" is not supported`},
		{"empty ce-id", with(binaryHeader(), "ce-id", ""), "{}", "is empty"},
		{"blank ce-id", with(binaryHeader(), "ce-id", "%20"), "{}", "attribute id: MUST be a non-empty string"},
		{"bad time", with(binaryHeader(), "ce-time", "yesterday"), "{}", "not an RFC 3339 timestamp"},
		{"time without zone", with(binaryHeader(), "ce-time", "2025-11-23T14:52:07"), "{}", "not an RFC 3339 timestamp"},
		{"relative dataschema", with(binaryHeader(), "ce-dataschema", "schemas/x.json"), "{}", "attribute dataschema"},
		{"bad content type", with(binaryHeader(), "Content-Type", "a b"), "{}", "attribute datacontenttype"},
		{"invalid UTF-8 in a header", with(binaryHeader(), "ce-subject", "a\xffb"), "{}", "is not valid UTF-8"},
		{"invalid UTF-8 percent-encoded", with(binaryHeader(), "ce-subject", "a%FFb"), "{}", "is not valid UTF-8"},
		{"overlong encoding", with(binaryHeader(), "ce-subject", "%C0%A0"), "{}", "is not valid UTF-8"},
		{"encoded surrogate", with(binaryHeader(), "ce-subject", "%ED%A0%80"), "{}", "is not valid UTF-8"},
		{"control character in a header", with(binaryHeader(), "ce-subject", "a\x01b"), "{}", "contains a control character"},
		{"tab in a header", with(binaryHeader(), "ce-id", "a\tb"), "{}", "contains a control character"},
		{"control character percent-encoded", with(binaryHeader(), "ce-subject", "a%0Ab"), "{}", "contains a control character"},
		{"C1 control character", with(binaryHeader(), "ce-subject", "a%C2%85b"), "{}", "contains a control character"},
		{"noncharacter", with(binaryHeader(), "ce-subject", "a%EF%BF%BEb"), "{}", "noncharacter"},
		{"control character in Content-Type", with(binaryHeader(), "Content-Type", "application/json\x00"), "{}", "contains a control character"},
		{"bad percent-encoding", with(binaryHeader(), "ce-subject", "50%"), "{}", "invalid percent-encoding"},
		{"bad percent hex", with(binaryHeader(), "ce-subject", "%zz"), "{}", "invalid percent-encoding"},
		{"unbalanced quotes", with(binaryHeader(), "ce-subject", `"abc`), "{}", "unbalanced double quotes"},
		{"extension name with a dash", with(binaryHeader(), "ce-trace-parent", "x"), "{}", "extension names must be"},
		{"extension name too long", with(binaryHeader(), "ce-abcdefghijklmnopqrstu", "x"), "{}", "extension names must be"},
		{"extension name data", with(binaryHeader(), "ce-data", "x"), "{}", "extension names must be"},
		{"extension name empty", with(binaryHeader(), "ce-", "x"), "{}", "extension names must be"},
		{"header given twice", with(binaryHeader(), "ce-id", "a", "CE-ID", "b"), "{}", "is given more than once"},
		{"header with two values", func() nats.Header { h := binaryHeader(); h["ce-type"] = []string{"a", "b"}; return h }(), "{}", "is given more than once"},
		{"two Content-Type headers", with(binaryHeader(), "Content-Type", "a/b", "content-type", "a/b"), "{}", "is given more than once"},
		{"payload too large", binaryHeader(), strings.Repeat(" ", cenats.MaxDataBytes+1), "exceeds the limit"},
		{"batch mode", nats.Header{"Content-Type": {"application/cloudevents-batch+json"}}, "[]", "unsupported CloudEvents content type"},
		{"structured, invalid JSON", structured(), `{"specversion":"1.0",`, "not valid JSON"},
		{"structured, not an object", structured(), `["specversion"]`, "not an object"},
		{"structured, null", structured(), `null`, "not an object"},
		{"structured, string", structured(), `"1.0"`, "not an object"},
		{"structured, invalid UTF-8", structured(), "{\"specversion\":\"1.0\",\"id\":\"\xff\"}", "not valid UTF-8"},
		{"structured, missing id", structured(), `{"specversion":"1.0","source":"/s","type":"t"}`, "attribute id"},
		{"structured, specversion 0.3", structured(), `{"specversion":"0.3","id":"x","source":"/s","type":"t"}`, "is not supported"},
		{"structured, unknown specversion", structured(), `{"specversion":"2.0","id":"x","source":"/s","type":"t"}`, "invalid structured event"},
		{"structured, bad time", structured(), `{"specversion":"1.0","id":"x","source":"/s","type":"t","time":"noon"}`, "invalid structured event"},
		{"structured, upper-case extension", structured(), `{"specversion":"1.0","id":"x","source":"/s","type":"t","TraceParent":"x"}`, "extension names must be"},
		{"structured, object extension", structured(), `{"specversion":"1.0","id":"x","source":"/s","type":"t","ext":{}}`, "invalid structured event"},
		{"structured, control character", structured(), `{"specversion":"1.0","id":"x\u0007","source":"/s","type":"t"}`, "attribute id contains a control character"},
		{"structured, too large", structured(), `{"specversion":"1.0","id":"x","source":"/s","type":"t","data":"` + strings.Repeat("a", cenats.MaxDataBytes) + `"}`, "exceeds the limit"},
		{"long offending value is not echoed whole", with(binaryHeader(), "ce-specversion", long), "{}", "is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cenats.Decode(tt.header, []byte(tt.payload))
			de := assertDecodeError(t, err)
			if !strings.Contains(de.Reason, tt.want) {
				t.Errorf("reason %q does not contain %q", de.Reason, tt.want)
			}
			if strings.Contains(de.Reason, strings.Repeat("x", 65)) {
				t.Errorf("reason echoes more than 64 bytes of input: %q", de.Reason)
			}
		})
	}
}

func structured() nats.Header {
	return nats.Header{"Content-Type": {cenats.ContentTypeStructured}}
}

// assertDecodeError checks the contract of every rejection: a *DecodeError with a short, printable
// Reason.
func assertDecodeError(t testing.TB, err error) *cenats.DecodeError {
	t.Helper()
	var de *cenats.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *cenats.DecodeError", err, err)
	}
	if de.Reason == "" || len(de.Reason) > 256 || !utf8.ValidString(de.Reason) {
		t.Fatalf("reason %q: empty, longer than 256 bytes or invalid UTF-8", de.Reason)
	}
	for _, r := range de.Reason {
		if r < 0x20 || (r >= 0x7F && r <= 0x9F) {
			t.Fatalf("reason %q contains control character %U", de.Reason, r)
		}
	}
	if got, want := de.Error(), "cloudevent: "+de.Reason; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	return de
}

func TestEncodeRejects(t *testing.T) {
	tests := []struct {
		name    string
		subject string
		mutate  func(e *event.Event)
	}{
		{"empty subject", "", func(e *event.Event) {}},
		{"missing id", "s", func(e *event.Event) { e.SetID("") }},
		{"control character in subject", "s", func(e *event.Event) { e.SetSubject("a\nb") }},
		{"extension named data", "s", func(e *event.Event) { e.SetExtension("data", "x") }},
		{"upper-case extension", "s", func(e *event.Event) { e.Context.(*event.EventContextV1).Extensions["Ext"] = "x" }},
		{"data too large", "s", func(e *event.Event) { e.DataEncoded = make([]byte, cenats.MaxDataBytes+1) }},
		{"specversion 0.3", "s", func(e *event.Event) { e.SetSpecVersion(event.CloudEventsVersionV03) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEvent(t)
			tt.mutate(&e)
			if _, err := cenats.EncodeBinary(tt.subject, e); err == nil {
				t.Error("EncodeBinary accepted it")
			}
			if _, err := cenats.EncodeStructured(tt.subject, e); err == nil {
				t.Error("EncodeStructured accepted it")
			}
		})
	}
}

// A datacontenttype that is itself a CloudEvents type must not turn a binary message into a
// structured one on the way.
func TestEncodeBinaryCloudEventsData(t *testing.T) {
	e := newEvent(t)
	e.SetDataContentType(cenats.ContentTypeStructured)
	m, err := cenats.EncodeBinary("s", e)
	if err != nil {
		t.Fatal(err)
	}
	if ct := m.Header.Get("Content-Type"); ct != "" {
		t.Errorf("Content-Type = %q, want none", ct)
	}
	got, err := cenats.Decode(m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	assertSameEvent(t, got, e)
}

func TestHeaderlessStructured(t *testing.T) {
	payload := `{"specversion":"1.0","id":"x","source":"/s","type":"ad.user.created","data":{"user":{"name":"jdoe"}}}`
	e, err := cenats.Decode(nil, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if e.ID() != "x" || string(e.Data()) != `{"user":{"name":"jdoe"}}` {
		t.Errorf("event = %s", e)
	}
}

// The fixtures are messages as a pipeline publishes them; both modes carry the same event.
func TestFixtures(t *testing.T) {
	structuredPayload := readFile(t, "structured-group-created.json")
	fromStructured, err := cenats.Decode(structured(), structuredPayload)
	if err != nil {
		t.Fatal(err)
	}
	var header nats.Header
	if err := json.Unmarshal(readFile(t, "binary-group-created.headers.json"), &header); err != nil {
		t.Fatal(err)
	}
	binaryPayload := readFile(t, "binary-group-created.payload.json")
	fromBinary, err := cenats.Decode(header, binaryPayload)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []event.Event{fromStructured, fromBinary} {
		if e.ID() != "5c1e7a52-0f0e-4d8e-9a41-6b7f3e2d9c10" || e.Type() != "ad.group.created" || e.Subject() != "proj-alpha-admins" {
			t.Errorf("attributes = %s", e.Context)
		}
		if e.Extensions()["traceparent"] != traceparent {
			t.Errorf("traceparent = %v", e.Extensions()["traceparent"])
		}
		if !e.Time().Equal(time.Date(2025, 11, 23, 14, 52, 7, 123000000, time.UTC)) {
			t.Errorf("time = %v", e.Time())
		}
		var data struct {
			Group struct{ Name string }
		}
		if err := json.Unmarshal(e.Data(), &data); err != nil || data.Group.Name != "proj-alpha-admins" {
			t.Errorf("data = %s (%v)", e.Data(), err)
		}
	}
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sdk-go reads and writes the data of */*+json types as a JSON string; the JSON format carries it
// as the JSON value, and so does this binding, in both directions.
func TestStructuredSuffixJSONData(t *testing.T) {
	e := newEvent(t)
	e.SetDataContentType("application/vnd.corp.trigger+json")
	m, err := cenats.EncodeStructured("s", e)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(m.Data, &doc); err != nil {
		t.Fatal(err)
	}
	if got := string(doc["data"]); got != string(e.Data()) {
		t.Errorf("data member = %s, want the JSON value %s", got, e.Data())
	}
	got, err := cenats.Decode(m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	assertSameEvent(t, got, e)

	// As another publisher writes it.
	payload := `{"specversion":"1.0","id":"x","source":"/s","type":"t","datacontenttype":"application/vnd.corp.trigger+json; charset=utf-8","data":{"a":[1,"<b>"]}}`
	got, err = cenats.Decode(structured(), []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data()) != `{"a":[1,"<b>"]}` || got.ID() != "x" {
		t.Errorf("data %s, id %q", got.Data(), got.ID())
	}

	e.DataEncoded = []byte("not json")
	if _, err := cenats.EncodeStructured("s", e); err == nil {
		t.Error("EncodeStructured accepted +json data that is not JSON")
	}
}
