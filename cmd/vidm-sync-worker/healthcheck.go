package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/worker"
)

// defaultAdminAddr is config's ADMIN_ADDR default; the healthcheck must not load the whole
// configuration (a probe has to work even when, say, a secret file is unreadable).
const defaultAdminAddr = ":9090"

// healthcheck is `vidm-sync-worker healthcheck`: one GET, exit status from the answer. It exists
// because the distroless image has no curl or wget for the image's HEALTHCHECK.
//
// With ADMIN_TLS_CERT_FILE set the admin port serves HTTPS, and the check verifies it: the
// certificate must chain to ADMIN_TLS_CA_FILE, or, without it, be the one in
// ADMIN_TLS_CERT_FILE (then a check in the seconds between a rotation and the worker's reading
// of the new files fails; the CA does not). The name verified is the certificate's own, not the
// loopback address dialled, which a certificate for a Service rarely names.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vidm-sync-worker healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", healthURL(getenv("ADMIN_ADDR"), getenv("ADMIN_TLS_CERT_FILE") != ""), "URL to GET; healthy if it answers 2xx")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: vidm-sync-worker healthcheck [-url URL] [-timeout D]\n\nExit 0 if URL answers 2xx, 1 otherwise.\n"+
			"With ADMIN_TLS_CERT_FILE set the URL is https://, and the admin port's certificate must chain to\n"+
			"ADMIN_TLS_CA_FILE, or without it be the one in ADMIN_TLS_CERT_FILE.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("healthcheck: unexpected argument %q", fs.Arg(0))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	tlsCfg, err := adminTrust(getenv)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	// A probe must not follow a redirect elsewhere, nor use a proxy from the environment.
	client := &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true, TLSClientConfig: tlsCfg},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("healthcheck: %s: no answer within %s", *url, *timeout)
		}
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("healthcheck: %s answered %s", *url, resp.Status)
	}
	fmt.Fprintf(stdout, "healthy: %s answered %s\n", *url, resp.Status)
	return nil
}

// healthURL is the liveness URL of a worker listening on adminAddr (ADMIN_ADDR), over HTTPS if
// overTLS (ADMIN_TLS_CERT_FILE).
func healthURL(adminAddr string, overTLS bool) string {
	if adminAddr == "" {
		adminAddr = defaultAdminAddr
	}
	scheme := "http://"
	if overTLS {
		scheme = "https://"
	}
	return scheme + worker.LocalAdminAddr(adminAddr) + "/healthz"
}

// adminTrust is how the check verifies the admin port's certificate (see healthcheck); nil,
// without ADMIN_TLS_CERT_FILE, leaves an https -url to the system's roots.
func adminTrust(getenv func(string) string) (*tls.Config, error) {
	certFile, caFile := getenv("ADMIN_TLS_CERT_FILE"), getenv("ADMIN_TLS_CA_FILE")
	if certFile == "" {
		return nil, nil
	}
	certPEM, err := os.ReadFile(certFile) //nolint:gosec // the operator names the file on purpose
	if err != nil {
		return nil, fmt.Errorf("ADMIN_TLS_CERT_FILE: %w", err)
	}
	leaf, err := firstCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("ADMIN_TLS_CERT_FILE %s: %w", certFile, err)
	}
	var name string
	switch {
	case len(leaf.DNSNames) > 0:
		name = leaf.DNSNames[0]
	case len(leaf.IPAddresses) > 0:
		name = leaf.IPAddresses[0].String()
	default:
		return nil, fmt.Errorf("ADMIN_TLS_CERT_FILE %s: the certificate names no host (no DNS or IP subject alternative name)", certFile)
	}
	roots, trusted := certPEM, "ADMIN_TLS_CERT_FILE"
	if caFile != "" {
		if roots, err = os.ReadFile(caFile); err != nil { //nolint:gosec // as above
			return nil, fmt.Errorf("ADMIN_TLS_CA_FILE: %w", err)
		}
		trusted = "ADMIN_TLS_CA_FILE"
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(roots) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", trusted)
	}
	return &tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12}, nil
}

// firstCertificate is the first certificate of a PEM file: the leaf, by convention.
func firstCertificate(b []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("no PEM certificate in it")
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}
