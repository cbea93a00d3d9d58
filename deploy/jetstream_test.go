package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sethvargo/go-envconfig"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/streams"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
)

// update rewrites nats/streams/*.json and nats/consumers/*.json from what streams.Ensure creates
// (with the production replica count), for when the worker's resources change on purpose.
var update = flag.Bool("update", false, "rewrite the JetStream definitions under nats/ from streams.Ensure")

const (
	streamsDir   = "nats/streams"
	consumersDir = "nats/consumers"
	// prodReplicas is the replica count of the definitions: a three-node cluster, as deploy/README.md
	// asks for. The embedded test server has one node, so replicas are the one field not compared.
	prodReplicas = 3
)

// requiredEnv is the least a non-dev configuration needs; everything else takes its default.
func requiredEnv() map[string]string {
	return map[string]string{
		"NATS_URL":           "nats://nats:4222",
		"VIDM_URL":           "https://vidm.corp.example.com",
		"VIDM_CLIENT_ID":     "vidm-sync-worker",
		"VIDM_CLIENT_SECRET": "placeholder",
		"RESULT_SOURCE":      "urn:vidm-sync-worker:test",
	}
}

func loadConfig(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	cfg, err := config.Load(context.Background(), envconfig.MapLookuper(env), false)
	if err != nil {
		t.Fatalf("config.Load: %v", err)
	}
	return cfg
}

// ensured runs streams.Ensure with the default configuration on an embedded JetStream server and
// returns the configurations of every stream and consumer it made, by name.
func ensured(t *testing.T) (map[string]jetstream.StreamConfig, map[string]jetstream.ConsumerConfig) {
	t.Helper()
	cfg := loadConfig(t, requiredEnv())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := natstest.JetStream(t)
	if _, err := streams.Ensure(ctx, js, cfg.StreamNames(), cfg.StreamSettings()); err != nil {
		t.Fatalf("streams.Ensure: %v", err)
	}
	sts, cons := map[string]jetstream.StreamConfig{}, map[string]jetstream.ConsumerConfig{}
	for info := range js.ListStreams(ctx).Info() {
		sts[info.Config.Name] = info.Config
		for name := range mustStream(ctx, t, js, info.Config.Name).ConsumerNames(ctx).Name() {
			c, err := js.Consumer(ctx, info.Config.Name, name)
			if err != nil {
				t.Fatal(err)
			}
			cons[consumerFile(info.Config.Name, name)] = c.CachedInfo().Config
		}
	}
	return sts, cons
}

func mustStream(ctx context.Context, t *testing.T, js jetstream.JetStream, name string) jetstream.Stream {
	t.Helper()
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// consumerFile names a consumer's definition: <stream>.<consumer> (`nats consumer add <stream>
// --config <file>` needs the stream name beside the file).
func consumerFile(stream, consumer string) string { return stream + "." + consumer }

// normalizeStream drops what the definitions leave to the server: the replica count (checked on
// its own) and the metadata the server adds about itself (_nats.req.level, _nats.ver, …).
func normalizeStream(c jetstream.StreamConfig) jetstream.StreamConfig {
	c.Replicas = 0
	c.Metadata = nil
	return c
}

func normalizeConsumer(c jetstream.ConsumerConfig) jetstream.ConsumerConfig {
	c.Metadata = nil
	c.Name = "" // the server names a durable consumer after durable_name
	return c
}

// TestJetStreamDefinitionsMatchEnsure: operators who manage the resources themselves
// (MANAGE_STREAMS=false) create them from deploy/nats/streams and deploy/nats/consumers with the
// nats CLI. Those files must describe exactly what streams.Ensure creates with the default
// configuration (every field the server reports: subjects, retention, storage, max age, duplicate
// window, discard, history, allow_direct, ack policy, max deliver, filter subjects, …), except
// the replica count, which is 3 in the files and 1 on the single test server.
func TestJetStreamDefinitionsMatchEnsure(t *testing.T) {
	sts, cons := ensured(t)
	if *update {
		writeDefinitions(t, sts, cons)
	}

	files := jsonFiles(t, streamsDir)
	for _, name := range sortedKeys(sts) {
		if !slices.Contains(files, name) {
			t.Errorf("streams.Ensure creates stream %s but %s/%s.json does not exist (go test -run JetStream -update in deploy/ writes it)", name, streamsDir, name)
		}
	}
	for _, name := range files {
		path := filepath.Join(streamsDir, name+".json")
		var file jetstream.StreamConfig
		decodeStrictJSON(t, path, &file)
		want, ok := sts[name]
		if !ok {
			t.Errorf("%s: streams.Ensure creates no stream %s; remove the file or fix the name", path, name)
			continue
		}
		if file.Name != name {
			t.Errorf("%s: name %q, want %q (the file's name)", path, file.Name, name)
		}
		if file.Replicas != prodReplicas {
			t.Errorf("%s: num_replicas %d, want %d for production", path, file.Replicas, prodReplicas)
		}
		for _, d := range diffFields(normalizeStream(file), normalizeStream(want), "streams.Ensure") {
			t.Errorf("%s: %s", path, d)
		}
	}

	files = jsonFiles(t, consumersDir)
	for _, name := range sortedKeys(cons) {
		if !slices.Contains(files, name) {
			t.Errorf("streams.Ensure creates consumer %s but %s/%s.json does not exist", name, consumersDir, name)
		}
	}
	for _, name := range files {
		path := filepath.Join(consumersDir, name+".json")
		var file jetstream.ConsumerConfig
		decodeStrictJSON(t, path, &file)
		want, ok := cons[name]
		if !ok {
			t.Errorf("%s: streams.Ensure creates no consumer <stream>.<durable> %s", path, name)
			continue
		}
		if stream, durable, _ := strings.Cut(name, "."); file.Durable != durable || sts[stream].Name == "" {
			t.Errorf("%s: durable_name %q; the file name must be <stream>.<durable_name> of a stream Ensure creates", path, file.Durable)
		}
		for _, d := range diffFields(normalizeConsumer(file), normalizeConsumer(want), "streams.Ensure") {
			t.Errorf("%s: %s", path, d)
		}
	}

	// The fields that carry the worker's guarantees, spelled out so that a failure says which
	// guarantee a regenerated file would break.
	for _, b := range []string{"KV_DIRSYNC_PENDING", "KV_DIRSYNC_RUNS", "KV_DIRSYNC_LEASES", "KV_DIRSYNC_CONTROL", "KV_DIRSYNC_HISTORY"} {
		var c jetstream.StreamConfig
		decodeStrictJSON(t, filepath.Join(streamsDir, b+".json"), &c)
		if c.AllowDirect {
			t.Errorf("%s: allow_direct must be false: a direct get may be answered by a replica that has not caught up", b)
		}
		if c.MaxMsgsPerSubject != 1 {
			t.Errorf("%s: max_msgs_per_subject (bucket history) %d, want 1", b, c.MaxMsgsPerSubject)
		}
	}
	var lease jetstream.StreamConfig
	decodeStrictJSON(t, filepath.Join(streamsDir, "KV_DIRSYNC_LEASES.json"), &lease)
	if lease.MaxAge <= 0 {
		t.Errorf("KV_DIRSYNC_LEASES: max_age (the lease TTL) must be set, or a crashed worker's lease never expires")
	}
	var c jetstream.ConsumerConfig
	decodeStrictJSON(t, filepath.Join(consumersDir, "DIRSYNC_TRIGGERS.vidm-sync-worker.json"), &c)
	if c.AckPolicy != jetstream.AckExplicitPolicy || c.MaxDeliver != -1 {
		t.Errorf("trigger consumer: ack_policy %s, max_deliver %d; want explicit and -1 (the server must never drop a trigger)", c.AckPolicy, c.MaxDeliver)
	}
}

// TestJetStreamDefinitionsAreFileStoredAndReplicated covers every stream file, including any a
// future Ensure no longer creates.
func TestJetStreamDefinitionsAreFileStoredAndReplicated(t *testing.T) {
	for _, name := range jsonFiles(t, streamsDir) {
		var c jetstream.StreamConfig
		decodeStrictJSON(t, filepath.Join(streamsDir, name+".json"), &c)
		if c.Storage != jetstream.FileStorage || c.Replicas != prodReplicas {
			t.Errorf("%s: storage %s, replicas %d; production wants file storage and %d replicas", name, c.Storage, c.Replicas, prodReplicas)
		}
	}
}

// TestShippedConfigMapKeepsDefaultResources: the definitions are made from the defaults, so the
// Kubernetes ConfigMap must not change a setting that shapes the resources (a lease TTL, a
// bucket name, …) without the files following; STREAM_REPLICAS is the one expected difference.
func TestShippedConfigMapKeepsDefaultResources(t *testing.T) {
	shipped := shippedConfig(t, loadManifests(t))
	defaults := loadConfig(t, requiredEnv())
	if shipped.StreamReplicas != prodReplicas {
		t.Errorf("ConfigMap STREAM_REPLICAS gives %d replicas, want %d (like the JetStream definitions)", shipped.StreamReplicas, prodReplicas)
	}
	if d := diffFields(shipped.StreamNames(), defaults.StreamNames(), "the default"); len(d) > 0 {
		t.Errorf("the ConfigMap renames JetStream resources; regenerate deploy/nats from it: %v", d)
	}
	s, def := shipped.StreamSettings(), defaults.StreamSettings()
	s.Replicas, def.Replicas = 0, 0
	if d := diffFields(s, def, "the default"); len(d) > 0 {
		t.Errorf("the ConfigMap changes JetStream settings the definitions under deploy/nats were made without: %v", d)
	}
}

func writeDefinitions(t *testing.T, sts map[string]jetstream.StreamConfig, cons map[string]jetstream.ConsumerConfig) {
	t.Helper()
	for dir, items := range map[string]map[string]any{
		streamsDir:   mapValues(sts, func(c jetstream.StreamConfig) any { c = normalizeStream(c); c.Replicas = prodReplicas; return c }),
		consumersDir: mapValues(cons, func(c jetstream.ConsumerConfig) any { return normalizeConsumer(c) }),
	} {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		for name, v := range items {
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetIndent("", "  ")
			enc.SetEscapeHTML(false) // subjects end in '>', which reads better unescaped
			if err := enc.Encode(v); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name+".json"), b.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func mapValues[V any](m map[string]V, f func(V) any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = f(v)
	}
	return out
}

// jsonFiles lists dir's *.json files by name without the extension.
func jsonFiles(t *testing.T, dir string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, strings.TrimSuffix(filepath.Base(p), ".json"))
	}
	if len(names) == 0 {
		t.Fatalf("no JSON definitions in %s", dir)
	}
	return names
}

// decodeStrictJSON decodes path into v and fails on a field v does not have: a misspelt field
// in a definition would otherwise be ignored by the nats CLI too.
func decodeStrictJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path) //nolint:gosec // test fixture under deploy/
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// diffFields names every exported field of two structs of one type that differs, by its JSON
// name when it has one, with both values; wantFrom says where want comes from.
func diffFields(got, want any, wantFrom string) []string {
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	var out []string
	for i := range gv.NumField() {
		f := gv.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		g, w := gv.Field(i).Interface(), wv.Field(i).Interface()
		if reflect.DeepEqual(g, w) {
			continue
		}
		name := f.Name
		if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag != "" {
			name = tag
		}
		out = append(out, fmt.Sprintf("%s is %s, %s has %s", name, show(g), wantFrom, show(w)))
	}
	return out
}

func show(v any) string {
	if d, ok := v.(time.Duration); ok {
		return fmt.Sprintf("%s (%d ns)", d, int64(d))
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// The downstream durables an operator creates are valid consumer definitions on the results
// stream, and each is reserved in the shipped NATS configuration, so no publisher can touch it.
func TestDownstreamDurablesAreReserved(t *testing.T) {
	conf, err := os.ReadFile("nats/nats-server.conf")
	if err != nil {
		t.Fatal(err)
	}
	names := jsonFiles(t, "nats/downstream")
	if len(names) == 0 {
		t.Fatal("no downstream durable in nats/downstream")
	}
	for _, name := range names {
		var c jetstream.ConsumerConfig
		decodeStrictJSON(t, filepath.Join("nats/downstream", name+".json"), &c)
		stream, durable, _ := strings.Cut(name, ".")
		if stream != "DIRSYNC_RESULTS" || c.Durable != durable || c.AckPolicy != jetstream.AckExplicitPolicy {
			t.Errorf("%s: stream %s durable %q ack %s; want a durable of DIRSYNC_RESULTS named after its file, acknowledged", name, stream, c.Durable, c.AckPolicy)
		}
		for _, subj := range []string{"$JS.API.CONSUMER.CREATE.DIRSYNC_RESULTS." + durable + `"`, "$JS.API.CONSUMER.CREATE.DIRSYNC_RESULTS." + durable + `.>"`, "$JS.API.CONSUMER.DELETE.DIRSYNC_RESULTS." + durable + `"`} {
			if !strings.Contains(string(conf), `"`+subj) {
				t.Errorf("nats-server.conf does not reserve %s", strings.TrimSuffix(subj, `"`))
			}
		}
	}
}
