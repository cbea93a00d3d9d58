// Package httplimits builds the worker's HTTP servers (the admin port and the ingress) with every
// limit a slow or hostile client could otherwise stretch: the time to send the headers, the whole
// body and to take the answer, idle keep-alives, and the size of the headers. The write limit is
// per request, so a handler that waits on purpose (the ingress's ?wait) extends its own.
package httplimits

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// Limits of one server. Zero fields take the defaults.
type Limits struct {
	ReadHeader time.Duration // to send the request line and headers
	Body       time.Duration // to send the whole body, however slowly it trickles
	Write      time.Duration // to take the answer, from the end of the headers; see Extend
	Idle       time.Duration // a keep-alive connection without a request
	// MaxHeaderBytes bounds the request line and headers (net/http adds 4 KiB of slack and
	// answers 431 beyond).
	MaxHeaderBytes int
}

// The defaults: generous for people and pipelines, short for a client that holds a connection.
const (
	DefaultReadHeader     = 10 * time.Second
	DefaultBody           = 30 * time.Second
	DefaultWrite          = 60 * time.Second
	DefaultIdle           = 60 * time.Second
	DefaultMaxHeaderBytes = 16 << 10
)

func (l Limits) withDefaults() Limits {
	d := Limits{ReadHeader: DefaultReadHeader, Body: DefaultBody, Write: DefaultWrite, Idle: DefaultIdle, MaxHeaderBytes: DefaultMaxHeaderBytes}
	if l.ReadHeader > 0 {
		d.ReadHeader = l.ReadHeader
	}
	if l.Body > 0 {
		d.Body = l.Body
	}
	if l.Write > 0 {
		d.Write = l.Write
	}
	if l.Idle > 0 {
		d.Idle = l.Idle
	}
	if l.MaxHeaderBytes > 0 {
		d.MaxHeaderBytes = l.MaxHeaderBytes
	}
	return d
}

// Server returns an http.Server for h with the limits l.
//
// The body and write limits are set per request on the connection rather than as the server's
// ReadTimeout and WriteTimeout: those run from the start of the request, and a read deadline
// left on the connection after the body would end the request's context while a handler waits.
func Server(h http.Handler, l Limits, log *slog.Logger) *http.Server {
	l = l.withDefaults()
	return &http.Server{
		Handler:           bounded(h, l),
		ReadHeaderTimeout: l.ReadHeader,
		IdleTimeout:       l.Idle,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func bounded(h http.Handler, l Limits) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Now().Add(l.Write))
		if r.Body != nil && r.Body != http.NoBody {
			// Cleared once the body is read to its end, so nothing is left to expire later.
			_ = rc.SetReadDeadline(time.Now().Add(l.Body))
			r.Body = &deadlineBody{ReadCloser: r.Body, clear: func() { _ = rc.SetReadDeadline(time.Time{}) }}
		}
		h.ServeHTTP(w, r)
	})
}

type deadlineBody struct {
	io.ReadCloser
	once  sync.Once
	clear func()
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.once.Do(b.clear)
	}
	return n, err
}

// Extend moves the answer's write deadline to d from now: for a handler that waits on purpose
// before it answers (it adds the time the answer itself may take).
func Extend(w http.ResponseWriter, d time.Duration) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}

// TimedOut reports whether err is a body read that ran out of time (answer 408).
func TimedOut(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
