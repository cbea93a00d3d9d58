package vidm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultTokenURL is where vRA Cloud's API tokens (refresh tokens) are exchanged for access
// tokens: the VMware Cloud Services console, whatever region the vRA Cloud API is in.
const DefaultTokenURL = "https://console.cloud.vmware.com/csp/gateway/am/api/auth/api-tokens/authorize"

// maxExpiresIn caps a stated token lifetime so that an absurd expires_in cannot overflow a
// time.Duration; a day is far beyond anything CSP issues (30 minutes).
const maxExpiresIn = 24 * 60 * 60

// refreshTokenLogin exchanges vRA Cloud's API token for an access token at the token URL. The
// API token travels only in the form body: never in the URL, where proxies and access logs keep
// it. A token CSP refuses (400 invalid_grant, 401, 403) is a permanent ErrUnauthorized; 5xx, 429
// and network failures are retried by do like any call.
func (c *Client) refreshTokenLogin(ctx context.Context) (token, error) {
	const op = "refresh token"
	u, err := parseTokenURL(c.cfg.TokenURL)
	if err != nil {
		return token{}, &Error{Op: op, Err: err}
	}
	body, err := c.do(ctx, call{
		op:          op,
		method:      http.MethodPost,
		path:        u.Path, // for logs only: absURL is the request URL
		absURL:      u,
		accept:      mediaJSON,
		contentType: mediaForm,
		body:        []byte(url.Values{"refresh_token": {c.cfg.RefreshToken}}.Encode()),
		endpoint:    EndpointToken,
	})
	if err != nil {
		return token{}, refusedRefreshToken(err)
	}
	return c.parseAccessToken(op, body)
}

// parseTokenURL validates the configured token URL (default DefaultTokenURL). It is checked here
// rather than in New because New lives with the machinery; an unusable URL is a permanent
// ErrInvalidArgument on the first login. Plain http is refused except to a loopback host (a test
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
		return nil, fmt.Errorf("%w: vRA Cloud token URL is not a URL", ErrInvalidArgument)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("%w: vRA Cloud token URL has no host", ErrInvalidArgument)
	case u.User != nil:
		return nil, fmt.Errorf("%w: vRA Cloud token URL must not carry credentials", ErrInvalidArgument)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		// do replaces the query; one configured here would be dropped without a word.
		return nil, fmt.Errorf("%w: vRA Cloud token URL must not have a query or fragment", ErrInvalidArgument)
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return nil, fmt.Errorf("%w: vRA Cloud token URL must start with https:// (http:// only to a loopback host)", ErrInvalidArgument)
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
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	refused := e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden ||
		(e.StatusCode == http.StatusBadRequest &&
			(strings.Contains(e.Code, "invalid_grant") || strings.Contains(e.Message, "invalid_grant")))
	if !refused {
		return err
	}
	cp := *e
	cp.Err, cp.retryable = ErrUnauthorized, false
	return &cp
}

// parseAccessToken reads an OAuth 2.0 token answer (vIDM's client credentials, CSP's refresh-token
// exchange). Only access_token, token_type and expires_in are read: CSP's echoed refresh_token and
// id_token are left alone so that no copy of them exists.
func (c *Client) parseAccessToken(op string, body []byte) (token, error) {
	var resp struct {
		AccessToken string  `json:"access_token"`
		TokenType   string  `json:"token_type"`
		ExpiresIn   float64 `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.AccessToken == "" {
		return token{}, &Error{Op: op, Err: fmt.Errorf("%w: no access_token in the token response", ErrInvalidResponse)}
	}
	if resp.TokenType != "" && !strings.EqualFold(resp.TokenType, "bearer") {
		return token{}, &Error{Op: op, Err: fmt.Errorf("%w: token type %q is not bearer", ErrInvalidResponse, clip(resp.TokenType, 32))}
	}
	now := c.cfg.Now()
	exp := now.Add(c.cfg.SessionTokenTTL)
	if resp.ExpiresIn > 0 {
		exp = now.Add(time.Duration(min(resp.ExpiresIn, maxExpiresIn) * float64(time.Second)))
	} else if t, ok := jwtExpiry(resp.AccessToken); ok {
		exp = t
	}
	return token{value: resp.AccessToken, expires: exp}, nil
}
