package main

import (
	"bytes"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/systems"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// The credentials of the example configurations, as the start-up log and docs/vidm-api.md point
// users to them. Public examples, not secrets.
const (
	exampleClientID     = "vidm-sync-worker"
	exampleClientSecret = "example-client-secret"
	exampleUser         = "sync-admin"
	examplePassword     = "example-password"
	exampleVCFUser      = "administrator@vsphere.local"
)

func TestPrintConfigPerFlavor(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		want  vidmsim.Config
		check func(t *testing.T, cfg vidmsim.Config)
	}{
		{name: "no flag: vidmsim's example as it is", want: vidmsim.ExampleConfig()},
		{name: "vcf: vidmsim's VCF example", args: []string{"-flavor", "vcf"}, want: vidmsim.ExampleVCFConfig()},
		{name: "vcf from env", env: map[string]string{"VIDM_SIM_FLAVOR": "vcf"}, want: vidmsim.ExampleVCFConfig()},
		{
			name: "vra-cloud: a refresh token, no vIDM credentials", args: []string{"-flavor", "vra-cloud"},
			want: exampleConfig(vidmsim.FlavorVRACloud),
			check: func(t *testing.T, cfg vidmsim.Config) {
				if cfg.Flavor != vidmsim.FlavorVRACloud || !reflect.DeepEqual(cfg.RefreshTokens, []string{exampleRefreshToken}) ||
					cfg.Clients != nil || cfg.Users != nil {
					t.Errorf("config = %+v", cfg)
				}
			},
		},
		{
			name: "vra7: the tenant and users, no OAuth clients", args: []string{"-flavor", "vra7"},
			want: exampleConfig(vidmsim.FlavorVRA7),
			check: func(t *testing.T, cfg vidmsim.Config) {
				if cfg.Flavor != vidmsim.FlavorVRA7 || cfg.Tenant != "vsphere.local" || len(cfg.Users) == 0 || cfg.Clients != nil {
					t.Errorf("config = %+v", cfg)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout bytes.Buffer
			args := append([]string{"-print-config"}, tc.args...)
			if err := run(t.Context(), args, func(k string) string { return tc.env[k] }, &stdout, io.Discard); err != nil {
				t.Fatalf("run: %v", err)
			}
			cfg, err := vidmsim.LoadConfig(&stdout)
			if err != nil {
				t.Fatalf("LoadConfig of the printed config: %v", err)
			}
			if !reflect.DeepEqual(cfg, tc.want) {
				t.Errorf("printed config = %+v, want %+v", cfg, tc.want)
			}
			if tc.check != nil {
				tc.check(t, cfg)
			}
		})
	}
}

func TestFlavorFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"unknown flavor", []string{"-flavor", "vra8"}, nil},
		{"flavor in the wrong case", []string{"-flavor", "VCF"}, nil},
		{"unknown flavor from env", nil, map[string]string{"VIDM_SIM_FLAVOR": "nsx"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(t.Context(), tc.args, func(k string) string { return tc.env[k] }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "want vidm, vra-cloud, vra7 or vcf") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// TestRunFlavors serves each flavor and lets the worker's own client (internal/identity/systems) log in with
// the credentials the start-up log names and list the directories: the example credentials must
// work as printed, and the log must say where to use them without giving any secret away.
func TestRunFlavors(t *testing.T) {
	vidmCfg := vidmsim.ExampleConfig()
	vidmCfg.Flavor = vidmsim.FlavorVIDM // a file naming its flavor, which -flavor then overrides
	vra7File := vidmsim.ExampleConfig()
	vra7File.Flavor = vidmsim.FlavorVRA7 // no tenant: the default one
	vidmFile, vra7Path := writeConfig(t, vidmCfg), writeConfig(t, vra7File)

	vidmDirs := []string{"dir-corp-ad", "dir-emea-ad", "dir-lab-iwa", "dir-system"}
	vra7Dirs := []string{"corp.example.com", "emea.example.com", "lab.example.com"} // dir-system has no domain
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		client   httpcore.Config // BaseURL (and TokenURL) are filled in
		wantDirs []string
		wantLog  map[string]any // fields of the start-up record
		wantLogs []string       // further lines
	}{
		{
			name:     "default: vIDM with OAuth",
			client:   httpcore.Config{Kind: backend.KindVIDM, ClientID: exampleClientID, ClientSecret: exampleClientSecret},
			wantDirs: vidmDirs,
			wantLog: map[string]any{"flavor": "vidm", "oauth_path": pathOAuthToken, "login_path": pathSystemLogin,
				"oauth_clients": []any{exampleClientID}, "users": []any{exampleUser},
				"example_credentials": "vidm-sim -print-config -flavor vidm"},
		},
		{
			name: "vIDM with the system login",
			args: []string{"-flavor", "vidm"},
			client: httpcore.Config{Kind: backend.KindVIDM, AuthMode: httpcore.AuthSystem,
				Username: exampleUser, Password: examplePassword},
			wantDirs: vidmDirs,
			wantLog:  map[string]any{"flavor": "vidm"},
		},
		{
			name:     "vra-cloud: the example refresh token",
			args:     []string{"-flavor", "vra-cloud"},
			client:   httpcore.Config{Kind: backend.KindVRACloud, RefreshToken: exampleRefreshToken},
			wantDirs: vidmDirs,
			wantLog: map[string]any{"flavor": "vra-cloud", "refresh_tokens": float64(1), "directories_path": pathDirectories,
				"example_credentials": "vidm-sim -print-config -flavor vra-cloud"},
		},
		{
			name:     "vra7: a user of the example in tenant vsphere.local",
			args:     []string{"-flavor", "vra7"},
			client:   httpcore.Config{Kind: backend.KindVRA7, Username: exampleUser, Password: examplePassword, Tenant: "vsphere.local"},
			wantDirs: vra7Dirs,
			wantLog: map[string]any{"flavor": "vra7", "login_path": pathVRA7Tokens, "tenant": "vsphere.local",
				"users": []any{exampleUser}, "directories_path": "/identity/api/tenants/vsphere.local/directories",
				"directory_domains": []any{"corp.example.com", "emea.example.com", "lab.example.com"}},
		},
		{
			name:   "vcf: vidmsim's VCF example",
			args:   []string{"-flavor", "vcf"},
			client: httpcore.Config{Kind: backend.KindVCF, Username: exampleVCFUser, Password: examplePassword},
			// The client leaves out the system domains; ids are <escaped provider id>/<escaped source name>.
			wantDirs: []string{
				"3262279b-09b0-44eb-a3be-f4bded4f0851/Corp%20AD", "3262279b-09b0-44eb-a3be-f4bded4f0851/Lab%20LDAP",
				"82ce7b07-f878-41af-9ac3-e343bcb347dc/Corp%20ADFS", "159498c4-6e0e-4757-ae4b-dcb6aaa93216/OktaDirectory",
				"aadd13f5-c05e-491b-9312-23e743175904/entra_dir",
			},
			wantLog: map[string]any{"flavor": "vcf", "login_path": pathVCFTokens, "users": []any{exampleVCFUser},
				"providers_path": pathVCFProviders},
		},
		{
			name:     "flavor from env",
			env:      map[string]string{"VIDM_SIM_FLAVOR": "vra7"},
			client:   httpcore.Config{Kind: backend.KindVRA7, Username: exampleUser, Password: examplePassword, Tenant: "vsphere.local"},
			wantDirs: vra7Dirs,
			wantLog:  map[string]any{"flavor": "vra7"},
		},
		{
			name:     "the config file's flavor, its tenant defaulted",
			args:     []string{"-config", vra7Path},
			client:   httpcore.Config{Kind: backend.KindVRA7, Username: exampleUser, Password: examplePassword, Tenant: "vsphere.local"},
			wantDirs: vra7Dirs,
			wantLog:  map[string]any{"flavor": "vra7", "tenant": "vsphere.local"},
		},
		{
			name:     "-flavor overrides the config file's",
			args:     []string{"-config", vidmFile, "-flavor", "vra7"},
			client:   httpcore.Config{Kind: backend.KindVRA7, Username: exampleUser, Password: examplePassword, Tenant: "vsphere.local"},
			wantDirs: vra7Dirs,
			wantLog:  map[string]any{"flavor": "vra7"},
			wantLogs: []string{"-flavor overrides the config file's flavor"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := startPlain(t, tc.env, tc.args...)
			cfg := tc.client
			cfg.BaseURL = p.base
			if cfg.Kind == backend.KindVRACloud {
				cfg.TokenURL = p.base + pathCSPAuthorize
			}
			cfg.Retry = httpcore.RetryPolicy{MaxAttempts: 1} // a failure here is the answer, not weather
			c, err := systems.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			dirs, err := c.Directories(t.Context())
			if err != nil {
				t.Fatalf("Directories: %v", err)
			}
			var ids []string
			for _, d := range dirs {
				ids = append(ids, d.ID)
			}
			if !slices.Equal(ids, tc.wantDirs) {
				t.Errorf("directories = %q, want %q", ids, tc.wantDirs)
			}

			var st struct {
				Logins int `json:"logins"`
			}
			getJSON(t, p.client, p.base+"/_sim/stats", &st)
			if st.Logins != 1 {
				t.Errorf("stats logins = %d, want 1", st.Logins)
			}

			rec := p.startRecord(t)
			for k, want := range tc.wantLog {
				if !reflect.DeepEqual(rec[k], want) {
					t.Errorf("start-up log %s = %#v, want %#v", k, rec[k], want)
				}
			}
			if _, ok := rec["example_credentials"]; ok != !slices.Contains(tc.args, "-config") {
				t.Errorf("start-up log example_credentials = %v, want it only without -config", rec["example_credentials"])
			}
			logs := p.logs.String()
			for _, want := range tc.wantLogs {
				if !strings.Contains(logs, want) {
					t.Errorf("logs lack %q:\n%s", want, logs)
				}
			}
			for _, secret := range []string{exampleClientSecret, examplePassword, exampleRefreshToken} {
				if strings.Contains(logs, secret) {
					t.Errorf("logs contain the secret %q", secret)
				}
			}
		})
	}
}

// TestRunFlavorTokenURL checks the token_url the vra-cloud start-up log names: it is what the
// worker's token URL must be set to.
func TestRunFlavorTokenURL(t *testing.T) {
	p := startPlain(t, nil, "-flavor", "vra-cloud")
	rec := p.startRecord(t)
	if got, want := rec["token_url"], p.base+pathCSPAuthorize; got != want {
		t.Errorf("token_url = %v, want %v", got, want)
	}
}

// TestStatsPerFlavor: /_sim/stats counts the endpoints of the flavor served.
func TestStatsPerFlavor(t *testing.T) {
	tests := []struct {
		flavor vidmsim.Flavor
		want   []string
	}{
		{vidmsim.FlavorVIDM, []string{"oauth-token", "system-login", "directories", "sync-start", "sync-status", "scim-groups", "scim-users"}},
		{vidmsim.FlavorVRACloud, []string{"csp-authorize", "directories", "sync-start", "sync-status", "scim-groups", "scim-users"}},
		{vidmsim.FlavorVRA7, []string{"vra7-login", "vra7-directories", "vra7-sync-start", "vra7-sync-status", "vra7-group", "vra7-principal"}},
		{vidmsim.FlavorVCF, []string{"vcf-tokens", "vcf-identity-providers", "vcf-identity-provider"}},
	}
	for _, tc := range tests {
		t.Run(string(tc.flavor), func(t *testing.T) {
			p := startPlain(t, nil, "-flavor", string(tc.flavor))
			var st struct {
				Requests         map[string]int            `json:"requests"`
				RequestsByStatus map[string]map[string]int `json:"requestsByStatus"`
			}
			getJSON(t, p.client, p.base+"/_sim/stats", &st)
			var got []string
			for ep := range st.Requests {
				got = append(got, ep)
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(got, want) {
				t.Errorf("stats endpoints = %q, want %q", got, want)
			}
		})
	}
}
