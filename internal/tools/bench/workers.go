package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/config"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/worker"
)

// fleet is the worker replicas of one measurement, in this process or as OS processes.
type fleet interface {
	metricsURLs() []string
	stop() error
}

// accepted sums dirsync_triggers_accepted_total over the replicas.
func accepted(ctx context.Context, f fleet) (int, error) {
	total := 0.0
	for _, u := range f.metricsURLs() {
		m, err := scrape(ctx, u, "dirsync_triggers_accepted_total")
		if err != nil {
			return 0, err
		}
		total += m["dirsync_triggers_accepted_total"]
	}
	return int(total), nil
}

// inproc is one worker.Run in this process: what a CPU profile of the benchmark sees.
type inproc struct {
	url    string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once // stop is called explicitly and again by deferred cleanup
	err    error
}

func startInProcess(ctx context.Context, cfg config.Config, log *slog.Logger) (*inproc, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &inproc{url: "http://" + ln.Addr().String() + "/metrics", cancel: cancel, done: make(chan error, 1)}
	go func() { w.done <- worker.Run(wctx, cfg, log, worker.WithAdminListener(ln)) }()
	return w, nil
}

func (w *inproc) metricsURLs() []string { return []string{w.url} }

func (w *inproc) stop() error {
	w.once.Do(func() {
		w.cancel()
		select {
		case err := <-w.done:
			if err != nil {
				w.err = fmt.Errorf("worker: %w", err)
			}
		case <-time.After(30 * time.Second):
			w.err = errors.New("worker did not stop within 30s")
		}
	})
	return w.err
}

// buildWorker builds cmd/vidm-sync-worker once per run, from the module around the working
// directory.
func (r *runner) workerBin(ctx context.Context) (string, error) {
	if r.bin != "" {
		return r.bin, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(r.dir, "vidm-sync-worker")
	bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(bctx, "go", "build", "-o", bin, "./cmd/vidm-sync-worker")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the worker: %w\n%s", err, out)
	}
	r.bin = bin
	return bin, nil
}

func moduleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("no go.mod above the working directory to build the worker from")
		}
		d = parent
	}
}

// proc is one worker as an OS process. Its output goes to a log file; the admin address is read
// from its "admin port listening" line.
type proc struct {
	name  string
	cmd   *exec.Cmd
	admin string
	done  chan struct{} // closed at exit
}

func startProc(ctx context.Context, bin, name, dir string, vars map[string]string) (*proc, error) {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("%s pipe: %w", name, err)
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	cmd := exec.Command(bin) //nolint:gosec,noctx // the worker binary this run built; stop() signals and reaps it
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+vars[k])
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		_ = pr.Close()
		_ = pw.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	_ = pw.Close() // the child holds the write end now; EOF comes at its exit
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	var copied sync.WaitGroup
	copied.Go(func() { scanLog(pr, logf, addr) })
	go func() {
		_ = cmd.Wait()
		copied.Wait()
		_ = logf.Close()
		_ = pr.Close()
		close(p.done)
	}()
	select {
	case a := <-addr:
		p.admin = a
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited during start-up; see %s", name, logf.Name())
	case <-ctx.Done():
		_ = p.stop()
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		_ = p.stop()
		return nil, fmt.Errorf("%s: no admin port within 30s: %w", name, errTimeout)
	}
}

// scanLog copies the process's output to its log file and reports the admin address once.
func scanLog(r *os.File, logf *os.File, addr chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Bytes()
		_, _ = logf.Write(append(line, '\n'))
		if sent {
			continue
		}
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(line, &rec) == nil && rec.Msg == "admin port listening" && rec.Addr != "" {
			addr <- rec.Addr
			sent = true
		}
	}
}

func (p *proc) metricsURL() string { return "http://" + p.admin + "/metrics" }

// stop sends SIGTERM and waits for the exit, escalating to SIGKILL after 20s.
func (p *proc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(20 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
	return fmt.Errorf("%s did not stop within 20s of SIGTERM", p.name)
}

// procs is a fleet of OS processes.
type procs []*proc

func (ps procs) metricsURLs() []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.metricsURL())
	}
	return out
}

func (ps procs) stop() error {
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() { errs[i] = p.stop() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startProcs starts n replicas with the same environment.
func (r *runner) startProcs(ctx context.Context, n int, dir string, vars map[string]string) (procs, error) {
	bin, err := r.workerBin(ctx)
	if err != nil {
		return nil, err
	}
	var ps procs
	for i := range n {
		v := map[string]string{}
		for k, val := range vars {
			v[k] = val
		}
		// Info: the admin address is read from the start-up log line.
		v["NATS_CLIENT_NAME"], v["LOG_LEVEL"] = fmt.Sprintf("replica-%d", i), "info"
		p, err := startProc(ctx, bin, fmt.Sprintf("replica-%d", i), dir, v)
		if err != nil {
			_ = ps.stop()
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}
