package vcf

import (
	"os"
	"testing"
)

// The decoder of VCF's identity providers: it may not panic, and every directory it yields has an
// id that splits back into its provider and source.

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
		dirs, err := API{}.ParseDirectories(body)
		if err != nil {
			return
		}
		for _, d := range dirs {
			p, n, err := splitVCFDirectoryID(d.ID)
			if err != nil || p == "" || n == "" {
				t.Fatalf("directory id %q does not split back (%v)", d.ID, err)
			}
			if st, err := (API{}).ParseSyncState(d.ID, body); err == nil && st.Delegation == nil {
				t.Fatalf("sync state of %q without a delegation: %+v", d.ID, st)
			}
		}
	})
}
