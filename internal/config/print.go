package config

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/natsconn"
)

// Summary is the few settings an operator looks for first in the start-up line of a terminal
// log; WriteSettings (vidm-sync-worker -print-config) shows every one.
func (c Config) Summary() slog.Value {
	identity := slog.String("vidm_url", natsconn.RedactURLs(c.VIDMURL))
	if c.TenantsFile != "" {
		identity = slog.String("tenants_file", c.TenantsFile)
	}
	tracing := "off"
	if c.TracingEnabled() {
		tracing = natsconn.RedactURLs(c.TracesURL())
	}
	return slog.GroupValue(
		slog.String("nats_url", natsconn.RedactURLs(c.NATSURL)),
		identity,
		slog.String("admin_addr", c.AdminAddr),
		slog.Bool("admin_tls", c.AdminTLS()),
		slog.Bool("ingress", c.IngressEnabled),
		slog.Bool("ingress_tls", c.IngressTLS()),
		slog.Duration("coalesce_window", c.CoalesceWindow),
		slog.Bool("readiness_check", c.ReadinessCheck),
		slog.String("tracing", tracing),
	)
}

// LogStart logs the start-up line: in JSON the whole configuration, for log pipelines; in text a
// line a terminal can read, the whole configuration at debug and in -print-config.
func (c Config) LogStart(log *slog.Logger) {
	if c.LogFormat == "json" {
		log.Info("starting vidm-sync-worker", "config", c)
		return
	}
	log.Info("starting vidm-sync-worker (every setting: vidm-sync-worker -print-config)", "config", c.Summary())
	log.Debug("configuration", "config", c)
}

// WriteSettings writes every setting one per line, secrets masked as in LogValue: what
// -print-config shows, for a person to read.
func (c Config) WriteSettings(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, a := range c.LogValue().Group() {
		v := a.Value.Resolve()
		text := v.String()
		if v.Kind() == slog.KindAny {
			text = fmt.Sprint(v.Any())
		}
		fmt.Fprintf(tw, "%s\t%s\n", a.Key, strings.TrimSpace(text))
	}
	return tw.Flush()
}
