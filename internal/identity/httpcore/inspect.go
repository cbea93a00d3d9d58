package httpcore

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// What a read-only check of an identity system (vidm-sync-worker check) needs beyond the
// backend interface: the TLS chain the base URL presents, and the sync status as it was sent.

// Chain is what a TLS handshake with the base URL's host showed.
type Chain struct {
	Certificates []Certificate `json:"certificates"`
	// Verified: the chain verifies for the host with the client's trust (system roots plus
	// the CA file); VerifyError says why not.
	Verified    bool   `json:"verified"`
	VerifyError string `json:"verifyError,omitempty"`
	// Insecure: the client does not verify (the explicit switch).
	Insecure bool `json:"insecure,omitempty"`
}

// Certificate is one certificate of a chain, as an operator compares it with their CA.
type Certificate struct {
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"notAfter"`
}

// InspectTLS connects to the base URL's host, completes a handshake without trusting it, then
// verifies the chain as the client would. A plain http:// base URL has no chain (nil).
func (c *Client) InspectTLS(ctx context.Context) (*Chain, error) {
	if c.base.Scheme != "https" {
		return nil, nil
	}
	host := c.base.Hostname()
	addr := net.JoinHostPort(host, cmp.Or(c.base.Port(), "443"))
	d := tls.Dialer{Config: &tls.Config{ServerName: host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}} //nolint:gosec // inspected, then verified below
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	ch := &Chain{Insecure: c.cfg.InsecureSkipVerify}
	for _, cert := range certs {
		ch.Certificates = append(ch.Certificates, Certificate{Subject: cert.Subject.String(), Issuer: cert.Issuer.String(), NotAfter: cert.NotAfter})
	}
	if err := c.verify(host, certs); err != nil {
		ch.VerifyError = err.Error()
	} else {
		ch.Verified = true
	}
	return ch, nil
}

// verify checks certs for host against the system roots plus the client's CA file.
func (c *Client) verify(host string, certs []*x509.Certificate) error {
	if len(certs) == 0 {
		return errors.New("the server sent no certificate")
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if c.cfg.CAFile != "" {
		tc, err := tlsConfig(c.cfg.CAFile, false)
		if err != nil {
			return err
		}
		roots = tc.RootCAs
	}
	inter := x509.NewCertPool()
	for _, ic := range certs[1:] {
		inter.AddCert(ic)
	}
	_, err = certs[0].Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter})
	return err
}

// RawSyncStatus reads the directory's sync status and returns the body as the system sent it
// (bounded like every answer), for a check that shows what it parsed and what it did not
// understand (DiagnoseSyncState).
func (c *Client) RawSyncStatus(ctx context.Context, directoryID string) ([]byte, error) {
	cl, err := c.api.SyncStatus(directoryID)
	if err != nil {
		return nil, &Error{Op: "sync status", Err: err}
	}
	return c.Do(ctx, cl)
}

// ParseStatusBody reads a sync status body with the client's own parser (the API's), as
// SyncStatus does.
func (c *Client) ParseStatusBody(directoryID string, body []byte) (SyncState, error) {
	return c.api.ParseSyncState(directoryID, body)
}

// knownStatusKeys are every top-level key ParseSyncState reads, and those it knows to ignore.
var knownStatusKeys = slices.Concat(statusKeys, messageKeys, startedKeys, finishedKeys, progressKeys, connectorKeys,
	attemptsKeys, []string{"directoryid", "_links", "links", "id", "runid", "syncid"})

// DiagnoseSyncState says what ParseSyncState did not understand in a status body: no status, a
// status value it does not know, no start or end dates, and top-level fields it does not read.
// An empty answer means the body was understood completely.
func DiagnoseSyncState(body []byte) []string {
	obj, err := decodeObject(body)
	if err != nil {
		return []string{"the body is not a JSON object: " + DescribeJSONError(err)}
	}
	var notes []string
	st, err := ParseSyncState(body)
	switch {
	case err != nil:
		notes = append(notes, "no status field (looked for status, syncStatus, state, syncState, progressStatus, outcomeStatus)")
	case st.Status == StatusUnknown:
		notes = append(notes, fmt.Sprintf("status %q is not a value this worker knows: it is taken as still running until SYNC_DEADLINE", st.Raw))
	}
	if err == nil && st.StartedAt.IsZero() && st.Status != StatusUndefined {
		notes = append(notes, "no start date: a sync is known to be the worker's only by seeing it RUNNING, or after POLL_CONFIRM_AFTER")
	}
	if err == nil && st.FinishedAt.IsZero() && st.Status.Terminal() {
		notes = append(notes, "no end date on a finished sync: the worker reports its own time instead")
	}
	var unknown []string
	for k := range obj {
		if !slices.Contains(knownStatusKeys, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		// The keys are the server's text: clipped, and only the first few named.
		slices.Sort(unknown)
		const named = 10
		more := ""
		if len(unknown) > named {
			more, unknown = fmt.Sprintf(" and %d more", len(unknown)-named), unknown[:named]
		}
		for i, k := range unknown {
			unknown[i] = clip(strings.ToValidUTF8(k, "?"), 64)
		}
		notes = append(notes, fmt.Sprintf("fields not read: %q%s", unknown, more))
	}
	return notes
}
