package doctor

import "testing"

func TestSubjectCovers(t *testing.T) {
	tests := []struct {
		f, s string
		want bool
	}{
		{"dirsync.trigger.>", "dirsync.trigger.>", true},
		{"dirsync.>", "dirsync.trigger.>", true},
		{"dirsync.*.x", "dirsync.trigger.x", true},
		{"dirsync.trigger.*", "dirsync.trigger.>", false},
		{"dirsync.result", "dirsync.result.completed", false},
		{"$KV.DIRSYNC_RUNS.>", "$KV.DIRSYNC_RUNS.key", true},
	}
	for _, tt := range tests {
		if got := subjectCovers(tt.f, tt.s); got != tt.want {
			t.Errorf("subjectCovers(%q, %q) = %v, want %v", tt.f, tt.s, got, tt.want)
		}
	}
}

// The worker's needs held against a user that may not publish results: that one is missing.
func TestAllowedFindsAMissingPermission(t *testing.T) {
	p := &subjectPermission{Allow: []string{"$JS.>", "$KV.>", "dirsync.dead"}, Deny: []string{"$JS.API.STREAM.DELETE.>"}}
	for _, tt := range []struct {
		subject string
		want    bool
	}{
		{"$KV.DIRSYNC_RUNS.key", true},
		{"dirsync.result.completed", false},
		{"dirsync.dead", true},
		{"$JS.API.STREAM.DELETE.DIRSYNC_TRIGGERS", false},
	} {
		if got := allowed(p, tt.subject); got != tt.want {
			t.Errorf("allowed(%s) = %t, want %t", tt.subject, got, tt.want)
		}
	}
	if !allowed(nil, "anything") {
		t.Error("no permissions set must allow everything")
	}
}
