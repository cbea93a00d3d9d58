package vidmsim

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Fault makes an endpoint misbehave. Faults apply after the request is counted and before any
// routing check, so even a request that would be refused can be delayed, failed or reset.
//
// Latency applies to every request while the fault is installed. Status, Reset and Hang (the
// "action") apply to a request with probability Rate (Rate <= 0: every request). Hang comes
// first; a request released by Resume then gets Reset (which wins over Status) or Status if set,
// or is handled normally. Times > 0 spends the fault after that many actions (for a Latency-only fault:
// that many requests); Times == 0 never spends it.
type Fault struct {
	Latency    time.Duration // added to every matching request before anything else
	Status     int           // answer this status instead of handling, with a vIDM-style error body
	RetryAfter time.Duration // sets Retry-After (whole seconds, rounded up) on Status answers
	Reset      bool          // close the TCP connection without answering
	Hang       bool          // block until the request's context ends or Resume is called
	Rate       float64       // probability a request gets Status/Reset/Hang; <= 0 means every request
	Times      int           // only the next N requests get it, then it is spent; 0 = unlimited
}

func (f *Fault) hasAction() bool { return f.Status != 0 || f.Reset || f.Hang }

// SetFault installs f for ep, replacing any fault already there.
func (s *Server) SetFault(ep Endpoint, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[ep] = &f
}

// ClearFaults removes every fault. Requests already hung stay hung until Resume or their context
// ends: clearing is about future requests.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.faults)
}

// Resume releases every hung request and turns Hang off in every installed fault.
func (s *Server) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.resume)
	s.resume = make(chan struct{})
	for ep, f := range s.faults {
		f.Hang = false
		if !f.hasAction() && f.Latency == 0 {
			delete(s.faults, ep)
		}
	}
}

// faultPlan is what one request will suffer, decided under the lock and carried out without it.
type faultPlan struct {
	latency    time.Duration
	hang       bool
	resume     <-chan struct{}
	reset      bool
	status     int
	retryAfter time.Duration
}

func (s *Server) planFault(ep Endpoint) (faultPlan, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults[ep]
	if f == nil {
		return faultPlan{}, false
	}
	plan := faultPlan{latency: f.Latency}
	if f.hasAction() {
		if f.Rate > 0 && s.rng.Float64() >= f.Rate {
			return plan, true
		}
		plan.hang, plan.resume = f.Hang, s.resume
		plan.reset, plan.status, plan.retryAfter = f.Reset, f.Status, f.RetryAfter
	}
	if f.Times > 0 {
		f.Times--
		if f.Times == 0 {
			delete(s.faults, ep)
		}
	}
	return plan, true
}

// applyFault carries out the fault for ep, if any. done means the request has been dealt with;
// abort means it must end without an answer.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, ep Endpoint) (done, abort bool) {
	plan, ok := s.planFault(ep)
	if !ok {
		return false, false
	}
	ctx := r.Context()
	if plan.latency > 0 && !sleep(ctx, plan.latency) {
		return true, true
	}
	if plan.hang {
		select {
		case <-plan.resume:
		case <-ctx.Done():
			return true, true
		}
	}
	switch {
	case plan.reset:
		return true, !resetConn(w)
	case plan.status != 0:
		if plan.retryAfter > 0 {
			secs := (plan.retryAfter + time.Second - 1) / time.Second
			w.Header().Set("Retry-After", strconv.FormatInt(int64(secs), 10))
		}
		writeError(w, plan.status, faultCode(plan.status), "Simulated fault: "+http.StatusText(plan.status))
		return true, false
	}
	return false, false
}

// sleep waits for d and reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func faultCode(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "request.throttled"
	case status == http.StatusServiceUnavailable:
		return "service.unavailable"
	case status >= 500:
		return "server.error"
	default:
		return "request.failed"
	}
}

// resetConn hijacks the connection and closes it with SO_LINGER 0, so the client sees a TCP reset
// rather than a clean close. It reports false when the connection cannot be hijacked (HTTP/2).
func resetConn(w http.ResponseWriter) bool {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	// Close the raw connection: tls.Conn.Close would first send a close_notify alert.
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	}
	_ = conn.Close()
	return true
}
