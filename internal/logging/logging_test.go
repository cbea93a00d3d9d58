package logging_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/logging"
	"go.opentelemetry.io/otel/trace"
)

func TestNew(t *testing.T) {
	var b strings.Builder
	log, err := logging.New("json", "warn", &b)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", "v")
	var line map[string]any
	if err := json.Unmarshal([]byte(b.String()), &line); err != nil || line["msg"] != "shown" || line["k"] != "v" {
		t.Fatalf("json output %q", b.String())
	}
	b.Reset()
	if log, err = logging.New("text", "DEBUG", &b); err != nil {
		t.Fatal(err)
	}
	log.Debug("plain", "k", "v")
	if !strings.Contains(b.String(), "plain") || strings.Contains(b.String(), "\x1b[") {
		t.Fatalf("text output to a non-terminal %q: want plain text without colour codes", b.String())
	}
	for _, bad := range [][2]string{{"xml", "info"}, {"json", "loud"}} {
		if _, err := logging.New(bad[0], bad[1], &b); err == nil {
			t.Errorf("New(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

// Durations read as people write them, at the top level and inside groups (the start-up
// configuration), never as integer nanoseconds.
func TestJSONDurationsAreText(t *testing.T) {
	var b strings.Builder
	log, err := logging.New("json", "info", &b)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("retrying", "retry_in", 1353465261*time.Nanosecond, slog.Group("config", slog.Duration("sync_deadline", 30*time.Minute)))
	var line struct {
		RetryIn string `json:"retry_in"`
		Config  struct {
			SyncDeadline string `json:"sync_deadline"`
		} `json:"config"`
	}
	if err := json.Unmarshal([]byte(b.String()), &line); err != nil || line.RetryIn != "1.353465261s" || line.Config.SyncDeadline != "30m0s" {
		t.Fatalf("json output %q (%v): want durations as strings", b.String(), err)
	}
}

// A line logged with a span's context names the span; one without, or with the other methods,
// does not; the IDs survive With.
func TestTraceIDs(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0x4b, 0xf9}, SpanID: trace.SpanID{0x00, 0xf0, 0x67}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	for _, format := range []string{"json", "text"} {
		var b strings.Builder
		log, err := logging.New(format, "info", &b)
		if err != nil {
			t.Fatal(err)
		}
		log.With("component", "intake").InfoContext(ctx, "traced")
		log.InfoContext(context.Background(), "untraced")
		log.Info("plain")
		lines := strings.Split(strings.TrimSpace(b.String()), "\n")
		if len(lines) != 3 {
			t.Fatalf("%s: %d lines:\n%s", format, len(lines), b.String())
		}
		if !strings.Contains(lines[0], sc.TraceID().String()) || !strings.Contains(lines[0], sc.SpanID().String()) || !strings.Contains(lines[0], "intake") {
			t.Fatalf("%s: the traced line lacks its ids: %s", format, lines[0])
		}
		for _, l := range lines[1:] {
			if strings.Contains(l, "trace_id") {
				t.Fatalf("%s: an untraced line has a trace id: %s", format, l)
			}
		}
	}
	var b strings.Builder
	h := logging.WithTrace(slog.NewJSONHandler(&b, nil))
	slog.New(logging.WithTrace(h)).InfoContext(ctx, "wrapped twice")
	var line map[string]any
	if err := json.Unmarshal([]byte(b.String()), &line); err != nil || line["trace_id"] != sc.TraceID().String() || strings.Count(b.String(), "trace_id") != 1 {
		t.Fatalf("wrapped twice: %s (%v)", b.String(), err)
	}
}
