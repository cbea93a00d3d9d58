package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/workertest"
)

var uuidLine = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\n$`)

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// stack is the worker test kit's stack (the embedded NATS server, the vIDM simulator with its
// example directories: "Corp AD" for corp.example.com, "EMEA AD", "Lab IWA", ...) with one worker,
// and the CLI's environment.
type stack struct {
	*workertest.Stack
	t    *testing.T
	vars map[string]string // the CLI's environment
}

func newStack(t *testing.T) *stack {
	t.Helper()
	kit := workertest.Start(t, workertest.Options{Env: map[string]string{"SYNC_DEADLINE": "2m"}})
	kit.StartWorker("worker")
	return &stack{Stack: kit, t: t, vars: map[string]string{"NATS_URL": kit.Cfg.NATSURL}}
}

type output struct {
	stdout, stderr string
	err            error
}

// run runs the command with the stack's environment plus extra "NAME=value" variables.
func (s *stack) run(ctx context.Context, stdin string, args ...string) output {
	return runWith(ctx, s.vars, stdin, args...)
}

func runWith(ctx context.Context, vars map[string]string, stdin string, args ...string) output {
	var stdout, stderr bytes.Buffer
	err := run(ctx, args, func(k string) string { return vars[k] }, strings.NewReader(stdin), &stdout, &stderr)
	return output{stdout.String(), stderr.String(), err}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func exitCode(t *testing.T, o output, want int) {
	t.Helper()
	if got := report(o.err, &bytes.Buffer{}); got != want {
		t.Fatalf("exit code %d, want %d; err %v\nstdout:\n%s\nstderr:\n%s", got, want, o.err, o.stdout, o.stderr)
	}
}

// resultJSON is what --wait prints: the result event's attributes and data.
type resultJSON struct {
	ID          string        `json:"id"`
	Type        string        `json:"type"`
	Source      string        `json:"source"`
	Subject     string        `json:"subject"`
	Traceparent string        `json:"traceparent"`
	Data        contract.Data `json:"data"`
}

func parseResult(t *testing.T, s string) resultJSON {
	t.Helper()
	var r resultJSON
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, s)
	}
	return r
}

func lists(r resultJSON, id string) bool {
	return slices.ContainsFunc(r.Data.Triggers, func(tr contract.Trigger) bool { return tr.ID == id })
}

var publishedID = regexp.MustCompile(`published (\S+) to `)

func TestPublishWaitCompleted(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.vars["TRACEPARENT"] = traceparent
	o := s.run(testContext(t), "", "publish", "--domain", "corp.example.com", "--group", "g1", "--wait")
	exitCode(t, o, 0)
	m := publishedID.FindStringSubmatch(o.stderr)
	if m == nil {
		t.Fatalf("stderr names no published id:\n%s", o.stderr)
	}
	r := parseResult(t, o.stdout)
	if r.Type != contract.TypeCompleted || r.Data.Status != "COMPLETED" || r.Subject != "Corp AD" || !lists(r, m[1]) {
		t.Fatalf("result = %+v, want completed for Corp AD listing %s", r, m[1])
	}
	if r.Traceparent != traceparent {
		t.Errorf("result traceparent = %q, want TRACEPARENT %q carried over", r.Traceparent, traceparent)
	}
	if !strings.Contains(o.stderr, "sync started: directory Corp AD run "+r.Data.RunID) {
		t.Errorf("stderr has no progress line for run %s:\n%s", r.Data.RunID, o.stderr)
	}
	if !strings.HasPrefix(o.stdout, "{\n  ") {
		t.Errorf("result is not indented:\n%s", o.stdout)
	}
}

func TestPublishFileStructuredWait(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	const id = "file-trigger-1"
	o := s.run(testContext(t), "", "publish", "--file", "testdata/trigger.json", "--wait", "--structured", "--id", id)
	exitCode(t, o, 0)
	r := parseResult(t, o.stdout)
	if r.Type != contract.TypeCompleted || !lists(r, id) || r.Data.Triggers[slices.IndexFunc(r.Data.Triggers, func(tr contract.Trigger) bool { return tr.ID == id })].Group != "proj-alpha-admins" {
		t.Fatalf("result = %+v, want completed listing %s with its group", r, id)
	}
	st, err := s.JS.Stream(context.Background(), s.Cfg.TriggerStream)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := st.GetLastMsgForSubject(context.Background(), defaultTriggerSubject)
	if err != nil {
		t.Fatal(err)
	}
	if ct := msg.Header.Get("Content-Type"); ct != cenats.ContentTypeStructured {
		t.Errorf("published Content-Type %q, want structured mode", ct)
	}

	// The same data on stdin, with a flag overriding the file's group; binary mode.
	data, err := os.ReadFile(filepath.Join("testdata", "trigger.json"))
	if err != nil {
		t.Fatal(err)
	}
	o = s.run(testContext(t), string(data), "publish", "--file", "-", "--group", "override", "--wait")
	exitCode(t, o, 0)
	r = parseResult(t, o.stdout)
	if r.Type != contract.TypeCompleted || !slices.ContainsFunc(r.Data.Triggers, func(tr contract.Trigger) bool { return tr.Group == "override" }) {
		t.Fatalf("result = %+v, want a trigger for group override", r)
	}
}

func TestPublishWaitFailedExits3(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	if err := s.Dev.Sim.SetDirectory(vidmsim.Directory{ID: "dir-emea-ad", Name: "EMEA AD", Type: vidmsim.TypeActiveDirectoryLDAP,
		Domains: []string{"emea.example.com"}, FailMessage: "LDAP bind failed: invalid credentials"}); err != nil {
		t.Fatal(err)
	}
	o := s.run(testContext(t), "", "publish", "--directory", "EMEA AD", "--group", "g", "--wait", "--id", "will-fail")
	exitCode(t, o, exitFailed)
	var ee *exitError
	if !errors.As(o.err, &ee) {
		t.Fatalf("err %T %v is not an exitError", o.err, o.err)
	}
	if msg := o.err.Error(); !strings.Contains(msg, contract.CodeSyncFailed) || !strings.Contains(msg, "LDAP bind failed") {
		t.Errorf("error %q names neither the code nor the message", msg)
	}
	r := parseResult(t, o.stdout)
	if r.Type != contract.TypeFailed || !lists(r, "will-fail") || r.Data.Error == nil {
		t.Fatalf("result = %+v, want failed listing the trigger", r)
	}
}

// --wait says what the readiness check found: the group's id (alone on stdout with --print-id),
// or exit 4 when the sync completed without bringing the group.
func TestPublishWaitGivesThePrincipalIDOrExits4(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	corp := vidmsim.ExampleConfig().Directories[0]
	corp.OutOfScope = []string{"ext-*"}
	if err := s.Dev.Sim.SetDirectory(corp); err != nil {
		t.Fatal(err)
	}
	o := s.run(testContext(t), "", "publish", "--domain", "corp.example.com", "--group", "proj-beta", "--wait", "--print-id")
	exitCode(t, o, 0)
	id := vidmsim.PrincipalID(corp.ID, vidmsim.KindGroup, "corp.example.com", "proj-beta")
	if o.stdout != id+"\n" || !strings.Contains(o.stderr, "proj-beta is visible in Corp AD: principal id "+id) {
		t.Errorf("stdout %q, stderr:\n%s\nwant the id %s", o.stdout, o.stderr, id)
	}
	o = s.run(testContext(t), "", "publish", "--domain", "corp.example.com", "--group", "ext-partner", "--wait")
	exitCode(t, o, exitNotVisible)
	if msg := o.err.Error(); !strings.Contains(msg, "ext-partner is not visible") || !strings.Contains(msg, "sync scope") {
		t.Errorf("error %q does not say the group is not visible and why", msg)
	}
	if r := parseResult(t, o.stdout); r.Data.Status != contract.StatusCompleted {
		t.Errorf("result %+v, want the COMPLETED result printed", r)
	}
}

func TestPublishWaitDeadLetteredExits3(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	start := time.Now()
	o := s.run(testContext(t), "", "publish", "--domain", "nowhere.example.com", "--group", "g", "--wait", "--timeout", "1m")
	exitCode(t, o, exitFailed)
	if !strings.Contains(o.err.Error(), "UNKNOWN_DIRECTORY") {
		t.Errorf("error %q does not give the dead-letter code", o.err)
	}
	if o.stdout != "" {
		t.Errorf("stdout = %q, want nothing", o.stdout)
	}
	if time.Since(start) > 30*time.Second {
		t.Error("the rejection was only noticed at the timeout")
	}
}

func TestPublishWaitTimeoutExits1(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	if err := s.Dev.Sim.SetDirectory(vidmsim.Directory{ID: "dir-lab-iwa", Name: "Lab IWA", Type: vidmsim.TypeActiveDirectoryIWA,
		Domains: []string{"lab.example.com"}, SyncDuration: time.Minute}); err != nil {
		t.Fatal(err)
	}
	o := s.run(testContext(t), "", "publish", "--domain", "lab.example.com", "--group", "g", "--wait", "--timeout", "500ms")
	exitCode(t, o, exitFailure)
	if !strings.Contains(o.err.Error(), "no result for trigger") {
		t.Errorf("error %q is not the timeout message", o.err)
	}
}

func TestInvalidTriggerIsNotPublished(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	before := s.LastSeq(s.t, s.Cfg.TriggerStream)
	for _, tc := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"no group", "", []string{"--domain", "corp.example.com"}, "needs a group"},
		{"bad tenant", "", []string{"--domain", "corp.example.com", "--group", "g", "--tenant", "BAD"}, "/tenant"},
		{"bad domain", "", []string{"--domain", "not a domain", "--group", "g"}, "SCHEMA_VIOLATION"},
		{"no directory", "", []string{"--group", "g"}, "directory or domain"},
		{"unknown type", "", []string{"--type", "ad.thing.created", "--domain", "corp.example.com", "--group", "g"}, "not a trigger type"},
		{"bad traceparent", "", []string{"--domain", "corp.example.com", "--group", "g", "--traceparent", "nope"}, "traceparent"},
		{"unknown file field", `{"domain":"corp.example.com","grop":{"name":"g"}}`, []string{"--file", "-"}, `unknown field "grop"`},
		{"file group without name", `{"domain":"corp.example.com","group":{}}`, []string{"--file", "-"}, "group.name"},
		{"file not json", `domain=corp`, []string{"--file", "-"}, "not a JSON object"},
		{"two json values", `{"domain":"corp.example.com","group":{"name":"g"}} {}`, []string{"--file", "-"}, "more than one"},
		{"wildcard subject", "", []string{"--domain", "corp.example.com", "--group", "g", "--trigger-subject", "dirsync.trigger.>"}, "--trigger-subject"},
		{"stray argument", "", []string{"--domain", "corp.example.com", "--group", "g", "extra"}, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := s.run(testContext(t), tc.stdin, append([]string{"publish", "--wait"}, tc.args...)...)
			exitCode(t, o, exitUsage)
			if !strings.Contains(o.err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", o.err, tc.want)
			}
		})
	}
	if after := s.LastSeq(s.t, s.Cfg.TriggerStream); after != before {
		t.Fatalf("trigger stream went from seq %d to %d: something was published", before, after)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	o := runWith(ctx, nil, "", "frobnicate")
	exitCode(t, o, exitUsage)
	o = runWith(ctx, nil, "")
	exitCode(t, o, exitUsage)
	if !strings.Contains(o.stderr, "vidm-sync publish") {
		t.Errorf("no usage on stderr without a command:\n%s", o.stderr)
	}
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		o = runWith(ctx, nil, "", args...)
		exitCode(t, o, 0)
		for _, want := range []string{"vidm-sync publish", "--wait", "vidm-sync watch", "--file"} {
			if !strings.Contains(o.stdout, want) {
				t.Errorf("%v: usage lacks %q:\n%s", args, want, o.stdout)
			}
		}
	}
	for _, args := range [][]string{{"publish", "-h"}, {"help", "publish"}} {
		o = runWith(ctx, nil, "", args...)
		exitCode(t, o, 0)
		if !strings.Contains(o.stdout, "-ignore-safeguards") || !strings.Contains(o.stdout, "-nats-url") {
			t.Errorf("%v: flags missing:\n%s", args, o.stdout)
		}
	}
	o = runWith(ctx, nil, "", "watch", "--help")
	exitCode(t, o, 0)
	if !strings.Contains(o.stdout, "-count") {
		t.Errorf("watch usage lacks -count:\n%s", o.stdout)
	}
	for _, args := range [][]string{
		{"publish", "--nope"},
		{"watch", "--from", "yesterday"},
		{"watch", "--type", "exploded"},
		{"watch", "--count", "-1"},
		{"help", "frobnicate"},
	} {
		exitCode(t, runWith(ctx, nil, "", args...), exitUsage)
	}
}

func TestConnectionSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	resolve := func(vars map[string]string, args ...string) (connFlags, error) {
		fs := newFlagSet("test")
		var c connFlags
		c.register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		err := c.resolve(fs, setFlags(fs), func(k string) string { return vars[k] })
		return c, err
	}
	c, err := resolve(map[string]string{"NATS_URL": "nats://env:4222", "NATS_USER": "u", "NATS_PASSWORD_FILE": pwFile, "RESULT_STREAM": "R"})
	if err != nil || c.url != "nats://env:4222" || c.user != "u" || c.password != "s3cret" || c.resultStream != "R" {
		t.Fatalf("from env: %+v, %v", c, err)
	}
	c, err = resolve(map[string]string{"NATS_URL": "nats://env:4222", "NATS_TOKEN": "env-token"}, "--nats-url", "nats://flag:4222", "--nats-token", "flag-token")
	if err != nil || c.url != "nats://flag:4222" || c.token != "flag-token" {
		t.Fatalf("flags over env: %+v, %v", c, err)
	}
	for name, tc := range map[string]struct {
		vars map[string]string
		args []string
	}{
		"user without password": {nil, []string{"--nats-user", "u"}},
		"token and user":        {map[string]string{"NATS_TOKEN": "t"}, []string{"--nats-user", "u", "--nats-password", "p"}},
		"cert without key":      {map[string]string{"NATS_CERT_FILE": "c.pem"}, nil},
		"password twice":        {map[string]string{"NATS_USER": "u", "NATS_PASSWORD": "p", "NATS_PASSWORD_FILE": pwFile}, nil},
		"missing secret file":   {map[string]string{"NATS_TOKEN_FILE": filepath.Join(dir, "absent")}, nil},
	} {
		_, err := resolve(tc.vars, tc.args...)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != exitUsage {
			t.Errorf("%s: err %v, want a usage error", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error shows the secret: %v", name, err)
		}
	}
	// -h never shows a secret taken from the environment.
	o := runWith(testContext(t), map[string]string{"NATS_TOKEN": "tok-XYZ", "NATS_PASSWORD": "pw-XYZ"}, "", "publish", "-h")
	if strings.Contains(o.stdout, "XYZ") {
		t.Errorf("usage shows a secret:\n%s", o.stdout)
	}
	// Connection errors name the server without its credentials.
	o = runWith(testContext(t), map[string]string{"NATS_URL": "nats://bob:hunter2@127.0.0.1:1"}, "", "publish", "--domain", "corp.example.com", "--group", "g")
	exitCode(t, o, exitFailure)
	if strings.Contains(o.err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", o.err)
	}
}

func TestWatchAfterTwoSyncs(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := testContext(t)
	var ids []string
	for _, dir := range []string{"Corp AD", "EMEA AD"} {
		o := s.run(ctx, "", "publish", "--directory", dir, "--group", "g", "--wait")
		exitCode(t, o, 0)
		ids = append(ids, parseResult(t, o.stdout).Data.Triggers[0].ID)
	}

	// --count counts the events printed, started ones included: the first run's started and
	// completed.
	o := s.run(ctx, "", "watch", "--count", "2", "--json", "--from", "all")
	exitCode(t, o, 0)
	lines := strings.Split(strings.TrimSuffix(o.stdout, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("watch --count 2 printed %d lines:\n%s", len(lines), o.stdout)
	}
	first, second := parseResult(t, lines[0]), parseResult(t, lines[1])
	if first.Type != contract.TypeStarted || second.Type != contract.TypeCompleted || !lists(second, ids[0]) || first.Data.RunID != second.Data.RunID {
		t.Fatalf("events = %+v, %+v; want the first run's started and completed", first, second)
	}

	// Filtered by type: both completions, one per line.
	o = s.run(ctx, "", "watch", "--from", "all", "--type", "completed", "--count", "2", "--json")
	exitCode(t, o, 0)
	sc := bufio.NewScanner(strings.NewReader(o.stdout))
	var got []string
	for sc.Scan() {
		r := parseResult(t, sc.Text())
		if r.Type != contract.TypeCompleted {
			t.Errorf("--type completed printed a %s", r.Type)
		}
		for _, tr := range r.Data.Triggers {
			got = append(got, tr.ID)
		}
	}
	if !slices.Equal(got, ids) {
		t.Errorf("completed events list %v, want %v", got, ids)
	}

	// Filtered by directory, readable.
	o = s.run(ctx, "", "watch", "--from", "all", "--directory", "emea ad", "--type", "completed", "--count", "1")
	exitCode(t, o, 0)
	for _, want := range []string{" completed ", `directory="EMEA AD"`, "status=COMPLETED", "triggers=1", "run="} {
		if !strings.Contains(o.stdout, want) {
			t.Errorf("line %q lacks %q", o.stdout, want)
		}
	}
	if strings.Count(o.stdout, "\n") != 1 {
		t.Errorf("want one line, got:\n%s", o.stdout)
	}
}

func TestWatchFollowsNewEventsAndPublishPrintsTheID(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := testContext(t)

	// An earlier sync, which watch --from new must not show.
	exitCode(t, s.run(ctx, "", "publish", "--domain", "emea.example.com", "--group", "old", "--wait"), 0)

	watched := make(chan output, 1)
	go func() { watched <- s.run(ctx, "", "watch", "--type", "completed", "--count", "1") }()
	poll.Until(t, 10*time.Second, "watch's consumer", func() bool {
		st, err := s.JS.Stream(ctx, s.Cfg.ResultStream)
		return err == nil && st.CachedInfo().State.Consumers > 0
	})

	o := s.run(ctx, "", "publish", "--domain", "corp.example.com", "--group", "g2")
	exitCode(t, o, 0)
	if !uuidLine.MatchString(o.stdout) {
		t.Fatalf("publish printed %q, want just a UUID line", o.stdout)
	}
	w := <-watched
	exitCode(t, w, 0)
	if !strings.Contains(w.stdout, `directory="Corp AD"`) || strings.Count(w.stdout, "\n") != 1 {
		t.Fatalf("watch printed:\n%s\nwant the Corp AD completion only", w.stdout)
	}

	// --json: the publish record.
	o = s.run(ctx, "", "publish", "--domain", "corp.example.com", "--group", "g3", "--json", "--id", "json-id")
	exitCode(t, o, 0)
	var rec struct {
		ID, Subject, Stream string
		Seq                 uint64
	}
	if err := json.Unmarshal([]byte(o.stdout), &rec); err != nil || rec.ID != "json-id" || rec.Subject != defaultTriggerSubject || rec.Stream != s.Cfg.TriggerStream || rec.Seq == 0 {
		t.Fatalf("--json printed %q (%v)", o.stdout, err)
	}

	// Ctrl-C ends watch without an error.
	wctx, cancel := context.WithCancel(ctx)
	go func() { watched <- s.run(wctx, "", "watch") }()
	poll.Until(t, 10*time.Second, "the second watch's consumer", func() bool {
		st, err := s.JS.Stream(ctx, s.Cfg.ResultStream)
		return err == nil && st.CachedInfo().State.Consumers > 0
	})
	cancel()
	exitCode(t, <-watched, 0)
}

// A trigger published again with the same id is stored once; --wait then answers with the result
// the first publish got, although it came before the second command started watching.
func TestPublishWaitAgainGetsTheEarlierResult(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ctx := testContext(t)
	args := []string{"publish", "--domain", "corp.example.com", "--group", "g", "--id", "retried-id", "--wait"}
	o := s.run(ctx, "", args...)
	exitCode(t, o, 0)
	first := parseResult(t, o.stdout)

	o = s.run(ctx, "", args...)
	exitCode(t, o, 0)
	if !strings.Contains(o.stderr, "was already published") {
		t.Errorf("no duplicate warning:\n%s", o.stderr)
	}
	if again := parseResult(t, o.stdout); again.Data.RunID != first.Data.RunID || !lists(again, "retried-id") {
		t.Fatalf("second --wait printed run %s, want the first run %s", again.Data.RunID, first.Data.RunID)
	}
	if n := len(s.Dev.Sim.SyncLog()); n != 1 {
		t.Errorf("simulator ran %d syncs, want 1", n)
	}
}
