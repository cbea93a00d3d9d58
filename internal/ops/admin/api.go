package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/control"
)

const maxReason = 1024 // bytes of a pause or sync reason

// errorBody is every error answer; ConflictError's adds the reason and the run in flight.
type errorBody struct {
	Error      string       `json:"error"`
	Reason     string       `json:"reason,omitempty"`
	CurrentRun *control.Run `json:"currentRun,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only unmarshalable values fail here (a programming error); say so without detail.
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

// badRequest is a client error found before the Source was asked.
type badRequest struct {
	status int
	msg    string
}

func (e *badRequest) Error() string { return e.msg }

// fail answers an error: the client's own as 4xx with its message, control.ErrNotFound as 404,
// a *control.ConflictError as 409 (a bare control.ErrConflict breaks the Source's contract and
// is a 500), anything else as 500 with a generic message and the detail in the log.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var bad *badRequest
	var conflict *control.ConflictError
	switch {
	case errors.As(err, &bad):
		writeError(w, bad.status, bad.msg)
	case errors.As(err, &conflict):
		writeJSON(w, http.StatusConflict, errorBody{Error: conflict.Message, Reason: conflict.Reason, CurrentRun: conflict.CurrentRun})
	case errors.Is(err, control.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, control.ErrNotReady):
		// Starting, or the watch of the pending bucket restarting: a moment, not a fault.
		s.log.WarnContext(r.Context(), "admin request: the worker is still reading its state", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "the worker is still reading its state; try again in a few seconds")
	case errors.Is(err, control.ErrReloadRejected):
		// The reason is the file's problems, each with its location; never a secret.
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	case r.Context().Err() != nil:
		// The client went away or its deadline passed; nobody reads this answer.
		s.log.DebugContext(r.Context(), "admin request abandoned", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusServiceUnavailable, "request canceled")
	default:
		s.log.ErrorContext(r.Context(), "admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error; the worker's log has the details")
	}
}

// decodeBody reads an optional JSON object into dst: no body (or only white space) leaves dst
// as it is; anything else must be one JSON object of known fields, at most maxBody bytes.
func decodeBody(w http.ResponseWriter, r *http.Request, dst any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return &badRequest{http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", maxBody)}
	case err != nil:
		return &badRequest{http.StatusBadRequest, "the body could not be read"}
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	if b[0] != '{' {
		return &badRequest{http.StatusBadRequest, "the body must be a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return &badRequest{http.StatusBadRequest, "invalid JSON body: " + err.Error()}
	}
	if dec.More() {
		return &badRequest{http.StatusBadRequest, "invalid JSON body: data after the object"}
	}
	return nil
}

// limitParam reads ?limit=, an integer from 1 to maxLimit, def when absent.
func limitParam(r *http.Request, def int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		return 0, &badRequest{http.StatusBadRequest, fmt.Sprintf("limit must be an integer from 1 to %d", maxLimit)}
	}
	return n, nil
}

func checkReason(reason string) error {
	if len(reason) > maxReason {
		return &badRequest{http.StatusBadRequest, fmt.Sprintf("reason: at most %d bytes", maxReason)}
	}
	return nil
}

// beforeParam reads ?before=, a dead-letter sequence (0 when absent).
func beforeParam(r *http.Request) (uint64, error) {
	v := r.URL.Query().Get("before")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n < 1 {
		return 0, &badRequest{http.StatusBadRequest, "before must be a dead-letter sequence (an integer from 1)"}
	}
	return n, nil
}

// directoryQuery reads ?limit=, ?after= and ?state= of the directory list.
func directoryQuery(r *http.Request) (control.DirectoryQuery, error) {
	limit, err := limitParam(r, defaultDirectories)
	if err != nil {
		return control.DirectoryQuery{}, err
	}
	q := control.DirectoryQuery{Limit: limit, After: r.URL.Query().Get("after"), State: control.State(r.URL.Query().Get("state"))}
	if q.State != "" && !control.ValidState(q.State) {
		return control.DirectoryQuery{}, &badRequest{http.StatusBadRequest, fmt.Sprintf("state must be one of %v", control.States)}
	}
	return q, nil
}

func (s *server) listDirectories(w http.ResponseWriter, r *http.Request) {
	q, err := directoryQuery(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	dirs, err := s.src.Directories(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	page, err := control.PageDirectories(dirs, q)
	if err != nil {
		s.fail(w, r, &badRequest{http.StatusBadRequest, "after: " + err.Error() + " (pass the next of the previous page)"})
		return
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *server) getDirectory(w http.ResponseWriter, r *http.Request) {
	d, err := s.src.Directory(r.Context(), r.PathValue("tenant"), r.PathValue("directoryId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *server) listRuns(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r, s.cfg.HistoryRuns)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	runs, err := s.src.Runs(r.Context(), r.PathValue("tenant"), r.PathValue("directoryId"), limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if runs == nil {
		runs = []control.Run{}
	}
	writeJSON(w, http.StatusOK, struct {
		Runs []control.Run `json:"runs"`
	}{runs})
}

func (s *server) requestSync(w http.ResponseWriter, r *http.Request) {
	queue := false
	if q := r.URL.Query(); q.Has("queue") {
		v := q.Get("queue")
		b, err := strconv.ParseBool(v)
		if v != "" && err != nil {
			s.fail(w, r, &badRequest{http.StatusBadRequest, "queue must be true or false"})
			return
		}
		queue = v == "" || b // a bare ?queue means true
	}
	var body struct {
		Reason           string `json:"reason"`
		IgnoreSafeguards bool   `json:"ignoreSafeguards"`
	}
	if err := decodeBody(w, r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := checkReason(body.Reason); err != nil {
		s.fail(w, r, err)
		return
	}
	req, err := s.src.RequestSync(r.Context(), r.PathValue("tenant"), r.PathValue("directoryId"),
		control.SyncOptions{Queue: queue, Reason: body.Reason, IgnoreSafeguards: body.IgnoreSafeguards})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, req)
}

func (s *server) pause(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Reason string `json:"reason"`
	}
	if err := decodeBody(w, r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := checkReason(body.Reason); err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := s.src.Pause(r.Context(), r.PathValue("tenant"), r.PathValue("directoryId"), body.Reason)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *server) resume(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	if err := decodeBody(w, r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := s.src.Resume(r.Context(), r.PathValue("tenant"), r.PathValue("directoryId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *server) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r, defaultDeadLetters)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	before, err := beforeParam(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	dl, err := s.src.DeadLetters(r.Context(), limit, before)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if dl.Items == nil {
		dl.Items = []control.DeadLetter{}
	}
	writeJSON(w, http.StatusOK, dl)
}

func (s *server) redrive(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Sequences []uint64 `json:"sequences"`
	}
	if err := decodeBody(w, r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	for _, seq := range body.Sequences {
		if seq == 0 {
			s.fail(w, r, &badRequest{http.StatusBadRequest, "sequences: dead-letter sequences start at 1"})
			return
		}
	}
	res, err := s.src.Redrive(r.Context(), body.Sequences)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if res.Redriven == nil {
		res.Redriven = []uint64{}
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *server) listTenants(w http.ResponseWriter, r *http.Request) {
	ts, err := s.src.Tenants(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Tenants []control.Tenant `json:"tenants"`
	}{ts})
}

func (s *server) reloadTenants(w http.ResponseWriter, r *http.Request) {
	res, err := s.src.ReloadTenants(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
