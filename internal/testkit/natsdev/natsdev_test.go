package natsdev_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/logbuf"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natsdev"
)

func TestRestartKeepsFileStoredMessages(t *testing.T) {
	for _, syncAlways := range []bool{false, true} {
		t.Run(map[bool]string{false: "default-sync", true: "sync-always"}[syncAlways], func(t *testing.T) {
			dir := t.TempDir()
			s, err := natsdev.Start(natsdev.Options{StoreDir: dir, Port: -1, SyncAlways: syncAlways})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Shutdown)
			url := s.URL()
			if !strings.HasPrefix(url, "nats://127.0.0.1:") || strings.HasSuffix(url, ":-1") {
				t.Fatalf("URL = %q", url)
			}

			// Short reconnect wait so the same connection is usable soon after the restart.
			nc, err := nats.Connect(url, nats.ReconnectWait(20*time.Millisecond), nats.MaxReconnects(-1))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // generous: CI runs other packages beside it
			defer cancel()
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
				Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage,
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(ctx, "t.one", []byte("hello")); err != nil {
				t.Fatal(err)
			}

			if err := s.Restart(); err != nil {
				t.Fatal(err)
			}
			if got := s.URL(); got != url {
				t.Fatalf("URL changed across restart: %q -> %q", url, got)
			}

			// The old connection reconnects by itself; poll until it does.
			var msg *jetstream.RawStreamMsg
			for {
				// Each attempt on its own short deadline: a request sent while the connection was
				// still coming back may never be answered.
				actx, acancel := context.WithTimeout(ctx, time.Second)
				st, err := js.Stream(actx, "T")
				if err == nil {
					msg, err = st.GetMsg(actx, 1)
				}
				acancel()
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("stream not readable after restart: %v", err)
				}
				time.Sleep(20 * time.Millisecond) // poll interval, not synchronisation
			}
			if string(msg.Data) != "hello" || msg.Subject != "t.one" {
				t.Fatalf("got %q on %q after restart", msg.Data, msg.Subject)
			}

			// A fresh connection to the same URL works too.
			nc2, err := nats.Connect(url)
			if err != nil {
				t.Fatal(err)
			}
			nc2.Close()

			s.Shutdown()
			s.Shutdown() // idempotent
			if err := s.Restart(); err == nil {
				t.Fatal("Restart after Shutdown succeeded")
			}
			if _, err := nats.Connect(url, nats.NoReconnect()); !errors.Is(err, nats.ErrNoServers) {
				t.Fatalf("connect after shutdown: %v, want ErrNoServers", err)
			}
		})
	}
}

func TestTemporaryStoreDirIsRemoved(t *testing.T) {
	s, err := natsdev.Start(natsdev.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := s.StoreDir()
	nc, err := nats.Connect(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); err != nil {
		t.Fatalf("JetStream does not store in %s: %v", dir, err)
	}
	s.Shutdown()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary store directory %s not removed: %v", dir, err)
	}
}

func TestLogger(t *testing.T) {
	var buf logbuf.Buffer
	s, err := natsdev.Start(natsdev.Options{StoreDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	if out := buf.String(); !strings.Contains(out, "Server is ready") || !strings.Contains(out, "level=INFO") {
		t.Fatalf("server log not forwarded to slog:\n%s", out)
	}
}
