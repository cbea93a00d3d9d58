package main

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/testca"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/workertest"
)

// TestHealthcheckExitStatus: the subcommand the image's HEALTHCHECK runs succeeds on 2xx only,
// and a failure is one line naming the URL and the reason.
func TestHealthcheckExitStatus(t *testing.T) {
	// Atomics: the race detector does not see the socket between handler and client as ordering.
	var gotPath atomic.Value
	var status atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath.Store(r.URL.Path)
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()

	// A port nothing listens on: bind one, note it, close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := l.Addr().String()
	l.Close()

	for _, tc := range []struct {
		name    string
		status  int
		args    []string
		env     map[string]string
		wantErr string // "" means healthy
	}{
		{name: "200 via ADMIN_ADDR", status: http.StatusOK, args: []string{"healthcheck"},
			env: map[string]string{"ADMIN_ADDR": strings.TrimPrefix(srv.URL, "http://")}},
		{name: "200 via -url", status: http.StatusOK, args: []string{"healthcheck", "-url", srv.URL + "/healthz"}},
		{name: "204 is healthy", status: http.StatusNoContent, args: []string{"healthcheck", "-url", srv.URL + "/healthz"}},
		{name: "503", status: http.StatusServiceUnavailable, args: []string{"healthcheck", "-url", srv.URL + "/healthz"},
			wantErr: "answered 503 Service Unavailable"},
		{name: "redirect is not followed", status: http.StatusFound, args: []string{"healthcheck", "-url", srv.URL + "/healthz"},
			wantErr: "answered 302 Found"},
		{name: "not listening", args: []string{"healthcheck", "-url", "http://" + closedAddr + "/healthz"},
			wantErr: "connection refused"},
		{name: "not listening via ADMIN_ADDR", args: []string{"healthcheck"}, env: map[string]string{"ADMIN_ADDR": closedAddr},
			wantErr: "connection refused"},
		{name: "stray argument", args: []string{"healthcheck", "now"}, wantErr: `unexpected argument "now"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status.Store(int64(tc.status))
			gotPath.Store("")
			var stdout, stderr strings.Builder
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, tc.args, env(tc.env), &stdout, &stderr)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("healthcheck failed: %v (stderr %q)", err, stderr.String())
				}
				if p := gotPath.Load(); p != "/healthz" {
					t.Fatalf("GET %q, want /healthz", p)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q spans several lines; the HEALTHCHECK log wants one", err)
			}
		})
	}
}

// TestHealthcheckTimeout: a worker that accepts the connection but never answers is unhealthy
// after -timeout, not after the Docker HEALTHCHECK's own timeout.
func TestHealthcheckTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	start := time.Now()
	err := run(context.Background(), []string{"healthcheck", "-url", srv.URL, "-timeout", "200ms"}, env(nil), &strings.Builder{}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "no answer within 200ms") {
		t.Fatalf("error %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s with -timeout 200ms", d)
	}
}

// TestHealthcheckOverTLS: with ADMIN_TLS_CERT_FILE the check speaks HTTPS and verifies the admin
// port: against the certificate file itself, or against ADMIN_TLS_CA_FILE (which also accepts a
// rotated certificate the file does not hold yet). The certificate names a Service, not the
// loopback address dialled.
func TestHealthcheckOverTLS(t *testing.T) {
	ca, other := testca.New(t, "test CA"), testca.New(t, "other CA")
	const svc = "vidm-sync-worker.dirsync.svc"
	served, rotated, foreign := ca.Server(t, svc), ca.Server(t, svc), other.Server(t, svc)
	var current atomic.Pointer[tls.Certificate]
	current.Store(&served.TLS)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return current.Load(), nil }}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	plain := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(plain.Close)

	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile, keyFile, caFile := write("tls.crt", served.CertPEM), write("tls.key", served.KeyPEM), write("ca.crt", ca.PEM)
	ipOnly := write("ip.crt", ca.Server(t, "127.0.0.1").CertPEM)
	noPEM := write("empty.crt", []byte("nothing here"))
	addr := strings.TrimPrefix(srv.URL, "https://")

	for _, tc := range []struct {
		name    string
		serve   *tls.Certificate
		env     map[string]string
		wantErr string
	}{
		{name: "trusting the certificate file", serve: &served.TLS,
			env: map[string]string{"ADMIN_ADDR": addr, "ADMIN_TLS_CERT_FILE": certFile, "ADMIN_TLS_KEY_FILE": keyFile}},
		{name: "trusting the CA", serve: &served.TLS,
			env: map[string]string{"ADMIN_ADDR": addr, "ADMIN_TLS_CERT_FILE": certFile, "ADMIN_TLS_CA_FILE": caFile}},
		{name: "rotated, trusting the CA", serve: &rotated.TLS,
			env: map[string]string{"ADMIN_ADDR": addr, "ADMIN_TLS_CERT_FILE": certFile, "ADMIN_TLS_CA_FILE": caFile}},
		{name: "rotated, trusting the old certificate file", serve: &rotated.TLS,
			env: map[string]string{"ADMIN_ADDR": addr, "ADMIN_TLS_CERT_FILE": certFile}, wantErr: "certificate"},
		{name: "another CA's certificate", serve: &foreign.TLS,
			env: map[string]string{"ADMIN_ADDR": addr, "ADMIN_TLS_CERT_FILE": certFile, "ADMIN_TLS_CA_FILE": caFile}, wantErr: "unknown authority"},
		{name: "a certificate for an IP address", serve: &served.TLS,
			env: map[string]string{"ADMIN_ADDR": addr, "ADMIN_TLS_CERT_FILE": ipOnly, "ADMIN_TLS_CA_FILE": caFile}, wantErr: "127.0.0.1"},
		{name: "plain HTTP where TLS is configured", serve: &served.TLS,
			env: map[string]string{"ADMIN_ADDR": strings.TrimPrefix(plain.URL, "http://"), "ADMIN_TLS_CERT_FILE": certFile}, wantErr: "HTTP response to HTTPS client"},
		{name: "no certificate file", serve: &served.TLS,
			env: map[string]string{"ADMIN_ADDR": addr, "ADMIN_TLS_CERT_FILE": filepath.Join(dir, "missing")}, wantErr: "ADMIN_TLS_CERT_FILE"},
		{name: "no CA file", serve: &served.TLS,
			env: map[string]string{"ADMIN_ADDR": addr, "ADMIN_TLS_CERT_FILE": certFile, "ADMIN_TLS_CA_FILE": filepath.Join(dir, "missing")}, wantErr: "ADMIN_TLS_CA_FILE"},
		{name: "not PEM", serve: &served.TLS,
			env: map[string]string{"ADMIN_ADDR": addr, "ADMIN_TLS_CERT_FILE": noPEM}, wantErr: "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			current.Store(tc.serve)
			var stdout, stderr strings.Builder
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, []string{"healthcheck"}, env(tc.env), &stdout, &stderr)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("healthcheck failed: %v", err)
			case tc.wantErr == "" && !strings.Contains(stdout.String(), "https://"):
				t.Fatalf("healthy, but not over HTTPS: %s", stdout.String())
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestHealthURLFromAdminAddr(t *testing.T) {
	for addr, want := range map[string]string{
		"":               "http://127.0.0.1:9090/healthz",
		":9090":          "http://127.0.0.1:9090/healthz",
		":7000":          "http://127.0.0.1:7000/healthz",
		"0.0.0.0:9090":   "http://127.0.0.1:9090/healthz",
		"[::]:9090":      "http://127.0.0.1:9090/healthz",
		"127.0.0.1:9091": "http://127.0.0.1:9091/healthz",
		"[::1]:9090":     "http://[::1]:9090/healthz",
		"localhost:9090": "http://localhost:9090/healthz",
	} {
		if got := healthURL(addr, false); got != want {
			t.Errorf("ADMIN_ADDR %q: URL %q, want %q", addr, got, want)
		}
		if got, want := healthURL(addr, true), "https://"+strings.TrimPrefix(want, "http://"); got != want {
			t.Errorf("ADMIN_ADDR %q over TLS: URL %q, want %q", addr, got, want)
		}
	}
}

// TestHealthcheckAgainstAWorkerOverTLS: the check, with the worker's own environment, passes
// against a running worker whose admin port serves HTTPS.
func TestHealthcheckAgainstAWorkerOverTLS(t *testing.T) {
	ca := testca.New(t, "test CA")
	dir := testca.NewSecretDir(t)
	dir.Write(t, ca.Server(t, "vidm-sync-worker.dirsync.svc").Files(ca))
	vars := map[string]string{"ADMIN_TLS_CERT_FILE": dir.Path("tls.crt"), "ADMIN_TLS_KEY_FILE": dir.Path("tls.key"), "ADMIN_TLS_CA_FILE": dir.Path("ca.crt")}
	s := workertest.Start(t, workertest.Options{Env: vars})
	w := s.RunWorker("w1")
	vars["ADMIN_ADDR"] = strings.TrimPrefix(w.AdminURL, "http://")
	var stdout strings.Builder
	poll.Until(t, 15*time.Second, "the worker's admin port healthy over HTTPS", func() bool {
		stdout.Reset()
		return run(context.Background(), []string{"healthcheck"}, env(vars), &stdout, io.Discard) == nil
	})
	if !strings.Contains(stdout.String(), "https://") {
		t.Fatalf("healthy, but not over HTTPS: %s", stdout.String())
	}
	delete(vars, "ADMIN_TLS_CERT_FILE")
	if err := run(context.Background(), []string{"healthcheck"}, env(vars), io.Discard, io.Discard); err == nil {
		t.Fatal("plain HTTP against the TLS admin port passed")
	}
}
