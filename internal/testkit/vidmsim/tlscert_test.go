package vidmsim_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// TestSelfSignedCert: a client that trusts only the returned PEM verifies the server under each
// default host name.
func TestSelfSignedCert(t *testing.T) {
	cert, pemBytes, err := vidmsim.SelfSignedCert()
	if err != nil {
		t.Fatal(err)
	}
	sim, err := vidmsim.New(vidmsim.ExampleConfig())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(sim)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("PEM not usable as a CA bundle")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, host := range []string{"127.0.0.1", "localhost"} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+net.JoinHostPort(host, port)+"/nope", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d", host, resp.StatusCode)
		}
	}
	if days := time.Until(cert.Leaf.NotAfter).Hours() / 24; days < 364 || days > 367 {
		t.Errorf("valid for %.0f days", days)
	}

	custom, _, err := vidmsim.SelfSignedCert("vidm.test", "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if custom.Leaf.DNSNames[0] != "vidm.test" || !custom.Leaf.IPAddresses[0].Equal(net.ParseIP("10.0.0.1")) {
		t.Errorf("SANs = %v %v", custom.Leaf.DNSNames, custom.Leaf.IPAddresses)
	}
}
