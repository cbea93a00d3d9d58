package main

import (
	"context"
	"os"
	"path/filepath"
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
	if !strings.Contains(out.String(), "readiness: 60 groups visible in vIDM with their ids, 0 not visible") {
		t.Fatalf("readiness line missing or wrong:\n%s", out.String())
	}
	if strings.Contains(errs.String(), "ERR") {
		t.Fatalf("errors logged:\n%s", errs.String())
	}
}

// TestTenantsDemo runs the -tenants demo as make demo-tenants does, its files kept in a test
// directory so that the secrets it generated can be looked for in what it printed.
func TestTenantsDemo(t *testing.T) {
	dir := t.TempDir()
	var out, errs strings.Builder
	err := run(context.Background(), []string{"-tenants", "-tenants-dir", dir}, &out, &errs)
	if err != nil {
		t.Fatalf("demo failed: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errs.String())
	}
	o := out.String()
	m := regexp.MustCompile(`(\d+) triggers published, (\d+) reported, 0 missing; (\d+) syncs across 4 backends \(a per-trigger script would have run (\d+)\)`).FindStringSubmatch(o)
	if m == nil || m[1] != "92" || m[2] != "92" || m[4] != "92" {
		t.Fatalf("summary line missing or wrong:\n%s", o)
	}
	// Six directories sync; a burst costs each at most its first sync and one follow-up.
	if syncs, _ := strconv.Atoi(m[3]); syncs < 6 || syncs > 12 {
		t.Fatalf("%s syncs for six syncing directories, want 6 to 12", m[3])
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^  corp \(default tenant\)\s+vidm\s+https://127\.0\.0\.1:\d+`),
		regexp.MustCompile(`(?m)^  cloud\s+vra-cloud\s+https://127\.0\.0\.1:\d+`),
		regexp.MustCompile(`(?m)^  lab\s+vra7\s+https://127\.0\.0\.1:\d+`),
		regexp.MustCompile(`(?m)^  vcf\s+vcf\s+https://127\.0\.0\.1:\d+`),
		regexp.MustCompile(`(?m)^TENANTS_FILE=` + regexp.QuoteMeta(filepath.Join(dir, "tenants.yaml")) + `$`),
		regexp.MustCompile(`(?m)^\s+clientSecretFile: secrets/corp-client-secret$`),
		regexp.MustCompile(`(?m)^  vidm\.directory\.sync\.completed\s+corp\s+Corp AD\s+COMPLETED\s+15\s+connector-a\.corp\.example\.com FAILED → connector-b\.corp\.example\.com COMPLETED$`),
		regexp.MustCompile(`(?m)^  vidm\.directory\.sync\.completed\s+corp\s+EMEA AD\s+COMPLETED\s`),
		regexp.MustCompile(`(?m)^  vidm\.directory\.sync\.completed\s+cloud\s+Cloud AD\s+COMPLETED\s`),
		regexp.MustCompile(`(?m)^  vidm\.directory\.sync\.completed\s+lab\s+Lab AD\s+COMPLETED\s`),
		regexp.MustCompile(`(?m)^  vidm\.directory\.sync\.completed\s+vcf\s+OktaDirectory\s+DELEGATED\s+1\s+SCIM Okta, token expires `),
		regexp.MustCompile(`(?m)^  vidm\.directory\.sync\.completed\s+vcf\s+Mgmt AD\s+DELEGATED\s+1\s+LDAP `),
		regexp.MustCompile(`(?m)^  tenant vcf, provider Okta: expires .* warns 168h before`),
	} {
		if !want.MatchString(o) {
			t.Errorf("output lacks %s", want)
		}
	}
	if t.Failed() {
		t.Fatalf("stdout:\n%s", o)
	}
	if strings.Contains(errs.String(), "ERR") {
		t.Fatalf("errors logged:\n%s", errs.String())
	}

	secrets, err := filepath.Glob(filepath.Join(dir, "secrets", "*"))
	if err != nil || len(secrets) != 4 {
		t.Fatalf("secret files %v (%v), want one per tenant", secrets, err)
	}
	for _, f := range secrets {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if v := strings.TrimSpace(string(b)); v == "" || strings.Contains(o+errs.String(), v) {
			t.Fatalf("the secret of %s is empty or was printed", filepath.Base(f))
		}
	}
}
