package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/worker"
)

// defaultAdminAddr is config's ADMIN_ADDR default; the healthcheck must not load the whole
// configuration (a probe has to work even when, say, a secret file is unreadable).
const defaultAdminAddr = ":9090"

// healthcheck is `vidm-sync-worker healthcheck`: one GET, exit status from the answer. It exists
// because the distroless image has no curl or wget for the image's HEALTHCHECK.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vidm-sync-worker healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", healthURL(getenv("ADMIN_ADDR")), "URL to GET; healthy if it answers 2xx")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: vidm-sync-worker healthcheck [-url URL] [-timeout D]\n\nExit 0 if URL answers 2xx, 1 otherwise.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("healthcheck: unexpected argument %q", fs.Arg(0))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	// A probe must not follow a redirect elsewhere, nor use a proxy from the environment.
	client := &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("healthcheck: %s: no answer within %s", *url, *timeout)
		}
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("healthcheck: %s answered %s", *url, resp.Status)
	}
	fmt.Fprintf(stdout, "healthy: %s answered %s\n", *url, resp.Status)
	return nil
}

// healthURL is the liveness URL of a worker listening on adminAddr (ADMIN_ADDR).
func healthURL(adminAddr string) string {
	if adminAddr == "" {
		adminAddr = defaultAdminAddr
	}
	return "http://" + worker.LocalAdminAddr(adminAddr) + "/healthz"
}
