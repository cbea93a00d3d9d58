package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sethvargo/go-envconfig"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/streams"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/devstack"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
)

// The simulator's credentials; generated per run would add nothing, nothing leaves loopback.
const (
	clientID     = "vidm-sync-worker"
	clientSecret = "bench-client-secret-5Tq9"
	scriptUser   = "pipeline-sync"
	scriptPass   = "bench-password-8Hw2"
	subject      = "dirsync.trigger.bench"
)

func dirID(i int) string     { return fmt.Sprintf("dir-%04d", i) }
func dirName(i int) string   { return fmt.Sprintf("Dir %04d", i) }
func dirDomain(i int) string { return fmt.Sprintf("d%04d.example.com", i) }

// simConfig has n directories; sync 0 means instant (1ns: the simulator reads 0 as its default).
func simConfig(n int, sync time.Duration) vidmsim.Config {
	if sync <= 0 {
		sync = time.Nanosecond
	}
	cfg := vidmsim.Config{
		Clients:      []vidmsim.Client{{ID: clientID, Secret: clientSecret}},
		Users:        []vidmsim.User{{Username: scriptUser, Password: scriptPass}},
		TokenTTL:     time.Hour,
		SyncDuration: sync,
	}
	for i := range n {
		cfg.Directories = append(cfg.Directories, vidmsim.Directory{ID: dirID(i), Name: dirName(i), Domains: []string{dirDomain(i)}})
	}
	return cfg
}

// stack is an embedded JetStream server and a simulator, plus the harness's own connection.
type stack struct {
	dev *devstack.Stack
	nc  *nats.Conn
	js  jetstream.JetStream
}

// startStack starts NATS and the simulator in dir; withNATS false starts only the simulator.
func startStack(dir string, sim vidmsim.Config, withNATS bool) (*stack, error) {
	return startStackWith(dir, sim, withNATS, 0)
}

// startStackWith is startStack with the server's max_payload (0: NATS's default, 1 MiB).
func startStackWith(dir string, sim vidmsim.Config, withNATS bool, maxPayload int32) (*stack, error) {
	dev, err := devstack.Start(devstack.Options{StoreDir: dir, Sim: &sim, ExternalNATS: !withNATS, NATSMaxPayload: maxPayload})
	if err != nil {
		return nil, fmt.Errorf("dev stack: %w", err)
	}
	st := &stack{dev: dev}
	if !withNATS {
		return st, nil
	}
	if st.nc, err = nats.Connect(dev.NATS.URL(), nats.Name("dirsync-bench")); err != nil {
		st.close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	if st.js, err = jetstream.New(st.nc); err != nil {
		st.close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return st, nil
}

func (st *stack) close() {
	if st.nc != nil {
		st.nc.Close()
	}
	st.dev.Close()
}

// env is the worker's environment for this stack: the variables a deployment would set, plus
// extra (which wins).
func (st *stack) env(extra map[string]string) map[string]string {
	vars := map[string]string{
		"NATS_URL":              st.dev.NATS.URL(),
		"VIDM_URL":              st.dev.SimURL,
		"VIDM_CA_FILE":          st.dev.CAFile,
		"VIDM_AUTH_MODE":        "oauth",
		"VIDM_CLIENT_ID":        clientID,
		"VIDM_CLIENT_SECRET":    clientSecret,
		"POLL_INITIAL_INTERVAL": "50ms",
		"POLL_MAX_INTERVAL":     "200ms",
		"RESULT_SOURCE":         "urn:dirsync-bench",
		"ADMIN_ADDR":            "127.0.0.1:0",
		"LOG_FORMAT":            "json",
		"LOG_LEVEL":             "warn",
	}
	for k, v := range extra {
		vars[k] = v
	}
	return vars
}

func loadConfig(ctx context.Context, vars map[string]string) (config.Config, error) {
	cfg, err := config.Load(ctx, envconfig.MapLookuper(vars), false)
	if err != nil {
		return config.Config{}, fmt.Errorf("worker configuration: %w", err)
	}
	return cfg, nil
}

// ensureStreams creates the worker's streams and consumer before any worker runs, so triggers can
// wait in the stream (the worker finds them as it would in production).
func (st *stack) ensureStreams(ctx context.Context, cfg config.Config) error {
	if _, err := streams.Ensure(ctx, st.js, cfg.StreamNames(), cfg.StreamSettings()); err != nil {
		return fmt.Errorf("streams: %w", err)
	}
	return nil
}

// triggerMsg is a binary-mode ad.group.created trigger for directory d.
func triggerMsg(d, n int) (string, *nats.Msg, error) {
	e, err := trigger.NewEvent(trigger.Trigger{Type: "ad.group.created", Source: "urn:dirsync-bench:pipeline",
		Domain: dirDomain(d), Group: fmt.Sprintf("grp-%d-%d", d, n)})
	if err != nil {
		return "", nil, fmt.Errorf("trigger: %w", err)
	}
	m, err := cenats.EncodeBinary(subject, e)
	if err != nil {
		return "", nil, fmt.Errorf("trigger: %w", err)
	}
	return e.ID(), m, nil
}

// publishAll publishes n triggers round-robin over dirs directories as fast as the broker takes
// them (async, bounded window), and checks that each was stored.
func (st *stack) publishAll(ctx context.Context, n, dirs int) ([]string, error) {
	ajs, err := jetstream.New(st.nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	ids := make([]string, 0, n)
	futs := make([]jetstream.PubAckFuture, 0, n)
	for i := range n {
		id, m, err := triggerMsg(i%dirs, i)
		if err != nil {
			return nil, err
		}
		f, err := ajs.PublishMsgAsync(m)
		if err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		ids, futs = append(ids, id), append(futs, f)
	}
	select {
	case <-ajs.PublishAsyncComplete():
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(2 * time.Minute):
		return nil, fmt.Errorf("publishing %d triggers: %w", n, errTimeout)
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return nil, fmt.Errorf("publish: %w", err)
		}
	}
	return ids, nil
}

// poll calls cond every interval until it is true, ctx ends or the deadline passes.
func poll(ctx context.Context, timeout, interval time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %w after %s", what, errTimeout, timeout)
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// drained reports whether the consumer has nothing left to deliver and nothing unacknowledged.
func drained(ctx context.Context, c jetstream.Consumer) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ci, err := c.Info(cctx)
	if err != nil {
		return false, fmt.Errorf("consumer info: %w", err)
	}
	return ci.NumPending == 0 && ci.NumAckPending == 0, nil
}

// scrape reads the sum of every series of the named metrics from a Prometheus text endpoint.
func scrape(ctx context.Context, url string, names ...string) (map[string]float64, error) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: status %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		for _, n := range names {
			if rest, ok := strings.CutPrefix(line, n); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "{")) {
				f := strings.Fields(line)
				v, err := strconv.ParseFloat(f[len(f)-1], 64)
				if err != nil {
					return nil, fmt.Errorf("metrics: %q: %w", line, err)
				}
				out[n] += v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return out, nil
}

// simClient is an HTTP client that trusts the simulator's CA, sized for many concurrent scripts.
func simClient(caFile string, conns int) (*http.Client, error) {
	pem, err := os.ReadFile(filepath.Clean(caFile))
	if err != nil {
		return nil, fmt.Errorf("simulator CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("simulator CA %s: no certificate", caFile)
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: time.Minute}, nil
}
