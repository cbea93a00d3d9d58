package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// stopTimeout bounds how long a replica may take to exit after SIGTERM before it is killed.
const stopTimeout = 20 * time.Second

// replica is one worker slot: at most one OS process at a time, restarted by the harness. Its
// output, across every process it ran, goes to one log file.
type replica struct {
	name    string
	bin     string
	env     []string
	logPath string

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{} // closed when cmd has exited
	expected bool          // the harness asked this process to stop
	busy     bool          // a kill/stop-and-restart is in progress
	starts   int
	crashes  int // exits nobody asked for
	lastErr  error
}

func newReplica(name, bin, dir string, env []string) *replica {
	return &replica{name: name, bin: bin, env: env, logPath: filepath.Join(dir, name+".log")}
}

// start runs a new process; the slot must be empty.
func (r *replica) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.startLocked()
}

func (r *replica) startLocked() error {
	if r.cmd != nil {
		return fmt.Errorf("%s: already running", r.name)
	}
	f, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(r.bin) //nolint:gosec,noctx // the worker binary this harness built; it signals and reaps the process itself
	cmd.Env = r.env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return fmt.Errorf("%s: %w", r.name, err)
	}
	done := make(chan struct{})
	r.cmd, r.done, r.expected = cmd, done, false
	r.starts++
	go r.reap(cmd, f, done)
	return nil
}

// reap waits for the process, records whether its exit was asked for, and empties the slot.
func (r *replica) reap(cmd *exec.Cmd, f *os.File, done chan struct{}) {
	err := cmd.Wait()
	_ = f.Close()
	r.mu.Lock()
	if !r.expected {
		r.crashes++
		r.lastErr = fmt.Errorf("%s exited on its own: %w", r.name, err)
	}
	if r.cmd == cmd {
		r.cmd = nil
	}
	r.mu.Unlock()
	close(done)
}

// signal sends sig to the running process and returns the channel closed at its exit; nil if
// nothing runs.
func (r *replica) signal(sig syscall.Signal) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return nil
	}
	r.expected = true
	_ = r.cmd.Process.Signal(sig)
	return r.done
}

// stop sends sig and waits for the exit, escalating to SIGKILL after stopTimeout.
func (r *replica) stop(ctx context.Context, sig syscall.Signal) error {
	done := r.signal(sig)
	if done == nil {
		return nil
	}
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	if d := r.signal(syscall.SIGKILL); d != nil {
		select {
		case <-d:
		case <-time.After(5 * time.Second):
			return fmt.Errorf("%s did not exit after SIGKILL", r.name)
		}
	}
	return fmt.Errorf("%s did not stop within %s of %s", r.name, stopTimeout, sig)
}

// claim marks the slot busy for one kill/stop-and-restart; false if one is already going on.
func (r *replica) claim() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy {
		return false
	}
	r.busy = true
	return true
}

func (r *replica) release() {
	r.mu.Lock()
	r.busy = false
	r.mu.Unlock()
}

// ensureRunning restarts a slot whose process exited on its own (a supervisor would).
func (r *replica) ensureRunning() (restarted bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil || r.busy {
		return false, nil
	}
	return true, r.startLocked()
}

func (r *replica) stats() (starts, crashes int, lastErr error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.starts, r.crashes, r.lastErr
}

// replicas is the set of worker slots.
type replicas []*replica

// killAll SIGKILLs every process and waits (bounded) for them to exit: the cleanup path.
func (rs replicas) killAll() {
	for _, r := range rs {
		if d := r.signal(syscall.SIGKILL); d != nil {
			select {
			case <-d:
			case <-time.After(5 * time.Second): // nothing more to do: Pdeathsig is the backstop
			}
		}
	}
}
