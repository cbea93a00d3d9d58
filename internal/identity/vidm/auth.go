package vidm

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"golang.org/x/sync/singleflight"
)

// token is a bearer token and when it stops being usable.
type token struct {
	value   string
	expires time.Time
}

// tokenCache holds the one token all callers share. Concurrent callers that find no fresh token
// wait on a single login (singleflight) instead of each logging in.
type tokenCache struct {
	mu     sync.Mutex
	cur    token
	margin time.Duration
	now    func() time.Time
	flight singleflight.Group
	login  func(context.Context) (token, error)
	issued time.Time // when cur was obtained, to cap the refresh margin at a fifth of its life
	logins int
}

func newTokenCache(cfg Config, login func(context.Context) (token, error)) *tokenCache {
	return &tokenCache{margin: cfg.TokenRefreshMargin, now: cfg.Now, login: login}
}

// get returns a token that is not within its refresh margin of expiry, logging in if needed.
func (tc *tokenCache) get(ctx context.Context) (string, error) {
	if v, ok := tc.fresh(); ok {
		return v, nil
	}
	// The login runs detached from this caller's cancellation: other callers share its result.
	ch := tc.flight.DoChan("login", func() (any, error) {
		if v, ok := tc.fresh(); ok {
			return v, nil
		}
		t, err := tc.login(context.WithoutCancel(ctx))
		if err != nil {
			return "", err
		}
		tc.mu.Lock()
		tc.cur, tc.issued = t, tc.now()
		tc.logins++
		tc.mu.Unlock()
		return t.value, nil
	})
	select {
	case <-ctx.Done():
		return "", &Error{Op: "log in", Err: ctx.Err()}
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	}
}

func (tc *tokenCache) fresh() (string, bool) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.cur.value == "" {
		return "", false
	}
	margin := min(tc.margin, tc.cur.expires.Sub(tc.issued)/5)
	return tc.cur.value, tc.now().Before(tc.cur.expires.Add(-margin))
}

// invalidate drops the token if it is still the one that failed; a token another caller already
// replaced stays, so N concurrent 401s cost one login, not N.
func (tc *tokenCache) invalidate(failed string) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.cur.value == failed {
		tc.cur = token{}
	}
}

// Logins reports how many tokens the client has obtained, for metrics and tests.
func (c *Client) Logins() int {
	c.tokens.mu.Lock()
	defer c.tokens.mu.Unlock()
	return c.tokens.logins
}

// login obtains a new token with the configured flow; it is retried like any other call.
func (c *Client) login(ctx context.Context) (token, error) {
	var t token
	var err error
	switch {
	case c.cfg.AuthMode == AuthSystem:
		t, err = c.systemLogin(ctx)
	case c.cfg.AuthMode == AuthRefreshToken:
		t, err = c.refreshTokenLogin(ctx)
	case c.cfg.Kind == backend.KindVRA7:
		t, err = c.vra7Login(ctx)
	case c.cfg.Kind == backend.KindVCF:
		t, err = c.vcfLogin(ctx)
	default:
		t, err = c.oauthToken(ctx)
	}
	if err != nil {
		c.noteAuthFailure(err)
		return token{}, err
	}
	c.obs.TokenIssued()
	return t, nil
}

func (c *Client) oauthToken(ctx context.Context) (token, error) {
	body, err := c.do(ctx, call{
		op:          "oauth token",
		method:      http.MethodPost,
		path:        pathOAuthToken,
		query:       url.Values{"grant_type": {"client_credentials"}},
		accept:      mediaJSON,
		contentType: mediaForm,
		body:        []byte(url.Values{"grant_type": {"client_credentials"}}.Encode()),
		basicUser:   c.cfg.ClientID,
		basicPass:   c.cfg.ClientSecret,
	})
	if err != nil {
		return token{}, err
	}
	return c.parseAccessToken("oauth token", body)
}

func (c *Client) systemLogin(ctx context.Context) (token, error) {
	reqBody, err := json.Marshal(map[string]string{
		"username": c.cfg.Username, "password": c.cfg.Password, "issueToken": "true",
	})
	if err != nil {
		return token{}, &Error{Op: "system login", Err: err}
	}
	body, err := c.do(ctx, call{
		op:          "system login",
		method:      http.MethodPost,
		path:        pathSystemLogin,
		accept:      mediaJSON,
		contentType: mediaJSON,
		body:        reqBody,
	})
	if err != nil {
		return token{}, err
	}
	var resp struct {
		SessionToken string `json:"sessionToken"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.SessionToken == "" {
		return token{}, &Error{Op: "system login", Err: fmt.Errorf("%w: no sessionToken in the login response", ErrInvalidResponse)}
	}
	exp, ok := jwtExpiry(resp.SessionToken)
	if !ok {
		exp = c.cfg.Now().Add(c.cfg.SessionTokenTTL)
	}
	return token{value: resp.SessionToken, expires: exp}, nil
}

// jwtExpiry reads the exp claim of a JWT without verifying it: the client only uses it to decide
// when to log in again, and vIDM remains the judge of the token's validity.
func jwtExpiry(tok string) (time.Time, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || len(parts[1]) > 8192 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp float64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp <= 0 {
		return time.Time{}, false
	}
	t := epochTime(claims.Exp)
	return t, !t.IsZero()
}
