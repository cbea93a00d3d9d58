package config

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/vidm"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/streams"
)

// Distinctive secrets: none of them may ever appear in an error or a log line.
const (
	natsPassword     = "natsPW-7f3a9c-SECRET"
	natsToken        = "natsTok-1b2d4e-SECRET"
	vidmClientSecret = "vidmCS-9e8d7c-SECRET"
	vidmPassword     = "vidmPW-5a6b7c-SECRET"
)

var allSecrets = []string{natsPassword, natsToken, vidmClientSecret, vidmPassword}

func fixedHost() (string, error) { return "worker-7", nil }

// base is a minimal valid production environment.
func base() map[string]string {
	return map[string]string{
		"NATS_URL":           "nats://nats.corp.example.com:4222",
		"VIDM_URL":           "https://vidm.corp.example.com",
		"VIDM_CLIENT_ID":     "vidm-sync-worker",
		"VIDM_CLIENT_SECRET": vidmClientSecret,
	}
}

func with(env map[string]string, kv ...string) map[string]string {
	out := make(map[string]string, len(env)+len(kv)/2)
	for k, v := range env {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "<unset>" {
			delete(out, kv[i])
			continue
		}
		out[kv[i]] = kv[i+1]
	}
	return out
}

func loadMap(t *testing.T, env map[string]string, dev bool) (Config, error) {
	t.Helper()
	c, err := load(context.Background(), envconfig.MapLookuper(env), dev, fixedHost)
	if err != nil {
		assertNoSecret(t, "error", err.Error())
	}
	return c, err
}

func assertNoSecret(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range append(slices.Clone(allSecrets), "urlpass-SECRET", "urltoken-SECRET") {
		if strings.Contains(s, secret) {
			t.Fatalf("%s contains the secret %q:\n%s", what, secret, s)
		}
	}
}

func TestDefaults(t *testing.T) {
	c, err := loadMap(t, base(), false)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		NATS: NATS{
			NATSURL:         "nats://nats.corp.example.com:4222",
			NATSName:        "vidm-sync-worker",
			NATSInboxPrefix: "_INBOX",
		},
		Streams: Streams{
			TriggerStream:         "DIRSYNC_TRIGGERS",
			TriggerSubjects:       []string{"dirsync.trigger.>"},
			ResultStream:          "DIRSYNC_RESULTS",
			ResultSubjectPrefix:   "dirsync.result",
			DeadStream:            "DIRSYNC_DEAD",
			DeadSubject:           "dirsync.dead",
			Consumer:              "vidm-sync-worker",
			PendingBucket:         "DIRSYNC_PENDING",
			RunsBucket:            "DIRSYNC_RUNS",
			LeaseBucket:           "DIRSYNC_LEASES",
			HistoryBucket:         "DIRSYNC_HISTORY",
			ControlBucket:         "DIRSYNC_CONTROL",
			ManageStreams:         true,
			StreamReplicas:        1,
			ResultDuplicateWindow: 30 * time.Minute,
			TriggerStreamMaxBytes: 1 << 30,
			ResultStreamMaxBytes:  1 << 30,
			DeadStreamMaxBytes:    256 << 20,
			ResultSource:          "urn:vidm-sync-worker:worker-7",
		},
		Identity: Identity{
			VIDMURL:                "https://vidm.corp.example.com",
			VIDMAuthMode:           "oauth",
			VIDMClientID:           "vidm-sync-worker",
			VIDMClientSecret:       vidmClientSecret,
			VIDMInsecureSkipVerify: false,
			VIDMRequestTimeout:     30 * time.Second,
			Tenant:                 "default",
			SyncClientTokenWarning: 14 * 24 * time.Hour,
			SyncClientTokenCheck:   time.Hour,
		},
		Coalescing: Coalescing{
			CoalesceWindow:        2 * time.Second,
			PollInitialInterval:   2 * time.Second,
			PollMaxInterval:       15 * time.Second,
			SyncDeadline:          30 * time.Minute,
			PollConfirmAfter:      20 * time.Second,
			PollFromHistory:       true,
			PollFloor:             500 * time.Millisecond,
			ReadinessCheck:        true,
			ReadinessRecheckAfter: 5 * time.Second,
			ReadinessMaxPerRun:    2000,
			MaxConcurrentSyncs:    64,
			LeaseTTL:              30 * time.Second,
		},
		Intake: Intake{
			PullBatch:   64,
			MaxInFlight: 512,
			AckWait:     30 * time.Second,
		},
		Logging: Logging{
			LogFormat: "text",
			LogLevel:  "info",
		},
		Admin: Admin{
			AdminAddr:         ":9090",
			HistoryMaxAge:     168 * time.Hour,
			HistoryRuns:       20,
			StatusRefresh:     5 * time.Second,
			ReadyVIDMInterval: time.Minute,
		},
		Ingress: Ingress{
			IngressAddr:       ":8080",
			IngressSubject:    "dirsync.trigger.http",
			IngressMaxWait:    10 * time.Minute,
			IngressMaxWaiters: 256,
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if c.Level() != slog.LevelInfo || c.EmbeddedNATS() || c.SimulatedVIDM() {
		t.Fatalf("Level %v EmbeddedNATS %v SimulatedVIDM %v", c.Level(), c.EmbeddedNATS(), c.SimulatedVIDM())
	}
}

func TestEverySettingIsRead(t *testing.T) {
	env := map[string]string{
		"NATS_URL":                           "nats://a:4222, tls://b:4222",
		"NATS_CREDS_FILE":                    "/etc/nats/worker.creds",
		"NATS_CA_FILE":                       "/etc/nats/ca.pem",
		"NATS_CERT_FILE":                     "/etc/nats/cert.pem",
		"NATS_KEY_FILE":                      "/etc/nats/key.pem",
		"NATS_CLIENT_NAME":                   "worker-a",
		"NATS_INBOX_PREFIX":                  "_INBOX_worker.a",
		"TRIGGER_STREAM":                     "T",
		"TRIGGER_SUBJECTS":                   "t.ad.>, t.vidm.*.requested",
		"RESULT_STREAM":                      "R",
		"RESULT_SUBJECT_PREFIX":              "r.out",
		"DEAD_STREAM":                        "D",
		"DEAD_SUBJECT":                       "d.letters",
		"CONSUMER":                           "C",
		"PENDING_BUCKET":                     "P",
		"RUNS_BUCKET":                        "RU",
		"LEASE_BUCKET":                       "L",
		"HISTORY_BUCKET":                     "HI",
		"CONTROL_BUCKET":                     "CT",
		"MANAGE_STREAMS":                     "false",
		"STREAM_REPLICAS":                    "3",
		"RESULT_DUPLICATE_WINDOW":            "1h",
		"TRIGGER_STREAM_MAX_BYTES":           "2147483648",
		"RESULT_STREAM_MAX_BYTES":            "0",
		"DEAD_STREAM_MAX_BYTES":              "1048576",
		"VIDM_URL":                           "https://vidm.example.com/",
		"VIDM_AUTH_MODE":                     "system",
		"VIDM_USERNAME":                      "svc-sync",
		"VIDM_PASSWORD":                      vidmPassword,
		"VIDM_CA_FILE":                       "/etc/vidm/ca.pem",
		"VIDM_INSECURE_SKIP_VERIFY":          "true",
		"VIDM_REQUEST_TIMEOUT":               "10s",
		"VIDM_TENANT":                        "emea",
		"COALESCE_WINDOW":                    "500ms",
		"POLL_INITIAL_INTERVAL":              "1s",
		"POLL_MAX_INTERVAL":                  "1s",
		"SYNC_DEADLINE":                      "1h",
		"POLL_CONFIRM_AFTER":                 "7s",
		"READINESS_CHECK":                    "false",
		"READINESS_RECHECK_AFTER":            "3s",
		"READINESS_MAX_PER_RUN":              "50",
		"MAX_CONCURRENT_SYNCS":               "2",
		"LEASE_TTL":                          "10s",
		"PULL_BATCH":                         "16",
		"MAX_IN_FLIGHT":                      "16",
		"ACK_WAIT":                           "1m",
		"RESULT_SOURCE":                      "https://sync.example.com/worker",
		"LOG_FORMAT":                         "json",
		"LOG_LEVEL":                          "DEBUG",
		"ADMIN_ADDR":                         "127.0.0.1:9191",
		"ADMIN_TOKEN":                        "admin-token-1-of-at-least-32-characters",
		"ADMIN_READ_TOKEN":                   "read-token-2-of-at-least-32-characters",
		"ADMIN_READ_OPEN":                    "true",
		"HISTORY_MAX_AGE":                    "24h",
		"HISTORY_RUNS":                       "7",
		"STATUS_REFRESH":                     "3s",
		"READY_VIDM_INTERVAL":                "30s",
		"INGRESS_ENABLED":                    "true",
		"INGRESS_ADDR":                       "127.0.0.1:8181",
		"INGRESS_TOKEN":                      "ingress-token-3-of-at-least-32-characters",
		"INGRESS_SUBJECT":                    "t.ad.http",
		"INGRESS_MAX_WAIT":                   "2m",
		"ADMIN_TLS_CERT_FILE":                "/tls/admin.crt",
		"ADMIN_TLS_KEY_FILE":                 "/tls/admin.key",
		"ADMIN_TLS_CA_FILE":                  "/tls/ca.crt",
		"INGRESS_TLS_CERT_FILE":              "/tls/ingress.crt",
		"INGRESS_TLS_KEY_FILE":               "/tls/ingress.key",
		"INGRESS_TLS_CLIENT_CA_FILE":         "/tls/clients.crt",
		"INGRESS_TLS_CLIENT_NAMES":           "vro, spiffe://corp/abx",
		"SYNC_CLIENT_TOKEN_WARNING":          "72h",
		"SYNC_CLIENT_TOKEN_CHECK":            "10m",
		"OTEL_SDK_DISABLED":                  "false",
		"OTEL_TRACES_EXPORTER":               "otlp",
		"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://collector:4318",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces",
		"OTEL_EXPORTER_OTLP_PROTOCOL":        "http/protobuf",
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json",
		"OTEL_EXPORTER_OTLP_HEADERS":         "a=1",
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS":  "b=2",
		"OTEL_SERVICE_NAME":                  "sync",
		"OTEL_RESOURCE_ATTRIBUTES":           "team=identity",
		"OTEL_TRACES_SAMPLER":                "traceidratio",
		"OTEL_TRACES_SAMPLER_ARG":            "0.5",
	}
	c, err := loadMap(t, env, false)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		NATS:     NATS{NATSURL: "nats://a:4222, tls://b:4222", NATSCredsFile: "/etc/nats/worker.creds", NATSCAFile: "/etc/nats/ca.pem", NATSCertFile: "/etc/nats/cert.pem", NATSKeyFile: "/etc/nats/key.pem", NATSName: "worker-a", NATSInboxPrefix: "_INBOX_worker.a"},
		Streams:  Streams{TriggerStream: "T", TriggerSubjects: []string{"t.ad.>", "t.vidm.*.requested"}, ResultStream: "R", ResultSubjectPrefix: "r.out", DeadStream: "D", DeadSubject: "d.letters", Consumer: "C", PendingBucket: "P", RunsBucket: "RU", LeaseBucket: "L", HistoryBucket: "HI", ControlBucket: "CT", ManageStreams: false, StreamReplicas: 3, ResultDuplicateWindow: time.Hour, TriggerStreamMaxBytes: 2 << 30, DeadStreamMaxBytes: 1 << 20, ResultSource: "https://sync.example.com/worker"},
		Identity: Identity{VIDMURL: "https://vidm.example.com/", VIDMAuthMode: "system", VIDMUsername: "svc-sync", VIDMPassword: vidmPassword, VIDMCAFile: "/etc/vidm/ca.pem", VIDMInsecureSkipVerify: true, VIDMRequestTimeout: 10 * time.Second, Tenant: "emea", SyncClientTokenWarning: 72 * time.Hour, SyncClientTokenCheck: 10 * time.Minute},
		Coalescing: Coalescing{CoalesceWindow: 500 * time.Millisecond, PollInitialInterval: time.Second, PollMaxInterval: time.Second, SyncDeadline: time.Hour,
			PollConfirmAfter: 7 * time.Second, PollFromHistory: true, PollFloor: 500 * time.Millisecond, ReadinessRecheckAfter: 3 * time.Second, ReadinessMaxPerRun: 50, MaxConcurrentSyncs: 2, LeaseTTL: 10 * time.Second},
		Intake:  Intake{PullBatch: 16, MaxInFlight: 16, AckWait: time.Minute},
		Logging: Logging{LogFormat: "json", LogLevel: "DEBUG"},
		Admin: Admin{AdminAddr: "127.0.0.1:9191", AdminToken: "admin-token-1-of-at-least-32-characters", AdminReadToken: "read-token-2-of-at-least-32-characters", AdminReadOpen: true, HistoryMaxAge: 24 * time.Hour, HistoryRuns: 7, StatusRefresh: 3 * time.Second, ReadyVIDMInterval: 30 * time.Second,
			AdminTLSCertFile: "/tls/admin.crt", AdminTLSKeyFile: "/tls/admin.key", AdminTLSCAFile: "/tls/ca.crt"},
		Ingress: Ingress{IngressEnabled: true, IngressAddr: "127.0.0.1:8181", IngressToken: "ingress-token-3-of-at-least-32-characters", IngressSubject: "t.ad.http", IngressMaxWait: 2 * time.Minute, IngressMaxWaiters: 256,
			IngressTLSCertFile: "/tls/ingress.crt", IngressTLSKeyFile: "/tls/ingress.key", IngressTLSClientCAFile: "/tls/clients.crt", IngressTLSClientNames: []string{"vro", "spiffe://corp/abx"}},
		Tracing: Tracing{OTelTracesExporter: "otlp", OTLPEndpoint: "http://collector:4318", OTLPTracesEndpoint: "http://collector:4318/v1/traces",
			OTLPProtocol: "http/protobuf", OTLPTracesProtocol: "http/json", OTLPHeaders: "a=1", OTLPTracesHeaders: "b=2", OTelServiceName: "sync",
			OTelResourceAttributes: "team=identity", OTelTracesSampler: "traceidratio", OTelTracesSamplerArg: "0.5"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("\n got %+v\nwant %+v", c, want)
	}
	if c.Level() != slog.LevelDebug {
		t.Fatalf("Level %v", c.Level())
	}
}

func TestEmptyVariableMeansDefault(t *testing.T) {
	c, err := loadMap(t, with(base(), "COALESCE_WINDOW", "", "TRIGGER_SUBJECTS", "", "MANAGE_STREAMS", ""), false)
	if err != nil {
		t.Fatal(err)
	}
	if c.CoalesceWindow != 2*time.Second || !slices.Equal(c.TriggerSubjects, []string{"dirsync.trigger.>"}) || !c.ManageStreams {
		t.Fatalf("empty variables did not take defaults: %+v", c)
	}
}

func TestDev(t *testing.T) {
	// --dev with nothing set: embedded NATS and the simulator, no credentials needed.
	c, err := loadMap(t, map[string]string{}, true)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Dev || !c.EmbeddedNATS() || !c.SimulatedVIDM() {
		t.Fatalf("dev config: %+v", c)
	}
	// --dev against a real vIDM still needs its credentials.
	_, err = loadMap(t, map[string]string{"VIDM_URL": "https://vidm.example.com"}, true)
	wantProblems(t, err, "VIDM_CLIENT_ID", "VIDM_CLIENT_SECRET")
	// --dev against a real NATS is an ordinary client.
	c, err = loadMap(t, map[string]string{"NATS_URL": "nats://127.0.0.1:4222"}, true)
	if err != nil || c.EmbeddedNATS() {
		t.Fatalf("dev with NATS_URL: %v %+v", err, c)
	}
}

// wantProblems checks err names exactly the given variables (in any order, each once per
// listed occurrence) as the subjects of its problems.
func wantProblems(t *testing.T, err error, vars ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want problems with %v", vars)
	}
	var got []string
	for _, line := range strings.Split(err.Error(), "\n")[1:] {
		v, _, _ := strings.Cut(line, ":")
		got = append(got, v)
	}
	slices.Sort(got)
	want := slices.Clone(vars)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("problems with %v, want %v:\n%v", got, want, err)
	}
}

func TestValidation(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		dev  bool
		want []string // variables named, one per problem; empty: valid
		text string   // a phrase the error must contain
	}{
		{"valid oauth", base(), false, nil, ""},
		{"valid system", with(base(), "VIDM_AUTH_MODE", "system", "VIDM_CLIENT_SECRET", "<unset>", "VIDM_CLIENT_ID", "<unset>",
			"VIDM_USERNAME", "u", "VIDM_PASSWORD", vidmPassword), false, nil, ""},
		{"valid nats user", with(base(), "NATS_USER", "w", "NATS_PASSWORD", natsPassword), false, nil, ""},
		{"valid nats token", with(base(), "NATS_TOKEN", natsToken), false, nil, ""},
		{"valid nats mTLS and creds", with(base(), "NATS_CREDS_FILE", "/c", "NATS_CERT_FILE", "/a", "NATS_KEY_FILE", "/b"), false, nil, ""},
		{"valid several NATS URLs", with(base(), "NATS_URL", "nats://a:4222,tls://b:4222, localhost:4222,wss://c"), false, nil, ""},
		{"valid filters", with(base(), "TRIGGER_SUBJECTS", "a.*.b,c.>,d"), false, nil, ""},
		{"valid window exactly 2 TTL", with(base(), "LEASE_TTL", "3s", "RESULT_DUPLICATE_WINDOW", "6s"), false, nil, ""},

		{"required", map[string]string{}, false, []string{"NATS_URL", "VIDM_URL", "VIDM_CLIENT_ID", "VIDM_CLIENT_SECRET"}, "required"},
		{"oauth credentials", with(base(), "VIDM_CLIENT_ID", "<unset>", "VIDM_CLIENT_SECRET", "<unset>"), false,
			[]string{"VIDM_CLIENT_ID", "VIDM_CLIENT_SECRET"}, "VIDM_AUTH_MODE=oauth"},
		{"system credentials", with(base(), "VIDM_AUTH_MODE", "system"), false, []string{"VIDM_USERNAME", "VIDM_PASSWORD"}, "VIDM_AUTH_MODE=system"},
		{"auth mode", with(base(), "VIDM_AUTH_MODE", "kerberos"), false, []string{"VIDM_AUTH_MODE"}, `"kerberos"`},
		{"dev embedded without managed streams", with(map[string]string{}, "MANAGE_STREAMS", "false", "STREAM_REPLICAS", "3"), true,
			[]string{"MANAGE_STREAMS", "STREAM_REPLICAS"}, "embedded"},

		{"duration zero", with(base(), "SYNC_DEADLINE", "0s"), false, []string{"SYNC_DEADLINE"}, "must be positive"},
		{"negative window", with(base(), "COALESCE_WINDOW", "-1s"), false, []string{"COALESCE_WINDOW"}, "must not be negative"},
		{"duration negative", with(base(), "ACK_WAIT", "-1s"), false, []string{"ACK_WAIT"}, "must be positive"},
		{"duration unparseable", with(base(), "SYNC_DEADLINE", "soon"), false, []string{"SYNC_DEADLINE"}, `"soon" is not a valid time.Duration`},
		{"int unparseable", with(base(), "PULL_BATCH", "many"), false, []string{"PULL_BATCH"}, `"many" is not a valid int`},
		{"bool unparseable", with(base(), "MANAGE_STREAMS", "perhaps"), false, []string{"MANAGE_STREAMS"}, `"perhaps" is not a valid bool`},
		{"poll max below initial", with(base(), "POLL_INITIAL_INTERVAL", "10s", "POLL_MAX_INTERVAL", "5s"), false,
			[]string{"POLL_MAX_INTERVAL"}, "shorter than POLL_INITIAL_INTERVAL"},
		{"lease ttl minimum", with(base(), "LEASE_TTL", "2s"), false, []string{"LEASE_TTL"}, "minimum 3s"},
		{"duplicate window vs lease", with(base(), "LEASE_TTL", "1m", "RESULT_DUPLICATE_WINDOW", "119s"), false,
			[]string{"RESULT_DUPLICATE_WINDOW"}, "twice LEASE_TTL"},
		{"duplicate window vs retention", with(base(), "RESULT_DUPLICATE_WINDOW", "200h"), false,
			[]string{"RESULT_DUPLICATE_WINDOW"}, "retention"},
		{"counts", with(base(), "MAX_CONCURRENT_SYNCS", "0", "PULL_BATCH", "0", "MAX_IN_FLIGHT", "-1"), false,
			[]string{"MAX_CONCURRENT_SYNCS", "PULL_BATCH", "MAX_IN_FLIGHT"}, "at least 1"},
		{"batch above in-flight", with(base(), "PULL_BATCH", "100", "MAX_IN_FLIGHT", "50"), false, []string{"PULL_BATCH"}, "MAX_IN_FLIGHT"},
		{"replicas low", with(base(), "STREAM_REPLICAS", "0"), false, []string{"STREAM_REPLICAS"}, "between 1 and 5"},
		{"replicas high", with(base(), "STREAM_REPLICAS", "6"), false, []string{"STREAM_REPLICAS"}, "between 1 and 5"},
		{"log format", with(base(), "LOG_FORMAT", "xml"), false, []string{"LOG_FORMAT"}, `"xml"`},
		{"log level", with(base(), "LOG_LEVEL", "verbose"), false, []string{"LOG_LEVEL"}, `"verbose"`},
		{"cert without key", with(base(), "NATS_CERT_FILE", "/c"), false, []string{"NATS_KEY_FILE"}, "go together"},
		{"key without cert", with(base(), "NATS_KEY_FILE", "/k"), false, []string{"NATS_CERT_FILE"}, "go together"},
		{"token and creds", with(base(), "NATS_TOKEN", natsToken, "NATS_CREDS_FILE", "/c"), false, []string{"NATS_TOKEN"}, "only one"},
		{"token and user", with(base(), "NATS_TOKEN", natsToken, "NATS_USER", "u", "NATS_PASSWORD", natsPassword), false,
			[]string{"NATS_TOKEN"}, "only one"},
		{"user without password", with(base(), "NATS_USER", "u"), false, []string{"NATS_PASSWORD"}, "go together"},
		{"password without user", with(base(), "NATS_PASSWORD", natsPassword), false, []string{"NATS_USER"}, "go together"},

		{"stream name with space", with(base(), "TRIGGER_STREAM", "DIRSYNC TRIGGERS"), false, []string{"TRIGGER_STREAM"}, "spaces"},
		{"stream name with dot", with(base(), "RESULT_STREAM", "a.b"), false, []string{"RESULT_STREAM"}, "'.'"},
		{"stream name with wildcard", with(base(), "DEAD_STREAM", "DEAD*"), false, []string{"DEAD_STREAM"}, "'*'"},
		{"consumer name", with(base(), "CONSUMER", "w>"), false, []string{"CONSUMER"}, "'>'"},
		{"bucket name", with(base(), "PENDING_BUCKET", "a.b", "RUNS_BUCKET", "r b", "LEASE_BUCKET", "l*"), false,
			[]string{"PENDING_BUCKET", "RUNS_BUCKET", "LEASE_BUCKET"}, "letters, digits"},
		{"same streams", with(base(), "RESULT_STREAM", "DIRSYNC_TRIGGERS"), false, []string{"TRIGGER_STREAM"}, "three different"},
		{"same buckets", with(base(), "LEASE_BUCKET", "DIRSYNC_RUNS"), false, []string{"PENDING_BUCKET"}, "five different"},
		{"ingress without token", with(base(), "INGRESS_ENABLED", "true"), false, []string{"INGRESS_TOKEN"}, "required"},
		{"ingress subject not a trigger subject", with(with(with(base(), "INGRESS_ENABLED", "true"), "INGRESS_TOKEN", "an-ingress-token-of-at-least-32-characters"), "INGRESS_SUBJECT", "elsewhere.http"), false, []string{"INGRESS_SUBJECT"}, "not one of the trigger subjects"},
		{"short admin token", with(base(), "ADMIN_TOKEN", "a"), false, []string{"ADMIN_TOKEN"}, "at least 32"},
		{"short read token", with(base(), "ADMIN_READ_TOKEN", strings.Repeat("r", 31)), false, []string{"ADMIN_READ_TOKEN"}, "is 31 characters"},
		{"short ingress token", with(with(base(), "INGRESS_ENABLED", "true"), "INGRESS_TOKEN", "ingress-Tk5"), false, []string{"INGRESS_TOKEN"}, "at least 32"},
		{"same admin tokens", with(with(base(), "ADMIN_TOKEN", "the-same-token-of-at-least-32-characters"), "ADMIN_READ_TOKEN", "the-same-token-of-at-least-32-characters"), false, []string{"ADMIN_READ_TOKEN"}, "must differ"},
		{"result prefix wildcard", with(base(), "RESULT_SUBJECT_PREFIX", "dirsync.result.>"), false, []string{"RESULT_SUBJECT_PREFIX"}, "'*' or '>'"},
		{"result prefix space", with(base(), "RESULT_SUBJECT_PREFIX", "dirsync result"), false, []string{"RESULT_SUBJECT_PREFIX"}, "spaces"},
		{"result prefix empty token", with(base(), "RESULT_SUBJECT_PREFIX", "dirsync..result"), false, []string{"RESULT_SUBJECT_PREFIX"}, "empty token"},
		{"dead subject wildcard", with(base(), "DEAD_SUBJECT", "dirsync.*"), false, []string{"DEAD_SUBJECT"}, "'*' or '>'"},
		{"trigger > not last", with(base(), "TRIGGER_SUBJECTS", "dirsync.>.x"), false, []string{"TRIGGER_SUBJECTS"}, "last token"},
		{"trigger partial wildcard", with(base(), "TRIGGER_SUBJECTS", "dirsync.trig*"), false, []string{"TRIGGER_SUBJECTS"}, "whole token"},
		{"trigger empty entry", with(base(), "TRIGGER_SUBJECTS", "a.b,,c"), false, []string{"TRIGGER_SUBJECTS"}, "must not be empty"},
		{"trigger overlaps results and dead", with(base(), "TRIGGER_SUBJECTS", "dirsync.>"), false,
			[]string{"TRIGGER_SUBJECTS", "TRIGGER_SUBJECTS"}, "overlaps"},
		{"triggers overlap each other", with(base(), "TRIGGER_SUBJECTS", "a.*,a.b"), false, []string{"TRIGGER_SUBJECTS"}, "overlap"},
		{"dead overlaps results", with(base(), "DEAD_SUBJECT", "dirsync.result.dead"), false, []string{"DEAD_SUBJECT"}, "overlaps"},
		{"tenant", with(base(), "VIDM_TENANT", "a.b"), false, []string{"VIDM_TENANT"}, "'.'"},

		{"valid admin TLS", with(base(), "ADMIN_TLS_CERT_FILE", "/t/tls.crt", "ADMIN_TLS_KEY_FILE", "/t/tls.key", "ADMIN_TLS_CA_FILE", "/t/ca.crt"), false, nil, ""},
		{"admin TLS cert without key", with(base(), "ADMIN_TLS_CERT_FILE", "/t/tls.crt"), false, []string{"ADMIN_TLS_KEY_FILE"}, "required with ADMIN_TLS_CERT_FILE (they go together)"},
		{"admin TLS key without cert", with(base(), "ADMIN_TLS_KEY_FILE", "/t/tls.key"), false, []string{"ADMIN_TLS_CERT_FILE"}, "required with ADMIN_TLS_KEY_FILE (they go together)"},
		{"admin TLS CA without TLS", with(base(), "ADMIN_TLS_CA_FILE", "/t/ca.crt"), false, []string{"ADMIN_TLS_CA_FILE"}, "needs ADMIN_TLS_CERT_FILE and ADMIN_TLS_KEY_FILE"},
		{"valid ingress TLS with token", with(base(), "INGRESS_ENABLED", "true", "INGRESS_TOKEN", "an-ingress-token-of-at-least-32-characters",
			"INGRESS_TLS_CERT_FILE", "/t/tls.crt", "INGRESS_TLS_KEY_FILE", "/t/tls.key"), false, nil, ""},
		{"valid ingress client certificates instead of a token", with(base(), "INGRESS_ENABLED", "true",
			"INGRESS_TLS_CERT_FILE", "/t/tls.crt", "INGRESS_TLS_KEY_FILE", "/t/tls.key", "INGRESS_TLS_CLIENT_CA_FILE", "/t/clients.crt",
			"INGRESS_TLS_CLIENT_NAMES", "vro"), false, nil, ""},
		{"ingress TLS key without cert", with(base(), "INGRESS_TLS_KEY_FILE", "/t/tls.key"), false, []string{"INGRESS_TLS_CERT_FILE"}, "required with INGRESS_TLS_KEY_FILE (they go together)"},
		{"ingress TLS cert without key", with(base(), "INGRESS_TLS_CERT_FILE", "/t/tls.crt"), false, []string{"INGRESS_TLS_KEY_FILE"}, "required with INGRESS_TLS_CERT_FILE (they go together)"},
		{"ingress client CA without TLS", with(base(), "INGRESS_ENABLED", "true", "INGRESS_TLS_CLIENT_CA_FILE", "/t/clients.crt"), false,
			[]string{"INGRESS_TLS_CLIENT_CA_FILE"}, "client certificates are asked for in the TLS handshake"},
		{"ingress client names without CA", with(base(), "INGRESS_TLS_CERT_FILE", "/t/tls.crt", "INGRESS_TLS_KEY_FILE", "/t/tls.key",
			"INGRESS_TLS_CLIENT_NAMES", "vro"), false, []string{"INGRESS_TLS_CLIENT_NAMES"}, "needs INGRESS_TLS_CLIENT_CA_FILE"},
		{"ingress client names empty entry", with(base(), "INGRESS_TLS_CERT_FILE", "/t/tls.crt", "INGRESS_TLS_KEY_FILE", "/t/tls.key",
			"INGRESS_TLS_CLIENT_CA_FILE", "/t/clients.crt", "INGRESS_TLS_CLIENT_NAMES", "vro, ,abx"), false, []string{"INGRESS_TLS_CLIENT_NAMES"}, "empty entry"},
		{"ingress without token or client certificates", with(base(), "INGRESS_ENABLED", "true", "INGRESS_TLS_CERT_FILE", "/t/tls.crt",
			"INGRESS_TLS_KEY_FILE", "/t/tls.key"), false, []string{"INGRESS_TOKEN"}, "unless client certificates"},

		{"vidm url scheme", with(base(), "VIDM_URL", "ftp://vidm"), false, []string{"VIDM_URL"}, "https://"},
		{"inbox prefix with a wildcard", with(base(), "NATS_INBOX_PREFIX", "_INBOX.>"), false, []string{"NATS_INBOX_PREFIX"}, "must not contain"},
		{"vidm url in clear", with(base(), "VIDM_URL", "http://vidm"), false, []string{"VIDM_URL"}, "ALLOW_INSECURE_HTTP=true"},
		{"vidm url in clear allowed", with(base(), "VIDM_URL", "http://vidm", "ALLOW_INSECURE_HTTP", "true"), false, nil, ""},
		{"vidm url no host", with(base(), "VIDM_URL", "https://"), false, []string{"VIDM_URL"}, "no host"},
		{"vidm url query", with(base(), "VIDM_URL", "https://vidm/?a=b"), false, []string{"VIDM_URL"}, "query"},
		{"vidm url credentials", with(base(), "VIDM_URL", "https://admin:urlpass-SECRET@vidm"), false, []string{"VIDM_URL"}, "credentials"},
		{"vidm url unparseable", with(base(), "VIDM_URL", "https://a b:urlpass-SECRET@%zz"), false, []string{"VIDM_URL"}, "not a valid URL"},
		{"nats url scheme", with(base(), "NATS_URL", "http://nats:4222"), false, []string{"NATS_URL"}, `"http"`},
		{"nats url credentials", with(base(), "NATS_URL", "nats://w:urlpass-SECRET@nats:4222"), false, []string{"NATS_URL"}, "credentials"},
		{"nats url token", with(base(), "NATS_URL", "nats://urltoken-SECRET@nats:4222"), false, []string{"NATS_URL"}, "credentials"},
		{"nats url empty entry", with(base(), "NATS_URL", "nats://a,"), false, []string{"NATS_URL"}, "empty entry"},
		{"result source", with(base(), "RESULT_SOURCE", "not a uri"), false, []string{"RESULT_SOURCE"}, "URI reference"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkLoad(t, tt.env, tt.dev, tt.want, tt.text) })
	}
}

// checkLoad loads env: with want empty it must succeed, else fail naming each setting in want
// and saying text.
func checkLoad(t *testing.T, env map[string]string, dev bool, want []string, text string) {
	t.Helper()
	_, err := loadMap(t, env, dev)
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	wantProblems(t, err, want...)
	if !strings.Contains(err.Error(), text) {
		t.Fatalf("error does not say %q:\n%v", text, err)
	}
}

func TestEveryDurationMustBePositive(t *testing.T) {
	for _, v := range []string{"RESULT_DUPLICATE_WINDOW", "VIDM_REQUEST_TIMEOUT", "POLL_INITIAL_INTERVAL",
		"POLL_MAX_INTERVAL", "SYNC_DEADLINE", "LEASE_TTL", "ACK_WAIT"} {
		_, err := loadMap(t, with(base(), v, "0s"), false)
		if err == nil || !strings.Contains(err.Error(), v+": 0s must be positive") {
			t.Errorf("%s=0s: %v", v, err)
		}
	}
}

func TestZeroWindowSyncsAtTheFirstTrigger(t *testing.T) {
	c, err := loadMap(t, with(base(), "COALESCE_WINDOW", "0s"), false)
	if err != nil || c.CoalesceWindow != 0 {
		t.Fatalf("COALESCE_WINDOW=0s: %v, %v", c.CoalesceWindow, err)
	}
}

func TestEveryProblemAtOnce(t *testing.T) {
	env := map[string]string{
		"VIDM_AUTH_MODE":   "system",
		"LEASE_TTL":        "forever",
		"PULL_BATCH":       "0",
		"LOG_FORMAT":       "xml",
		"TRIGGER_STREAM":   "a b",
		"NATS_CERT_FILE":   "/c",
		"STREAM_REPLICAS":  "9",
		"VIDM_PASSWORD":    vidmPassword,
		"NATS_TOKEN":       natsToken,
		"NATS_CREDS_FILE":  "/creds",
		"COALESCE_WINDOW":  "-2s",
		"VIDM_TENANT":      "a.b",
		"TRIGGER_SUBJECTS": "x.>.y",
	}
	_, err := loadMap(t, env, false)
	wantProblems(t, err, "NATS_URL", "VIDM_URL", "VIDM_USERNAME", "LEASE_TTL", "PULL_BATCH", "LOG_FORMAT",
		"TRIGGER_STREAM", "NATS_KEY_FILE", "STREAM_REPLICAS", "NATS_TOKEN", "COALESCE_WINDOW", "VIDM_TENANT",
		"TRIGGER_SUBJECTS")
	// The unparseable LEASE_TTL is reported once, as unparseable, not also as "must be positive"
	// or as too short for the duplicate window.
	if strings.Count(err.Error(), "LEASE_TTL") != 1 {
		t.Fatalf("LEASE_TTL reported more than once:\n%v", err)
	}
}

func TestResultSourceHostnameUnknown(t *testing.T) {
	_, err := load(context.Background(), envconfig.MapLookuper(base()), false, func() (string, error) {
		return "", errors.New("no hostname")
	})
	wantProblems(t, err, "RESULT_SOURCE")
	// An explicit RESULT_SOURCE does not need the hostname.
	if _, err := load(context.Background(), envconfig.MapLookuper(with(base(), "RESULT_SOURCE", "urn:x")), false,
		func() (string, error) { return "", errors.New("no hostname") }); err != nil {
		t.Fatal(err)
	}
}

func TestLoadUsesOSHostname(t *testing.T) {
	h, err := os.Hostname()
	if err != nil || h == "" {
		t.Skip("no hostname here")
	}
	c, err := Load(context.Background(), envconfig.MapLookuper(base()), false)
	if err != nil {
		t.Fatal(err)
	}
	if c.ResultSource != "urn:vidm-sync-worker:"+h {
		t.Fatalf("ResultSource %q", c.ResultSource)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSecretFiles(t *testing.T) {
	secrets := map[string]string{
		"NATS_PASSWORD": natsPassword, "NATS_TOKEN": natsToken,
		"VIDM_CLIENT_SECRET": vidmClientSecret, "VIDM_PASSWORD": vidmPassword,
	}
	field := func(c Config, v string) string {
		return map[string]string{"NATS_PASSWORD": c.NATSPassword, "NATS_TOKEN": c.NATSToken,
			"VIDM_CLIENT_SECRET": c.VIDMClientSecret, "VIDM_PASSWORD": c.VIDMPassword}[v]
	}
	// A configuration that is valid with exactly the one secret v set.
	envFor := func(v string) map[string]string {
		env := with(base(), "VIDM_CLIENT_SECRET", "<unset>")
		switch v {
		case "NATS_PASSWORD":
			env["NATS_USER"] = "worker"
			env["VIDM_CLIENT_SECRET"] = "other"
		case "NATS_TOKEN":
			env["VIDM_CLIENT_SECRET"] = "other"
		case "VIDM_PASSWORD":
			env = with(env, "VIDM_AUTH_MODE", "system", "VIDM_USERNAME", "u", "VIDM_CLIENT_ID", "<unset>")
		}
		return env
	}
	for v, secret := range secrets {
		t.Run(v, func(t *testing.T) {
			// Trailing newline (and other trailing whitespace) is not part of the secret.
			for _, content := range []string{secret, secret + "\n", secret + "\r\n", secret + " \n\n"} {
				c, err := loadMap(t, with(envFor(v), v+"_FILE", writeFile(t, content)), false)
				if err != nil {
					t.Fatal(err)
				}
				if got := field(c, v); got != secret {
					t.Fatalf("%s from file %q = %q", v, content, got)
				}
			}

			// Both set.
			_, err := loadMap(t, with(envFor(v), v, secret, v+"_FILE", writeFile(t, secret)), false)
			wantProblems(t, err, v)
			if !strings.Contains(err.Error(), "both "+v+" and "+v+"_FILE are set") {
				t.Fatalf("got %v", err)
			}

			// Missing file: the variable and the path, and not also "X is required".
			missing := filepath.Join(t.TempDir(), "nope")
			_, err = loadMap(t, with(envFor(v), v+"_FILE", missing), false)
			wantProblems(t, err, v+"_FILE")
			if !strings.Contains(err.Error(), missing) {
				t.Fatalf("error does not name the path: %v", err)
			}

			// Unreadable (a directory) and empty files.
			_, err = loadMap(t, with(envFor(v), v+"_FILE", t.TempDir()), false)
			wantProblems(t, err, v+"_FILE")
			_, err = loadMap(t, with(envFor(v), v+"_FILE", writeFile(t, "\n")), false)
			wantProblems(t, err, v+"_FILE")
			if !strings.Contains(err.Error(), "empty") {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestLogValueHidesSecretsAndShowsEveryField(t *testing.T) {
	env := with(base(), "NATS_USER", "worker", "NATS_PASSWORD", natsPassword, "VIDM_PASSWORD", vidmPassword)
	c, err := loadMap(t, env, false)
	if err != nil {
		t.Fatal(err)
	}
	c.NATSToken = natsToken // not valid together with a user, but LogValue must hide it anyway
	c.NATSURL = "nats://w:urlpass-SECRET@a:4222,nats://urltoken-SECRET@b:4222"

	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		slog.New(h(&buf)).Info("config", "config", c)
		out := buf.String()
		assertNoSecret(t, "log line", out)
		if strings.Count(out, "[redacted]") < 4 || strings.Count(out, "redacted@") < 2 { // 4 secrets + 2 URL credentials
			t.Fatalf("secrets not shown as [redacted]:\n%s", out)
		}
		for _, want := range []string{"vidm.corp.example.com", "DIRSYNC_TRIGGERS", "worker-7", "a:4222", "b:4222"} {
			if !strings.Contains(out, want) {
				t.Fatalf("log line lacks %q:\n%s", want, out)
			}
		}
	}

	// One attribute per field, so a new field cannot be forgotten silently.
	attrs := c.LogValue().Group()
	if n := len(settings()); len(attrs) != n {
		t.Fatalf("LogValue has %d attributes for %d fields", len(attrs), n)
	}
	// Unset secrets are "", not "[redacted]" (which would claim one is configured).
	empty := Config{}.LogValue().Group()
	for _, a := range empty {
		if a.Value.Kind() == slog.KindString && a.Value.String() != "" {
			t.Fatalf("%s = %q for an empty config", a.Key, a.Value.String())
		}
	}
}

func TestMappings(t *testing.T) {
	env := with(base(), "VIDM_CA_FILE", "/ca.pem", "VIDM_INSECURE_SKIP_VERIFY", "true", "VIDM_REQUEST_TIMEOUT", "7s",
		"POLL_INITIAL_INTERVAL", "1s", "POLL_MAX_INTERVAL", "9s", "SYNC_DEADLINE", "45m", "STREAM_REPLICAS", "3",
		"LEASE_TTL", "20s", "ACK_WAIT", "40s", "MAX_IN_FLIGHT", "128", "TRIGGER_SUBJECTS", "a.>,b")
	c, err := loadMap(t, env, false)
	if err != nil {
		t.Fatal(err)
	}
	got := c.VIDM()
	want := httpcore.Config{
		BaseURL: "https://vidm.corp.example.com", AuthMode: httpcore.AuthOAuth, ClientID: "vidm-sync-worker",
		ClientSecret: vidmClientSecret, CAFile: "/ca.pem", InsecureSkipVerify: true, RequestTimeout: 7 * time.Second,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("VIDM():\n got %+v\nwant %+v", got, want)
	}
	sys, err := loadMap(t, with(base(), "VIDM_AUTH_MODE", "system", "VIDM_USERNAME", "u", "VIDM_PASSWORD", vidmPassword), false)
	if err != nil {
		t.Fatal(err)
	}
	if v := sys.VIDM(); v.AuthMode != httpcore.AuthSystem || v.Username != "u" || v.Password != vidmPassword {
		t.Fatalf("system VIDM(): %+v", v)
	}
	// What Load accepts, the vIDM client accepts.
	for _, cfg := range []Config{c, sys} {
		vc := cfg.VIDM()
		vc.CAFile, vc.InsecureSkipVerify = "", false
		client, err := vidm.New(vc)
		if err != nil {
			t.Fatalf("vidm.New: %v", err)
		}
		client.Close()
	}

	if c.PollInitialInterval != time.Second || c.PollMaxInterval != 9*time.Second || c.SyncDeadline != 45*time.Minute {
		t.Fatalf("poll settings: %v %v %v", c.PollInitialInterval, c.PollMaxInterval, c.SyncDeadline)
	}
	wantNames := streams.Names{
		TriggerStream: "DIRSYNC_TRIGGERS", TriggerSubjects: []string{"a.>", "b"}, ResultStream: "DIRSYNC_RESULTS",
		ResultSubjectPrefix: "dirsync.result", DeadStream: "DIRSYNC_DEAD", DeadSubject: "dirsync.dead",
		Consumer: "vidm-sync-worker", PendingBucket: "DIRSYNC_PENDING", RunsBucket: "DIRSYNC_RUNS", LeaseBucket: "DIRSYNC_LEASES",
		HistoryBucket: "DIRSYNC_HISTORY", ControlBucket: "DIRSYNC_CONTROL",
	}
	if n := c.StreamNames(); !reflect.DeepEqual(n, wantNames) {
		t.Fatalf("StreamNames:\n got %+v\nwant %+v", n, wantNames)
	}
	wantSettings := streams.Settings{Replicas: 3, ResultDuplicateWindow: 30 * time.Minute, LeaseTTL: 20 * time.Second,
		HistoryMaxAge: 168 * time.Hour, AckWait: 40 * time.Second, MaxAckPending: 128,
		TriggerMaxBytes: 1 << 30, ResultMaxBytes: 1 << 30, DeadMaxBytes: 256 << 20}
	if s := c.StreamSettings(); s != wantSettings {
		t.Fatalf("StreamSettings: %+v", s)
	}
}

func TestSubjectsOverlap(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"a.b", "a.b", true}, {"a.b", "a.c", false}, {"a.>", "a.b.c", true}, {"a.>", "a", false},
		{"a.*", "a.b", true}, {"a.*", "a.b.c", false}, {"*.b", "a.*", true}, {">", "x", true},
		{"dirsync.trigger.>", "dirsync.result.>", false}, {"dirsync.>", "dirsync.dead", true},
	} {
		if got := subjectsOverlap(tt.a, tt.b); got != tt.want {
			t.Errorf("overlap(%q, %q) = %v", tt.a, tt.b, got)
		}
		if got := subjectsOverlap(tt.b, tt.a); got != tt.want {
			t.Errorf("overlap(%q, %q) = %v", tt.b, tt.a, got)
		}
	}
}

func TestRequestSubjectIsATriggerSubject(t *testing.T) {
	for _, tc := range []struct {
		filters []string
		ingress string
		want    string
	}{
		{[]string{"dirsync.trigger.>"}, "dirsync.trigger.http", "dirsync.trigger.http"},
		{[]string{"t.ad.>", "t.vidm.*.requested"}, "dirsync.trigger.http", "t.ad.admin"},
		{[]string{"a.*.b"}, "x", "a.admin.b"},
		{[]string{"plain"}, "x", "plain"},
	} {
		c := Config{Streams: Streams{TriggerSubjects: tc.filters}, Ingress: Ingress{IngressSubject: tc.ingress}}
		if got := c.RequestSubject(); got != tc.want {
			t.Errorf("RequestSubject(%v, %q) = %q, want %q", tc.filters, tc.ingress, got, tc.want)
		}
		if !slices.ContainsFunc(tc.filters, func(f string) bool { return subjectMatches(f, c.RequestSubject()) }) {
			t.Errorf("RequestSubject %q is not covered by %v", c.RequestSubject(), tc.filters)
		}
	}
}

// A tenants file may not name one of the worker's own secret files, wherever it sits: its
// tokens and its TLS private keys.
func TestTenantsFileCannotNameTheWorkersOwnSecrets(t *testing.T) {
	for _, tc := range []struct{ name, file string }{
		{"ADMIN_TOKEN_FILE", "admin-token"},
		{"ADMIN_TLS_KEY_FILE", "admin-tls.key"},
		{"INGRESS_TLS_KEY_FILE", "ingress-tls.key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			secret := filepath.Join(dir, tc.file)
			if err := os.WriteFile(secret, []byte("admin-token-value-of-32-characters-X"), 0o600); err != nil {
				t.Fatal(err)
			}
			tf := filepath.Join(dir, "tenants.yaml")
			if err := os.WriteFile(tf, []byte(`tenants: {corp: {backend: vidm, url: "https://vidm", auth: {mode: oauth, clientId: c, clientSecretFile: `+tc.file+`}}}`), 0o600); err != nil {
				t.Fatal(err)
			}
			env := map[string]string{"NATS_URL": "nats://n:4222", "TENANTS_FILE": tf, tc.name: secret,
				"ADMIN_TLS_CERT_FILE": "/t/admin.crt", "INGRESS_TLS_CERT_FILE": "/t/ingress.crt"}
			if tc.name != "ADMIN_TLS_KEY_FILE" {
				delete(env, "ADMIN_TLS_CERT_FILE")
			}
			if tc.name != "INGRESS_TLS_KEY_FILE" {
				delete(env, "INGRESS_TLS_CERT_FILE")
			}
			_, err := loadMap(t, env, false)
			if err == nil || !strings.Contains(err.Error(), tc.file+" is one of the worker's own secret files") {
				t.Fatalf("Load = %v", err)
			}
			if strings.Contains(err.Error(), "admin-token-value") {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}
