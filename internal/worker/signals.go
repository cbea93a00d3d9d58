package worker

import (
	"context"
	"net"
	"os"
	"os/signal"
	"syscall"
)

// ReloadSignals delivers once per SIGHUP until ctx ends (for WithReload): the worker then
// re-reads its tenants. Signals that arrive while a reload is due are folded into it.
func ReloadSignals(ctx context.Context) <-chan struct{} {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	out := make(chan struct{}, 1)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case out <- struct{}{}:
				default: // a reload is already due; it reads the file as it is then
				}
			}
		}
	}()
	return out
}

// LocalAdminAddr is where a client on this machine (the probe inside the container, a browser
// next to the dev command) reaches an admin port listening on adminAddr (ADMIN_ADDR): a wildcard
// or empty host is reached on the loopback address. What is not host:port is returned as it is,
// for the caller's request to report.
func LocalAdminAddr(adminAddr string) string {
	host, port, err := net.SplitHostPort(adminAddr)
	if err != nil {
		return adminAddr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
