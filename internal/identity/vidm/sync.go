package vidm

import (
	"fmt"
	"net/url"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/httpcore"
)

// syncPath returns the unescaped and escaped paths of a directory's sync resource. The id is one
// escaped segment, so no id can change which resource is addressed.
func syncPath(directoryID string) (string, string, error) {
	switch directoryID {
	case "", ".", "..":
		return "", "", fmt.Errorf("%w: directory id %q", httpcore.ErrInvalidArgument, directoryID)
	}
	const suffix = "/syncprofile/sync"
	return pathDirectories + "/" + directoryID + suffix,
		pathDirectories + "/" + url.PathEscape(directoryID) + suffix, nil
}
