package vidm

import (
	"errors"
	"strings"
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
)

// The decoder of a SCIM list: no panic; a retryable ErrInvalidResponse or resources whose
// resolution gives a well-formed answer.
func FuzzParseSCIMList(f *testing.F) {
	for _, seed := range []string{
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":1,"itemsPerPage":1,"startIndex":1,"Resources":[{"id":"g1","displayName":"sales","urn:scim:schemas:extension:workspace:1.0":{"domain":"corp.example.com"}}]}`,
		`{"totalResults":0}`, `{"totalResults":-1}`, `{"Resources":[]}`, `{"totalResults":2,"Resources":[{"id":"","displayName":"sales@corp.example.com"},{"id":"x","displayName":"sales"}]}`, `<html>`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		res, total, err := parseSCIMList(backend.PrincipalGroup, body)
		if err != nil {
			if !errors.Is(err, httpcore.ErrInvalidResponse) || !httpcore.IsRetryable(err) {
				t.Fatalf("error %v is not a retryable ErrInvalidResponse", err)
			}
			return
		}
		if total < 0 {
			t.Fatalf("total %d", total)
		}
		l := &lookup{label: "sales", wants: []want{{value: "sales"}}}
		found, err := l.resolve(res)
		switch {
		case found.Visibility == backend.Visible && (found.ID == "" || len(found.ID) > backend.MaxPrincipalID):
			t.Fatalf("visible with a bad id %q", found.ID)
		case found.Visibility == backend.Unknown && err == nil:
			t.Fatal("unknown without an error")
		}
	})
}

// Ids a store should never send make the principal Unknown rather than Visible.
func TestResolveRefusesBadIDs(t *testing.T) {
	l := &lookup{label: "sales", wants: []want{{value: "sales"}}}
	for _, id := range []string{"", strings.Repeat("x", backend.MaxPrincipalID+1)} {
		f, err := l.resolve([]scimResource{{ID: id, Name: "sales", Domain: "corp.example.com"}})
		if f.Visibility != backend.Unknown || !errors.Is(err, httpcore.ErrInvalidResponse) {
			t.Errorf("id of %d bytes: %+v, %v", len(id), f, err)
		}
	}
}

// Each filter value is a JSON string: a quote or backslash cannot end it or add a term.
func TestSCIMFilterEscapes(t *testing.T) {
	got, err := scimFilter("displayName", []*lookup{{wants: []want{{value: `a" or displayName eq "b\`}}}, {wants: []want{{value: "<x>"}}}}, true)
	wantF := `displayName eq "a\" or displayName eq \"b\\" or displayName eq "<x>"`
	if err != nil || got != wantF {
		t.Fatalf("filter = %s, %v; want %s", got, err, wantF)
	}
	// Narrowed to the lookups' domains, each a JSON string too.
	got, err = scimFilter("displayName", []*lookup{{wants: []want{{value: "g"}}, allowed: []string{"corp.example.com", `x") or (a eq "`}}}, true)
	wantF = `(displayName eq "g") and (urn:scim:schemas:extension:workspace:1.0:domain eq "corp.example.com" or urn:scim:schemas:extension:workspace:1.0:domain eq "x\") or (a eq \"")`
	if err != nil || got != wantF {
		t.Fatalf("filter = %s, %v; want %s", got, err, wantF)
	}
}
