package dirsync_test

import (
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

func TestTraceparentRoundTrip(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	sc := dirsync.SpanContext(tp)
	if !sc.IsValid() || !sc.IsRemote() || !sc.IsSampled() || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() != "00f067aa0ba902b7" {
		t.Fatalf("SpanContext(%q) = %+v", tp, sc)
	}
	if got := dirsync.Traceparent(sc); got != tp {
		t.Fatalf("Traceparent = %q, want %q", got, tp)
	}
	for _, bad := range []string{"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "garbage"} {
		if sc := dirsync.SpanContext(bad); sc.IsValid() {
			t.Errorf("SpanContext(%q) is valid", bad)
		}
	}
	if got := dirsync.Traceparent(dirsync.SpanContext("")); got != "" {
		t.Fatalf("Traceparent of nothing = %q", got)
	}
}

// A run links to its triggers' intake spans, or to their publishers' spans for triggers accepted
// while tracing was off; its spans' parent is its first traced trigger's.
func TestLinkTargetsAndParent(t *testing.T) {
	const pub, intake = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01"
	tests := []struct {
		tr   dirsync.Trigger
		want string
	}{
		{dirsync.Trigger{Traceparent: pub, IntakeSpan: intake}, intake},
		{dirsync.Trigger{Traceparent: pub}, pub},
		{dirsync.Trigger{IntakeSpan: intake}, intake},
		{dirsync.Trigger{}, ""},
	}
	for _, tt := range tests {
		if got := dirsync.Traceparent(tt.tr.LinkTarget()); got != tt.want {
			t.Errorf("LinkTarget of %+v = %q, want %q", tt.tr, got, tt.want)
		}
		r := dirsync.Run{Traceparent: tt.tr.Traceparent, IntakeSpan: tt.tr.IntakeSpan}
		if got := dirsync.Traceparent(r.Parent()); got != tt.want {
			t.Errorf("Parent of %+v = %q, want %q", r, got, tt.want)
		}
	}
}
