package vidmsim_test

import (
	"net/http"
	"sync"
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// OnSyncStart sees every sync that starts (API and foreign), none that is refused, and may call
// back into the server (it runs outside the lock).
func TestOnSyncStart(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []vidmsim.SyncRecord
		sim  *vidmsim.Server
	)
	e := newEnv(t, func(c *vidmsim.Config) {
		c.OnSyncStart = func(r vidmsim.SyncRecord) {
			_ = sim.SyncLog() // would deadlock if called under the lock
			mu.Lock()
			seen = append(seen, r)
			mu.Unlock()
		}
	})
	sim = e.sim
	tok := e.token()
	if r := e.startSync(tok, corpID, false); r.status != http.StatusOK {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	if r := e.startSync(tok, corpID, false); r.status != http.StatusConflict {
		t.Fatalf("second start: %d %s", r.status, r.body)
	}
	if err := sim.StartForeignSync("dir-emea-ad", 0); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("hook saw %d syncs, want 2: %+v", len(seen), seen)
	}
	log := sim.SyncLog()
	if seen[0].RunID != log[0].RunID || seen[0].DirectoryID != corpID || seen[0].Foreign || seen[0].Status != vidmsim.StatusRunning {
		t.Errorf("first = %+v, log %+v", seen[0], log[0])
	}
	if seen[1].DirectoryID != "dir-emea-ad" || !seen[1].Foreign {
		t.Errorf("second = %+v", seen[1])
	}
}
