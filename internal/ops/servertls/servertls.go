// Package servertls serves the TLS of the worker's own HTTP servers (the admin port and the
// ingress) from PEM files that are re-read when their content changes: a certificate rotated by
// cert-manager, or replaced by hand, is served from the next handshake on without a restart.
//
// The files are read every Interval and compared by content, not watched for file events: a
// Kubernetes Secret volume is updated by swapping a symlink, which inode watches miss. A
// replacement that does not load (a key that does not match, a file cut short) is refused with a
// warning and the certificate in use stays; it is tried again when the files change again.
//
// With a client CA, a client must present a certificate that it issued (and, with ClientNames,
// that names one of them); the CA file is re-read like the certificate.
package servertls

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/safetext"
)

// DefaultInterval is how often the files are read: a Secret update takes the kubelet up to a
// minute anyway, and three small files are cheap to read.
const DefaultInterval = 10 * time.Second

// Files names one server's PEM files.
type Files struct {
	Cert string // the certificate, then any intermediates
	Key  string // its private key
	// ClientCA, when set, makes client certificates required: they must be issued by one of the
	// CAs in this file.
	ClientCA string
	// ClientNames, when set (with ClientCA), are the client certificates accepted: one of them
	// must be the certificate's subject common name or one of its DNS, e-mail or URI names.
	ClientNames []string
}

// Options tune the re-reading; zero values are fine.
type Options struct {
	// Interval is how often Run reads the files. Default DefaultInterval.
	Interval time.Duration
	// After is Run's timer (tests pass a fake clock's). Default time.After.
	After func(time.Duration) <-chan time.Time
	// Logger gets a line for each change applied or refused. Default: discard.
	Logger *slog.Logger
	// Reloaded, if set, is told of each change of the files: applied (true) or refused (false).
	Reloaded func(ok bool)
}

// Source is one server's TLS configuration, kept current with its files.
type Source struct {
	files Files
	o     Options
	cur   atomic.Pointer[loaded]
	mu    sync.Mutex // one Check at a time
	seen  [sha256.Size]byte
	// seenErr is why the content last looked at was refused (nil: it is served).
	seenErr error
	// readFault is the read error last reported, so that a file that stays missing is reported
	// once, not at every reading.
	readFault string
}

// loaded is what one reading of the files gave.
type loaded struct {
	sum  [sha256.Size]byte
	leaf *x509.Certificate
	cfg  *tls.Config // handed to each handshake as is; never modified
}

// Load reads the files once; an error names the file that does not load.
func Load(files Files, o Options) (*Source, error) {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{files: files, o: o}
	content, err := s.read()
	if err != nil {
		return nil, err
	}
	l, err := s.parse(content)
	if err != nil {
		return nil, err
	}
	s.seen = l.sum
	s.cur.Store(l)
	s.logLoaded("TLS certificate loaded", l)
	return s, nil
}

// Config is the server's tls.Config: each handshake gets the files' latest good content.
func (s *Source) Config() *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return s.cur.Load().cfg, nil },
	}
}

// Leaf is the certificate being served.
func (s *Source) Leaf() *x509.Certificate { return s.cur.Load().leaf }

// Run reads the files every Interval until ctx ends.
func (s *Source) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.o.After(s.o.Interval):
			_ = s.Check()
		}
	}
}

// Check reads the files now and serves their content if it changed and loads. It returns why
// the files were refused; a refusal is logged and reported to Reloaded once per new content (a
// file that cannot be read, once until it can).
func (s *Source) Check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	content, err := s.read()
	if err != nil {
		// Looked at again next time, whatever it then holds.
		s.seen, s.seenErr = [sha256.Size]byte{}, nil
		if err.Error() != s.readFault {
			s.readFault = err.Error()
			s.refuse(err)
		}
		return err
	}
	s.readFault = ""
	sum := content.sum()
	if sum == s.seen {
		return s.seenErr
	}
	s.seen, s.seenErr = sum, nil
	if sum == s.cur.Load().sum {
		return nil // back to what is served: a fault repaired by undoing it
	}
	l, err := s.parse(content)
	if err != nil {
		s.seenErr = err
		s.refuse(err)
		return err
	}
	s.cur.Store(l)
	s.logLoaded("TLS certificate files changed; serving the new certificate", l)
	if s.o.Reloaded != nil {
		s.o.Reloaded(true)
	}
	return nil
}

func (s *Source) refuse(err error) {
	cur := s.cur.Load()
	s.o.Logger.Warn("TLS certificate files changed but do not load; the certificate in use stays until they change again",
		"err", err, "serving_serial", cur.leaf.SerialNumber.Text(16), "serving_not_after", cur.leaf.NotAfter)
	if s.o.Reloaded != nil {
		s.o.Reloaded(false)
	}
}

func (s *Source) logLoaded(msg string, l *loaded) {
	attrs := []any{"cert_file", s.files.Cert, "subject", l.leaf.Subject.String(), "serial", l.leaf.SerialNumber.Text(16),
		"not_after", l.leaf.NotAfter}
	if s.files.ClientCA != "" {
		attrs = append(attrs, "client_ca_file", s.files.ClientCA)
	}
	s.o.Logger.Info(msg, attrs...)
	// Served anyway: refusing it would not give clients a valid one, and the probes still work.
	if now := time.Now(); now.After(l.leaf.NotAfter) || now.Before(l.leaf.NotBefore) {
		s.o.Logger.Warn("the TLS certificate is outside its validity period; clients will refuse it",
			"cert_file", s.files.Cert, "not_before", l.leaf.NotBefore, "not_after", l.leaf.NotAfter)
	}
}

// content is the files' bytes.
type content struct{ cert, key, clientCA []byte }

func (c content) sum() [sha256.Size]byte {
	h := sha256.New()
	for _, b := range [][]byte{c.cert, c.key, c.clientCA} {
		// Length-prefixed, so that bytes moving from one file to the next change the sum.
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

func (s *Source) read() (content, error) {
	var c content
	var err error
	if c.cert, err = os.ReadFile(s.files.Cert); err != nil {
		return c, fmt.Errorf("reading the certificate: %w", err)
	}
	if c.key, err = os.ReadFile(s.files.Key); err != nil {
		return c, fmt.Errorf("reading the private key: %w", err)
	}
	if s.files.ClientCA != "" {
		if c.clientCA, err = os.ReadFile(s.files.ClientCA); err != nil {
			return c, fmt.Errorf("reading the client CA: %w", err)
		}
	}
	return c, nil
}

func (s *Source) parse(c content) (*loaded, error) {
	pair, err := tls.X509KeyPair(c.cert, c.key)
	if err != nil {
		return nil, fmt.Errorf("certificate %s with key %s: %w", s.files.Cert, s.files.Key, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		// HTTP/1.1 only, as over plain HTTP: the servers' limits (httplimits) are set per
		// connection, which HTTP/2 multiplexes.
		NextProtos: []string{"http/1.1"},
	}
	if s.files.ClientCA != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(c.clientCA) {
			return nil, fmt.Errorf("client CA %s: no PEM certificate in it", s.files.ClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		// A resumed session is not verified against the pool again: without tickets, a client
		// CA taken out of the file stops admitting its clients at their next connection.
		cfg.SessionTicketsDisabled = true
		if len(s.files.ClientNames) > 0 {
			cfg.VerifyConnection = allowNames(s.files.ClientNames)
		}
	}
	return &loaded{sum: c.sum(), leaf: pair.Leaf, cfg: cfg}, nil
}

// allowNames accepts a verified client certificate that names one of names.
func allowNames(names []string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
			return errors.New("no verified client certificate")
		}
		leaf := cs.VerifiedChains[0][0]
		if slices.ContainsFunc(Names(leaf), func(n string) bool { return slices.Contains(names, n) }) {
			return nil
		}
		return fmt.Errorf("client certificate %q (serial %s) names none of the allowed clients",
			safetext.Clean(leaf.Subject.CommonName, 128), leaf.SerialNumber.Text(16))
	}
}

// Names are the names a client certificate is known by: its subject common name, DNS names,
// e-mail addresses and URIs.
func Names(c *x509.Certificate) []string {
	var out []string
	if c.Subject.CommonName != "" {
		out = append(out, c.Subject.CommonName)
	}
	out = append(out, c.DNSNames...)
	out = append(out, c.EmailAddresses...)
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return slices.DeleteFunc(out, func(s string) bool { return strings.TrimSpace(s) == "" })
}
