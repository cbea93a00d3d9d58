package safetext_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/safetext"
)

func TestClean(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 10, "plain"},
		{"a\r\nb\x00c\x7f", 20, "a??b?c?"},
		{"bad\xffbyte", 20, "bad?byte"},
		{"keeps \uFFFD literal", 30, "keeps \uFFFD literal"},
		{"abcdefghij", 8, "abcde…"},
		{"ééééé", 7, "éé…"},
	}
	for _, tt := range tests {
		got := safetext.Clean(tt.in, tt.max)
		if got != tt.want || len(got) > tt.max || !utf8.ValidString(got) {
			t.Errorf("Clean(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func FuzzClean(f *testing.F) {
	f.Add("a\r\nb", 5)
	f.Add(strings.Repeat("é", 10), 7)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 4 || max > 1<<16 {
			return
		}
		got := safetext.Clean(s, max)
		if len(got) > max || !utf8.ValidString(got) || strings.ContainsFunc(got, safetext.IsControl) {
			t.Fatalf("Clean(%q, %d) = %q", s, max, got)
		}
	})
}
