package natsdev

import (
	"testing"
	"time"
)

// SyncAlways reaches the JetStream configuration, including after a restart.
func TestSyncAlwaysIsApplied(t *testing.T) {
	for _, want := range []bool{false, true} {
		s, err := Start(Options{StoreDir: t.TempDir(), SyncAlways: want})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			jsc := s.ns.JetStreamConfig()
			if jsc == nil || jsc.SyncAlways != want || jsc.SyncInterval != 2*time.Minute {
				t.Fatalf("SyncAlways %v: JetStream config %+v", want, jsc)
			}
			if err := s.Restart(); err != nil {
				t.Fatal(err)
			}
		}
		s.Shutdown()
	}
}
