// Package identitytest holds what the tests of several identity systems' packages share: the
// simulator's sample directories, vRA Cloud's test API token, quick sync waits and a runner of
// concurrent callers.
package identitytest

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

const (
	// CloudAPIToken is the vRA Cloud API token (refresh token) the tests' simulators accept.
	CloudAPIToken = "csp-api-token-Vr51-do-not-log-4c8e1f"
	// CloudPathAuthz is the path of CSP's token exchange, which the simulator serves.
	CloudPathAuthz = "/csp/gateway/am/api/auth/api-tokens/authorize"
)

// Directories are the simulator's directories in the tests of vIDM and vRA Cloud.
func Directories() []vidmsim.Directory {
	return []vidmsim.Directory{
		{ID: "dir-corp", Name: "Corp AD", Domains: []string{"corp.example.com", "corp.local"}},
		{ID: "dir-emea", Name: "EMEA AD", Domains: []string{"emea.example.com"}},
		{ID: "dir-lab-1", Name: "Lab One", Type: vidmsim.TypeActiveDirectoryIWA, Domains: []string{"lab.example.com"}},
		{ID: "dir-lab-2", Name: "Lab Two", Domains: []string{"lab.example.com"}},
		{ID: "dir-system", Name: "System Directory", Type: vidmsim.TypeLocalDirectory},
	}
}

// FastWait polls a sync quickly, for the simulator's short syncs.
func FastWait() httpcore.WaitOptions {
	return httpcore.WaitOptions{InitialInterval: 10 * time.Millisecond, MaxInterval: 40 * time.Millisecond, Timeout: 10 * time.Second}
}

// RunConcurrently calls f from n goroutines at once and fails t with any error they return.
func RunConcurrently(t *testing.T, n int, f func() error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if err := f(); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// StubTransport is a transport that answers every request with answer's status and JSON body.
type StubTransport func(*http.Request) (int, string)

// RoundTrip answers r without a network.
func (f StubTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	code, body := f(r)
	return &http.Response{
		StatusCode: code, Status: http.StatusText(code), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: r,
	}, nil
}
