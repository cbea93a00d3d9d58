package logbuf_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/logbuf"
)

func TestConcurrentWrites(t *testing.T) {
	var b logbuf.Buffer
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { _, _ = b.Write([]byte("x\n")); _ = b.String() })
	}
	wg.Wait()
	if n := strings.Count(b.String(), "x\n"); n != 20 {
		t.Fatalf("%d writes recorded, want 20", n)
	}
}
