package vidm

import (
	"context"
	"errors"
)

// refreshTokenLogin exchanges vRA Cloud's API token for an access token. (Being built.)
func (c *Client) refreshTokenLogin(context.Context) (token, error) {
	return token{}, errors.New("vra-cloud backend: not built yet")
}
