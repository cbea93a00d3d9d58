package cenats_test

import (
	"encoding/json"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
)

// Decoding and encoding one event: the envelope work on every trigger and every result.
func BenchmarkDecode(b *testing.B) {
	var header nats.Header
	if err := json.Unmarshal(readFile(b, "binary-group-created.headers.json"), &header); err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name    string
		header  nats.Header
		payload []byte
	}{
		{"binary", header, readFile(b, "binary-group-created.payload.json")},
		{"structured", nats.Header{"Content-Type": {cenats.ContentTypeStructured}}, readFile(b, "structured-group-created.json")},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := cenats.Decode(c.header, c.payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeBinary(b *testing.B) {
	e, err := cenats.Decode(nats.Header{"Content-Type": {cenats.ContentTypeStructured}}, readFile(b, "structured-group-created.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cenats.EncodeBinary("dirsync.result.completed", e); err != nil {
			b.Fatal(err)
		}
	}
}
