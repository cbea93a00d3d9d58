package config_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The configuration is a validated value the worker's parts are built from: it may know the
// vocabularies it checks (stream names, the tenants file, cron specs) but none of the parts, so
// that reading it never starts to depend on the engine.
func TestConfigImportsNoEngine(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/tenants") {
		t.Fatalf("go list -deps did not list the tenants file package: %.300s", out)
	}
	const mod = "github.com/vidm-sync-worker/vidm-sync-worker/internal/"
	for _, p := range deps {
		for _, banned := range []string{"worker", "ops/", "pipeline/coalesce", "pipeline/intake", "pipeline/dirstate",
			"pipeline/results", "pipeline/schedule", "identity/registry", "identity/systems", "identity/vidm",
			"identity/vra7", "identity/vracloud", "identity/vcf", "testkit/", "tools/"} {
			if p == mod+banned || strings.HasPrefix(p, mod+banned) && !strings.HasPrefix(p, mod+"pipeline/schedule/cronspec") {
				t.Errorf("config depends on %s", p)
			}
		}
		if strings.HasPrefix(p, "github.com/nats-io/nats-server/") {
			t.Errorf("config depends on %s", p)
		}
	}
}
