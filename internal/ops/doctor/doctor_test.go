package doctor_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/doctor"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/workertest"
)

const corpID = "dir-corp"

func corp() vidmsim.Directory {
	return vidmsim.Directory{ID: corpID, Name: "Corp AD", Domains: []string{"corp.example.com"}}
}

func vcfDirectories() []vidmsim.Directory {
	return []vidmsim.Directory{{ID: "okta", Name: "OktaDirectory", Domains: []string{"external-okta-idp.com"}, VCF: &vidmsim.VCFSource{
		ProviderID: "159498c4-6e0e-4757-ae4b-dcb6aaa93216", ProviderName: "Okta", ProviderType: vidmsim.VCFProviderBroker,
		SourceType: vidmsim.VCFSourceOkta, SyncClientTokenExpiresAt: time.Now().Add(72 * time.Hour),
		ScimURL: "https://vcf.example.com/usergroup/t/CUSTOMER/scim/v2"}}}
}

// stack is a tenants-file stack serving one simulated system, with a worker running beside the
// check when asked (so that the streams, consumer and buckets exist).
func stack(t *testing.T, kind string, sc vidmsim.Config, env map[string]string, runWorker bool) (*workertest.Stack, *workertest.SimBackend, string) {
	t.Helper()
	b := workertest.StartSim(t, sc)
	file := workertest.WriteTenantsFile(t, "tenants:\n"+workertest.TenantEntry("t1", kind, b, ""))
	s := workertest.Start(t, workertest.Options{TenantsFile: file, Env: env})
	if runWorker {
		s.StartWorker("w1")
		poll.Until(t, 10*time.Second, "the worker's buckets", func() bool {
			_, err := s.JS.KeyValue(context.Background(), s.Cfg.ControlBucket)
			return err == nil
		})
	}
	return s, b, file
}

// synced runs a sync of the directory as vIDM's scheduler would, to its end.
func synced(t *testing.T, b *workertest.SimBackend, dirID string) {
	t.Helper()
	if err := b.Sim.StartForeignSync(dirID, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 5*time.Second, "the sync finished", func() bool {
		log := b.Sim.SyncLog()
		return len(log) == 1 && log[0].Status == vidmsim.StatusCompleted
	})
}

func run(t *testing.T, s *workertest.Stack, o doctor.Options) (doctor.Report, string, string) {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	rep := doctor.Run(context.Background(), s.Cfg, o)
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{workertest.SimClientSecret, workertest.SimPassword, workertest.SimRefreshToken} {
		if strings.Contains(text.String(), secret) || strings.Contains(string(js), secret) {
			t.Fatalf("the report prints a secret:\n%s", text.String())
		}
	}
	return rep, text.String(), string(js)
}

func find(t *testing.T, s doctor.Section, prefix string) doctor.Check {
	t.Helper()
	for _, c := range s.Checks {
		if strings.HasPrefix(c.Name, prefix) {
			return c
		}
	}
	t.Fatalf("section %s has no check %q: %+v", s.Name, prefix, s.Checks)
	return doctor.Check{}
}

func TestCheckEveryFlavor(t *testing.T) {
	tests := []struct {
		kind       string
		sc         vidmsim.Config
		lookup     doctor.Status
		statusText string
	}{
		{"vidm", vidmsim.Config{Directories: []vidmsim.Directory{corp()}}, doctor.OK, "COMPLETED, started"},
		{"vra-cloud", vidmsim.Config{Flavor: vidmsim.FlavorVRACloud, Directories: []vidmsim.Directory{corp()}}, doctor.OK, "COMPLETED, started"},
		{"vra7", vidmsim.Config{Flavor: vidmsim.FlavorVRA7, Directories: []vidmsim.Directory{corp()}}, doctor.OK, "COMPLETED"},
		{"vcf", vidmsim.Config{Flavor: vidmsim.FlavorVCF, Directories: vcfDirectories()}, doctor.Skip, "kept current by Okta"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			t.Parallel()
			s, b, _ := stack(t, tt.kind, tt.sc, nil, true)
			if tt.kind != "vcf" {
				synced(t, b, corpID) // groups are visible after a sync
			}
			rep, text, js := run(t, s, doctor.Options{Group: "proj-alpha-admins"})
			t.Log("\n" + text)
			if !rep.OK {
				t.Fatalf("report not OK:\n%s", text)
			}
			for _, c := range rep.NATS.Checks {
				if c.Status != doctor.OK && (c.Name != "permissions" || c.Status != doctor.Skip) {
					t.Errorf("NATS check %s: %s %s", c.Name, c.Status, c.Detail)
				}
			}
			tn := rep.Tenants[0]
			if c := find(t, tn, "TLS"); c.Status != doctor.OK || !strings.Contains(c.Detail, "verified") {
				t.Errorf("TLS: %+v", c)
			}
			if c := find(t, tn, "login"); c.Status != doctor.OK {
				t.Errorf("login: %+v", c)
			}
			if c := find(t, tn, "sync status of"); c.Status == doctor.Fail || !strings.Contains(c.Detail, tt.statusText) {
				t.Errorf("sync status: %+v, want it to read %q", c, tt.statusText)
			}
			if c := find(t, tn, "readiness lookup"); c.Status != tt.lookup {
				t.Errorf("readiness lookup: %+v, want %s", c, tt.lookup)
			}
			if n := b.Sim.Requests(vidmsim.EndpointSyncStart) + b.Sim.Requests(vidmsim.EndpointVRA7SyncStart); n != 0 {
				t.Errorf("the check sent %d sync requests; it must start none", n)
			}
			var back map[string]any
			if err := json.Unmarshal([]byte(js), &back); err != nil || back["ok"] != true || back["nats"] == nil || back["tenants"] == nil {
				t.Errorf("--json %s (%v), want ok, nats and tenants", js, err)
			}
		})
	}
}

// The status body is undocumented: a shape the worker does not understand is a failure, one
// without dates a warning that names the signal missing.
func TestCheckFlagsStatusBodies(t *testing.T) {
	tests := []struct {
		body   vidmsim.StatusBody
		status doctor.Status
		want   string
	}{
		{vidmsim.StatusBodyFull, doctor.OK, "start date: given"},
		{vidmsim.StatusBodyNoDates, doctor.Warn, "no start date"},
		{vidmsim.StatusBodyUnexpected, doctor.Fail, "no status field"},
	}
	for _, tt := range tests {
		t.Run(string(tt.body), func(t *testing.T) {
			t.Parallel()
			s, b, _ := stack(t, "vidm", vidmsim.Config{Directories: []vidmsim.Directory{corp()}, StatusBody: tt.body}, nil, false)
			synced(t, b, corpID)
			rep, text, js := run(t, s, doctor.Options{})
			c := find(t, rep.Tenants[0], "sync status of Corp AD")
			if c.Status != tt.status || !strings.Contains(c.Detail+js, tt.want) {
				t.Errorf("%s %q, want %s mentioning %q\n%s", c.Status, c.Detail, tt.status, tt.want, text)
			}
			if rep.OK != (tt.status != doctor.Fail) {
				t.Errorf("report OK = %t with a %s status check", rep.OK, tt.status)
			}
		})
	}
}

// Without the streams (and MANAGE_STREAMS=false) NATS fails with the fix; a wrong secret fails
// the login; neither prints a secret; a directory whose sync is turned off is flagged.
func TestCheckFailuresSayWhatToFix(t *testing.T) {
	t.Parallel()
	dirs := []vidmsim.Directory{corp(), {ID: "dir-frozen", Name: "Frozen AD", Domains: []string{"frozen.example.com"}, SyncDisabled: true}}
	s, _, file := stack(t, "vidm", vidmsim.Config{Directories: dirs}, map[string]string{"MANAGE_STREAMS": "false"}, false)
	rep, text, _ := run(t, s, doctor.Options{})
	if rep.OK {
		t.Fatalf("report OK without the streams:\n%s", text)
	}
	if c := find(t, rep.NATS, "stream "+s.Cfg.TriggerStream); c.Status != doctor.Fail || !strings.Contains(c.Detail, "deploy/nats/streams") {
		t.Errorf("missing stream: %+v", c)
	}
	if c := find(t, rep.Tenants[0], "sync status of Frozen AD"); c.Status != doctor.Warn || !strings.Contains(c.Detail, "DIRECTORY_SYNC_DISABLED") {
		t.Errorf("directory with its sync turned off: %+v", c)
	}

	secret := filepath.Join(filepath.Dir(file), "secrets", "client-secret")
	if err := os.WriteFile(secret, []byte("not-the-secret-9x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, text, _ = run(t, s, doctor.Options{})
	if c := find(t, rep.Tenants[0], "login"); c.Status != doctor.Fail || strings.Contains(text, "not-the-secret-9x") {
		t.Errorf("wrong secret: %+v\n%s", c, text)
	}
}

// A server that never answers cannot hold the check: each call ends with the timeout.
func TestCheckEndsWhenTheServerHangs(t *testing.T) {
	t.Parallel()
	s, b, _ := stack(t, "vidm", vidmsim.Config{Directories: []vidmsim.Directory{corp()}}, nil, false)
	b.Sim.SetFault(vidmsim.EndpointOAuthToken, vidmsim.Fault{Hang: true})
	rep, text, _ := run(t, s, doctor.Options{Timeout: 300 * time.Millisecond})
	if c := find(t, rep.Tenants[0], "login"); c.Status != doctor.Fail || rep.OK {
		t.Errorf("hung login: %+v\n%s", c, text)
	}
}
