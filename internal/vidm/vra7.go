package vidm

import (
	"context"
	"errors"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/backend"
)

// vra7API is vRA 7.4+'s identity service. (Being built.)
type vra7API struct{ tenant string }

var errVRA7NotBuilt = errors.New("vra7 backend: not built yet")

func (vra7API) listDirectories() call                        { return call{op: "list directories"} }
func (vra7API) parseDirectories([]byte) ([]Directory, error) { return nil, errVRA7NotBuilt }
func (vra7API) startSync(string, bool) (call, error)         { return call{}, errVRA7NotBuilt }
func (vra7API) syncStatus(string) (call, error)              { return call{}, errVRA7NotBuilt }
func (vra7API) parseSyncState(string, []byte) (SyncState, error) {
	return SyncState{}, errVRA7NotBuilt
}
func (vra7API) describe(*backend.Description) {}

func (c *Client) vra7Login(context.Context) (token, error) { return token{}, errVRA7NotBuilt }
