package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/vidmsim"
)

// simPrefix holds the simulator's own read-only endpoints, outside vIDM's /SAAS tree.
const simPrefix = "/_sim/"

// stats is the body of GET /_sim/stats.
type stats struct {
	Requests           map[vidmsim.Endpoint]int            `json:"requests"`
	RequestsByStatus   map[vidmsim.Endpoint]map[string]int `json:"requestsByStatus"`
	Logins             int                                 `json:"logins"`
	RejectedSyncPosts  int                                 `json:"rejectedSyncPosts"`
	MaxConcurrentSyncs map[string]int                      `json:"maxConcurrentSyncs"`
}

// newHandler serves /_sim/ itself and hands everything else, untouched, to the simulator (a
// ServeMux in front would clean and redirect odd paths that the simulator must answer 404).
func newHandler(sim *vidmsim.Server, cfg vidmsim.Config) http.Handler {
	admin := http.NewServeMux()
	admin.HandleFunc("GET /_sim/synclog", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, sim.SyncLog())
	})
	admin.HandleFunc("GET /_sim/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, collectStats(sim, cfg))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, simPrefix) {
			admin.ServeHTTP(w, r)
			return
		}
		sim.ServeHTTP(w, r)
	})
}

func collectStats(sim *vidmsim.Server, cfg vidmsim.Config) stats {
	st := stats{
		Requests:           map[vidmsim.Endpoint]int{},
		RequestsByStatus:   map[vidmsim.Endpoint]map[string]int{},
		Logins:             sim.Logins(),
		RejectedSyncPosts:  sim.RejectedSyncPosts(),
		MaxConcurrentSyncs: map[string]int{},
	}
	endpoints := []vidmsim.Endpoint{
		vidmsim.EndpointOAuthToken, vidmsim.EndpointSystemLogin, vidmsim.EndpointDirectories,
		vidmsim.EndpointSyncStart, vidmsim.EndpointSyncStatus,
	}
	for _, ep := range endpoints {
		st.Requests[ep] = sim.Requests(ep)
		byStatus := map[string]int{}
		for code, n := range sim.RequestsByStatus(ep) {
			byStatus[strconv.Itoa(code)] = n
		}
		st.RequestsByStatus[ep] = byStatus
	}
	for _, d := range cfg.Directories {
		st.MaxConcurrentSyncs[d.ID] = sim.MaxConcurrentSyncs(d.ID)
	}
	return st
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // a write error means the client went away
}
