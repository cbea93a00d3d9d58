// Package natstest starts a real embedded JetStream server for a test, in the manner of
// net/http/httptest: random port, file storage in the test's temporary directory, everything shut
// down when the test ends. Every test that needs a broker starts it here.
package natstest

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natsdev"
)

// Server starts a server with o for the rest of the test; its store is the test's temporary
// directory unless o names one. Stop, Resume and Restart on it simulate broker outages.
func Server(t testing.TB, o natsdev.Options) *natsdev.Server {
	t.Helper()
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	s, err := natsdev.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// Connect connects to url for the rest of the test and returns the connection and a JetStream
// handle on it.
func Connect(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// JetStream starts a server and returns a JetStream handle on a connection to it.
func JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	return JetStreamWith(t, natsdev.Options{})
}

// JetStreamWith is JetStream on a server started with o.
func JetStreamWith(t testing.TB, o natsdev.Options) jetstream.JetStream {
	t.Helper()
	_, js := Connect(t, Server(t, o).URL())
	return js
}
