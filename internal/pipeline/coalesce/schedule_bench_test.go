package coalesce

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
)

// The in-memory scheduling for many directories, without NATS: Notify, the dispatch decision
// (takeDue) and the bookkeeping after a run (finish). The runs themselves need the KV store and
// are not part of this.
func BenchmarkSchedule(b *testing.B) {
	const n = 1000
	dirs := make([]dirsync.DirKey, n)
	for i := range dirs {
		dirs[i] = dirsync.NewDirKey("default", fmt.Sprintf("dir-%04d", i))
	}
	ctx := context.Background()

	b.Run("notify-1000", func(b *testing.B) {
		e := New(Config{Window: 2 * time.Second}, nil, nil, nil)
		b.ReportAllocs()
		for b.Loop() {
			for _, d := range dirs {
				e.Notify(d)
			}
		}
	})
	b.Run("dispatch-none-due-1000", func(b *testing.B) {
		e := New(Config{Window: time.Hour}, nil, nil, nil)
		for _, d := range dirs {
			e.Notify(d)
		}
		b.ReportAllocs()
		for b.Loop() {
			if start, _ := e.takeDue(); len(start) != 0 {
				b.Fatalf("started %d", len(start))
			}
		}
	})
	b.Run("cycle-1000", func(b *testing.B) {
		// Every directory notified, dispatched and finished: one round of the engine's bookkeeping.
		e := New(Config{MaxConcurrent: n}, nil, nil, nil)
		b.ReportAllocs()
		for b.Loop() {
			for _, d := range dirs {
				e.Notify(d)
			}
			start, _ := e.takeDue()
			if len(start) != n {
				b.Fatalf("started %d, want %d", len(start), n)
			}
			for _, d := range start {
				e.finish(ctx, d, nil)
			}
		}
	})
	b.Run("dispatch-saturated-1000", func(b *testing.B) {
		// 1,000 directories due, room for the default 8: the pass starts 8 and defers the rest.
		e := New(Config{}, nil, nil, nil)
		for _, d := range dirs {
			e.Notify(d)
		}
		b.ReportAllocs()
		for b.Loop() {
			start, _ := e.takeDue()
			for _, d := range start {
				e.finish(ctx, d, nil)
				e.Notify(d)
			}
		}
	})
}
