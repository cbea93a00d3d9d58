package tenants

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"

	"github.com/vidm-sync-worker/vidm-sync-worker/schemas"
)

// The published schema lists exactly the keys the loader accepts, at every level.
func TestSchemaKeysAreTheLoadersKeys(t *testing.T) {
	b, err := schemas.ConfigFS.ReadFile(schemas.TenantsFile)
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	defs := s["$defs"].(map[string]any)
	props := func(node map[string]any) []string {
		var keys []string
		for k := range node["properties"].(map[string]any) {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return keys
	}
	tenant := defs["tenant"].(map[string]any)
	tprops := tenant["properties"].(map[string]any)
	schedule := tprops["schedules"].(map[string]any)["items"].(map[string]any)
	for _, c := range []struct {
		name   string
		schema map[string]any
		raw    reflect.Type
	}{
		{"file", s, reflect.TypeFor[rawFile]()},
		{"tenant", tenant, reflect.TypeFor[rawTenant]()},
		{"auth", defs["auth"].(map[string]any), reflect.TypeFor[rawAuth]()},
		{"tls", tprops["tls"].(map[string]any), reflect.TypeFor[rawTLS]()},
		{"poll", tprops["poll"].(map[string]any), reflect.TypeFor[rawPoll]()},
		{"schedule", schedule, reflect.TypeFor[rawSchedule]()},
	} {
		var tags []string
		for f := range c.raw.Fields() {
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			tags = append(tags, tag)
		}
		slices.Sort(tags)
		if got := props(c.schema); !slices.Equal(got, tags) {
			t.Errorf("%s: schema keys %v, loader keys %v", c.name, got, tags)
		}
		if c.schema["additionalProperties"] != false {
			t.Errorf("%s: the schema must refuse unknown keys, as the loader does", c.name)
		}
	}
}

// The example files are valid under the schema, and files the loader refuses for
// their shape are refused by the schema too.
func TestSchemaAgreesWithTheLoader(t *testing.T) {
	sch, err := compileSchema()
	if err != nil {
		t.Fatal(err)
	}
	validate := func(yml string) error {
		js, err := yaml.YAMLToJSONStrict([]byte(yml))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(string(js)))
		if err != nil {
			t.Fatal(err)
		}
		return sch.Validate(doc)
	}
	for _, path := range []string{"testdata/tenants.yaml", "testdata/tenants.json"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate(string(b)); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
	const ok = "tenants:\n  corp:\n    backend: vidm\n    url: https://vidm.example.com\n    auth: {mode: oauth, clientId: c, clientSecretFile: s}\n"
	if err := validate(ok); err != nil {
		t.Fatalf("the smallest valid file: %v", err)
	}
	for name, bad := range map[string]string{
		"no tenants":            "defaultTenant: corp\n",
		"unknown key":           strings.Replace(ok, "    backend:", "    colour: red\n    backend:", 1),
		"inline secret":         strings.Replace(ok, "clientSecretFile: s", "clientSecret: s", 1),
		"unknown backend":       strings.Replace(ok, "backend: vidm", "backend: okta", 1),
		"mode of another":       strings.Replace(ok, "mode: oauth", "mode: password, username: u, passwordFile: p", 1),
		"missing client id":     strings.Replace(ok, "clientId: c, ", "", 1),
		"bad tenant name":       strings.Replace(ok, "  corp:", "  Corp_AD:", 1),
		"not a URL":             strings.Replace(ok, "https://vidm.example.com", "vidm.example.com", 1),
		"too many syncs":        ok + "    maxConcurrentSyncs: 65\n",
		"bad duration":          ok + "    requestTimeout: soon\n",
		"vcf-only key":          ok + "    syncClientTokenWarning: 336h\n",
		"schedule without cron": ok + "    schedules: [{directory: Corp AD}]\n",
		"vra7 without tenant":   "tenants:\n  lab:\n    backend: vra7\n    url: https://vra.example.com\n    auth: {mode: password, username: u, passwordFile: p}\n",
	} {
		if validate(bad) == nil {
			t.Errorf("%s: the schema accepts what the loader refuses", name)
		}
		if _, err := Parse([]byte(bad), t.TempDir(), func(string) ([]byte, error) { return []byte("x"), nil }, Defaults{}); err == nil {
			t.Errorf("%s: the loader accepts it", name)
		}
	}
}

// A schema failure the checks before it missed is reported with its location and keyword only.
func TestCheckSchemaNamesLocationNotValue(t *testing.T) {
	var ps problems
	checkSchema(&ps, []byte(`{"tenants":{"corp":{"backend":"vidm","url":"https://v.example.com","auth":{"mode":"oauth","clientId":"c","clientSecretFile":"s"},"maxConcurrentSyncs":99}}}`))
	if len(ps) != 1 || ps[0].loc != "tenants.corp.maxConcurrentSyncs" || !strings.Contains(ps[0].msg, "maximum") || strings.Contains(ps[0].msg, "99") {
		t.Fatalf("problems %v; want one at tenants.corp.maxConcurrentSyncs naming the keyword, not the value", ps)
	}
}
