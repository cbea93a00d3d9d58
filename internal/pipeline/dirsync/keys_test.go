package dirsync_test

import (
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

// The pending keys already in the bucket must stay the keys of their triggers: the format is
// pinned, so a faster Key or NewDirKey cannot silently change it.
func TestKeysArePinned(t *testing.T) {
	tr := dirsync.Trigger{ID: "5c1e7a52-0f0e-4d8e-9a41-6b7f3e2d9c10", Source: "https://pipelines.corp.example.com/provision-project",
		Tenant: "default", DirectoryID: "7f2b9c1e-5d3a-4b8e-9f10-2c4d6e8a0b1c"}
	hashed := tr
	hashed.DirectoryID = "Corp AD/EMEA"
	for _, c := range []struct{ got, want string }{
		{tr.Key(), "default.7f2b9c1e-5d3a-4b8e-9f10-2c4d6e8a0b1c.6daa491b0d57032636e7c1a6c9c8341d"},
		{hashed.Key(), "default.h5e3c2fdf9c794a1f86140886879c9c3c.6daa491b0d57032636e7c1a6c9c8341d"},
		{string(dirsync.NewDirKey("Default Tenant", "dir_corp-1")), "hf63e59847797e4a6eccc00ac0678e31f.dir_corp-1"},
		{string(dirsync.NewDirKey("", "x")), "he3b0c44298fc1c149afbf4c8996fb924.x"},
		{string(dirsync.NewDirKey("t", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")), "t.h635361c48bb9eab14198e76ea8ab7f1a"},
	} {
		if c.got != c.want {
			t.Errorf("key = %q, want %q", c.got, c.want)
		}
	}
}
