package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/logbuf"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestRunDevStartsAndStops: the dev command brings up the embedded stack and the worker, and a
// cancelled context (SIGTERM) stops it cleanly.
func TestRunDevStartsAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &logbuf.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-nats-port", "0", "-store", t.TempDir()}, env(map[string]string{"LOG_FORMAT": "json"}), out, out)
	}()
	poll.Until(t, 20*time.Second, "the worker to start", func() bool { return strings.Contains(out.String(), "worker running") })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after cancellation")
	}
	if !strings.Contains(out.String(), "worker stopped") || !strings.Contains(out.String(), `"vidm_client_secret":"[redacted]"`) {
		t.Fatalf("expected a clean stop and a masked configuration in the log:\n%s", out.String())
	}
}
