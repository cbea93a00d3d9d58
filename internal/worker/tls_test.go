package worker_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/testca"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/worker"
)

// httpsClient trusts only roots and presents cert, if any, whatever CAs the server names.
func httpsClient(t *testing.T, roots *x509.CertPool, cert *testca.Leaf) *http.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert.TLS, nil }
	}
	c := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// answer is what send read of a response (closed).
type answer struct {
	status  int
	header  http.Header
	cookies []*http.Cookie
}

func send(c *http.Client, method, url, contentType, token, body string) (answer, []byte, error) {
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if err != nil {
		return answer{}, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, cookies: resp.Cookies()}, b, err
}

// configReloads reads dirsync_config_reloads_total{result} from the admin port.
func configReloads(t *testing.T, c *http.Client, base, result string) float64 {
	t.Helper()
	_, body, err := send(c, "GET", base+"/metrics", "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range fams["dirsync_config_reloads_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "result" && l.GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no dirsync_config_reloads_total{result=%q}", result)
	return 0
}

// TestAdminPortAndIngressOverTLS: with certificate files configured, a client that trusts only
// the test CA reaches the admin port and the ingress over HTTPS, and a browser's session cookie
// is Secure; the ingress with a client CA refuses a client without a certificate and one with
// another CA's, and takes the token as well; rotated files are served without a restart, and a
// broken replacement keeps the certificate in use and counts as a rejected reload.
func TestAdminPortAndIngressOverTLS(t *testing.T) {
	const ingressToken = "ingress-token-Tq72-of-at-least-32-characters"
	ca, clientCA, other := testca.New(t, "server CA"), testca.New(t, "publishers' CA"), testca.New(t, "other CA")
	adminDir, ingressDir := testca.NewSecretDir(t), testca.NewSecretDir(t)
	first := ca.Server(t)
	adminDir.Write(t, first.Files(ca))
	ingressFiles := ca.Server(t).Files(ca)
	ingressFiles["clients.crt"] = clientCA.PEM
	ingressDir.Write(t, ingressFiles)

	h := newHarness(t, 100*time.Millisecond, opsEnv(map[string]string{
		"ADMIN_TLS_CERT_FILE": adminDir.Path("tls.crt"), "ADMIN_TLS_KEY_FILE": adminDir.Path("tls.key"),
		"INGRESS_ENABLED": "true", "INGRESS_TOKEN": ingressToken,
		"INGRESS_TLS_CERT_FILE": ingressDir.Path("tls.crt"), "INGRESS_TLS_KEY_FILE": ingressDir.Path("tls.key"),
		"INGRESS_TLS_CLIENT_CA_FILE": ingressDir.Path("clients.crt"), "INGRESS_TLS_CLIENT_NAMES": "vro, abx",
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := h.StartWorker("w1", worker.WithIngressListener(l), worker.WithTLSReload(20*time.Millisecond))
	adminAddr := strings.TrimPrefix(w.AdminURL, "http://")
	admin := "https://" + adminAddr
	events := "https://" + l.Addr().String() + "/events"
	trusting := httpsClient(t, ca.Pool(), nil)

	// The admin port: HTTPS for a client that trusts the CA, nothing for the others.
	poll.Until(t, 10*time.Second, "the admin API over HTTPS", func() bool {
		resp, _, err := send(trusting, "GET", admin+"/api/v1/directories", "", readToken, "")
		return err == nil && resp.status == http.StatusOK
	})
	if resp, body, err := send(trusting, "GET", admin+"/healthz", "", "", ""); err != nil || resp.status != http.StatusOK {
		t.Fatalf("/healthz over HTTPS: %v %v %s", resp, err, body)
	}
	if _, _, err := send(httpsClient(t, other.Pool(), nil), "GET", admin+"/healthz", "", "", ""); err == nil {
		t.Fatal("a client trusting another CA reached the admin port")
	}
	if resp, _, err := send(&http.Client{Timeout: 10 * time.Second}, "GET", "http://"+adminAddr+"/healthz", "", "", ""); err == nil && resp.status == http.StatusOK {
		t.Fatal("the admin port answered plain HTTP")
	}

	// The browser's session cookie is Secure over TLS.
	resp, _, err := send(trusting, "POST", admin+"/login", "application/x-www-form-urlencoded", "", url.Values{"token": {readToken}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	var session *http.Cookie
	for _, c := range resp.cookies {
		if c.Value != "" {
			session = c
		}
	}
	if resp.status != http.StatusSeeOther || session == nil || !session.Secure || !session.HttpOnly {
		t.Fatalf("sign-in over TLS: %d, cookie %+v; want a Secure session cookie", resp.status, session)
	}

	// The ingress: a client certificate of the publishers' CA naming an allowed client, and the token.
	event := `{"specversion":"1.0","id":"tls-1","source":"urn:vro:workflow","type":"ad.group.created",
		"datacontenttype":"application/json","data":{"domain":"corp.example.com","group":{"name":"proj-tls"}}}`
	vro, stranger, forged := clientCA.Client(t, "vro"), clientCA.Client(t, "stranger"), other.Client(t, "vro")
	const ce = "application/cloudevents+json"
	for _, tc := range []struct {
		name string
		cert *testca.Leaf
	}{{"no client certificate", nil}, {"another CA's certificate", &forged}, {"a name not allowed", &stranger}} {
		if resp, body, err := send(httpsClient(t, ca.Pool(), tc.cert), "POST", events, ce, ingressToken, event); err == nil {
			t.Fatalf("%s: the ingress answered %d %s; want the handshake refused", tc.name, resp.status, body)
		}
	}
	publisher := httpsClient(t, ca.Pool(), &vro)
	if resp, body, err := send(publisher, "POST", events, ce, "", event); err != nil || resp.status != http.StatusUnauthorized {
		t.Fatalf("a certificate without the token: %v %v %s; want 401", resp, err, body)
	}
	resp, body, err := send(publisher, "POST", events+"?wait=20s", ce, ingressToken, event)
	if err != nil || resp.status != http.StatusOK || resp.header.Get("Dirsync-Result-Status") != "COMPLETED" {
		t.Fatalf("POST with certificate and token: %v %v %s", resp, err, body)
	}

	// Rotation: new files are served without a restart.
	next := ca.Server(t)
	adminDir.Write(t, next.Files(ca))
	poll.Until(t, 10*time.Second, "the rotated certificate served", func() bool {
		n, err := testca.Serial(adminAddr, ca.Pool())
		return err == nil && n.Cmp(next.Cert.SerialNumber) == 0
	})
	poll.Until(t, 5*time.Second, "the rotation counted", func() bool { return configReloads(t, trusting, admin, "applied") == 1 })

	// A broken replacement (the key of another certificate) keeps the rotated one.
	adminDir.Write(t, map[string][]byte{"tls.crt": ca.Server(t).CertPEM, "tls.key": next.KeyPEM})
	poll.Until(t, 10*time.Second, "the broken files counted as rejected", func() bool {
		return configReloads(t, trusting, admin, "rejected") == 1
	})
	if n, err := testca.Serial(adminAddr, ca.Pool()); err != nil || n.Cmp(next.Cert.SerialNumber) != 0 {
		t.Fatalf("after a broken replacement: serial %x, %v; want %x still", n, err, next.Cert.SerialNumber)
	}
	if !strings.Contains(h.Logs.String(), "do not load") {
		t.Fatal("no warning about the broken certificate files")
	}
}

// TestCertificateThatDoesNotLoadStopsTheStart: the worker refuses to start with a certificate
// and a key that do not belong together, and says which variables to fix.
func TestCertificateThatDoesNotLoadStopsTheStart(t *testing.T) {
	ca := testca.New(t, "test CA")
	dir := testca.NewSecretDir(t)
	dir.Write(t, map[string][]byte{"tls.crt": ca.Server(t).CertPEM, "tls.key": ca.Server(t).KeyPEM})
	h := newHarness(t, 100*time.Millisecond, nil)
	cfg := h.Cfg
	cfg.AdminTLSCertFile, cfg.AdminTLSKeyFile = dir.Path("tls.crt"), dir.Path("tls.key")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = worker.Serve(ctx, h.NC, cfg, h.logger("w1"), worker.WithAdminListener(l))
	if err == nil || !strings.Contains(err.Error(), "ADMIN_TLS_CERT_FILE") || !strings.Contains(err.Error(), "private key does not match") {
		t.Fatalf("Serve = %v; want a refusal naming ADMIN_TLS_CERT_FILE", err)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("the refusal took until the deadline")
	}
}
