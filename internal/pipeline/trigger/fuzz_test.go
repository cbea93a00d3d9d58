package trigger_test

import (
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
)

// FuzzTriggerDecode: Decode never panics; every error is an *Error with a known code and a
// bounded, printable Reason; and every accepted trigger survives NewEvent → EncodeBinary → Decode
// unchanged (what the worker accepts, the CLI can publish again). In binary mode the payload is the
// data under fixed headers of the fuzzed type; in structured mode it is the whole event.
func FuzzTriggerDecode(f *testing.F) {
	for _, seed := range []struct {
		structured bool
		typ        string
		payload    string
	}{
		{false, "ad.group.created", `{"domain":"corp.example.com","group":{"name":"g","dn":"CN=g,DC=corp"}}`},
		{false, "ad.user.created", `{"directory":"Corp AD","tenant":"t1","user":{"upn":"j@corp.example.com"},"ignoreSafeguards":true}`},
		{false, contract.TypeSyncRequested, `{"domain":"corp.example.com","reason":"r"}`},
		{false, "ad.group.deleted", `{"domain":"corp.example.com","user":{"name":"u"}}`},
		{false, "ad.group.created", `{"domain":"corp.example.com","group":{"name":"g"},"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`},
		{false, "ad.computer.created", `{}`},
		{true, "", `{"specversion":"1.0","id":"x","source":"/s","type":"ad.group.created","data":{"domain":"corp.example.com","group":{"name":"g"}}}`},
		{true, "", `{"specversion":"1.0","id":"x","source":"/s","type":"ad.user.created","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","data_base64":"eyJkb21haW4iOiJhIiwidXNlciI6eyJuYW1lIjoidSJ9fQ=="}`},
		{true, "", `{"specversion":"1.0","id":"x","source":"/s","type":"vidm.directory.sync.requested","datacontenttype":"text/plain","data":"{}"}`},
	} {
		f.Add(seed.structured, seed.typ, []byte(seed.payload))
	}
	d := newDecoder(f)
	f.Fuzz(func(t *testing.T, structured bool, typ string, payload []byte) {
		h := structuredHeader()
		if !structured {
			h = nats.Header{
				"ce-specversion": {"1.0"},
				"ce-id":          {"fuzz-1"},
				"ce-source":      {"/fuzz"},
				"ce-type":        {typ},
				"ce-time":        {"2025-11-23T14:52:07Z"},
			}
		}
		tr, err := d.Decode(h, payload)
		if err != nil {
			assertError(t, err, "")
			return
		}
		e, err := trigger.NewEvent(tr)
		if err != nil {
			t.Fatalf("NewEvent rejects an accepted trigger %+v: %v", tr, err)
		}
		if tr.Time.IsZero() {
			return // NewEvent stamps the current time; nothing further to compare exactly
		}
		m, err := cenats.EncodeBinary("fuzz", e)
		if err != nil {
			t.Fatal(err)
		}
		again, err := d.Decode(m.Header, m.Data)
		if err != nil {
			t.Fatalf("re-encoded trigger %+v is rejected: %v", tr, err)
		}
		if again != tr {
			t.Fatalf("round trip changed the trigger:\n%+v\n%+v", tr, again)
		}
	})
}
