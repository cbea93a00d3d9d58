// Package natstest starts a real embedded JetStream server for a test, in the manner of
// net/http/httptest: random port, file storage in the test's temporary directory, everything shut
// down when the test ends.
package natstest

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natsdev"
)

// JetStream starts a server and returns a JetStream handle on a connection to it.
func JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	return JetStreamWith(t, natsdev.Options{})
}

// JetStreamWith is JetStream on a server started with o (its StoreDir is the test's own).
func JetStreamWith(t testing.TB, o natsdev.Options) jetstream.JetStream {
	t.Helper()
	o.StoreDir = t.TempDir()
	s, err := natsdev.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
