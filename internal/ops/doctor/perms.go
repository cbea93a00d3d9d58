package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/safetext"
)

// userInfoSubject is the server's own answer to "what may I do" (nats-server 2.10+): the user's
// publish and subscribe permissions, asked without touching any stream. Publish permissions cannot
// otherwise be checked read-only: the only test of a publish is a publish, which would store a
// result or dead letter the downstream services would consume.
const userInfoSubject = "$SYS.REQ.USER.INFO"

type subjectPermission struct {
	Allow []string `json:"allow,omitempty"`
	Deny  []string `json:"deny,omitempty"`
}

type userInfo struct {
	Data *struct {
		User        string `json:"user"`
		Account     string `json:"account"`
		Permissions *struct {
			Publish   *subjectPermission `json:"publish,omitempty"`
			Subscribe *subjectPermission `json:"subscribe,omitempty"`
		} `json:"permissions,omitempty"`
	} `json:"data"`
	Error *struct {
		Description string `json:"description"`
	} `json:"error"`
}

// needed is one subject the worker publishes or subscribes to, and why.
type needed struct {
	subject, why string
}

// publishNeeds are the subjects the worker publishes to, as samples of the real ones.
func publishNeeds(cfg config.Config) []needed {
	out := []needed{
		{fmt.Sprintf("$JS.API.CONSUMER.MSG.NEXT.%s.%s", cfg.TriggerStream, cfg.Consumer), "pull triggers"},
		{fmt.Sprintf("$JS.ACK.%s.%s.1.1.1.1.0", cfg.TriggerStream, cfg.Consumer), "ack triggers"},
		{cfg.ResultSubjectPrefix + ".started", "publish results"},
		{cfg.ResultSubjectPrefix + ".completed", "publish results"},
		{cfg.ResultSubjectPrefix + ".failed", "publish results"},
		{cfg.DeadSubject, "publish dead letters"},
	}
	for _, b := range []string{cfg.PendingBucket, cfg.RunsBucket, cfg.LeaseBucket, cfg.HistoryBucket, cfg.ControlBucket} {
		out = append(out,
			needed{"$KV." + b + ".key", "put in bucket " + b},
			needed{"$JS.API.STREAM.MSG.GET.KV_" + b, "get from bucket " + b})
	}
	return out
}

// checkPermissions asks the server for the user's permissions and holds them against what the
// worker needs. When the server does not answer (the user may not ask, or an older server) the
// check says so: skipped, never passed.
func checkPermissions(ctx context.Context, nc *nats.Conn, cfg config.Config, timeout time.Duration) Check {
	const name = "permissions"
	ctx, cancel := context.WithTimeout(ctx, min(timeout, permissionTimeout))
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, userInfoSubject, nil)
	var ui userInfo
	if err == nil {
		err = json.Unmarshal(msg.Data, &ui)
	}
	switch {
	case err != nil:
		return permissionsNotChecked(fmt.Sprintf("the server did not tell the user's permissions (%s)", clean(err.Error())))
	case ui.Error != nil || ui.Data == nil:
		return permissionsNotChecked("the server refused to tell the user's permissions")
	}
	p := ui.Data.Permissions
	if p == nil {
		return Check{Name: name, Status: OK, Detail: fmt.Sprintf("user %q has no permission limits", clean(ui.Data.User))}
	}
	var missing []string
	for _, n := range publishNeeds(cfg) {
		if !allowed(p.Publish, n.subject) {
			missing = append(missing, fmt.Sprintf("publish %s (%s)", n.subject, n.why))
		}
	}
	inbox := cfg.NATSInboxPrefix + ".reply"
	if !allowed(p.Subscribe, inbox) {
		missing = append(missing, fmt.Sprintf("subscribe %s (replies to the worker's requests, NATS_INBOX_PREFIX)", inbox))
	}
	if len(missing) > 0 {
		return Check{Name: name, Status: Fail, Data: missing, Detail: fmt.Sprintf("user %q lacks %d permissions the worker needs: %s; grant them as deploy/nats/nats-server.conf's worker user has them",
			clean(ui.Data.User), len(missing), strings.Join(missing, ", "))}
	}
	return Check{Name: name, Status: OK, Detail: fmt.Sprintf("user %q may pull and ack triggers, publish results and dead letters, and read and write the buckets", clean(ui.Data.User))}
}

func permissionsNotChecked(why string) Check {
	return Check{Name: "permissions", Status: Skip, Detail: "not checked: " + why + "; publish permissions are not probed by publishing (that would store events): allow the worker's user to publish to " + userInfoSubject + " to have them checked"}
}

// allowed applies NATS's rule: a subject needs an allow entry matching it (no allow list: all)
// and no deny entry matching it.
func allowed(p *subjectPermission, subject string) bool {
	if p == nil {
		return true
	}
	matches := func(f string) bool { return subjectCovers(strings.TrimSpace(f), subject) }
	if len(p.Allow) > 0 && !slices.ContainsFunc(p.Allow, matches) {
		return false
	}
	return !slices.ContainsFunc(p.Deny, matches)
}

// subjectCovers reports whether filter f matches every subject s stands for (s may itself use
// wildcards: "dirsync.trigger.>" is covered by "dirsync.>" and by itself).
func subjectCovers(f, s string) bool {
	ft, st := splitSubject(f), splitSubject(s)
	for i, t := range ft {
		switch {
		case t == ">":
			return len(st) > i
		case i >= len(st):
			return false
		case st[i] == ">":
			return false
		case t == "*" || t == st[i]:
		default:
			return false
		}
	}
	return len(ft) == len(st)
}

func splitSubject(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

// permissionTimeout bounds the permission lookup: a server that drops the request (no permission
// to ask) answers nothing, and the report should not wait the whole per-call timeout for that.
const permissionTimeout = 2 * time.Second

// clean bounds and cleans the server's text for a report.
func clean(s string) string { return safetext.Clean(s, 256) }
