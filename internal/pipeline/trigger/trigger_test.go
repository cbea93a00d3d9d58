package trigger_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func newDecoder(t testing.TB) *trigger.Decoder {
	t.Helper()
	d, err := trigger.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func structuredHeader() nats.Header {
	return nats.Header{"Content-Type": {cenats.ContentTypeStructured}}
}

// message is one way to deliver a fixture.
type message struct {
	mode    string
	header  nats.Header
	payload []byte
}

// deliveries returns the structured fixture as it is, and, when it is a CloudEvent at all, the
// same event re-encoded in binary mode: every fixture is checked in both modes.
func deliveries(t *testing.T, file string) []message {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := []message{{"structured", structuredHeader(), b}}
	e, err := cenats.Decode(structuredHeader(), b)
	if err != nil {
		return out
	}
	m, err := cenats.EncodeBinary("test", e)
	if err != nil {
		t.Fatalf("re-encode %s in binary mode: %v", file, err)
	}
	return append(out, message{"binary", m.Header, m.Data})
}

func TestValidFixtures(t *testing.T) {
	d := newDecoder(t)
	src := "https://pipelines.corp.example.com/provision-project"
	tests := map[string]trigger.Trigger{
		"group-created": {
			ID: "5c1e7a52-0f0e-4d8e-9a41-6b7f3e2d9c10", Source: src, Type: "ad.group.created",
			Subject: "proj-alpha-admins", Time: time.Date(2025, 11, 23, 14, 52, 7, 123e6, time.UTC),
			Traceparent: traceparent, Tenant: "default", Directory: "Corp AD", Domain: "corp.example.com",
			Group: "proj-alpha-admins",
		},
		"group-deleted-domain-only": {
			ID: "grp-del-7", Source: src, Type: "ad.group.deleted", Domain: "emea.corp.example.com", Group: "proj-beta-readers",
		},
		"group-member-added-extra-context": {
			ID: "grp-mem-1", Source: src, Type: "ad.group.member.added", Domain: "corp.example.com", Group: "proj-alpha-admins",
		},
		"user-created-upn": {
			ID: "usr-1", Source: src, Type: "ad.user.created", Directory: "Corp AD", User: "jdoe@corp.example.com", IgnoreSafeguards: true,
		},
		"user-disabled-name": {
			ID: "usr-2", Source: src, Type: "ad.user.disabled", Tenant: "emea-2", Domain: "corp.example.com", User: "Jürgen Müller",
		},
		"user-created-vendor-json": {
			ID: "usr-3", Source: src, Type: "ad.user.created", Domain: "corp.example.com", User: "asmith@corp.example.com",
		},
		"sync-requested": {
			ID: "sync-req-42", Source: "/cli/jdoe", Type: contract.TypeSyncRequested, Time: time.Date(2025, 11, 23, 14, 2, 0, 0, time.UTC),
			Tenant: "default", Directory: "Corp AD", IgnoreSafeguards: true, Reason: "manual resync after OU move",
		},
	}
	forEachFixture(t, "testdata/valid", tests, func(t *testing.T, want trigger.Trigger, m message) {
		got, err := d.Decode(m.header, m.payload)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("got  %+v\nwant %+v", got, want)
		}
	})
}

func TestInvalidFixtures(t *testing.T) {
	d := newDecoder(t)
	tests := map[string]struct {
		code   contract.DeadCode
		reason string // in the Reason
	}{
		"unknown-type":                 {contract.CodeUnknownType, `type "ad.computer.created" is not a trigger type`},
		"type-with-empty-segment":      {contract.CodeUnknownType, "is not a trigger type"},
		"missing-domain-and-directory": {contract.CodeSchema, `(root): missing property "directory"; (root): missing property "domain"`},
		"group-name-too-long":          {contract.CodeSchema, "/group/name: length must be <= 256"},
		"tenant-uppercase":             {contract.CodeSchema, "/tenant: does not match pattern ^[a-z0-9][a-z0-9-]{0,62}$"},
		"group-type-with-only-user":    {contract.CodeSchema, "/group: required for ad.group.* events"},
		"user-type-with-only-group":    {contract.CodeSchema, "/user: required for ad.user.* events"},
		"content-type-text-plain":      {contract.CodeUnsupportedContentType, `datacontenttype "text/plain" is not JSON`},
		"data-not-an-object":           {contract.CodeSchema, "(root): must be object, not array"},
		"sync-requested-unknown-field": {contract.CodeSchema, `(root): unknown property "directoryName"`},
		"missing-id":                   {contract.CodeMalformed, "attribute id"},
		"id-too-long":                  {contract.CodeSchema, "attribute id: length must be <= 256"},
		"no-data":                      {contract.CodeMalformed, "event has no data"},
	}
	forEachFixture(t, "testdata/invalid", tests, func(t *testing.T, want struct {
		code   contract.DeadCode
		reason string
	}, m message) {
		_, err := d.Decode(m.header, m.payload)
		te := assertError(t, err, want.code)
		if !strings.Contains(te.Reason, want.reason) {
			t.Errorf("reason %q does not contain %q", te.Reason, want.reason)
		}
		if want.code != contract.CodeMalformed && (te.EventID == "" || te.EventType == "") {
			t.Errorf("event id %q or type %q not filled in", te.EventID, te.EventType)
		}
	})
}

// forEachFixture runs check on every delivery mode of every fixture in dir against its
// expectation, and fails for a fixture without an expectation or an expectation without a fixture.
func forEachFixture[T any](t *testing.T, dir string, expect map[string]T, check func(*testing.T, T, message)) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) != len(expect) {
		t.Errorf("%d files in %s, %d expectations", len(files), dir, len(expect))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		want, ok := expect[name]
		if !ok {
			t.Errorf("no expectation for %s", file)
			continue
		}
		for _, m := range deliveries(t, file) {
			t.Run(name+"/"+m.mode, func(t *testing.T) { check(t, want, m) })
		}
	}
}

// assertError checks the contract of every rejection: an *Error with the code and a short,
// printable Reason, and bounded EventID and EventType.
func assertError(t testing.TB, err error, code contract.DeadCode) *trigger.Error {
	t.Helper()
	var te *trigger.Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a *trigger.Error", err, err)
	}
	if code != "" && te.Code != code {
		t.Fatalf("code %s, want %s (%s)", te.Code, code, te.Reason)
	}
	switch te.Code {
	case contract.CodeMalformed, contract.CodeUnknownType, contract.CodeSchema, contract.CodeUnsupportedContentType:
	default:
		t.Fatalf("unknown code %q", te.Code)
	}
	if te.Reason == "" || len(te.Reason) > 512 {
		t.Fatalf("reason of %d bytes: %q", len(te.Reason), te.Reason)
	}
	for name, s := range map[string]string{"reason": te.Reason, "event id": te.EventID, "event type": te.EventType} {
		if !utf8.ValidString(s) {
			t.Fatalf("%s %q is not valid UTF-8", name, s)
		}
		for _, r := range s {
			if r < 0x20 || (r >= 0x7F && r <= 0x9F) {
				t.Fatalf("%s %q contains control character %U", name, s, r)
			}
		}
	}
	if len(te.EventID) > 256 || len(te.EventType) > 256 {
		t.Fatalf("event id or type longer than 256 bytes")
	}
	if got, want := te.Error(), "trigger rejected ("+string(te.Code)+"): "+te.Reason; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	return te
}

func binaryHeader(typ string) nats.Header {
	return nats.Header{
		"ce-specversion": {"1.0"},
		"ce-id":          {"id-1"},
		"ce-source":      {"/test"},
		"ce-type":        {typ},
	}
}

// nested wraps a valid group payload's extra context in n levels of arrays: depth n+1 in all.
func nested(n int) string {
	return `{"domain":"corp.example.com","group":{"name":"g"},"ctx":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
}

func TestDecodeMessages(t *testing.T) {
	d := newDecoder(t)
	group := `{"domain":"corp.example.com","group":{"name":"g"}}`
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	structuredDeep := `{"specversion":"1.0","id":"x","source":"/s","type":"ad.group.created","data":` + deep + `}`
	with := func(h nats.Header, kv ...string) nats.Header {
		for i := 0; i+1 < len(kv); i += 2 {
			h[kv[i]] = []string{kv[i+1]}
		}
		return h
	}
	tests := []struct {
		name    string
		header  nats.Header
		payload string
		code    contract.DeadCode // "" for accepted
		reason  string
		check   func(t *testing.T, tr trigger.Trigger)
	}{
		{name: "minimal group", header: binaryHeader("ad.group.created"), payload: group,
			check: func(t *testing.T, tr trigger.Trigger) {
				if tr.Group != "g" || tr.DirectoryRef() != "corp.example.com" || !tr.Time.IsZero() || tr.Tenant != "" {
					t.Errorf("%+v", tr)
				}
			}},
		{name: "depth 32 is accepted", header: binaryHeader("ad.group.created"), payload: nested(31)},
		{name: "depth 33 is too deep", header: binaryHeader("ad.group.created"), payload: nested(32), code: contract.CodeMalformed, reason: "nests deeper than 32 levels"},
		{name: "depth 10000", header: binaryHeader("ad.group.created"), payload: deep, code: contract.CodeMalformed, reason: "nests deeper"},
		{name: "depth 10000 structured", header: structuredHeader(), payload: structuredDeep, code: contract.CodeMalformed, reason: "JSON"},
		{name: "brackets inside strings do not count", header: binaryHeader("ad.group.created"),
			payload: `{"domain":"corp.example.com","group":{"name":"g"},"note":"` + strings.Repeat(`[{\"`, 100) + `"}`},
		{name: "bad JSON", header: binaryHeader("ad.group.created"), payload: `{"domain":`, code: contract.CodeMalformed, reason: "not valid JSON"},
		{name: "trailing data", header: binaryHeader("ad.group.created"), payload: group + ` {}`, code: contract.CodeMalformed, reason: "not valid JSON"},
		{name: "invalid UTF-8", header: binaryHeader("ad.group.created"), payload: "{\"domain\":\"corp.example.com\",\"group\":{\"name\":\"g\xff\"}}", code: contract.CodeMalformed, reason: "not valid UTF-8"},
		{name: "empty payload", header: binaryHeader("ad.group.created"), code: contract.CodeMalformed, reason: "no data"},
		{name: "not a CloudEvent", header: nil, payload: "hello", code: contract.CodeMalformed, reason: "no ce-* headers"},
		{name: "missing ce-id", header: func() nats.Header { h := binaryHeader("ad.group.created"); delete(h, "ce-id"); return h }(), payload: group, code: contract.CodeMalformed, reason: "ce-id is missing"},
		{name: "too large", header: binaryHeader("ad.group.created"), payload: strings.Repeat(" ", cenats.MaxDataBytes+1), code: contract.CodeMalformed, reason: "exceeds the limit"},
		{name: "unknown type", header: binaryHeader("ad.computer.created"), payload: group, code: contract.CodeUnknownType},
		{name: "bare ad.group", header: binaryHeader("ad.group"), payload: group, code: contract.CodeUnknownType},
		{name: "text/plain", header: with(binaryHeader("ad.group.created"), "Content-Type", "text/plain"), payload: group, code: contract.CodeUnsupportedContentType},
		{name: "latin-1", header: with(binaryHeader("ad.group.created"), "Content-Type", "application/json; charset=iso-8859-1"), payload: group, code: contract.CodeUnsupportedContentType, reason: "charset"},
		{name: "+json media type", header: with(binaryHeader("ad.group.created"), "Content-Type", "application/vnd.corp.trigger+json"), payload: group},
		{name: "JSON null", header: binaryHeader("ad.group.created"), payload: `null`, code: contract.CodeSchema, reason: "must be object, not null"},
		{name: "directory with a control character", header: binaryHeader("ad.group.created"), payload: `{"directory":"Corp\u0007AD","group":{"name":"g"}}`, code: contract.CodeSchema, reason: "/directory: does not match pattern"},
		{name: "huge value is not echoed", header: binaryHeader("ad.group.created"),
			payload: `{"domain":"corp.example.com","group":{"name":"` + strings.Repeat("x", 100000) + `"}}`, code: contract.CodeSchema, reason: "/group/name: length must be <= 256"},
		{name: "many unknown fields", header: binaryHeader(contract.TypeSyncRequested),
			payload: `{"domain":"corp.example.com","a":1,"b":2,"c":3,"d":4,"reason":""}`, code: contract.CodeSchema, reason: `(root): unknown property "a" (and 3 more); /reason: length must be >= 1`},
		{name: "source too long for a result event", header: with(binaryHeader("ad.group.created"), "ce-source", "/"+strings.Repeat("s", 1024)), payload: group, code: contract.CodeSchema, reason: "attribute source: length must be <= 1024"},
		{name: "traceparent carried", header: with(binaryHeader("ad.user.created"), "ce-traceparent", traceparent), payload: `{"domain":"corp.example.com","user":{"upn":"j@corp.example.com"}}`,
			check: func(t *testing.T, tr trigger.Trigger) {
				if tr.Traceparent != traceparent || tr.User != "j@corp.example.com" {
					t.Errorf("%+v", tr)
				}
			}},
	}
	for _, bad := range []string{
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", // upper case
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent id
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // unknown version
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",    // no flags
		"garbage",
	} {
		tests = append(tests, struct {
			name    string
			header  nats.Header
			payload string
			code    contract.DeadCode
			reason  string
			check   func(t *testing.T, tr trigger.Trigger)
		}{name: "malformed traceparent " + bad, header: with(binaryHeader("ad.group.created"), "ce-traceparent", bad), payload: group,
			check: func(t *testing.T, tr trigger.Trigger) {
				if tr.Traceparent != "" {
					t.Errorf("traceparent %q kept", tr.Traceparent)
				}
			}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := d.Decode(tt.header, []byte(tt.payload))
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tt.check != nil {
					tt.check(t, tr)
				}
				return
			}
			te := assertError(t, err, tt.code)
			if !strings.Contains(te.Reason, tt.reason) {
				t.Errorf("reason %q does not contain %q", te.Reason, tt.reason)
			}
			if strings.Contains(te.Reason, strings.Repeat("x", 65)) {
				t.Errorf("reason echoes more than 64 bytes of input: %q", te.Reason)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	d := newDecoder(t)
	at := time.Date(2025, 11, 23, 14, 52, 7, 0, time.UTC)
	tests := []trigger.Trigger{
		{ID: "g-1", Source: "https://pipelines.corp.example.com/p", Type: "ad.group.created", Subject: "proj-alpha-admins", Time: at,
			Traceparent: traceparent, Tenant: "default", Directory: "Corp AD", Domain: "corp.example.com", Group: "proj-alpha-admins", IgnoreSafeguards: true},
		{ID: "g-2", Source: "/ci", Type: "ad.group.deleted", Time: at, Domain: "corp.example.com", Group: "Zürich Admins"},
		{ID: "u-1", Source: "/ci", Type: "ad.user.created", Time: at, Directory: "Corp AD", User: "jdoe@corp.example.com"},
		{ID: "u-2", Source: "/ci", Type: "ad.user.updated", Time: at, Domain: "corp.example.com", User: "jdoe"},
		{ID: "u-3", Source: "/ci", Type: "ad.user.created", Time: at, Domain: "corp.example.com", User: "j" + strings.Repeat("d", 300) + "@corp.example.com"},
		{ID: "s-1", Source: "/cli/jdoe", Type: contract.TypeSyncRequested, Time: at, Tenant: "emea", Directory: "Corp AD", Domain: "corp.example.com", Reason: "after OU move"},
		{ID: "s-2", Source: "/cli/jdoe", Type: contract.TypeSyncRequested, Time: at, Domain: "corp.example.com"},
	}
	for _, want := range tests {
		e, err := trigger.NewEvent(want)
		if err != nil {
			t.Fatalf("%s: %v", want.ID, err)
		}
		for mode, encode := range map[string]func(string, event.Event) (*nats.Msg, error){
			"binary": cenats.EncodeBinary, "structured": cenats.EncodeStructured,
		} {
			t.Run(want.ID+"/"+mode, func(t *testing.T) {
				m, err := encode("dirsync.trigger.test", e)
				if err != nil {
					t.Fatal(err)
				}
				got, err := d.Decode(m.Header, m.Data)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("got  %+v\nwant %+v", got, want)
				}
			})
		}
	}
}

func TestNewEventDefaults(t *testing.T) {
	before := time.Now()
	e, err := trigger.NewEvent(trigger.Trigger{Type: "ad.group.created", Domain: "corp.example.com", Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.ID()) != 36 || e.ID()[14] != '4' {
		t.Errorf("id %q is not a UUID v4", e.ID())
	}
	if e.Source() != "urn:vidm-sync:cli" {
		t.Errorf("source %q", e.Source())
	}
	if e.Time().Before(before.Add(-time.Second)) || e.Time().After(time.Now().Add(time.Second)) {
		t.Errorf("time %v is not now", e.Time())
	}
	if e.DataContentType() != "application/json" {
		t.Errorf("datacontenttype %q", e.DataContentType())
	}
	if got := string(e.Data()); got != `{"domain":"corp.example.com","group":{"name":"g"}}` {
		t.Errorf("data %s", got)
	}
	if _, ok := e.Extensions()["traceparent"]; ok {
		t.Error("traceparent set without one in the trigger")
	}
	other, err := trigger.NewEvent(trigger.Trigger{Type: "ad.group.created", Domain: "corp.example.com", Group: "g"})
	if err != nil {
		t.Fatal(err)
	}
	if other.ID() == e.ID() {
		t.Error("two events got the same id")
	}
}

func TestNewEventRejects(t *testing.T) {
	tests := map[string]trigger.Trigger{
		"unknown type":           {Type: "ad.computer.created", Domain: "d", Group: "g"},
		"no type":                {Domain: "d", Group: "g"},
		"no directory or domain": {Type: "ad.group.created", Group: "g"},
		"group type, no group":   {Type: "ad.group.created", Domain: "d"},
		"group type with user":   {Type: "ad.group.created", Domain: "d", Group: "g", User: "u"},
		"user type, no user":     {Type: "ad.user.created", Domain: "d"},
		"user type with reason":  {Type: "ad.user.created", Domain: "d", User: "u", Reason: "r"},
		"sync with group":        {Type: contract.TypeSyncRequested, Domain: "d", Group: "g"},
		"bad traceparent":        {Type: "ad.group.created", Domain: "d", Group: "g", Traceparent: "nope"},
	}
	for name, tr := range tests {
		if _, err := trigger.NewEvent(tr); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// One Decoder serves every consumer goroutine (run with -race).
func TestDecoderConcurrentUse(t *testing.T) {
	d := newDecoder(t)
	files, _ := filepath.Glob("testdata/*/*.json")
	payloads := make([][]byte, len(files))
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		payloads[i] = b
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				for _, p := range payloads {
					_, _ = d.Decode(structuredHeader(), p)
				}
			}
		})
	}
	wg.Wait()
}
