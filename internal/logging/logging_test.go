package logging_test

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/logging"
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
