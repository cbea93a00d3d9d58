package tenants_test

import (
	"os"
	"strings"
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/tenants"
)

// TestREADMEShowsTheExampleFile: the tenants file the README shows is the one these tests load,
// so the documented example stays valid.
func TestREADMEShowsTheExampleFile(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("testdata/tenants.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```yaml\n"+string(example)+"```") {
		t.Fatal("README.md does not show internal/identity/tenants/testdata/tenants.yaml verbatim in a yaml block")
	}
	if _, err := tenants.Load("testdata/tenants.yaml", tenants.Defaults{MaxConcurrentSyncs: 8}); err != nil {
		t.Fatalf("the README's example does not load: %v", err)
	}
}
