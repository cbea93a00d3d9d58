package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/streams"
)

// Each concern checks its own variables; Config.validate runs them all, then the checks that span
// two concerns (crossChecks). Every problem names the variable to fix and never shows a secret.

func (c NATS) validate(p *problemList, dev bool) {
	if c.NATSURL == "" {
		if !dev {
			p.add("NATS_URL", "required (or run vidm-sync-dev, make run, for an embedded server)")
		}
	} else {
		checkNATSURL(p, c.NATSURL)
	}
	authMethods := 0
	for _, set := range []bool{c.NATSToken != "", c.NATSUser != "" || c.NATSPassword != "", c.NATSCredsFile != ""} {
		if set {
			authMethods++
		}
	}
	if authMethods > 1 {
		p.add("NATS_TOKEN", "set only one of NATS_TOKEN, NATS_USER with NATS_PASSWORD, and NATS_CREDS_FILE")
	}
	checkPair(p, setting[string]{"NATS_USER", c.NATSUser}, setting[string]{"NATS_PASSWORD", c.NATSPassword})
	checkPair(p, setting[string]{"NATS_CERT_FILE", c.NATSCertFile}, setting[string]{"NATS_KEY_FILE", c.NATSKeyFile})
	if c.NATSName == "" {
		p.add("NATS_CLIENT_NAME", "must not be empty")
	}
	if msg := checkSubject(c.NATSInboxPrefix, false); msg != "" {
		p.add("NATS_INBOX_PREFIX", fmt.Sprintf("%q: %s", c.NATSInboxPrefix, msg))
	}

}

// validate reports whether the subjects are well formed, which the cross-concern checks need.
func (c Streams) validate(p *problemList) (subjectsOK bool) {
	for _, n := range []struct{ env, v string }{
		{"TRIGGER_STREAM", c.TriggerStream}, {"RESULT_STREAM", c.ResultStream}, {"DEAD_STREAM", c.DeadStream},
		{"CONSUMER", c.Consumer},
	} {
		if msg := checkName(n.v); msg != "" {
			p.add(n.env, msg)
		}
	}
	for _, n := range []struct{ env, v string }{
		{"PENDING_BUCKET", c.PendingBucket}, {"RUNS_BUCKET", c.RunsBucket}, {"LEASE_BUCKET", c.LeaseBucket},
		{"HISTORY_BUCKET", c.HistoryBucket}, {"CONTROL_BUCKET", c.ControlBucket},
	} {
		if msg := checkBucket(n.v); msg != "" {
			p.add(n.env, msg)
		}
	}
	if c.TriggerStream == c.ResultStream || c.TriggerStream == c.DeadStream || c.ResultStream == c.DeadStream {
		p.add("TRIGGER_STREAM", "TRIGGER_STREAM, RESULT_STREAM and DEAD_STREAM must be three different streams")
	}
	if buckets := []string{c.PendingBucket, c.RunsBucket, c.LeaseBucket, c.HistoryBucket, c.ControlBucket}; len(slices.Compact(slices.Sorted(slices.Values(buckets)))) != len(buckets) {
		p.add("PENDING_BUCKET", "PENDING_BUCKET, RUNS_BUCKET, LEASE_BUCKET, HISTORY_BUCKET and CONTROL_BUCKET must be five different buckets")
	}
	subjectsOK = c.validateSubjects(p)
	for _, m := range []struct {
		env string
		n   int64
	}{{"TRIGGER_STREAM_MAX_BYTES", c.TriggerStreamMaxBytes}, {"RESULT_STREAM_MAX_BYTES", c.ResultStreamMaxBytes}, {"DEAD_STREAM_MAX_BYTES", c.DeadStreamMaxBytes}} {
		if m.n != 0 && m.n < 1<<20 {
			p.add(m.env, fmt.Sprintf("%d bytes is less than 1 MiB (0: unlimited)", m.n))
		}
	}
	if c.StreamReplicas < 1 || c.StreamReplicas > 5 {
		p.add("STREAM_REPLICAS", fmt.Sprintf("%d is not between 1 and 5", c.StreamReplicas))
	}

	checkPositive(p, []setting[time.Duration]{
		{"RESULT_DUPLICATE_WINDOW", c.ResultDuplicateWindow},
	})
	if c.ResultDuplicateWindow > streams.ResultMaxAge {
		p.add("RESULT_DUPLICATE_WINDOW", fmt.Sprintf("%s is longer than the results stream's retention %s", c.ResultDuplicateWindow, streams.ResultMaxAge))
	}
	if c.ResultSource == "" {
		p.add("RESULT_SOURCE", "must not be empty")
	} else if _, err := url.Parse(c.ResultSource); err != nil || strings.ContainsFunc(c.ResultSource, unicode.IsSpace) {
		p.add("RESULT_SOURCE", fmt.Sprintf("%q is not a URI reference", c.ResultSource))
	}
	return subjectsOK
}

// validateSubjects checks the subjects and that the streams' subjects do not overlap; it reports
// whether they are well formed.
func (c Streams) validateSubjects(p *problemList) bool {
	subjectsOK := true
	if len(c.TriggerSubjects) == 0 {
		p.add("TRIGGER_SUBJECTS", "needs at least one subject")
		subjectsOK = false
	}
	for _, s := range c.TriggerSubjects {
		if msg := checkSubject(s, true); msg != "" {
			p.add("TRIGGER_SUBJECTS", fmt.Sprintf("%q: %s", s, msg))
			subjectsOK = false
		}
	}
	if msg := checkSubject(c.ResultSubjectPrefix, false); msg != "" {
		p.add("RESULT_SUBJECT_PREFIX", msg)
		subjectsOK = false
	}
	if msg := checkSubject(c.DeadSubject, false); msg != "" {
		p.add("DEAD_SUBJECT", msg)
		subjectsOK = false
	}
	if subjectsOK {
		// The server refuses streams whose subjects overlap; say which variables clash.
		results := streams.ResultSubjects(c.ResultSubjectPrefix)[0]
		for i, s := range c.TriggerSubjects {
			if subjectsOverlap(s, results) {
				p.add("TRIGGER_SUBJECTS", fmt.Sprintf("%q overlaps the results subjects %q (RESULT_SUBJECT_PREFIX)", s, results))
			}
			if subjectsOverlap(s, c.DeadSubject) {
				p.add("TRIGGER_SUBJECTS", fmt.Sprintf("%q overlaps DEAD_SUBJECT %q", s, c.DeadSubject))
			}
			for _, other := range c.TriggerSubjects[i+1:] {
				if subjectsOverlap(s, other) {
					p.add("TRIGGER_SUBJECTS", fmt.Sprintf("%q and %q overlap", s, other))
				}
			}
		}
		if subjectsOverlap(results, c.DeadSubject) {
			p.add("DEAD_SUBJECT", fmt.Sprintf("%q overlaps the results subjects %q (RESULT_SUBJECT_PREFIX)", c.DeadSubject, results))
		}
	}
	return subjectsOK
}

func (c Identity) validate(p *problemList, dev, simulated bool) {
	// vIDM.
	if c.TenantsFile != "" {
		for _, v := range []struct{ env, val string }{{"VIDM_URL", c.VIDMURL}, {"VIDM_CLIENT_ID", c.VIDMClientID},
			{"VIDM_USERNAME", c.VIDMUsername}, {"VIDM_CA_FILE", c.VIDMCAFile}} {
			if v.val != "" {
				p.add(v.env, "set together with TENANTS_FILE; define the tenant in the file instead")
			}
		}
	} else if c.VIDMURL == "" {
		if !dev {
			p.add("VIDM_URL", "required (or run vidm-sync-dev, make run, for the simulator)")
		}
	} else {
		checkVIDMURL(p, c.VIDMURL, c.AllowInsecureHTTP)
	}
	// With the simulator the command supplies the credentials itself.
	if !simulated && c.TenantsFile == "" {
		switch httpcore.AuthMode(c.VIDMAuthMode) {
		case httpcore.AuthOAuth:
			if c.VIDMClientID == "" {
				p.add("VIDM_CLIENT_ID", "required with VIDM_AUTH_MODE=oauth")
			}
			if c.VIDMClientSecret == "" {
				p.add("VIDM_CLIENT_SECRET", "required with VIDM_AUTH_MODE=oauth (or VIDM_CLIENT_SECRET_FILE)")
			}
		case httpcore.AuthSystem:
			if c.VIDMUsername == "" {
				p.add("VIDM_USERNAME", "required with VIDM_AUTH_MODE=system")
			}
			if c.VIDMPassword == "" {
				p.add("VIDM_PASSWORD", "required with VIDM_AUTH_MODE=system (or VIDM_PASSWORD_FILE)")
			}
		}
	}
	if m := httpcore.AuthMode(c.VIDMAuthMode); m != httpcore.AuthOAuth && m != httpcore.AuthSystem {
		p.add("VIDM_AUTH_MODE", fmt.Sprintf("%q is not oauth or system", c.VIDMAuthMode))
	}
	if msg := checkName(c.Tenant); msg != "" {
		p.add("VIDM_TENANT", msg)
	}

	checkPositive(p, []setting[time.Duration]{
		{"VIDM_REQUEST_TIMEOUT", c.VIDMRequestTimeout},
		{"SYNC_CLIENT_TOKEN_WARNING", c.SyncClientTokenWarning}, {"SYNC_CLIENT_TOKEN_CHECK", c.SyncClientTokenCheck},
	})
}

func (c Coalescing) validate(p *problemList) {
	checkPositive(p, []setting[time.Duration]{
		{"POLL_INITIAL_INTERVAL", c.PollInitialInterval}, {"POLL_MAX_INTERVAL", c.PollMaxInterval},
		{"SYNC_DEADLINE", c.SyncDeadline}, {"LEASE_TTL", c.LeaseTTL},
		{"POLL_CONFIRM_AFTER", c.PollConfirmAfter}, {"READINESS_RECHECK_AFTER", c.ReadinessRecheckAfter},
		{"POLL_FLOOR", c.PollFloor},
	})
	// Below it a directory with a steady history would be polled many times a second.
	if c.PollFloor > 0 && c.PollFloor < 100*time.Millisecond {
		p.add("POLL_FLOOR", fmt.Sprintf("%s is under the minimum 100ms", c.PollFloor))
	}
	// 0 syncs at the first trigger; a burst still costs at most the running sync and a follow-up.
	if c.CoalesceWindow < 0 {
		p.add("COALESCE_WINDOW", fmt.Sprintf("%s must not be negative", c.CoalesceWindow))
	}
	if c.PollInitialInterval > 0 && c.PollMaxInterval > 0 && c.PollMaxInterval < c.PollInitialInterval {
		p.add("POLL_MAX_INTERVAL", fmt.Sprintf("%s is shorter than POLL_INITIAL_INTERVAL %s", c.PollMaxInterval, c.PollInitialInterval))
	}
	// Shorter leases make renewals a large share of the broker traffic and let a GC pause or a
	// slow broker round trip cost a holder its lease.
	if c.LeaseTTL > 0 && c.LeaseTTL < 3*time.Second {
		p.add("LEASE_TTL", fmt.Sprintf("%s is under the minimum 3s", c.LeaseTTL))
	}
	checkAtLeastOne(p, []setting[int]{{"MAX_CONCURRENT_SYNCS", c.MaxConcurrentSyncs}})
}

func (c Intake) validate(p *problemList) {
	checkPositive(p, []setting[time.Duration]{
		{"ACK_WAIT", c.AckWait},
	})
	checkAtLeastOne(p, []setting[int]{{"PULL_BATCH", c.PullBatch}, {"MAX_IN_FLIGHT", c.MaxInFlight}})
	// The server delivers at most MaxAckPending unacked messages; a larger batch never fills.
	if c.PullBatch > c.MaxInFlight && c.MaxInFlight >= 1 {
		p.add("PULL_BATCH", fmt.Sprintf("%d is larger than MAX_IN_FLIGHT %d", c.PullBatch, c.MaxInFlight))
	}
}

func (c Admin) validate(p *problemList) {
	if c.AdminAddr == "" {
		p.add("ADMIN_ADDR", "must not be empty (it serves /healthz and /readyz)")
	}
	if c.AdminToken != "" && c.AdminToken == c.AdminReadToken {
		p.add("ADMIN_READ_TOKEN", "must differ from ADMIN_TOKEN")
	}
	checkTokenLength(p, "ADMIN_TOKEN", c.AdminToken)
	checkTokenLength(p, "ADMIN_READ_TOKEN", c.AdminReadToken)
	checkPositive(p, []setting[time.Duration]{
		{"HISTORY_MAX_AGE", c.HistoryMaxAge}, {"STATUS_REFRESH", c.StatusRefresh},
		{"READY_VIDM_INTERVAL", c.ReadyVIDMInterval},
	})
	checkAtLeastOne(p, []setting[int]{{"HISTORY_RUNS", c.HistoryRuns}})
	checkPair(p, setting[string]{"ADMIN_TLS_CERT_FILE", c.AdminTLSCertFile}, setting[string]{"ADMIN_TLS_KEY_FILE", c.AdminTLSKeyFile})
	if c.AdminTLSCAFile != "" && !c.AdminTLS() {
		p.add("ADMIN_TLS_CA_FILE", "needs ADMIN_TLS_CERT_FILE and ADMIN_TLS_KEY_FILE: it is the CA the healthcheck verifies the admin port's certificate with")
	}
}

func (c Ingress) validate(p *problemList) {
	if c.IngressEnabled {
		// A client certificate may authenticate publishers instead of the token.
		if c.IngressToken == "" && c.IngressTLSClientCAFile == "" {
			p.add("INGRESS_TOKEN", "required with INGRESS_ENABLED=true (or INGRESS_TOKEN_FILE), unless client certificates authenticate publishers (INGRESS_TLS_CLIENT_CA_FILE)")
		}
		if c.IngressAddr == "" {
			p.add("INGRESS_ADDR", "must not be empty with INGRESS_ENABLED=true")
		}
		if c.IngressMaxWaiters < 1 || c.IngressMaxWaiters > 100000 {
			p.add("INGRESS_MAX_WAITERS", fmt.Sprintf("%d is not between 1 and 100000", c.IngressMaxWaiters))
		}
	}
	checkTokenLength(p, "INGRESS_TOKEN", c.IngressToken)
	checkPositive(p, []setting[time.Duration]{
		{"INGRESS_MAX_WAIT", c.IngressMaxWait},
	})
	checkPair(p, setting[string]{"INGRESS_TLS_CERT_FILE", c.IngressTLSCertFile}, setting[string]{"INGRESS_TLS_KEY_FILE", c.IngressTLSKeyFile})
	if c.IngressTLSClientCAFile != "" && !c.IngressTLS() {
		p.add("INGRESS_TLS_CLIENT_CA_FILE", "needs INGRESS_TLS_CERT_FILE and INGRESS_TLS_KEY_FILE: client certificates are asked for in the TLS handshake")
	}
	if len(c.IngressTLSClientNames) > 0 {
		if c.IngressTLSClientCAFile == "" {
			p.add("INGRESS_TLS_CLIENT_NAMES", "needs INGRESS_TLS_CLIENT_CA_FILE: the names are those of client certificates")
		}
		if slices.Contains(c.IngressTLSClientNames, "") {
			p.add("INGRESS_TLS_CLIENT_NAMES", "has an empty entry")
		}
	}
}

func (c Logging) validate(p *problemList) {
	if f := strings.ToLower(c.LogFormat); f != "text" && f != "json" {
		p.add("LOG_FORMAT", fmt.Sprintf("%q is not text or json", c.LogFormat))
	}
	if _, ok := parseLevel(c.LogLevel); !ok {
		p.add("LOG_LEVEL", fmt.Sprintf("%q is not debug, info, warn or error", c.LogLevel))
	}
}

// checkTokenLength reports a bearer token shorter than MinTokenLength: its length only, since a
// guessable token is a secret shown too.
func checkTokenLength(p *problemList, env, token string) {
	if token != "" && len(token) < MinTokenLength {
		p.add(env, fmt.Sprintf("is %d characters; at least %d are required (for example: openssl rand -base64 32)", len(token), MinTokenLength))
	}
}

// checkPair reports half of a pair that goes together (a user and its password, a certificate
// and its key): the problem names the half that is missing and the one that is set.
func checkPair(p *problemList, a, b setting[string]) {
	switch {
	case a.v != "" && b.v == "":
		p.add(b.env, "required with "+a.env+" (they go together)")
	case a.v == "" && b.v != "":
		p.add(a.env, "required with "+b.env+" (they go together)")
	}
}

// setting is a variable's name and value, for the checks many variables share.
type setting[T any] struct {
	env string
	v   T
}

func checkPositive(p *problemList, ds []setting[time.Duration]) {
	for _, d := range ds {
		if d.v <= 0 {
			p.add(d.env, fmt.Sprintf("%s must be positive", d.v))
		}
	}
}

func checkAtLeastOne(p *problemList, ns []setting[int]) {
	for _, n := range ns {
		if n.v < 1 {
			p.add(n.env, fmt.Sprintf("%d must be at least 1", n.v))
		}
	}
}
