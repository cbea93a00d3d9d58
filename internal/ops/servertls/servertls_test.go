package servertls_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/servertls"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/fakeclock"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/logbuf"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/testca"
)

// reloads counts the Reloaded calls.
type reloads struct{ applied, refused atomic.Int64 }

func (r *reloads) hook(ok bool) {
	if ok {
		r.applied.Add(1)
	} else {
		r.refused.Add(1)
	}
}

func (r *reloads) want(t *testing.T, applied, refused int64) {
	t.Helper()
	if a, f := r.applied.Load(), r.refused.Load(); a != applied || f != refused {
		t.Fatalf("reloads applied %d refused %d, want %d and %d", a, f, applied, refused)
	}
}

// fixture is a Source over a Secret-like directory, served over HTTPS by a handler that answers
// with the client certificate's common name.
type fixture struct {
	ca      *testca.CA
	dir     *testca.SecretDir
	src     *servertls.Source
	addr    string
	reloads *reloads
	logs    *logbuf.Buffer
}

func start(t *testing.T, files map[string][]byte, clientCA bool, names []string, o servertls.Options) *fixture {
	t.Helper()
	f := &fixture{dir: testca.NewSecretDir(t), reloads: &reloads{}, logs: &logbuf.Buffer{}}
	f.dir.Write(t, files)
	sf := servertls.Files{Cert: f.dir.Path("tls.crt"), Key: f.dir.Path("tls.key"), ClientNames: names}
	if clientCA {
		sf.ClientCA = f.dir.Path("client-ca.crt")
	}
	o.Logger = slog.New(slog.NewJSONHandler(f.logs, nil))
	o.Reloaded = f.reloads.hook
	src, err := servertls.Load(sf, o)
	if err != nil {
		t.Fatal(err)
	}
	f.src = src
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelWarn), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) > 0 {
			_, _ = io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
		}
	})}
	go func() { _ = srv.Serve(tls.NewListener(l, src.Config())) }()
	t.Cleanup(func() { _ = srv.Close() })
	f.addr = l.Addr().String()
	return f
}

// get is a GET by a client that trusts only roots, presenting cert if any; it returns the body.
func (f *fixture) get(roots *x509.CertPool, cert *testca.Leaf, maxVersion uint16) (string, error) {
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS10, MaxVersion: maxVersion} //nolint:gosec // the server's minimum is tested
	if cert != nil {
		// Presented whatever CAs the server names (a Go client would otherwise send none).
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert.TLS, nil }
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get("https://" + f.addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func (f *fixture) serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := testca.Serial(f.addr, f.ca.Pool())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func serverFiles(t *testing.T, ca *testca.CA) (map[string][]byte, testca.Leaf) {
	leaf := ca.Server(t)
	return leaf.Files(ca), leaf
}

// TestClientThatTrustsOnlyTheCA: a client that trusts only the test CA reaches the server; one
// that trusts another CA does not, nor one limited to TLS 1.1.
func TestClientThatTrustsOnlyTheCA(t *testing.T) {
	ca := testca.New(t, "test CA")
	files, leaf := serverFiles(t, ca)
	f := start(t, files, false, nil, servertls.Options{})
	f.ca = ca
	if _, err := f.get(ca.Pool(), nil, 0); err != nil {
		t.Fatalf("a client trusting the CA: %v", err)
	}
	if _, err := f.get(testca.New(t, "other CA").Pool(), nil, 0); err == nil {
		t.Fatal("a client trusting another CA connected")
	}
	if _, err := f.get(ca.Pool(), nil, tls.VersionTLS11); err == nil {
		t.Fatal("a TLS 1.1 client connected")
	}
	if got := f.serial(t); got.Cmp(leaf.Cert.SerialNumber) != 0 || f.src.Leaf().SerialNumber.Cmp(got) != 0 {
		t.Fatalf("served serial %x, want %x", got, leaf.Cert.SerialNumber)
	}
	// HTTP/1.1 only, as over plain HTTP.
	conn, err := (&tls.Dialer{Config: &tls.Config{RootCAs: ca.Pool(), NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}}).
		DialContext(context.Background(), "tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Fatalf("negotiated %q, want http/1.1", p)
	}
}

// TestClientCertificates: with a client CA, a client without a certificate and one with another
// CA's are refused in the handshake; with ClientNames, the CA's certificate must also name an
// allowed client (common name or URI).
func TestClientCertificates(t *testing.T) {
	ca, other := testca.New(t, "test CA"), testca.New(t, "other CA")
	files, _ := serverFiles(t, ca)
	files["client-ca.crt"] = ca.PEM
	alice, bob, mallory := ca.Client(t, "alice"), ca.Client(t, "bob"), other.Client(t, "alice")
	for _, tc := range []struct {
		name    string
		names   []string
		client  *testca.Leaf
		wantErr bool
	}{
		{name: "no certificate", client: nil, wantErr: true},
		{name: "another CA's", client: &mallory, wantErr: true},
		{name: "the CA's", client: &alice},
		{name: "named by common name", names: []string{"alice"}, client: &alice},
		{name: "named by URI", names: []string{"spiffe://test/bob"}, client: &bob},
		{name: "not named", names: []string{"alice"}, client: &bob, wantErr: true},
		{name: "another CA's with an allowed name", names: []string{"alice"}, client: &mallory, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := start(t, files, true, tc.names, servertls.Options{})
			body, err := f.get(ca.Pool(), tc.client, 0)
			switch {
			case tc.wantErr && err == nil:
				t.Fatalf("accepted (body %q)", body)
			case !tc.wantErr && err != nil:
				t.Fatalf("refused: %v", err)
			case !tc.wantErr && body != tc.client.Cert.Subject.CommonName:
				t.Fatalf("the handler saw client %q, want %q", body, tc.client.Cert.Subject.CommonName)
			}
		})
	}
}

// TestRotation: new files are served from the next check without a restart; a replacement that
// does not load keeps the certificate in use, is reported once, and a repaired one is served.
func TestRotation(t *testing.T) {
	ca := testca.New(t, "test CA")
	files, first := serverFiles(t, ca)
	f := start(t, files, false, nil, servertls.Options{})
	f.ca = ca

	if err := f.src.Check(); err != nil {
		t.Fatal(err)
	}
	f.reloads.want(t, 0, 0) // unchanged files are no reload

	next := ca.Server(t)
	f.dir.Write(t, next.Files(ca))
	if err := f.src.Check(); err != nil {
		t.Fatal(err)
	}
	if got := f.serial(t); got.Cmp(next.Cert.SerialNumber) != 0 {
		t.Fatalf("after the rotation the server presents %x, want %x (the first was %x)", got, next.Cert.SerialNumber, first.Cert.SerialNumber)
	}
	f.reloads.want(t, 1, 0)

	// A key that does not match: refused, logged and counted once however often it is read.
	broken := ca.Server(t)
	f.dir.Write(t, map[string][]byte{"tls.crt": broken.CertPEM, "tls.key": next.KeyPEM})
	for range 3 {
		if err := f.src.Check(); err == nil || !strings.Contains(err.Error(), "private key does not match") {
			t.Fatalf("Check = %v, want a key mismatch", err)
		}
	}
	if got := f.serial(t); got.Cmp(next.Cert.SerialNumber) != 0 {
		t.Fatalf("a broken replacement is served (%x)", got)
	}
	f.reloads.want(t, 1, 1)
	if n := strings.Count(f.logs.String(), "do not load"); n != 1 {
		t.Fatalf("%d warnings about the broken files, want 1:\n%s", n, f.logs)
	}

	// A file cut short (written in place, not swapped).
	testca.WriteFile(t, f.dir.Path("tls.crt"), broken.CertPEM[:len(broken.CertPEM)/2])
	if err := f.src.Check(); err == nil {
		t.Fatal("a truncated certificate was accepted")
	}
	f.reloads.want(t, 1, 2)

	// Repaired: the good pair is served.
	f.dir.Write(t, broken.Files(ca))
	if err := f.src.Check(); err != nil {
		t.Fatal(err)
	}
	if got := f.serial(t); got.Cmp(broken.Cert.SerialNumber) != 0 {
		t.Fatalf("the repaired files are not served: %x", got)
	}
	f.reloads.want(t, 2, 2)
}

// TestMissingFileKeepsTheCertificate: files that disappear (a Secret deleted) keep the
// certificate in use, reported once; when they come back unchanged nothing is reloaded.
func TestMissingFileKeepsTheCertificate(t *testing.T) {
	ca := testca.New(t, "test CA")
	files, leaf := serverFiles(t, ca)
	f := start(t, files, false, nil, servertls.Options{})
	f.ca = ca
	f.dir.Write(t, map[string][]byte{"ca.crt": ca.PEM})
	for range 2 {
		if err := f.src.Check(); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Check = %v, want a missing file", err)
		}
	}
	f.reloads.want(t, 0, 1)
	if got := f.serial(t); got.Cmp(leaf.Cert.SerialNumber) != 0 {
		t.Fatalf("serving %x, want the first certificate", got)
	}
	f.dir.Write(t, files)
	if err := f.src.Check(); err != nil {
		t.Fatal(err)
	}
	f.reloads.want(t, 0, 1)
}

// TestClientCARotation: the client CA file is re-read like the certificate.
func TestClientCARotation(t *testing.T) {
	oldCA, newCA := testca.New(t, "old client CA"), testca.New(t, "new client CA")
	ca := testca.New(t, "server CA")
	files, _ := serverFiles(t, ca)
	files["client-ca.crt"] = oldCA.PEM
	f := start(t, files, true, nil, servertls.Options{})
	oldClient, newClient := oldCA.Client(t, "publisher"), newCA.Client(t, "publisher")
	if _, err := f.get(ca.Pool(), &newClient, 0); err == nil {
		t.Fatal("a certificate of the CA not yet in the file was accepted")
	}
	files["client-ca.crt"] = newCA.PEM
	f.dir.Write(t, files)
	if err := f.src.Check(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.get(ca.Pool(), &newClient, 0); err != nil {
		t.Fatalf("the new CA's client after the rotation: %v", err)
	}
	if _, err := f.get(ca.Pool(), &oldClient, 0); err == nil {
		t.Fatal("the old CA's client is still accepted after the CA left the file")
	}
}

// TestRunReadsEveryInterval: Run checks on its clock, so a rotation is served one interval later.
func TestRunReadsEveryInterval(t *testing.T) {
	ca := testca.New(t, "test CA")
	files, _ := serverFiles(t, ca)
	clock := fakeclock.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	f := start(t, files, false, nil, servertls.Options{Interval: time.Minute, After: clock.After})
	f.ca = ca
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.src.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	next := ca.Server(t)
	f.dir.Write(t, next.Files(ca))
	due := clock.Now().Add(time.Minute)
	poll.Until(t, 5*time.Second, "Run waiting for its interval", func() bool { return clock.Waiting(due) == 1 })
	if got := f.serial(t); got.Cmp(next.Cert.SerialNumber) == 0 {
		t.Fatal("the new certificate is served before the interval passed")
	}
	clock.Advance(time.Minute)
	poll.Until(t, 5*time.Second, "the new certificate served", func() bool { return f.serial(t).Cmp(next.Cert.SerialNumber) == 0 })
	f.reloads.want(t, 1, 0)
}

// TestLoadErrors: a start with files that do not load is an error naming the file.
func TestLoadErrors(t *testing.T) {
	ca := testca.New(t, "test CA")
	good := ca.Server(t)
	other := ca.Server(t)
	for _, tc := range []struct {
		name     string
		files    map[string][]byte
		clientCA bool
		want     string
	}{
		{name: "no key file", files: map[string][]byte{"tls.crt": good.CertPEM}, want: "reading the private key"},
		{name: "no certificate file", files: map[string][]byte{"tls.key": good.KeyPEM}, want: "reading the certificate"},
		{name: "key of another certificate", files: map[string][]byte{"tls.crt": good.CertPEM, "tls.key": other.KeyPEM},
			want: "private key does not match"},
		{name: "not PEM", files: map[string][]byte{"tls.crt": []byte("hello"), "tls.key": good.KeyPEM}, want: "tls.crt"},
		{name: "no client CA file", files: good.Files(ca), clientCA: true, want: "reading the client CA"},
		{name: "client CA without certificates", files: map[string][]byte{"tls.crt": good.CertPEM, "tls.key": good.KeyPEM,
			"client-ca.crt": []byte("not a certificate")}, clientCA: true, want: "client CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := testca.NewSecretDir(t)
			d.Write(t, tc.files)
			sf := servertls.Files{Cert: d.Path("tls.crt"), Key: d.Path("tls.key")}
			if tc.clientCA {
				sf.ClientCA = d.Path("client-ca.crt")
			}
			_, err := servertls.Load(sf, servertls.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
