package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natsdev"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/workertest"
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

// `check` exits 0 when everything the worker relies on works, 1 when a check fails, 2 on usage.
func TestCheckExitCodes(t *testing.T) {
	b := workertest.StartSim(t, vidmsim.Config{Directories: []vidmsim.Directory{{ID: "dir-corp", Name: "Corp AD", Domains: []string{"corp.example.com"}}}})
	file := workertest.WriteTenantsFile(t, "tenants:\n"+workertest.TenantEntry("t1", "vidm", b, ""))
	vars := map[string]string{"NATS_URL": natstest.Server(t, natsdev.Options{StoreDir: t.TempDir()}).URL(), "TENANTS_FILE": file}
	code := func(args ...string) (int, string) {
		var out strings.Builder
		err := run(context.Background(), append([]string{"check"}, args...), env(vars), &out, &out)
		if ee := (*exitError)(nil); errors.As(err, &ee) {
			return ee.code, out.String()
		}
		if err != nil {
			t.Fatalf("check: %v", err)
		}
		return 0, out.String()
	}
	if c, out := code("-json"); c != 0 || !strings.Contains(out, `"ok": true`) {
		t.Errorf("working setup: exit %d\n%s", c, out)
	}
	if c, out := code("-group", "g", "-user", "u"); c != exitCheckUsage {
		t.Errorf("-group and -user: exit %d, want %d\n%s", c, exitCheckUsage, out)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(file), "secrets", "client-secret"), []byte("wrong-secret-3Tx\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, out := code(); c != exitCheckFailed || !strings.Contains(out, "FAIL") || strings.Contains(out, "wrong-secret-3Tx") {
		t.Errorf("wrong secret: exit %d, want %d, the failure named and no secret\n%s", c, exitCheckFailed, out)
	}
	if n := b.Sim.Requests(vidmsim.EndpointSyncStart); n != 0 {
		t.Errorf("check sent %d sync requests", n)
	}
}

// -print-config shows every setting on its own line, durations as written, secrets masked.
func TestPrintConfig(t *testing.T) {
	var out, errs strings.Builder
	err := run(context.Background(), []string{"-print-config"}, env(map[string]string{"NATS_URL": "nats://nats:4222", "VIDM_URL": "https://vidm.example.com",
		"VIDM_CLIENT_ID": "worker", "VIDM_CLIENT_SECRET": "never-print-me-77", "SYNC_DEADLINE": "45m"}), &out, &errs)
	if err != nil {
		t.Fatalf("%v\n%s", err, errs.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var deadline, secret bool
	for _, l := range lines {
		f := strings.Fields(l)
		deadline = deadline || len(f) == 2 && f[0] == "sync_deadline" && f[1] == "45m0s"
		secret = secret || len(f) == 2 && f[0] == "vidm_client_secret" && f[1] == "[redacted]"
	}
	if len(lines) < 50 || !deadline || !secret || strings.Contains(out.String()+errs.String(), "never-print-me-77") {
		t.Fatalf("%d lines, sync_deadline 45m0s %t, secret masked %t:\n%s", len(lines), deadline, secret, out.String())
	}
}
