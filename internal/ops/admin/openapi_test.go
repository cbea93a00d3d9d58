package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/control"
	"github.com/vidm-sync-worker/vidm-sync-worker/schemas"
)

const (
	openAPIFile = "../../../schemas/openapi.yaml"
	// openAPIURL is where the document sits among the event schemas, so that its relative
	// references ("./ad-trigger.data.schema.json") resolve to their $id.
	openAPIURL = schemas.BaseURL + "openapi.yaml"
)

// loadOpenAPI reads schemas/openapi.yaml as JSON values (the form a JSON Schema validator takes).
func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(openAPIFile)
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSONStrict(b) // strict: a key given twice is an error, not a silent override
	if err != nil {
		t.Fatalf("%s: %v", openAPIFile, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	m, ok := doc.(map[string]any)
	if !ok || m["openapi"] != "3.1.0" {
		t.Fatalf("%s is not an OpenAPI 3.1.0 document", openAPIFile)
	}
	return m
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// operations returns every operation by "METHOD path", with its tags.
func operations(doc map[string]any) map[string]map[string]any {
	ops := map[string]map[string]any{}
	for path, item := range obj(doc["paths"]) {
		for _, m := range []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"} {
			if op := obj(obj(item)[m]); op != nil {
				ops[strings.ToUpper(m)+" "+path] = op
			}
		}
	}
	return ops
}

func hasTag(op map[string]any, tag string) bool {
	tags, _ := op["tags"].([]any)
	return slices.Contains(tags, any(tag))
}

// TestOpenAPIRoutes: the operations tagged admin are exactly the routes New serves, with the
// security their access rule implies; the ingress has its one operation on its own server.
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	ops := operations(doc)
	var documented, served, ingress []string
	for name, op := range ops {
		switch {
		case hasTag(op, "admin"):
			documented = append(documented, name)
		case hasTag(op, "ingress"):
			ingress = append(ingress, name)
		default:
			t.Errorf("%s has neither the admin nor the ingress tag", name)
		}
	}
	for _, rt := range routes() {
		served = append(served, rt.method+" "+rt.path)
	}
	sort.Strings(documented)
	sort.Strings(served)
	if !slices.Equal(documented, served) {
		t.Errorf("admin operations in %s:\n  %q\nroutes New serves:\n  %q", openAPIFile, documented, served)
	}
	if !slices.Equal(ingress, []string{"POST /events"}) {
		t.Errorf("ingress operations %q", ingress)
	}
	if servers, _ := obj(obj(doc["paths"])["/events"])["servers"].([]any); len(servers) != 1 || !strings.HasSuffix(obj(servers[0])["url"].(string), ":8080") {
		t.Errorf("/events has no server of its own: %v", servers)
	}

	want := map[access]string{
		accessOpen:  `[]`,
		accessRead:  `[{"adminToken":[]},{"readToken":[]},{"session":[]},{}]`,
		accessWrite: `[{"adminToken":[]}]`,
	}
	for _, rt := range routes() {
		op := ops[rt.method+" "+rt.path]
		if op == nil {
			continue
		}
		got, _ := json.Marshal(op["security"])
		if string(got) != want[rt.access] {
			t.Errorf("%s %s: security %s, want %s", rt.method, rt.path, got, want[rt.access])
		}
		// Path parameters are declared where the path has them.
		for _, name := range []string{"tenant", "directoryId"} {
			if strings.Contains(rt.path, "{"+name+"}") && !declaresParam(doc, rt.path, name) {
				t.Errorf("%s %s: path parameter %s is not declared", rt.method, rt.path, name)
			}
		}
	}
}

func declaresParam(doc map[string]any, path, name string) bool {
	params, _ := obj(obj(doc["paths"])[path])["parameters"].([]any)
	for _, p := range params {
		if ref, ok := obj(p)["$ref"].(string); ok && strings.HasSuffix(ref, "/"+name) {
			return true
		}
		if obj(p)["name"] == name {
			return true
		}
	}
	return false
}

// TestOpenAPIRefs: every $ref resolves, in the document or in the event schemas beside it.
func TestOpenAPIRefs(t *testing.T) {
	doc := loadOpenAPI(t)
	n := 0
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				n++
				if err := resolveRef(t, doc, ref); err != nil {
					t.Errorf("%s: $ref %q: %v", at, ref, err)
				}
			}
			for k, c := range v {
				walk(c, at+"/"+k)
			}
		case []any:
			for i, c := range v {
				walk(c, fmt.Sprintf("%s/%d", at, i))
			}
		}
	}
	walk(doc, "#")
	if n < 50 {
		t.Errorf("only %d $refs found", n)
	}
}

func resolveRef(t *testing.T, doc map[string]any, ref string) error {
	file, frag, _ := strings.Cut(ref, "#")
	var target any = doc
	if file != "" {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(openAPIFile), filepath.FromSlash(file)))
		if err != nil {
			return err
		}
		if target, err = jsonschema.UnmarshalJSON(bytes.NewReader(b)); err != nil {
			return err
		}
	}
	if frag == "" {
		return nil
	}
	for _, tok := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := target.(map[string]any)
		if !ok {
			return fmt.Errorf("%q: not an object", tok)
		}
		if target, ok = m[tok]; !ok {
			return fmt.Errorf("no %q", tok)
		}
	}
	return nil
}

// TestOpenAPISchemasMatchTypes: each schema has exactly the JSON fields of its Go type, and
// requires exactly those that are never omitted.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	types := map[string]any{
		"Directory": control.Directory{}, "Pause": control.Pause{}, "Run": control.Run{}, "Trigger": control.Trigger{},
		"RunError": control.RunError{}, "DeadLetter": control.DeadLetter{}, "DeadLetters": control.DeadLetters{},
		"SyncRequest": control.SyncRequest{}, "RedriveResult": control.RedriveResult{}, "RedriveFailure": control.RedriveFailure{},
		"ConflictError": errorBody{}, "Trouble": control.Trouble{}, "DirectoryList": control.DirectoryList{},
	}
	for name, v := range types {
		s := obj(obj(obj(doc["components"])["schemas"])[name])
		if s == nil {
			t.Errorf("no schema %s", name)
			continue
		}
		var props, required, wantRequired []string
		for p := range obj(s["properties"]) {
			props = append(props, p)
		}
		for _, r := range s["required"].([]any) {
			required = append(required, r.(string))
		}
		fields := jsonFields(reflect.TypeOf(v))
		for f, omit := range fields {
			if !omit {
				wantRequired = append(wantRequired, f)
			}
		}
		if name == "ConflictError" {
			wantRequired = append(wantRequired, "reason") // always set by a *control.ConflictError
		}
		sort.Strings(props)
		sort.Strings(required)
		sort.Strings(wantRequired)
		if want := slices.Sorted(mapsKeys(fields)); !slices.Equal(props, want) {
			t.Errorf("%s: properties %q, want %q", name, props, want)
		}
		if !slices.Equal(required, wantRequired) {
			t.Errorf("%s: required %q, want %q", name, required, wantRequired)
		}
		if s["additionalProperties"] != false {
			t.Errorf("%s is open (additionalProperties is not false)", name)
		}
	}
}

func mapsKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// jsonFields maps a struct's JSON field names to whether they may be omitted.
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		out[name] = strings.Contains(opts, "omitempty")
	}
	return out
}

// compiler returns a validator that knows the document (at openAPIURL) and the event schemas.
func compiler(t *testing.T, doc map[string]any) *jsonschema.Compiler {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(openAPIURL, any(doc)); err != nil {
		t.Fatal(err)
	}
	for _, name := range schemas.Names() {
		b, err := schemas.FS.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		s, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource(schemas.BaseURL+name, s); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func readJSON(t *testing.T, path string) any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestOpenAPIIngressSchemas: the ingress's request and response schemas compile with the event
// schemas they refer to, accept the project's sample events and refuse a broken one.
func TestOpenAPIIngressSchemas(t *testing.T) {
	doc := loadOpenAPI(t)
	c := compiler(t, doc)
	compile := func(ptr string) *jsonschema.Schema {
		t.Helper()
		s, err := c.Compile(openAPIURL + "#" + ptr)
		if err != nil {
			t.Fatalf("compiling %s: %v", ptr, err)
		}
		return s
	}
	structured := compile("/components/schemas/TriggerCloudEvent")
	binary := compile("/paths/~1events/post/requestBody/content/application~1json/schema")
	result := compile("/components/schemas/ResultCloudEvent")
	accepted := compile("/components/schemas/IngressAccepted")

	event := readJSON(t, "../../natsio/cenats/testdata/structured-group-created.json")
	if err := structured.Validate(event); err != nil {
		t.Errorf("structured trigger: %v", err)
	}
	for _, f := range []string{"../../natsio/cenats/testdata/binary-group-created.payload.json", "../../../schemas/testdata/sync-requested.data/valid/directory-only.json"} {
		if err := binary.Validate(readJSON(t, f)); err != nil {
			t.Errorf("binary body %s: %v", f, err)
		}
	}
	broken := obj(event)
	delete(obj(broken["data"]), "group")
	if structured.Validate(broken) == nil {
		t.Error("a structured trigger whose data has neither group nor user validates")
	}
	request := map[string]any{"specversion": "1.0", "id": "r1", "source": "urn:vidm-sync-worker:admin", "type": "vidm.directory.sync.requested",
		"data": readJSON(t, "../../../schemas/testdata/sync-requested.data/valid/directory-only.json")}
	if err := structured.Validate(request); err != nil {
		t.Errorf("structured sync request: %v", err)
	}
	request["type"] = "com.example.unknown"
	if structured.Validate(request) == nil {
		t.Error("a structured trigger of an unknown type validates")
	}
	res := map[string]any{"specversion": "1.0", "id": "run-01HXC7M2.completed", "source": "urn:vidm-sync-worker:worker-1",
		"type": "vidm.directory.sync.completed", "subject": "Corp AD", "datacontenttype": "application/json",
		"data": readJSON(t, "../../../schemas/testdata/sync-result.data/valid/completed-one-trigger.json")}
	if err := result.Validate(res); err != nil {
		t.Errorf("result event: %v", err)
	}
	if err := accepted.Validate(map[string]any{"id": "x", "subject": "dirsync.trigger.http", "stream": "DIRSYNC_TRIGGERS", "seq": json.Number("7"), "duplicate": false}); err != nil {
		t.Errorf("202 body: %v", err)
	}
}

// TestOpenAPIResponses: what the handlers answer (from the fake Source) is documented: the
// status for the operation, the content type, the documented constant headers, and for JSON the
// body validates against the response schema.
func TestOpenAPIResponses(t *testing.T) {
	doc := loadOpenAPI(t)
	c := compiler(t, doc)
	probe := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	cases := []struct {
		r      req
		cfg    *Config
		fail   map[string]error
		status int
	}{
		{r: req{method: "GET", target: "/", token: readToken}, status: 200},
		{r: req{method: "GET", target: "/"}, status: 401},
		{r: req{method: "GET", target: "/", token: readToken}, fail: map[string]error{"Directories": errBroken}, status: 500},
		{r: req{method: "POST", target: "/"}, status: 405},
		{r: req{method: "GET", target: "/login"}, status: 200},
		{r: req{method: "POST", target: "/login", body: "token=" + readToken, header: form}, status: 303},
		{r: req{method: "POST", target: "/login", body: "token=wrong", header: form}, status: 401},
		{r: req{method: "POST", target: "/logout"}, status: 303},
		{r: req{method: "GET", target: "/metrics"}, status: 200},
		{r: req{method: "GET", target: "/healthz"}, status: 200},
		{r: req{method: "GET", target: "/readyz"}, status: 200},
		{r: req{method: "GET", target: "/readyz"}, cfg: &Config{}, status: 404},
		{r: req{method: "GET", target: "/api/v1/directories", token: readToken}, status: 200},
		{r: req{method: "GET", target: "/api/v1/directories"}, status: 401},
		{r: req{method: "GET", target: "/api/v1/directories", token: readToken}, fail: map[string]error{"Directories": errBroken}, status: 500},
		{r: req{method: "GET", target: "/api/v1/directories?limit=2", token: readToken}, status: 200},
		{r: req{method: "GET", target: "/api/v1/directories?state=stuck", token: readToken}, status: 200},
		{r: req{method: "GET", target: "/api/v1/directories?state=busy", token: readToken}, status: 400},
		{r: req{method: "GET", target: "/api/v1/directories?after=%21%21", token: readToken}, status: 400},
		{r: req{method: "GET", target: "/api/v1/directories", token: readToken}, fail: map[string]error{"Directories": fmt.Errorf("reading: %w", control.ErrNotReady)}, status: 503},
		{r: req{method: "GET", target: corpPath, token: readToken}, fail: map[string]error{"Directory": fmt.Errorf("reading: %w", control.ErrNotReady)}, status: 503},
		{r: req{method: "GET", target: corpPath, token: readToken}, status: 200},
		{r: req{method: "GET", target: partnerPath, token: readToken}, status: 200},
		{r: req{method: "GET", target: "/api/v1/directories/default/nope", token: readToken}, status: 404},
		{r: req{method: "DELETE", target: corpPath, token: adminToken}, status: 405},
		{r: req{method: "GET", target: corpPath + "/runs", token: readToken}, status: 200},
		{r: req{method: "GET", target: labPath + "/runs?limit=1", token: readToken}, status: 200},
		{r: req{method: "GET", target: corpPath + "/runs?limit=0", token: readToken}, status: 400},
		{r: req{method: "POST", target: retailPath + "/sync", token: adminToken, body: `{"reason":"bulk import"}`}, status: 202},
		{r: req{method: "POST", target: corpPath + "/sync?queue=true", token: adminToken}, status: 202},
		{r: req{method: "POST", target: corpPath + "/sync", token: adminToken}, status: 409},
		{r: req{method: "POST", target: partnerPath + "/sync", token: adminToken}, status: 409},
		{r: req{method: "POST", target: retailPath + "/sync", token: readToken}, status: 403},
		{r: req{method: "POST", target: retailPath + "/sync"}, status: 401},
		{r: req{method: "POST", target: retailPath + "/sync", token: adminToken, body: `[]`}, status: 400},
		{r: req{method: "POST", target: "/api/v1/directories/default/nope/sync", token: adminToken}, status: 404},
		{r: req{method: "POST", target: retailPath + "/sync", token: adminToken, body: `{"reason":"` + strings.Repeat("x", maxBody) + `"}`}, status: 413},
		{r: req{method: "POST", target: retailPath + "/pause", token: adminToken, body: `{"reason":"AD migration"}`}, status: 200},
		{r: req{method: "POST", target: retailPath + "/pause", token: adminToken}, cfg: &Config{ReadToken: readToken}, status: 403},
		{r: req{method: "POST", target: partnerPath + "/resume", token: adminToken}, status: 200},
		{r: req{method: "POST", target: partnerPath + "/resume", token: adminToken}, fail: map[string]error{"Resume": errBroken}, status: 500},
		{r: req{method: "POST", target: labPath + "/cancel", token: adminToken, body: `{"by":"alice","reason":"wrong names"}`}, status: 202},
		{r: req{method: "POST", target: corpPath + "/cancel", token: adminToken, body: `{"by":"alice","reason":"wrong names"}`}, status: 202},
		{r: req{method: "POST", target: retailPath + "/cancel", token: adminToken, body: `{"by":"alice","reason":"wrong names"}`}, status: 409},
		{r: req{method: "POST", target: labPath + "/cancel", token: adminToken, body: `{"reason":"wrong names"}`}, status: 400},
		{r: req{method: "POST", target: labPath + "/cancel", token: readToken, body: `{"by":"alice","reason":"wrong names"}`}, status: 403},
		{r: req{method: "GET", target: "/directories/default/" + idLab + "/cancel", token: readToken}, status: 200},
		{r: req{method: "GET", target: "/directories/default/nope/cancel", token: readToken}, status: 404},
		{r: req{method: "POST", target: "/directories/default/" + idLab + "/cancel", body: "csrf=x&by=alice&reason=y", header: form}, status: 403},
		{r: req{method: "GET", target: "/api/v1/dead-letters", token: readToken}, status: 200},
		{r: req{method: "GET", target: "/api/v1/dead-letters?limit=5000", token: readToken}, status: 400},
		{r: req{method: "GET", target: "/api/v1/dead-letters?limit=1&before=412", token: readToken}, status: 200},
		{r: req{method: "GET", target: "/api/v1/dead-letters?before=0", token: readToken}, status: 400},
		{r: req{method: "POST", target: "/api/v1/dead-letters/redrive", token: adminToken, body: `{"sequences":[412,5]}`}, status: 200},
		{r: req{method: "POST", target: "/api/v1/dead-letters/redrive", token: adminToken}, status: 200},
		{r: req{method: "POST", target: "/api/v1/dead-letters/redrive", token: adminToken, body: `{"sequences":["x"]}`}, status: 400},
		{r: req{method: "GET", target: "/api/v1/tenants", token: readToken}, status: 200},
		{r: req{method: "POST", target: "/api/v1/tenants/reload", token: adminToken}, status: 200},
		{r: req{method: "POST", target: "/api/v1/tenants/reload", token: adminToken},
			fail: map[string]error{"ReloadTenants": fmt.Errorf("%w: tenants.lab.auth.password: secrets are read from files", control.ErrReloadRejected)}, status: 422},
		{r: req{method: "POST", target: "/api/v1/tenants/reload", token: readToken}, status: 403},
	}
	ops := operations(doc)
	seen := map[string]bool{}
	for _, tc := range cases {
		name := tc.r.method + " " + tc.r.target
		if len(name) > 80 {
			name = name[:80]
		}
		t.Run(name, func(t *testing.T) {
			cfg := Config{Token: adminToken, ReadToken: readToken, Metrics: probe, Healthz: probe, Readyz: probe}
			if tc.cfg != nil {
				cfg = *tc.cfg
			}
			src := richState(false)
			src.Fail = tc.fail
			hs := newHarness(t, cfg, src)
			w := hs.do(tc.r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			opName := routeOf(t, tc.r.method, tc.r.target)
			for _, m := range []string{"GET", "POST"} {
				if opName == "" { // a 405: judged by the operation the path has
					opName = routeOf(t, m, tc.r.target)
				}
			}
			opMethod, path, _ := strings.Cut(opName, " ")
			op := ops[opName]
			if op == nil {
				t.Fatalf("no operation for %s (path %s)", name, path)
			}
			seen[opName] = true
			resp := obj(resolve(doc, obj(op["responses"])[fmt.Sprint(w.Code)]))
			if resp == nil {
				t.Fatalf("%s does not document status %d", opName, w.Code)
			}
			for h, spec := range obj(resp["headers"]) {
				if want, ok := obj(obj(resolve(doc, spec))["schema"])["const"].(string); ok && w.Header().Get(h) != want {
					t.Errorf("header %s %q, want %q", h, w.Header().Get(h), want)
				}
			}
			content := obj(resp["content"])
			if len(content) == 0 {
				return // 303: no body documented
			}
			mt, _, _ := mime.ParseMediaType(w.Header().Get("Content-Type"))
			media := obj(content[mt])
			if media == nil {
				t.Fatalf("%s %d: content type %q is not documented", opName, w.Code, mt)
			}
			if mt != "application/json" {
				return
			}
			loc := fmt.Sprintf("%s#/paths/%s/%s/responses/%d/content/application~1json/schema",
				openAPIURL, pointerEscape(path), strings.ToLower(opMethod), w.Code)
			if ref, ok := obj(obj(op["responses"])[fmt.Sprint(w.Code)])["$ref"].(string); ok {
				loc = openAPIURL + ref + "/content/application~1json/schema"
			}
			sch, err := c.Compile(loc)
			if err != nil {
				t.Fatalf("compiling %s: %v", loc, err)
			}
			body, err := jsonschema.UnmarshalJSON(bytes.NewReader(w.Body.Bytes()))
			if err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if err := sch.Validate(body); err != nil {
				var ve *jsonschema.ValidationError
				if errors.As(err, &ve) {
					t.Errorf("%s %d does not match %s:\n%s\nbody %s", opName, w.Code, loc, ve, w.Body)
				} else {
					t.Error(err)
				}
			}
		})
	}
	for _, rt := range routes() {
		if !seen[rt.method+" "+rt.path] {
			t.Errorf("no answer of %s %s was checked against the document", rt.method, rt.path)
		}
	}
}

// resolve follows a local $ref.
func resolve(doc map[string]any, v any) any {
	ref, ok := obj(v)["$ref"].(string)
	if !ok || !strings.HasPrefix(ref, "#/") {
		return v
	}
	var cur any = doc
	for _, tok := range strings.Split(ref[2:], "/") {
		cur = obj(cur)[strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)]
	}
	return cur
}

func pointerEscape(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}
