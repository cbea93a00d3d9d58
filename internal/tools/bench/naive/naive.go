// Package naive is the baseline the benchmark compares the worker with: the per-pipeline script of
// reference 001 in Go. Every trigger runs the whole script on its own, exactly as each pipeline's
// copy does: system login, list the directories, POST a sync, then GET the same URL until the sync
// is COMPLETED or FAILED. It deliberately does not use the worker's identity clients
// (internal/identity/httpcore): no token cache, no directory cache, no coalescing, no retries. Only
// the things a careful script would add are here: it polls until the end instead of sleeping, and
// when vIDM refuses the POST because a sync is already running (409) it waits for that sync to end.
package naive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Trigger is one pipeline's reason to run the script: a group was created in Domain.
type Trigger struct{ Domain, Group string }

// Options configures Run.
type Options struct {
	BaseURL    string
	HTTPClient *http.Client // trusts the simulator's CA; default http.DefaultClient
	Username   string
	Password   string
	Triggers   []Trigger
	// Concurrency is how many scripts run at once (each pipeline runs its own copy); 0 means every
	// trigger's script at once.
	Concurrency int
	// PollInterval is the sleep before each status GET; default 1s.
	PollInterval time.Duration
}

// Request kinds, the keys of Stats.Requests.
const (
	ReqLogin       = "login"
	ReqDirectories = "directories"
	ReqSyncStart   = "sync_start"
	ReqSyncStatus  = "sync_status"
)

// Stats is what a Run cost vIDM and how it ended.
type Stats struct {
	// Requests sent, by kind: "login", "directories", "sync_start", "sync_status". They equal what
	// vIDM received, except that a request cut short by the context's end may not have arrived.
	Requests  map[string]int
	Total     int           // all requests sent
	Conflicts int           // POSTs refused with 409 because a sync was already running
	Failed    int           // triggers whose script did not see a COMPLETED sync
	Duration  time.Duration // first request to last script done
}

// The paths and media types of docs/vidm-api.md, written out again on purpose: the script knows
// them by heart, it does not share the client's code.
const (
	pathLogin       = "/SAAS/API/1.0/REST/auth/system/login"
	pathDirectories = "/SAAS/jersey/manager/api/connectormanagement/directoryconfigs"
	suffixSync      = "/syncprofile/sync"

	mediaJSON          = "application/json"
	mediaDirectoryList = "application/vnd.vmware.horizon.manager.connector.management.directory.list+json"
	mediaHorizonV1     = "application/vnd.vmware.horizon.v1.0+json"
	mediaSyncProfile   = "application/vnd.vmware.horizon.manager.connector.management.directory.sync.profile.sync+json"

	maxResponseBytes = 1 << 20
)

// errNotFinished marks a script that stopped before it saw its sync end.
var errNotFinished = errors.New("sync not seen to finish")

// outcome is one script's end, kept per trigger so tests can check what success was based on.
type outcome struct {
	Trigger     Trigger
	DirectoryID string
	Started     time.Time // before the script's first request
	Conflict    bool      // the POST was refused with 409
	Status      string    // the terminal status seen, "" if none
	Seen        time.Time // when the terminal status was read
	Err         error
}

// ok reports whether the script saw a sync of its directory finish COMPLETED.
func (o outcome) ok() bool { return o.Err == nil && o.Status == "COMPLETED" }

// Run runs one script per trigger, Concurrency at a time, and returns what they cost. A script
// that fails counts in Stats.Failed; the error is for invalid options and a cancelled context.
func Run(ctx context.Context, o Options) (Stats, error) {
	st, _, err := run(ctx, o)
	return st, err
}

func run(ctx context.Context, o Options) (Stats, []outcome, error) {
	if o.BaseURL == "" {
		return Stats{}, nil, errors.New("naive: BaseURL is required")
	}
	if _, err := url.Parse(o.BaseURL); err != nil {
		return Stats{}, nil, fmt.Errorf("naive: BaseURL: %w", err)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.Concurrency <= 0 || o.Concurrency > len(o.Triggers) {
		o.Concurrency = max(len(o.Triggers), 1)
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")

	outcomes := make([]outcome, len(o.Triggers))
	counts := make([]counter, len(o.Triggers))
	next := make(chan int)
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Go(func() {
			for i := range next {
				s := &script{o: o, c: &counts[i]}
				outcomes[i] = s.run(ctx, o.Triggers[i])
			}
		})
	}
	for i := range o.Triggers {
		next <- i
	}
	close(next)
	wg.Wait()
	end := time.Now()

	st := Stats{Requests: map[string]int{ReqLogin: 0, ReqDirectories: 0, ReqSyncStart: 0, ReqSyncStatus: 0}}
	var first time.Time
	for i := range counts {
		c := &counts[i]
		for k, n := range c.requests {
			st.Requests[k] += n
			st.Total += n
		}
		st.Conflicts += c.conflicts
		if !c.first.IsZero() && (first.IsZero() || c.first.Before(first)) {
			first = c.first
		}
		if !outcomes[i].ok() {
			st.Failed++
		}
	}
	if !first.IsZero() {
		st.Duration = end.Sub(first)
	}
	if err := ctx.Err(); err != nil {
		return st, outcomes, fmt.Errorf("naive: %w", err)
	}
	return st, outcomes, nil
}

// counter is one script's request tally; each script owns its own, so no locking is needed.
type counter struct {
	requests  map[string]int
	conflicts int
	first     time.Time
}

// script is one pipeline's copy of the script for one trigger.
type script struct {
	o     Options
	c     *counter
	token string
}

func (s *script) run(ctx context.Context, t Trigger) outcome {
	out := outcome{Trigger: t, Started: time.Now()}
	if err := s.login(ctx); err != nil {
		out.Err = err
		return out
	}
	dirID, err := s.findDirectory(ctx, t.Domain)
	if err != nil {
		out.Err = err
		return out
	}
	out.DirectoryID = dirID
	out.Conflict, err = s.startSync(ctx, dirID)
	if err != nil {
		out.Err = err
		return out
	}
	// After a 200 the status URL reports the sync this POST started (or a later one, which cannot
	// start before ours ends); after a 409 it reports the sync that was running. Either way the
	// first terminal status read is the end of a sync that ran after the group was created.
	out.Status, out.Err = s.poll(ctx, dirID)
	out.Seen = time.Now()
	return out
}

func (s *script) login(ctx context.Context) error {
	body, err := json.Marshal(map[string]string{"username": s.o.Username, "password": s.o.Password, "issueToken": "true"})
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	resp, err := s.do(ctx, ReqLogin, http.MethodPost, pathLogin, mediaJSON, mediaJSON, body)
	if err != nil {
		return err
	}
	var r struct {
		SessionToken string `json:"sessionToken"`
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		return fmt.Errorf("login: decode: %w", err)
	}
	if r.SessionToken == "" {
		return errors.New("login: no sessionToken in the answer")
	}
	s.token = r.SessionToken
	return nil
}

// findDirectory lists the directories and picks the first whose domains include domain.
func (s *script) findDirectory(ctx context.Context, domain string) (string, error) {
	resp, err := s.do(ctx, ReqDirectories, http.MethodGet, pathDirectories, mediaDirectoryList, "", nil)
	if err != nil {
		return "", err
	}
	var list struct {
		Items []struct {
			DirectoryID string   `json:"directoryId"`
			Domains     []string `json:"domains"`
		} `json:"items"`
	}
	if err := json.Unmarshal(resp, &list); err != nil {
		return "", fmt.Errorf("directories: decode: %w", err)
	}
	for _, d := range list.Items {
		for _, dom := range d.Domains {
			if strings.EqualFold(dom, domain) && d.DirectoryID != "" {
				return d.DirectoryID, nil
			}
		}
	}
	return "", fmt.Errorf("directories: no directory for domain %q", domain)
}

// startSync POSTs the sync; conflict is true when vIDM refused it because one is running.
func (s *script) startSync(ctx context.Context, dirID string) (conflict bool, err error) {
	_, err = s.do(ctx, ReqSyncStart, http.MethodPost, syncPath(dirID), mediaHorizonV1, mediaSyncProfile,
		[]byte(`{"ignoreSafeguards": false}`))
	var se *statusError
	if errors.As(err, &se) && se.code == http.StatusConflict {
		s.c.conflicts++
		return true, nil
	}
	return false, err
}

// poll sleeps PollInterval and GETs the sync's status until it is COMPLETED or FAILED. Any error
// ends the script: the script has no retries, and an unreadable answer is not a finished sync.
func (s *script) poll(ctx context.Context, dirID string) (string, error) {
	t := time.NewTimer(s.o.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("poll: %w: %w", errNotFinished, ctx.Err())
		case <-t.C:
		}
		resp, err := s.do(ctx, ReqSyncStatus, http.MethodGet, syncPath(dirID), mediaHorizonV1, "", nil)
		if err != nil {
			return "", fmt.Errorf("poll: %w: %w", errNotFinished, err)
		}
		status, err := parseStatus(resp)
		if err != nil {
			return "", fmt.Errorf("poll: %w: %w", errNotFinished, err)
		}
		if status == "COMPLETED" || status == "FAILED" {
			return status, nil
		}
		t.Reset(s.o.PollInterval)
	}
}

func syncPath(dirID string) string {
	return pathDirectories + "/" + url.PathEscape(dirID) + suffixSync
}

// statusError is a non-2xx answer.
type statusError struct {
	kind string
	code int
	body string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %s", e.kind, e.code, e.body)
}

// do sends one request, counting it as kind before it goes out (the simulator counts what
// arrives, and the two must agree), and returns the body of a 2xx answer.
func (s *script) do(ctx context.Context, kind, method, path, accept, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.o.BaseURL+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	req.Header.Set("Accept", accept)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	if err := ctx.Err(); err != nil {
		// Not counted: a request that is never sent never reaches vIDM's counters either.
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	if s.c.requests == nil {
		s.c.requests = map[string]int{}
		s.c.first = time.Now()
	}
	s.c.requests[kind]++
	resp, err := s.o.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", kind, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &statusError{kind: kind, code: resp.StatusCode, body: strings.TrimSpace(string(b[:min(len(b), 200)]))}
	}
	return b, nil
}

// parseStatus reads the status of a sync status body tolerantly (the body is not publicly
// documented; see docs/vidm-api.md): keys in any case, the status under status, syncStatus (a
// string or vRA's {"status": …}), state, syncState or progressStatus. The result is upper case.
func parseStatus(body []byte) (string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return "", fmt.Errorf("sync status is not a JSON object: %w", err)
	}
	if s, ok := findStatus(obj, true); ok {
		return strings.ToUpper(strings.TrimSpace(s)), nil
	}
	return "", errors.New("sync status body has no status field")
}

func findStatus(obj map[string]json.RawMessage, nest bool) (string, bool) {
	for _, want := range [...]string{"status", "syncstatus", "state", "syncstate", "progressstatus"} {
		for k, v := range obj {
			if !strings.EqualFold(k, want) {
				continue
			}
			var s string
			if json.Unmarshal(v, &s) == nil {
				return s, true
			}
			var inner map[string]json.RawMessage
			if nest && json.Unmarshal(v, &inner) == nil {
				if s, ok := findStatus(inner, false); ok {
					return s, true
				}
			}
		}
	}
	return "", false
}
