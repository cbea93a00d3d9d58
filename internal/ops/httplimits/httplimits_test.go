package httplimits_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/httplimits"
)

// serve starts h behind the limits on a real listener and returns its address.
func serve(t *testing.T, l httplimits.Limits, h http.Handler) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config = httplimits.Server(h, l, slog.New(slog.DiscardHandler))
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// Every read below ends by this deadline at the latest: no test waits on a hung server.
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return c
}

// readBody answers 408 when the body did not arrive in time, else its length.
var readBody = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	switch {
	case httplimits.TimedOut(err):
		http.Error(w, "body too slow", http.StatusRequestTimeout)
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
	default:
		fmt.Fprintf(w, "%d bytes", len(b))
	}
})

// A body trickled a byte at a time is cut off at the body limit, however steadily it comes.
func TestTrickledBodyIsCutOff(t *testing.T) {
	addr := serve(t, httplimits.Limits{Body: 300 * time.Millisecond}, readBody)
	c := dial(t, addr)
	if _, err := fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond) // the attacker's pace, well inside any per-read timeout
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a trickled body: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408", resp.StatusCode)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the trickle was read for %s", took)
	}
}

// The body deadline ends with the body: a handler that then waits longer than it (the ingress's
// ?wait) keeps its request context and answers.
func TestReadDeadlineEndsWithTheBody(t *testing.T) {
	addr := serve(t, httplimits.Limits{Body: 100 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			t.Errorf("body: %v", err)
		}
		select {
		case <-r.Context().Done():
			t.Error("the request context ended while the handler waited")
		case <-time.After(500 * time.Millisecond): // the handler's own wait, five body limits
			fmt.Fprint(w, "waited")
		}
	}))
	resp, err := http.Post("http://"+addr+"/", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "waited" {
		t.Fatalf("answer %q", b)
	}
}

// An answer not written within the write limit is cut; Extend gives a waiting handler more.
func TestWriteDeadlineAndExtend(t *testing.T) {
	addr := serve(t, httplimits.Limits{Write: 100 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("extend") {
			httplimits.Extend(w, 10*time.Second)
		}
		<-time.After(300 * time.Millisecond) // a handler slower than its write limit
		fmt.Fprint(w, "late answer")
	}))
	results := make(chan string, 2)
	for _, q := range []string{"", "?extend"} {
		go func() {
			resp, err := http.Get("http://" + addr + "/" + q)
			if err != nil {
				results <- q + ": " + err.Error()
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				results <- q + ": " + err.Error()
				return
			}
			results <- q + ": " + string(b)
		}()
	}
	got := map[string]bool{<-results: true, <-results: true}
	if !got["?extend: late answer"] || got[": late answer"] {
		t.Fatalf("answers %v; want only the extended one delivered", got)
	}
}

// An idle keep-alive connection is closed at the idle limit.
func TestIdleConnectionIsClosed(t *testing.T) {
	addr := serve(t, httplimits.Limits{Idle: 200 * time.Millisecond}, readBody)
	c := dial(t, addr)
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	start := time.Now()
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("an idle connection: %v, want it closed by the server", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("closed after %s", took)
	}
}

// Headers beyond the limit get 431 and are not read on.
func TestOversizedHeadersAreRefused(t *testing.T) {
	addr := serve(t, httplimits.Limits{}, readBody)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Filler", strings.Repeat("h", 900<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("a 900 KB header: %d, want 431", resp.StatusCode)
	}
	req.Header.Set("X-Filler", strings.Repeat("h", 8<<10))
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("an 8 KB header: %v %v, want 200", resp, err)
	}
	resp.Body.Close()
}
