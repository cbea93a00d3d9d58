package config

import (
	"cmp"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Tracing is OpenTelemetry tracing, configured by the standard OTEL_* variables: spans are exported
// with OTLP (over HTTP by default, or gRPC), and only when an endpoint is set. The variables the exporter reads beyond
// these (OTEL_EXPORTER_OTLP_TIMEOUT, _COMPRESSION, _CERTIFICATE, OTEL_BSP_*, ...) it reads itself.
type Tracing struct {
	// OTelSDKDisabled turns tracing off whatever else is set.
	OTelSDKDisabled bool `env:"OTEL_SDK_DISABLED,default=false"`
	// OTelTracesExporter is otlp (the default) or none.
	OTelTracesExporter string `env:"OTEL_TRACES_EXPORTER"`
	// OTLPEndpoint is the collector's OTLP base URL; over HTTP spans go to its /v1/traces.
	OTLPEndpoint string `env:"OTEL_EXPORTER_OTLP_ENDPOINT"`
	// OTLPTracesEndpoint is the whole URL spans are posted to; it wins over OTLPEndpoint.
	OTLPTracesEndpoint string `env:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"`
	// OTLPProtocol and OTLPTracesProtocol (which wins): http/protobuf (the default), http/json
	// or grpc.
	OTLPProtocol       string `env:"OTEL_EXPORTER_OTLP_PROTOCOL"`
	OTLPTracesProtocol string `env:"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"`
	// OTLPHeaders and OTLPTracesHeaders (which replaces it) are sent with every export:
	// "name=value,..." with percent-encoded values. Secrets (an API key); or *_FILE.
	OTLPHeaders       string `env:"OTEL_EXPORTER_OTLP_HEADERS"`
	OTLPTracesHeaders string `env:"OTEL_EXPORTER_OTLP_TRACES_HEADERS"`
	// OTelServiceName is the service.name of the spans; default the service.name of
	// OTEL_RESOURCE_ATTRIBUTES, else vidm-sync-worker.
	OTelServiceName string `env:"OTEL_SERVICE_NAME"`
	// OTelResourceAttributes describe the worker in every span: "key=value,..." percent-encoded.
	OTelResourceAttributes string `env:"OTEL_RESOURCE_ATTRIBUTES"`
	// OTelTracesSampler and its argument: parentbased_always_on by default, so a trigger's
	// publisher decides whether its trace is sampled.
	OTelTracesSampler    string `env:"OTEL_TRACES_SAMPLER"`
	OTelTracesSamplerArg string `env:"OTEL_TRACES_SAMPLER_ARG"`
}

// DefaultServiceName is the spans' service.name when neither OTEL_SERVICE_NAME nor
// OTEL_RESOURCE_ATTRIBUTES names one.
const DefaultServiceName = "vidm-sync-worker"

// The samplers of OTEL_TRACES_SAMPLER the SDK offers without a remote service.
var tracesSamplers = []string{"always_on", "always_off", "traceidratio", "parentbased_always_on",
	"parentbased_always_off", "parentbased_traceidratio"}

// switchedOff reports tracing turned off on purpose, whatever endpoint is set.
func (c Tracing) switchedOff() bool {
	return c.OTelSDKDisabled || strings.EqualFold(strings.TrimSpace(c.OTelTracesExporter), "none")
}

// TracingEnabled reports whether spans are exported: an endpoint is set and nothing turns
// tracing off.
func (c Tracing) TracingEnabled() bool { return !c.switchedOff() && c.TracesURL() != "" }

// TracesURL is where spans are sent: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is (its root
// when it has no path), else OTEL_EXPORTER_OTLP_ENDPOINT with /v1/traces appended over HTTP, as
// it is over gRPC (whose exporter uses the host and port only); "" when neither is set.
func (c Tracing) TracesURL() string {
	if raw := strings.TrimSpace(c.OTLPTracesEndpoint); raw != "" {
		u, err := url.Parse(raw)
		if err != nil {
			return raw
		}
		if u.Path == "" {
			u.Path = "/"
		}
		return u.String()
	}
	if raw := strings.TrimSpace(c.OTLPEndpoint); raw != "" {
		u, err := url.Parse(raw)
		if err != nil {
			return raw
		}
		if c.ExportProtocol() == "grpc" {
			return raw
		}
		u.Path = path.Join("/", u.Path, "v1/traces")
		return u.String()
	}
	return ""
}

// ExportProtocol is how spans are sent: http/protobuf (the default), http/json or grpc.
func (c Tracing) ExportProtocol() string {
	return cmp.Or(strings.TrimSpace(firstSet(c.OTLPTracesProtocol, c.OTLPProtocol)), "http/protobuf")
}

// ExportHeaders are the headers sent with every export: OTEL_EXPORTER_OTLP_TRACES_HEADERS when
// set, else OTEL_EXPORTER_OTLP_HEADERS. Load rejects values that do not parse.
func (c Tracing) ExportHeaders() map[string]string {
	h, _ := parseKeyValues(firstSet(c.OTLPTracesHeaders, c.OTLPHeaders), validHeaderName)
	return h
}

// ResourceAttributes are OTEL_RESOURCE_ATTRIBUTES with service.name resolved: OTEL_SERVICE_NAME
// wins, then the list's own, then DefaultServiceName.
func (c Tracing) ResourceAttributes() map[string]string {
	attrs, _ := parseKeyValues(c.OTelResourceAttributes, func(k string) bool { return k != "" })
	if attrs == nil {
		attrs = map[string]string{}
	}
	switch name := strings.TrimSpace(c.OTelServiceName); {
	case name != "":
		attrs["service.name"] = name
	case attrs["service.name"] == "":
		attrs["service.name"] = DefaultServiceName
	}
	return attrs
}

// TracesSampler is the sampler's name (parentbased_always_on by default) and, for the
// traceidratio samplers, the ratio of traces sampled (1 unless OTEL_TRACES_SAMPLER_ARG says).
func (c Tracing) TracesSampler() (name string, ratio float64) {
	name = strings.ToLower(strings.TrimSpace(c.OTelTracesSampler))
	if name == "" {
		name = "parentbased_always_on"
	}
	ratio = 1
	if arg := strings.TrimSpace(c.OTelTracesSamplerArg); arg != "" && strings.HasSuffix(name, "traceidratio") {
		if r, err := strconv.ParseFloat(arg, 64); err == nil {
			ratio = r
		}
	}
	return name, ratio
}

// validate checks the OTEL_* variables unless tracing is switched off (OTEL_SDK_DISABLED,
// OTEL_TRACES_EXPORTER=none): then they may well be meant for another program. Header values
// are never shown.
func (c Tracing) validate(p *problemList) {
	if c.switchedOff() {
		return
	}
	if e := strings.TrimSpace(c.OTelTracesExporter); e != "" && !strings.EqualFold(e, "otlp") {
		p.add("OTEL_TRACES_EXPORTER", fmt.Sprintf("%q is not otlp or none (the worker exports OTLP only)", e))
	}
	if strings.EqualFold(strings.TrimSpace(c.OTelTracesExporter), "otlp") && c.TracesURL() == "" {
		p.add("OTEL_TRACES_EXPORTER", "otlp needs OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: tracing is off without an endpoint")
	}
	for _, e := range []struct{ env, v string }{
		{"OTEL_EXPORTER_OTLP_ENDPOINT", c.OTLPEndpoint}, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", c.OTLPTracesEndpoint},
	} {
		checkOTLPURL(p, e.env, e.v)
	}
	for _, e := range []struct{ env, v string }{
		{"OTEL_EXPORTER_OTLP_PROTOCOL", c.OTLPProtocol}, {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", c.OTLPTracesProtocol},
	} {
		switch v := strings.TrimSpace(e.v); v {
		case "", "http/protobuf", "http/json", "grpc":
		default:
			p.add(e.env, fmt.Sprintf("%q is not http/protobuf, http/json or grpc", v))
		}
	}
	for _, e := range []struct{ env, v string }{
		{"OTEL_EXPORTER_OTLP_HEADERS", c.OTLPHeaders}, {"OTEL_EXPORTER_OTLP_TRACES_HEADERS", c.OTLPTracesHeaders},
	} {
		if _, err := parseKeyValues(e.v, validHeaderName); err != nil {
			p.add(e.env, err.Error()+` (want "name=value,..." with percent-encoded values)`)
		}
	}
	if _, err := parseKeyValues(c.OTelResourceAttributes, func(k string) bool { return k != "" }); err != nil {
		p.add("OTEL_RESOURCE_ATTRIBUTES", err.Error()+` (want "key=value,..." with percent-encoded values)`)
	}
	name := strings.ToLower(strings.TrimSpace(c.OTelTracesSampler))
	if name != "" && !slices.Contains(tracesSamplers, name) {
		p.add("OTEL_TRACES_SAMPLER", fmt.Sprintf("%q is not one of %s", c.OTelTracesSampler, strings.Join(tracesSamplers, ", ")))
	}
	if arg := strings.TrimSpace(c.OTelTracesSamplerArg); arg != "" && strings.HasSuffix(name, "traceidratio") {
		if r, err := strconv.ParseFloat(arg, 64); err != nil || r < 0 || r > 1 {
			p.add("OTEL_TRACES_SAMPLER_ARG", fmt.Sprintf("%q is not a ratio between 0 and 1", arg))
		}
	}
}

// checkOTLPURL checks an OTLP/HTTP endpoint. Credentials belong in the headers, not the URL
// (which is logged), so a URL carrying them is refused without being shown.
func checkOTLPURL(p *problemList, env, raw string) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		p.add(env, "is not a valid URL")
	case u.User != nil:
		p.add(env, "must not carry credentials; use OTEL_EXPORTER_OTLP_HEADERS")
	case u.Scheme != "http" && u.Scheme != "https":
		p.add(env, fmt.Sprintf("%q must start with http:// or https://", raw))
	case u.Host == "":
		p.add(env, fmt.Sprintf("%q has no host", raw))
	case u.RawQuery != "" || u.Fragment != "":
		p.add(env, fmt.Sprintf("%q must not have a query or fragment", raw))
	}
}

// parseKeyValues reads the OTEL_*_HEADERS and OTEL_RESOURCE_ATTRIBUTES form: comma-separated
// key=value pairs, values percent-encoded, spaces around both trimmed, empty entries skipped.
// Errors say which entry is wrong, never its value.
func parseKeyValues(s string, validKey func(string) bool) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for i, entry := range strings.Split(s, ",") {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		k, v, ok := strings.Cut(entry, "=")
		k = strings.TrimSpace(k)
		if !ok {
			return nil, fmt.Errorf("entry %d has no '='", i+1)
		}
		if !validKey(k) {
			return nil, fmt.Errorf("entry %d: %q is not a valid name", i+1, k)
		}
		val, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("entry %d (%s): the value is not percent-encoded correctly", i+1, k)
		}
		if strings.ContainsFunc(val, unicode.IsControl) {
			return nil, fmt.Errorf("entry %d (%s): the value holds control characters", i+1, k)
		}
		out[k] = val
	}
	return out, nil
}

// validHeaderName admits an HTTP header name (an RFC 9110 token).
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		token := unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("!#$%&'*+-.^_`|~", r)
		if r > unicode.MaxASCII || !token {
			return false
		}
	}
	return true
}

// headerNames shows which headers are set, their values masked, for the start-up log.
func headerNames(s string) string {
	if strings.TrimSpace(s) == "" {
		return ""
	}
	h, err := parseKeyValues(s, validHeaderName)
	if err != nil {
		return "[redacted]"
	}
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k+"=[redacted]")
	}
	slices.Sort(names)
	return strings.Join(names, ",")
}

// firstSet is a unless it is blank, else b: the per-signal variable wins over the general one.
func firstSet(a, b string) string {
	if strings.TrimSpace(a) != "" {
		return a
	}
	return b
}
