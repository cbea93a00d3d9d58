package backend

import (
	"context"
	"net/http"
)

type headersKey struct{}

type requestHeaders struct {
	requestID   string
	traceparent string
}

// WithRequestID returns a context whose backend requests carry X-Request-Id, so the backend's
// logs (and the simulator's sync log) can name the run or trigger behind a call.
func WithRequestID(ctx context.Context, id string) context.Context {
	h := headersFrom(ctx)
	h.requestID = id
	return context.WithValue(ctx, headersKey{}, h)
}

// WithTraceparent returns a context whose backend requests carry the W3C traceparent header.
func WithTraceparent(ctx context.Context, tp string) context.Context {
	h := headersFrom(ctx)
	h.traceparent = tp
	return context.WithValue(ctx, headersKey{}, h)
}

func headersFrom(ctx context.Context) requestHeaders {
	h, _ := ctx.Value(headersKey{}).(requestHeaders)
	return h
}

// SetRequestHeaders copies the context's request id and traceparent onto an outgoing request.
func SetRequestHeaders(ctx context.Context, hdr http.Header) {
	h := headersFrom(ctx)
	if safeHeaderValue(h.requestID) {
		hdr.Set("X-Request-Id", h.requestID)
	}
	if safeHeaderValue(h.traceparent) {
		hdr.Set("Traceparent", h.traceparent)
	}
}

// safeHeaderValue admits short printable ASCII only: values come from events and must never be
// able to inject a header or break the request.
func safeHeaderValue(v string) bool {
	if v == "" || len(v) > 256 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}
