package vidm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
)

// Login obtains a token with the configured flow: the system login, or OAuth client credentials.
func (API) Login(ctx context.Context, c *httpcore.Client) (httpcore.Token, error) {
	if c.Config().AuthMode == httpcore.AuthSystem {
		return systemLogin(ctx, c)
	}
	return oauthToken(ctx, c)
}

func oauthToken(ctx context.Context, c *httpcore.Client) (httpcore.Token, error) {
	cfg := c.Config()
	body, err := c.Do(ctx, httpcore.Call{
		Op:          "oauth token",
		Method:      http.MethodPost,
		Path:        pathOAuthToken,
		Query:       url.Values{"grant_type": {"client_credentials"}},
		Accept:      httpcore.MediaJSON,
		ContentType: httpcore.MediaForm,
		Body:        []byte(url.Values{"grant_type": {"client_credentials"}}.Encode()),
		BasicUser:   cfg.ClientID,
		BasicPass:   cfg.ClientSecret,
		Endpoint:    httpcore.EndpointToken,
	})
	if err != nil {
		return httpcore.Token{}, err
	}
	return c.ParseAccessToken("oauth token", body)
}

func systemLogin(ctx context.Context, c *httpcore.Client) (httpcore.Token, error) {
	cfg := c.Config()
	reqBody, err := json.Marshal(map[string]string{
		"username": cfg.Username, "password": cfg.Password, "issueToken": "true",
	})
	if err != nil {
		return httpcore.Token{}, &httpcore.Error{Op: "system login", Err: err}
	}
	body, err := c.Do(ctx, httpcore.Call{
		Op:          "system login",
		Method:      http.MethodPost,
		Path:        pathSystemLogin,
		Accept:      httpcore.MediaJSON,
		ContentType: httpcore.MediaJSON,
		Body:        reqBody,
		Endpoint:    httpcore.EndpointLogin,
	})
	if err != nil {
		return httpcore.Token{}, err
	}
	var resp struct {
		SessionToken string `json:"sessionToken"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.SessionToken == "" {
		return httpcore.Token{}, &httpcore.Error{Op: "system login", Err: fmt.Errorf("%w: no sessionToken in the login response", httpcore.ErrInvalidResponse)}
	}
	return c.SessionToken(resp.SessionToken), nil
}
