package cenats_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
)

// parseHeaderBlock builds a header from "name: value" lines, keeping whatever bytes the fuzzer
// puts in names and values (nats.go would trim and reject some; Decode must not rely on that).
func parseHeaderBlock(block string) nats.Header {
	h := nats.Header{}
	for line := range strings.SplitSeq(block, "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		h.Add(name, strings.TrimPrefix(value, " "))
	}
	return h
}

// FuzzDecode: Decode never panics; every error is a *DecodeError with a bounded, printable Reason;
// and every event it accepts can be forwarded: EncodeBinary takes it, and Decode reads that back
// with the same id, type and data.
func FuzzDecode(f *testing.F) {
	binary := "ce-specversion: 1.0\nce-id: id-1\nce-source: /test\nce-type: ad.group.created\n"
	for _, seed := range []struct{ header, payload string }{
		{binary, `{"group":{"name":"g"},"domain":"corp.example.com"}`},
		{binary + "ce-subject: Corp%20AD\nce-time: 2025-11-23T14:52:07Z\nce-traceparent: " + traceparent + "\n", `{}`},
		{binary + "CE-ID: again\n", ``},
		{binary + "ce-subject: \"quoted \\\"value\\\"\"\n", `x`},
		{binary + "Content-Type: text/plain; charset=utf-8\n", "plain"},
		{"Content-Type: application/cloudevents+json\n", `{"specversion":"1.0","id":"x","source":"/s","type":"t","data":{"a":[1,2]}}`},
		{"Content-Type: application/cloudevents+json\n", `{"specversion":"1.0","id":"x","source":"/s","type":"t","datacontenttype":"text/plain","data":"hi"}`},
		{"Content-Type: application/cloudevents+json\n", `{"specversion":"1.0","id":"x","source":"/s","type":"t","data_base64":"aGk="}`},
		{"", `{"specversion":"1.0","id":"x","source":"/s","type":"t","ext":true,"n":3}`},
		{"", `[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`},
	} {
		f.Add(seed.header, []byte(seed.payload))
	}
	f.Fuzz(func(t *testing.T, block string, payload []byte) {
		h := parseHeaderBlock(block)
		e, err := cenats.Decode(h, payload)
		if err != nil {
			assertDecodeError(t, err)
			return
		}
		m, err := cenats.EncodeBinary("fuzz", e)
		if err != nil {
			t.Fatalf("accepted event cannot be encoded: %v\n%s", err, e)
		}
		again, err := cenats.Decode(m.Header, m.Data)
		if err != nil {
			t.Fatalf("re-encoded event is rejected: %v\nheaders %q", err, m.Header)
		}
		if again.ID() != e.ID() || again.Type() != e.Type() || !bytes.Equal(again.Data(), e.Data()) {
			t.Fatalf("re-encoded event differs:\n%s\n%s", e, again)
		}
	})
}
