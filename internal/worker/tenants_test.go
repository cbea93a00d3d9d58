package worker_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/control"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/schedule"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/workertest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/worker"
)

// The simulated identity systems of a tenants file: the worker test kit's.
const (
	simClientSecret = workertest.SimClientSecret
	simPassword     = workertest.SimPassword
	simRefreshToken = workertest.SimRefreshToken
)

type simBackend = workertest.SimBackend

func startSim(t *testing.T, cfg vidmsim.Config) *simBackend { return workertest.StartSim(t, cfg) }

func tenantEntry(name, kind string, b *simBackend, extra string) string {
	return workertest.TenantEntry(name, kind, b, extra)
}

// fileHarness runs workers against an embedded NATS server with their tenants from a file.
type fileHarness struct {
	*harness
	file string
}

func newFileHarness(t *testing.T, tenantsYAML string, env map[string]string) *fileHarness {
	t.Helper()
	file := workertest.WriteTenantsFile(t, tenantsYAML)
	kit := workertest.Start(t, workertest.Options{TenantsFile: file, Env: env})
	return &fileHarness{harness: &harness{Stack: kit, t: t}, file: file}
}

func tenantGroup(tenant, dir, name string) trigger.Trigger {
	return trigger.Trigger{Type: "ad.group.created", Source: "urn:test", Tenant: tenant, Directory: dir, Group: name}
}

// ownSyncs are the syncs the worker started (not foreign ones).
func ownSyncs(s *vidmsim.Server, dirName string) []vidmsim.SyncRecord {
	var out []vidmsim.SyncRecord
	for _, r := range s.SyncLog() {
		if r.DirectoryName == dirName && !r.Foreign {
			out = append(out, r)
		}
	}
	return out
}

var syncingDirectories = []vidmsim.Directory{
	{ID: "dir-corp", Name: "Corp AD", Domains: []string{"corp.example.com"}},
	{ID: "dir-broken", Name: "Broken AD", Domains: []string{"broken.example.com"}, FailMessage: "LDAP bind failed: invalid credentials for the bind user"},
}

// TestEveryBackendSyncs drives each backend through what the worker relies on: a sync started and
// COMPLETED, a sync already RUNNING elsewhere waited for, a FAILED sync reported with the
// backend's message, and tokens that expire mid-way replaced without a lost trigger.
func TestEveryBackendSyncs(t *testing.T) {
	for _, kind := range []string{"vidm", "vra-cloud", "vra7"} {
		t.Run(kind, func(t *testing.T) {
			flavor := vidmsim.Flavor(kind)
			b := startSim(t, vidmsim.Config{Flavor: flavor, Directories: syncingDirectories, SyncDuration: 300 * time.Millisecond})
			h := newFileHarness(t, "tenants:\n"+tenantEntry(kind, kind, b, ""), nil)
			h.startWorker("w1")

			// Started and COMPLETED.
			first := h.publish(tenantGroup("", "Corp AD", "proj-first"))
			r := reported(h.waitReported(20*time.Second, first))[first][0]
			if r.Data.Status != "COMPLETED" || r.Data.Tenant != kind || r.Data.DirectoryName != "Corp AD" {
				t.Fatalf("first result %+v, want COMPLETED for Corp AD of tenant %s", r.Data, kind)
			}
			if n := len(ownSyncs(b.Sim, "Corp AD")); n != 1 {
				t.Fatalf("%d syncs started for one trigger, want 1", n)
			}

			// RUNNING elsewhere: waited for, then ours starts after it ended.
			corpID := ownSyncs(b.Sim, "Corp AD")[0].DirectoryID
			if err := b.Sim.StartForeignSync(corpID, 500*time.Millisecond); err != nil {
				t.Fatal(err)
			}
			during := h.publish(tenantGroup(kind, "Corp AD", "proj-during-foreign"))
			h.waitReported(20*time.Second, during)
			log := b.Sim.SyncLog()
			var foreign, ours vidmsim.SyncRecord
			for _, rec := range log {
				if rec.Foreign {
					foreign = rec
				} else if rec.DirectoryName == "Corp AD" {
					ours = rec
				}
			}
			if len(ownSyncs(b.Sim, "Corp AD")) != 2 || ours.StartedAt.Before(foreign.FinishedAt) {
				t.Fatalf("sync log %+v: want our second sync to start after the foreign one finished", log)
			}
			if b.Sim.MaxConcurrentSyncs(corpID) != 1 {
				t.Fatalf("%d syncs ran at once, want 1", b.Sim.MaxConcurrentSyncs(corpID))
			}

			// FAILED, with the backend's message.
			broken := h.publish(tenantGroup(kind, "Broken AD", "proj-broken"))
			r = reported(h.waitReported(20*time.Second, broken))[broken][0]
			if r.Data.Status != "FAILED" || r.Data.Error == nil || r.Data.Error.Code != "VIDM_SYNC_FAILED" ||
				!strings.Contains(r.Data.Error.Message, "LDAP bind failed") {
				t.Fatalf("broken result %+v, want FAILED with the backend's message", r.Data)
			}

			// Tokens expire: one new login, nothing lost.
			tokensBefore := len(b.Sim.IssuedTokens())
			b.Sim.ExpireTokens()
			after := h.publish(tenantGroup(kind, "Corp AD", "proj-after-expiry"))
			r = reported(h.waitReported(20*time.Second, after))[after][0]
			if r.Data.Status != "COMPLETED" || len(b.Sim.IssuedTokens()) <= tokensBefore {
				t.Fatalf("after expiry: %+v with %d tokens issued (before %d), want COMPLETED with a new token",
					r.Data, len(b.Sim.IssuedTokens()), tokensBefore)
			}
			for _, secret := range []string{simClientSecret, simPassword, simRefreshToken} {
				if strings.Contains(h.Logs.String(), secret) {
					t.Fatalf("a secret reached the logs")
				}
			}
		})
	}
}

// TestOneHungBackendDoesNotStopTheOthers: one tenant's vIDM stops answering mid-way; the other
// tenant keeps syncing, the hung one's runs take no more than its own slots, and once it answers
// again its triggers are reported too.
func TestOneHungBackendDoesNotStopTheOthers(t *testing.T) {
	dirs := []vidmsim.Directory{
		{ID: "d1", Name: "One AD", Domains: []string{"one.example.com"}},
		{ID: "d2", Name: "Two AD", Domains: []string{"two.example.com"}},
		{ID: "d3", Name: "Three AD", Domains: []string{"three.example.com"}},
	}
	slow := startSim(t, vidmsim.Config{Directories: dirs, SyncDuration: 100 * time.Millisecond})
	fast := startSim(t, vidmsim.Config{Directories: dirs, SyncDuration: 100 * time.Millisecond})
	// Requests hang for longer than the test runs, so every run of the hung tenant stays stuck.
	limits := "    maxConcurrentSyncs: 2\n    requestTimeout: 30s\n"
	h := newFileHarness(t, "defaultTenant: fast\ntenants:\n"+tenantEntry("slow", "vidm", slow, limits)+tenantEntry("fast", "vidm", fast, limits),
		map[string]string{"MAX_CONCURRENT_SYNCS": "2"})
	h.startWorker("w1")

	// Both answer: the directory lists are read and cached.
	warm := []string{h.publish(tenantGroup("slow", "One AD", "warm-slow")), h.publish(tenantGroup("fast", "One AD", "warm-fast"))}
	h.waitReported(20*time.Second, warm...)

	base := slow.Sim.Requests(vidmsim.EndpointSyncStatus)
	for _, ep := range []vidmsim.Endpoint{vidmsim.EndpointSyncStatus, vidmsim.EndpointSyncStart, vidmsim.EndpointDirectories, vidmsim.EndpointOAuthToken} {
		slow.Sim.SetFault(ep, vidmsim.Fault{Hang: true})
	}
	var hung []string
	for _, d := range []string{"One AD", "Two AD", "Three AD"} {
		hung = append(hung, h.publish(tenantGroup("slow", d, "hung-"+d)))
	}
	// Give the hung tenant's runs time to take every slot they can before the other tenant's work.
	poll.Until(t, 10*time.Second, "the hung tenant's runs to be stuck in vIDM", func() bool {
		return slow.Sim.Requests(vidmsim.EndpointSyncStatus) >= base+2 // two runs stuck on a status read
	})
	var fastIDs []string
	for i := range 6 {
		d := []string{"One AD", "Two AD", "Three AD"}[i%3]
		fastIDs = append(fastIDs, h.publish(tenantGroup("", d, fmt.Sprintf("fast-%d", i))))
	}
	rs := h.waitReported(30*time.Second, fastIDs...)
	for _, id := range fastIDs {
		if r := reported(rs)[id][0]; r.Data.Status != "COMPLETED" || r.Data.Tenant != "fast" {
			t.Fatalf("fast tenant's trigger reported %+v while the other tenant hangs", r.Data)
		}
	}
	rep := reported(rs)
	for _, id := range hung {
		if len(rep[id]) != 0 {
			t.Fatalf("a trigger of the hung tenant was reported while it hangs: %+v", rep[id])
		}
	}
	// Three directories wait on the hung tenant, but only its two slots were taken.
	if n := slow.Sim.Requests(vidmsim.EndpointSyncStatus) - base; n != 2 {
		t.Fatalf("the hung tenant has %d runs stuck in vIDM, want its limit of 2", n)
	}

	// The hung backend recovers: its triggers are reported, none lost.
	slow.Sim.ClearFaults()
	slow.Sim.Resume()
	rs = h.waitReported(60*time.Second, hung...)
	for _, id := range hung {
		if r := reported(rs)[id]; len(r) != 1 || r[0].Data.Status != "COMPLETED" {
			t.Fatalf("hung tenant's trigger %s reported %+v after recovery, want one COMPLETED", id, r)
		}
	}
}

// TestTenantsFileReloadsOnSIGHUP: a valid file is applied without disturbing a sync in flight; an
// invalid one is refused with its reason and the configuration in use stays.
func TestTenantsFileReloadsOnSIGHUP(t *testing.T) {
	corp := startSim(t, vidmsim.Config{Directories: syncingDirectories, SyncDuration: 1500 * time.Millisecond})
	lab := startSim(t, vidmsim.Config{Flavor: vidmsim.FlavorVRA7, Directories: []vidmsim.Directory{
		{ID: "dir-lab", Name: "Lab AD", Domains: []string{"lab.example.com"}}}, SyncDuration: 100 * time.Millisecond})
	before := "tenants:\n" + tenantEntry("corp", "vidm", corp, "")
	h := newFileHarness(t, before, nil)
	reload := make(chan struct{})
	h.startWorker("w1", worker.WithReload(reload))

	// Unknown before the reload.
	early := h.publish(tenantGroup("lab", "Lab AD", "proj-early"))
	poll.Until(t, 10*time.Second, "the lab trigger dead-lettered", func() bool {
		for _, m := range h.streamMsgs(h.Cfg.DeadStream) {
			if m.Header.Get(contract.HeaderDeadCode) == contract.CodeUnknownTenant && strings.Contains(string(m.Data)+fmt.Sprint(m.Header), early) {
				return true
			}
		}
		return false
	})

	// A sync in flight while the file changes.
	inFlight := h.publish(tenantGroup("corp", "Corp AD", "proj-in-flight"))
	poll.Until(t, 10*time.Second, "corp's sync to start", func() bool { return len(ownSyncs(corp.Sim, "Corp AD")) == 1 })
	after := "defaultTenant: corp\ntenants:\n" + tenantEntry("corp", "vidm", corp, "") + tenantEntry("lab", "vra7", lab, "")
	if err := os.WriteFile(h.file, []byte(after), 0o600); err != nil {
		t.Fatal(err)
	}
	reload <- struct{}{}
	poll.Until(t, 10*time.Second, "the reload to be applied", func() bool {
		return strings.Contains(h.Logs.String(), "tenants configuration reloaded")
	})
	labID := h.publish(tenantGroup("lab", "Lab AD", "proj-lab"))
	rs := h.waitReported(20*time.Second, inFlight, labID)
	if r := reported(rs)[inFlight]; len(r) != 1 || r[0].Data.Status != "COMPLETED" {
		t.Fatalf("the sync in flight during the reload reported %+v, want one COMPLETED", r)
	}
	if r := reported(rs)[labID]; len(r) != 1 || r[0].Data.Status != "COMPLETED" || r[0].Data.Tenant != "lab" {
		t.Fatalf("lab after the reload reported %+v, want COMPLETED in tenant lab", r)
	}

	// An invalid file: refused with its reason; lab still works.
	bad := strings.Replace(after, "passwordFile: secrets/password", "password: inline-secret-value", 1)
	if err := os.WriteFile(h.file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	reload <- struct{}{}
	poll.Until(t, 10*time.Second, "the invalid file to be refused", func() bool {
		return strings.Contains(h.Logs.String(), "tenants configuration rejected")
	})
	for _, l := range strings.Split(h.Logs.String(), "\n") {
		if strings.Contains(l, "tenants configuration rejected") && !strings.Contains(l, "passwordFile") {
			t.Errorf("the refusal does not say what to fix: %s", l)
		}
	}
	if strings.Contains(h.Logs.String(), "inline-secret-value") {
		t.Fatal("the inline secret of the refused file reached the logs")
	}
	still := h.publish(tenantGroup("lab", "Lab AD", "proj-still"))
	if r := reported(h.waitReported(20*time.Second, still))[still]; r[0].Data.Status != "COMPLETED" {
		t.Fatalf("lab after a refused reload reported %+v", r)
	}
}

// TestScheduledSyncCoalescesWithABurst: a scheduled safety-net sync that fires during a burst of
// triggers is one more trigger: the directory still costs at most the running sync and one
// follow-up, and the scheduled trigger is reported like the others.
func TestScheduledSyncCoalescesWithABurst(t *testing.T) {
	b := startSim(t, vidmsim.Config{Directories: syncingDirectories, SyncDuration: 500 * time.Millisecond})
	h := newFileHarness(t, "tenants:\n"+tenantEntry("corp", "vidm", b, "    schedules:\n      - directory: Corp AD\n        cron: \"0 * * * *\"\n"), nil)
	var mu sync.Mutex
	now := time.Date(2026, 11, 23, 9, 59, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range strings.Split(h.Logs.String(), "\n") {
				if strings.Contains(l, "schedul") || strings.Contains(l, "WARN") || strings.Contains(l, "ERROR") {
					t.Log(l)
				}
			}
		}
	})
	h.startWorker("w1", worker.WithScheduleClock(clock, func(time.Duration) <-chan time.Time { return time.After(5 * time.Millisecond) }))
	// The schedule is set after the consumer exists: the clock moves only once it is.
	poll.Until(t, 10*time.Second, "the worker to run", func() bool { return strings.Contains(h.Logs.String(), `"worker running"`) })

	var burst []string
	for i := range 100 {
		burst = append(burst, h.publish(tenantGroup("", "Corp AD", fmt.Sprintf("proj-%d", i))))
		if i == 50 {
			mu.Lock()
			now = now.Add(time.Minute) // 10:00: the hourly slot is due mid-burst
			mu.Unlock()
		}
	}
	// Every replica derives the same id for the 10:00 slot.
	scheduled := schedule.EventID("corp", "Corp AD", time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	rs := h.waitReported(30*time.Second, append(burst, scheduled)...)
	if n := len(ownSyncs(b.Sim, "Corp AD")); n > 2 {
		t.Fatalf("%d syncs for a burst of 100 plus a scheduled sync, want at most 2", n)
	}
	if r := reported(rs)[scheduled]; len(r) != 1 || r[0].Data.Status != "COMPLETED" {
		t.Fatalf("the scheduled trigger reported %+v, want once COMPLETED", r)
	}
}

// warnings are the sync-client token warnings in the results stream, each checked against its
// schema and published on <prefix>.warning.
func (h *fileHarness) warnings() []contract.TokenWarningData {
	h.t.Helper()
	if h.schemas == nil {
		h.schemas = compileSchemas(h.t)
	}
	var out []contract.TokenWarningData
	for _, m := range h.streamMsgs(h.Cfg.ResultStream) {
		e, err := cenats.Decode(m.Header, m.Data)
		if err != nil || e.Type() != contract.TypeSyncClientTokenExpiring {
			continue
		}
		if m.Subject != h.Cfg.ResultSubjectPrefix+".warning" {
			h.t.Fatalf("warning published on %s", m.Subject)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(e.Data()))
		if err != nil {
			h.t.Fatal(err)
		}
		if err := h.schemas[e.Type()].Validate(doc); err != nil {
			h.t.Fatalf("warning %s breaks its schema: %v", e.ID(), err)
		}
		var d contract.TokenWarningData
		if err := json.Unmarshal(e.Data(), &d); err != nil {
			h.t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

// TestVCFDirectoriesAreDelegated: VCF has no sync to start. A trigger for an Okta directory is
// reported DELEGATED to the SCIM sync client with its token's expiry, one for an AD identity
// source DELEGATED to LDAP; nothing is started; the token expiring within the warning time raises
// a warning event and sets the expiry metric; an expired VCF login is replaced; no token value
// appears anywhere.
func TestVCFDirectoriesAreDelegated(t *testing.T) {
	expires := time.Now().Add(72 * time.Hour).UTC().Truncate(time.Second)
	b := startSim(t, vidmsim.Config{Flavor: vidmsim.FlavorVCF, Directories: []vidmsim.Directory{
		{ID: "okta", Name: "OktaDirectory", Domains: []string{"external-okta-idp.com"}, VCF: &vidmsim.VCFSource{
			ProviderID: "159498c4-6e0e-4757-ae4b-dcb6aaa93216", ProviderName: "Okta", ProviderType: vidmsim.VCFProviderBroker,
			SourceType: vidmsim.VCFSourceOkta, SyncClientTokenExpiresAt: expires, ScimURL: "https://vcf.example.com/usergroup/t/CUSTOMER/scim/v2"}},
		{ID: "embedded", Name: "Embedded AD", Domains: []string{"embedded-ids.com"}, VCF: &vidmsim.VCFSource{
			ProviderID: "1a9bd081-40c4-434d-af78-33a162522100", ProviderType: vidmsim.VCFProviderEmbedded, SourceType: vidmsim.VCFSourceActiveDirectory}},
	}})
	h := newFileHarness(t, "tenants:\n"+tenantEntry("vcf", "vcf", b, "    syncClientTokenWarning: 168h\n"), opsEnv(nil))
	admin := h.startOpsWorker("w1")

	okta := h.publish(tenantGroup("", "external-okta-idp.com", "okta-admins"))
	ad := h.publish(tenantGroup("vcf", "Embedded AD", "ad-admins"))
	rs := reported(h.waitReported(20*time.Second, okta, ad))
	o, a := rs[okta][0], rs[ad][0]
	if o.Type != contract.TypeCompleted || o.Data.Status != "DELEGATED" || o.Data.Delegation == nil ||
		o.Data.Delegation.Kind != "SCIM" || o.Data.Delegation.Provider != "Okta" || o.Data.Delegation.TokenExpiresAt == nil ||
		!o.Data.Delegation.TokenExpiresAt.Equal(expires) {
		t.Fatalf("Okta trigger reported %s %+v, want a completed event DELEGATED to Okta's SCIM client expiring %s", o.Type, o.Data, expires)
	}
	if a.Data.Status != "DELEGATED" || a.Data.Delegation == nil || a.Data.Delegation.Kind != "LDAP" || a.Data.Error != nil {
		t.Fatalf("embedded AD trigger reported %+v, want DELEGATED to LDAP", a.Data)
	}
	if n := b.Sim.Requests(vidmsim.EndpointSyncStart); n != 0 {
		t.Fatalf("%d sync requests sent to VCF, which has no sync", n)
	}
	// VCF's broker offers no lookup: the readiness check says so rather than pretend.
	for _, r := range []resultEvent{o, a} {
		if tr := r.Data.Triggers[0]; tr.Visible != nil || tr.PrincipalID != "" || !strings.Contains(tr.Hint, "not checked") {
			t.Errorf("delegated trigger entry %+v, want not checked, said so in its hint", tr)
		}
	}

	var ws []contract.TokenWarningData
	poll.Until(t, 10*time.Second, "the sync-client token warning", func() bool { ws = h.warnings(); return len(ws) > 0 })
	if len(ws) != 1 || ws[0].Tenant != "vcf" || ws[0].Provider != "Okta" || !ws[0].ExpiresAt.Equal(expires) ||
		!strings.Contains(ws[0].Message, "Okta") {
		t.Fatalf("warnings %+v, want one for Okta of tenant vcf expiring %s", ws, expires)
	}
	m := scrape(t, admin)
	if got := m[`dirsync_sync_client_token_expiry_timestamp_seconds{provider=Okta,tenant=vcf}`]; got != float64(expires.Unix()) {
		t.Fatalf("expiry metric = %v, want %d", got, expires.Unix())
	}
	if m[`dirsync_syncs_delegated_total{directory=OktaDirectory,tenant=vcf}`] != 1 {
		t.Fatalf("delegated counter: %v", m[`dirsync_syncs_delegated_total{directory=OktaDirectory,tenant=vcf}`])
	}
	// VCF's access token expires: one new login, and the next trigger is reported all the same.
	tokensBefore := len(b.Sim.IssuedTokens())
	b.Sim.ExpireTokens()
	again := h.publish(tenantGroup("vcf", "OktaDirectory", "okta-after-expiry"))
	if r := reported(h.waitReported(20*time.Second, again))[again][0]; r.Data.Status != "DELEGATED" || len(b.Sim.IssuedTokens()) <= tokensBefore {
		t.Fatalf("after the token expired: %+v with %d tokens issued (before %d)", r.Data, len(b.Sim.IssuedTokens()), tokensBefore)
	}

	all := h.Logs.String() + fmt.Sprint(h.streamMsgs(h.Cfg.ResultStream))
	for _, tok := range b.Sim.IssuedTokens() {
		if strings.Contains(all, tok) {
			t.Fatal("a VCF access token reached the logs or the events")
		}
	}
	if strings.Contains(all, simPassword) {
		t.Fatal("the VCF password reached the logs or the events")
	}
}

// TestTenantsReloadThroughTheAdminAPI: the admin API lists the tenants and reloads the file with
// an answer: the tenants now in use, or every problem of a refused file (and nothing changed).
func TestTenantsReloadThroughTheAdminAPI(t *testing.T) {
	corp := startSim(t, vidmsim.Config{Directories: syncingDirectories})
	lab := startSim(t, vidmsim.Config{Flavor: vidmsim.FlavorVRA7, Directories: []vidmsim.Directory{
		{ID: "dir-lab", Name: "Lab AD", Domains: []string{"lab.example.com"}}}})
	h := newFileHarness(t, "tenants:\n"+tenantEntry("corp", "vidm", corp, "    schedules:\n      - directory: Corp AD\n        cron: \"@hourly\"\n"), opsEnv(nil))
	admin := h.startOpsWorker("w1")

	var list struct{ Tenants []control.Tenant }
	callJSON(t, "GET", admin+"/api/v1/tenants", readToken, nil, http.StatusOK, &list)
	if len(list.Tenants) != 1 || list.Tenants[0].Name != "corp" || !list.Tenants[0].Default || list.Tenants[0].Backend.Kind != "vidm" ||
		len(list.Tenants[0].Schedules) != 1 || list.Tenants[0].Schedules[0].Next == nil {
		t.Fatalf("tenants %+v, want corp (default, vidm) with its hourly schedule", list.Tenants)
	}

	after := "defaultTenant: corp\ntenants:\n" + tenantEntry("corp", "vidm", corp, "") + tenantEntry("lab", "vra7", lab, "    directories: [\"Lab AD\"]\n")
	if err := os.WriteFile(h.file, []byte(after), 0o600); err != nil {
		t.Fatal(err)
	}
	var res control.ReloadResult
	callJSON(t, "POST", admin+"/api/v1/tenants/reload", adminToken, nil, http.StatusOK, &res)
	if res.File != h.file || len(res.Tenants) != 2 || res.Tenants[0].Name != "corp" || res.Tenants[1].Backend.Kind != "vra7" ||
		!slices.Equal(res.Tenants[1].AllowList, []string{"Lab AD"}) {
		t.Fatalf("reload answered %+v, want corp and lab (vra7, allow-list Lab AD)", res)
	}
	labID := h.publish(tenantGroup("lab", "lab.example.com", "proj-lab"))
	if r := reported(h.waitReported(20*time.Second, labID))[labID]; r[0].Data.Status != "COMPLETED" {
		t.Fatalf("lab after the reload: %+v", r)
	}

	bad := strings.Replace(after, "passwordFile: secrets/password", "password: inline-secret-value", 1)
	if err := os.WriteFile(h.file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, body := call(t, "POST", admin+"/api/v1/tenants/reload", adminToken, nil)
	if code != http.StatusUnprocessableEntity || !strings.Contains(string(body), "tenants.lab.auth") ||
		!strings.Contains(string(body), "passwordFile") || strings.Contains(string(body), "inline-secret-value") {
		t.Fatalf("reload of an invalid file: %d %s; want 422 naming tenants.lab.auth and passwordFile, without the secret", code, body)
	}
	callJSON(t, "GET", admin+"/api/v1/tenants", readToken, nil, http.StatusOK, &list)
	if len(list.Tenants) != 2 {
		t.Fatalf("after a refused reload: %+v, want the two tenants still in use", list.Tenants)
	}
	m := scrape(t, admin)
	if m[`dirsync_config_reloads_total{result=applied}`] != 1 || m[`dirsync_config_reloads_total{result=rejected}`] != 1 {
		t.Fatalf("reload counters: applied %v rejected %v", m[`dirsync_config_reloads_total{result=applied}`], m[`dirsync_config_reloads_total{result=rejected}`])
	}
}

// TestConnectorFailoverIsVisible: a sync that failed on one connector and ran on the next says
// so in the result event, the runs API and the status page.
func TestConnectorFailoverIsVisible(t *testing.T) {
	b := startSim(t, vidmsim.Config{Directories: []vidmsim.Directory{{ID: "dir-corp", Name: "Corp AD", Domains: []string{"corp.example.com"},
		Connectors: []string{"connector-a.corp.example.com", "connector-b.corp.example.com"}, DownConnectors: []string{"connector-a.corp.example.com"}}},
		SyncDuration: 100 * time.Millisecond})
	h := newFileHarness(t, "tenants:\n"+tenantEntry("corp", "vidm", b, ""), opsEnv(nil))
	admin := h.startOpsWorker("w1")

	id := h.publish(tenantGroup("", "Corp AD", "proj-failover"))
	r := reported(h.waitReported(20*time.Second, id))[id][0].Data
	if r.Status != "COMPLETED" || r.Connector != "connector-b.corp.example.com" || len(r.Attempts) != 2 ||
		r.Attempts[0].Connector != "connector-a.corp.example.com" || r.Attempts[0].Status != "FAILED" ||
		r.Attempts[1].Connector != "connector-b.corp.example.com" || r.Attempts[1].Status != "COMPLETED" {
		t.Fatalf("result %+v, want COMPLETED on connector-b after connector-a FAILED", r)
	}
	var runs struct{ Runs []control.Run }
	callJSON(t, "GET", admin+"/api/v1/directories/corp/dir-corp/runs", readToken, nil, http.StatusOK, &runs)
	if len(runs.Runs) != 1 || runs.Runs[0].Connector != "connector-b.corp.example.com" || len(runs.Runs[0].Attempts) != 2 {
		t.Fatalf("runs %+v, want the failover recorded", runs.Runs)
	}
	var d control.Directory
	callJSON(t, "GET", admin+"/api/v1/directories/corp/dir-corp", readToken, nil, http.StatusOK, &d)
	if !slices.Equal(d.Connectors, []string{"connector-a.corp.example.com", "connector-b.corp.example.com"}) || d.Backend != "vidm" {
		t.Fatalf("directory %+v, want its connectors in failover order", d)
	}
	code, page := call(t, "GET", admin+"/", readToken, nil)
	if code != http.StatusOK || !strings.Contains(string(page), `data-connector="connector-a.corp.example.com" data-status="FAILED"`) ||
		!strings.Contains(string(page), "connector-a.corp.example.com → connector-b.corp.example.com") {
		t.Fatalf("status page (%d) does not show the failover", code)
	}
}

// TestRemovedTenantsTriggersAreReported: a tenant removed from the file while it still has
// accepted triggers does not leave them without a result: they are reported failed,
// UNKNOWN_TENANT, retryable.
func TestRemovedTenantsTriggersAreReported(t *testing.T) {
	corp := startSim(t, vidmsim.Config{Directories: syncingDirectories})
	lab := startSim(t, vidmsim.Config{Directories: []vidmsim.Directory{{ID: "dir-lab", Name: "Lab AD", Domains: []string{"lab.example.com"}}}})
	both := "defaultTenant: corp\ntenants:\n" + tenantEntry("corp", "vidm", corp, "") + tenantEntry("lab", "vidm", lab, "")
	// A long window keeps the lab trigger pending, accepted but not yet in a run, across the reload.
	h := newFileHarness(t, both, opsEnv(map[string]string{"COALESCE_WINDOW": "3s"}))
	admin := h.startOpsWorker("w1")

	id := h.publish(tenantGroup("lab", "Lab AD", "proj-lab"))
	poll.Until(t, 10*time.Second, "the lab trigger accepted", func() bool {
		return strings.Contains(h.Logs.String(), `"trigger accepted"`) && strings.Contains(h.Logs.String(), id)
	})
	if err := os.WriteFile(h.file, []byte("tenants:\n"+tenantEntry("corp", "vidm", corp, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	var res control.ReloadResult
	callJSON(t, "POST", admin+"/api/v1/tenants/reload", adminToken, nil, http.StatusOK, &res)
	if len(res.Tenants) != 1 {
		t.Fatalf("after the reload: %+v, want corp only", res.Tenants)
	}
	r := reported(h.waitReported(20*time.Second, id))[id]
	if len(r) != 1 || r[0].Type != contract.TypeFailed || r[0].Data.Error == nil || r[0].Data.Error.Code != contract.CodeUnknownTenant ||
		!r[0].Data.Error.Retryable || r[0].Data.Tenant != "lab" {
		t.Fatalf("the removed tenant's trigger reported %+v, want one failed UNKNOWN_TENANT, retryable", r)
	}
	if n := len(ownSyncs(lab.Sim, "Lab AD")); n != 0 {
		t.Fatalf("%d syncs started in the removed tenant's vIDM", n)
	}
}
