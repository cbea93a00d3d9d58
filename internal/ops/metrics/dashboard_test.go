package metrics_test

// The metric names are a contract with the ServiceMonitor, the dashboard and the docs: these tests
// pin the families New exposes and hold deploy/grafana/vidm-sync-worker.json to them, both ways.

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/metrics"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

const dashboardPath = "../../../deploy/grafana/vidm-sync-worker.json"

// metricTypes is every family of ours, with its type.
var metricTypes = map[string]dto.MetricType{
	"dirsync_triggers_received_total":         dto.MetricType_COUNTER,
	"dirsync_triggers_accepted_total":         dto.MetricType_COUNTER,
	"dirsync_triggers_already_reported_total": dto.MetricType_COUNTER,
	"dirsync_triggers_dead_lettered_total":    dto.MetricType_COUNTER,
	"dirsync_syncs_started_total":             dto.MetricType_COUNTER,
	"dirsync_syncs_completed_total":           dto.MetricType_COUNTER,
	"dirsync_syncs_failed_total":              dto.MetricType_COUNTER,
	"dirsync_triggers_cancelled_total":        dto.MetricType_COUNTER,
	"dirsync_result_lag_seconds":              dto.MetricType_HISTOGRAM,
	"dirsync_sync_duration_seconds":           dto.MetricType_HISTOGRAM,
	"dirsync_trigger_to_result_seconds":       dto.MetricType_HISTOGRAM,
	"dirsync_pending_triggers":                dto.MetricType_GAUGE,
	"dirsync_run_failures":                    dto.MetricType_GAUGE,
	"dirsync_directory_stuck":                 dto.MetricType_GAUGE,
	"dirsync_vidm_requests_total":             dto.MetricType_COUNTER,
	"dirsync_vidm_request_duration_seconds":   dto.MetricType_HISTOGRAM,
	"dirsync_vidm_token_refreshes_total":      dto.MetricType_COUNTER,
	"dirsync_consumer_pending_messages":       dto.MetricType_GAUGE,
	"dirsync_consumer_ack_pending_messages":   dto.MetricType_GAUGE,
	"dirsync_consumer_redelivered_messages":   dto.MetricType_GAUGE,
	"dirsync_leases_held":                     dto.MetricType_GAUGE,
	"dirsync_dead_letters":                    dto.MetricType_GAUGE,
	"dirsync_build_info":                      dto.MetricType_GAUGE,
	"dirsync_scrape_errors_total":             dto.MetricType_COUNTER,

	"dirsync_syncs_delegated_total":                        dto.MetricType_COUNTER,
	"dirsync_sync_client_token_expiry_timestamp_seconds":   dto.MetricType_GAUGE,
	"dirsync_sync_client_token_warnings_total":             dto.MetricType_COUNTER,
	"dirsync_sync_client_token_check_failures_total":       dto.MetricType_COUNTER,
	"dirsync_config_reloads_total":                         dto.MetricType_COUNTER,
	"dirsync_config_last_reload_success_timestamp_seconds": dto.MetricType_GAUGE,
	"dirsync_scheduled_triggers_total":                     dto.MetricType_COUNTER,
	"dirsync_readiness_principals_total":                   dto.MetricType_COUNTER,
	"dirsync_tenant_up":                                    dto.MetricType_GAUGE,
}

// exercised returns our families, gathered after every hook and callback ran once, so that every
// vector has a series.
func exercised(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m := metrics.New(reg, metrics.Options{Version: "test"})
	m.Watch(metrics.Sources{
		PendingByDirectory: func() map[metrics.Directory]int {
			return map[metrics.Directory]int{{Tenant: "default", Name: "Corp AD"}: 2}
		},
		RunFailures: func() map[metrics.Directory]int {
			return map[metrics.Directory]int{{Tenant: "default", Name: "HR AD"}: dirsync.StuckAfter}
		},
		LeasesHeld: func() int { return 1 },
		ConsumerInfo: func(context.Context) (*jetstream.ConsumerInfo, error) {
			return &jetstream.ConsumerInfo{NumPending: 1, NumAckPending: 2, NumRedelivered: 3}, nil
		},
		DeadLetters: func(context.Context) (uint64, error) { return 4, nil },
	})
	now := time.Now()
	tr := dirsync.Trigger{ID: "t1", Type: "ad.group.created", AcceptedAt: now.Add(-time.Minute),
		Ready: &dirsync.Ready{Answer: dirsync.AnswerNotVisible}}
	m.Received()
	m.Accepted(tr)
	m.AlreadyReported()
	m.DeadLettered("SCHEMA_VIOLATION")
	for _, o := range []dirsync.Outcome{{Status: "COMPLETED", FinishedAt: now}, {Status: "FAILED", ErrCode: "VIDM_SYNC_FAILED", FinishedAt: now}, {Status: "DELEGATED", FinishedAt: now}, {Status: "FAILED", ErrCode: "CANCELLED", FinishedAt: now}} {
		o.SyncDuration = 30 * time.Second
		run := &dirsync.Run{DirectoryName: "Corp AD", StartedAt: now.Add(-30 * time.Second), Triggers: []dirsync.Trigger{tr}, Outcome: &o}
		m.RunStarted(run)
		m.TriggersReported(run, run.Triggers)
		m.RunReported(run)
	}
	m.Backend("default").Request(httpcore.EndpointDirectories, 200, nil, 20*time.Millisecond)
	m.Backend("default").TokenIssued()
	m.TokenExpiry("vcf", "Okta", now.Add(72*time.Hour))
	m.TokenWarned("vcf", "Okta")
	m.TokenCheckFailed("vcf")
	m.ConfigReloaded(true)
	m.ScheduleFired("default", nil)
	m.TenantsUp(map[string]error{"default": nil, "vcf": errors.New("down")})

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	ours := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "dirsync_") {
			ours[mf.GetName()] = mf
		}
	}
	return ours
}

func TestMetricNamesAreTheContract(t *testing.T) {
	ours := exercised(t)
	for name, typ := range metricTypes {
		mf, ok := ours[name]
		switch {
		case !ok:
			t.Errorf("%s is not exposed", name)
		case mf.GetType() != typ:
			t.Errorf("%s is a %s, want %s", name, mf.GetType(), typ)
		case len(mf.GetMetric()) == 0:
			t.Errorf("%s has no series after every hook ran", name)
		}
	}
	for name := range ours {
		if _, ok := metricTypes[name]; !ok {
			t.Errorf("%s is exposed but not in the contract (ServiceMonitor, dashboard, docs)", name)
		}
	}
}

type grafanaDashboard struct {
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	Type       string            `json:"type"`
	Title      string            `json:"title"`
	Datasource grafanaDatasource `json:"datasource"`
	Targets    []struct {
		Expr       string            `json:"expr"`
		Datasource grafanaDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's panels
}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

var metricName = regexp.MustCompile(`dirsync_[a-z_]+`)

// loadDashboard parses the dashboard, checks every panel reads the ${datasource} variable, and
// returns the row titles in order and the metric names each row's expressions use.
func loadDashboard(t *testing.T) (grafanaDashboard, []string, map[string][]string) {
	t.Helper()
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	var rows []string
	byRow := map[string][]string{}
	current := ""
	var visit func(p grafanaPanel)
	visit = func(p grafanaPanel) {
		if p.Type == "row" {
			current = p.Title
			rows = append(rows, p.Title)
			for _, c := range p.Panels {
				visit(c)
			}
			return
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no targets", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: a target's datasource %+v, want the ${datasource} variable", p.Title, tg.Datasource)
			}
			if tg.Expr == "" {
				t.Errorf("panel %q: a target without expr", p.Title)
			}
			byRow[current] = append(byRow[current], metricName.FindAllString(tg.Expr, -1)...)
		}
	}
	for _, p := range d.Panels {
		visit(p)
	}
	return d, rows, byRow
}

// family resolves a name used in an expression to the family it reads: a histogram's _bucket,
// _sum and _count series belong to the histogram.
func family(name string, ours map[string]*dto.MetricFamily) (string, bool) {
	if _, ok := ours[name]; ok {
		return name, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, found := strings.CutSuffix(name, suffix)
		if mf, ok := ours[base]; found && ok && mf.GetType() == dto.MetricType_HISTOGRAM {
			return base, true
		}
	}
	return "", false
}

func TestDashboardShowsExactlyOurMetrics(t *testing.T) {
	ours := exercised(t)
	_, _, byRow := loadDashboard(t)
	shown := map[string]bool{}
	for row, names := range byRow {
		for _, name := range names {
			fam, ok := family(name, ours)
			if !ok {
				t.Errorf("row %q uses %s, which the worker does not expose", row, name)
				continue
			}
			shown[fam] = true
		}
	}
	for name := range ours {
		if !shown[name] {
			t.Errorf("%s is shown by no panel", name)
		}
	}
}

func TestDashboardLayout(t *testing.T) {
	ours := exercised(t)
	d, rows, byRow := loadDashboard(t)
	if d.SchemaVersion != 39 {
		t.Errorf("schemaVersion %d, want 39", d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		q := string(v.Query)
		var s string
		if json.Unmarshal(v.Query, &s) == nil {
			q = s
		}
		vars[v.Name] = v.Type + " " + q
	}
	if vars["datasource"] != "datasource prometheus" {
		t.Errorf("datasource variable %q, want a Prometheus datasource variable", vars["datasource"])
	}
	if !strings.Contains(vars["tenant"], "label_values(dirsync_syncs_started_total, tenant)") {
		t.Errorf("tenant variable %q, want label_values(dirsync_syncs_started_total, tenant)", vars["tenant"])
	}
	if d := vars["directory"]; !strings.Contains(d, "label_values(dirsync_syncs_started_total{tenant=~") || !strings.Contains(d, "$tenant") ||
		!strings.Contains(d, "}, directory)") {
		t.Errorf("directory variable %q, want the directories of the chosen tenants", vars["directory"])
	}
	if want := []string{"Intake", "Syncs", "vIDM", "State", "Sync-client tokens", "Configuration", "Readiness"}; !slices.Equal(rows, want) {
		t.Errorf("rows %v, want %v", rows, want)
	}
	wantInRow := map[string][]string{
		"Intake": {"dirsync_triggers_received_total", "dirsync_triggers_accepted_total", "dirsync_triggers_dead_lettered_total", "dirsync_consumer_pending_messages"},
		"Syncs": {"dirsync_syncs_started_total", "dirsync_syncs_completed_total", "dirsync_syncs_failed_total", "dirsync_syncs_delegated_total", "dirsync_triggers_cancelled_total",
			"dirsync_sync_duration_seconds", "dirsync_trigger_to_result_seconds", "dirsync_result_lag_seconds"},
		"vIDM":      {"dirsync_vidm_requests_total", "dirsync_vidm_token_refreshes_total", "dirsync_vidm_request_duration_seconds"},
		"Readiness": {"dirsync_readiness_principals_total", "dirsync_tenant_up"},
		"State":     {"dirsync_pending_triggers", "dirsync_leases_held", "dirsync_dead_letters", "dirsync_run_failures", "dirsync_directory_stuck"},
		"Sync-client tokens": {"dirsync_sync_client_token_expiry_timestamp_seconds", "dirsync_sync_client_token_warnings_total",
			"dirsync_sync_client_token_check_failures_total"},
		"Configuration": {"dirsync_config_reloads_total", "dirsync_config_last_reload_success_timestamp_seconds", "dirsync_scheduled_triggers_total"},
	}
	for row, want := range wantInRow {
		var have []string
		for _, name := range byRow[row] {
			if fam, ok := family(name, ours); ok {
				have = append(have, fam)
			}
		}
		for _, w := range want {
			if !slices.Contains(have, w) {
				t.Errorf("row %q does not show %s", row, w)
			}
		}
	}
}
