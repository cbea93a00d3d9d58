package browsertest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/control"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/workertest"
)

const liveAdminToken = "live-admin-token-Rt7-of-at-least-32-characters"

// TestStatusPageOfALiveWorker loads the status page of a running worker (embedded NATS, the vIDM
// simulator, real syncs) in headless Chromium, after a completed sync, a failed one, a paused
// directory holding a trigger and a dead letter, and checks what a person asking "did my group
// sync?" reads there.
func TestStatusPageOfALiveWorker(t *testing.T) {
	b := NewBrowser(t)
	s := workertest.StartIngress(t, workertest.IngressOptions{Env: map[string]string{"ADMIN_TOKEN": liveAdminToken}})
	if err := s.Dev.Sim.SetDirectory(vidmsim.Directory{ID: "dir-emea-ad", Name: "EMEA AD", Type: vidmsim.TypeActiveDirectoryLDAP,
		Domains: []string{"emea.example.com"}, FailMessage: "connector emea-c1 cannot reach the domain controller"}); err != nil {
		t.Fatal(err)
	}
	post := func(id, domain, group, query string) int {
		t.Helper()
		body := `{"specversion":"1.0","id":"` + id + `","source":"urn:test:pipeline","type":"ad.group.created",` +
			`"data":{"domain":"` + domain + `","group":{"name":"` + group + `"}}}`
		return do(t, "POST", s.URL+query, workertest.Token, "application/cloudevents+json", body)
	}
	if code := post("t-corp", "corp.example.com", "proj-alpha-admins", "?wait=30s"); code != http.StatusOK {
		t.Fatalf("corp trigger: %d", code)
	}
	if code := post("t-emea", "emea.example.com", "emea-ops", "?wait=30s"); code != http.StatusOK {
		t.Fatalf("emea trigger: %d", code)
	}
	if code := post("t-lost", "nowhere.example.com", "lost-admins", "?wait=30s"); code != http.StatusUnprocessableEntity {
		t.Fatalf("unknown-domain trigger: %d, want 422 (dead-lettered)", code)
	}
	lab := s.AdminURL + "/api/v1/directories/default/dir-lab-iwa"
	if code := do(t, "POST", lab+"/pause", liveAdminToken, "application/json", `{"reason":"AD migration weekend"}`); code != http.StatusOK {
		t.Fatalf("pause: %d", code)
	}
	if code := post("t-lab", "lab.example.com", "lab-testers", ""); code != http.StatusAccepted {
		t.Fatalf("lab trigger: %d", code)
	}
	poll.Until(t, 10*time.Second, "the paused directory to hold its trigger", func() bool {
		var d control.Directory
		return getJSON(t, lab, &d) && d.PendingTriggers == 1
	})

	if _, err := b.SignIn(s.AdminURL, liveAdminToken); err != nil {
		t.Fatal(err)
	}
	p := CheckStatusPage(t, b, s.AdminURL+"/")
	for _, want := range []string{
		"Corp AD", "EMEA AD", "Lab IWA",
		"proj-alpha-admins", "emea-ops", // the groups each run covered
		"connector emea-c1 cannot reach the domain controller", // the failed sync, in vIDM's words
		"AD migration weekend",                                 // why the lab directory is paused
		"UNKNOWN_DIRECTORY",                                    // the dead letter's code
	} {
		if !strings.Contains(p.Text, want) {
			t.Errorf("the page does not show %q; it reads:\n%s", want, p.Text)
		}
	}
	states := map[string]string{}
	for _, d := range p.Directories {
		states[d.Name] = d.State
	}
	for name, want := range map[string]string{"Corp AD": "idle", "EMEA AD": "idle", "Lab IWA": "paused"} {
		if states[name] != want {
			t.Errorf("%s is shown %q, want %q (rows: %v)", name, states[name], want, states)
		}
	}
}

func do(t *testing.T, method, url, token, contentType, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func getJSON(t *testing.T, url string, out any) bool {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+liveAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(out) == nil
}
