package tenants

import (
	"bytes"
	"cmp"
	"errors"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/vidm-sync-worker/vidm-sync-worker/schemas"
)

// compileSchema compiles the tenants file's JSON Schema from the embedded schemas.
func compileSchema() (*jsonschema.Schema, error) {
	b, err := schemas.ConfigFS.ReadFile(schemas.TenantsFile)
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	url := schemas.BaseURL + schemas.TenantsFile
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

// checkSchema validates js, the file as JSON, against the schema and adds a problem per failing
// location. A message names the location and the keyword that failed, never a value.
func checkSchema(ps *problems, js []byte) {
	sch, err := compileSchema()
	if err != nil {
		ps.add(rootLoc, "the tenants file schema does not compile: %v", err)
		return
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		ps.add(rootLoc, "not valid JSON: %v", err)
		return
	}
	var ve *jsonschema.ValidationError
	if err := sch.Validate(doc); !errors.As(err, &ve) {
		return
	}
	for _, leaf := range leaves(ve) {
		loc := ""
		for _, k := range leaf.InstanceLocation {
			loc = child(loc, k)
		}
		ps.add(cmp.Or(loc, rootLoc), "does not match the tenants file schema (%s: %s)",
			schemas.TenantsFile, strings.Join(leaf.ErrorKind.KeywordPath(), "/"))
	}
}

// leaves are the innermost causes of a validation error: the keywords that failed.
func leaves(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	if len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}
