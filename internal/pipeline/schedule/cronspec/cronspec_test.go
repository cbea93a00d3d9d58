package cronspec_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/schedule/cronspec"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		wantErr string // "" = valid
	}{
		{spec: "0 * * * *"},
		{spec: "*/15 * * * *"},
		{spec: "30 2 * * 1-5"},
		{spec: "@hourly"},
		{spec: "@daily"},
		{spec: "@every 1h"},
		{spec: "@every 1m"},
		{spec: "@every 90m"},
		{spec: "  0 * * * *  "},
		{spec: "0 0 29 2 *"}, // leap days only, still fires
		{spec: "CRON_TZ=Europe/Berlin 0 2 * * *"},
		{spec: "TZ=UTC 0 2 * * *"},
		{spec: "", wantErr: "empty spec"},
		{spec: "   ", wantErr: "empty spec"},
		{spec: "@every 30s", wantErr: `"@every 30s": @every interval 30s is shorter than the minimum 1m0s`},
		{spec: "@every 59s", wantErr: "shorter than the minimum"},
		{spec: "@every 0s", wantErr: "shorter than the minimum"},
		{spec: "@every banana", wantErr: `"@every banana"`},
		{spec: "* * * *", wantErr: `"* * * *"`},
		{spec: "0 * * * * *", wantErr: `"0 * * * * *"`},
		{spec: "61 * * * *", wantErr: `"61 * * * *"`},
		{spec: "*/0 * * * *", wantErr: `"*/0 * * * *"`},
		{spec: "@fortnightly", wantErr: `"@fortnightly"`},
		{spec: "0 0 30 2 *", wantErr: `"0 0 30 2 *" never fires`},
		{spec: "TZ=UTC", wantErr: `"TZ=UTC": a time zone prefix needs a schedule`},
		{spec: "CRON_TZ=Nowhere/Atlantis 0 * * * *", wantErr: `"CRON_TZ=Nowhere/Atlantis 0 * * * *"`},
		{spec: strings.Repeat("1,", 200) + "1 * * * *", wantErr: "longer than 256 characters"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			s, err := cronspec.Parse(tc.spec)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse(%q): %v", tc.spec, err)
				}
				if got, want := s.String(), strings.TrimSpace(tc.spec); got != want {
					t.Errorf("String() = %q, want %q", got, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", tc.spec, s)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%q) error %q does not contain %q", tc.spec, err, tc.wantErr)
			}
		})
	}
}

func TestSpecNext(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	at := time.Date(2026, 1, 15, 10, 15, 30, 0, time.UTC)
	for _, tc := range []struct {
		spec  string
		after time.Time
		want  time.Time
	}{
		{"0 * * * *", at, time.Date(2026, 1, 15, 11, 0, 0, 0, time.UTC)},
		{"*/15 * * * *", at, time.Date(2026, 1, 15, 10, 30, 0, 0, time.UTC)},
		{"0 * * * *", time.Date(2026, 1, 15, 11, 0, 0, 0, time.UTC), time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)},
		// Cron fields are UTC whatever the zone of after.
		{"0 2 * * *", at.In(berlin), time.Date(2026, 1, 16, 2, 0, 0, 0, time.UTC)},
		{"CRON_TZ=Europe/Berlin 0 2 * * *", at, time.Date(2026, 1, 16, 1, 0, 0, 0, time.UTC)},
		// @every is aligned to multiples of the interval, not to after.
		{"@every 1h", at, time.Date(2026, 1, 15, 11, 0, 0, 0, time.UTC)},
		{"@every 1h", at.In(berlin), time.Date(2026, 1, 15, 11, 0, 0, 0, time.UTC)},
		{"@every 1h", time.Date(2026, 1, 15, 11, 0, 0, 0, time.UTC), time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)},
		{"@every 10m", at, time.Date(2026, 1, 15, 10, 20, 0, 0, time.UTC)},
		{"@daily", at, time.Date(2026, 1, 16, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(tc.spec+" after "+tc.after.Format(time.RFC3339), func(t *testing.T) {
			s, err := cronspec.Parse(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			got := s.Next(tc.after)
			if !got.Equal(tc.want) || got.Location() != time.UTC {
				t.Errorf("Next(%v) = %v, want %v (UTC)", tc.after, got, tc.want)
			}
		})
	}
	if got := (cronspec.Spec{}).Next(at); !got.IsZero() {
		t.Errorf("zero Spec: Next = %v, want the zero time", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0 * * * *", "@every 1h", "CRON_TZ=UTC 0 2 * * *", "TZ=", "*/5 1-3 * JAN-MAR MON"} {
		f.Add(s)
	}
	at := time.Date(2026, 1, 15, 10, 15, 30, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := cronspec.Parse(s)
		if err != nil {
			return
		}
		if n := spec.Next(at); !n.IsZero() && !n.After(at) {
			t.Fatalf("Parse(%q).Next(%v) = %v, not after", s, at, n)
		}
	})
}
