package main

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestRunRejectsBadConfigurationClearly(t *testing.T) {
	var stderr strings.Builder
	err := run(context.Background(), nil, env(map[string]string{"VIDM_CLIENT_SECRET": "never-print-me-42", "LEASE_TTL": "forever"}), &stderr, &stderr)
	if err == nil {
		t.Fatal("run accepted a configuration without NATS_URL and VIDM_URL")
	}
	for _, want := range []string{"NATS_URL", "VIDM_URL", "LEASE_TTL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error()+stderr.String(), "never-print-me-42") {
		t.Fatal("the secret appeared in the error or output")
	}
}

// The product binary holds the product: no simulator, dev stack, test kit or embedded NATS
// server is linked into it (they are cmd/vidm-sync-dev's).
func TestProductBinaryLinksNoDevPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 || !slices.Contains(deps, "github.com/vidm-sync-worker/vidm-sync-worker/internal/worker") {
		t.Fatalf("go list -deps listed %d packages, without the worker: %.300s", len(deps), out)
	}
	for _, p := range deps {
		for _, banned := range []string{"/internal/testkit/", "/internal/tools/", "github.com/nats-io/nats-server/"} {
			if strings.Contains(p, banned) {
				t.Errorf("the worker binary links %s", p)
			}
		}
	}
}
