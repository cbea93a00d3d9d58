package vidm

import (
	"os"
	"testing"
)

// The decoders of vRA 7's and VCF's answers: none may panic, and every directory they yield has
// an id the sync paths can address.

func FuzzParseVRA7Page(f *testing.F) {
	for _, seed := range []string{
		`{"links":[],"content":[{"@type":"IdentityStore","name":"Corp AD","domain":"corp.example.com","type":"AD"}],"metadata":{"size":20,"totalElements":1,"totalPages":1,"number":1,"offset":0}}`,
		`{"content":[{"name":"no domain"}],"metadata":{"totalPages":3}}`,
		`{"content":null}`,
		`[]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		dirs, _, err := parseVRA7Page(body)
		if err != nil {
			return
		}
		for _, d := range dirs {
			if d.ID == "" || d.ID == "." || d.ID == ".." {
				t.Fatalf("a directory no sync path can address: %+v", d)
			}
		}
	})
}

func FuzzParseVCFDirectories(f *testing.F) {
	for _, name := range []string{"vcf-identity-providers-adfs.json", "vcf-identity-providers-okta.json", "vcf-identity-provider-adfs.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"elements":[{"id":"x","type":"FEDERATED_IDP_BROKER","fedIdp":{"syncClientTokenInfo":{"expireAt":12}}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		dirs, err := vcfAPI{}.parseDirectories(body)
		if err != nil {
			return
		}
		for _, d := range dirs {
			p, n, err := splitVCFDirectoryID(d.ID)
			if err != nil || p == "" || n == "" {
				t.Fatalf("directory id %q does not split back (%v)", d.ID, err)
			}
			if st, err := (vcfAPI{}).parseSyncState(d.ID, body); err == nil && st.Delegation == nil {
				t.Fatalf("sync state of %q without a delegation: %+v", d.ID, st)
			}
		}
	})
}
