// Package examples_test runs every example against a real stack started by the test: an embedded
// JetStream server, the vIDM simulator, a worker and the HTTP ingress (internal/testkit/workertest).
// The examples themselves stay free of the project's internal packages; users copy them.
package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/ingress"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/workertest"
)

// tool finds an interpreter the examples need. CI installs them, so there a missing one fails the
// test; elsewhere the test is skipped with the reason.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not on PATH, and CI must run this example: %v", name, err)
		}
		t.Skipf("%s is not on PATH (%v); install it to run this example's test", name, err)
	}
	return p
}

type output struct {
	stdout, stderr string
	exit           int
}

// command runs name with args and extra environment variables, failing the test when it cannot
// start or does not end within the deadline.
func command(t *testing.T, env []string, name string, args ...string) output {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	o := output{stdout.String(), stderr.String(), 0}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ctx.Err() != nil {
			t.Fatalf("%s %v: %v\nstdout:\n%s\nstderr:\n%s", name, args, err, o.stdout, o.stderr)
		}
		o.exit = ee.ExitCode()
	}
	return o
}

// goBuild builds a package of this module into a temporary directory and returns the binary.
func goBuild(t *testing.T, pkg, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	o := command(t, nil, "go", "build", "-o", out, pkg)
	if o.exit != 0 {
		t.Fatalf("go build %s: exit %d\n%s", pkg, o.exit, o.stderr)
	}
	return out
}

func failingEMEA(t *testing.T, s *workertest.Ingress) {
	t.Helper()
	if err := s.Dev.Sim.SetDirectory(vidmsim.Directory{ID: "dir-emea-ad", Name: "EMEA AD", Type: vidmsim.TypeActiveDirectoryLDAP,
		Domains: []string{"emea.example.com"}, FailMessage: "LDAP bind failed: invalid credentials"}); err != nil {
		t.Fatal(err)
	}
}

func TestABXAction(t *testing.T) {
	t.Parallel()
	python := tool(t, "python3")
	s := workertest.StartIngress(t, workertest.IngressOptions{})
	failingEMEA(t, s)
	run := func(inputs map[string]any) output {
		b, err := json.Marshal(inputs)
		if err != nil {
			t.Fatal(err)
		}
		// -B: no __pycache__ next to the example.
		return command(t, nil, python, "-B", filepath.Join("testdata", "run_abx.py"), filepath.Join("abx", "vidm_sync_abx.py"), string(b))
	}
	inputs := func(domain string) map[string]any {
		return map[string]any{
			"ingressUrl":   s.Server.URL + "/",
			"ingressToken": "secret:" + workertest.Token, // as the ABX runtime hands over a bound secret
			"domain":       domain,
			"groupName":    "proj-alpha-admins",
			"waitSeconds":  60,
		}
	}

	o := run(inputs("corp.example.com"))
	if o.exit != 0 {
		t.Fatalf("action failed: exit %d\n%s%s", o.exit, o.stdout, o.stderr)
	}
	var got struct {
		Status, EventID, RunID, Directory, PrincipalID string
		Result                                         struct {
			Type string        `json:"type"`
			Data contract.Data `json:"data"`
		}
	}
	if err := json.Unmarshal([]byte(o.stdout), &got); err != nil {
		t.Fatalf("action returned %q: %v", o.stdout, err)
	}
	wantID := vidmsim.PrincipalID("dir-corp-ad", vidmsim.KindGroup, "corp.example.com", "proj-alpha-admins")
	if got.Status != "COMPLETED" || got.Directory != "Corp AD" || got.RunID == "" || got.PrincipalID != wantID || got.Result.Type != contract.TypeCompleted ||
		!slices.ContainsFunc(got.Result.Data.Triggers, func(tr contract.Trigger) bool { return tr.ID == got.EventID }) {
		t.Fatalf("action returned %+v; want COMPLETED for Corp AD listing its event", got)
	}

	for _, tc := range []struct{ domain, want string }{
		{"emea.example.com", "SyncFailed: vIDM sync of directory EMEA AD"},
		{"nowhere.example.com", "SyncFailed: the worker rejected the trigger (UNKNOWN_DIRECTORY)"},
	} {
		o := run(inputs(tc.domain))
		if o.exit != 1 || !strings.Contains(o.stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want it to raise %q", tc.domain, o.exit, o.stderr, tc.want)
		}
	}
	bad := inputs("corp.example.com")
	bad["ingressToken"] = "secret:wrong"
	if o := run(bad); o.exit != 1 || !strings.Contains(o.stderr, "ingress answered 401") {
		t.Errorf("wrong token: exit %d, stderr %q", o.exit, o.stderr)
	}
}

// vroRun is what the node shim reports of one run of the vRO action.
type vroRun struct {
	Requests []struct {
		Method      string            `json:"method"`
		Path        string            `json:"path"`
		Content     string            `json:"content"`
		Headers     map[string]string `json:"headers"`
		ContentType string            `json:"contentType"`
		Host        struct {
			URL              string `json:"url"`
			Transient        bool   `json:"transient"`
			OperationTimeout int    `json:"operationTimeout"`
		} `json:"host"`
	} `json:"requests"`
	Logs     []string `json:"logs"`
	Returned *string  `json:"returned"`
	Thrown   string   `json:"thrown"`
}

type cannedResponse struct {
	StatusCode int    `json:"statusCode"`
	Content    string `json:"content"`
}

var (
	uuidRE    = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	notES5    = regexp.MustCompile("=>|`|\\blet\\s|\\bconst\\s|\\bclass\\s")
	vroAction = filepath.Join("vro", "vidmSyncAfterGroupCreated.js")
)

func TestVROAction(t *testing.T) {
	t.Parallel()
	node := tool(t, "node")
	if o := command(t, nil, node, "--check", vroAction); o.exit != 0 {
		t.Fatalf("node --check: %s", o.stderr)
	}
	src, err := os.ReadFile(vroAction)
	if err != nil {
		t.Fatal(err)
	}
	if m := notES5.Find(src); m != nil {
		t.Fatalf("the action uses %q, which vRO's Rhino (ECMAScript 5) does not run", m)
	}
	s := workertest.StartIngress(t, workertest.IngressOptions{})
	dir := t.TempDir()
	var shimEnv []string // the shim's environment
	run := func(inputs map[string]any, responses ...cannedResponse) vroRun {
		t.Helper()
		write := func(name string, v any) string {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		o := command(t, shimEnv, node, filepath.Join("testdata", "vro_shim.js"), vroAction,
			write("inputs.json", inputs), write("responses.json", append([]cannedResponse{}, responses...)))
		var r vroRun
		if o.exit != 0 || json.Unmarshal([]byte(o.stdout), &r) != nil {
			t.Fatalf("shim: exit %d\n%s%s", o.exit, o.stdout, o.stderr)
		}
		return r
	}
	inputs := map[string]any{
		"ingressUrl": s.Server.URL, "ingressToken": workertest.Token, "domain": "corp.example.com",
		"directory": nil, "groupName": "proj-alpha-admins", "waitSeconds": 45,
	}

	// 1. The request the action makes, recorded by the shim.
	first := run(inputs, cannedResponse{StatusCode: 200, Content: `{"type":"vidm.directory.sync.completed","data":{}}`})
	if len(first.Requests) != 1 || first.Thrown != "" {
		t.Fatalf("run: %+v", first)
	}
	req := first.Requests[0]
	id := req.Headers["ce-id"]
	wantHeaders := map[string]string{
		"Authorization": "Bearer " + workertest.Token, "ce-specversion": "1.0", "ce-id": id,
		"ce-source": "urn:vro:action:vidmSyncAfterGroupCreated", "ce-type": "ad.group.created", "ce-time": req.Headers["ce-time"],
	}
	switch {
	case req.Method != http.MethodPost || req.Path != "/events?wait=45s" || req.ContentType != "application/json":
		t.Fatalf("request %s %s (%s), want POST /events?wait=45s (application/json)", req.Method, req.Path, req.ContentType)
	case !uuidRE.MatchString(id):
		t.Fatalf("ce-id %q is not a UUID", id)
	case !equalMaps(req.Headers, wantHeaders):
		t.Fatalf("headers %v, want %v", req.Headers, wantHeaders)
	case req.Content != `{"group":{"name":"proj-alpha-admins"},"domain":"corp.example.com"}`:
		t.Fatalf("body %s", req.Content)
	case !req.Host.Transient || req.Host.URL != s.Server.URL || req.Host.OperationTimeout <= 45:
		t.Fatalf("host %+v: want a transient host whose operation timeout outlasts the wait", req.Host)
	}
	if _, err := time.Parse(time.RFC3339Nano, req.Headers["ce-time"]); err != nil {
		t.Errorf("ce-time: %v", err)
	}

	// 2. Replayed against the ingress, byte for byte: the sync runs and completes.
	u, err := url.Parse(s.Server.URL + req.Path)
	if err != nil {
		t.Fatal(err)
	}
	hreq, err := http.NewRequestWithContext(context.Background(), req.Method, u.String(), strings.NewReader(req.Content))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range req.Headers {
		hreq.Header.Set(k, v)
	}
	hreq.Header.Set("Content-Type", req.ContentType)
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get(ingress.HeaderResultStatus) != "COMPLETED" {
		t.Fatalf("replay: %d %s %s", resp.StatusCode, resp.Header.Get(ingress.HeaderResultStatus), body)
	}
	var result struct {
		Type string        `json:"type"`
		Data contract.Data `json:"data"`
	}
	if err := json.Unmarshal(body, &result); err != nil || !slices.ContainsFunc(result.Data.Triggers, func(tr contract.Trigger) bool { return tr.ID == id }) {
		t.Fatalf("replay result does not list %s: %v %s", id, err, body)
	}

	// 3. The action given the ingress's real answers, for the event it sent (the shim's
	// System.nextUUID answers the replayed id from now on).
	shimEnv = []string{"VRO_SHIM_UUID=" + id}
	ok := run(inputs, cannedResponse{200, string(body)})
	if ok.Thrown != "" || ok.Returned == nil || *ok.Returned != string(body) {
		t.Fatalf("with the COMPLETED answer: %+v", ok)
	}
	groupID := vidmsim.PrincipalID("dir-corp-ad", vidmsim.KindGroup, "corp.example.com", "proj-alpha-admins")
	if !slices.ContainsFunc(ok.Logs, func(l string) bool {
		return strings.Contains(l, "synced into vIDM directory Corp AD") && strings.Contains(l, "id "+groupID)
	}) {
		t.Errorf("logs %q, want the group's id %s", ok.Logs, groupID)
	}
	notVisible := strings.Replace(string(body), `"visible":true`, `"visible":false,"hint":"outside the directory's sync scope"`, 1)
	failed := strings.Replace(string(body), contract.TypeCompleted, contract.TypeFailed, 1)
	failed = strings.Replace(failed, `"status":"COMPLETED"`, `"status":"FAILED","error":{"code":"VIDM_SYNC_FAILED","message":"LDAP bind failed","retryable":false}`, 1)
	for _, tc := range []struct {
		name      string
		responses []cannedResponse
		want      string
		requests  int
	}{
		{"failed", []cannedResponse{{200, failed}}, "failed: VIDM_SYNC_FAILED: LDAP bind failed", 1},
		{"not visible", []cannedResponse{{200, notVisible}}, "is not in vIDM: outside the directory's sync scope", 1},
		{"dead-lettered", []cannedResponse{{422, `{"error":"the worker rejected the trigger: no directory","code":"UNKNOWN_DIRECTORY","id":"x"}`}}, "rejected the trigger (UNKNOWN_DIRECTORY)", 1},
		{"timeout", []cannedResponse{{504, `{"error":"no result within 45s; the trigger is still published and will be synced","id":"x"}`}}, "no sync result within 45s", 1},
		{"unauthorized", []cannedResponse{{401, `{"error":"missing or wrong bearer token"}`}}, "answered 401", 1},
		{"503 then completed", []cannedResponse{{503, `{"error":"retry later"}`}, {200, string(body)}}, "", 2},
	} {
		r := run(inputs, tc.responses...)
		switch {
		case len(r.Requests) != tc.requests:
			t.Errorf("%s: %d requests, want %d", tc.name, len(r.Requests), tc.requests)
		case tc.want == "" && r.Thrown != "":
			t.Errorf("%s: threw %q", tc.name, r.Thrown)
		case !strings.Contains(r.Thrown, tc.want):
			t.Errorf("%s: threw %q, want %q", tc.name, r.Thrown, tc.want)
		}
		if tc.requests == 2 && r.Requests[0].Headers["ce-id"] != r.Requests[1].Headers["ce-id"] {
			t.Errorf("%s: the retry changed the event id; the worker would take it for a second trigger", tc.name)
		}
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestShellStep(t *testing.T) {
	t.Parallel()
	bash := tool(t, "bash")
	bin := goBuild(t, "../cmd/vidm-sync", "vidm-sync")
	s := workertest.StartIngress(t, workertest.IngressOptions{})
	failingEMEA(t, s)
	// Lab IWA's sync scope leaves the project groups out.
	if err := s.Dev.Sim.SetDirectory(vidmsim.Directory{ID: "dir-lab-iwa", Name: "Lab IWA", Type: vidmsim.TypeActiveDirectoryIWA,
		Domains: []string{"lab.example.com"}, OutOfScope: []string{"proj-*"}}); err != nil {
		t.Fatal(err)
	}
	resultFile := filepath.Join(t.TempDir(), "result.json")
	env := func(domain string) []string {
		return []string{
			"PATH=" + filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH"),
			"NATS_URL=" + s.Cfg.NATSURL, "AD_DOMAIN=" + domain, "GROUP_NAME=proj-alpha-admins",
			"SYNC_TIMEOUT=1m", "RESULT_FILE=" + resultFile,
		}
	}
	script := filepath.Join("shell", "sync-after-group-create.sh")

	o := command(t, env("corp.example.com"), bash, script)
	if o.exit != 0 || !strings.Contains(o.stdout, "group proj-alpha-admins is synced into vIDM (run ") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", o.exit, o.stdout, o.stderr)
	}
	b, err := os.ReadFile(resultFile)
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Type != contract.TypeCompleted {
		t.Fatalf("RESULT_FILE holds %s (%v)", b, err)
	}

	for _, tc := range []struct {
		domain string
		exit   int
		want   string
	}{
		{"emea.example.com", 3, "failed or was rejected"},
		{"nowhere.example.com", 3, "UNKNOWN_DIRECTORY"},
		{"not a domain", 2, "nothing was published"},
		{"lab.example.com", 4, "is not in it: check the directory's sync scope"},
	} {
		o := command(t, env(tc.domain), bash, script)
		if o.exit != tc.exit || !strings.Contains(o.stderr, tc.want) {
			t.Errorf("%s: exit %d, want %d with %q\nstderr:\n%s", tc.domain, o.exit, tc.exit, tc.want, o.stderr)
		}
	}
}

func TestGoConsumer(t *testing.T) {
	t.Parallel()
	bin := goBuild(t, "./go-consumer", "go-consumer")
	s := workertest.StartIngress(t, workertest.IngressOptions{})
	const durable = "example-test"

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-nats-url", s.Cfg.NATSURL, "-durable", durable, "-count", "1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	poll.Until(t, 30*time.Second, "the example's durable consumer", func() bool {
		_, err := s.JS.Consumer(ctx, s.Cfg.ResultStream, durable)
		return err == nil
	})

	id := uuid.NewString()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"?wait=60s", strings.NewReader(`{"domain":"corp.example.com","group":{"name":"proj-beta-users"}}`))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"Authorization": "Bearer " + workertest.Token, "Content-Type": "application/json",
		"ce-specversion": "1.0", "ce-id": id, "ce-source": "urn:test:examples", "ce-type": "ad.group.created",
	} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ingress: %d", resp.StatusCode)
	}

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("consumer: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		}
	case <-ctx.Done():
		t.Fatalf("consumer did not exit after one event\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	want := `COMPLETED trigger=` + id + ` group="proj-beta-users" user="" directory="Corp AD" run=`
	if !strings.Contains(stdout.String(), want) {
		t.Fatalf("consumer printed:\n%s\nwant a line with %q", stdout.String(), want)
	}
	// Acknowledged after handling: nothing is left pending for the durable consumer.
	c, err := s.JS.Consumer(ctx, s.Cfg.ResultStream, durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.AckFloor.Stream == 0 {
		t.Errorf("consumer state: %d pending acks, ack floor %d; want the result acknowledged", info.NumAckPending, info.AckFloor.Stream)
	}
}
