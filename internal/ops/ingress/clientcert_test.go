package ingress_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/ingress"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/testca"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/workertest"
)

// acceptAll stores every message (JetStream's answer without a server).
type acceptAll struct{}

func (acceptAll) PublishMsg(context.Context, *nats.Msg, ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return &jetstream.PubAck{Stream: "DIRSYNC_TRIGGERS", Sequence: 1}, nil
}

// TestClientCertificateAuthorization: with ClientCerts, a request needs a verified client
// certificate (even if the server only asks for one), and the token too when there is one;
// without a token the certificate alone authorizes.
func TestClientCertificateAuthorization(t *testing.T) {
	t.Parallel()
	ca := testca.New(t, "test CA")
	client := ca.Client(t, "vro")
	dec, err := trigger.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		token      string
		clientCert bool
		bearer     string
		want       int
		wantReason string
	}{
		{name: "certificate alone", clientCert: true, want: http.StatusAccepted},
		{name: "no certificate", clientCert: false, want: http.StatusUnauthorized, wantReason: "client certificate"},
		{name: "certificate and token", token: workertest.Token, clientCert: true, bearer: workertest.Token, want: http.StatusAccepted},
		{name: "certificate without the token", token: workertest.Token, clientCert: true, want: http.StatusUnauthorized, wantReason: "bearer token"},
		{name: "token without a certificate", token: workertest.Token, bearer: workertest.Token, want: http.StatusUnauthorized, wantReason: "client certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := ingress.New(ingress.Config{Token: tc.token, ClientCerts: true}, acceptAll{}, dec, nil)
			srv := httptest.NewUnstartedServer(h)
			// Asked for, not required: what the handler does with a request that has none.
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t).TLS}, ClientCAs: ca.Pool(),
				ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}
			srv.StartTLS()
			t.Cleanup(srv.Close)
			cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
			if tc.clientCert {
				cfg.Certificates = []tls.Certificate{client.TLS}
			}
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
			t.Cleanup(hc.CloseIdleConnections)
			req := structured(t, srv.URL+ingress.Path, structuredEvent("cert-1", "ad.group.created", groupData("corp.example.com", "g")))
			req.Header.Del("Authorization")
			if tc.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.wantReason != "" {
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(b), tc.wantReason) {
					t.Fatalf("body %s does not mention %q", b, tc.wantReason)
				}
			}
		})
	}
	// Over plain HTTP there is no certificate at all.
	h := ingress.New(ingress.Config{ClientCerts: true}, acceptAll{}, dec, nil)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	req := structured(t, srv.URL+ingress.Path, structuredEvent("cert-2", "ad.group.created", groupData("corp.example.com", "g")))
	if r := do(t, req); r.status != http.StatusUnauthorized {
		t.Fatalf("plain HTTP: status %d, want 401", r.status)
	}
}
