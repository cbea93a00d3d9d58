package admin

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/control"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/safetext"
)

// maxBy bounds who cancelled: a name, an e-mail address or a ticket reference.
const maxBy = 128

// cancelFields checks an operator's name and reason: both required, printable, bounded. They
// reach every cancelled trigger's result event and the worker's log.
func cancelFields(by, reason string) (string, string, error) {
	by, reason = strings.TrimSpace(by), strings.TrimSpace(reason)
	switch {
	case by == "":
		return "", "", &badRequest{http.StatusBadRequest, "by: say who cancels (a name, an e-mail address or a ticket)"}
	case reason == "":
		return "", "", &badRequest{http.StatusBadRequest, "reason: say why the triggers are cancelled; the pipelines that sent them read it"}
	case len(by) > maxBy:
		return "", "", &badRequest{http.StatusBadRequest, fmt.Sprintf("by: at most %d bytes", maxBy)}
	case safetext.Clean(by+reason, len(by)+len(reason)) != by+reason: // control characters or invalid UTF-8
		return "", "", &badRequest{http.StatusBadRequest, "by and reason must be printable UTF-8 text on one line"}
	}
	return by, reason, checkReason(reason)
}

// cancel is POST …/cancel of the admin API: 202 with the order, 409 when there is nothing the
// order could cancel (a started sync cannot be cancelled in the identity system).
func (s *server) cancel(w http.ResponseWriter, r *http.Request) {
	var body struct {
		By     string `json:"by"`
		Reason string `json:"reason"`
	}
	if err := decodeBody(w, r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	by, reason, err := cancelFields(body.By, body.Reason)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := s.src.Cancel(r.Context(), r.PathValue("tenant"), r.PathValue("directoryId"), by+" (admin API)", reason)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, c)
}

// cancelView is the status page's cancel form and its answer.
type cancelView struct {
	Version   string
	Directory control.Directory
	Action    string
	// CanWrite: the browser signed in with ADMIN_TOKEN; the form is shown only then.
	CanWrite bool
	Token    string // the form's anti-forgery token
	Problem  string
	Done     *control.Cancellation
	By       string
	Reason   string
}

// cancelForm is GET /directories/{tenant}/{directoryId}/cancel: a page of its own, without the
// status page's refresh, so that typing a reason is not interrupted.
func (s *server) cancelForm(w http.ResponseWriter, r *http.Request) {
	d, err := s.src.Directory(r.Context(), r.PathValue("tenant"), r.PathValue("directoryId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v := cancelView{Version: s.cfg.Version, Directory: d, Action: r.URL.Path}
	if id, se, ok := s.session(r); ok && se.write {
		v.CanWrite, v.Token = true, s.formToken(id)
	}
	s.render(r.Context(), w, http.StatusOK, "cancel", v)
}

// cancelSubmit is the form's POST. A browser's cookie is sent with any form another site makes it
// post, so three things must hold: the browser says the request is same-origin (Sec-Fetch-Site
// or Origin, net/http's CrossOriginProtection), the session signed in with ADMIN_TOKEN, and the
// form carries the token only this session's page was given.
func (s *server) cancelSubmit(w http.ResponseWriter, r *http.Request) {
	v := cancelView{Version: s.cfg.Version, Action: r.URL.Path}
	answer := func(status int, problem string) {
		v.Problem = problem
		s.render(r.Context(), w, status, "cancel", v)
	}
	if err := s.origins.Check(r); err != nil {
		s.log.WarnContext(r.Context(), "admin form refused: cross-origin request", "path", r.URL.Path, "remote", r.RemoteAddr)
		answer(http.StatusForbidden, "This form can only be sent from the worker's own status page.")
		return
	}
	id, se, ok := s.session(r)
	if !ok || !se.write {
		answer(http.StatusForbidden, "Sign in with ADMIN_TOKEN to cancel triggers; the read-only token cannot.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		answer(http.StatusBadRequest, "The form could not be read.")
		return
	}
	if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(s.formToken(id))) {
		s.log.WarnContext(r.Context(), "admin form refused: missing or wrong anti-forgery token", "path", r.URL.Path, "remote", r.RemoteAddr)
		answer(http.StatusForbidden, "The form has expired or did not come from this page; open it again.")
		return
	}
	v.CanWrite, v.Token = true, s.formToken(id)
	v.By, v.Reason = r.PostForm.Get("by"), r.PostForm.Get("reason")
	d, err := s.src.Directory(r.Context(), r.PathValue("tenant"), r.PathValue("directoryId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	v.Directory = d
	by, reason, err := cancelFields(v.By, v.Reason)
	var bad *badRequest
	if errors.As(err, &bad) {
		answer(bad.status, bad.msg)
		return
	}
	c, err := s.src.Cancel(r.Context(), d.Tenant, d.DirectoryID, by+" (status page)", reason)
	var conflict *control.ConflictError
	switch {
	case errors.As(err, &conflict):
		answer(http.StatusConflict, conflict.Message)
	case err != nil:
		s.fail(w, r, err)
	default:
		v.Done = &c
		s.render(r.Context(), w, http.StatusOK, "cancel", v)
	}
}

// formToken is the anti-forgery token of a session's forms: a MAC of its id under a key only
// this process holds, so a page of another site can neither read nor forge it.
func (s *server) formToken(sessionID string) string {
	m := hmac.New(sha256.New, s.formKey)
	m.Write([]byte("cancel-form\x00" + sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
