package chaos

import "testing"

func TestFmtCounts(t *testing.T) {
	if got := fmtCounts(map[string]int{"UNKNOWN_TYPE": 2, "MALFORMED": 5}, "%s=%d", "-"); got != "MALFORMED=5 UNKNOWN_TYPE=2" {
		t.Errorf("string keys: %q", got)
	}
	if got := fmtCounts(map[int]int{503: 1, 200: 9}, "%d×%d", ""); got != "200×9 503×1" {
		t.Errorf("int keys: %q", got)
	}
	if got := fmtCounts(map[string]int{}, "%s=%d", "-"); got != "-" {
		t.Errorf("empty: %q", got)
	}
}
