package config_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
)

// FuzzLoad feeds arbitrary environments ("NAME=value" lines) to Load: it never panics, a rejection
// is a non-empty message, and no secret value ever appears in that message or in the logged form.
func FuzzLoad(f *testing.F) {
	f.Add("NATS_URL=nats://127.0.0.1:4222\nVIDM_URL=https://vidm\nVIDM_CLIENT_ID=id\nVIDM_CLIENT_SECRET=s3cret-value")
	f.Add("LEASE_TTL=forever\nMAX_CONCURRENT_SYNCS=-1\nTRIGGER_SUBJECTS=a.>,>\nVIDM_PASSWORD=pw-secret-1")
	f.Add("NATS_URL=nats://user:pa55word@h:4222\nNATS_TOKEN=tok-secret-9\nLOG_LEVEL=LOUD")
	f.Add("VIDM_AUTH_MODE=system\nVIDM_USERNAME=u\nVIDM_PASSWORD_FILE=/nonexistent")
	f.Fuzz(func(t *testing.T, env string) {
		m := map[string]string{}
		for _, line := range strings.Split(env, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok && k != "" {
				m[k] = v
			}
		}
		for _, k := range []string{"NATS_PASSWORD_FILE", "NATS_TOKEN_FILE", "VIDM_CLIENT_SECRET_FILE", "VIDM_PASSWORD_FILE"} {
			delete(m, k) // files are read from disk; the unit tests cover them
		}
		cfg, err := config.Load(context.Background(), envconfig.MapLookuper(m), true)
		var shown string
		if err != nil {
			shown = err.Error()
			if shown == "" {
				t.Fatal("empty error message")
			}
		} else {
			var b strings.Builder
			slog.New(slog.NewTextHandler(&b, nil)).Info("config", "config", cfg)
			shown = b.String()
		}
		for _, k := range []string{"NATS_PASSWORD", "NATS_TOKEN", "VIDM_CLIENT_SECRET", "VIDM_PASSWORD"} {
			if v := m[k]; distinctive(v, k, m) && strings.Contains(shown, v) {
				t.Fatalf("secret %s shown: %s", k, shown)
			}
		}
	})
}

// distinctive reports a secret value that cannot show up for an innocent reason: long enough, not
// part of another variable's value, of a default, or of the words of a message.
func distinctive(v, key string, env map[string]string) bool {
	if len(v) < 8 || strings.ContainsAny(v, " :=\n") {
		return false
	}
	for k, other := range env {
		if k != key && strings.Contains(other, v) {
			return false
		}
	}
	defaults, err := config.Load(context.Background(), envconfig.MapLookuper(nil), true)
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("config", "config", defaults)
	return err == nil && !strings.Contains(b.String(), v)
}
