package coalesce

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

// store is a fake identity store: ids of the principals it has, those that appear only from the
// n-th lookup on (asynchronous indexing), and a failure to answer.
type store struct {
	mu      sync.Mutex
	ids     map[string]string
	lateIDs map[string]string // visible from the second lookup on
	fail    error
	calls   [][]backend.Principal
}

func (s *store) SyncStatus(context.Context, string) (backend.SyncState, error) {
	return backend.SyncState{}, nil
}
func (s *store) StartSync(context.Context, string, bool) error { return nil }

func (s *store) LookupPrincipals(_ context.Context, _ backend.Directory, ps []backend.Principal) ([]backend.Found, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, ps)
	out := make([]backend.Found, len(ps))
	for i, p := range ps {
		switch id, late := s.ids[p.Name], s.lateIDs[p.Name]; {
		case s.fail != nil:
			out[i].Visibility = backend.Unknown
		case id != "":
			out[i] = backend.Found{Visibility: backend.Visible, ID: id}
		case late != "" && len(s.calls) > 1:
			out[i] = backend.Found{Visibility: backend.Visible, ID: late}
		default:
			out[i].Visibility = backend.NotFound
		}
	}
	return out, s.fail
}

// noLookup is a backend without a lookup (VCF's delegated directories).
type noLookup struct{}

func (noLookup) SyncStatus(context.Context, string) (backend.SyncState, error) {
	return backend.SyncState{}, nil
}
func (noLookup) StartSync(context.Context, string, bool) error { return nil }

func TestReadinessCheck(t *testing.T) {
	page := func(names ...string) []dirsync.Trigger {
		var out []dirsync.Trigger
		for i, n := range names {
			out = append(out, dirsync.Trigger{ID: string(rune('a' + i)), Group: n})
		}
		return append(out, dirsync.Trigger{ID: "req", Type: contract.TypeSyncRequested})
	}
	tests := []struct {
		name      string
		backend   Backend
		status    string
		page      []dirsync.Trigger
		want      []dirsync.Answer // per named trigger; the sync request has none
		wantIDs   []string
		wantCalls int
	}{
		{"visible, with the store's id; a repeated name is looked up once", &store{ids: map[string]string{"g1": "id-1"}},
			contract.StatusCompleted, page("g1", "g1"), []dirsync.Answer{dirsync.AnswerVisible, dirsync.AnswerVisible}, []string{"id-1", "id-1"}, 1},
		{"not found, then found by the one re-check", &store{lateIDs: map[string]string{"g1": "id-late"}},
			contract.StatusCompleted, page("g1"), []dirsync.Answer{dirsync.AnswerVisible}, []string{"id-late"}, 2},
		{"not found after the re-check", &store{ids: map[string]string{"g1": "id-1"}},
			contract.StatusCompleted, page("g1", "out"), []dirsync.Answer{dirsync.AnswerVisible, dirsync.AnswerNotVisible}, []string{"id-1", ""}, 2},
		{"the lookup fails: unknown, and the result is not held back", &store{fail: errors.New("503")},
			contract.StatusCompleted, page("g1"), []dirsync.Answer{dirsync.AnswerUnknown}, []string{""}, 1},
		{"an id the result could not carry", &store{ids: map[string]string{"g1": "bad\nid"}},
			contract.StatusCompleted, page("g1"), []dirsync.Answer{dirsync.AnswerUnknown}, []string{""}, 1},
		{"no lookup: not checked, said so", &noLookup{}, contract.StatusDelegated, page("g1"),
			[]dirsync.Answer{dirsync.AnswerNotChecked}, []string{""}, 0},
		{"a failed sync is not checked", &store{}, contract.StatusFailed, page("g1"), nil, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
			var mu sync.Mutex
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); now = now.Add(10 * time.Millisecond); return now }
			e := &Engine{cfg: Config{Now: clock}.withDefaults(), log: slog.New(slog.DiscardHandler)}
			run := &dirsync.Run{RunID: "r1", DirectoryID: "d1", Outcome: &dirsync.Outcome{Status: tt.status, RecordedAt: clock()}}
			tn := Tenant{Backend: tt.backend, Readiness: true, RecheckAfter: 30 * time.Millisecond}
			p := tt.page
			e.checkReadiness(t.Context(), tn, run, p)
			if p[len(p)-1].Ready != nil {
				t.Errorf("the sync request names no principal, but got %+v", p[len(p)-1].Ready)
			}
			for i, want := range tt.want {
				r := p[i].Ready
				if r == nil || r.Answer != want || r.PrincipalID != tt.wantIDs[i] || (want != dirsync.AnswerVisible && r.Hint == "") {
					t.Errorf("trigger %d: %+v, want %s with id %q (and a hint unless visible)", i, r, want, tt.wantIDs[i])
				}
			}
			if tt.want == nil && p[0].Ready != nil {
				t.Errorf("checked %+v, want not checked", p[0].Ready)
			}
			if s, ok := tt.backend.(*store); ok && len(s.calls) != tt.wantCalls {
				t.Errorf("%d lookups, want %d", len(s.calls), tt.wantCalls)
			}
		})
	}
}

// A run covering more triggers than ReadinessMax looks up only the first ones, over its pages.
func TestReadinessCheckKeepsToItsBudget(t *testing.T) {
	s := &store{ids: map[string]string{"g1": "1", "g2": "2", "g3": "3"}}
	e := &Engine{cfg: Config{ReadinessMax: 3}.withDefaults(), log: slog.New(slog.DiscardHandler)}
	run := &dirsync.Run{RunID: "r1", DirectoryID: "d1", Outcome: &dirsync.Outcome{Status: contract.StatusCompleted, RecordedAt: time.Now()}}
	tn := Tenant{Backend: s, Readiness: true, RecheckAfter: time.Millisecond}
	var answers []dirsync.Answer
	for _, names := range [][]string{{"g1", "g2"}, {"g3", "g1"}, {"g2"}} {
		var page []dirsync.Trigger
		for _, n := range names {
			page = append(page, dirsync.Trigger{ID: n, Group: n})
		}
		e.checkReadiness(t.Context(), tn, run, page)
		run.Readiness = tally(run.Readiness, page)
		for _, tr := range page {
			answers = append(answers, tr.Ready.Answer)
		}
	}
	want := []dirsync.Answer{dirsync.AnswerVisible, dirsync.AnswerVisible, dirsync.AnswerVisible, dirsync.AnswerNotChecked, dirsync.AnswerNotChecked}
	if !slices.Equal(answers, want) || len(s.calls) != 2 {
		t.Errorf("answers %v after %d lookups, want %v after 2", answers, len(s.calls), want)
	}
}

func TestHintsFitTheirReserve(t *testing.T) {
	for _, h := range []string{HintNotVisible, HintUnknown, HintUnsupported, HintBadID, HintOverBudget} {
		if len(h) > dirsync.MaxHint {
			t.Errorf("hint of %d bytes, more than %d: %q", len(h), dirsync.MaxHint, h)
		}
	}
}
