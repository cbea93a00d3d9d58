// Package adminfake is an in-memory admin.Source and a realistic state in it: the admin port's
// tests and the status page's browser tests (internal/ops/admin/browsertest, a module of its own
// so that its browser driver is no dependency of this module) share it.
package adminfake

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/control"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

// Source is an in-memory admin.Source: directories, their runs and dead letters, with the
// control package's conflict and not-found rules, and every request recorded. Tests set its
// fields before its first request.
type Source struct {
	mu         sync.Mutex
	Dirs       []control.Directory
	RunHistory map[string][]control.Run // by Key(tenant, directoryId), in flight first then newest first
	Dead       control.DeadLetters
	Fail       map[string]error // by method name: the error that method returns
	calls      []string
	Now        time.Time // when a pause starts
}

// Key is RunHistory's key of a directory.
func Key(tenant, id string) string { return tenant + "/" + id }

// Change runs change with f locked, for a test that changes f while the handler may read it.
func (f *Source) Change(change func(*Source)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

func (f *Source) record(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

// Calls returns the requests so far, one line each, such as "Runs default/<id> limit=20".
func (f *Source) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *Source) failure(method string) error {
	return f.Fail[method]
}

func (f *Source) find(tenant, id string) (int, error) {
	for i, d := range f.Dirs {
		if d.Tenant == tenant && d.DirectoryID == id {
			return i, nil
		}
	}
	return 0, fmt.Errorf("directory %q of tenant %q: %w", id, tenant, control.ErrNotFound)
}

func (f *Source) Directories(context.Context) ([]control.Directory, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Directories")
	if err := f.failure("Directories"); err != nil {
		return nil, err
	}
	return slices.SortedStableFunc(slices.Values(f.Dirs), control.CompareDirectories), nil
}

func (f *Source) Directory(_ context.Context, tenant, id string) (control.Directory, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Directory %s", Key(tenant, id))
	if err := f.failure("Directory"); err != nil {
		return control.Directory{}, err
	}
	i, err := f.find(tenant, id)
	if err != nil {
		return control.Directory{}, err
	}
	return f.Dirs[i], nil
}

func (f *Source) Runs(_ context.Context, tenant, id string, limit int) ([]control.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Runs %s limit=%d", Key(tenant, id), limit)
	if err := f.failure("Runs"); err != nil {
		return nil, err
	}
	if _, err := f.find(tenant, id); err != nil {
		return nil, err
	}
	runs := slices.Clone(f.RunHistory[Key(tenant, id)])
	if len(runs) > limit {
		runs = runs[:limit]
	}
	return runs, nil
}

func (f *Source) RequestSync(_ context.Context, tenant, id string, o control.SyncOptions) (control.SyncRequest, error) {
	queue, reason := o.Queue, o.Reason
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("RequestSync %s queue=%t reason=%q", Key(tenant, id), queue, reason)
	if err := f.failure("RequestSync"); err != nil {
		return control.SyncRequest{}, err
	}
	i, err := f.find(tenant, id)
	if err != nil {
		return control.SyncRequest{}, err
	}
	d := f.Dirs[i]
	busy := d.CurrentRun != nil || d.Paused != nil
	switch {
	case busy && !queue && d.CurrentRun != nil:
		return control.SyncRequest{}, &control.ConflictError{Reason: "running", CurrentRun: d.CurrentRun,
			Message: fmt.Sprintf("a sync of %q is already in flight (run %s); add ?queue=true to sync again after it", d.Name, d.CurrentRun.RunID)}
	case busy && !queue:
		return control.SyncRequest{}, &control.ConflictError{Reason: "paused",
			Message: fmt.Sprintf("directory %q is paused; resume it, or add ?queue=true to queue the sync for when it is resumed", d.Name)}
	}
	return control.SyncRequest{EventID: "0f8b7c52-3d0e-4c8e-9a51-7be1c0a1d001", Queued: busy}, nil
}

func (f *Source) Pause(_ context.Context, tenant, id, reason string) (control.Directory, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Pause %s reason=%q", Key(tenant, id), reason)
	if err := f.failure("Pause"); err != nil {
		return control.Directory{}, err
	}
	i, err := f.find(tenant, id)
	if err != nil {
		return control.Directory{}, err
	}
	f.Dirs[i].Paused = &control.Pause{Since: f.Now, Reason: reason}
	if f.Dirs[i].CurrentRun == nil {
		f.Dirs[i].State = control.StatePaused
	}
	return f.Dirs[i], nil
}

// Cancel records the call and answers like the control service: the directory's pending
// triggers are counted as cancelled, or a conflict when there are none.
func (f *Source) Cancel(_ context.Context, tenant, id, by, reason string) (control.Cancellation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Cancel %s by=%q reason=%q", Key(tenant, id), by, reason)
	if err := f.failure("Cancel"); err != nil {
		return control.Cancellation{}, err
	}
	i, err := f.find(tenant, id)
	if err != nil {
		return control.Cancellation{}, err
	}
	d := &f.Dirs[i]
	if d.PendingTriggers == 0 {
		return control.Cancellation{}, &control.ConflictError{Reason: "nothing_pending", CurrentRun: d.CurrentRun,
			Message: fmt.Sprintf("directory %q has no pending triggers to cancel", d.Name)}
	}
	c := control.Cancellation{ID: "cancel-1", By: by, Reason: reason, At: f.Now, Triggers: d.PendingTriggers, CurrentRun: d.CurrentRun}
	d.PendingTriggers = 0
	return c, nil
}

func (f *Source) Resume(_ context.Context, tenant, id string) (control.Directory, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Resume %s", Key(tenant, id))
	if err := f.failure("Resume"); err != nil {
		return control.Directory{}, err
	}
	i, err := f.find(tenant, id)
	if err != nil {
		return control.Directory{}, err
	}
	d := &f.Dirs[i]
	d.Paused = nil
	switch {
	case d.CurrentRun != nil:
		d.State = control.StateSyncing
	case d.PendingTriggers > 0:
		d.State = control.StatePending
	default:
		d.State = control.StateIdle
	}
	return *d, nil
}

func (f *Source) DeadLetters(_ context.Context, limit int, before uint64) (control.DeadLetters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if before > 0 {
		f.record("DeadLetters limit=%d before=%d", limit, before)
	} else {
		f.record("DeadLetters limit=%d", limit)
	}
	if err := f.failure("DeadLetters"); err != nil {
		return control.DeadLetters{}, err
	}
	out := control.DeadLetters{Total: f.Dead.Total, Items: []control.DeadLetter{}}
	for _, d := range f.Dead.Items { // newest first
		if before == 0 || d.Seq < before {
			out.Items = append(out.Items, d)
		}
	}
	if len(out.Items) > limit {
		out.Items = out.Items[:limit]
		out.Next = out.Items[limit-1].Seq
	}
	return out, nil
}

func (f *Source) Redrive(_ context.Context, seqs []uint64) (control.RedriveResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Redrive %v", seqs)
	if err := f.failure("Redrive"); err != nil {
		return control.RedriveResult{}, err
	}
	res := control.RedriveResult{Redriven: []uint64{}}
	if len(seqs) == 0 {
		for _, d := range f.Dead.Items {
			seqs = append(seqs, d.Seq)
		}
	}
	for _, seq := range seqs {
		if slices.ContainsFunc(f.Dead.Items, func(d control.DeadLetter) bool { return d.Seq == seq }) {
			res.Redriven = append(res.Redriven, seq)
		} else {
			res.Failed = append(res.Failed, control.RedriveFailure{Seq: seq, Error: "no such dead letter (already re-driven or expired)"})
		}
	}
	return res, nil
}

func (f *Source) Tenants(context.Context) ([]control.Tenant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Tenants")
	if err := f.failure("Tenants"); err != nil {
		return nil, err
	}
	return []control.Tenant{{Name: "default", Default: true, MaxConcurrentSyncs: 8,
		Backend: backend.Description{Kind: backend.KindVIDM, BaseURL: "https://vidm.corp.example.com", Safeguards: true, Connectors: true}}}, nil
}

func (f *Source) ReloadTenants(context.Context) (control.ReloadResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("ReloadTenants")
	if err := f.failure("ReloadTenants"); err != nil {
		return control.ReloadResult{}, err
	}
	return control.ReloadResult{File: "/etc/vidm-sync-worker/tenants.yaml", Tenants: []control.Tenant{{Name: "default", Default: true,
		Backend: backend.Description{Kind: backend.KindVIDM, BaseURL: "https://vidm.corp.example.com"}}}}, nil
}

// ErrBroken is a Source failure whose detail belongs in the log only.
var ErrBroken = errors.New("jetstream: stream DIRSYNC_RUNS: nats: timeout (detail only for the log)")

// Now is the fake clock of every test: a weekday afternoon, UTC.
var Now = time.Date(2026, time.May, 12, 14, 32, 5, 0, time.UTC)

func at(d time.Duration) *time.Time {
	t := Now.Add(-d)
	return &t
}

// Directory ids as vIDM makes them.
const (
	IDCorp    = "6c1d2f0e-8f2b-4f55-9a57-3c2f1d9e0a11"
	IDLab     = "a83e5d21-0c4b-4a7e-b1a9-52f7e3c9d402"
	IDPartner = "2f9c7b1a-5e3d-4c6a-8b0f-9d1e2a3b4c53"
	IDRetail  = "d4e5f6a7-1b2c-4d3e-8f9a-0b1c2d3e4f64"
	IDGone    = "0a0b0c0d-1111-4222-8333-444455556666"
	IDHostile = "e7f8a9b0-2222-4333-9444-555566667777"
	IDHR      = "b1c2d3e4-5f60-4718-8a9b-0c1d2e3f4a75"
)

// HostileName is a directory name that is HTML.
const HostileName = `<script>alert(1)</script>`

func trig(id, typ, group, user string, ago time.Duration) control.Trigger {
	return control.Trigger{ID: id, Source: "urn:pipeline:ad-provisioning", Type: typ, Group: group, User: user, AcceptedAt: *at(ago)}
}

// RichState is a realistic worker: a directory syncing with more triggers waiting (its polls
// failed twice), one stuck on a run of 100,000 triggers, one pending, one paused, one idle whose
// last run failed, one idle and fine, one vIDM no longer lists, and dead letters. hostile adds a
// directory whose name and domain are HTML.
func RichState(hostile bool) *Source {
	hrSample := make([]control.Trigger, 10)
	for i := range hrSample {
		hrSample[i] = trig(fmt.Sprintf("c4d5e6f7-0000-4000-8000-%012d", i+1), "ad.group.created", fmt.Sprintf("hr-onboarding-wave-%02d", i+1), "", 41*time.Minute)
	}
	hrStuck := control.Run{
		RunID: "run-01HXC3ZK", Status: control.RunQueued, Phase: "posting", CreatedAt: *at(40 * time.Minute),
		Holder: "vidm-sync-worker-7d9f8-m8p2r", TriggerCount: 100000, Pages: 7, Triggers: hrSample,
		Trouble: &control.Trouble{Failures: 7, Since: *at(38 * time.Minute), Last: *at(2 * time.Minute), Stuck: true,
			Error: "starting the sync: vIDM answered 401: the OAuth client svc-dirsync is disabled"},
	}
	hrDone := control.Run{
		RunID: "run-01HX8Q4D", Status: control.RunCompleted, CreatedAt: *at(6 * time.Hour), StartedAt: at(6 * time.Hour),
		FinishedAt: at(6*time.Hour - 4*time.Minute), DurationMs: (4 * time.Minute).Milliseconds(), TriggerCount: 2500, Pages: 1,
		Triggers: hrSample[:3],
	}
	corpRunning := control.Run{
		RunID: "run-01HXC7M2", Status: control.RunRunning, Phase: "posted", CreatedAt: *at(3*time.Minute + 14*time.Second),
		StartedAt: at(3*time.Minute + 12*time.Second), DurationMs: (3*time.Minute + 12*time.Second).Milliseconds(),
		Trouble: &control.Trouble{Failures: 2, Since: *at(70 * time.Second), Last: *at(20 * time.Second),
			Error: "polling the sync status: vIDM answered 503 Service Unavailable"},
		Holder: "vidm-sync-worker-7d9f8-x2k4q", TriggerCount: 3,
		Triggers: []control.Trigger{
			trig("4b1e0c7a-91d3-4f0e-8a52-0c3d5e7f9a10", "ad.group.created", "proj-alpha-admins", "", 3*time.Minute+20*time.Second),
			trig("7f2a9d4c-2b6e-4c1a-9e3f-5a8b7c6d4e21", "ad.group.created", "proj-alpha-devs", "", 3*time.Minute+19*time.Second),
			trig("9c3b8e5d-4a7f-4b2c-8d1e-6f0a9b8c7d32", "ad.user.created", "", "jdoe@corp.example.com", 3*time.Minute+18*time.Second),
		},
	}
	corpDone := control.Run{
		RunID: "run-01HXC2Q9", Status: control.RunCompleted, CreatedAt: *at(62 * time.Minute), StartedAt: at(62 * time.Minute),
		FinishedAt: at(60*time.Minute + 41*time.Second), DurationMs: (81 * time.Second).Milliseconds(), TriggerCount: 2,
		Connector: "connector-02.corp.example.com",
		Attempts: []contract.Attempt{
			{Connector: "connector-01.corp.example.com", Status: "FAILED", Message: "connector connector-01.corp.example.com unavailable"},
			{Connector: "connector-02.corp.example.com", Status: "COMPLETED"},
		},
		Readiness: &dirsync.Readiness{Visible: 1, NotVisible: 1, NotVisibleSample: []string{"proj-beta-admins"}},
		Triggers: []control.Trigger{
			trig("1a2b3c4d-0000-4000-8000-000000000001", "ad.group.created", "proj-beta-readers", "", 63*time.Minute),
			trig("1a2b3c4d-0000-4000-8000-000000000002", "ad.group.member.added", "proj-beta-admins", "", 63*time.Minute),
		},
	}
	corpOlder := control.Run{
		RunID: "run-01HXBZ11", Status: control.RunCompleted, CreatedAt: *at(5 * time.Hour), StartedAt: at(5 * time.Hour),
		FinishedAt: at(5*time.Hour - 74*time.Second), DurationMs: (74 * time.Second).Milliseconds(), TriggerCount: 1,
		Triggers: []control.Trigger{trig("1a2b3c4d-0000-4000-8000-000000000003", "vidm.directory.sync.requested", "", "", 5*time.Hour)},
	}
	labFailed := control.Run{
		RunID: "run-01HXC5T7", Status: control.RunFailed, CreatedAt: *at(14 * time.Minute), StartedAt: at(14 * time.Minute),
		FinishedAt: at(12 * time.Minute), DurationMs: (2 * time.Minute).Milliseconds(), TriggerCount: 2,
		Error: &control.RunError{Code: "VIDM_SYNC_FAILED", Message: "LDAP bind failed for CN=svc-vidm,OU=Service Accounts,DC=lab,DC=example,DC=com: invalid credentials", Retryable: false},
		Triggers: []control.Trigger{
			trig("5d6e7f80-1111-4aaa-8bbb-000000000011", "ad.group.created", "lab-k8s-operators", "", 15*time.Minute),
			trig("5d6e7f80-1111-4aaa-8bbb-000000000012", "ad.group.created", "lab-gpu-users", "", 15*time.Minute),
		},
	}
	labOK := control.Run{
		RunID: "run-01HXA0K3", Status: control.RunCompleted, CreatedAt: *at(26 * time.Hour), StartedAt: at(26 * time.Hour),
		FinishedAt: at(26*time.Hour - 52*time.Second), DurationMs: (52 * time.Second).Milliseconds(), TriggerCount: 1,
		Triggers: []control.Trigger{trig("5d6e7f80-1111-4aaa-8bbb-000000000013", "ad.user.created", "", "asmith@lab.example.com", 26*time.Hour)},
	}
	partnerDone := control.Run{
		RunID: "run-01HX9WW2", Status: control.RunCompleted, CreatedAt: *at(3 * time.Hour), StartedAt: at(3 * time.Hour),
		FinishedAt: at(3*time.Hour - 3*time.Minute), DurationMs: (3 * time.Minute).Milliseconds(), TriggerCount: 1,
		Triggers: []control.Trigger{trig("6e7f8091-2222-4bbb-8ccc-000000000021", "ad.group.created", "partner-acme-support", "", 3*time.Hour)},
	}
	retailDone := control.Run{
		RunID: "run-01HXC4B8", Status: "DELEGATED",
		Delegation: &backend.Delegation{Kind: backend.DelegationSCIM, ProviderName: "Okta", Source: "OKTA",
			Message: "users and groups of Okta are pushed by its SCIM sync client; VCF has no sync to start (sync-client token expires 2026-06-01T00:00:00Z)"}, CreatedAt: *at(26 * time.Minute), StartedAt: at(26 * time.Minute),
		FinishedAt: at(25 * time.Minute), DurationMs: (58 * time.Second).Milliseconds(), TriggerCount: 1,
		Triggers: []control.Trigger{trig("7f8091a2-3333-4ccc-8ddd-000000000031", "ad.group.created", "proj-retail-pos-ops", "", 27*time.Minute)},
	}
	goneTimeout := control.Run{
		RunID: "run-01HX1111", Status: control.RunFailed, CreatedAt: *at(50 * time.Hour), StartedAt: at(50 * time.Hour),
		FinishedAt: at(49*time.Hour + 30*time.Minute), DurationMs: (30 * time.Minute).Milliseconds(), TriggerCount: 1,
		Error:    &control.RunError{Code: "VIDM_SYNC_TIMEOUT", Message: "the sync did not finish within 30m0s", Retryable: true},
		Triggers: []control.Trigger{trig("8091a2b3-4444-4ddd-8eee-000000000041", "ad.group.deleted", "old-project-x", "", 50*time.Hour)},
	}
	f := &Source{
		Now: Now,
		Dirs: []control.Directory{
			{Tenant: "default", Backend: "vidm", DirectoryID: IDCorp, Name: "Corp AD", Type: "ACTIVE_DIRECTORY_LDAP",
				Connectors: []string{"connector-01.corp.example.com", "connector-02.corp.example.com"},
				Domains:    []string{"corp.example.com", "emea.corp.example.com"}, State: control.StateSyncing,
				PendingTriggers: 2, CurrentRun: &corpRunning, LastRun: &corpDone, Known: true},
			{Tenant: "default", DirectoryID: IDLab, Name: "Lab AD", Type: "ACTIVE_DIRECTORY_LDAP",
				Domains: []string{"lab.example.com"}, State: control.StatePending, PendingTriggers: 3, LastRun: &labFailed, Known: true},
			{Tenant: "default", DirectoryID: IDPartner, Name: "Partner Directory", Type: "ACTIVE_DIRECTORY_IWA",
				Domains: []string{"partners.example.net"}, State: control.StatePaused, PendingTriggers: 4,
				Paused: &control.Pause{Since: *at(2 * time.Hour), Reason: "vIDM upgrade window (CHG0042137)"}, LastRun: &partnerDone, Known: true},
			{Tenant: "default", Backend: "vcf", DirectoryID: IDRetail, Name: "Retail AD", Type: "ACTIVE_DIRECTORY_LDAP",
				Domains: []string{"retail.example.com"}, State: control.StateIdle, LastRun: &retailDone, Known: true},
			{Tenant: "default", DirectoryID: IDGone, Name: "Old Test AD", State: control.StateIdle, LastRun: &goneTimeout, Known: false},
			{Tenant: "default", Backend: "vidm", DirectoryID: IDHR, Name: "HR AD", Type: "ACTIVE_DIRECTORY_LDAP",
				Domains: []string{"hr.corp.example.com"}, State: control.StateStuck, PendingTriggers: 12, CurrentRun: &hrStuck, LastRun: &hrDone, Known: true},
		},
		RunHistory: map[string][]control.Run{
			Key("default", IDCorp):    {corpRunning, corpDone, corpOlder},
			Key("default", IDLab):     {labFailed, labOK},
			Key("default", IDPartner): {partnerDone},
			Key("default", IDRetail):  {retailDone},
			Key("default", IDGone):    {goneTimeout},
			Key("default", IDHR):      {hrStuck, hrDone},
		},
		Dead: control.DeadLetters{Total: 7, Items: []control.DeadLetter{
			{Seq: 412, Time: *at(9 * time.Minute), Code: "UNKNOWN_DIRECTORY", Reason: `no vIDM directory is named or has the domain "corp.exmaple.com"`,
				OriginalSubject: "dirsync.trigger.pipeline.provisioning", OriginalSeq: 88231, EventID: "c0ffee00-1234-4abc-8def-000000000412", EventType: "ad.group.created", Size: 311},
			{Seq: 409, Time: *at(47 * time.Minute), Code: "SCHEMA_VIOLATION", Reason: "data: group: missing property 'name'",
				OriginalSubject: "dirsync.trigger.abx", OriginalSeq: 88102, EventID: "c0ffee00-1234-4abc-8def-000000000409", EventType: "ad.group.created", Size: 207},
			{Seq: 377, Time: *at(26 * time.Hour), Code: "MALFORMED", Reason: "not a CloudEvent: missing ce-specversion", OriginalSubject: "dirsync.trigger.legacy", OriginalSeq: 80011, Size: 54},
		}},
	}
	if hostile {
		f.Dirs = append(f.Dirs, control.Directory{Tenant: "default", DirectoryID: IDHostile, Name: HostileName, Type: "LOCAL_DIRECTORY",
			Domains: []string{`"><img src=x onerror=alert(2)>`}, State: control.StatePaused,
			Paused: &control.Pause{Since: *at(time.Minute), Reason: `<b onmouseover=alert(3)>x</b>`}, Known: true})
		f.RunHistory[Key("default", IDHostile)] = []control.Run{{RunID: "run-<i>", Status: control.RunFailed, CreatedAt: *at(time.Hour),
			FinishedAt: at(time.Hour), TriggerCount: 1, Error: &control.RunError{Code: "VIDM_ERROR", Message: `</td><script>alert(4)</script>`},
			Triggers: []control.Trigger{trig("x", "ad.group.created", `<svg onload=alert(5)>`, "", time.Hour)}}}
	}
	return f
}
