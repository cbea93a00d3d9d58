package vidmsim_test

import (
	"net/http"
	"sync"
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// TestConcurrentUse: 50 clients log in, list, trigger and poll the same directory while the test
// drives the control methods; run with -race. Exactly one sync may start.
func TestConcurrentUse(t *testing.T) {
	const n = 50
	e := newEnv(t, nil)
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for i := range n {
		wg.Go(func() {
			var tok string
			if i%2 == 0 {
				tok = e.token()
			} else {
				r := e.do(http.MethodPost, pathLogin, `{"username":"sync-admin","password":"example-password","issueToken":true}`,
					"Content-Type", "application/json")
				var resp struct{ SessionToken string }
				mustUnmarshal(t, r.body, &resp)
				tok = resp.SessionToken
			}
			if r := e.listDirs(tok); r.status != http.StatusOK {
				t.Errorf("list: %d", r.status)
			}
			statuses <- e.startSync(tok, corpID, false).status
			e.syncStatus(tok, corpID)
		})
	}
	wg.Go(func() {
		for range n {
			e.sim.SetFault(vidmsim.EndpointSyncStatus, vidmsim.Fault{Latency: 1})
			e.sim.ClearFaults()
			e.sim.Resume()
			_ = e.sim.SyncLog()
			_ = e.sim.RequestsByStatus(vidmsim.EndpointSyncStart)
			_ = e.sim.IssuedTokens()
			if err := e.sim.SetDirectory(vidmsim.Directory{ID: "dir-extra", Name: "Extra"}); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[200] != 1 || count[409] != n-1 {
		t.Fatalf("sync POST statuses = %v, want one 200 and %d 409", count, n-1)
	}
	if len(e.sim.SyncLog()) != 1 || e.sim.MaxConcurrentSyncs(corpID) != 1 || e.sim.RejectedSyncPosts() != n-1 {
		t.Fatalf("log = %d records, max = %d, rejected = %d", len(e.sim.SyncLog()), e.sim.MaxConcurrentSyncs(corpID), e.sim.RejectedSyncPosts())
	}
	if e.sim.Logins() != n || len(e.sim.IssuedTokens()) != n {
		t.Fatalf("Logins = %d", e.sim.Logins())
	}
}
