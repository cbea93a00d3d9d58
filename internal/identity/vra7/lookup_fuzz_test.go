package vra7

import (
	"errors"
	"strings"
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
)

// The decoder of vRA 7's principal answer: no panic, an id of the form name@domain or a
// retryable ErrInvalidResponse.
func FuzzParsePrincipal(f *testing.F) {
	for _, seed := range []string{
		`{"@type":"Group","groupType":"SSO","name":"sales","domain":"corp.example.com","principalId":{"domain":"corp.example.com","name":"sales"}}`,
		`{"principalId":{"name":"x"}}`, `{"principalId":null}`, `[]`, `<html>`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		id, err := parsePrincipal(body)
		if err != nil {
			if !errors.Is(err, httpcore.ErrInvalidResponse) || !httpcore.IsRetryable(err) {
				t.Fatalf("error %v is not a retryable ErrInvalidResponse", err)
			}
			return
		}
		if i := strings.LastIndexByte(id, '@'); i <= 0 || i == len(id)-1 {
			t.Fatalf("id %q is not name@domain", id)
		}
	})
}
