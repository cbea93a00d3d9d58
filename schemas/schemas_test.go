package schemas_test

import (
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/vidm-sync-worker/vidm-sync-worker/schemas"
)

const draft202012 = "https://json-schema.org/draft/2020-12/schema"

// minValid and minInvalid are the fewest test documents each schema must have.
const (
	minValid   = 3
	minInvalid = 5
)

// wantFailures names, for every invalid test document, the rule it is meant to break, as the
// exact set of failures the validator reports for it (with format assertions on), each as
// "<instance location> <schema location of the failing keyword>". A set has more than one entry
// only where one mistake necessarily breaks several keywords, such as both branches of an anyOf.
// (When a format fails, this validator reports that alone, so the pattern that backs it up is
// checked by TestInvalidWithoutFormatAssertion.) Every invalid file needs an entry, so a document
// that is rejected for an accidental reason cannot pass unnoticed.
var wantFailures = map[string]map[string][]string{
	"ad-trigger.data": {
		"missing-domain-and-directory":  {" #/allOf/0/anyOf/0/required", " #/allOf/0/anyOf/1/required"},
		"missing-group-and-user":        {" #/allOf/1/anyOf/0/required", " #/allOf/1/anyOf/1/required"},
		"not-an-object":                 {" #/type"},
		"group-name-too-long":           {"/group/name #/$defs/name/maxLength"},
		"group-name-empty":              {"/group/name #/$defs/name/minLength", "/group/name #/$defs/name/pattern"},
		"group-name-control-character":  {"/group/name #/$defs/name/pattern"},
		"group-name-trailing-space":     {"/group/name #/$defs/name/pattern"},
		"group-missing-name":            {"/group #/$defs/group/required"},
		"group-unknown-field":           {"/group #/$defs/group/additionalProperties"},
		"group-not-an-object":           {"/group #/$defs/group/type"},
		"group-dn-not-a-dn":             {"/group/dn #/$defs/dn/pattern"},
		"group-dn-too-long":             {"/group/dn #/$defs/dn/maxLength"},
		"tenant-uppercase":              {"/tenant #/$defs/tenant/pattern"},
		"tenant-too-long":               {"/tenant #/$defs/tenant/maxLength", "/tenant #/$defs/tenant/pattern"},
		"tenant-starts-with-hyphen":     {"/tenant #/$defs/tenant/pattern"},
		"domain-with-underscore":        {"/domain #/$defs/domain/format"},
		"domain-label-too-long":         {"/domain #/$defs/domain/format"},
		"domain-trailing-dot":           {"/domain #/$defs/domain/pattern"},
		"directory-empty":               {"/directory #/$defs/directoryName/minLength", "/directory #/$defs/directoryName/pattern"},
		"directory-leading-space":       {"/directory #/$defs/directoryName/pattern"},
		"user-missing-name-and-upn":     {"/user #/$defs/user/anyOf/0/required", "/user #/$defs/user/anyOf/1/required"},
		"user-upn-without-at":           {"/user/upn #/$defs/upn/pattern"},
		"user-unknown-field":            {"/user #/$defs/user/additionalProperties"},
		"ignore-safeguards-not-boolean": {"/ignoreSafeguards #/properties/ignoreSafeguards/type"},
	},
	"sync-requested.data": {
		"missing-domain-and-directory":  {" #/anyOf/0/required", " #/anyOf/1/required"},
		"unknown-field":                 {" #/additionalProperties"},
		"misspelt-directory":            {" #/additionalProperties"},
		"reason-empty":                  {"/reason #/properties/reason/minLength"},
		"reason-too-long":               {"/reason #/properties/reason/maxLength"},
		"tenant-uppercase":              {"/tenant #/$defs/tenant/pattern"},
		"ignore-safeguards-not-boolean": {"/ignoreSafeguards #/properties/ignoreSafeguards/type"},
		"domain-with-space":             {"/domain #/$defs/domain/format"},
		"directory-too-long":            {"/directory #/$defs/directoryName/maxLength"},
		"directory-null":                {"/directory #/$defs/directoryName/type"},
	},
	"sync-started.data": {
		"missing-run-id":               {" #/required"},
		"missing-tenant":               {" #/required"},
		"started-at-not-date-time":     {"/startedAt #/$defs/timestamp/format"},
		"started-at-without-time-zone": {"/startedAt #/$defs/timestamp/format"},
		"started-at-impossible-date":   {"/startedAt #/$defs/timestamp/format"},
		"unknown-field":                {" #/additionalProperties"},
		"tenant-uppercase":             {"/tenant #/$defs/tenant/pattern"},
		"directory-name-newline":       {"/directoryName #/$defs/directoryName/pattern"},
		"directory-id-empty":           {"/directoryId #/$defs/directoryId/minLength", "/directoryId #/$defs/directoryId/pattern"},
		"run-id-with-space":            {"/runId #/$defs/runId/pattern"},
	},
	"sync-result.data": {
		"failed-without-error":                      {" #/allOf/0/then/required"},
		"completed-with-error":                      {" #/allOf/0/else"},
		"delegated-with-error":                      {" #/allOf/0/else"},
		"delegated-without-delegation":              {" #/allOf/1/then/required"},
		"completed-with-delegation":                 {" #/allOf/1/else"},
		"failed-with-delegation":                    {" #/allOf/1/else"},
		"status-unknown":                            {"/status #/properties/status/enum"},
		"status-lowercase":                          {"/status #/properties/status/enum"},
		"duration-negative":                         {"/durationMs #/properties/durationMs/minimum"},
		"duration-not-integer":                      {"/durationMs #/properties/durationMs/type"},
		"finished-at-not-date-time":                 {"/finishedAt #/$defs/timestamp/format"},
		"missing-triggers":                          {" #/required"},
		"missing-finished-at":                       {" #/required"},
		"unknown-field":                             {" #/additionalProperties"},
		"trigger-missing-id":                        {"/triggers/0 #/$defs/trigger/required"},
		"trigger-type-unknown":                      {"/triggers/0/type #/$defs/trigger/properties/type/pattern"},
		"trigger-source-not-uri-reference":          {"/triggers/0/source #/$defs/trigger/properties/source/format"},
		"trigger-unknown-field":                     {"/triggers/0 #/$defs/trigger/additionalProperties"},
		"trigger-group-is-object":                   {"/triggers/0/group #/$defs/trigger/properties/group/type"},
		"error-code-lowercase":                      {"/error/code #/$defs/error/properties/code/pattern"},
		"error-missing-retryable":                   {"/error #/$defs/error/required"},
		"error-message-too-long":                    {"/error/message #/$defs/error/properties/message/maxLength"},
		"error-message-empty":                       {"/error/message #/$defs/error/properties/message/minLength"},
		"connector-too-long":                        {"/connector #/$defs/connector/maxLength"},
		"connector-empty":                           {"/connector #/$defs/connector/minLength", "/connector #/$defs/connector/pattern"},
		"attempts-too-many":                         {"/attempts #/properties/attempts/maxItems"},
		"attempts-not-an-array":                     {"/attempts #/properties/attempts/type"},
		"attempt-missing-status":                    {"/attempts/0 #/$defs/attempt/required"},
		"attempt-unknown-field":                     {"/attempts/0 #/$defs/attempt/additionalProperties"},
		"delegation-kind-unknown":                   {"/delegation/kind #/$defs/delegation/properties/kind/enum"},
		"delegation-missing-kind":                   {"/delegation #/$defs/delegation/required"},
		"delegation-unknown-field":                  {"/delegation #/$defs/delegation/additionalProperties"},
		"delegation-ldap-with-token-expiry":         {"/delegation #/$defs/delegation/then"},
		"delegation-token-expires-at-not-date-time": {"/delegation/tokenExpiresAt #/$defs/timestamp/format"},
		"page-without-pages":                        {" #/dependentRequired/page"},
		"pages-one":                                 {"/pages #/properties/pages/minimum"},
		"page-zero":                                 {"/page #/properties/page/minimum"},
	},
	"synctoken-expiring.data": {
		"missing-provider-id":      {" #/required"},
		"missing-expires-at":       {" #/required"},
		"token-field":              {" #/additionalProperties"},
		"expires-at-not-date-time": {"/expiresAt #/$defs/timestamp/format"},
		"expires-in-not-integer":   {"/expiresInSeconds #/properties/expiresInSeconds/type"},
		"warn-before-negative":     {"/warnBeforeSeconds #/properties/warnBeforeSeconds/minimum"},
		"tenant-uppercase":         {"/tenant #/$defs/tenant/pattern"},
		"provider-empty":           {"/provider #/properties/provider/minLength", "/provider #/properties/provider/pattern"},
		"provider-newline":         {"/provider #/properties/provider/pattern"},
		"domains-too-many":         {"/domains #/properties/domains/maxItems"},
		"domain-empty":             {"/domains/0 #/properties/domains/items/minLength", "/domains/0 #/properties/domains/items/pattern"},
		"message-empty":            {"/message #/properties/message/minLength"},
		"source-not-a-string":      {"/source #/properties/source/type"},
	},
}

// formatOnly lists the invalid documents that only a format assertion rejects. Every other invalid
// document must be rejected also by validators that treat "format" as an annotation (the draft
// 2020-12 default), which is why the hostname and date-time strings carry a pattern as well.
var formatOnly = map[string]map[string]bool{
	"sync-started.data": {"started-at-impossible-date": true},
	"sync-result.data":  {"trigger-source-not-uri-reference": true},
}

// compileAll compiles every schema of the package from the embedded FS, asserting formats, as the
// worker must.
func compileAll(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	return compile(t, true)
}

func compile(t *testing.T, assertFormat bool) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if assertFormat {
		c.AssertFormat()
	}
	for _, name := range schemas.Names() {
		if err := c.AddResource(schemas.BaseURL+name, readEmbedded(t, name)); err != nil {
			t.Fatalf("add %s: %v", name, err)
		}
	}
	compiled := make(map[string]*jsonschema.Schema, len(schemas.Names()))
	for _, name := range schemas.Names() {
		sch, err := c.Compile(schemas.BaseURL + name)
		if err != nil {
			t.Fatalf("compile %s: %v", name, err)
		}
		compiled[name] = sch
	}
	return compiled
}

func readEmbedded(t *testing.T, name string) any {
	t.Helper()
	b, err := schemas.FS.ReadFile(name)
	if err != nil {
		t.Fatalf("read embedded %s: %v", name, err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return doc
}

func readJSONFile(t *testing.T, file string) any {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	return doc
}

// testdataDir is where the test documents of the schema in file name live.
func testdataDir(name string) string {
	return strings.TrimSuffix(name, ".schema.json")
}

func TestSchemasCompileAndAreWellFormed(t *testing.T) {
	compileAll(t)
	for _, name := range schemas.Names() {
		doc, ok := readEmbedded(t, name).(map[string]any)
		if !ok {
			t.Fatalf("%s: not a JSON object", name)
		}
		if got := doc["$schema"]; got != draft202012 {
			t.Errorf("%s: $schema = %v, want %s", name, got, draft202012)
		}
		if got, want := doc["$id"], schemas.BaseURL+name; got != want {
			t.Errorf("%s: $id = %v, want %s", name, got, want)
		}
		for _, kw := range []string{"title", "description"} {
			if s, _ := doc[kw].(string); strings.TrimSpace(s) == "" {
				t.Errorf("%s: %s is missing or empty", name, kw)
			}
		}
		if doc["type"] != "object" {
			t.Errorf("%s: top-level type = %v, want object", name, doc["type"])
		}
		if _, ok := doc["additionalProperties"].(bool); !ok {
			t.Errorf("%s: top-level additionalProperties must be stated (true or false)", name)
		}
	}
}

func TestDocuments(t *testing.T) {
	compiled := compileAll(t)
	for _, name := range schemas.Names() {
		sch := compiled[name]
		dir := testdataDir(name)
		t.Run(dir, func(t *testing.T) {
			valid := testFiles(t, dir, "valid")
			invalid := testFiles(t, dir, "invalid")
			if len(valid) < minValid {
				t.Errorf("%d valid documents, want at least %d", len(valid), minValid)
			}
			if len(invalid) < minInvalid {
				t.Errorf("%d invalid documents, want at least %d", len(invalid), minInvalid)
			}
			for _, file := range valid {
				t.Run("valid/"+path.Base(file), func(t *testing.T) {
					if err := sch.Validate(readJSONFile(t, file)); err != nil {
						t.Errorf("rejected a valid document:\n%v", err)
					}
				})
			}
			wants := wantFailures[dir]
			seen := make(map[string]bool)
			for _, file := range invalid {
				rule := strings.TrimSuffix(filepath.Base(file), ".json")
				seen[rule] = true
				t.Run("invalid/"+rule, func(t *testing.T) {
					err := sch.Validate(readJSONFile(t, file))
					if err == nil {
						t.Fatal("accepted an invalid document")
					}
					want, ok := wants[rule]
					got := failures(t, err)
					if !ok {
						t.Fatalf("no entry in wantFailures[%q][%q]; the document fails at %q", dir, rule, got)
					}
					want = slices.Sorted(slices.Values(want))
					if !slices.Equal(got, want) {
						t.Errorf("fails at %q, want exactly %q\n%v", got, want, err)
					}
				})
			}
			for rule := range wants {
				if !seen[rule] {
					t.Errorf("wantFailures[%q][%q] has no testdata/%s/invalid/%s.json", dir, rule, dir, rule)
				}
			}
		})
	}
}

// TestInvalidWithoutFormatAssertion checks that the schemas do not depend on format assertion
// except for the documents listed in formatOnly, and that the list is accurate.
func TestInvalidWithoutFormatAssertion(t *testing.T) {
	compiled := compile(t, false)
	for _, name := range schemas.Names() {
		dir := testdataDir(name)
		for _, file := range testFiles(t, dir, "invalid") {
			rule := strings.TrimSuffix(filepath.Base(file), ".json")
			err := compiled[name].Validate(readJSONFile(t, file))
			switch {
			case formatOnly[dir][rule] && err == nil:
			case formatOnly[dir][rule]:
				t.Errorf("%s/%s: listed in formatOnly but rejected without format assertion:\n%v", dir, rule, err)
			case err == nil:
				t.Errorf("%s/%s: accepted when format is not asserted; back the format with a pattern", dir, rule)
			}
		}
	}
	for dir, rules := range formatOnly {
		for rule := range rules {
			if _, err := os.Stat(filepath.Join("testdata", dir, "invalid", rule+".json")); err != nil {
				t.Errorf("formatOnly[%q][%q]: %v", dir, rule, err)
			}
		}
	}
}

// testFiles lists testdata/<dir>/<kind>/*.json.
func testFiles(t *testing.T, dir, kind string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, kind, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// failures returns the sorted leaf failures of a validation error as
// "<instance location> <schema location of the failing keyword>".
func failures(t *testing.T, err error) []string {
	t.Helper()
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("not a validation error: %v", err)
	}
	var out []string
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		_, frag, _ := strings.Cut(e.SchemaURL, "#")
		loc := "#" + frag
		for _, tok := range e.ErrorKind.KeywordPath() {
			loc += "/" + tok
		}
		inst := ""
		for _, tok := range e.InstanceLocation {
			inst += "/" + tok
		}
		out = append(out, inst+" "+loc)
	}
	walk(ve)
	slices.Sort(out)
	return slices.Compact(out)
}

func TestTestdataBelongsToASchema(t *testing.T) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, name := range schemas.Names() {
		want = append(want, testdataDir(name))
	}
	for _, e := range entries {
		if !slices.Contains(want, e.Name()) {
			t.Errorf("testdata/%s matches no schema in schemas.Names()", e.Name())
		}
	}
	for dir := range wantFailures {
		if !slices.Contains(want, dir) {
			t.Errorf("wantFailures[%q] matches no schema in schemas.Names()", dir)
		}
	}
}

// TestExamplesAreValid checks the documents under each schema's "examples", which the generated
// docs show.
func TestExamplesAreValid(t *testing.T) {
	compiled := compileAll(t)
	for _, name := range schemas.Names() {
		doc := readEmbedded(t, name).(map[string]any)
		examples, _ := doc["examples"].([]any)
		if len(examples) == 0 {
			t.Errorf("%s: no examples", name)
		}
		for i, ex := range examples {
			if err := compiled[name].Validate(ex); err != nil {
				t.Errorf("%s: examples[%d] is invalid:\n%v", name, i, err)
			}
		}
	}
}

// TestEverySchemaFileHasAConstant keeps the directory, the embedded FS, the exported constants and
// Names() in step, so a new schema file cannot be forgotten.
func TestEverySchemaFileHasAConstant(t *testing.T) {
	onDisk, err := filepath.Glob("*.json")
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := fs.Glob(schemas.FS, "*.json")
	if err != nil {
		t.Fatal(err)
	}
	constants := slices.DeleteFunc(fileNameConstants(t), func(c string) bool { return c == schemas.TenantsFile })
	names := schemas.Names()
	// The configuration schemas live in config/, embedded in ConfigFS, outside the event payloads.
	configOnDisk, err := filepath.Glob("config/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(configOnDisk, []string{schemas.TenantsFile}) {
		t.Errorf("configuration schemas on disk %q, want [%q]", configOnDisk, schemas.TenantsFile)
	}
	if _, err := schemas.ConfigFS.ReadFile(schemas.TenantsFile); err != nil {
		t.Errorf("ConfigFS: %v", err)
	}
	for _, s := range [][]string{onDisk, embedded, constants, names} {
		slices.Sort(s)
	}
	if len(onDisk) == 0 {
		t.Fatal("no *.json files in schemas/")
	}
	if !slices.Equal(constants, onDisk) {
		t.Errorf("exported file-name constants %q, want one per schema file %q", constants, onDisk)
	}
	if !slices.Equal(embedded, onDisk) {
		t.Errorf("embedded files %q, want %q", embedded, onDisk)
	}
	if !slices.Equal(names, onDisk) {
		t.Errorf("Names() = %q, want %q", names, onDisk)
	}
	if got := schemas.Names(); len(got) > 0 {
		got[0] = "changed"
		if schemas.Names()[0] == "changed" {
			t.Error("Names() returns shared state")
		}
	}
}

// fileNameConstants parses the package's non-test Go files and returns the values of its exported
// string constants that name a .json file.
func fileNameConstants(t *testing.T) []string {
	t.Helper()
	goFiles, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var out []string
	for _, file := range goFiles {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !id.IsExported() || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					if strings.HasSuffix(v, ".json") {
						out = append(out, v)
					}
				}
			}
		}
	}
	return out
}

// dataKeywords hold instance data rather than subschemas; the description walk does not enter them.
var dataKeywords = map[string]bool{"const": true, "default": true, "enum": true, "examples": true}

// TestEveryPropertyHasADescription walks every schema and requires a non-empty description on each
// entry of every "properties" and "$defs", since the docs are generated from the schemas.
func TestEveryPropertyHasADescription(t *testing.T) {
	for _, name := range schemas.Names() {
		var walk func(node any, ptr string)
		walk = func(node any, ptr string) {
			switch n := node.(type) {
			case []any:
				for i, v := range n {
					walk(v, ptr+"/"+strconv.Itoa(i))
				}
			case map[string]any:
				for _, kw := range []string{"properties", "$defs"} {
					m, ok := n[kw].(map[string]any)
					if !ok {
						continue
					}
					for prop, sub := range m {
						s, _ := sub.(map[string]any)
						if d, _ := s["description"].(string); strings.TrimSpace(d) == "" {
							t.Errorf("%s#%s/%s/%s: no description", name, ptr, kw, prop)
						}
						walk(sub, ptr+"/"+kw+"/"+prop)
					}
				}
				for k, v := range n {
					if k == "properties" || k == "$defs" || dataKeywords[k] {
						continue
					}
					walk(v, ptr+"/"+k)
				}
			}
		}
		walk(readEmbedded(t, name), "")
	}
}
