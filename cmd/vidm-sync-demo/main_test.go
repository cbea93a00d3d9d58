package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDemoReportsEveryTrigger runs the demo end to end, smaller and faster, exactly as make demo
// does: it must exit cleanly and account for every trigger with two syncs per directory at most.
func TestDemoReportsEveryTrigger(t *testing.T) {
	var out, errs strings.Builder
	err := run(context.Background(), []string{"-triggers", "15", "-sync-duration", "300ms", "-window", "50ms", "-timeout", "60s"}, &out, &errs)
	if err != nil {
		t.Fatalf("demo failed: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errs.String())
	}
	m := regexp.MustCompile(`(\d+) triggers published, (\d+) reported, 0 missing; vIDM ran (\d+) syncs`).FindStringSubmatch(out.String())
	if m == nil || m[1] != "60" || m[2] != "60" {
		t.Fatalf("summary line missing or wrong:\n%s", out.String())
	}
	if syncs, _ := strconv.Atoi(m[3]); syncs < 2 || syncs > 4 {
		t.Fatalf("vIDM ran %s syncs for 2 directories in 2 waves, want 2 to 4", m[3])
	}
	if strings.Contains(errs.String(), "ERR") {
		t.Fatalf("errors logged:\n%s", errs.String())
	}
}
