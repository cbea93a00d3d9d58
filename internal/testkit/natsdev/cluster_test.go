package natsdev_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natsdev"
)

// A three-node cluster elects a new stream leader when the leader dies, keeps accepting
// publishes, takes the old leader back on the same ports and store, and waits out (rather than
// loses) a majority outage.
func TestClusterLeaderFailover(t *testing.T) {
	dir := t.TempDir()
	c, err := natsdev.StartCluster(natsdev.ClusterOptions{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown() })
	if c.Nodes() != 3 {
		t.Fatalf("Nodes() = %d", c.Nodes())
	}
	urls := c.URLs()
	if got := strings.Count(urls, ","); got != 2 {
		t.Fatalf("URLs() = %q", urls)
	}

	nc, err := nats.Connect(urls, nats.ReconnectWait(20*time.Millisecond), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage, Replicas: 3,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.one", []byte("1")); err != nil {
		t.Fatal(err)
	}
	leader, err := c.WaitStreamLeader("T", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || info.Cluster.Leader != c.NodeName(leader) {
		t.Fatalf("StreamLeader says %s, the stream info %+v", c.NodeName(leader), info.Cluster)
	}
	for i := range c.Nodes() {
		if _, err := os.Stat(filepath.Join(dir, c.NodeName(i), "jetstream")); err != nil {
			t.Errorf("node %d does not store under its own directory: %v", i, err)
		}
	}

	// Kill the leader: another node takes over and publishes succeed.
	oldURL := c.Node(leader).URL()
	c.Shutdown(leader)
	if c.Running(leader) {
		t.Fatal("Running after Shutdown(i)")
	}
	next, err := c.WaitStreamLeader("T", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if next == leader {
		t.Fatalf("the stopped node %d still leads", leader)
	}
	publish(ctx, t, js, "t.two")

	// The old leader comes back on the same URL and catches up.
	if err := c.Start(leader); err != nil {
		t.Fatal(err)
	}
	if c.Node(leader).URL() != oldURL {
		t.Fatalf("URL changed across restart: %s -> %s", oldURL, c.Node(leader).URL())
	}
	if err := c.WaitReady(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(next); err != nil {
		t.Fatal(err)
	}
	publish(ctx, t, js, "t.three")

	// A majority outage: publishes fail while two of three nodes are down, and work again after.
	down := []int{(leader + 1) % 3, (leader + 2) % 3}
	c.Shutdown(down...)
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = js.Publish(pctx, "t.lost", []byte("x"))
	pcancel()
	if err == nil {
		t.Fatal("a publish succeeded without a quorum")
	}
	for _, i := range down {
		if err := c.Start(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	publish(ctx, t, js, "t.four")
	for {
		info, err = st.Info(ctx)
		if err == nil && info.State.Msgs >= 4 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("stream state after the outage: %+v, %v", info, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	for seq, want := range map[uint64]string{1: "t.one", 2: "t.two", 3: "t.three"} {
		m, err := st.GetMsg(ctx, seq)
		if err != nil || m.Subject != want {
			t.Fatalf("message %d: %v %v, want %s", seq, m, err, want)
		}
	}

	c.Shutdown()
	c.Shutdown() // idempotent
	if _, err := nats.Connect(urls, nats.NoReconnect()); !errors.Is(err, nats.ErrNoServers) {
		t.Fatalf("connect after shutdown: %v, want ErrNoServers", err)
	}
}

// publish retries until the cluster accepts the message (a leader election may be under way).
func publish(ctx context.Context, t *testing.T, js jetstream.JetStream, subj string) {
	t.Helper()
	var last error
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.Publish(pctx, subj, []byte(subj), jetstream.WithMsgID(subj))
		cancel()
		if err == nil {
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond) // retry interval
	}
	t.Fatal(fmt.Errorf("publishing %s: %w", subj, last))
}

func TestClusterTemporaryStoreDirIsRemoved(t *testing.T) {
	c, err := natsdev.StartCluster(natsdev.ClusterOptions{Nodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(c.Node(0).StoreDir())
	c.Shutdown()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary store directory %s not removed: %v", dir, err)
	}
}
