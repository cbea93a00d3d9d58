package vidmsim_test

import (
	"strings"
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// A directory's AD in the config file: read strictly, validated, and written back unchanged.
func TestConfigPrincipals(t *testing.T) {
	good := `{"directories":[{"id":"d","name":"D","domains":["corp.example.com","corp.local"],"outOfScope":["ext-*"],
		"principals":[{"kind":"group","name":"ops","domain":"corp.local","outOfScope":true}]}],"scimMaxCount":5}`
	cfg, err := vidmsim.LoadConfig(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Directories[0]
	if cfg.SCIMMaxCount != 5 || d.OutOfScope[0] != "ext-*" || d.Principals[0] != (vidmsim.ADPrincipal{Kind: vidmsim.KindGroup, Name: "ops", Domain: "corp.local", OutOfScope: true}) {
		t.Fatalf("read %+v", cfg)
	}
	for name, bad := range map[string]string{
		"unknown field": `{"directories":[{"id":"d","name":"D","principals":[{"kind":"group","name":"x","scope":1}]}]}`,
		"bad kind":      `{"directories":[{"id":"d","name":"D","principals":[{"kind":"role","name":"x"}]}]}`,
		"bad domain":    `{"directories":[{"id":"d","name":"D","domains":["a.example"],"principals":[{"kind":"user","name":"x","domain":"b.example"}]}]}`,
		"bad pattern":   `{"directories":[{"id":"d","name":"D","outOfScope":["["]}]}`,
	} {
		if _, err := vidmsim.LoadConfig(strings.NewReader(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
