package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/logbuf"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

func noEnv(string) string { return "" }

func TestPrintConfig(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"-print-config"}, noEnv, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v (stderr %s)", err, stderr.String())
	}
	cfg, err := vidmsim.LoadConfig(&stdout)
	if err != nil {
		t.Fatalf("LoadConfig of the printed config: %v", err)
	}
	if !reflect.DeepEqual(cfg, vidmsim.ExampleConfig()) {
		t.Fatalf("printed config differs from ExampleConfig: %+v", cfg)
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	badConfig := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(badConfig, []byte(`{"directories":[{"id":"a"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown flag", []string{"-nope"}, nil, "flag provided but not defined"},
		{"bad tls mode", []string{"-tls", "maybe"}, nil, "want self-signed, files or off"},
		{"bad tls mode from env", nil, map[string]string{"VIDM_SIM_TLS": "maybe"}, "want self-signed, files or off"},
		{"files without key", []string{"-tls", "files", "-cert", "c.pem"}, nil, "needs -cert and -key"},
		{"missing cert files", []string{"-tls", "files", "-cert", "c.pem", "-key", "k.pem", "-listen", "127.0.0.1:0"}, nil, "load -cert/-key"},
		{"bad log format", []string{"-log-format", "xml"}, nil, "want text or json"},
		{"bad log level", []string{"-log-level", "loud"}, nil, "-log-level"},
		{"missing config", []string{"-config", filepath.Join(dir, "none.json")}, nil, "open config"},
		{"invalid config", []string{"-config", badConfig}, nil, "name must not be empty"},
		{"extra argument", []string{"serve"}, nil, "unexpected arguments"},
		{"bad listen address", []string{"-listen", "256.0.0.1:99999", "-tls", "off"}, nil, "listen"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			err := run(t.Context(), tc.args, getenv, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if err := run(t.Context(), []string{"-h"}, noEnv, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

// TestRunServes starts run on a free port, uses the simulator and its /_sim/ endpoints, then
// cancels the context: run must return nil.
func TestRunServes(t *testing.T) {
	tests := []struct {
		name string
		args []string // besides -listen and -addr-file
		env  map[string]string
	}{
		{"plain http, json logs", []string{"-tls", "off", "-log-format", "json", "-log-level", "debug"}, nil},
		{"self-signed with -ca-out", []string{"-ca-out", "CA"}, nil},
		{"self-signed, temporary CA file, settings from env", nil, map[string]string{"VIDM_SIM_LOG_FORMAT": "json"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			addrFile := filepath.Join(dir, "addr")
			args := []string{"-listen", "127.0.0.1:0", "-addr-file", addrFile}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "CA", filepath.Join(dir, "ca.pem")))
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var stderr logbuf.Buffer
			done := make(chan error, 1)
			go func() { done <- run(ctx, args, func(k string) string { return tc.env[k] }, io.Discard, &stderr) }()

			addr := waitForFile(t, addrFile, done)
			caOut := filepath.Join(dir, "ca.pem")
			client, base, caFile := clientFor(t, addr, &stderr, caOut)
			login(t, client, base)
			var st struct {
				Requests map[string]int `json:"requests"`
				Logins   int            `json:"logins"`
			}
			getJSON(t, client, base+"/_sim/stats", &st)
			if st.Logins != 1 || st.Requests["oauth-token"] != 1 {
				t.Fatalf("stats = %+v", st)
			}
			var log []vidmsim.SyncRecord
			getJSON(t, client, base+"/_sim/synclog", &log)
			if len(log) != 0 {
				t.Fatalf("synclog = %+v", log)
			}

			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("run did not return after cancel")
			}
			if _, err := os.Stat(caFile); caFile != "" && caFile != caOut && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temporary CA file %s left behind (%v)", caFile, err)
			}
			logs := stderr.String()
			for _, want := range []string{"vidm-sim listening", "vidm-sync-worker", "sync-admin", "vidm-sim stopped"} {
				if !strings.Contains(logs, want) {
					t.Errorf("logs lack %q:\n%s", want, logs)
				}
			}
			for _, secret := range []string{"example-client-secret", "example-password"} {
				if strings.Contains(logs, secret) {
					t.Errorf("logs contain the secret %q", secret)
				}
			}
		})
	}
}

// waitForFile polls for the -addr-file with a deadline, failing early if run returns.
func waitForFile(t *testing.T, path string, done <-chan error) string {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil {
			return strings.TrimSpace(string(b))
		}
		select {
		case err := <-done:
			t.Fatalf("run returned before listening: %v", err)
		case <-deadline.C:
			t.Fatal("timed out waiting for the address file")
		case <-tick.C:
		}
	}
}

// clientFor returns an HTTP client and base URL for the listener; for TLS it trusts the CA file
// the logs name (the -ca-out file or the temporary one).
func clientFor(t *testing.T, addr string, stderr *logbuf.Buffer, caOut string) (c *http.Client, base, caFile string) {
	t.Helper()
	logs := stderr.String()
	if !strings.Contains(logs, "ca_file") {
		return &http.Client{Timeout: 5 * time.Second}, "http://" + addr, ""
	}
	caFile = caOut
	if _, err := os.Stat(caFile); err != nil {
		caFile = caFileFromLogs(t, logs)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("CA file holds no certificate")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}, "https://" + addr, caFile
}

func caFileFromLogs(t *testing.T, logs string) string {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		var rec struct {
			CAFile string `json:"ca_file"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.CAFile != "" {
			return rec.CAFile
		}
	}
	t.Fatalf("no ca_file in the JSON logs:\n%s", logs)
	return ""
}

func login(t *testing.T, c *http.Client, base string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost,
		base+"/SAAS/auth/oauthtoken?grant_type=client_credentials", strings.NewReader(url.Values{}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("vidm-sync-worker", "example-client-secret")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d", resp.StatusCode)
	}
}

func getJSON(t *testing.T, c *http.Client, u string, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}
