package httpcore

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Token is a bearer token and when it stops being usable.
type Token struct {
	Value   string
	Expires time.Time
}

// tokenCache holds the one token all callers share. Concurrent callers that find no fresh token
// wait on a single login (singleflight) instead of each logging in.
type tokenCache struct {
	mu     sync.Mutex
	cur    Token
	margin time.Duration
	now    func() time.Time
	flight singleflight.Group
	login  func(context.Context) (Token, error)
	issued time.Time // when cur was obtained, to cap the refresh margin at a fifth of its life
	logins int
}

func newTokenCache(cfg Config, login func(context.Context) (Token, error)) *tokenCache {
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
		return t.Value, nil
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
	if tc.cur.Value == "" {
		return "", false
	}
	margin := min(tc.margin, tc.cur.Expires.Sub(tc.issued)/5)
	return tc.cur.Value, tc.now().Before(tc.cur.Expires.Add(-margin))
}

// invalidate drops the token if it is still the one that failed; a token another caller already
// replaced stays, so N concurrent 401s cost one login, not N.
func (tc *tokenCache) invalidate(failed string) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.cur.Value == failed {
		tc.cur = Token{}
	}
}

// Logins reports how many tokens the client has obtained, for metrics and tests.
func (c *Client) Logins() int {
	c.tokens.mu.Lock()
	defer c.tokens.mu.Unlock()
	return c.tokens.logins
}

// login obtains a new token with the API's flow for the configured auth mode; it is retried like
// any other call.
func (c *Client) login(ctx context.Context) (Token, error) {
	t, err := c.api.Login(ctx, c)
	if err != nil {
		c.noteAuthFailure(err)
		return Token{}, err
	}
	c.obs.TokenIssued()
	return t, nil
}

// SessionToken is tok with the expiry of its JWT exp claim, or SessionTokenTTL from now when it
// states none.
func (c *Client) SessionToken(tok string) Token {
	exp, ok := JWTExpiry(tok)
	if !ok {
		exp = c.cfg.Now().Add(c.cfg.SessionTokenTTL)
	}
	return Token{Value: tok, Expires: exp}
}

// JWTExpiry reads the exp claim of a JWT without verifying it: the client only uses it to decide
// when to log in again, and the identity system remains the judge of the token's validity.
func JWTExpiry(tok string) (time.Time, bool) {
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
	t := EpochTime(claims.Exp)
	return t, !t.IsZero()
}

// maxExpiresIn caps a stated token lifetime so that an absurd expires_in cannot overflow a
// time.Duration; a day is far beyond anything CSP issues (30 minutes).
const maxExpiresIn = 24 * 60 * 60

// ParseAccessToken reads an OAuth 2.0 token answer (vIDM's client credentials, CSP's refresh-token
// exchange). Only access_token, token_type and expires_in are read: CSP's echoed refresh_token and
// id_token are left alone so that no copy of them exists.
func (c *Client) ParseAccessToken(op string, body []byte) (Token, error) {
	var resp struct {
		AccessToken string  `json:"access_token"`
		TokenType   string  `json:"token_type"`
		ExpiresIn   float64 `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.AccessToken == "" {
		return Token{}, &Error{Op: op, Err: fmt.Errorf("%w: no access_token in the token response", ErrInvalidResponse)}
	}
	if resp.TokenType != "" && !strings.EqualFold(resp.TokenType, "bearer") {
		return Token{}, &Error{Op: op, Err: fmt.Errorf("%w: token type %q is not bearer", ErrInvalidResponse, clip(resp.TokenType, 32))}
	}
	now := c.cfg.Now()
	exp := now.Add(c.cfg.SessionTokenTTL)
	if resp.ExpiresIn > 0 {
		exp = now.Add(time.Duration(min(resp.ExpiresIn, maxExpiresIn) * float64(time.Second)))
	} else if t, ok := JWTExpiry(resp.AccessToken); ok {
		exp = t
	}
	return Token{Value: resp.AccessToken, Expires: exp}, nil
}
