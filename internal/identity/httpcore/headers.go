package httpcore

import (
	"context"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
)

// WithRequestID returns a context whose requests carry X-Request-Id (backend.WithRequestID).
func WithRequestID(ctx context.Context, id string) context.Context {
	return backend.WithRequestID(ctx, id)
}

// WithTraceparent returns a context whose requests carry the W3C traceparent header.
func WithTraceparent(ctx context.Context, tp string) context.Context {
	return backend.WithTraceparent(ctx, tp)
}
