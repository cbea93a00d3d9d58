// Package natsdev runs an embedded NATS server with JetStream, for the dev command, demos and tests.
//
// It is not a production broker: it is a single node with no authentication. Production
// deployments run a NATS cluster (see deploy/).
package natsdev

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// readyTimeout bounds how long Start and Restart wait for the server to accept clients.
const readyTimeout = 10 * time.Second

// Options configures the embedded server.
type Options struct {
	// StoreDir is the JetStream storage directory. Empty: a new temporary directory that
	// Shutdown removes (the data lives exactly as long as the Server; it survives Restart).
	StoreDir string
	// Port to listen on. 0 or -1: a random free port (use URL to find it).
	Port int
	// Host to listen on. Default 127.0.0.1: a dev broker without authentication must not be
	// reachable from other machines unless asked for.
	Host string
	// SyncAlways makes JetStream fsync every write before acknowledging it (sync_interval:
	// always). The default flushes on an interval, so an acknowledged write can be lost on
	// power failure (see DESIGN.md, "Durability of the broker itself").
	SyncAlways bool
	// Logger receives the server's log lines. Nil: the server logs nothing.
	Logger *slog.Logger
	// ConfigFile is a nats-server configuration file whose settings (authorization above all)
	// apply; Host, Port and StoreDir above override its listen address and store directory.
	ConfigFile string
	// TLS, when set, makes clients connect with TLS.
	TLS *tls.Config
	// MaxPayload is the server's max_payload in bytes; 0: NATS's default (1 MiB). Tests set a
	// small one so that paging at the message-size limit is exercised by a few thousand triggers.
	MaxPayload int32
}

// Server is a running embedded NATS server. Its methods are safe for concurrent use.
type Server struct {
	mu      sync.Mutex
	opts    Options // resolved: Host set, Port the one actually bound after the first start
	ownsDir bool    // StoreDir was created by Start and is removed by Shutdown
	ns      *server.Server
	node    *nodeConfig // set for a node of a Cluster
}

// Start starts the server and waits until it accepts connections.
func Start(opts Options) (*Server, error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	s := &Server{opts: opts}
	if s.opts.StoreDir == "" {
		dir, err := os.MkdirTemp("", "natsdev-")
		if err != nil {
			return nil, fmt.Errorf("natsdev: creating a store directory: %w", err)
		}
		s.opts.StoreDir, s.ownsDir = dir, true
	}
	ns, err := s.start()
	if err != nil {
		if s.ownsDir {
			_ = os.RemoveAll(s.opts.StoreDir)
		}
		return nil, err
	}
	s.ns = ns
	// Pin the port that was bound so that Restart comes back at the same URL.
	if addr, ok := ns.Addr().(*net.TCPAddr); ok {
		s.opts.Port = addr.Port
	}
	return s, nil
}

func (s *Server) start() (*server.Server, error) {
	sopts := &server.Options{}
	if s.opts.ConfigFile != "" {
		var err error
		if sopts, err = server.ProcessConfigFile(s.opts.ConfigFile); err != nil {
			return nil, fmt.Errorf("natsdev: %w", err)
		}
	}
	sopts.ServerName = "natsdev"
	sopts.Host, sopts.Port = s.opts.Host, s.opts.Port
	if s.node != nil {
		s.node.apply(sopts, s.opts.Host)
	}
	sopts.JetStream, sopts.StoreDir = true, s.opts.StoreDir
	if s.opts.MaxPayload > 0 {
		sopts.MaxPayload = s.opts.MaxPayload
	}
	sopts.NoSigs = true // the embedding process owns signal handling
	sopts.NoLog = s.opts.Logger == nil
	if s.opts.TLS != nil {
		sopts.TLS, sopts.TLSConfig, sopts.TLSTimeout = true, s.opts.TLS, 2
	}
	if s.opts.SyncAlways {
		// What the config file's "sync_interval: always" sets; the interval still drives
		// background flushes of index files.
		sopts.SyncAlways = true
		sopts.SyncInterval = 2 * time.Minute
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("natsdev: %w", err)
	}
	if s.opts.Logger != nil {
		debug := s.opts.Logger.Enabled(context.Background(), slog.LevelDebug)
		ns.SetLogger(slogAdapter{s.opts.Logger}, debug, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(readyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("natsdev: server on %s not ready within %s",
			net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port)), readyTimeout)
	}
	return ns, nil
}

// URL is the client URL, e.g. nats://127.0.0.1:4222. It does not change across Restart.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "nats://" + net.JoinHostPort(s.opts.Host, strconv.Itoa(s.opts.Port))
}

// StoreDir is the JetStream storage directory in use (the temporary one if Options had none).
func (s *Server) StoreDir() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.StoreDir
}

// Shutdown stops the server, waits until it has stopped, and removes a store directory that
// Start created. It is idempotent.
func (s *Server) Shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	if s.ownsDir {
		_ = os.RemoveAll(s.opts.StoreDir)
		s.ownsDir = false
	}
}

// Restart shuts the server down and starts it again with the same host, port and store
// directory, as a broker restart in production would. Connected clients see a disconnect and
// reconnect by themselves (nats.go's default reconnect behaviour).
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns == nil {
		return errors.New("natsdev: restart after shutdown")
	}
	s.stopLocked()
	return s.startLocked()
}

// Stop shuts the server down but keeps its port and store for Resume: a broker outage.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// Resume starts a stopped server again with the same host, port and store.
func (s *Server) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns != nil {
		return nil
	}
	return s.startLocked()
}

func (s *Server) stopLocked() {
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		s.ns = nil
	}
}

func (s *Server) startLocked() error {
	ns, err := s.start()
	if err != nil {
		return err
	}
	s.ns = ns
	return nil
}

// slogAdapter forwards the server's printf-style log calls to slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }

// Fatalf is logged as an error: the server calls it for conditions it then shuts down on, and
// exiting the embedding process is not this package's decision.
func (a slogAdapter) Fatalf(format string, v ...any) { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
