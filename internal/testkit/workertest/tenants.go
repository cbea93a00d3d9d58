package workertest

import (
	"encoding/pem"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// Credentials every simulated backend of a tenants file accepts; the workers read them from the
// files WriteTenantsFile writes.
const (
	SimClientSecret = "tenant-client-secret-4Rz"
	SimPassword     = "tenant-password-8Kq"
	SimRefreshToken = "tenant-refresh-token-2Wm"
)

// SimBackend is one simulated identity system over TLS, with its CA in a file.
type SimBackend struct {
	Sim    *vidmsim.Server
	URL    string
	CAFile string
}

// StartSim starts a simulator of cfg's flavor over TLS that accepts the Sim* credentials; it
// stops when the test ends.
func StartSim(t testing.TB, cfg vidmsim.Config) *SimBackend {
	t.Helper()
	cfg.Clients = []vidmsim.Client{{ID: "vidm-sync-worker", Secret: SimClientSecret}}
	cfg.Users = []vidmsim.User{{Username: "svc-dirsync", Password: SimPassword}}
	cfg.RefreshTokens = []string{SimRefreshToken}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = time.Hour
	}
	sim, err := vidmsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(sim)
	t.Cleanup(func() { sim.Resume(); srv.Close() })
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &SimBackend{Sim: sim, URL: srv.URL, CAFile: ca}
}

// TenantEntry is the YAML of one tenant of the given backend kind served by b; extra is added
// to the entry as written (indented by four spaces).
func TenantEntry(name, kind string, b *SimBackend, extra string) string {
	auth := map[string]string{
		"vidm":      "mode: oauth\n      clientId: vidm-sync-worker\n      clientSecretFile: secrets/client-secret",
		"vra-cloud": fmt.Sprintf("mode: refresh-token\n      refreshTokenFile: secrets/refresh-token\n      tokenURL: %s/csp/gateway/am/api/auth/api-tokens/authorize", b.URL),
		"vra7":      "mode: password\n      username: svc-dirsync\n      passwordFile: secrets/password\n      tenant: vsphere.local",
		"vcf":       "mode: password\n      username: svc-dirsync\n      passwordFile: secrets/password",
	}[kind]
	return fmt.Sprintf("  %s:\n    backend: %s\n    url: %s\n    auth:\n      %s\n    tls:\n      caFile: %s\n%s", name, kind, b.URL, auth, b.CAFile, extra)
}

// WriteTenantsFile writes a tenants file with the given YAML, beside a secrets directory holding
// the Sim* credentials, and returns its path.
func WriteTenantsFile(t testing.TB, yaml string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"client-secret": SimClientSecret, "password": SimPassword, "refresh-token": SimRefreshToken} {
		if err := os.WriteFile(filepath.Join(dir, "secrets", name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "tenants.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}
