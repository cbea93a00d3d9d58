package natsconn_test

import (
	"strings"
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/natsconn"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natsdev"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
)

func TestConnect(t *testing.T) {
	ns := natstest.Server(t, natsdev.Options{})
	nc, err := natsconn.Connect(natsconn.Options{URL: ns.URL(), Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	_, err = natsconn.Connect(natsconn.Options{URL: "nats://alice:pa55-s3cret@127.0.0.1:1", CAFile: "/nonexistent/ca.pem"})
	if err == nil || strings.Contains(err.Error(), "pa55-s3cret") || !strings.Contains(err.Error(), "redacted@") {
		t.Fatalf("error = %v; want a failure that hides the password", err)
	}
}

func TestRedactURLs(t *testing.T) {
	got := natsconn.RedactURLs("nats://a:b@h1:4222, nats://h2:4222,tls://tok@h3")
	if strings.Contains(got, "a:b") || strings.Contains(got, "tok@") || !strings.Contains(got, "h2:4222") {
		t.Fatalf("RedactURLs = %q", got)
	}
}
