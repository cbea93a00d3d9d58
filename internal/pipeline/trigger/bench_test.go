package trigger_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
)

// The intake's per-message cost: envelope decoding plus schema validation of one trigger.
func BenchmarkDecode(b *testing.B) {
	d := newDecoder(b)
	valid := readFixture(b, "valid", "group-created.json")
	e, err := cenats.Decode(structuredHeader(), valid)
	if err != nil {
		b.Fatal(err)
	}
	bin, err := cenats.EncodeBinary("dirsync.trigger.bench", e)
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name    string
		header  nats.Header
		payload []byte
		want    contract.DeadCode // "" for an accepted trigger
	}{
		{"binary", bin.Header, bin.Data, ""},
		{"structured", structuredHeader(), valid, ""},
		{"schema-violation", structuredHeader(), readFixture(b, "invalid", "tenant-uppercase.json"), contract.CodeSchema},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			check := func(err error) {
				var te *trigger.Error
				if (c.want == "" && err != nil) || (c.want != "" && (!errors.As(err, &te) || te.Code != c.want)) {
					b.Fatalf("Decode: %v, want code %q", err, c.want)
				}
			}
			_, err := d.Decode(c.header, c.payload)
			check(err)
			b.ReportAllocs()
			for b.Loop() {
				_, err := d.Decode(c.header, c.payload)
				if (err != nil) != (c.want != "") {
					check(err)
				}
			}
		})
	}
}

func readFixture(b *testing.B, dir, name string) []byte {
	b.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", dir, name))
	if err != nil {
		b.Fatal(err)
	}
	return data
}
