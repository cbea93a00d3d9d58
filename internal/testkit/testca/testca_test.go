package testca_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/testca"
)

// TestIssuedCertificatesVerify: a client that trusts only the CA reaches a server with its server
// certificate, and a server that trusts only the CA accepts its client certificate; another CA's
// client certificate is refused.
func TestIssuedCertificatesVerify(t *testing.T) {
	ca, other := testca.New(t, "test CA"), testca.New(t, "other CA")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t).TLS}, ClientCAs: ca.Pool(),
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	get := func(client testca.Leaf) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(),
			Certificates: []tls.Certificate{client.TLS}, MinVersion: tls.VersionTLS12}}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(srv.URL)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	if err := get(ca.Client(t, "publisher")); err != nil {
		t.Fatalf("the CA's client certificate was refused: %v", err)
	}
	if err := get(other.Client(t, "publisher")); err == nil {
		t.Fatal("another CA's client certificate was accepted")
	}
}

// TestSecretDirSwapsEveryFileAtOnce: a reader of the links sees the latest content of each file,
// and a file left out of an update disappears, as in a Secret volume.
func TestSecretDirSwapsEveryFileAtOnce(t *testing.T) {
	d := testca.NewSecretDir(t)
	d.Write(t, map[string][]byte{"a": []byte("1"), "b": []byte("1")})
	d.Write(t, map[string][]byte{"a": []byte("2")})
	if b, err := os.ReadFile(d.Path("a")); err != nil || string(b) != "2" {
		t.Fatalf("a = %q, %v; want 2", b, err)
	}
	if _, err := os.ReadFile(d.Path("b")); err == nil {
		t.Fatal("b, left out of the update, is still readable")
	}
}
