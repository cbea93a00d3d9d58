package vidm_test

import (
	"context"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
)

// Traced, every HTTP attempt is a client span, a child of the caller's span, and the request
// carries that span's traceparent rather than the trigger's; the span names the call, the URL
// without its query and the answer's status.
func TestEveryCallIsAClientSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	e := newSimEnv(t, withClient(func(c *httpcore.Config) { c.TracerProvider = tp }))
	const publisher = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx, run := tp.Tracer("test").Start(httpcore.WithTraceparent(context.Background(), publisher), "run")
	if err := e.client.StartSync(ctx, "dir-corp", false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.SyncStatus(ctx, "dir-nowhere"); err == nil {
		t.Fatal("status of an unknown directory answered")
	}
	run.End()

	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if s.Name() == "run" {
			continue
		}
		byName[s.Name()] = s
		if s.Parent().SpanID() != run.SpanContext().SpanID() || s.SpanKind().String() != "client" {
			t.Fatalf("span %q: parent %v kind %s, want a client span under the run", s.Name(), s.Parent(), s.SpanKind())
		}
	}
	token, start, status := byName["POST oauth token"], byName["POST start sync"], byName["GET sync status"]
	if token == nil || start == nil || status == nil {
		t.Fatalf("spans %v", byName)
	}
	attrs := func(s sdktrace.ReadOnlySpan) map[string]string {
		m := map[string]string{}
		for _, kv := range s.Attributes() {
			m[string(kv.Key)] = kv.Value.String()
		}
		return m
	}
	if a := attrs(token); strings.Contains(a["url.full"], "?") || a["http.response.status_code"] != "200" || a["dirsync.endpoint"] != httpcore.EndpointToken {
		t.Fatalf("token span attributes %v: want the URL without its query", a)
	}
	if a := attrs(start); a["http.request.method"] != "POST" || a["dirsync.backend"] != "vidm" || a["server.address"] != "127.0.0.1" ||
		!strings.HasPrefix(a["url.full"], e.srv.URL+"/SAAS/") {
		t.Fatalf("start span attributes %v", a)
	}
	if a := attrs(status); a["error.type"] != "404" || status.Status().Code.String() != "Error" {
		t.Fatalf("failed call's span: attributes %v status %v", a, status.Status())
	}
	for _, s := range rec.Ended() {
		for _, kv := range s.Attributes() {
			if strings.Contains(kv.Value.String(), testClientSecret) {
				t.Fatalf("span %q shows the client secret in %s", s.Name(), kv.Key)
			}
		}
	}
	want := "00-" + start.SpanContext().TraceID().String() + "-" + start.SpanContext().SpanID().String() + "-01"
	if log := e.sim.SyncLog(); len(log) != 1 || log[0].Traceparent != want {
		t.Fatalf("the POST carried traceparent %q, want its span's %q", log[0].Traceparent, want)
	}
}
