// Package vracloud speaks vRA Cloud through its on-premises vIDM connector: vIDM's API (package
// vidm) behind an access token exchanged for vRA Cloud's long-lived API token at the VMware Cloud
// Services console (CSP). It is an httpcore.API; the client machinery is httpcore's.
package vracloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/vidm"
)

// DefaultTokenURL is where vRA Cloud's API tokens (refresh tokens) are exchanged for access
// tokens: the VMware Cloud Services console, whatever region the vRA Cloud API is in.
const DefaultTokenURL = "https://console.cloud.vmware.com/csp/gateway/am/api/auth/api-tokens/authorize"

// API is vRA Cloud's: vIDM's endpoints, with a refresh-token login.
type API struct{ vidm.API }

// New validates cfg and returns a client of vRA Cloud (cfg.Kind becomes backend.KindVRACloud). It
// does not contact vRA Cloud.
func New(cfg httpcore.Config) (*httpcore.Client, error) { return httpcore.New(cfg, API{}) }

// Kind is backend.KindVRACloud.
func (API) Kind() backend.Kind { return backend.KindVRACloud }

// DefaultAuthMode is the refresh-token exchange.
func (API) DefaultAuthMode() httpcore.AuthMode { return httpcore.AuthRefreshToken }

// CheckAuth accepts the refresh-token exchange with a refresh token.
func (API) CheckAuth(cfg httpcore.Config) error {
	if cfg.AuthMode == httpcore.AuthRefreshToken {
		return httpcore.NeedCredentials(cfg, "a refresh token", cfg.RefreshToken != "")
	}
	return httpcore.AuthModeMismatch(cfg)
}

// Login exchanges vRA Cloud's API token for an access token at the token URL. The
// API token travels only in the form body: never in the URL, where proxies and access logs keep
// it. A token CSP refuses (400 invalid_grant, 401, 403) is a permanent ErrUnauthorized; 5xx, 429
// and network failures are retried by Client.Do like any call.
func (API) Login(ctx context.Context, c *httpcore.Client) (httpcore.Token, error) {
	const op = "refresh token"
	cfg := c.Config()
	u, err := parseTokenURL(cfg.TokenURL)
	if err != nil {
		return httpcore.Token{}, &httpcore.Error{Op: op, Err: err}
	}
	body, err := c.Do(ctx, httpcore.Call{
		Op:          op,
		Method:      http.MethodPost,
		Path:        u.Path, // for logs only: AbsURL is the request URL
		AbsURL:      u,
		Accept:      httpcore.MediaJSON,
		ContentType: httpcore.MediaForm,
		Body:        []byte(url.Values{"refresh_token": {cfg.RefreshToken}}.Encode()),
		Endpoint:    httpcore.EndpointToken,
	})
	if err != nil {
		return httpcore.Token{}, refusedRefreshToken(err)
	}
	return c.ParseAccessToken(op, body)
}

// parseTokenURL validates the configured token URL (default DefaultTokenURL). It is checked here
// rather than in New because New lives with the machinery; an unusable URL is a permanent
// httpcore.ErrInvalidArgument on the first login. Plain http is refused except to a loopback host (a test
// or dev simulator): the API token is long-lived and grants what its owner may do.
func parseTokenURL(raw string) (*url.URL, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		raw = DefaultTokenURL
	}
	u, err := url.Parse(raw)
	switch {
	// The messages never quote the URL: a token pasted into it by mistake must not reach a log.
	case err != nil:
		return nil, fmt.Errorf("%w: vRA Cloud token URL is not a URL", httpcore.ErrInvalidArgument)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("%w: vRA Cloud token URL has no host", httpcore.ErrInvalidArgument)
	case u.User != nil:
		return nil, fmt.Errorf("%w: vRA Cloud token URL must not carry credentials", httpcore.ErrInvalidArgument)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		// Client.Do replaces the query; one configured here would be dropped without a word.
		return nil, fmt.Errorf("%w: vRA Cloud token URL must not have a query or fragment", httpcore.ErrInvalidArgument)
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return nil, fmt.Errorf("%w: vRA Cloud token URL must start with https:// (http:// only to a loopback host)", httpcore.ErrInvalidArgument)
	}
	return u, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// refusedRefreshToken turns CSP's refusals of the API token into ErrUnauthorized. CSP answers an
// unknown, expired or revoked API token with 400 and "invalid_grant" in the message (not the
// OAuth error field), and a disabled account with 401 or 403. None of them heals by retrying.
func refusedRefreshToken(err error) error {
	var e *httpcore.Error
	if !errors.As(err, &e) {
		return err
	}
	refused := e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden ||
		(e.StatusCode == http.StatusBadRequest &&
			(strings.Contains(e.Code, "invalid_grant") || strings.Contains(e.Message, "invalid_grant")))
	if !refused {
		return err
	}
	// The refusal, as a permanent error (a new *httpcore.Error is not retryable).
	return &httpcore.Error{Op: e.Op, StatusCode: e.StatusCode, Code: e.Code, Message: e.Message,
		RetryAfter: e.RetryAfter, Err: httpcore.ErrUnauthorized}
}
