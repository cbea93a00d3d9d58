package vidmsim_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

func TestConfigRoundTrip(t *testing.T) {
	cfg := vidmsim.ExampleConfig()
	cfg.Directories[0].SyncDuration = 1500 * time.Millisecond
	cfg.Directories[1].FailMessage = "bind failed"
	cfg.Seed = 9
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"syncDuration":"3s"`, `"tokenTTL":"1h0m0s"`, `"syncDuration":"1.5s"`, `"id":"dir-corp-ad"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	got, err := vidmsim.LoadConfig(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, cfg) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, cfg)
	}
}

func TestDirectoryJSON(t *testing.T) {
	d := vidmsim.Directory{ID: "a", Name: "A", SyncDuration: time.Minute, SafeguardViolation: true}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var got vidmsim.Directory
	if err := json.Unmarshal(b, &got); err != nil || !reflect.DeepEqual(got, d) {
		t.Fatalf("round trip of %s: %+v, %v", b, got, err)
	}
	if err := json.Unmarshal([]byte(`{"id":"a","name":"A","bogus":1}`), &got); err == nil {
		t.Error("unknown field accepted")
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct{ name, json, want string }{
		{"not json", `{`, "decode config"},
		{"unknown field", `{"directories":[],"tokenLifetime":"1h"}`, "unknown field"},
		{"unknown directory field", `{"directories":[{"id":"a","name":"A","domain":"x"}]}`, "unknown field"},
		{"numeric duration", `{"directories":[],"syncDuration":3}`, "duration must be a string"},
		{"bad duration", `{"directories":[],"syncDuration":"3 parsecs"}`, "3 parsecs"},
		{"trailing data", `{"directories":[]} {}`, "trailing data"},
		{"invalid content", `{"directories":[{"id":"a","name":"A"},{"id":"a","name":"B"}]}`, "duplicate id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := vidmsim.LoadConfig(strings.NewReader(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	dir := func(id, name string) vidmsim.Directory { return vidmsim.Directory{ID: id, Name: name} }
	tests := []struct {
		name string
		cfg  vidmsim.Config
		want string
	}{
		{"duplicate directory id", vidmsim.Config{Directories: []vidmsim.Directory{dir("a", "A"), dir("a", "B")}}, "duplicate id"},
		{"duplicate directory name", vidmsim.Config{Directories: []vidmsim.Directory{dir("a", "A"), dir("b", "a")}}, "duplicate name"},
		{"empty directory id", vidmsim.Config{Directories: []vidmsim.Directory{dir("", "A")}}, "path segment"},
		{"empty directory name", vidmsim.Config{Directories: []vidmsim.Directory{dir("a", " ")}}, "name must not be empty"},
		{"empty client secret", vidmsim.Config{Clients: []vidmsim.Client{{ID: "c"}}}, "id and secret"},
		{"duplicate client", vidmsim.Config{Clients: []vidmsim.Client{{ID: "c", Secret: "s"}, {ID: "c", Secret: "t"}}}, "duplicate id"},
		{"empty password", vidmsim.Config{Users: []vidmsim.User{{Username: "u"}}}, "username and password"},
		{"duplicate user", vidmsim.Config{Users: []vidmsim.User{{Username: "u", Password: "p"}, {Username: "u", Password: "q"}}}, "duplicate username"},
		{"negative ttl", vidmsim.Config{TokenTTL: -time.Second}, "tokenTTL"},
		{"negative sync duration", vidmsim.Config{SyncDuration: -time.Second}, "syncDuration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := vidmsim.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	if _, err := vidmsim.New(vidmsim.Config{}); err != nil {
		t.Fatalf("empty config: %v", err)
	}
}

// TestDefaults: zero durations get 1h tokens and 2s syncs.
func TestDefaults(t *testing.T) {
	e := newEnv(t, func(c *vidmsim.Config) {
		c.TokenTTL, c.SyncDuration = 0, 0
		c.Directories = []vidmsim.Directory{{ID: "d", Name: "D"}}
	})
	tok := e.token()
	if c := jwtClaims(t, tok); c.EXP-c.IAT != 3600 {
		t.Errorf("token lifetime = %ds", c.EXP-c.IAT)
	}
	e.startSync(tok, "d", false)
	e.clock.Advance(1999 * time.Millisecond)
	if st := e.syncStatus(tok, "d"); st.Status != "RUNNING" {
		t.Fatalf("at 1.999s: %s", st.Status)
	}
	e.clock.Advance(time.Millisecond)
	if st := e.syncStatus(tok, "d"); st.Status != "COMPLETED" {
		t.Fatalf("at 2s: %s", st.Status)
	}
	var body struct{ Items []struct{ Type string } }
	mustUnmarshal(t, e.listDirs(tok).body, &body)
	if body.Items[0].Type != "ACTIVE_DIRECTORY_LDAP" {
		t.Errorf("default type = %q", body.Items[0].Type)
	}
}
