package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// simPrefix holds the simulator's own endpoints (read-outs and test controls), outside every
// flavor's API paths.
const simPrefix = "/_sim/"

// maxControlBody bounds a control's request body; every legitimate one is a few dozen bytes.
const maxControlBody = 64 << 10

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
	admin.HandleFunc("POST /_sim/connector-down", func(w http.ResponseWriter, r *http.Request) {
		setConnectorDown(w, r, sim)
	})
	admin.HandleFunc("POST /_sim/revoke-refresh-token", func(w http.ResponseWriter, r *http.Request) {
		revokeRefreshToken(w, r, sim, cfg)
	})
	admin.HandleFunc("POST /_sim/sync-client-token-expiry", func(w http.ResponseWriter, r *http.Request) {
		setSyncClientTokenExpiry(w, r, sim)
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
	for _, ep := range flavorEndpoints(effectiveFlavor(cfg)) {
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

// connectorDown is the body of POST /_sim/connector-down (Server.SetConnectorDown).
type connectorDown struct {
	DirectoryID string `json:"directoryId"`
	Connector   string `json:"connector"`
	Down        *bool  `json:"down"`
}

func setConnectorDown(w http.ResponseWriter, r *http.Request, sim *vidmsim.Server) {
	var req connectorDown
	if !decodeControl(w, r, &req) {
		return
	}
	if req.DirectoryID == "" || req.Connector == "" || req.Down == nil {
		writeControlError(w, http.StatusBadRequest, errors.New("directoryId, connector and down are required"))
		return
	}
	if err := sim.SetConnectorDown(req.DirectoryID, req.Connector, *req.Down); err != nil {
		writeControlError(w, http.StatusUnprocessableEntity, err)
		return
	}
	writeJSON(w, req)
}

// revokeToken is the body of POST /_sim/revoke-refresh-token (Server.RevokeRefreshToken). The
// token travels in the body, as with CSP's own endpoint, so that it stays out of access logs.
type revokeToken struct {
	Token string `json:"token"`
}

// revokeRefreshToken refuses a token the config never had: the simulator would accept the call
// and change nothing, and a test that revoked a mistyped token would then pass for the wrong
// reason. A token already revoked is fine (revoking is idempotent).
func revokeRefreshToken(w http.ResponseWriter, r *http.Request, sim *vidmsim.Server, cfg vidmsim.Config) {
	var req revokeToken
	if !decodeControl(w, r, &req) {
		return
	}
	switch {
	case req.Token == "":
		writeControlError(w, http.StatusBadRequest, errors.New("token is required"))
		return
	case !slices.Contains(cfg.RefreshTokens, req.Token):
		// The token is not quoted: it may be a real one pasted by mistake.
		writeControlError(w, http.StatusUnprocessableEntity, errors.New("the token is not one of the config's refreshTokens"))
		return
	}
	sim.RevokeRefreshToken(req.Token)
	writeJSON(w, struct {
		Revoked bool `json:"revoked"`
	}{true})
}

// tokenExpiry is the body of POST /_sim/sync-client-token-expiry
// (Server.SetSyncClientTokenExpiry). expireAt is RFC 3339, or null to remove the token; it must be
// given either way, so that a misspelt key does not silently remove the token.
type tokenExpiry struct {
	ProviderID string          `json:"providerId"`
	ExpireAt   json.RawMessage `json:"expireAt"`
}

func setSyncClientTokenExpiry(w http.ResponseWriter, r *http.Request, sim *vidmsim.Server) {
	var req tokenExpiry
	if !decodeControl(w, r, &req) {
		return
	}
	if req.ProviderID == "" || req.ExpireAt == nil {
		writeControlError(w, http.StatusBadRequest, errors.New(`providerId and expireAt are required (expireAt null removes the token)`))
		return
	}
	var at time.Time
	if !bytes.Equal(bytes.TrimSpace(req.ExpireAt), []byte("null")) {
		var s string
		err := json.Unmarshal(req.ExpireAt, &s)
		if err == nil {
			at, err = time.Parse(time.RFC3339Nano, s)
		}
		if err != nil || at.IsZero() {
			writeControlError(w, http.StatusBadRequest, errors.New("expireAt must be an RFC 3339 time or null"))
			return
		}
	}
	if err := sim.SetSyncClientTokenExpiry(req.ProviderID, at); err != nil {
		writeControlError(w, http.StatusUnprocessableEntity, err)
		return
	}
	var echo *string
	if !at.IsZero() {
		s := at.UTC().Format(time.RFC3339Nano)
		echo = &s
	}
	writeJSON(w, struct {
		ProviderID string  `json:"providerId"`
		ExpireAt   *string `json:"expireAt"`
	}{req.ProviderID, echo})
}

// decodeControl reads a control's JSON body strictly (unknown fields, trailing data and other
// media types are refused) and answers the error itself. Insisting on application/json also
// keeps a web page from driving the controls: a browser sends that type cross-origin only after a
// CORS preflight, which this server never grants.
func decodeControl(w http.ResponseWriter, r *http.Request, v any) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeControlError(w, http.StatusUnsupportedMediaType, errors.New("the Content-Type must be application/json"))
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeControlError(w, http.StatusBadRequest, fmt.Errorf("body: %w", err))
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeControlError(w, http.StatusBadRequest, errors.New("body: trailing data after the JSON object"))
		return false
	}
	return true
}

// controlError is the body of a refused control.
type controlError struct {
	Error string `json:"error"`
}

func writeControlError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(controlError{err.Error()}) // a write error means the client went away
}
