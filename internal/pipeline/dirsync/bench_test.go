package dirsync_test

import (
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

// Keys are built for every accepted trigger and every run; ids as vIDM and pipelines use them.
func BenchmarkNewDirKey(b *testing.B) {
	cases := []struct{ name, tenant, dir string }{
		{"plain", "default", "7f2b9c1e-5d3a-4b8e-9f10-2c4d6e8a0b1c"},
		{"hashed", "default", "Corp AD/EMEA"}, // not a plain token: hashed
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = dirsync.NewDirKey(c.tenant, c.dir)
			}
		})
	}
}

func BenchmarkTriggerKey(b *testing.B) {
	t := dirsync.Trigger{
		ID: "5c1e7a52-0f0e-4d8e-9a41-6b7f3e2d9c10", Source: "https://pipelines.corp.example.com/provision-project",
		Type: "ad.group.created", Group: "proj-alpha-admins", Tenant: "default",
		DirectoryID: "7f2b9c1e-5d3a-4b8e-9f10-2c4d6e8a0b1c", DirectoryName: "Corp AD", AcceptedAt: time.Now(),
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = t.Key()
	}
}
