package vidm

import (
	"context"
	"errors"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/backend"
)

// vcfAPI is VCF's identity broker (SDDC Manager's /v1/identity-providers). (Being built.)
type vcfAPI struct{}

var errVCFNotBuilt = errors.New("vcf backend: not built yet")

func (vcfAPI) listDirectories() call                        { return call{op: "list directories"} }
func (vcfAPI) parseDirectories([]byte) ([]Directory, error) { return nil, errVCFNotBuilt }
func (vcfAPI) startSync(string, bool) (call, error)         { return call{}, errVCFNotBuilt }
func (vcfAPI) syncStatus(string) (call, error)              { return call{}, errVCFNotBuilt }
func (vcfAPI) parseSyncState(string, []byte) (SyncState, error) {
	return SyncState{}, errVCFNotBuilt
}
func (vcfAPI) describe(*backend.Description) {}

func (c *Client) vcfLogin(context.Context) (token, error) { return token{}, errVCFNotBuilt }
