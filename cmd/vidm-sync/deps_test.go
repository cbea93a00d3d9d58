package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The publishers' CLI links the event contract, not the engine: no KV state, coalescing, intake,
// result publishing, identity-system clients or worker wiring.
func TestCLILinksNoEngineOrStateCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	const internal = "github.com/vidm-sync-worker/vidm-sync-worker/internal/"
	if !slices.Contains(deps, internal+"contract") || !slices.Contains(deps, internal+"await") {
		t.Fatalf("go list -deps lists neither the contract nor await: %.300s", out)
	}
	// Of the pipeline only the trigger encoder; nothing of identity systems, operations, test kit.
	for _, p := range deps {
		rest, ok := strings.CutPrefix(p, internal)
		if !ok {
			continue
		}
		for _, banned := range []string{"pipeline/dirstate", "pipeline/coalesce", "pipeline/intake", "pipeline/results", "pipeline/schedule",
			"identity/", "ops/", "natsio/streams", "worker", "config", "testkit/", "tools/"} {
			if strings.HasPrefix(rest, banned) {
				t.Errorf("the CLI links internal/%s", rest)
			}
		}
	}
}
