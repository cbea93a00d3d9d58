package vidmsim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/fakeclock"
)

const (
	vcfTestUser     = "administrator@vsphere.local"
	vcfTestPassword = "example-password"
	vcfEmbeddedID   = "3262279b-09b0-44eb-a3be-f4bded4f0851"
	vcfADFSID       = "82ce7b07-f878-41af-9ac3-e343bcb347dc"
	vcfOktaID       = "159498c4-6e0e-4757-ae4b-dcb6aaa93216"
	vcfEntraID      = "aadd13f5-c05e-491b-9312-23e743175904"
)

type vcfEnv struct {
	t     *testing.T
	sim   *Server
	srv   *httptest.Server
	clock *fakeclock.Clock
}

// newVCFEnv serves ExampleVCFConfig (after mutate) on a fake clock.
func newVCFEnv(t *testing.T, mutate func(*Config)) *vcfEnv {
	t.Helper()
	clock := fakeclock.New(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	cfg := ExampleVCFConfig()
	cfg.Now = clock.Now
	if mutate != nil {
		mutate(&cfg)
	}
	if err := validateVCFDirectories(cfg.Directories); err != nil {
		t.Fatalf("test config: %v", err)
	}
	sim, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &vcfEnv{t: t, sim: sim, srv: srv, clock: clock}
}

type vcfResponse struct {
	status int
	header http.Header
	body   []byte
}

// code returns the error code of a VCF ({"errorCode"}) or vIDM-style ({"errors":[{"code"}]}) body.
func (r vcfResponse) code() string {
	var e struct {
		ErrorCode string `json:"errorCode"`
		Errors    []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(r.body, &e) != nil {
		return ""
	}
	if len(e.Errors) > 0 {
		return e.Errors[0].Code
	}
	return e.ErrorCode
}

// do sends one request; headers are name/value pairs.
func (e *vcfEnv) do(method, path, body string, headers ...string) vcfResponse {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return vcfResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

func vcfLoginBody(user, password string) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": password})
	return string(b)
}

func (e *vcfEnv) login() string {
	e.t.Helper()
	r := e.do(http.MethodPost, pathVCFTokens, vcfLoginBody(vcfTestUser, vcfTestPassword),
		"Content-Type", "application/json", "Accept", "application/json")
	if r.status != http.StatusOK {
		e.t.Fatalf("login: %d %s", r.status, r.body)
	}
	var tp struct {
		AccessToken string `json:"accessToken"`
	}
	if err := json.Unmarshal(r.body, &tp); err != nil || tp.AccessToken == "" {
		e.t.Fatalf("login body %s: %v", r.body, err)
	}
	return tp.AccessToken
}

func (e *vcfEnv) get(path, tok string) vcfResponse {
	e.t.Helper()
	return e.do(http.MethodGet, path, "", "Authorization", "Bearer "+tok, "Accept", "application/json")
}

// TestVCFStrictness checks each refusal and the order of the checks: path → method → auth →
// Accept → Content-Type → body → credentials or provider.
func TestVCFStrictness(t *testing.T) {
	const js = "application/json"
	auth := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	read := func(tok string) []string { return append(auth(tok), "Accept", js) }
	none := func(string) []string { return nil }
	with := func(h ...string) func(string) []string { return func(string) []string { return h } }
	login := vcfLoginBody(vcfTestUser, vcfTestPassword)
	provider := func(id string) string { return pathVCFProviders + "/" + id }
	tests := []struct {
		name    string
		method  string
		path    string
		body    string
		headers func(tok string) []string
		status  int
		code    string
		allow   string
	}{
		{"list", "GET", pathVCFProviders, "", read, 200, "", ""},
		{"one provider", "GET", provider(vcfOktaID), "", read, 200, "", ""},
		{"escaped provider id", "GET", pathVCFProviders + "/%31" + vcfOktaID[1:], "", read, 200, "", ""},
		{"accept missing", "GET", pathVCFProviders, "", auth, 200, "", ""},
		{"accept */*", "GET", pathVCFProviders, "", func(tok string) []string { return append(auth(tok), "Accept", "*/*") }, 200, "", ""},
		{"accept list", "GET", pathVCFProviders, "", func(tok string) []string { return append(auth(tok), "Accept", "text/html, application/json") }, 200, "", ""},
		{"accept html", "GET", pathVCFProviders, "", func(tok string) []string { return append(auth(tok), "Accept", "text/html") }, 406, "NOT_ACCEPTABLE", ""},
		{"accept json q=0", "GET", provider(vcfOktaID), "", func(tok string) []string { return append(auth(tok), "Accept", js+";q=0") }, 406, "NOT_ACCEPTABLE", ""},
		{"accept vIDM's vendor type", "GET", pathVCFProviders, "", func(tok string) []string {
			return append(auth(tok), "Accept", "application/vnd.vmware.horizon.manager.connector.management.directory.list+json")
		}, 406, "NOT_ACCEPTABLE", ""},
		{"no auth", "GET", pathVCFProviders, "", with("Accept", js), 401, "auth.required", ""},
		{"auth before accept", "GET", pathVCFProviders, "", with("Accept", "text/html"), 401, "auth.required", ""},
		{"unknown token", "GET", provider(vcfOktaID), "", with("Accept", js, "Authorization", "Bearer abc.def.ghi"), 401, "auth.token.invalid", ""},
		{"basic auth", "GET", pathVCFProviders, "", with("Accept", js, "Authorization", "Basic YWRtaW46YWRtaW4="), 401, "auth.required", ""},
		{"POST providers", "POST", pathVCFProviders, "{}", read, 405, "http.method.not.allowed", "GET"},
		{"PATCH provider", "PATCH", provider(vcfOktaID), "{}", read, 405, "http.method.not.allowed", "GET"},
		{"DELETE provider", "DELETE", provider(vcfOktaID), "", read, 405, "http.method.not.allowed", "GET"},
		{"method before auth", "PUT", pathVCFProviders, "", none, 405, "http.method.not.allowed", "GET"},
		{"GET tokens", "GET", pathVCFTokens, "", read, 405, "http.method.not.allowed", "POST"},
		{"unknown provider", "GET", provider("0f0f0f0f-0000-4000-8000-000000000000"), "", read, 404, "IDENTITY_PROVIDER_NOT_FOUND", ""},
		{"unknown provider before nothing: auth first", "GET", provider("nope"), "", none, 401, "auth.required", ""},
		{"trailing slash", "GET", pathVCFProviders + "/", "", read, 404, "http.not.found", ""},
		{"provider trailing slash", "GET", provider(vcfOktaID) + "/", "", read, 404, "http.not.found", ""},
		{"extra segment", "GET", provider(vcfOktaID) + "/identity-sources", "", read, 404, "http.not.found", ""},
		{"sync-client token is not simulated", "POST", provider(vcfOktaID) + "/sync-client?syncClientTokenTTL=263000", "", read, 404, "http.not.found", ""},
		{"vIDM directories", "GET", pathDirectories, "", read, 404, "http.not.found", ""},
		{"vIDM system login", "POST", pathSystemLogin, `{"username":"a","password":"b","issueToken":"true"}`, with("Content-Type", js), 404, "http.not.found", ""},
		{"vIDM oauth", "POST", pathOAuthToken + "?grant_type=client_credentials", "", with("Content-Type", mediaForm), 404, "http.not.found", ""},
		{"vIDM sync", "POST", pathDirectories + "/vcf-okta" + suffixSync, `{}`, read, 404, "http.not.found", ""},
		{"login", "POST", pathVCFTokens, login, with("Content-Type", js, "Accept", js), 200, "", ""},
		{"login with charset, no accept", "POST", pathVCFTokens, login, with("Content-Type", js+"; charset=UTF-8"), 200, "", ""},
		{"login accept html", "POST", pathVCFTokens, login, with("Content-Type", js, "Accept", "text/html"), 406, "NOT_ACCEPTABLE", ""},
		{"login accept before content type", "POST", pathVCFTokens, login, with("Content-Type", "text/plain", "Accept", "text/html"), 406, "NOT_ACCEPTABLE", ""},
		{"login content type missing", "POST", pathVCFTokens, login, with("Accept", js), 415, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"login form", "POST", pathVCFTokens, "username=a&password=b", with("Content-Type", mediaForm), 415, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"login content type before body", "POST", pathVCFTokens, "{", with("Content-Type", "text/plain"), 415, "UNSUPPORTED_MEDIA_TYPE", ""},
		{"login body invalid", "POST", pathVCFTokens, "{", with("Content-Type", js), 400, "INVALID_INPUT", ""},
		{"login body array", "POST", pathVCFTokens, "[]", with("Content-Type", js), 400, "INVALID_INPUT", ""},
		{"login body trailing data", "POST", pathVCFTokens, login + "{}", with("Content-Type", js), 400, "INVALID_INPUT", ""},
		{"login without password", "POST", pathVCFTokens, `{"username":"` + vcfTestUser + `"}`, with("Content-Type", js), 400, "INVALID_INPUT", ""},
		{"login body before credentials", "POST", pathVCFTokens, `{"username":"nobody"}`, with("Content-Type", js), 400, "INVALID_INPUT", ""},
		{"login wrong password", "POST", pathVCFTokens, vcfLoginBody(vcfTestUser, "wrong"), with("Content-Type", js), 401, "AUTHENTICATION_FAILED", ""},
		{"login unknown user", "POST", pathVCFTokens, vcfLoginBody("nobody", vcfTestPassword), with("Content-Type", js), 401, "AUTHENTICATION_FAILED", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newVCFEnv(t, nil)
			r := e.do(tc.method, tc.path, tc.body, tc.headers(e.login())...)
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, tc.status, r.body)
			}
			if got := r.code(); got != tc.code {
				t.Errorf("error code = %q, want %q", got, tc.code)
			}
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}

func TestVCFTokenEndpoint(t *testing.T) {
	e := newVCFEnv(t, nil)
	r := e.do(http.MethodPost, pathVCFTokens, vcfLoginBody(vcfTestUser, vcfTestPassword), "Content-Type", "application/json")
	if r.status != http.StatusOK {
		t.Fatalf("login: %d %s", r.status, r.body)
	}
	var body map[string]any
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if got := sortedKeys(body); !slices.Equal(got, []string{"accessToken", "refreshToken"}) {
		t.Fatalf("token response keys = %v", got)
	}
	refresh, _ := body["refreshToken"].(map[string]any)
	if id, _ := refresh["id"].(string); len(refresh) != 1 || len(id) != 36 {
		t.Fatalf("refreshToken = %v, want {id: <uuid>}", body["refreshToken"])
	}
	tok, _ := body["accessToken"].(string)
	if issued := e.sim.IssuedTokens(); len(issued) != 1 || issued[0] != tok || e.sim.Logins() != 1 {
		t.Fatalf("issued = %d tokens, logins = %d; the answer must carry the one issued", len(issued), e.sim.Logins())
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Prn string `json:"prn"`
		Exp int64  `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if want := e.clock.Now().Add(time.Hour).Unix(); claims.Exp != want || claims.Prn != vcfTestUser {
		t.Fatalf("claims = %+v, want exp %d for %s", claims, want, vcfTestUser)
	}

	bad := e.do(http.MethodPost, pathVCFTokens, vcfLoginBody(vcfTestUser, "wrong-password-123"), "Content-Type", "application/json")
	var vcfErr map[string]any
	if err := json.Unmarshal(bad.body, &vcfErr); err != nil || bad.status != http.StatusUnauthorized {
		t.Fatalf("bad login: %d %s", bad.status, bad.body)
	}
	if got := sortedKeys(vcfErr); !slices.Equal(got, []string{"errorCode", "message"}) {
		t.Fatalf("error body keys = %v, want errorCode and message", got)
	}
	if strings.Contains(string(bad.body), "wrong-password-123") || strings.Contains(string(bad.body), vcfTestUser) {
		t.Fatalf("error body echoes the credentials: %s", bad.body)
	}
}

func TestVCFTokenLifetime(t *testing.T) {
	tests := []struct {
		name string
		act  func(e *vcfEnv)
		code string
	}{
		{"expired by TTL", func(e *vcfEnv) { e.clock.Advance(time.Hour) }, "auth.token.expired"},
		{"ExpireTokens", func(e *vcfEnv) { e.sim.ExpireTokens() }, "auth.token.expired"},
		{"RevokeTokens", func(e *vcfEnv) { e.sim.RevokeTokens() }, "auth.token.revoked"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newVCFEnv(t, nil)
			tok := e.login()
			e.clock.Advance(time.Hour - time.Second)
			if r := e.get(pathVCFProviders, tok); r.status != http.StatusOK {
				t.Fatalf("before: %d %s", r.status, r.body)
			}
			tc.act(e)
			for _, p := range []string{pathVCFProviders, pathVCFProviders + "/" + vcfOktaID} {
				if r := e.get(p, tok); r.status != http.StatusUnauthorized || r.code() != tc.code {
					t.Fatalf("%s after: %d %s, want 401 %s", p, r.status, r.body, tc.code)
				}
			}
			if r := e.get(pathVCFProviders, e.login()); r.status != http.StatusOK {
				t.Fatalf("new token: %d %s", r.status, r.body)
			}
		})
	}
}

// vcfReferenceDirectories mirrors the providers of reference 004's examples.
func vcfReferenceDirectories(embeddedID string, external ...Directory) []Directory {
	emb := func(t string) *VCFSource {
		return &VCFSource{ProviderID: embeddedID, ProviderName: "Embedded IDP", ProviderType: VCFProviderEmbedded,
			SourceType: t, Status: VCFStatusInactive}
	}
	dirs := []Directory{
		{ID: "ref-vsphere", Name: "vsphere.local", Domains: []string{"vsphere.local"}, VCF: emb(VCFSourceSystemDomain)},
		{ID: "ref-localos", Name: "localos", Domains: []string{"localos"}, VCF: emb(VCFSourceLocalOS)},
		{ID: "ref-embedded-ad", Name: "embedded-ids-name", Domains: []string{"embedded-ids.com"}, VCF: emb(VCFSourceActiveDirectory)},
	}
	return append(dirs, external...)
}

// vcfDerivedKeys hold values the simulator derives (LDAP bind account, base DNs, servers, OIDC
// client): their type is compared with the reference, not their value.
var vcfDerivedKeys = map[string]bool{
	"username": true, "usersBaseDn": true, "groupsBaseDn": true, "serverEndpoints": true,
	"clientId": true, "discoveryEndpoint": true,
}

// TestVCFBodiesMatchReference configures the providers of reference 004's examples and compares
// the answers with the reference bodies: the same keys at every level, the same JSON types, and
// the same values except the derived ones.
func TestVCFBodiesMatchReference(t *testing.T) {
	adfs := func(id string) Directory {
		return Directory{ID: "ref-adfs", Name: "My AD Identity Source", Domains: []string{"external-idp.com"},
			VCF: &VCFSource{ProviderID: id, ProviderType: VCFProviderADFS, Status: VCFStatusActive}}
	}
	okta := Directory{ID: "ref-okta", Name: "OktaDirectory", Domains: []string{"external-okta-idp.com"},
		VCF: &VCFSource{ProviderID: "159498c4-6e0e-4757-ae4b-dcb6aaa93216", ProviderName: "Okta",
			ProviderType: VCFProviderBroker, SourceType: VCFSourceOkta, Status: VCFStatusActive,
			SyncClientTokenExpiresAt: time.Date(2024, 6, 21, 2, 43, 21, 998e6, time.UTC), SyncClientTokenTTL: 263000,
			ScimURL: "https://domain.com/usergroup/t/CUSTOMER/scim/v2"}}
	tests := []struct {
		file string
		dirs []Directory
		path string
	}{
		{"vcf-identity-providers-adfs.json", vcfReferenceDirectories("1a9bd081-40c4-434d-af78-33a162522100", adfs(vcfADFSID)), pathVCFProviders},
		{"vcf-identity-providers-okta.json", vcfReferenceDirectories("3262279b-09b0-44eb-a3be-f4bded4f0851", okta), pathVCFProviders},
		{"vcf-identity-provider-adfs.json", []Directory{adfs("be12eb48-11ea-486a-bb7d-756d2e0e4ade")},
			pathVCFProviders + "/be12eb48-11ea-486a-bb7d-756d2e0e4ade"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			e := newVCFEnv(t, func(c *Config) { c.Directories = tc.dirs })
			r := e.get(tc.path, e.login())
			if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
				t.Fatalf("GET %s: %d %s %s", tc.path, r.status, r.header.Get("Content-Type"), r.body)
			}
			want, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var wantV, gotV any
			if err := json.Unmarshal(want, &wantV); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(r.body, &gotV); err != nil {
				t.Fatal(err)
			}
			if diffs := vcfCompareJSON("$", wantV, gotV, false); len(diffs) > 0 {
				t.Fatalf("the answer differs from reference 004:\n  %s\nanswer: %s", strings.Join(diffs, "\n  "), r.body)
			}
		})
	}
}

// vcfCompareJSON lists the differences between two decoded JSON documents: keys, array lengths
// and types everywhere, values too unless shapeOnly (set under vcfDerivedKeys).
func vcfCompareJSON(path string, want, got any, shapeOnly bool) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object, got %T", path, got)}
		}
		var diffs []string
		for _, k := range sortedKeys(w) {
			if _, ok := g[k]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s.%s: missing", path, k))
				continue
			}
			diffs = append(diffs, vcfCompareJSON(path+"."+k, w[k], g[k], shapeOnly || vcfDerivedKeys[k])...)
		}
		for _, k := range sortedKeys(g) {
			if _, ok := w[k]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s.%s: not in the reference", path, k))
			}
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		switch {
		case !ok:
			return []string{fmt.Sprintf("%s: want an array, got %T", path, got)}
		case len(g) != len(w):
			return []string{fmt.Sprintf("%s: %d elements, want %d", path, len(g), len(w))}
		}
		var diffs []string
		for i := range w {
			diffs = append(diffs, vcfCompareJSON(fmt.Sprintf("%s[%d]", path, i), w[i], g[i], shapeOnly)...)
		}
		return diffs
	}
	if reflect.TypeOf(want) != reflect.TypeOf(got) {
		return []string{fmt.Sprintf("%s: type %T, want %T", path, got, want)}
	}
	if !shapeOnly && want != got {
		return []string{fmt.Sprintf("%s: %v, want %v", path, got, want)}
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// vcfListed is the list answer as the tests read it.
type vcfListed struct {
	Elements []vcfProvider `json:"elements"`
}

func (e *vcfEnv) providers() []vcfProvider {
	e.t.Helper()
	r := e.get(pathVCFProviders, e.login())
	if r.status != http.StatusOK {
		e.t.Fatalf("list: %d %s", r.status, r.body)
	}
	var l vcfListed
	if err := json.Unmarshal(r.body, &l); err != nil {
		e.t.Fatal(err)
	}
	return l.Elements
}

// TestVCFProviders: directories group into providers in configuration order, the Embedded IDP
// lists its sources in order, directories without a VCFSource are not listed, and each provider
// reads the same alone as in the list.
func TestVCFProviders(t *testing.T) {
	e := newVCFEnv(t, func(c *Config) {
		c.Directories = append(c.Directories, Directory{ID: "plain", Name: "Plain vIDM directory", Domains: []string{"plain.example.com"}})
	})
	ps := e.providers()
	var got []string
	for _, p := range ps {
		got = append(got, p.Type+" "+p.Name)
	}
	want := []string{"Embedded Embedded IDP", "Microsoft ADFS Corp ADFS", "FEDERATED_IDP_BROKER Okta", "FEDERATED_IDP_BROKER Entra ID"}
	if !slices.Equal(got, want) {
		t.Fatalf("providers = %q, want %q", got, want)
	}
	var sources []string
	for _, s := range *ps[0].IdentitySources {
		sources = append(sources, s.Type+" "+s.Name)
	}
	if want := []string{"SystemDomain vsphere.local", "LocalOs localos", "ActiveDirectory Corp AD", "OpenLdap Lab LDAP"}; !slices.Equal(sources, want) {
		t.Fatalf("embedded sources = %q, want %q", sources, want)
	}
	entra := ps[3].FedIdp
	if entra.Source != VCFSourceEntraID || entra.DirectoryList.Name != "entra_dir" || entra.DirectoryList.DefaultDomain != "entra.example.com" ||
		entra.SyncClientTokenInfo == nil || entra.SyncClientTokenInfo.ExpireAt != "2026-12-01T00:00:00.000Z" ||
		entra.SyncClientTokenInfo.ScimURL != defaultSCIMURL || ps[3].Status != VCFStatusActive {
		t.Fatalf("Entra ID provider = %+v", ps[3])
	}
	tok := e.login()
	for _, p := range ps {
		r := e.get(pathVCFProviders+"/"+p.ID, tok)
		var one vcfProvider
		if err := json.Unmarshal(r.body, &one); err != nil || r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", p.ID, r.status, r.body)
		}
		if !reflect.DeepEqual(one, p) {
			t.Errorf("GET %s = %+v, list has %+v", p.ID, one, p)
		}
	}
}

func TestVCFSetSyncClientTokenExpiry(t *testing.T) {
	var cfgOkta *VCFSource
	e := newVCFEnv(t, func(c *Config) {
		c.Directories[4].VCF.Status = VCFStatusInactive // ADFS
		cfgOkta = c.Directories[5].VCF
	})
	before := cfgOkta.SyncClientTokenExpiresAt
	at := time.Date(2027, 3, 4, 5, 6, 7, 891e6, time.FixedZone("CET", 3600))
	if err := e.sim.SetSyncClientTokenExpiry(vcfOktaID, at); err != nil {
		t.Fatal(err)
	}
	if err := e.sim.SetSyncClientTokenExpiry(vcfEntraID, time.Time{}); err != nil {
		t.Fatal(err)
	}
	ps := e.providers()
	if got := ps[2].FedIdp.SyncClientTokenInfo; got == nil || got.ExpireAt != "2027-03-04T04:06:07.891Z" {
		t.Fatalf("Okta token info = %+v, want expireAt 2027-03-04T04:06:07.891Z", got)
	}
	if f := ps[3].FedIdp; f.SyncClientTokenInfo != nil || f.SyncClientTokenTTL != nil {
		t.Fatalf("Entra ID without a token still reports one: %+v", f)
	}
	if ps[1].Status != VCFStatusInactive {
		t.Fatalf("ADFS status = %q", ps[1].Status)
	}
	if !cfgOkta.SyncClientTokenExpiresAt.Equal(before) {
		t.Fatal("SetSyncClientTokenExpiry changed the caller's configuration")
	}

	for _, tc := range []struct{ id, want string }{
		{vcfEmbeddedID, "not FEDERATED_IDP_BROKER"},
		{vcfADFSID, "not FEDERATED_IDP_BROKER"},
		{"no-such-provider", "no VCF identity provider"},
	} {
		if err := e.sim.SetSyncClientTokenExpiry(tc.id, at); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetSyncClientTokenExpiry(%s) = %v, want an error saying %q", tc.id, err, tc.want)
		}
	}
}

func TestVCFFaultThenRecovery(t *testing.T) {
	e := newVCFEnv(t, nil)
	tok := e.login()
	e.sim.SetFault(EndpointVCFProviders, Fault{Status: http.StatusServiceUnavailable, Times: 1})
	if r := e.get(pathVCFProviders, tok); r.status != http.StatusServiceUnavailable {
		t.Fatalf("first: %d, want 503", r.status)
	}
	if r := e.get(pathVCFProviders, tok); r.status != http.StatusOK {
		t.Fatalf("second: %d %s", r.status, r.body)
	}
	if got := e.sim.RequestsByStatus(EndpointVCFProviders); got[503] != 1 || got[200] != 1 || e.sim.Requests(EndpointVCFTokens) != 1 {
		t.Fatalf("statuses = %v, token requests = %d", got, e.sim.Requests(EndpointVCFTokens))
	}
}

func TestValidateVCFDirectories(t *testing.T) {
	emb := func(name, typ string) Directory {
		return Directory{ID: "d-" + name, Name: name, Domains: []string{name + ".example.com"},
			VCF: &VCFSource{ProviderID: "emb", ProviderName: "Embedded IDP", ProviderType: VCFProviderEmbedded, SourceType: typ}}
	}
	broker := func(name, id, src string) Directory {
		return Directory{ID: "d-" + name, Name: name, Domains: []string{name + ".example.com"},
			VCF: &VCFSource{ProviderID: id, ProviderType: VCFProviderBroker, SourceType: src}}
	}
	adfs := func(name, id string) Directory {
		return Directory{ID: "d-" + name, Name: name, Domains: []string{name + ".example.com"},
			VCF: &VCFSource{ProviderID: id, ProviderType: VCFProviderADFS}}
	}
	change := func(d Directory, f func(*Directory)) Directory {
		v := *d.VCF
		d.VCF = &v
		f(&d)
		return d
	}
	tests := []struct {
		name string
		dirs []Directory
		want string // "" for valid
	}{
		{"example", ExampleVCFConfig().Directories, ""},
		{"no VCF sources", []Directory{{ID: "a", Name: "A"}}, ""},
		{"empty provider id", []Directory{change(emb("a", VCFSourceActiveDirectory), func(d *Directory) { d.VCF.ProviderID = "" })}, "providerId"},
		{"provider id with a slash", []Directory{change(emb("a", VCFSourceActiveDirectory), func(d *Directory) { d.VCF.ProviderID = "a/b" })}, "must not contain '/'"},
		{"unknown provider type", []Directory{change(emb("a", VCFSourceActiveDirectory), func(d *Directory) { d.VCF.ProviderType = "AD_FS" })}, "providerType"},
		{"bad status", []Directory{change(emb("a", VCFSourceActiveDirectory), func(d *Directory) { d.VCF.Status = "ACTIVE" })}, "status"},
		{"no domain", []Directory{change(emb("a", VCFSourceActiveDirectory), func(d *Directory) { d.Domains = nil })}, "domain"},
		{"empty domain", []Directory{change(emb("a", VCFSourceActiveDirectory), func(d *Directory) { d.Domains = []string{" "} })}, "domain"},
		{"embedded source type", []Directory{emb("a", VCFSourceOkta)}, "sourceType"},
		{"embedded source type missing", []Directory{emb("a", "")}, "sourceType"},
		{"broker source type", []Directory{broker("a", "b1", VCFSourceActiveDirectory)}, "OKTA or MICROSOFT_ENTRA_ID"},
		{"ADFS source type", []Directory{change(adfs("a", "f1"), func(d *Directory) { d.VCF.SourceType = VCFSourceActiveDirectory })}, "an ADFS provider has none"},
		{"ADFS provider name", []Directory{change(adfs("a", "f1"), func(d *Directory) { d.VCF.ProviderName = "other" })}, "named by its directory"},
		{"token on embedded", []Directory{change(emb("a", VCFSourceActiveDirectory), func(d *Directory) { d.VCF.SyncClientTokenExpiresAt = time.Now() })}, "only"},
		{"scim url on ADFS", []Directory{change(adfs("a", "f1"), func(d *Directory) { d.VCF.ScimURL = "https://x/scim" })}, "only"},
		{"negative TTL", []Directory{change(broker("a", "b1", VCFSourceOkta), func(d *Directory) { d.VCF.SyncClientTokenTTL = -1 })}, "negative"},
		{"relative scim url", []Directory{change(broker("a", "b1", VCFSourceOkta), func(d *Directory) { d.VCF.ScimURL = "/scim/v2" })}, "absolute https URL"},
		{"two directories under one broker", []Directory{broker("a", "b1", VCFSourceOkta), broker("b", "b1", VCFSourceOkta)}, "already has its directory"},
		{"two directories under one ADFS", []Directory{adfs("a", "f1"), adfs("b", "f1")}, "already has its directory"},
		{"one id, two types", []Directory{emb("a", VCFSourceActiveDirectory), change(adfs("b", "emb"), func(*Directory) {})}, "is Embedded in directories[0]"},
		{"one provider, two names", []Directory{emb("a", VCFSourceActiveDirectory), change(emb("b", VCFSourceOpenLDAP), func(d *Directory) { d.VCF.ProviderName = "Other" })}, "is named"},
		{"one provider, two statuses", []Directory{emb("a", VCFSourceActiveDirectory), change(emb("b", VCFSourceOpenLDAP), func(d *Directory) { d.VCF.Status = VCFStatusInactive })}, "is active in directories[0], inactive here"},
		{"two embedded providers", []Directory{emb("a", VCFSourceActiveDirectory), change(emb("b", VCFSourceOpenLDAP), func(d *Directory) { d.VCF.ProviderID = "emb2" })}, "second Embedded provider"},
		{"valid mix", []Directory{emb("a", VCFSourceActiveDirectory), emb("b", VCFSourceOpenLDAP), adfs("c", "f1"), broker("d", "b1", VCFSourceOkta), broker("e", "b2", VCFSourceEntraID)}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := validateVCFDirectories(tc.dirs)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), "vcf: "):
				t.Fatalf("error %q does not say it is about the vcf section", err)
			}
		})
	}
}

func TestVCFConfigJSONRoundTrip(t *testing.T) {
	cfg := ExampleVCFConfig()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"providerType":"FEDERATED_IDP_BROKER"`, `"syncClientTokenExpiresAt":"2026-12-01T00:00:00Z"`, `"sourceType":"OKTA"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s", want)
		}
	}
	got, err := LoadConfig(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, cfg) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, cfg)
	}
	if _, err := LoadConfig(strings.NewReader(`{"flavor":"vcf","directories":[{"id":"a","name":"A","vcf":{"providerId":"p","bogus":1}}]}`)); err == nil {
		t.Error("unknown vcf field accepted")
	}
}

// TestVCFCompareJSON keeps the reference comparison honest: it must see every kind of difference.
func TestVCFCompareJSON(t *testing.T) {
	const ref = `{"a":"x","b":[1,2],"o":{"username":"u","k":true}}`
	tests := []struct {
		name, got, want string // want: a fragment of the first difference, "" for none
	}{
		{"same", ref, ""},
		{"derived value differs", `{"a":"x","b":[1,2],"o":{"username":"other","k":true}}`, ""},
		{"derived type differs", `{"a":"x","b":[1,2],"o":{"username":1,"k":true}}`, "$.o.username: type float64"},
		{"value differs", `{"a":"y","b":[1,2],"o":{"username":"u","k":true}}`, "$.a: y, want x"},
		{"missing key", `{"a":"x","b":[1,2],"o":{"username":"u"}}`, "$.o.k: missing"},
		{"extra key", `{"a":"x","b":[1,2],"c":0,"o":{"username":"u","k":true}}`, "$.c: not in the reference"},
		{"array length", `{"a":"x","b":[1],"o":{"username":"u","k":true}}`, "$.b: 1 elements, want 2"},
		{"object for array", `{"a":"x","b":{},"o":{"username":"u","k":true}}`, "$.b: want an array"},
		{"null for object", `{"a":"x","b":[1,2],"o":null}`, "$.o: want an object"},
	}
	var want any
	if err := json.Unmarshal([]byte(ref), &want); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		var got any
		if err := json.Unmarshal([]byte(tc.got), &got); err != nil {
			t.Fatal(err)
		}
		diffs := vcfCompareJSON("$", want, got, false)
		switch {
		case tc.want == "" && len(diffs) > 0:
			t.Errorf("%s: unexpected differences %q", tc.name, diffs)
		case tc.want != "" && (len(diffs) == 0 || !strings.Contains(diffs[0], tc.want)):
			t.Errorf("%s: differences %q, want one containing %q", tc.name, diffs, tc.want)
		}
	}
}
