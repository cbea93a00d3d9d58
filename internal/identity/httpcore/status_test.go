package httpcore_test

import (
	"errors"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
)

func TestParseSyncState(t *testing.T) {
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		body string
		want httpcore.SyncState
	}{
		{
			name: "simulator shape",
			body: `{"directoryId":"d1","status":"RUNNING","syncStartDate":1795428000000,"syncEndDate":null,"progressPercentage":40,"message":"","connector":"connector-1"}`,
			want: httpcore.SyncState{Status: httpcore.StatusRunning, Raw: "RUNNING", StartedAt: start, Progress: 40, Connector: "connector-1"},
		},
		{
			name: "vRA identity store nested syncStatus",
			body: `{"syncStatus":{"status":"FAILED","message":"LDAP bind failed"}}`,
			want: httpcore.SyncState{Status: httpcore.StatusFailed, Raw: "FAILED", Message: "LDAP bind failed", Progress: -1},
		},
		{
			name: "lower-case state with RFC 3339 dates",
			body: `{"state":"completed","startTime":"2026-11-23T10:00:00Z","endTime":"2026-11-23T10:01:00Z"}`,
			want: httpcore.SyncState{Status: httpcore.StatusCompleted, Raw: "completed", StartedAt: start, FinishedAt: start.Add(time.Minute), Progress: -1},
		},
		{
			name: "task model progressStatus with error details and seconds",
			body: `{"progressStatus":"IN_PROGRESS","startDate":1795428000,"progressPercentage":10,"errorDetails":[{"label":"INTERNAL_ERROR","description":"An internal error occurred"}]}`,
			want: httpcore.SyncState{Status: httpcore.StatusRunning, Raw: "IN_PROGRESS", StartedAt: start, Progress: 10, Message: "An internal error occurred"},
		},
		{
			name: "undefined when no sync has run",
			body: `{"directoryId":"d1","status":"UNDEFINED"}`,
			want: httpcore.SyncState{Status: httpcore.StatusUndefined, Raw: "UNDEFINED", Progress: -1},
		},
		{
			name: "unknown status is kept raw",
			body: `{"Status":"WAITING_FOR_CONNECTOR","extra":{"deep":[1,2,3]}}`,
			want: httpcore.SyncState{Status: httpcore.StatusUnknown, Raw: "WAITING_FOR_CONNECTOR", Progress: -1},
		},
		{
			name: "synonyms of success",
			body: `{"syncState":"Succeeded"}`,
			want: httpcore.SyncState{Status: httpcore.StatusCompleted, Raw: "Succeeded", Progress: -1},
		},
		{
			name: "absurd dates and percentages are ignored",
			body: `{"status":"RUNNING","syncStartDate":-5,"progressPercentage":250}`,
			want: httpcore.SyncState{Status: httpcore.StatusRunning, Raw: "RUNNING", Progress: -1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := httpcore.ParseSyncState([]byte(tt.body))
			if err != nil {
				t.Fatalf("ParseSyncState: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseSyncStateRejects(t *testing.T) {
	for _, body := range []string{
		"",
		"   ",
		"<html><body>Service Unavailable</body></html>",
		`["RUNNING"]`,
		`null`,
		`{"directoryId":"d1"}`,
		`{"status":42}`,
		`{"status":"RUNNING"`,
	} {
		_, err := httpcore.ParseSyncState([]byte(body))
		if !errors.Is(err, httpcore.ErrInvalidResponse) {
			t.Errorf("ParseSyncState(%q) error = %v, want ErrInvalidResponse", body, err)
		}
	}
}

func TestStatusTerminal(t *testing.T) {
	for s, want := range map[httpcore.Status]bool{
		httpcore.StatusRunning: false, httpcore.StatusCompleted: true, httpcore.StatusFailed: true,
		httpcore.StatusUndefined: false, httpcore.StatusUnknown: false,
	} {
		if s.Terminal() != want {
			t.Errorf("%s.Terminal() = %v, want %v", s, !want, want)
		}
	}
}

// FuzzParseSyncState: any body yields either a known status with bounded, valid UTF-8 text, or an
// ErrInvalidResponse; never a panic.
func FuzzParseSyncState(f *testing.F) {
	for _, seed := range []string{
		`{"status":"RUNNING","syncStartDate":1795428000000,"progressPercentage":40}`,
		`{"syncStatus":{"status":"FAILED","message":"x"}}`,
		`{"state":"completed","startTime":"2026-11-23T10:00:00Z"}`,
		`{"progressStatus":"IN_PROGRESS","errorDetails":[{"description":"d"}]}`,
		`{"status":"\xff\xfe"}`,
		`{"status":"COMPLETED","connector":"c2","attempts":[{"connector":"c1","status":"FAILED","message":"connector c1 unavailable"},{"connector":"c2","status":"COMPLETED"}]}`,
		`{"status":"RUNNING","syncLog":[{"connectorHost":"h1","status":"Error","errorDetails":[{"description":"d"}]},"c2",7]}`,
		`{"status":"FAILED","connector":{"name":"\xff"},"connectorHistory":[{"name":{"host":"x"},"status":["FAILED"]}]}`,
		`<html></html>`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := httpcore.ParseSyncState(body)
		if err != nil {
			if !errors.Is(err, httpcore.ErrInvalidResponse) {
				t.Fatalf("error %v does not wrap ErrInvalidResponse", err)
			}
			return
		}
		switch st.Status {
		case httpcore.StatusRunning, httpcore.StatusCompleted, httpcore.StatusFailed, httpcore.StatusUndefined, httpcore.StatusUnknown:
		default:
			t.Fatalf("status %q is not one of the known values", st.Status)
		}
		texts := []string{st.Raw, st.Message, st.Connector}
		if len(st.Attempts) > 16 {
			t.Fatalf("%d attempts kept, want at most 16", len(st.Attempts))
		}
		for _, a := range st.Attempts {
			if a.Connector == "" {
				t.Fatalf("an attempt without a connector was kept: %+v", a)
			}
			texts = append(texts, a.Connector, a.Status, a.Message)
		}
		for _, s := range texts {
			if !utf8.ValidString(s) || len(s) > 600 {
				t.Fatalf("text %q is not bounded valid UTF-8", s)
			}
		}
		if st.Progress < -1 || st.Progress > 100 {
			t.Fatalf("progress %d out of range", st.Progress)
		}
	})
}
