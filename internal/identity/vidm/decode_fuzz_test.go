package vidm

import (
	"errors"
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
)

// The decoder of vIDM's directory list (httpcore fuzzes the sync status, error bodies and tokens):
// it may not panic, and it either yields sane values or a classified error.

func FuzzParseDirectories(f *testing.F) {
	for _, seed := range []string{
		`{"items":[{"type":"ACTIVE_DIRECTORY_LDAP","name":"Corp AD","directoryId":"d1","domains":["corp.example.com"]}]}`,
		`{"items":[{"name":"no id"}],"_links":{}}`,
		`{"items":null}`,
		`{"items":[{"directoryId":1}]}`,
		`<html>`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		dirs, err := parseDirectories(body)
		if err != nil {
			if !errors.Is(err, httpcore.ErrInvalidResponse) || !httpcore.IsRetryable(err) {
				t.Fatalf("error %v is not a retryable ErrInvalidResponse", err)
			}
			return
		}
		for _, d := range dirs {
			if d.ID == "" {
				t.Fatal("a directory without an id was returned")
			}
		}
	})
}
