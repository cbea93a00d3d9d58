package vra7

import (
	"testing"
)

// The decoder of vRA 7's store list: it may not panic, and every directory it yields has an id the
// sync paths can address.

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
