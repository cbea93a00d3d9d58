package ingress_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/ingress"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/workertest"
)

const bearer = "Bearer " + workertest.Token

// groupData is ad.group.created data for a domain.
func groupData(domain, group string) string {
	return fmt.Sprintf(`{"domain":%q,"group":{"name":%q}}`, domain, group)
}

// binary is a binary-mode request: ce-* headers, the data as the body.
func binary(t *testing.T, url, id, typ, data string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", bearer)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("ce-specversion", "1.0")
	req.Header.Set("ce-id", id)
	req.Header.Set("ce-source", "urn:test:pipeline")
	req.Header.Set("ce-type", typ)
	req.Header.Set("ce-time", time.Now().UTC().Format(time.RFC3339Nano))
	return req
}

// structured is a structured-mode request with this body.
func structured(t *testing.T, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", bearer)
	req.Header.Set("Content-Type", "application/cloudevents+json; charset=utf-8")
	return req
}

func structuredEvent(id, typ, data string) string {
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"urn:test:pipeline","type":%q,"datacontenttype":"application/json","data":%s}`, id, typ, data)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// problem is the JSON of an answer that is not an event.
type problem struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	ID    string `json:"id"`
}

func (r response) problem(t *testing.T) problem {
	t.Helper()
	var p problem
	if err := json.Unmarshal(r.body, &p); err != nil || p.Error == "" {
		t.Fatalf("status %d body %q is not a JSON problem: %v", r.status, r.body, err)
	}
	return p
}

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), 60*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
}

func TestBinaryAndStructuredAreAccepted(t *testing.T) {
	t.Parallel()
	s := workertest.StartIngress(t, workertest.IngressOptions{})
	for _, tc := range []struct {
		name string
		req  func(id string) *http.Request
	}{
		{"binary", func(id string) *http.Request {
			req := binary(t, s.URL, id, "ad.group.created", groupData("corp.example.com", "g-binary"))
			req.Header.Set("ce-subject", "Corp%20AD") // percent-encoded, as the HTTP binding says
			return req
		}},
		{"structured", func(id string) *http.Request {
			return structured(t, s.URL, structuredEvent(id, "ad.group.created", groupData("corp.example.com", "g-structured")))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "accepted-" + tc.name
			r := do(t, tc.req(id))
			wantStatus(t, r, http.StatusAccepted)
			var acc ingress.Accepted
			if err := json.Unmarshal(r.body, &acc); err != nil {
				t.Fatal(err)
			}
			if acc.ID != id || acc.Subject != ingress.DefaultSubject || acc.Stream != s.Cfg.TriggerStream || acc.Seq == 0 || acc.Duplicate {
				t.Fatalf("202 body = %+v", acc)
			}
			st, err := s.JS.Stream(context.Background(), s.Cfg.TriggerStream)
			if err != nil {
				t.Fatal(err)
			}
			m, err := st.GetMsg(context.Background(), acc.Seq)
			if err != nil {
				t.Fatal(err)
			}
			e, err := cenats.Decode(m.Header, m.Data)
			if err != nil || e.ID() != id || e.Type() != "ad.group.created" || m.Subject != ingress.DefaultSubject {
				t.Fatalf("stored message: %v %v %s", e, err, m.Subject)
			}
			if tc.name == "binary" && e.Subject() != "Corp AD" {
				t.Errorf("ce-subject stored as %q, want it percent-decoded", e.Subject())
			}

			// A retried POST is acknowledged, not stored again.
			r = do(t, tc.req(id))
			wantStatus(t, r, http.StatusAccepted)
			var dup ingress.Accepted
			if err := json.Unmarshal(r.body, &dup); err != nil {
				t.Fatal(err)
			}
			if !dup.Duplicate || dup.Seq != acc.Seq {
				t.Fatalf("retry: %+v, want duplicate of seq %d", dup, acc.Seq)
			}
			if last := s.LastSeq(t, s.Cfg.TriggerStream); last != acc.Seq {
				t.Fatalf("trigger stream at seq %d after the retry, want %d", last, acc.Seq)
			}
		})
	}
}

func TestBadRequestsAreRefusedAndNothingIsPublished(t *testing.T) {
	t.Parallel()
	s := workertest.StartIngress(t, workertest.IngressOptions{MaxWait: 5 * time.Minute})
	good := groupData("corp.example.com", "g")
	chunked := func(req *http.Request) *http.Request {
		// No Content-Length: the limit must hold while reading.
		body := req.Body
		req.Body = io.NopCloser(body)
		req.ContentLength = -1
		return req
	}
	for _, tc := range []struct {
		name   string
		req    func() *http.Request
		status int
		code   string
		want   string // in the error message
	}{
		{"data not JSON", func() *http.Request {
			return binary(t, s.URL, "x1", "ad.group.created", "group=g")
		}, 400, "MALFORMED", "not valid JSON"},
		{"structured not JSON", func() *http.Request {
			return structured(t, s.URL, `{"specversion":"1.0",`)
		}, 400, "MALFORMED", "CloudEvent"},
		{"binary without ce-id", func() *http.Request {
			req := binary(t, s.URL, "x", "ad.group.created", good)
			req.Header.Del("ce-id")
			return req
		}, 400, "MALFORMED", "id"},
		{"structured without source", func() *http.Request {
			return structured(t, s.URL, `{"specversion":"1.0","id":"x2","type":"ad.group.created","data":`+good+`}`)
		}, 400, "MALFORMED", "source"},
		{"no CloudEvent at all", func() *http.Request {
			req := binary(t, s.URL, "x", "ad.group.created", good)
			for _, h := range []string{"ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time"} {
				req.Header.Del(h)
			}
			return req
		}, 400, "MALFORMED", "not a CloudEvent"},
		{"unknown type", func() *http.Request {
			return binary(t, s.URL, "x3", "ad.thing.created", good)
		}, 400, "UNKNOWN_TYPE", "not a trigger type"},
		{"schema violation", func() *http.Request {
			return binary(t, s.URL, "x4", "ad.group.created", groupData("not a domain", "g"))
		}, 400, "SCHEMA_VIOLATION", "/domain"},
		{"group missing", func() *http.Request {
			return structured(t, s.URL, structuredEvent("x5", "ad.group.created", `{"domain":"corp.example.com"}`))
		}, 400, "SCHEMA_VIOLATION", `missing property "group"`},
		{"data not JSON content type", func() *http.Request {
			req := binary(t, s.URL, "x6", "ad.group.created", good)
			req.Header.Set("Content-Type", "text/plain")
			return req
		}, 400, "UNSUPPORTED_CONTENT_TYPE", "text/plain"},
		{"bad percent-encoding", func() *http.Request {
			req := binary(t, s.URL, "x7", "ad.group.created", good)
			req.Header.Set("ce-subject", "Corp%zzAD")
			return req
		}, 400, "MALFORMED", "percent-encoding"},
		{"batch", func() *http.Request {
			req := structured(t, s.URL, "["+structuredEvent("x8", "ad.group.created", good)+"]")
			req.Header.Set("Content-Type", "application/cloudevents-batch+json")
			return req
		}, 415, "UNSUPPORTED_CONTENT_TYPE", "batch mode"},
		{"other event format", func() *http.Request {
			req := structured(t, s.URL, structuredEvent("x9", "ad.group.created", good))
			req.Header.Set("Content-Type", "application/cloudevents+avro")
			return req
		}, 415, "UNSUPPORTED_CONTENT_TYPE", "not supported"},
		{"too large", func() *http.Request {
			return binary(t, s.URL, "x10", "ad.group.created", `{"domain":"corp.example.com","pad":"`+strings.Repeat("x", 2<<20)+`"}`)
		}, 413, "", "exceeds the limit"},
		{"too large without length", func() *http.Request {
			return chunked(binary(t, s.URL, "x11", "ad.group.created", `{"domain":"corp.example.com","pad":"`+strings.Repeat("x", 2<<20)+`"}`))
		}, 413, "", "exceeds the limit"},
		{"wait not a duration", func() *http.Request {
			return binary(t, s.URL+"?wait=soon", "x12", "ad.group.created", good)
		}, 400, "", "not a duration"},
		{"wait above the maximum", func() *http.Request {
			return binary(t, s.URL+"?wait=6m", "x13", "ad.group.created", good)
		}, 400, "", "exceeds the maximum"},
		{"wait negative", func() *http.Request {
			return binary(t, s.URL+"?wait=-1s", "x14", "ad.group.created", good)
		}, 400, "", "positive"},
		{"misspelt parameter", func() *http.Request {
			return binary(t, s.URL+"?wiat=90s", "x15", "ad.group.created", good)
		}, 400, "", "unknown query parameter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.req())
			wantStatus(t, r, tc.status)
			p := r.problem(t)
			if p.Code != tc.code {
				t.Errorf("code %q, want %q (error %q)", p.Code, tc.code, p.Error)
			}
			if !strings.Contains(p.Error, tc.want) {
				t.Errorf("error %q does not mention %q", p.Error, tc.want)
			}
		})
	}
	if last := s.LastSeq(t, s.Cfg.TriggerStream); last != 0 {
		t.Fatalf("trigger stream has %d messages; a refused request was published", last)
	}
}

func TestTokenIsRequired(t *testing.T) {
	t.Parallel()
	s := workertest.StartIngress(t, workertest.IngressOptions{})
	for name, auth := range map[string]string{
		"none":          "",
		"wrong token":   "Bearer not-the-token",
		"longer token":  bearer + "x",
		"prefix only":   bearer[:len(bearer)-1],
		"basic scheme":  "Basic " + workertest.Token,
		"token no type": workertest.Token,
	} {
		t.Run(name, func(t *testing.T) {
			req := binary(t, s.URL+"?wait=10s", "unauthorized-"+name, "ad.group.created", groupData("corp.example.com", "g"))
			req.Header.Del("Authorization")
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			r := do(t, req)
			wantStatus(t, r, http.StatusUnauthorized)
			if got := r.header.Get("WWW-Authenticate"); got != `Bearer realm="vidm-sync-worker"` {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			if p := r.problem(t); strings.Contains(p.Error, workertest.Token) {
				t.Errorf("the answer shows the token: %q", p.Error)
			}
		})
	}
	if last := s.LastSeq(t, s.Cfg.TriggerStream); last != 0 {
		t.Fatalf("trigger stream has %d messages after unauthorized requests", last)
	}
	// The scheme is case-insensitive (RFC 7235).
	req := binary(t, s.URL, "authorized", "ad.group.created", groupData("corp.example.com", "g"))
	req.Header.Set("Authorization", "bearer "+workertest.Token)
	wantStatus(t, do(t, req), http.StatusAccepted)
	if strings.Contains(s.Logs.String(), workertest.Token) {
		t.Error("the logs show the token")
	}
}

func TestOnlyPostEvents(t *testing.T) {
	t.Parallel()
	s := workertest.StartIngress(t, workertest.IngressOptions{})
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, ingress.Path, 405},
		{http.MethodPut, ingress.Path, 405},
		{http.MethodDelete, ingress.Path, 405},
		{http.MethodPost, "/", 404},
		{http.MethodPost, "/events/x", 404},
		{http.MethodGet, "/metrics", 404},
	} {
		req, err := http.NewRequestWithContext(context.Background(), tc.method, s.Server.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", bearer)
		r := do(t, req)
		if r.status != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, r.status, tc.status)
		}
		if tc.status == 405 && r.header.Get("Allow") != http.MethodPost {
			t.Errorf("%s %s: Allow = %q, want POST", tc.method, tc.path, r.header.Get("Allow"))
		}
		r.problem(t)
	}
}

// result reads a 200 answer with the SDK, as a client would.
func result(t *testing.T, r response) (typ string, data contract.Data, subject string) {
	t.Helper()
	wantStatus(t, r, http.StatusOK)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/cloudevents+json") {
		t.Fatalf("Content-Type %q, want structured mode", ct)
	}
	e, err := cehttp.NewEventFromHTTPResponse(&http.Response{Header: r.header, Body: io.NopCloser(bytes.NewReader(r.body))})
	if err != nil {
		t.Fatalf("the answer is not a CloudEvent: %v\n%s", err, r.body)
	}
	if err := json.Unmarshal(e.Data(), &data); err != nil {
		t.Fatal(err)
	}
	return e.Type(), data, e.Subject()
}

func lists(d contract.Data, id string) bool {
	return slices.ContainsFunc(d.Triggers, func(tr contract.Trigger) bool { return tr.ID == id })
}

func TestWaitAnswersTheCompletedResult(t *testing.T) {
	t.Parallel()
	s := workertest.StartIngress(t, workertest.IngressOptions{})
	id := uuid.NewString()
	r := do(t, binary(t, s.URL+"?wait=30s", id, "ad.group.created", groupData("corp.example.com", "proj-alpha-admins")))
	typ, data, subject := result(t, r)
	if typ != contract.TypeCompleted || data.Status != "COMPLETED" || subject != "Corp AD" || !lists(data, id) {
		t.Fatalf("result %s %+v, want completed for Corp AD listing %s", typ, data, id)
	}
	if got := r.header.Get(ingress.HeaderResultStatus); got != "COMPLETED" {
		t.Errorf("%s = %q", ingress.HeaderResultStatus, got)
	}
	// The readiness check's answer for the group, as the result's entry says it.
	wantID := vidmsim.PrincipalID("dir-corp-ad", vidmsim.KindGroup, "corp.example.com", "proj-alpha-admins")
	if v, pid := r.header.Get(ingress.HeaderPrincipalVisible), r.header.Get(ingress.HeaderPrincipalID); v != "true" || pid != wantID {
		t.Errorf("%s = %q, %s = %q; want true and %s", ingress.HeaderPrincipalVisible, v, ingress.HeaderPrincipalID, pid, wantID)
	}

	// The same trigger POSTed again after its result: the earlier result, at once.
	start := time.Now()
	r2 := do(t, binary(t, s.URL+"?wait=30s", id, "ad.group.created", groupData("corp.example.com", "proj-alpha-admins")))
	_, again, _ := result(t, r2)
	if again.RunID != data.RunID {
		t.Errorf("retried POST answered run %s, want the earlier run %s", again.RunID, data.RunID)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("the retried POST took %v", time.Since(start))
	}
	if n := len(s.Dev.Sim.SyncLog()); n != 1 {
		t.Errorf("simulator ran %d syncs, want 1", n)
	}
}

func TestWaitAnswersAFailedResult(t *testing.T) {
	t.Parallel()
	s := workertest.StartIngress(t, workertest.IngressOptions{})
	if err := s.Dev.Sim.SetDirectory(vidmsim.Directory{ID: "dir-emea-ad", Name: "EMEA AD", Type: vidmsim.TypeActiveDirectoryLDAP,
		Domains: []string{"emea.example.com"}, FailMessage: "LDAP bind failed: invalid credentials"}); err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	r := do(t, structured(t, s.URL+"?wait=30s", structuredEvent(id, "ad.group.created", groupData("emea.example.com", "g"))))
	typ, data, _ := result(t, r)
	if typ != contract.TypeFailed || data.Status != "FAILED" || !lists(data, id) || data.Error == nil ||
		data.Error.Code != contract.CodeSyncFailed || !strings.Contains(data.Error.Message, "LDAP bind failed") {
		t.Fatalf("result %s %+v, want failed with vIDM's message", typ, data)
	}
	if got := r.header.Get(ingress.HeaderResultStatus); got != "FAILED" {
		t.Errorf("%s = %q", ingress.HeaderResultStatus, got)
	}
}

func TestWaitAnswersADeadLetter(t *testing.T) {
	t.Parallel()
	s := workertest.StartIngress(t, workertest.IngressOptions{})
	id := uuid.NewString()
	r := do(t, binary(t, s.URL+"?wait=30s", id, "ad.group.created", groupData("nowhere.example.com", "g")))
	wantStatus(t, r, http.StatusUnprocessableEntity)
	p := r.problem(t)
	if p.Code != "UNKNOWN_DIRECTORY" || p.ID != id || !strings.Contains(p.Error, "nowhere.example.com") {
		t.Fatalf("422 body = %+v", p)
	}
}

func TestWaitTimesOut(t *testing.T) {
	t.Parallel()
	s := workertest.StartIngress(t, workertest.IngressOptions{})
	if err := s.Dev.Sim.SetDirectory(vidmsim.Directory{ID: "dir-lab-iwa", Name: "Lab IWA", Type: vidmsim.TypeActiveDirectoryIWA,
		Domains: []string{"lab.example.com"}, SyncDuration: time.Minute}); err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	r := do(t, binary(t, s.URL+"?wait=300ms", id, "ad.group.created", groupData("lab.example.com", "g")))
	wantStatus(t, r, http.StatusGatewayTimeout)
	if p := r.problem(t); p.ID != id || !strings.Contains(p.Error, "still published and will be synced") {
		t.Fatalf("504 body = %+v", p)
	}
	if last := s.LastSeq(t, s.Cfg.TriggerStream); last != 1 {
		t.Fatalf("trigger stream at seq %d, want the trigger published", last)
	}
	poll.Until(t, 5*time.Second, "the wait to be released", func() bool { return s.Watcher.Waiting() == 0 })
}

func TestClientLeavingCancelsItsWait(t *testing.T) {
	t.Parallel()
	s := workertest.StartIngress(t, workertest.IngressOptions{})
	if err := s.Dev.Sim.SetDirectory(vidmsim.Directory{ID: "dir-lab-iwa", Name: "Lab IWA", Type: vidmsim.TypeActiveDirectoryIWA,
		Domains: []string{"lab.example.com"}, SyncDuration: time.Minute}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := binary(t, s.URL+"?wait=50s", uuid.NewString(), "ad.group.created", groupData("lab.example.com", "g")).WithContext(ctx)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	poll.Until(t, 10*time.Second, "the request to wait", func() bool { return s.Watcher.Waiting() == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v", err)
	}
	poll.Until(t, 10*time.Second, "the wait to be released", func() bool { return s.Watcher.Waiting() == 0 })
}

func TestConcurrentWaitsGetTheirOwnResults(t *testing.T) {
	t.Parallel()
	s := workertest.StartIngress(t, workertest.IngressOptions{})
	const n = 40
	domains := []string{"corp.example.com", "emea.example.com"}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("concurrent-%02d", i)
			r := do(t, binary(t, s.URL+"?wait=50s", id, "ad.group.created", groupData(domains[i%2], "g")))
			if r.status != http.StatusOK {
				t.Errorf("%s: status %d %s", id, r.status, r.body)
				return
			}
			var e struct {
				Data contract.Data `json:"data"`
			}
			if err := json.Unmarshal(r.body, &e); err != nil || !lists(e.Data, id) {
				t.Errorf("%s: result does not list it: %v %s", id, err, r.body)
			}
		})
	}
	wg.Wait()
	// Coalescing: the 40 triggers cost at most two syncs per directory.
	if syncs := len(s.Dev.Sim.SyncLog()); syncs > 4 {
		t.Errorf("simulator ran %d syncs for %d triggers in two directories", syncs, n)
	}
}

func TestPublishFailureIs503(t *testing.T) {
	t.Parallel()
	s := workertest.StartIngress(t, workertest.IngressOptions{})
	// A subject no stream stores: JetStream cannot accept the trigger.
	h := ingress.New(ingress.Config{Token: workertest.Token, Subject: "nowhere.trigger"}, s.JS, s.Decoder, s.Watcher)
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, query := range []string{"", "?wait=10s"} {
		r := do(t, binary(t, srv.URL+ingress.Path+query, "unstored", "ad.group.created", groupData("corp.example.com", "g")))
		wantStatus(t, r, http.StatusServiceUnavailable)
		if p := r.problem(t); !strings.Contains(p.Error, "not accepted, retry later") || p.ID != "unstored" {
			t.Errorf("503 body = %+v", p)
		}
		if r.header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	}
	if n := s.Watcher.Waiting(); n != 0 {
		t.Errorf("Waiting() = %d after failed publishes", n)
	}
}

func TestNoTokenConfiguredRefusesEverything(t *testing.T) {
	t.Parallel()
	// Authorization comes first: nothing else is needed to refuse.
	srv := httptest.NewServer(ingress.New(ingress.Config{}, nil, nil, nil))
	defer srv.Close()
	req := binary(t, srv.URL+ingress.Path, "x", "ad.group.created", groupData("corp.example.com", "g"))
	req.Header.Set("Authorization", "Bearer ")
	wantStatus(t, do(t, req), http.StatusUnauthorized)
}

// Waiting requests are bounded: beyond INGRESS_MAX_WAITERS a ?wait request is refused with 429
// and Retry-After before anything is published, while requests without ?wait go on.
func TestWaitersAreBounded(t *testing.T) {
	t.Parallel()
	s := workertest.StartIngress(t, workertest.IngressOptions{MaxWaiters: 1})
	if err := s.Dev.Sim.SetDirectory(vidmsim.Directory{ID: "dir-lab-iwa", Name: "Lab IWA", Type: vidmsim.TypeActiveDirectoryIWA,
		Domains: []string{"lab.example.com"}, SyncDuration: time.Minute}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := binary(t, s.URL+"?wait=50s", uuid.NewString(), "ad.group.created", groupData("lab.example.com", "g1")).WithContext(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(first); err == nil {
			resp.Body.Close()
		}
	}()
	poll.Until(t, 10*time.Second, "the first request to wait", func() bool { return s.Watcher.Waiting() == 1 })

	id := uuid.NewString()
	r := do(t, binary(t, s.URL+"?wait=50s", id, "ad.group.created", groupData("lab.example.com", "g2")))
	wantStatus(t, r, http.StatusTooManyRequests)
	if p := r.problem(t); p.ID != id || !strings.Contains(p.Error, "not published") || r.header.Get("Retry-After") == "" {
		t.Fatalf("429 = %+v, Retry-After %q", p, r.header.Get("Retry-After"))
	}
	if last := s.LastSeq(t, s.Cfg.TriggerStream); last != 1 {
		t.Fatalf("trigger stream at seq %d, want only the first trigger published", last)
	}
	wantStatus(t, do(t, binary(t, s.URL, uuid.NewString(), "ad.group.created", groupData("lab.example.com", "g3"))), http.StatusAccepted)
	cancel()
	<-done
}
