package trigger_test

import (
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
)

func TestSafeguardGrants(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	g := trigger.NewGrants("an-admin-token-of-at-least-32-characters", clock)
	v := g.Sign("ev-1", "default", "Corp AD")
	other := trigger.NewGrants("another-admin-token-of-32-characters!", clock)
	for _, tc := range []struct {
		name                   string
		g                      *trigger.Grants
		value, id, tenant, dir string
		age                    time.Duration
		want                   bool
	}{
		{"as signed", g, v, "ev-1", "default", "Corp AD", 0, true},
		{"another event", g, v, "ev-2", "default", "Corp AD", 0, false},
		{"another tenant", g, v, "ev-1", "lab", "Corp AD", 0, false},
		{"another directory", g, v, "ev-1", "default", "Lab AD", 0, false},
		{"moved between fields", g, v, "ev-1default", "", "Corp AD", 0, false},
		{"another key", other, v, "ev-1", "default", "Corp AD", 0, false},
		{"no key", nil, v, "ev-1", "default", "Corp AD", 0, false},
		{"too old", g, v, "ev-1", "default", "Corp AD", trigger.GrantMaxAge + time.Second, false},
		{"garbage", g, "x", "ev-1", "default", "Corp AD", 0, false},
		{"empty", g, "", "ev-1", "default", "Corp AD", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now = time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC).Add(tc.age)
			if got := tc.g.Valid(tc.value, tc.id, tc.tenant, tc.dir); got != tc.want {
				t.Fatalf("Valid = %v, want %v", got, tc.want)
			}
		})
	}
	if trigger.NewGrants("", nil) != nil {
		t.Fatal("grants without a key")
	}
}
