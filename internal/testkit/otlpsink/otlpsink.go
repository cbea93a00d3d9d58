// Package otlpsink is an in-process OTLP/HTTP trace receiver, as an OpenTelemetry Collector would
// be: an httptest server that decodes what an exporter posts (protobuf or JSON, gzip or not) and
// keeps the spans, or only counts them (the benchmark, where keeping would cost memory). Tests
// point OTEL_EXPORTER_OTLP_ENDPOINT at URL to measure and check the real export path.
package otlpsink

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Sink is a running receiver. Its methods are safe to call while exports arrive.
type Sink struct {
	srv      *httptest.Server
	keep     bool
	spans    atomic.Int64
	requests atomic.Int64
	status   atomic.Int32 // the answer to every export; 0: 200

	mu       sync.Mutex
	received []*tracepb.ResourceSpans
	header   http.Header
}

// Start starts a receiver; keep says whether it keeps the spans (Received) or only counts them.
func Start(keep bool) *Sink {
	s := &Sink{keep: keep}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the receiver's base URL, an OTEL_EXPORTER_OTLP_ENDPOINT: spans go to URL/v1/traces.
func (s *Sink) URL() string { return s.srv.URL }

// Close stops the receiver.
func (s *Sink) Close() { s.srv.Close() }

// Spans is the number of spans received so far.
func (s *Sink) Spans() int { return int(s.spans.Load()) }

// Requests is the number of export requests received so far, decodable or not.
func (s *Sink) Requests() int { return int(s.requests.Load()) }

// Fail makes the receiver answer every export with status (0: succeed again).
func (s *Sink) Fail(status int) { s.status.Store(int32(status)) } //nolint:gosec // an HTTP status

// Received is every span kept so far, with its resource and scope.
func (s *Sink) Received() []*tracepb.ResourceSpans {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.received)
}

// Header is the headers of the last export request.
func (s *Sink) Header() http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.header.Clone()
}

func (s *Sink) serve(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.mu.Lock()
	s.header = r.Header.Clone()
	s.mu.Unlock()
	if st := int(s.status.Load()); st != 0 {
		http.Error(w, "refused by the test", st)
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.NotFound(w, r)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	json := r.Header.Get("Content-Type") == "application/json"
	if json {
		err = protojson.Unmarshal(b, &req)
	} else {
		err = proto.Unmarshal(b, &req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n := 0
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	if s.keep {
		s.mu.Lock()
		s.received = append(s.received, req.GetResourceSpans()...)
		s.mu.Unlock()
	}
	s.spans.Add(int64(n))
	var out []byte
	if json {
		w.Header().Set("Content-Type", "application/json")
		out, _ = protojson.Marshal(&coltracepb.ExportTraceServiceResponse{})
	} else {
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ = proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	}
	_, _ = w.Write(out)
}
