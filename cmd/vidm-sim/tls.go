package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// tlsConfig builds the server's TLS config for -tls self-signed or files. cleanup removes a
// temporary CA file, if one was made.
func tlsConfig(o options, addr net.Addr, logger *slog.Logger) (*tls.Config, func(), error) {
	noop := func() {}
	if o.tlsMode == "files" {
		cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, noop, fmt.Errorf("load -cert/-key: %w", err)
		}
		logger.Info("vidm-sim TLS from files", slog.String("cert", o.certFile))
		return newTLSConfig(cert), noop, nil
	}
	cert, certPEM, err := selfSigned(o.listen, addr)
	if err != nil {
		return nil, noop, err
	}
	path, cleanup := o.caOut, noop
	if path != "" {
		if err := writeFileAtomic(path, certPEM, 0o644); err != nil {
			return nil, noop, fmt.Errorf("write -ca-out: %w", err)
		}
	} else {
		// Clients need the certificate to verify the server; without -ca-out it lives only as
		// long as this process.
		f, err := os.CreateTemp("", "vidm-sim-ca-*.pem")
		if err != nil {
			return nil, noop, fmt.Errorf("create CA file: %w", err)
		}
		path, cleanup = f.Name(), func() { _ = os.Remove(f.Name()) }
		_, werr := f.Write(certPEM)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			cleanup()
			return nil, noop, fmt.Errorf("write CA file: %w", werr)
		}
	}
	logger.Info("vidm-sim self-signed TLS: clients must trust this CA file", slog.String("ca_file", path))
	return newTLSConfig(cert), cleanup, nil
}

// selfSigned covers the default hosts plus the host the simulator listens on, when it is a
// specific one.
func selfSigned(listen string, addr net.Addr) (tls.Certificate, []byte, error) {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		host, _, _ = net.SplitHostPort(addr.String())
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) && !slices.Contains(hosts, host) {
		hosts = append(hosts, host)
	}
	cert, certPEM, err := vidmsim.SelfSignedCert(hosts...)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	return cert, certPEM, nil
}

func newTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}
