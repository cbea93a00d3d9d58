package config

import (
	"bytes"
	"log/slog"
	"maps"
	"strings"
	"testing"
)

// otlpKey is a distinctive exporter credential: it must never be shown.
const otlpKey = "otlpKey-4c5d6e-SECRET"

func TestTracingValidation(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // variables named, one per problem; empty: valid
		text string   // a phrase the error must contain
	}{
		{"off by default", base(), nil, ""},
		{"endpoint", with(base(), "OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector:4318"), nil, ""},
		{"traces endpoint with protocol and headers", with(base(), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://tempo.example.com/otlp/v1/traces",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf", "OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20"+otlpKey+", X-Scope-OrgID=ops"), nil, ""},
		{"json", with(base(), "OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"), nil, ""},
		{"explicit otlp with endpoint", with(base(), "OTEL_TRACES_EXPORTER", "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), nil, ""},
		{"sampler and resource", with(base(), "OTEL_TRACES_SAMPLER", "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG", "0.25",
			"OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod,k8s.namespace.name=identity"), nil, ""},
		{"sampler argument of another sampler is ignored", with(base(), "OTEL_TRACES_SAMPLER", "always_on", "OTEL_TRACES_SAMPLER_ARG", "x"), nil, ""},
		{"grpc", with(base(), "OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), nil, ""},
		{"unknown protocol", with(base(), "OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"), []string{"OTEL_EXPORTER_OTLP_PROTOCOL"}, `"thrift"`},
		{"unknown traces protocol", with(base(), "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc/json"), []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"}, "http/protobuf, http/json or grpc"},
		{"other exporter", with(base(), "OTEL_TRACES_EXPORTER", "zipkin"), []string{"OTEL_TRACES_EXPORTER"}, "otlp or none"},
		{"otlp without endpoint", with(base(), "OTEL_TRACES_EXPORTER", "otlp"), []string{"OTEL_TRACES_EXPORTER"}, "needs OTEL_EXPORTER_OTLP_ENDPOINT"},
		{"endpoint scheme", with(base(), "OTEL_EXPORTER_OTLP_ENDPOINT", "otel-collector:4318"), []string{"OTEL_EXPORTER_OTLP_ENDPOINT"}, "http://"},
		{"endpoint without host", with(base(), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http:///v1/traces"), []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"}, "no host"},
		{"endpoint with query", with(base(), "OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/?a=b"), []string{"OTEL_EXPORTER_OTLP_ENDPOINT"}, "query"},
		{"endpoint with credentials", with(base(), "OTEL_EXPORTER_OTLP_ENDPOINT", "https://u:urlpass-SECRET@c:4318"),
			[]string{"OTEL_EXPORTER_OTLP_ENDPOINT"}, "OTEL_EXPORTER_OTLP_HEADERS"},
		{"header without =", with(base(), "OTEL_EXPORTER_OTLP_HEADERS", "api-key "+otlpKey), []string{"OTEL_EXPORTER_OTLP_HEADERS"}, "entry 1 has no '='"},
		{"header name", with(base(), "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "ok=1,bad name="+otlpKey), []string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS"}, "entry 2"},
		{"header encoding", with(base(), "OTEL_EXPORTER_OTLP_HEADERS", "api-key="+otlpKey+"%zz"), []string{"OTEL_EXPORTER_OTLP_HEADERS"}, "percent-encoded"},
		{"header control character", with(base(), "OTEL_EXPORTER_OTLP_HEADERS", "api-key="+otlpKey+"%0d%0aX-Evil: 1"), []string{"OTEL_EXPORTER_OTLP_HEADERS"}, "control characters"},
		{"resource attributes", with(base(), "OTEL_RESOURCE_ATTRIBUTES", "a=1,=2"), []string{"OTEL_RESOURCE_ATTRIBUTES"}, "entry 2"},
		{"sampler", with(base(), "OTEL_TRACES_SAMPLER", "jaeger_remote"), []string{"OTEL_TRACES_SAMPLER"}, "parentbased_always_on"},
		{"sampler ratio", with(base(), "OTEL_TRACES_SAMPLER", "traceidratio", "OTEL_TRACES_SAMPLER_ARG", "1.5"), []string{"OTEL_TRACES_SAMPLER_ARG"}, "between 0 and 1"},
		{"sdk disabled", with(base(), "OTEL_SDK_DISABLED", "maybe"), []string{"OTEL_SDK_DISABLED"}, "not a valid bool"},
		// Switched off, the variables may be another program's: nothing is checked.
		{"disabled ignores the rest", with(base(), "OTEL_SDK_DISABLED", "true", "OTEL_EXPORTER_OTLP_PROTOCOL", "thrift", "OTEL_TRACES_SAMPLER", "xray"), nil, ""},
		{"exporter none ignores the rest", with(base(), "OTEL_TRACES_EXPORTER", "none", "OTEL_EXPORTER_OTLP_ENDPOINT", "c:4317"), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := loadMap(t, tt.env, false); err != nil && strings.Contains(err.Error(), otlpKey) {
				t.Fatalf("the error shows the header's value:\n%v", err)
			}
			checkLoad(t, tt.env, false, tt.want, tt.text)
		})
	}
}

func TestTracingSettings(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		enabled  bool
		url      string
		protocol string
		headers  map[string]string
		resource map[string]string
		sampler  string
		ratio    float64
	}{
		{name: "nothing set", env: nil, resource: map[string]string{"service.name": "vidm-sync-worker"}, sampler: "parentbased_always_on", ratio: 1},
		{name: "base endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, enabled: true,
			url: "http://collector:4318/v1/traces", resource: map[string]string{"service.name": "vidm-sync-worker"}, sampler: "parentbased_always_on", ratio: 1},
		{name: "base endpoint with a path", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://gw.example.com/otlp/"}, enabled: true,
			url: "https://gw.example.com/otlp/v1/traces", resource: map[string]string{"service.name": "vidm-sync-worker"}, sampler: "parentbased_always_on", ratio: 1},
		{name: "traces endpoint as is, and it wins", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4318/custom"}, enabled: true,
			url: "http://b:4318/custom", resource: map[string]string{"service.name": "vidm-sync-worker"}, sampler: "parentbased_always_on", ratio: 1},
		{name: "traces endpoint without a path is its root", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4318"}, enabled: true,
			url: "http://b:4318/", resource: map[string]string{"service.name": "vidm-sync-worker"}, sampler: "parentbased_always_on", ratio: 1},
		{name: "disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_SDK_DISABLED": "true"},
			url: "http://a:4318/v1/traces", resource: map[string]string{"service.name": "vidm-sync-worker"}, sampler: "parentbased_always_on", ratio: 1},
		{name: "exporter none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_TRACES_EXPORTER": "none"},
			url: "http://a:4318/v1/traces", resource: map[string]string{"service.name": "vidm-sync-worker"}, sampler: "parentbased_always_on", ratio: 1},
		{name: "traces headers replace the general ones, json, sampler", env: map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
			"OTEL_EXPORTER_OTLP_HEADERS": "a=1", "OTEL_EXPORTER_OTLP_TRACES_HEADERS": " Authorization = Basic%20" + otlpKey + " ,, X-Org=ops",
			"OTEL_TRACES_SAMPLER": "ParentBased_TraceIDRatio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}, enabled: true,
			url: "http://a:4318/v1/traces", protocol: "http/json", headers: map[string]string{"Authorization": "Basic " + otlpKey, "X-Org": "ops"},
			resource: map[string]string{"service.name": "vidm-sync-worker"}, sampler: "parentbased_traceidratio", ratio: 0.1},
		{name: "grpc takes the endpoint as it is", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			enabled: true, url: "https://collector:4317", protocol: "grpc", resource: map[string]string{"service.name": "vidm-sync-worker"},
			sampler: "parentbased_always_on", ratio: 1},
		{name: "service name from the resource attributes", env: map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=dirsync,team=identity%20ops"},
			resource: map[string]string{"service.name": "dirsync", "team": "identity ops"}, sampler: "parentbased_always_on", ratio: 1},
		{name: "OTEL_SERVICE_NAME wins", env: map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "service.name=dirsync", "OTEL_SERVICE_NAME": "sync-emea"},
			resource: map[string]string{"service.name": "sync-emea"}, sampler: "parentbased_always_on", ratio: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := base()
			maps.Copy(env, tt.env)
			c, err := loadMap(t, env, false)
			if err != nil {
				t.Fatal(err)
			}
			sampler, ratio := c.TracesSampler()
			if tt.protocol == "" {
				tt.protocol = "http/protobuf"
			}
			if c.TracingEnabled() != tt.enabled || c.TracesURL() != tt.url || c.ExportProtocol() != tt.protocol ||
				!maps.Equal(c.ExportHeaders(), tt.headers) || !maps.Equal(c.ResourceAttributes(), tt.resource) ||
				sampler != tt.sampler || ratio != tt.ratio {
				t.Fatalf("enabled %v url %q protocol %s headers %v resource %v sampler %s %v", c.TracingEnabled(), c.TracesURL(), c.ExportProtocol(),
					c.ExportHeaders(), c.ResourceAttributes(), sampler, ratio)
			}
		})
	}
}

// The exporter's headers may hold an API key: the start-up log, -print-config and the summary
// show their names only; a headers file is read like every other secret's.
func TestTracingHeadersAreSecret(t *testing.T) {
	env := with(base(), "OTEL_EXPORTER_OTLP_ENDPOINT", "https://otlp.example.com", "OTEL_EXPORTER_OTLP_HEADERS", "api-key="+otlpKey+",x-org=ops",
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS_FILE", writeFile(t, "authorization=Bearer%20"+otlpKey+"\n"))
	c, err := loadMap(t, env, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.ExportHeaders(); got["authorization"] != "Bearer "+otlpKey || len(got) != 1 {
		t.Fatalf("headers from the file: %v", got)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "config", c, "summary", c.Summary())
	if err := c.WriteSettings(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, otlpKey) {
		t.Fatalf("the header's value is shown:\n%s", out)
	}
	for _, want := range []string{"api-key=[redacted],x-org=[redacted]", "authorization=[redacted]", `"tracing":"https://otlp.example.com/v1/traces"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
}
