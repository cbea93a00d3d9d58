package worker

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/servertls"
)

// WithTLSReload sets how often the admin port's and the ingress's certificate files are read
// for a change (tests; the default is servertls.DefaultInterval).
func WithTLSReload(interval time.Duration) Option {
	return func(o *options) { o.tlsInterval = interval }
}

// serverTLS are the admin port's and the ingress's certificates; nil serves plain HTTP.
type serverTLS struct{ admin, ingress *servertls.Source }

// loadTLS reads the configured certificate files. It runs before anything listens, so a
// certificate that does not load stops the start at once, naming its variables.
func loadTLS(cfg config.Config, o options, reloaded func(ok bool), log *slog.Logger) (serverTLS, error) {
	var s serverTLS
	var err error
	opts := func(component string) servertls.Options {
		return servertls.Options{Interval: cmp.Or(o.tlsInterval, servertls.DefaultInterval),
			Logger: log.With("component", component), Reloaded: reloaded}
	}
	if cfg.AdminTLS() {
		s.admin, err = servertls.Load(servertls.Files{Cert: cfg.AdminTLSCertFile, Key: cfg.AdminTLSKeyFile}, opts("admin"))
		if err != nil {
			return s, fmt.Errorf("admin port TLS (ADMIN_TLS_CERT_FILE, ADMIN_TLS_KEY_FILE): %w", err)
		}
	}
	if cfg.IngressEnabled && cfg.IngressTLS() {
		s.ingress, err = servertls.Load(servertls.Files{Cert: cfg.IngressTLSCertFile, Key: cfg.IngressTLSKeyFile,
			ClientCA: cfg.IngressTLSClientCAFile, ClientNames: cfg.IngressTLSClientNames}, opts("ingress"))
		if err != nil {
			return s, fmt.Errorf("ingress TLS (INGRESS_TLS_CERT_FILE, INGRESS_TLS_KEY_FILE, INGRESS_TLS_CLIENT_CA_FILE): %w", err)
		}
	}
	return s, nil
}

// run re-reads the files until stop is called; stop returns when the readers have.
func (s serverTLS) run(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, src := range []*servertls.Source{s.admin, s.ingress} {
		if src != nil {
			wg.Go(func() { src.Run(ctx) })
		}
	}
	return func() { cancel(); wg.Wait() }
}

// withTLS serves l over TLS from src, or as it is when src is nil.
func withTLS(l net.Listener, src *servertls.Source) net.Listener {
	if src == nil {
		return l
	}
	return tls.NewListener(l, src.Config())
}
