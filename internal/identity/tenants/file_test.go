package tenants_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/tenants"
)

var defaults = tenants.Defaults{
	MaxConcurrentSyncs:     2,
	RequestTimeout:         30 * time.Second,
	Poll:                   tenants.Poll{Initial: time.Second, Max: 15 * time.Second, Deadline: time.Hour, ConfirmAfter: 20 * time.Second},
	Readiness:              tenants.Readiness{Check: true, RecheckAfter: 5 * time.Second},
	SyncClientTokenWarning: 168 * time.Hour,
	Reserved:               []string{"/cfg/nats-password"},
}

// The secret values of testdata/secrets, as read (trimmed).
var exampleSecrets = []string{"corp-client-secret-Zq81", "lab-password-Kx42", "cloud-refresh-token-Wv77", "vcf-password-Jm09"}

func TestLoadExample(t *testing.T) {
	f, err := tenants.Load("testdata/tenants.yaml", defaults)
	if err != nil {
		t.Fatal(err)
	}
	td := "testdata"
	want := tenants.File{
		DefaultTenant: "corp",
		Tenants: map[string]tenants.Tenant{
			"corp": {
				Name: "corp", Backend: tenants.KindVIDM, URL: "https://vidm.corp.example.com",
				Auth: tenants.Auth{Mode: tenants.AuthOAuth, ClientID: "vidm-sync-worker", ClientSecret: "corp-client-secret-Zq81",
					ClientSecretFile: filepath.Join(td, "secrets", "corp-client-secret")},
				TLS:                tenants.TLS{CAFile: filepath.Join(td, "ca", "corp-ca.pem")},
				Directories:        []string{"Corp AD", "emea.corp.example.com"},
				MaxConcurrentSyncs: 4,
				RequestTimeout:     30 * time.Second,
				Poll:               tenants.Poll{Initial: 2 * time.Second, Max: 15 * time.Second, Deadline: 30 * time.Minute, ConfirmAfter: 20 * time.Second},
				Readiness:          defaults.Readiness,
				Schedules:          []tenants.Schedule{{Directory: "Corp AD", Cron: "0 * * * *"}},
			},
			"lab": {
				Name: "lab", Backend: tenants.KindVRA7, URL: "https://vra7.lab.example.com",
				Auth: tenants.Auth{Mode: tenants.AuthPassword, Username: "svc-dirsync", Password: "lab-password-Kx42",
					PasswordFile: filepath.Join(td, "secrets", "lab-password"), VRATenant: "vsphere.local"},
				MaxConcurrentSyncs: 2,
				RequestTimeout:     30 * time.Second,
				Poll:               defaults.Poll,
				Readiness:          defaults.Readiness,
			},
			"cloud": {
				Name: "cloud", Backend: tenants.KindVRACloud, URL: "https://api.mgmt.cloud.vmware.com",
				Auth: tenants.Auth{Mode: tenants.AuthRefreshToken, RefreshToken: "cloud-refresh-token-Wv77",
					RefreshTokenFile: filepath.Join(td, "secrets", "cloud-refresh-token")},
				MaxConcurrentSyncs: 2,
				RequestTimeout:     30 * time.Second,
				Poll:               defaults.Poll,
				Readiness:          defaults.Readiness,
			},
			"vcf": {
				Name: "vcf", Backend: tenants.KindVCF, URL: "https://sddc-manager.example.com",
				Auth: tenants.Auth{Mode: tenants.AuthPassword, Username: "administrator@vsphere.local", Password: "vcf-password-Jm09",
					PasswordFile: filepath.Join(td, "secrets", "vcf-password")},
				MaxConcurrentSyncs:     2,
				RequestTimeout:         30 * time.Second,
				Poll:                   defaults.Poll,
				Readiness:              defaults.Readiness,
				SyncClientTokenWarning: 336 * time.Hour,
			},
		},
	}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("Load:\n got %#v\nwant %#v", f, want) // %#v of Auth is redacted; compare fields by hand if this fails
	}
	if got := f.Names(); !slices.Equal(got, []string{"cloud", "corp", "lab", "vcf"}) {
		t.Errorf("Names() = %v", got)
	}
	if tn, ok := f.Tenant(""); !ok || tn.Name != "corp" {
		t.Errorf(`Tenant("") = %v, %v; want corp`, tn.Name, ok)
	}
	if tn, ok := f.Tenant("lab"); !ok || tn.Name != "lab" {
		t.Errorf(`Tenant("lab") = %v, %v`, tn.Name, ok)
	}
	if _, ok := f.Tenant("nope"); ok {
		t.Error(`Tenant("nope") found`)
	}
}

// Relative references resolve against the file's directory, not the working directory; absolute
// ones stay as they are (a secret file's inside the secrets directory).
func TestLoadResolvesRelativePaths(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "conf")
	abs := filepath.Join(sub, "mounted", "password")
	for path, content := range map[string]string{
		filepath.Join(sub, "secrets", "secret"): "s3cret\n",
		filepath.Join(sub, "ca.pem"):            "-----BEGIN CERTIFICATE-----\n",
		abs:                                     "pw\n",
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	yaml := fmt.Sprintf(`
tenants:
  corp: {backend: vidm, url: "https://vidm", tls: {caFile: ca.pem}, auth: {mode: oauth, clientId: c, clientSecretFile: secrets/secret}}
  vcf: {backend: vcf, url: "https://sddc", auth: {mode: password, username: u, passwordFile: %q}}
defaultTenant: corp
`, abs)
	path := filepath.Join(sub, "tenants.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := tenants.Load(path, defaults)
	if err != nil {
		t.Fatal(err)
	}
	corp, vcf := f.Tenants["corp"], f.Tenants["vcf"]
	if got, want := corp.Auth.ClientSecretFile, filepath.Join(sub, "secrets", "secret"); got != want || corp.Auth.ClientSecret != "s3cret" {
		t.Errorf("clientSecretFile = %q (secret %q), want %q", got, corp.Auth.ClientSecret, want)
	}
	if got, want := corp.TLS.CAFile, filepath.Join(sub, "ca.pem"); got != want {
		t.Errorf("caFile = %q, want %q", got, want)
	}
	if vcf.Auth.PasswordFile != abs || vcf.Auth.Password != "pw" {
		t.Errorf("passwordFile = %q (password %q), want %q", vcf.Auth.PasswordFile, vcf.Auth.Password, abs)
	}

	// Parse asks its readFile for the resolved paths; with a secrets directory of their own,
	// relative secret files resolve there, the CA file still beside the tenants file.
	var asked []string
	read := func(p string) ([]byte, error) { asked = append(asked, p); return []byte("x"), nil }
	d := defaults
	d.SecretsDir = "/run/tenant-secrets"
	if _, err := tenants.Parse([]byte(strings.ReplaceAll(yaml, abs, "/run/tenant-secrets/vcf/password")), "/etc/dirsync", read, d); err != nil {
		t.Fatal(err)
	}
	want := []string{"/run/tenant-secrets/vcf/password", "/etc/dirsync/ca.pem", "/run/tenant-secrets/secrets/secret"}
	slices.Sort(asked)
	slices.Sort(want)
	if !slices.Equal(asked, want) {
		t.Errorf("read %v, want %v", asked, want)
	}
}

func TestLoadJSON(t *testing.T) {
	f, err := tenants.Load("testdata/tenants.json", defaults)
	if err != nil {
		t.Fatal(err)
	}
	if f.DefaultTenant != "corp" {
		t.Errorf("DefaultTenant = %q, want corp (the only tenant)", f.DefaultTenant)
	}
	corp := f.Tenants["corp"]
	if corp.Auth.Mode != tenants.AuthSystem || corp.Auth.Username != "admin" || corp.Auth.Password != "lab-password-Kx42" {
		t.Errorf("auth = %+v", corp.Auth)
	}
	if !corp.TLS.InsecureSkipVerify || corp.RequestTimeout != 20*time.Second || corp.MaxConcurrentSyncs != defaults.MaxConcurrentSyncs {
		t.Errorf("tenant = %+v", corp)
	}
	if want := []tenants.Schedule{{Directory: "Corp AD", Cron: "@every 2h", IgnoreSafeguards: true}}; !slices.Equal(corp.Schedules, want) {
		t.Errorf("schedules = %+v, want %+v", corp.Schedules, want)
	}
	// Parse of the same bytes gives the same result.
	data, err := os.ReadFile("testdata/tenants.json")
	if err != nil {
		t.Fatal(err)
	}
	g, err := tenants.Parse(data, "testdata", nil, defaults)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f, g) {
		t.Errorf("Parse = %+v, Load = %+v", g, f)
	}
}

func TestDefaults(t *testing.T) {
	const body = `tenants: {vcf: {backend: vcf, url: "https://sddc", auth: {mode: password, username: u, passwordFile: p}%s}}`
	for _, tc := range []struct {
		name  string
		extra string
		want  func(tenants.Tenant) bool
	}{
		{"all defaults", "", func(t tenants.Tenant) bool {
			return t.MaxConcurrentSyncs == 2 && t.RequestTimeout == 30*time.Second && t.Poll == defaults.Poll && t.SyncClientTokenWarning == 168*time.Hour
		}},
		{"maxConcurrentSyncs 0 is the default", ", maxConcurrentSyncs: 0", func(t tenants.Tenant) bool { return t.MaxConcurrentSyncs == 2 }},
		{"file wins", ", maxConcurrentSyncs: 64, requestTimeout: 5s, syncClientTokenWarning: 24h", func(t tenants.Tenant) bool {
			return t.MaxConcurrentSyncs == 64 && t.RequestTimeout == 5*time.Second && t.SyncClientTokenWarning == 24*time.Hour
		}},
		{"poll fields one by one", ", poll: {max: 1m}", func(t tenants.Tenant) bool {
			return t.Poll == tenants.Poll{Initial: time.Second, Max: time.Minute, Deadline: time.Hour, ConfirmAfter: 20 * time.Second}
		}},
		{"readiness defaults", "", func(t tenants.Tenant) bool { return t.Readiness == defaults.Readiness }},
		{"readiness turned off for the tenant", ", readiness: {check: false}", func(t tenants.Tenant) bool {
			return t.Readiness == tenants.Readiness{Check: false, RecheckAfter: 5 * time.Second}
		}},
		{"readiness and confirmation timings", ", readiness: {recheckAfter: 2s}, poll: {confirmAfter: 1m}", func(t tenants.Tenant) bool {
			return t.Readiness == tenants.Readiness{Check: true, RecheckAfter: 2 * time.Second} && t.Poll.ConfirmAfter == time.Minute
		}},
		{"empty mappings", ", poll: {}, tls: {}, schedules: []", func(t tenants.Tenant) bool {
			return t.Poll == defaults.Poll && t.TLS == (tenants.TLS{}) && len(t.Schedules) == 0
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := tenants.Parse(fmt.Appendf(nil, body, tc.extra), "/cfg", readFake(map[string]string{"/cfg/p": "pw"}), defaults)
			if err != nil {
				t.Fatal(err)
			}
			if tn := f.Tenants["vcf"]; !tc.want(tn) {
				t.Errorf("tenant = %+v", tn)
			}
		})
	}
	// The token warning is vcf only.
	f, err := tenants.Parse([]byte(`tenants: {lab: {backend: vra7, url: "https://vra", auth: {mode: password, username: u, passwordFile: p, tenant: t}}}`),
		"/cfg", readFake(map[string]string{"/cfg/p": "pw"}), defaults)
	if err != nil {
		t.Fatal(err)
	}
	if w := f.Tenants["lab"].SyncClientTokenWarning; w != 0 {
		t.Errorf("vra7 SyncClientTokenWarning = %v, want 0", w)
	}
}

// fake secret values for rejection tests; none may appear in an error.
var fakeSecrets = map[string]string{
	"/cfg/secret":    "fake-secret-A1\n",
	"/cfg/pw":        "fake-password-B2",
	"/cfg/token":     "fake-token-C3",
	"/cfg/ca.pem":    "fake-ca-D4",
	"/cfg/empty":     "",
	"/cfg/blank":     " \n\t\n",
	"/cfg/two-lines": "fake-line-one-E5\nfake-line-two-F6\n",
	"/cfg/huge":      "fake-huge-G7" + strings.Repeat("x", 70<<10),
}

func secretValues() []string {
	return []string{"fake-secret-A1", "fake-password-B2", "fake-token-C3", "fake-ca-D4", "fake-line-one-E5", "fake-line-two-F6", "fake-huge-G7", "inline-value-H8", "url-password-I9"}
}

func readFake(files map[string]string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
}

// vidm builds a one-tenant file of a vidm tenant "corp" with oauth, adding extra to the tenant and
// replacing the auth mapping when auth is not "".
func vidm(extra, auth string) string {
	if auth == "" {
		auth = "{mode: oauth, clientId: c, clientSecretFile: secret}"
	}
	return fmt.Sprintf(`tenants: {corp: {backend: vidm, url: "https://vidm.example.com", auth: %s%s}}`, auth, extra)
}

// withURL is vidm with the given url.
func withURL(u string) string {
	return fmt.Sprintf(`tenants: {corp: {backend: vidm, url: %q, auth: {mode: oauth, clientId: c, clientSecretFile: secret}}}`, u)
}

func tenant(backend, auth string) string {
	return fmt.Sprintf(`tenants: {corp: {backend: %s, url: "https://h.example.com", auth: %s}}`, backend, auth)
}

func TestRejections(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		want []string // each a line of the error ("location: message" or a prefix of it)
	}{
		// Structure.
		{"empty file", "", []string{"tenants: at least one tenant is required"}},
		{"no tenants", "tenants: {}", []string{"tenants: at least one tenant is required"}},
		{"not a mapping", "[1, 2]", []string{"(top level): must be a mapping, not a list"}},
		{"not YAML", "tenants: [", []string{"(top level): not valid YAML or JSON"}},
		{"not JSON", `{"tenants": {"corp": }`, []string{"(top level): not valid YAML or JSON"}},
		{"duplicate key", "tenants: {}\ntenants: {}\n", []string{`(top level): not valid YAML or JSON: yaml: unmarshal errors: line 2: key "tenants" already set in map`}},
		{"too large", "# " + strings.Repeat("x", 1<<20), []string{"(top level): the file is larger than"}},
		{"unknown top-level key", "defaultTenat: corp\n" + vidm("", ""), []string{"defaultTenat: unknown key"}},
		{"unknown tenant key", vidm(", urll: x", ""), []string{"tenants.corp.urll: unknown key"}},
		{"unknown auth key in another case", vidm("", "{mode: oauth, clientID: c, clientSecretFile: secret}"),
			[]string{"tenants.corp.auth.clientID: unknown key (did you mean clientId?)"}},
		{"unknown schedule key", vidm(`, schedules: [{directory: D, cronn: "@hourly"}]`, ""), []string{"tenants.corp.schedules[0].cronn: unknown key"}},
		{"tenants a list", "tenants: [corp]", []string{"tenants: must be a mapping, not a list"}},
		{"tenant a string", "tenants: {corp: vidm}", []string{"tenants.corp: must be a mapping, not a string"}},
		{"wrong types", vidm(`, directories: "Corp AD", tls: {insecureSkipVerify: "yes"}, maxConcurrentSyncs: four, poll: {initial: 2}`, ""), []string{
			"tenants.corp.directories: must be a list, not a string",
			"tenants.corp.maxConcurrentSyncs: must be a whole number, not a string",
			`tenants.corp.poll.initial: must be a duration such as "30s" or "336h", not a number`,
			"tenants.corp.tls.insecureSkipVerify: must be true or false, not a string",
		}},
		{"url a number", `tenants: {corp: {backend: vidm, url: 5}}`, []string{"tenants.corp.url: must be a string, not a number"}},
		{"fractional number", vidm(", maxConcurrentSyncs: 2.5", ""), []string{"tenants.corp.maxConcurrentSyncs: must be a whole number"}},

		// Inline secrets, before any generic unknown-key message.
		{"inline clientSecret", vidm("", "{mode: oauth, clientId: c, clientSecret: inline-value-H8}"), []string{
			"tenants.corp.auth.clientSecret: secrets are not accepted inline; put the secret in a file and name it with clientSecretFile"}},
		{"inline password", tenant("vcf", "{mode: password, username: u, password: inline-value-H8}"),
			[]string{"tenants.corp.auth.password: secrets are not accepted inline; put the secret in a file and name it with passwordFile"}},
		{"inline refreshToken", tenant("vra-cloud", "{mode: refresh-token, refreshToken: inline-value-H8}"),
			[]string{"tenants.corp.auth.refreshToken: secrets are not accepted inline; put the secret in a file and name it with refreshTokenFile"}},
		{"inline secret as a list", tenant("vcf", "{mode: password, username: u, password: [inline-value-H8]}"),
			[]string{"tenants.corp.auth.password: secrets are not accepted inline"}},

		// Names and the default tenant.
		{"upper-case tenant name", `tenants: {Corp: {backend: vidm, url: "https://v", auth: {mode: oauth, clientId: c, clientSecretFile: secret}}}`,
			[]string{"tenants.Corp: a tenant name must be 1 to 63 lower-case letters"}},
		{"tenant name with a dot", `tenants: {"a.b": {backend: vidm, url: "https://v", auth: {mode: oauth, clientId: c, clientSecretFile: secret}}}`,
			[]string{`tenants["a.b"]: a tenant name must be`}},
		{"tenant name with a line break", `{"tenants": {"a\nb": {"backend": "vidm", "url": "https://v", "auth": {"mode": "oauth", "clientId": "c", "clientSecretFile": "secret"}}}}`,
			[]string{`tenants["a\nb"]: a tenant name must be`}},
		{"tenant name too long", fmt.Sprintf(`tenants: {%s: {backend: vcf, url: "https://v", auth: {mode: password, username: u, passwordFile: pw}}}`, strings.Repeat("a", 64)),
			[]string{"tenants." + strings.Repeat("a", 64) + ": a tenant name must be"}},
		{"no default of two", `tenants: {a: {backend: vcf, url: "https://v", auth: {mode: password, username: u, passwordFile: pw}}, b: {backend: vcf, url: "https://w", auth: {mode: password, username: u, passwordFile: pw}}}`,
			[]string{"defaultTenant: required when there is more than one tenant (one of a, b)"}},
		{"default not a tenant", "defaultTenant: lab\n" + vidm("", ""), []string{`defaultTenant: "lab" is not a tenant of this file (corp)`}},

		// Backend and URL.
		{"no backend", `tenants: {corp: {url: "https://v"}}`, []string{"tenants.corp.backend: required (vidm, vra7, vra-cloud or vcf)"}},
		{"unknown backend", `tenants: {corp: {backend: vra8, url: "https://v"}}`, []string{`tenants.corp.backend: "vra8" is not vidm, vra7, vra-cloud or vcf`}},
		{"no url", `tenants: {corp: {backend: vidm, auth: {mode: oauth, clientId: c, clientSecretFile: secret}}}`, []string{"tenants.corp.url: required"}},
		{"ftp url", withURL("ftp://vidm"), []string{`tenants.corp.url: "ftp://vidm" must start with https://`}},
		{"http url", withURL("http://vidm"), []string{`tenants.corp.url: "http://vidm" must start with https:// (http:// sends credentials in clear; the worker's ALLOW_INSECURE_HTTP=true accepts it)`}},
		{"url without scheme", withURL("vidm.example.com"), []string{`tenants.corp.url: "vidm.example.com" must start with https://`}},
		{"url without host", withURL("https:///SAAS"), []string{`tenants.corp.url: "https:///SAAS" has no host`}},
		{"url with port only", withURL("https://:443"), []string{`tenants.corp.url: "https://:443" has no host`}},
		{"url with credentials", withURL("https://admin:url-password-I9@vidm"), []string{"tenants.corp.url: must not carry credentials"}},
		{"url with query", withURL("https://vidm/?a=b"), []string{`tenants.corp.url: "https://vidm/?a=b" must not have a query or fragment`}},
		{"url with fragment", withURL("https://vidm/#x"), []string{`tenants.corp.url: "https://vidm/#x" must not have a query or fragment`}},
		{"not a url", withURL("https://vidm:url-password-I9%zz@h"), []string{"tenants.corp.url: is not a URL"}},

		// Auth modes and their keys.
		{"no mode", tenant("vidm", "{clientId: c}"), []string{"tenants.corp.auth.mode: required for backend vidm (oauth or system)"}},
		{"no auth", `tenants: {corp: {backend: vcf, url: "https://v"}}`, []string{"tenants.corp.auth.mode: required for backend vcf (password)"}},
		{"vidm password", tenant("vidm", "{mode: password, username: u, passwordFile: pw}"), []string{`tenants.corp.auth.mode: "password" is not valid for backend vidm (want oauth or system)`}},
		{"vra7 oauth", tenant("vra7", "{mode: oauth, clientId: c, clientSecretFile: secret}"), []string{`tenants.corp.auth.mode: "oauth" is not valid for backend vra7 (want password)`}},
		{"vra-cloud password", tenant("vra-cloud", "{mode: password}"), []string{`tenants.corp.auth.mode: "password" is not valid for backend vra-cloud (want refresh-token)`}},
		{"vcf system", tenant("vcf", "{mode: system}"), []string{`tenants.corp.auth.mode: "system" is not valid for backend vcf (want password)`}},
		{"oauth without keys", tenant("vidm", "{mode: oauth}"), []string{
			"tenants.corp.auth.clientId: required with mode oauth", "tenants.corp.auth.clientSecretFile: required with mode oauth"}},
		{"oauth with a username", tenant("vidm", "{mode: oauth, clientId: c, clientSecretFile: secret, username: u}"),
			[]string{"tenants.corp.auth.username: not used with mode oauth of backend vidm"}},
		{"system without keys", tenant("vidm", "{mode: system}"), []string{
			"tenants.corp.auth.username: required with mode system", "tenants.corp.auth.passwordFile: required with mode system"}},
		{"system with a client secret file", tenant("vidm", "{mode: system, username: u, passwordFile: pw, clientSecretFile: secret}"),
			[]string{"tenants.corp.auth.clientSecretFile: not used with mode system of backend vidm"}},
		{"vra7 without tenant", tenant("vra7", "{mode: password, username: u, passwordFile: pw}"), []string{"tenants.corp.auth.tenant: required with mode password"}},
		{"vcf with tenant", tenant("vcf", "{mode: password, username: u, passwordFile: pw, tenant: t}"), []string{"tenants.corp.auth.tenant: not used with mode password of backend vcf"}},
		{"refresh token without file", tenant("vra-cloud", "{mode: refresh-token}"), []string{"tenants.corp.auth.refreshTokenFile: required with mode refresh-token"}},
		{"tokenURL with oauth", tenant("vidm", `{mode: oauth, clientId: c, clientSecretFile: secret, tokenURL: "https://t"}`),
			[]string{"tenants.corp.auth.tokenURL: not used with mode oauth of backend vidm"}},
		{"http tokenURL", tenant("vra-cloud", `{mode: refresh-token, refreshTokenFile: token, tokenURL: "http://csp/token"}`),
			[]string{`tenants.corp.auth.tokenURL: "http://csp/token" must start with https://`}},
		{"tokenURL with credentials", tenant("vra-cloud", `{mode: refresh-token, refreshTokenFile: token, tokenURL: "https://u:url-password-I9@csp"}`),
			[]string{"tenants.corp.auth.tokenURL: must not carry credentials"}},

		// Secret and CA files.
		{"missing secret file", vidm("", "{mode: oauth, clientId: c, clientSecretFile: missing}"),
			[]string{"tenants.corp.auth.clientSecretFile: cannot read /cfg/missing: file does not exist"}},
		{"empty secret file", tenant("vcf", "{mode: password, username: u, passwordFile: empty}"), []string{"tenants.corp.auth.passwordFile: /cfg/empty is empty"}},
		{"blank secret file", tenant("vra-cloud", "{mode: refresh-token, refreshTokenFile: blank}"), []string{"tenants.corp.auth.refreshTokenFile: /cfg/blank is empty"}},
		{"two-line secret file", tenant("vcf", "{mode: password, username: u, passwordFile: two-lines}"),
			[]string{"tenants.corp.auth.passwordFile: /cfg/two-lines holds more than one line"}},
		{"huge secret file", tenant("vcf", "{mode: password, username: u, passwordFile: huge}"), []string{"tenants.corp.auth.passwordFile: /cfg/huge is larger than 65536 bytes"}},
		{"absolute missing secret file", tenant("vcf", "{mode: password, username: u, passwordFile: /cfg/nope}"),
			[]string{"tenants.corp.auth.passwordFile: cannot read /cfg/nope: file does not exist"}},
		// Whoever edits the file must not make the worker send one of its other files as a secret.
		{"secret file outside the secrets directory", tenant("vcf", "{mode: password, username: u, passwordFile: /run/secrets/admin-token}"),
			[]string{"tenants.corp.auth.passwordFile: /run/secrets/admin-token is outside the secrets directory /cfg (TENANTS_SECRETS_DIR)"}},
		{"secret file climbing out", vidm("", "{mode: oauth, clientId: c, clientSecretFile: ../admin-token}"),
			[]string{`tenants.corp.auth.clientSecretFile: ../admin-token must not contain ".."`}},
		{"secret file climbing out and back", tenant("vra-cloud", "{mode: refresh-token, refreshTokenFile: sub/../token}"),
			[]string{`tenants.corp.auth.refreshTokenFile: sub/../token must not contain ".."`}},
		{"the worker's own secret file", tenant("vcf", "{mode: password, username: u, passwordFile: nats-password}"),
			[]string{"tenants.corp.auth.passwordFile: nats-password is one of the worker's own secret files"}},
		{"schedule ignoring safeguards on a tenant that does not allow it", vidm(`, schedules: [{directory: Corp AD, cron: "@hourly", ignoreSafeguards: true}]`, ""),
			[]string{"tenants.corp.schedules[0].ignoreSafeguards: needs allowIgnoreSafeguards: true on the tenant"}},
		{"missing CA file", vidm(", tls: {caFile: ca/missing.pem}", ""), []string{"tenants.corp.tls.caFile: cannot read /cfg/ca/missing.pem: file does not exist"}},
		{"empty CA file", vidm(", tls: {caFile: blank}", ""), []string{"tenants.corp.tls.caFile: /cfg/blank is empty"}},

		// Limits and durations.
		{"negative maxConcurrentSyncs", vidm(", maxConcurrentSyncs: -1", ""), []string{"tenants.corp.maxConcurrentSyncs: -1 is not between 0 (the default) and 64"}},
		{"maxConcurrentSyncs over 64", vidm(", maxConcurrentSyncs: 65", ""), []string{"tenants.corp.maxConcurrentSyncs: 65 is not between 0"}},
		{"malformed duration", vidm(", requestTimeout: soon", ""), []string{`tenants.corp.requestTimeout: time: invalid duration "soon"`}},
		{"zero duration", vidm(", requestTimeout: 0s", ""), []string{"tenants.corp.requestTimeout: 0s must be positive"}},
		{"negative poll", vidm(", poll: {initial: -1s, max: 0s, deadline: 1x}", ""), []string{
			"tenants.corp.poll.initial: -1s must be positive", "tenants.corp.poll.max: 0s must be positive", `tenants.corp.poll.deadline: time: unknown unit "x"`}},
		{"initial over max", vidm(", poll: {initial: 20s, max: 10s}", ""), []string{"tenants.corp.poll: initial 20s is longer than max 10s"}},
		{"initial over default max", vidm(", poll: {initial: 20s}", ""), []string{"tenants.corp.poll: initial 20s is longer than max 15s"}},
		{"token warning on vidm", vidm(", syncClientTokenWarning: 24h", ""), []string{"tenants.corp.syncClientTokenWarning: only for backend vcf"}},
		{"zero token warning on vcf", `tenants: {corp: {backend: vcf, url: "https://v", auth: {mode: password, username: u, passwordFile: pw}, syncClientTokenWarning: 0s}}`,
			[]string{"tenants.corp.syncClientTokenWarning: 0s must be positive"}},

		// Directories and schedules.
		{"empty directory entry", vidm(`, directories: ["Corp AD", " "]`, ""), []string{"tenants.corp.directories[1]: must not be empty"}},
		{"schedule without directory", vidm(`, schedules: [{cron: "@hourly"}]`, ""), []string{"tenants.corp.schedules[0].directory: required"}},
		{"schedule without cron", vidm(`, schedules: [{directory: Corp AD}]`, ""), []string{"tenants.corp.schedules[0].cron: required"}},
		{"schedule every 30s", vidm(`, schedules: [{directory: Corp AD, cron: "@every 30s"}]`, ""),
			[]string{`tenants.corp.schedules[0].cron: schedule: spec "@every 30s": @every interval 30s is shorter than the minimum 1m0s`}},
		{"malformed cron", vidm(`, schedules: [{directory: A, cron: "0 * * *"}, {directory: B, cron: "61 * * * *"}]`, ""), []string{
			`tenants.corp.schedules[0].cron: schedule: spec "0 * * *"`, `tenants.corp.schedules[1].cron: schedule: spec "61 * * * *"`}},
		{"schedule outside the allow-list", vidm(`, directories: ["Corp AD"], schedules: [{directory: Lab AD, cron: "@hourly"}]`, ""),
			[]string{`tenants.corp.schedules[0].directory: "Lab AD" is not in the tenant's directories`}},
		{"duplicate schedule", vidm(`, schedules: [{directory: Corp AD, cron: "@hourly"}, {directory: corp ad, cron: "@daily"}]`, ""),
			[]string{`tenants.corp.schedules[1].directory: "corp ad" already has a schedule (tenants.corp.schedules[0])`}},
		{"schedule directory with a trailing space", vidm(`, schedules: [{directory: "Corp AD ", cron: "@hourly"}]`, ""),
			[]string{`tenants.corp.schedules[0].directory: "Corp AD " must not start or end with a space`}},
		{"schedule directory with a control character", `{"tenants": {"corp": {"backend": "vcf", "url": "https://v", "auth": {"mode": "password", "username": "u", "passwordFile": "pw"}, "schedules": [{"directory": "a\tb", "cron": "@hourly"}]}}}`,
			[]string{"tenants.corp.schedules[0].directory: must not contain control characters"}},
		{"schedule directory too long", vidm(`, schedules: [{directory: `+strings.Repeat("d", 257)+`, cron: "@hourly"}]`, ""),
			[]string{"tenants.corp.schedules[0].directory: is longer than 256 characters"}},

		// Everything at once.
		{"several problems", `
defaultTenant: corp
tenants:
  corp: {backend: vidm, url: "ftp://x", auth: {mode: oauth, clientId: c, clientSecretFile: missing}, maxConcurrentSyncs: 99}
  lab: {backend: vra7, url: "https://lab", auth: {mode: password, username: u, passwordFile: pw}}
`, []string{
			`tenants.corp.url: "ftp://x" must start with`,
			"tenants.corp.auth.clientSecretFile: cannot read /cfg/missing",
			"tenants.corp.maxConcurrentSyncs: 99 is not between",
			"tenants.lab.auth.tenant: required with mode password",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tenants.Parse([]byte(tc.file), "/cfg", readFake(fakeSecrets), defaults)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			msg := err.Error()
			lines := strings.Split(msg, "\n")
			if lines[0] != "invalid tenants file:" {
				t.Errorf("first line %q", lines[0])
			}
			for _, w := range tc.want {
				if !slices.ContainsFunc(lines[1:], func(l string) bool { return strings.HasPrefix(l, w) }) {
					t.Errorf("no line starts with %q in:\n%s", w, msg)
				}
			}
			if len(lines)-1 != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%s", len(lines)-1, len(tc.want), msg)
			}
			for _, s := range secretValues() {
				if strings.Contains(msg, s) {
					t.Errorf("error leaks secret %q:\n%s", s, msg)
				}
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := tenants.Load(filepath.Join(t.TempDir(), "nope.yaml"), defaults); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("Load of a missing file: %v", err)
	}
	path := filepath.Join(t.TempDir(), "t.yaml")
	if err := os.WriteFile(path, []byte("tenants: {}"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := tenants.Load(path, defaults)
	if want := "invalid tenants file " + path + ":\ntenants: at least one tenant is required"; err == nil || err.Error() != want {
		t.Errorf("Load error %q, want %q", err, want)
	}
}

// No secret of the example reaches an error, a log line, fmt's verbs or JSON.
func TestSecretsNeverLeak(t *testing.T) {
	f, err := tenants.Load("testdata/tenants.yaml", defaults)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("tenants", "file", f)
	for _, name := range f.Names() {
		tn, _ := f.Tenant(name)
		log.Info("tenant", "tenant", tn, "auth", tn.Auth)
		fmt.Fprintf(&buf, "%v %+v %#v %s\n", tn, tn, tn, tn.Auth)
		b, err := json.Marshal(tn)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
	}
	out := buf.String()
	for _, s := range exampleSecrets {
		if strings.Contains(out, s) {
			t.Errorf("output leaks %q:\n%s", s, out)
		}
	}
	for _, want := range []string{`"clientSecret":"[redacted]"`, `"password":"[redacted]"`, `"refreshToken":"[redacted]"`,
		`"clientSecretFile":"testdata/secrets/corp-client-secret"`, `"defaultTenant":"corp"`, `"syncClientTokenWarning":1209600000000000`} {
		if !strings.Contains(out, want) {
			t.Errorf("log output lacks %s:\n%s", want, out)
		}
	}

	// Errors about a tenant whose other secrets were read fine.
	bad := strings.Replace(mustRead(t, "testdata/tenants.yaml"), "url: https://vidm.corp.example.com", "url: ftp://vidm.corp.example.com", 1)
	bad = strings.Replace(bad, "maxConcurrentSyncs: 4", "maxConcurrentSyncs: -4", 1)
	_, err = tenants.Parse([]byte(bad), "testdata", nil, defaults)
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	for _, s := range exampleSecrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error leaks %q:\n%s", s, err)
		}
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAllows(t *testing.T) {
	list := tenants.Tenant{Directories: []string{"Corp AD", "emea.corp.example.com"}}
	for _, tc := range []struct {
		name    string
		t       tenants.Tenant
		dir     string
		domains []string
		want    bool
	}{
		{"empty list allows all", tenants.Tenant{}, "Anything", nil, true},
		{"name", list, "Corp AD", nil, true},
		{"name in another case", list, "corp ad", nil, true},
		{"domain", list, "EMEA", []string{"apac.corp.example.com", "EMEA.corp.example.com"}, true},
		{"neither", list, "Lab AD", []string{"lab.example.com"}, false},
		{"no partial match", list, "Corp", []string{"corp.example.com"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.t.Allows(tc.dir, tc.domains); got != tc.want {
				t.Errorf("Allows(%q, %v) = %v, want %v", tc.dir, tc.domains, got, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/tenants.yaml", "testdata/tenants.json"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(vidm(`, schedules: [{directory: D, cron: "CRON_TZ=UTC 0 * * * *"}], poll: {initial: 1s}`, "")))
	f.Add([]byte(tenant("vcf", "{mode: password, username: u, password: inline-value-H8}")))
	const secret = "fuzz-secret-Q0"
	read := func(p string) ([]byte, error) {
		if strings.Contains(p, "missing") {
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
		return []byte(secret + "\n"), nil
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := tenants.Parse(data, "/cfg", read, defaults)
		if err != nil {
			if !bytes.Contains(data, []byte(secret)) && strings.Contains(err.Error(), secret) {
				t.Fatalf("error leaks the secret: %v", err)
			}
			return
		}
		if _, ok := file.Tenant(""); !ok {
			t.Fatalf("valid file without its default tenant %q", file.DefaultTenant)
		}
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "file", file)
		if !bytes.Contains(data, []byte(secret)) && strings.Contains(buf.String(), secret) {
			t.Fatalf("log value leaks the secret: %s", buf.String())
		}
	})
}

// A symbolic link inside the secrets directory does not lead the worker out of it; the links a
// Kubernetes Secret volume is made of (..data) stay inside and are followed.
func TestSecretFileLinksAreFollowedOnlyInsideTheSecretsDirectory(t *testing.T) {
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	data := filepath.Join(secrets, "..2026_12_05")
	for _, d := range []string{data, filepath.Join(dir, "own")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for path, content := range map[string]string{
		filepath.Join(data, "vidm-client-secret"): "mounted-secret-K1\n",
		filepath.Join(dir, "own", "admin-token"):  "admin-token-value-K2\n",
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		filepath.Join(secrets, "..data"):             "..2026_12_05",
		filepath.Join(secrets, "vidm-client-secret"): "..data/vidm-client-secret",
		filepath.Join(secrets, "escape"):             filepath.Join(dir, "own", "admin-token"),
	} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	d := defaults
	d.SecretsDir = secrets
	load := func(file string) (tenants.File, error) {
		path := filepath.Join(dir, "tenants.yaml")
		if err := os.WriteFile(path, []byte(`tenants: {corp: {backend: vidm, url: "https://vidm", auth: {mode: oauth, clientId: c, clientSecretFile: `+file+`}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		return tenants.Load(path, d)
	}
	f, err := load("vidm-client-secret")
	if err != nil || f.Tenants["corp"].Auth.ClientSecret != "mounted-secret-K1" {
		t.Fatalf("a Secret volume's file: %v", err)
	}
	_, err = load("escape")
	if err == nil || !strings.Contains(err.Error(), "is outside the secrets directory") || strings.Contains(err.Error(), "admin-token-value") {
		t.Fatalf("a link out of the secrets directory = %v", err)
	}
}
