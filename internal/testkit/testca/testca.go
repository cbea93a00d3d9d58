// Package testca is a throw-away certificate authority for tests of the worker's own TLS
// servers: a CA, the server and client certificates it issues, and a directory that is updated
// the way the kubelet updates a mounted Secret (every file at once, by swapping a symlink), so
// that certificate rotation is tested as it happens in a cluster.
package testca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// CA issues certificates. Its key never leaves the test.
type CA struct {
	Cert *x509.Certificate
	// PEM is the CA certificate: what a client that trusts only this CA adds to its pool.
	PEM []byte
	key *ecdsa.PrivateKey
}

// New makes a CA named name, valid from an hour ago for a day.
func New(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"vidm-sync-worker tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testca: creating the CA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	return &CA{Cert: cert, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), key: key}
}

// Pool is a pool holding this CA alone.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Leaf is an issued certificate with its key.
type Leaf struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
	TLS     tls.Certificate
}

// Server issues a server certificate for hosts (DNS names or IP addresses; default 127.0.0.1,
// ::1 and localhost).
func (ca *CA) Server(t testing.TB, hosts ...string) Leaf {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "::1", "localhost"}
	}
	tmpl := ca.template(t, hosts[0], x509.ExtKeyUsageServerAuth)
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.issue(t, tmpl)
}

// Client issues a client certificate with the common name cn and, as a SAN, the URI
// spiffe://test/<cn>.
func (ca *CA) Client(t testing.TB, cn string) Leaf {
	t.Helper()
	tmpl := ca.template(t, cn, x509.ExtKeyUsageClientAuth)
	tmpl.URIs = []*url.URL{{Scheme: "spiffe", Host: "test", Path: "/" + cn}}
	return ca.issue(t, tmpl)
}

func (ca *CA) template(t testing.TB, cn string, usage x509.ExtKeyUsage) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
}

func (ca *CA) issue(t testing.TB, tmpl *x509.Certificate) Leaf {
	t.Helper()
	key := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("testca: issuing %q: %v", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	return Leaf{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		TLS:     tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert},
	}
}

// Files are a certificate and its key as a mounted cert-manager Secret holds them: tls.crt,
// tls.key and the issuer's ca.crt.
func (l Leaf) Files(ca *CA) map[string][]byte {
	return map[string][]byte{"tls.crt": l.CertPEM, "tls.key": l.KeyPEM, "ca.crt": ca.PEM}
}

// SecretDir is a directory laid out and updated as the kubelet does a Secret volume: each file
// is a symlink through ..data to a timestamped directory, and an update writes a new directory
// and swaps ..data in one rename, so a reader sees either every old file or every new one.
type SecretDir struct {
	Dir string
	gen atomic.Int64
}

// NewSecretDir makes an empty secret directory.
func NewSecretDir(t testing.TB) *SecretDir {
	t.Helper()
	return &SecretDir{Dir: t.TempDir()}
}

// Path is where a reader finds the file name.
func (d *SecretDir) Path(name string) string { return filepath.Join(d.Dir, name) }

// Write replaces the directory's whole content by files.
func (d *SecretDir) Write(t testing.TB, files map[string][]byte) {
	t.Helper()
	gen := fmt.Sprintf("..gen_%d", d.gen.Add(1))
	if err := os.Mkdir(filepath.Join(d.Dir, gen), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(d.Dir, gen, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
		// The per-file links point through ..data, so they never change once made.
		link := d.Path(name)
		if _, err := os.Lstat(link); errors.Is(err, fs.ErrNotExist) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(d.Dir, "..data_tmp")
	if err := os.Symlink(gen, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d.Dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// WriteFile writes one file in place (not through a swap): how a broken or half-done update
// looks to a reader.
func WriteFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Serial is the serial number of the certificate a TLS server at addr presents to a client that
// trusts pool, or an error if the handshake fails.
func Serial(addr string, pool *x509.CertPool) (*big.Int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber, nil
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	return n
}
