package natsdev

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// clusterReadyTimeout bounds how long StartCluster waits for a JetStream meta leader.
const clusterReadyTimeout = 30 * time.Second

// ClusterOptions configures StartCluster.
type ClusterOptions struct {
	// Nodes is the number of servers. Default 3.
	Nodes int
	// Name is the cluster's name. Default "natsdev".
	Name string
	// StoreDir holds one JetStream storage directory per node (StoreDir/n0, StoreDir/n1, …).
	// Empty: a new temporary directory that Shutdown removes.
	StoreDir string
	// SyncAlways as in Options, for every node.
	SyncAlways bool
	// Logger receives the servers' log lines, each with a "node" attribute. Nil: none.
	Logger *slog.Logger
	// MaxPayload as in Options, for every node.
	MaxPayload int32
}

// Cluster is a JetStream cluster of embedded servers on loopback, for tests and the chaos
// harness. Node i is named "n<i>"; every node keeps its client port, route port and store
// directory across Restart and Shutdown(i)/Start(i), as a restarted production node would. Its
// methods are safe for concurrent use.
type Cluster struct {
	nodes   []*Server
	dir     string
	ownsDir bool
}

// nodeConfig is what makes a Server a cluster node.
type nodeConfig struct {
	cluster string
	name    string
	port    int    // route port
	routes  string // comma-separated route URLs of the other nodes
}

func (n *nodeConfig) apply(o *server.Options, host string) {
	o.ServerName = n.name
	o.Cluster = server.ClusterOpts{Name: n.cluster, Host: host, Port: n.port}
	o.Routes = server.RoutesFromStr(n.routes) // fresh each start: the server may keep them
}

// StartCluster starts every node and waits until the cluster has a JetStream meta leader and
// every node is current with it.
func StartCluster(opts ClusterOptions) (*Cluster, error) {
	if opts.Nodes <= 0 {
		opts.Nodes = 3
	}
	if opts.Name == "" {
		opts.Name = "natsdev"
	}
	c := &Cluster{dir: opts.StoreDir}
	if c.dir == "" {
		d, err := os.MkdirTemp("", "natsdev-cluster-")
		if err != nil {
			return nil, fmt.Errorf("natsdev: creating a store directory: %w", err)
		}
		c.dir, c.ownsDir = d, true
	}
	const host = "127.0.0.1"
	ports, err := freePorts(host, 2*opts.Nodes)
	if err != nil {
		c.Shutdown()
		return nil, err
	}
	routeURL := func(i int) string { return "nats-route://" + net.JoinHostPort(host, strconv.Itoa(ports[opts.Nodes+i])) }
	for i := range opts.Nodes {
		name := nodeName(i)
		var routes []string
		for j := range opts.Nodes {
			if j != i {
				routes = append(routes, routeURL(j))
			}
		}
		o := Options{StoreDir: filepath.Join(c.dir, name), Port: ports[i], Host: host, SyncAlways: opts.SyncAlways,
			MaxPayload: opts.MaxPayload}
		if opts.Logger != nil {
			o.Logger = opts.Logger.With("node", name)
		}
		if err := os.MkdirAll(o.StoreDir, 0o700); err != nil {
			c.Shutdown()
			return nil, fmt.Errorf("natsdev: %w", err)
		}
		c.nodes = append(c.nodes, &Server{opts: o, node: &nodeConfig{
			cluster: opts.Name, name: name, port: ports[opts.Nodes+i], routes: strings.Join(routes, ","),
		}})
	}
	for i := range c.nodes {
		if err := c.Start(i); err != nil {
			c.Shutdown()
			return nil, err
		}
	}
	if err := c.WaitReady(clusterReadyTimeout); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

// freePorts returns n distinct ports that were free a moment ago.
func freePorts(host string, n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("natsdev: picking a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func nodeName(i int) string { return "n" + strconv.Itoa(i) }

// Nodes is the number of nodes.
func (c *Cluster) Nodes() int { return len(c.nodes) }

// Node is node i. Its URL and StoreDir are the node's; its Restart restarts that node only.
func (c *Cluster) Node(i int) *Server { return c.nodes[i] }

// NodeName is node i's server name, "n<i>".
func (c *Cluster) NodeName(i int) string { return nodeName(i) }

// URLs is every node's client URL, comma-separated (what NATS_URL and nats.Connect take).
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = n.URL()
	}
	return strings.Join(urls, ",")
}

// Restart shuts node i down and starts it again on the same ports and store directory.
func (c *Cluster) Restart(i int) error {
	c.Shutdown(i)
	return c.Start(i)
}

// Shutdown stops node i (no argument: every node, and removes a temporary store directory).
// Stopping a node that is not running does nothing.
func (c *Cluster) Shutdown(i ...int) {
	if len(i) == 0 {
		for _, n := range c.nodes {
			n.stopNode()
		}
		if c.ownsDir {
			_ = os.RemoveAll(c.dir)
			c.ownsDir = false
		}
		return
	}
	for _, idx := range i {
		c.nodes[idx].stopNode()
	}
}

// Start starts node i again after Shutdown(i), on the same ports and store directory, and waits
// until it accepts connections (not until it has caught up: see WaitReady). Starting a running
// node does nothing.
func (c *Cluster) Start(i int) error {
	if err := c.nodes[i].startNode(); err != nil {
		return fmt.Errorf("natsdev: node %s: %w", nodeName(i), err)
	}
	return nil
}

// Running reports whether node i is running.
func (c *Cluster) Running(i int) bool {
	n := c.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ns != nil
}

// MetaLeader is the index of the node that leads the JetStream meta group, or -1.
func (c *Cluster) MetaLeader() int {
	for i, n := range c.nodes {
		if ns := n.server(); ns != nil && ns.JetStreamIsLeader() {
			return i
		}
	}
	return -1
}

// StreamLeader is the index of the node that leads the stream in the global account (the one
// of a server without accounts), or -1 while the stream has no leader or does not exist. A KV
// bucket's stream is "KV_<bucket>".
func (c *Cluster) StreamLeader(stream string) int {
	for i, n := range c.nodes {
		if ns := n.server(); ns != nil && ns.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// WaitReady waits until the cluster has a meta leader and every running node is current with
// it; an error after timeout. It does not wait for stream leaders (see WaitStreamLeader).
func (c *Cluster) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok := c.MetaLeader() >= 0
		for _, n := range c.nodes {
			if ns := n.server(); ok && ns != nil && !ns.JetStreamIsCurrent() {
				ok = false
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("natsdev: cluster has no JetStream meta leader with every node current after %s", timeout)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// WaitStreamLeader waits until the stream has a leader and returns its index.
func (c *Cluster) WaitStreamLeader(stream string, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		if i := c.StreamLeader(stream); i >= 0 {
			return i, nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("natsdev: stream %q has no leader after %s", stream, timeout)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// server is the running embedded server, nil if stopped.
func (s *Server) server() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ns
}

// stopNode shuts a cluster node down so that startNode can bring it back.
func (s *Server) stopNode() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
		s.ns = nil
	}
}

func (s *Server) startNode() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ns != nil {
		return nil
	}
	if s.node == nil {
		return errors.New("not a cluster node")
	}
	ns, err := s.start()
	if err != nil {
		return err
	}
	s.ns = ns
	return nil
}
