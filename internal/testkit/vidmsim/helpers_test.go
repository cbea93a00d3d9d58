package vidmsim_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/fakeclock"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

const (
	pathOAuth     = "/SAAS/auth/oauthtoken"
	pathLogin     = "/SAAS/API/1.0/REST/auth/system/login"
	pathDirs      = "/SAAS/jersey/manager/api/connectormanagement/directoryconfigs"
	mediaList     = "application/vnd.vmware.horizon.manager.connector.management.directory.list+json"
	mediaV1       = "application/vnd.vmware.horizon.v1.0+json"
	mediaSyncBody = "application/vnd.vmware.horizon.manager.connector.management.directory.sync.profile.sync+json"
	mediaForm     = "application/x-www-form-urlencoded"

	clientID     = "vidm-sync-worker"
	clientSecret = "example-client-secret"
	username     = "sync-admin"
	password     = "example-password"
	corpID       = "dir-corp-ad"
)

func syncPath(id string) string { return pathDirs + "/" + id + "/syncprofile/sync" }

func newFakeClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2024, 11, 23, 12, 0, 0, 0, time.UTC))
}

// env is one simulator behind a real HTTP server.
type env struct {
	t     *testing.T
	sim   *vidmsim.Server
	srv   *httptest.Server
	clock *fakeclock.Clock
}

// newEnv starts ExampleConfig (10s syncs, fake clock) after mutate, if given, has adjusted it.
func newEnv(t *testing.T, mutate func(*vidmsim.Config)) *env {
	t.Helper()
	clock := newFakeClock()
	cfg := vidmsim.ExampleConfig()
	cfg.SyncDuration = 10 * time.Second
	cfg.Now = clock.Now
	if mutate != nil {
		mutate(&cfg)
	}
	sim, err := vidmsim.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &env{t: t, sim: sim, srv: srv, clock: clock}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// errorCode returns the code of a vIDM-style error body ("" if none).
func (r response) errorCode() string {
	var e struct {
		Errors []struct{ Code, Message string }
	}
	if json.Unmarshal(r.body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

// do sends one request; headers are name/value pairs.
func (e *env) do(method, path, body string, headers ...string) response {
	e.t.Helper()
	resp, err := e.send(e.srv.Client(), method, path, body, headers...)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

func (e *env) send(c *http.Client, method, path, body string, headers ...string) (response, error) {
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// token logs in with the OAuth client credentials grant.
func (e *env) token() string {
	e.t.Helper()
	r := e.do(http.MethodPost, pathOAuth+"?grant_type=client_credentials", "",
		"Authorization", basic(clientID, clientSecret), "Content-Type", mediaForm, "Accept", "application/json")
	if r.status != http.StatusOK {
		e.t.Fatalf("oauth login: %d %s", r.status, r.body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	mustUnmarshal(e.t, r.body, &tok)
	return tok.AccessToken
}

func (e *env) listDirs(tok string) response {
	e.t.Helper()
	return e.do(http.MethodGet, pathDirs, "", "Authorization", "Bearer "+tok, "Accept", mediaList)
}

func (e *env) startSync(tok, id string, ignore bool, headers ...string) response {
	e.t.Helper()
	body := `{"ignoreSafeguards":false}`
	if ignore {
		body = `{"ignoreSafeguards":true}`
	}
	h := append([]string{"Authorization", "Bearer " + tok, "Accept", mediaV1, "Content-Type", mediaSyncBody}, headers...)
	return e.do(http.MethodPost, syncPath(id), body, h...)
}

// syncState is the poll answer as the tests read it.
type syncState struct {
	DirectoryID        string  `json:"directoryId"`
	Status             string  `json:"status"`
	SyncStartDate      *int64  `json:"syncStartDate"`
	SyncEndDate        *int64  `json:"syncEndDate"`
	ProgressPercentage *int    `json:"progressPercentage"`
	Message            *string `json:"message"`
	Connector          string  `json:"connector"`
}

func (e *env) syncStatus(tok, id string) syncState {
	e.t.Helper()
	r := e.do(http.MethodGet, syncPath(id), "", "Authorization", "Bearer "+tok, "Accept", mediaV1)
	if r.status != http.StatusOK {
		e.t.Fatalf("sync status: %d %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != mediaV1 {
		e.t.Fatalf("sync status Content-Type = %q", ct)
	}
	var st syncState
	mustUnmarshal(e.t, r.body, &st)
	return st
}

func basic(id, secret string) string {
	req := &http.Request{Header: http.Header{}}
	req.SetBasicAuth(id, secret)
	return req.Header.Get("Authorization")
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
}
