package httpcore

import (
	"net/http"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
)

// The decoders of the answers every identity system shares besides the sync status
// (status_test.go fuzzes that one): none may panic, and each either yields sane values or a
// classified error. Each system's package fuzzes its own bodies.

// stubAPI is enough of an API for New: the fuzzed decoders send no request.
type stubAPI struct{ API }

func (stubAPI) Kind() backend.Kind        { return backend.KindVIDM }
func (stubAPI) DefaultAuthMode() AuthMode { return AuthOAuth }
func (stubAPI) CheckAuth(Config) error    { return nil }

func FuzzParseErrorBody(f *testing.F) {
	for _, seed := range []string{
		`{"errors":[{"code":"auth.token.expired","message":"expired"}]}`,
		`{"error":"invalid_client","error_description":"bad"}`,
		`{"message":"plain"}`,
		`{"errors":"not a list"}`,
		`<html><title>502 Bad Gateway</title></html>`,
	} {
		f.Add([]byte(seed))
	}
	c, err := New(Config{BaseURL: "https://vidm.example.com", ClientID: "id", ClientSecret: "s3cret-value"}, stubAPI{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		code, msg := parseErrorBody(body)
		e := c.httpError("test", &http.Response{StatusCode: 503, Header: http.Header{}}, body)
		if !utf8.ValidString(e.Code) || !utf8.ValidString(e.Message) || len(e.Message) > maxMessageLen+4 || len(e.Code) > 132 {
			t.Fatalf("unbounded or invalid text: code %q message %q", e.Code, e.Message)
		}
		if code == "" && msg == "" && (e.Code != "" || e.Message != "") {
			t.Fatal("text appeared from nowhere")
		}
		if !e.Retryable() {
			t.Fatal("a 503 must stay retryable whatever its body")
		}
	})
}

func FuzzJWTExpiry(f *testing.F) {
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3OTU0MjgwMDB9.c2ln")
	f.Add("opaque-token")
	f.Add("a.b.c")
	f.Add("..")
	f.Fuzz(func(t *testing.T, tok string) {
		exp, ok := JWTExpiry(tok)
		if ok && (exp.Before(time.Unix(1e8, 0)) || exp.After(time.UnixMilli(1e14))) {
			t.Fatalf("implausible expiry %v accepted", exp)
		}
		if !ok && !exp.IsZero() {
			t.Fatal("a rejected token returned a time")
		}
	})
}

// FuzzDiagnoseSyncState: what the check prints of a status body it did not understand stays
// bounded, valid text whatever the body.
func FuzzDiagnoseSyncState(f *testing.F) {
	for _, seed := range []string{
		`{"directoryId":"d","status":"COMPLETED","syncStartDate":1732363200000,"syncEndDate":1732363260000}`,
		`{"directoryId":"d","syncState":{"phase":"PHASE_COMPLETED","begunEpoch":1732363200}}`,
		`{"status":"WEIRD","a":1,"b":2,"c\u0000":3}`,
		`[]`, `not json`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		notes := DiagnoseSyncState(body)
		if len(notes) > 5 {
			t.Fatalf("%d notes", len(notes))
		}
		for _, n := range notes {
			if !utf8.ValidString(n) || len(n) > 2048 {
				t.Fatalf("note of %d bytes, valid UTF-8 %t: %.200q", len(n), utf8.ValidString(n), n)
			}
		}
	})
}
