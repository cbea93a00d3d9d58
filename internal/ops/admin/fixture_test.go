package admin

import "github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/adminfake"

// The fake Source and its realistic state are in internal/testkit/adminfake, which the status
// page's browser tests (internal/ops/admin/browsertest, a module of its own) share; these names
// keep this package's tests as they read.
type fakeSource = adminfake.Source

var (
	richState = adminfake.RichState
	testNow   = adminfake.Now
	errBroken = adminfake.ErrBroken
)

const (
	idCorp    = adminfake.IDCorp
	idLab     = adminfake.IDLab
	idPartner = adminfake.IDPartner
	idRetail  = adminfake.IDRetail
	idHR      = adminfake.IDHR
)
