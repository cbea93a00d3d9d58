package schemas_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sethvargo/go-envconfig"
	"sigs.k8s.io/yaml"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/results"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
	"github.com/vidm-sync-worker/vidm-sync-worker/schemas"
)

const asyncAPIFile = "asyncapi.yaml"

// The parts of AsyncAPI 3.0.0 the document uses. Decoding is strict, so a misspelt keyword fails
// the test instead of being ignored by it; add a field here when the document needs one.
type (
	asyncAPIDoc struct {
		AsyncAPI           string `json:"asyncapi"`
		Info               info   `json:"info"`
		DefaultContentType string `json:"defaultContentType"`
		Servers            map[string]struct {
			Host        string `json:"host"`
			Protocol    string `json:"protocol"`
			Description string `json:"description"`
		} `json:"servers"`
		Channels   map[string]channel   `json:"channels"`
		Operations map[string]operation `json:"operations"`
		Components struct {
			Messages map[string]message        `json:"messages"`
			Schemas  map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	info struct {
		Title       string `json:"title"`
		Version     string `json:"version"`
		Description string `json:"description"`
	}
	ref struct {
		Ref string `json:"$ref"`
	}
	channel struct {
		Address     string `json:"address"`
		Title       string `json:"title"`
		Description string `json:"description"`
		Parameters  map[string]struct {
			Description string `json:"description"`
		} `json:"parameters"`
		Messages map[string]ref `json:"messages"`
	}
	operation struct {
		Action   string `json:"action"`
		Channel  ref    `json:"channel"`
		Title    string `json:"title"`
		Summary  string `json:"summary"`
		Messages []ref  `json:"messages"`
	}
	message struct {
		Name        string         `json:"name"`
		Title       string         `json:"title"`
		Summary     string         `json:"summary"`
		Description string         `json:"description"`
		ContentType string         `json:"contentType"`
		Headers     map[string]any `json:"headers"`
		Payload     map[string]any `json:"payload"`
		Examples    []struct {
			Name    string            `json:"name"`
			Summary string            `json:"summary"`
			Headers map[string]string `json:"headers"`
			Payload any               `json:"payload"`
		} `json:"examples"`
	}
)

func loadAsyncAPI(t *testing.T) *asyncAPIDoc {
	t.Helper()
	b, err := os.ReadFile(asyncAPIFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc asyncAPIDoc
	if err := yaml.UnmarshalStrict(b, &doc); err != nil {
		t.Fatalf("%s: %v", asyncAPIFile, err)
	}
	return &doc
}

// channelRef resolves "#/channels/<name>"; ok is false if it points nowhere.
func (d *asyncAPIDoc) channelRef(r ref) (string, channel, bool) {
	name, ok := strings.CutPrefix(r.Ref, "#/channels/")
	if !ok || strings.Contains(name, "/") {
		return "", channel{}, false
	}
	ch, ok := d.Channels[name]
	return name, ch, ok
}

// messageRef resolves "#/components/messages/<name>".
func (d *asyncAPIDoc) messageRef(r ref) (string, message, bool) {
	name, ok := strings.CutPrefix(r.Ref, "#/components/messages/")
	if !ok || strings.Contains(name, "/") {
		return "", message{}, false
	}
	m, ok := d.Components.Messages[name]
	return name, m, ok
}

// operationMessages are the component messages of the operations with the given action.
func (d *asyncAPIDoc) operationMessages(t *testing.T, action string) map[string]message {
	t.Helper()
	out := map[string]message{}
	for opName, op := range d.Operations {
		if op.Action != action {
			continue
		}
		chName, ch, ok := d.channelRef(op.Channel)
		if !ok {
			t.Fatalf("operation %s: channel %q does not resolve", opName, op.Channel.Ref)
		}
		for _, mr := range op.Messages {
			key, ok := strings.CutPrefix(mr.Ref, "#/channels/"+chName+"/messages/")
			if !ok {
				t.Fatalf("operation %s: message %q is not one of its channel's", opName, mr.Ref)
			}
			name, m, ok := d.messageRef(ch.Messages[key])
			if !ok {
				t.Fatalf("operation %s: message %q does not resolve", opName, mr.Ref)
			}
			out[name] = m
		}
	}
	return out
}

// headerSchema collects what a message's headers schema declares, following allOf and local
// $refs into components.schemas: the header names, the required ones, and the ce-type
// constraints (const or pattern).
type headerSchema struct {
	properties, required map[string]bool
	typeConst            []string
	typePattern          []*regexp.Regexp
	typeMaxLen           []int
}

func (d *asyncAPIDoc) headers(t *testing.T, schema map[string]any) headerSchema {
	t.Helper()
	h := headerSchema{properties: map[string]bool{}, required: map[string]bool{}}
	var walk func(s map[string]any, depth int)
	walk = func(s map[string]any, depth int) {
		if depth > 10 {
			t.Fatal("headers schema: $ref cycle")
		}
		if r, ok := s["$ref"].(string); ok {
			name, ok := strings.CutPrefix(r, "#/components/schemas/")
			target, found := d.Components.Schemas[name]
			if !ok || !found {
				t.Fatalf("headers schema: $ref %q does not resolve", r)
			}
			walk(target, depth+1)
		}
		for _, sub := range asSlice(s["allOf"]) {
			if m, ok := sub.(map[string]any); ok {
				walk(m, depth+1)
			}
		}
		for _, r := range asSlice(s["required"]) {
			h.required[fmt.Sprint(r)] = true
		}
		props, _ := s["properties"].(map[string]any)
		for name, p := range props {
			h.properties[name] = true
			if name != "ce-type" {
				continue
			}
			pm, _ := p.(map[string]any)
			if c, ok := pm["const"].(string); ok {
				h.typeConst = append(h.typeConst, c)
			}
			if n, ok := pm["maxLength"].(float64); ok {
				h.typeMaxLen = append(h.typeMaxLen, int(n))
			}
			if pat, ok := pm["pattern"].(string); ok {
				re, err := regexp.Compile(pat)
				if err != nil {
					t.Fatalf("ce-type pattern %q: %v", pat, err)
				}
				h.typePattern = append(h.typePattern, re)
			}
		}
	}
	walk(schema, 0)
	return h
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// allowsType reports whether the headers' ce-type constraints admit typ.
func (h headerSchema) allowsType(typ string) bool {
	for _, c := range h.typeConst {
		if c != typ {
			return false
		}
	}
	for _, re := range h.typePattern {
		if !re.MatchString(typ) {
			return false
		}
	}
	for _, n := range h.typeMaxLen {
		if len(typ) > n {
			return false
		}
	}
	return len(h.typeConst)+len(h.typePattern) > 0
}

// nameMatches reads a message name as the document means it: "ad.group.*" is every type
// "ad.group.<one or more tokens>", anything else is one type.
func nameMatches(name, typ string) bool {
	if prefix, ok := strings.CutSuffix(name, "*"); ok {
		return strings.HasPrefix(typ, prefix) && len(typ) > len(prefix)
	}
	return name == typ
}

// payloadRef is the schema file a message's payload refers to: either `payload: {$ref}` or a
// Multi Format Schema Object `payload: {schemaFormat, schema: {$ref}}`.
func payloadRef(m message) (string, bool) {
	if r, ok := m.Payload["$ref"].(string); ok && len(m.Payload) == 1 {
		return r, true
	}
	if s, ok := m.Payload["schema"].(map[string]any); ok && len(s) == 1 {
		r, ok := s["$ref"].(string)
		return r, ok
	}
	return "", false
}

// TestAsyncAPIStructure: an AsyncAPI 3.0.0 document with info, a NATS server, channels with
// addresses whose parameters are declared, operations that send or receive on existing channels,
// and every reference resolving; nothing declared is left unused.
func TestAsyncAPIStructure(t *testing.T) {
	d := loadAsyncAPI(t)
	if d.AsyncAPI != "3.0.0" {
		t.Errorf("asyncapi: %q, want 3.0.0", d.AsyncAPI)
	}
	if d.Info.Title == "" || d.Info.Version == "" {
		t.Errorf("info.title %q and info.version %q are required", d.Info.Title, d.Info.Version)
	}
	if len(d.Servers) == 0 {
		t.Error("no servers")
	}
	for name, s := range d.Servers {
		if s.Protocol != "nats" || s.Host == "" {
			t.Errorf("server %s: protocol %q host %q, want nats and a host", name, s.Protocol, s.Host)
		}
	}
	if len(d.Channels) == 0 || len(d.Operations) == 0 {
		t.Fatal("the document needs channels and operations")
	}
	param := regexp.MustCompile(`\{([^}]*)\}`)
	usedMessages := map[string]bool{}
	for name, ch := range d.Channels {
		if ch.Address == "" {
			t.Errorf("channel %s has no address", name)
		}
		inAddress := map[string]bool{}
		for _, m := range param.FindAllStringSubmatch(ch.Address, -1) {
			inAddress[m[1]] = true
			if _, ok := ch.Parameters[m[1]]; !ok {
				t.Errorf("channel %s: address parameter {%s} is not declared", name, m[1])
			}
		}
		for p := range ch.Parameters {
			if !inAddress[p] {
				t.Errorf("channel %s: parameter %s is not in the address %q", name, p, ch.Address)
			}
		}
		if len(ch.Messages) == 0 {
			t.Errorf("channel %s has no messages", name)
		}
		for key, r := range ch.Messages {
			mName, _, ok := d.messageRef(r)
			if !ok {
				t.Errorf("channel %s message %s: $ref %q does not resolve to components.messages", name, key, r.Ref)
			}
			usedMessages[mName] = true
		}
	}
	for name := range d.Components.Messages {
		if !usedMessages[name] {
			t.Errorf("components.messages.%s is on no channel", name)
		}
	}
	usedChannels := map[string]bool{}
	for name, op := range d.Operations {
		if op.Action != "send" && op.Action != "receive" {
			t.Errorf("operation %s: action %q, want send or receive", name, op.Action)
		}
		chName, ch, ok := d.channelRef(op.Channel)
		if !ok {
			t.Errorf("operation %s: channel $ref %q does not resolve", name, op.Channel.Ref)
			continue
		}
		usedChannels[chName] = true
		if len(op.Messages) == 0 {
			t.Errorf("operation %s lists no messages", name)
		}
		for _, mr := range op.Messages {
			// AsyncAPI 3: an operation's messages are a subset of its channel's, by reference.
			key, ok := strings.CutPrefix(mr.Ref, "#/channels/"+chName+"/messages/")
			if _, exists := ch.Messages[key]; !ok || !exists {
				t.Errorf("operation %s: message $ref %q is not a message of channel %s", name, mr.Ref, chName)
			}
		}
	}
	for name := range d.Channels {
		if !usedChannels[name] {
			t.Errorf("channel %s has no operation", name)
		}
	}
	for name, m := range d.Components.Messages {
		if m.Name == "" || m.ContentType == "" || m.Headers == nil || m.Payload == nil {
			t.Errorf("message %s needs a name, contentType, headers and payload", name)
		}
		if len(m.Examples) == 0 {
			t.Errorf("message %s has no example", name)
		}
	}
}

// TestAsyncAPIPayloadsReferenceTheSchemaFiles: every event payload is a $ref to a JSON Schema
// file of this package (never a copy), and every schema file is referenced.
func TestAsyncAPIPayloadsReferenceTheSchemaFiles(t *testing.T) {
	d := loadAsyncAPI(t)
	referenced := map[string]bool{}
	for name, m := range d.Components.Messages {
		r, ok := payloadRef(m)
		if !ok {
			if isDeadLetter(m) {
				continue // the original payload, whatever it was: no schema
			}
			t.Errorf("message %s: payload is not a $ref to a schema file: %v", name, m.Payload)
			continue
		}
		file, ok := strings.CutPrefix(r, "./")
		if !ok || strings.Contains(file, "/") || strings.Contains(file, "#") {
			t.Errorf("message %s: payload $ref %q must be ./<file> beside the document", name, r)
			continue
		}
		if _, err := fs.Stat(schemas.FS, file); err != nil {
			t.Errorf("message %s: payload $ref %q names no schema file in package schemas", name, r)
			continue
		}
		if f, ok := m.Payload["schemaFormat"].(string); ok && f != "application/schema+json;version=draft-2020-12" {
			t.Errorf("message %s: schemaFormat %q; the schema files are draft 2020-12", name, f)
		}
		referenced[file] = true
	}
	embedded, err := fs.Glob(schemas.FS, "*.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range slices.Compact(slices.Sorted(slices.Values(append(schemas.Names(), embedded...)))) {
		if !referenced[file] {
			t.Errorf("schema file %s is the payload of no message in %s", file, asyncAPIFile)
		}
	}
}

// isDeadLetter: the dead-letter message is the one whose headers carry Dirsync-Dead-Code.
func isDeadLetter(m message) bool {
	r, _ := m.Headers["$ref"].(string)
	return r == "#/components/schemas/deadLetterHeaders"
}

// acceptedByDecoder asks the worker's own decoder whether it takes typ as a trigger type: any
// rejection other than UNKNOWN_TYPE (such as a schema violation of the probe's data) means the
// type itself is accepted.
func acceptedByDecoder(t *testing.T, dec *trigger.Decoder, typ string) bool {
	t.Helper()
	h := nats.Header{}
	h.Set("ce-specversion", "1.0")
	h.Set("ce-id", "probe-1")
	h.Set("ce-source", "urn:test")
	h.Set("ce-type", typ)
	_, err := dec.Decode(h, []byte(`{"domain":"corp.example.com","group":{"name":"g"}}`))
	var te *trigger.Error
	if errors.As(err, &te) {
		return te.Code != contract.CodeUnknownType
	}
	return err == nil
}

// TestAsyncAPIEventTypesMatchTheCode: the trigger types the document says the worker receives
// are the ones its decoder accepts (probed with members and near misses of each family), and
// the types it sends are exactly the results package's: TypeStarted, TypeCompleted, TypeFailed
// and the warning TypeSyncClientTokenExpiring. (TestAsyncAPIMatchesWhatThePublisherSends checks
// that these are what the publisher really sends, and where.)
func TestAsyncAPIEventTypesMatchTheCode(t *testing.T) {
	d := loadAsyncAPI(t)
	dec, err := trigger.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	received := d.operationMessages(t, "receive")

	// documented reports whether some received message names typ and its ce-type header admits it.
	documented := func(typ string) bool {
		for _, m := range received {
			if nameMatches(m.Name, typ) && d.headers(t, m.Headers).allowsType(typ) {
				return true
			}
		}
		return false
	}
	for _, m := range received {
		probe := strings.ReplaceAll(m.Name, "*", "member-added")
		if !acceptedByDecoder(t, dec, probe) {
			t.Errorf("the document says the worker receives %s, but its decoder rejects %q as UNKNOWN_TYPE", m.Name, probe)
		}
	}
	probes := []string{
		// Accepted today: a change to the decoder's types shows up here first.
		contract.TypeSyncRequested, "ad.group.created", "ad.group.deleted", "ad.group.member-added",
		"ad.group.members.removed", "ad.group.renamed_v2", "ad.user.created", "ad.user.disabled", "ad.user.password-reset",
		// Rejected today.
		"ad.group", "ad.group.", "ad.group..created", "ad.group.-created", "ad.group.created!", "ad.groups.created",
		"ad.user", "ad.computer.created", "vidm.directory.sync", "com.example.other",
		contract.TypeStarted, contract.TypeCompleted, contract.TypeFailed, contract.TypeSyncClientTokenExpiring,
		"ad.group." + strings.Repeat("x", 300),
	}
	for _, typ := range probes {
		code, doc := acceptedByDecoder(t, dec, typ), documented(typ)
		switch {
		case code && !doc:
			t.Errorf("the worker accepts trigger type %q, but %s documents no message for it", typ, asyncAPIFile)
		case !code && doc:
			t.Errorf("%s documents trigger type %q, which the worker rejects as UNKNOWN_TYPE", asyncAPIFile, typ)
		}
	}
	if !documented(contract.TypeSyncRequested) {
		t.Errorf("%s does not document %s", asyncAPIFile, contract.TypeSyncRequested)
	}

	sent := map[string]bool{}
	for _, m := range d.operationMessages(t, "send") {
		if isDeadLetter(m) {
			continue
		}
		sent[m.Name] = true
		if h := d.headers(t, m.Headers); !h.allowsType(m.Name) || len(h.typeConst) == 0 {
			t.Errorf("message %s: its ce-type header must be const %q", m.Name, m.Name)
		}
	}
	want := []string{contract.TypeStarted, contract.TypeCompleted, contract.TypeFailed, contract.TypeSyncClientTokenExpiring}
	if got := slices.Sorted(maps.Keys(sent)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("%s sends %v; the worker publishes %v", asyncAPIFile, got, want)
	}
}

func paramsMention(ch channel, s string) bool {
	for _, p := range ch.Parameters {
		if strings.Contains(p.Description, s) {
			return true
		}
	}
	return false
}

func defaultConfig(t *testing.T) config.Config {
	t.Helper()
	cfg, err := config.Load(context.Background(), envconfig.MapLookuper(map[string]string{
		"NATS_URL": "nats://nats:4222", "VIDM_URL": "https://vidm.corp.example.com",
		"VIDM_CLIENT_ID": "id", "VIDM_CLIENT_SECRET": "secret", "RESULT_SOURCE": "urn:test",
	}), false)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestAsyncAPIAddressesAreTheDefaultSubjects: the channel addresses are the worker's default
// subjects (TRIGGER_SUBJECTS, RESULT_SUBJECT_PREFIX.<kind>, the warnings' RESULT_SUBJECT_PREFIX.warning,
// DEAD_SUBJECT), each on the channel of the operation that uses it.
func TestAsyncAPIAddressesAreTheDefaultSubjects(t *testing.T) {
	d := loadAsyncAPI(t)
	cfg := defaultConfig(t)
	param := regexp.MustCompile(`\{[^}]*\}`)
	kinds := map[string]string{
		contract.TypeStarted: "started", contract.TypeCompleted: "completed", contract.TypeFailed: "failed",
		contract.TypeSyncClientTokenExpiring: "warning",
	}
	checked := 0
	for opName, op := range d.Operations {
		chName, ch, ok := d.channelRef(op.Channel)
		if !ok {
			t.Fatalf("operation %s: channel does not resolve", opName)
		}
		for _, mr := range op.Messages {
			key := strings.TrimPrefix(mr.Ref, "#/channels/"+chName+"/messages/")
			_, m, _ := d.messageRef(ch.Messages[key])
			var want string
			switch {
			case op.Action == "receive":
				// A parameter is one or more tokens of the publisher's choice: NATS's '>'.
				got := param.ReplaceAllString(ch.Address, ">")
				if !slices.Equal([]string{got}, cfg.TriggerSubjects) {
					t.Errorf("channel %s: address %q stands for %q; TRIGGER_SUBJECTS defaults to %q", chName, ch.Address, got, cfg.TriggerSubjects)
				}
				if !paramsMention(ch, cfg.IngressSubject) {
					t.Errorf("channel %s: the parameters' descriptions should name the HTTP ingress's subject %q (INGRESS_SUBJECT)", chName, cfg.IngressSubject)
				}
				checked++
				continue
			case isDeadLetter(m):
				want = cfg.DeadSubject
			default:
				kind, ok := kinds[m.Name]
				if !ok {
					t.Errorf("operation %s sends %s, which the worker never publishes", opName, m.Name)
					continue
				}
				want = cfg.ResultSubjectPrefix + "." + kind
			}
			if ch.Address != want {
				t.Errorf("channel %s: address %q; the worker publishes %s to %q", chName, ch.Address, m.Name, want)
			}
			checked++
		}
	}
	if checked < 6 {
		t.Errorf("checked %d operation messages; want the triggers, three results, the warning and dead letters", checked)
	}
}

// TestAsyncAPIExamplesAreAcceptedByTheCode: every trigger example, as a binary-mode NATS message
// with the documented headers, passes the worker's decoder with its type; every result example's
// payload is valid against its schema file; every example header is declared.
func TestAsyncAPIExamplesAreAcceptedByTheCode(t *testing.T) {
	d := loadAsyncAPI(t)
	dec, err := trigger.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	compiled := compileAll(t)
	received := d.operationMessages(t, "receive")
	for name, m := range d.Components.Messages {
		h := d.headers(t, m.Headers)
		for _, ex := range m.Examples {
			where := fmt.Sprintf("message %s example %s", name, ex.Name)
			for k := range ex.Headers {
				if !h.properties[k] && !isDeadLetter(m) {
					t.Errorf("%s: header %s is not declared in the message's headers", where, k)
				}
			}
			for k := range h.required {
				if _, ok := ex.Headers[k]; !ok {
					t.Errorf("%s: required header %s is missing", where, k)
				}
			}
			payload, err := json.Marshal(ex.Payload)
			if err != nil {
				t.Fatal(err)
			}
			typ := ex.Headers["ce-type"]
			switch {
			case isDeadLetter(m):
				code := ex.Headers[contract.HeaderDeadCode]
				if !slices.Contains(deadCodes(), code) {
					t.Errorf("%s: %s %q is not a dead-letter code", where, contract.HeaderDeadCode, code)
				}
			case received[name].Name != "":
				hdr := nats.Header{}
				for k, v := range ex.Headers {
					hdr.Set(k, v)
				}
				tr, err := dec.Decode(hdr, payload)
				if err != nil {
					t.Errorf("%s: the worker's decoder rejects it: %v", where, err)
					continue
				}
				if tr.Type != typ || !nameMatches(m.Name, typ) || !h.allowsType(typ) {
					t.Errorf("%s: ce-type %q does not fit message %s", where, typ, m.Name)
				}
			default:
				r, _ := payloadRef(m)
				sch := compiled[strings.TrimPrefix(r, "./")]
				if sch == nil {
					t.Errorf("%s: no compiled schema for %q", where, r)
					continue
				}
				var doc any
				if err := json.Unmarshal(payload, &doc); err != nil {
					t.Fatal(err)
				}
				if err := sch.Validate(doc); err != nil {
					t.Errorf("%s: payload is invalid against %s: %v", where, r, err)
				}
				if typ != m.Name {
					t.Errorf("%s: ce-type %q, want %s", where, typ, m.Name)
				}
			}
		}
	}
}

// deadCodes are the Dirsync-Dead-Code values the worker sets: the decoder's and intake's.
func deadCodes() []string {
	return []string{
		string(contract.CodeMalformed), string(contract.CodeUnknownType), string(contract.CodeSchema),
		string(contract.CodeUnsupportedContentType),
		contract.CodeUnknownTenant, contract.CodeUnknownDirectory, contract.CodeAmbiguousDirectory,
	}
}

// TestAsyncAPIHeadersMatchTheEncoder: a result encoded as the worker encodes it (binary mode,
// with subject, time, traceparent and JSON data) carries exactly the headers the result messages
// declare, and all their required ones; the dead-letter headers and codes are the intake's.
func TestAsyncAPIHeadersMatchTheEncoder(t *testing.T) {
	d := loadAsyncAPI(t)
	e := event.New()
	e.SetID("01JDCKX4M7Q2ZC9N3V8R5T6W0Y.result")
	e.SetSource("urn:vidm-sync-worker:test")
	e.SetType(contract.TypeCompleted)
	e.SetSubject("Corp AD")
	e.SetTime(time.Date(2025, 11, 23, 14, 53, 28, 0, time.UTC))
	e.SetExtension("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if err := e.SetData(event.ApplicationJSON, map[string]string{"status": "COMPLETED"}); err != nil {
		t.Fatal(err)
	}
	msg, err := cenats.EncodeBinary("dirsync.result.completed", e)
	if err != nil {
		t.Fatal(err)
	}
	produced := map[string]bool{}
	for k := range msg.Header {
		produced[strings.ToLower(k)] = true
	}
	for name, m := range d.operationMessages(t, "send") {
		if isDeadLetter(m) {
			h := d.headers(t, m.Headers)
			for _, k := range []string{contract.HeaderDeadCode, contract.HeaderDeadReason, contract.HeaderDeadSubject, contract.HeaderDeadSeq} {
				if !h.properties[k] {
					t.Errorf("message %s: header %s, which intake sets, is not declared", name, k)
				}
			}
			codes := deadCodeEnum(d)
			if !slices.Equal(slices.Sorted(slices.Values(codes)), slices.Sorted(slices.Values(deadCodes()))) {
				t.Errorf("message %s: %s enum %v; the worker sets %v", name, contract.HeaderDeadCode, codes, deadCodes())
			}
			continue
		}
		h := d.headers(t, m.Headers)
		declared := map[string]bool{}
		for k := range h.properties {
			declared[strings.ToLower(k)] = true
		}
		for k := range produced {
			if !declared[k] {
				t.Errorf("message %s: the worker sends header %s, which is not declared", name, k)
			}
		}
		for k := range h.required {
			if !produced[strings.ToLower(k)] {
				t.Errorf("message %s: header %s is declared required, but the worker's encoder does not send it", name, k)
			}
		}
	}
}

func deadCodeEnum(d *asyncAPIDoc) []string {
	props, _ := d.Components.Schemas["deadLetterHeaders"]["properties"].(map[string]any)
	code, _ := props[contract.HeaderDeadCode].(map[string]any)
	var out []string
	for _, v := range asSlice(code["enum"]) {
		out = append(out, fmt.Sprint(v))
	}
	return out
}

// sentChannels maps the ce-type of every message the document says the worker sends (dead
// letters aside) to its channel's address and its message.
func (d *asyncAPIDoc) sentChannels(t *testing.T) map[string]struct {
	address string
	msg     message
} {
	t.Helper()
	out := map[string]struct {
		address string
		msg     message
	}{}
	for opName, op := range d.Operations {
		if op.Action != "send" {
			continue
		}
		chName, ch, ok := d.channelRef(op.Channel)
		if !ok {
			t.Fatalf("operation %s: channel does not resolve", opName)
		}
		for _, mr := range op.Messages {
			_, m, ok := d.messageRef(ch.Messages[strings.TrimPrefix(mr.Ref, "#/channels/"+chName+"/messages/")])
			if !ok {
				t.Fatalf("operation %s: message %q does not resolve", opName, mr.Ref)
			}
			if !isDeadLetter(m) {
				out[m.Name] = struct {
					address string
					msg     message
				}{ch.Address, m}
			}
		}
	}
	return out
}

// TestAsyncAPIMatchesWhatThePublisherSends publishes every kind of event the worker sends (a
// started event; completed, failed and delegated results; a token warning) through the real
// results.Publisher into a results stream on an embedded JetStream server, and holds each stored
// message to the document: a documented message of its ce-type, on that message's channel
// address, with declared headers only and all the required ones, and data valid against the
// message's schema file. Every documented sent message must have been seen.
func TestAsyncAPIMatchesWhatThePublisherSends(t *testing.T) {
	d := loadAsyncAPI(t)
	cfg := defaultConfig(t)
	compiled := compileAll(t)
	ctx := context.Background()
	js := natstest.JetStream(t)
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RESULTS", Subjects: []string{cfg.ResultSubjectPrefix + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	pub := results.New(js, cfg.ResultSubjectPrefix, "urn:vidm-sync-worker:test", nil)

	t0 := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	run := func(id string, o dirsync.Outcome) *dirsync.Run {
		o.FinishedAt = t0.Add(time.Minute)
		return &dirsync.Run{
			RunID: id, Tenant: "vcf", DirectoryID: "159498c4-6e0e-4757-ae4b-dcb6aaa93216/OktaDirectory", DirectoryName: "OktaDirectory",
			CreatedAt: t0, StartedAt: t0.Add(time.Second), Outcome: &o, Count: 1, Pages: 1,
			Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			Triggers: []dirsync.Trigger{{ID: "t-" + id, Source: "urn:test", Type: "ad.group.created", Group: "proj-admins",
				Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
		}
	}
	if err := pub.Started(ctx, run("run-started", dirsync.Outcome{})); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*dirsync.Run{
		run("run-completed", dirsync.Outcome{Status: contract.StatusCompleted, Connector: "conn-b",
			Attempts: []contract.Attempt{{Connector: "conn-a", Status: "FAILED", Message: "unreachable"}, {Connector: "conn-b", Status: "COMPLETED"}}}),
		run("run-failed", dirsync.Outcome{Status: contract.StatusFailed, ErrCode: contract.CodeUnknownTenant, ErrMessage: "tenant vcf is no longer configured"}),
		run("run-delegated", dirsync.Outcome{Status: contract.StatusDelegated, Delegation: &backend.Delegation{
			Kind: backend.DelegationSCIM, ProviderID: "159498c4-6e0e-4757-ae4b-dcb6aaa93216", ProviderName: "Okta", Source: "OKTA",
			TokenExpiresAt: t0.Add(6 * 24 * time.Hour), Message: "users and groups of Okta are pushed by its SCIM sync client"}}),
	} {
		if err := pub.Finished(ctx, r, 1, r.Triggers); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.TokenExpiring(ctx, results.TokenWarning{
		Tenant: "vcf", WarnBefore: 14 * 24 * time.Hour, Now: t0,
		Token: backend.SyncClientToken{ProviderID: "159498c4-6e0e-4757-ae4b-dcb6aaa93216", ProviderName: "Okta", Source: "OKTA",
			Domains: []string{"external-okta-idp.com"}, ExpiresAt: t0.Add(6 * 24 * time.Hour)},
	}); err != nil {
		t.Fatal(err)
	}

	documented := d.sentChannels(t)
	seen := map[string]bool{}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 5 {
		t.Fatalf("the stream holds %d messages, want the 5 published", info.State.Msgs)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		raw, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		e, err := cenats.Decode(raw.Header, raw.Data)
		if err != nil {
			t.Fatalf("message %d on %s: %v", seq, raw.Subject, err)
		}
		where := fmt.Sprintf("%s on %s", e.Type(), raw.Subject)
		doc, ok := documented[e.Type()]
		if !ok {
			t.Errorf("%s: the worker sends type %s, which %s does not document", where, e.Type(), asyncAPIFile)
			continue
		}
		seen[e.Type()] = true
		if raw.Subject != doc.address {
			t.Errorf("%s: documented on %q", where, doc.address)
		}
		h := d.headers(t, doc.msg.Headers)
		declared := map[string]bool{}
		for k := range h.properties {
			declared[strings.ToLower(k)] = true
		}
		for k := range raw.Header {
			if !declared[strings.ToLower(k)] {
				t.Errorf("%s: header %s is not declared", where, k)
			}
		}
		for k := range h.required {
			if raw.Header.Get(k) == "" {
				t.Errorf("%s: required header %s is missing", where, k)
			}
		}
		r, _ := payloadRef(doc.msg)
		sch := compiled[strings.TrimPrefix(r, "./")]
		if sch == nil {
			t.Fatalf("%s: no compiled schema for %q", where, r)
		}
		var data any
		if err := json.Unmarshal(e.Data(), &data); err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(data); err != nil {
			t.Errorf("%s: data invalid against %s: %v\n%s", where, r, err, e.Data())
		}
	}
	for typ := range documented {
		if !seen[typ] {
			t.Errorf("%s documents that the worker sends %s, but this test published none", asyncAPIFile, typ)
		}
	}
}
