// Package otlpsink is an in-process OTLP trace receiver, as an OpenTelemetry Collector would be:
// an httptest server that decodes what an exporter posts (protobuf or JSON, gzip or not), and a
// gRPC server beside it, that keep the spans or only count them (the benchmark, where keeping
// would cost memory). Tests point OTEL_EXPORTER_OTLP_ENDPOINT at URL (or GRPCURL) to measure
// and check the real export path.
package otlpsink

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Sink is a running receiver. Its methods are safe to call while exports arrive.
type Sink struct {
	srv      *httptest.Server
	grpc     *grpc.Server
	grpcAddr string
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
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("otlpsink: listening for gRPC: %v", err)) // as httptest.NewServer does
	}
	s.grpcAddr = l.Addr().String()
	s.grpc = grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(s.grpc, grpcService{s: s})
	go func() { _ = s.grpc.Serve(l) }()
	return s
}

// URL is the receiver's OTLP/HTTP base URL, an OTEL_EXPORTER_OTLP_ENDPOINT: spans go to
// URL/v1/traces.
func (s *Sink) URL() string { return s.srv.URL }

// GRPCURL is the receiver's OTLP/gRPC endpoint (http://: without TLS).
func (s *Sink) GRPCURL() string { return "http://" + s.grpcAddr }

// Close stops the receiver.
func (s *Sink) Close() {
	s.grpc.Stop()
	s.srv.Close()
}

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

// arrived notes an export request's headers and reports whether the test refuses it.
func (s *Sink) arrived(h http.Header) (refuse int) {
	s.requests.Add(1)
	s.mu.Lock()
	s.header = h
	s.mu.Unlock()
	return int(s.status.Load())
}

// record keeps or counts what an export request carried.
func (s *Sink) record(req *coltracepb.ExportTraceServiceRequest) {
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
}

func (s *Sink) serve(w http.ResponseWriter, r *http.Request) {
	if st := s.arrived(r.Header.Clone()); st != 0 {
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
	json := r.Header.Get("Content-Type") == "application/json"
	if !s.keep && !json {
		// Counting only (the benchmark): walk the protobuf rather than decode it, so that the
		// receiver, sharing the cores with the worker, costs as little as it can.
		n, err := countSpans(b)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.spans.Add(int64(n))
	} else {
		var req coltracepb.ExportTraceServiceRequest
		if json {
			err = protojson.Unmarshal(b, &req)
		} else {
			err = proto.Unmarshal(b, &req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.record(&req)
	}
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

// grpcService is the OTLP/gRPC trace service; its metadata counts as the request's headers.
type grpcService struct {
	coltracepb.UnimplementedTraceServiceServer
	s *Sink
}

func (g grpcService) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	h := http.Header{}
	for k, vs := range md {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	if g.s.arrived(h) != 0 {
		// Not a code the exporter retries: the export fails at once.
		return nil, status.Error(codes.InvalidArgument, "refused by the test")
	}
	g.s.record(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// countSpans counts the spans of an encoded ExportTraceServiceRequest: its resource_spans (1),
// their scope_spans (2), their spans (2).
func countSpans(b []byte) (int, error) {
	n := 0
	err := eachField(b, 1, func(rs []byte) error {
		return eachField(rs, 2, func(ss []byte) error {
			return eachField(ss, 2, func([]byte) error { n++; return nil })
		})
	})
	return n, err
}

// eachField calls f with the bytes of every length-delimited field num of message b.
func eachField(b []byte, num protowire.Number, f func([]byte) error) error {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if n == num && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return protowire.ParseError(l)
			}
			if err := f(v); err != nil {
				return err
			}
			b = b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
	}
	return nil
}
