package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/logbuf"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// simProcess is the command running in-process on a free port with plain HTTP.
type simProcess struct {
	base   string
	client *http.Client
	logs   *logbuf.Buffer
}

// startPlain runs the command with -tls off and JSON logs (to read the start-up record), plus
// args; it is stopped, and must have returned nil, when the test ends.
func startPlain(t *testing.T, env map[string]string, args ...string) *simProcess {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addr")
	all := append([]string{"-listen", "127.0.0.1:0", "-addr-file", addrFile, "-tls", "off", "-log-format", "json"}, args...)
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	logs := &logbuf.Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, all, func(k string) string { return env[k] }, io.Discard, logs) }()
	addr := waitForFile(t, addrFile, done)
	p := &simProcess{base: "http://" + addr, client: &http.Client{Timeout: 5 * time.Second}, logs: logs}
	t.Cleanup(func() {
		p.client.CloseIdleConnections()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not return after cancel")
		}
	})
	return p
}

// response is an answer read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request; headers are name, value pairs.
func (p *simProcess) do(t *testing.T, method, path, body string, headers ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, p.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// control posts a JSON body to one of the /_sim/ controls.
func (p *simProcess) control(t *testing.T, path, body string) response {
	t.Helper()
	return p.do(t, http.MethodPost, path, body, "Content-Type", "application/json")
}

// startRecord returns the fields of the "vidm-sim listening" log record.
func (p *simProcess) startRecord(t *testing.T) map[string]any {
	t.Helper()
	for _, line := range strings.Split(p.logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "vidm-sim listening" {
			return rec
		}
	}
	t.Fatalf("no start-up record in the logs:\n%s", p.logs.String())
	return nil
}

// writeConfig writes cfg as a config file and returns its path.
func writeConfig(t *testing.T, cfg vidmsim.Config) string {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}
