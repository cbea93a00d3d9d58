package httpcore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
)

// Status, SyncState and the status values are the backend package's: every backend reports the
// same vocabulary.
type (
	Status    = backend.Status
	SyncState = backend.SyncState
)

const (
	StatusRunning   = backend.StatusRunning
	StatusCompleted = backend.StatusCompleted
	StatusFailed    = backend.StatusFailed
	StatusUndefined = backend.StatusUndefined
	StatusUnknown   = backend.StatusUnknown
)

// Field names under which vIDM versions and the vRA identity service report each value. The poll
// body is not publicly documented, so every name seen in the wild or in the reference documents is
// accepted; keys are compared case-insensitively.
var (
	statusKeys    = []string{"status", "syncstatus", "state", "syncstate", "progressstatus", "outcomestatus"}
	messageKeys   = []string{"message", "statusmessage", "errormessage", "errordetails", "error", "details"}
	startedKeys   = []string{"syncstartdate", "startdate", "starttime", "startedat", "syncstarttime", "started"}
	finishedKeys  = []string{"syncenddate", "enddate", "endtime", "finishedat", "completedat", "syncendtime", "finished"}
	progressKeys  = []string{"progresspercentage", "percentage", "progress", "percentcomplete"}
	connectorKeys = []string{"connector", "connectorname", "syncconnector", "connectorhost"}
	// attemptsKeys name the list of connectors a sync was tried on (vIDM 19.03+ sync connectors,
	// shown in the directory's Sync Log). Within one attempt the connector, status and message
	// go by the names below.
	attemptsKeys         = []string{"attempts", "connectorattempts", "synclog", "connectorhistory"}
	attemptConnectorKeys = []string{"connector", "connectorname", "connectorhost", "host", "name"}
	attemptStatusKeys    = []string{"status"}
	attemptMessageKeys   = []string{"message", "errormessage", "errordetails"}
	// connectorNameKeys name a connector given as an object rather than a string.
	connectorNameKeys = []string{"name", "host", "hostname", "connectorid"}
)

const (
	maxMessageLen = 512
	// maxConnectorLen bounds a connector name (a host name, at most 253 characters, or a label).
	maxConnectorLen = 127 // with the clip mark, the result schema's 128 characters
	// maxAttempts bounds the attempts kept from one status body; a directory has a handful of
	// sync connectors.
	maxAttempts = 16
)

// ParseSyncState reads a sync status body. It is the one place that knows the body's shape: it
// accepts the status under several names (or nested as vRA's {"syncStatus":{"status":…}}), dates as
// epoch milliseconds, epoch seconds or RFC 3339, and ignores unknown fields. A body that is not a
// JSON object or has no status at all is an error wrapping ErrInvalidResponse.
func ParseSyncState(body []byte) (SyncState, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return SyncState{}, fmt.Errorf("%w: empty sync status body", ErrInvalidResponse)
	}
	obj, err := decodeObject(body)
	if err != nil {
		return SyncState{}, fmt.Errorf("%w: sync status is not a JSON object: %s", ErrInvalidResponse, DescribeJSONError(err))
	}
	raw, nested, ok := findStatus(obj)
	if !ok {
		return SyncState{}, fmt.Errorf("%w: sync status body has no status field", ErrInvalidResponse)
	}
	st := SyncState{Status: normaliseStatus(raw), Raw: clip(raw, 64), Progress: -1}
	for _, o := range []map[string]json.RawMessage{nested, obj} {
		if o == nil {
			continue
		}
		if st.Message == "" {
			st.Message = clip(findText(o, messageKeys), maxMessageLen)
		}
		if st.StartedAt.IsZero() {
			st.StartedAt = findTime(o, startedKeys)
		}
		if st.FinishedAt.IsZero() {
			st.FinishedAt = findTime(o, finishedKeys)
		}
		if st.Progress < 0 {
			st.Progress = findPercent(o, progressKeys)
		}
		if st.Connector == "" {
			st.Connector = clip(findName(o, connectorKeys), maxConnectorLen)
		}
		if st.Attempts == nil {
			st.Attempts = findAttempts(o)
		}
	}
	// A body that lists the attempts but not the connector still says who ran the sync: the last
	// attempt, unless it failed too (then no connector ran it).
	if n := len(st.Attempts); st.Connector == "" && n > 0 && st.Attempts[n-1].Status != string(StatusFailed) {
		st.Connector = st.Attempts[n-1].Connector
	}
	return st, nil
}

// findAttempts reads the first attempts list under attemptsKeys: an array whose items are
// objects (connector, status, message under the names above) or bare connector names. Items
// without a connector name are skipped. Only the last maxAttempts are kept: the final attempt is
// the one that decided the sync.
func findAttempts(obj map[string]json.RawMessage) []contract.Attempt {
	for _, k := range attemptsKeys {
		var items []json.RawMessage
		if json.Unmarshal(obj[k], &items) != nil || len(items) == 0 {
			continue
		}
		var out []contract.Attempt
		for _, raw := range items {
			if a, ok := parseAttempt(raw); ok {
				out = append(out, a)
			}
		}
		if len(out) > maxAttempts {
			out = append([]contract.Attempt(nil), out[len(out)-maxAttempts:]...)
		}
		if len(out) > 0 {
			return out
		}
	}
	return nil
}

func parseAttempt(raw json.RawMessage) (contract.Attempt, bool) {
	var name string
	if json.Unmarshal(raw, &name) == nil {
		name = clip(strings.TrimSpace(name), maxConnectorLen)
		return contract.Attempt{Connector: name}, name != ""
	}
	item, err := decodeObject(raw)
	if err != nil {
		return contract.Attempt{}, false
	}
	a := contract.Attempt{
		Connector: clip(strings.TrimSpace(findName(item, attemptConnectorKeys)), maxConnectorLen),
		Status:    attemptStatus(findString(item, attemptStatusKeys)),
		Message:   clip(findText(item, attemptMessageKeys), maxMessageLen),
	}
	return a, a.Connector != ""
}

// attemptStatus normalises an attempt's status like the sync's (SUCCESS is COMPLETED); a value
// this client does not know is kept as sent, clipped, rather than lost as UNKNOWN.
func attemptStatus(raw string) string {
	if strings.TrimSpace(raw) == "" {
		return ""
	}
	if s := normaliseStatus(raw); s != StatusUnknown {
		return string(s)
	}
	return clip(raw, 64)
}

// findString returns the first non-empty string value under keys.
func findString(obj map[string]json.RawMessage, keys []string) string {
	for _, k := range keys {
		var s string
		if json.Unmarshal(obj[k], &s) == nil && s != "" {
			return s
		}
	}
	return ""
}

// findName returns a connector's name given as a string or as an object naming it under
// connectorNameKeys ({"name":"c1"}, {"host":"conn1.corp"}, {"connectorId":"…"}).
func findName(obj map[string]json.RawMessage, keys []string) string {
	for _, k := range keys {
		v, ok := obj[k]
		if !ok {
			continue
		}
		if s := connectorName(v); s != "" {
			return s
		}
	}
	return ""
}

// connectorName reads one connector reference: a string, or an object with a name.
func connectorName(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return strings.TrimSpace(s)
	}
	inner, err := decodeObject(v)
	if err != nil {
		return ""
	}
	for _, k := range connectorNameKeys {
		if json.Unmarshal(inner[k], &s) == nil && strings.TrimSpace(s) != "" {
			return strings.TrimSpace(s)
		}
	}
	return ""
}

// decodeObject decodes a JSON object into a map with lower-cased keys.
func decodeObject(b []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("null")
	}
	out := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out, nil
}

// findStatus returns the first status string, and the object it sat in when nested.
func findStatus(obj map[string]json.RawMessage) (string, map[string]json.RawMessage, bool) {
	for _, k := range statusKeys {
		v, ok := obj[k]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s, nil, true
		}
		if inner, err := decodeObject(v); err == nil {
			for _, ik := range statusKeys {
				if json.Unmarshal(inner[ik], &s) == nil {
					return s, inner, true
				}
			}
		}
	}
	return "", nil, false
}

func normaliseStatus(raw string) Status {
	s := strings.ToUpper(strings.TrimSpace(raw))
	s = strings.NewReplacer("-", "_", " ", "_").Replace(s)
	switch s {
	case "RUNNING", "IN_PROGRESS", "INPROGRESS", "STARTED", "QUEUED", "PENDING", "SYNCING", "PROCESSING":
		return StatusRunning
	case "COMPLETED", "COMPLETE", "SUCCESS", "SUCCEEDED", "SUCCESSFUL", "DONE", "FINISHED":
		return StatusCompleted
	case "FAILED", "FAILURE", "ERROR", "ABORTED", "CANCELLED", "CANCELED":
		return StatusFailed
	case "UNDEFINED", "NONE", "NOT_STARTED", "NEVER_RUN", "":
		return StatusUndefined
	}
	return StatusUnknown
}

// findText returns a string value, or the first message/description of an error-details array.
func findText(obj map[string]json.RawMessage, keys []string) string {
	for _, k := range keys {
		v, ok := obj[k]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) == nil && s != "" {
			return s
		}
		var list []map[string]any
		if json.Unmarshal(v, &list) == nil {
			for _, item := range list {
				for _, ik := range []string{"message", "description", "label"} {
					if s, ok := item[ik].(string); ok && s != "" {
						return s
					}
				}
			}
		}
	}
	return ""
}

func findTime(obj map[string]json.RawMessage, keys []string) time.Time {
	for _, k := range keys {
		v, ok := obj[k]
		if !ok {
			continue
		}
		var n float64
		if json.Unmarshal(v, &n) == nil {
			return EpochTime(n)
		}
		var s string
		if json.Unmarshal(v, &s) == nil {
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return t
			}
		}
	}
	return time.Time{}
}

// EpochTime reads epoch milliseconds (vIDM's usual form) or seconds; values outside any plausible
// range are ignored rather than turned into absurd dates.
func EpochTime(n float64) time.Time {
	switch {
	case n <= 0 || math.IsNaN(n) || math.IsInf(n, 0):
		return time.Time{}
	case n > 1e11 && n < 1e14: // milliseconds: 1973 to 5138
		return time.UnixMilli(int64(n)).UTC()
	case n >= 1e8 && n <= 1e11: // seconds
		return time.Unix(int64(n), 0).UTC()
	}
	return time.Time{}
}

func findPercent(obj map[string]json.RawMessage, keys []string) int {
	for _, k := range keys {
		var n float64
		if json.Unmarshal(obj[k], &n) == nil && n >= 0 && n <= 100 {
			return int(n)
		}
	}
	return -1
}

func clip(s string, n int) string { return backend.Clip(s, n) }

// DescribeJSONError is err, from decoding a body, short enough for a message.
func DescribeJSONError(err error) string {
	return clip(err.Error(), 120)
}

// maxConnectors bounds the connectors kept per directory.
const maxConnectors = 32

// ParseConnectors reads a connector list, in order: an array of names, or of objects naming the
// connector under name, host, hostname or connectorId (mixed arrays too). Unreadable items and
// repeats are skipped; nil when nothing usable is there.
func ParseConnectors(raw json.RawMessage) []string {
	var items []json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &items) != nil {
		return nil
	}
	var out []string
	for _, item := range items {
		name := clip(connectorName(item), maxConnectorLen)
		if name == "" || slices.Contains(out, name) {
			continue
		}
		if out = append(out, name); len(out) == maxConnectors {
			break
		}
	}
	return out
}
