// Package logging builds the slog loggers of every command: tint's colourful text for a terminal,
// plain text when piped, JSON for production log pipelines. A line logged with a context that
// carries a trace span names it (trace_id, span_id), so logs and traces join up.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/lmittmann/tint"
	"go.opentelemetry.io/otel/trace"
)

// New returns a logger writing to w in format "text" or "json" at level (debug, info, warn, error).
func New(format, level string, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(strings.ToLower(level))); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	switch format {
	case "text":
		return slog.New(WithTrace(tint.NewTextHandler(w, &tint.Options{Level: lvl, NoColor: !isTerminal(w)}))), nil
	case "json":
		return slog.New(WithTrace(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl, ReplaceAttr: durationText}))), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// WithTrace wraps h so that a record logged with a context holding a valid span context (the
// *Context methods: InfoContext, ...) carries trace_id and span_id. With tracing off that is the
// trigger's own trace context, which intake puts in its context all the same.
func WithTrace(h slog.Handler) slog.Handler {
	if _, ok := h.(traceHandler); ok {
		return h
	}
	return traceHandler{h}
}

type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}
func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}

// durationText writes durations as Go duration strings ("1.35s", "30m0s") rather than the JSON
// handler's integer nanoseconds, which nobody reads: the same form the configuration takes them
// in, and the text logs show.
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
