// Package natsconn opens NATS connections the same way for the worker and the CLI: one of creds
// file, token or user/password, an optional CA bundle and client certificate, and reconnecting
// for as long as the caller lives.
package natsconn

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"
)

// Options are the connection settings. Secrets here are never put into errors.
type Options struct {
	URL       string // one or more comma-separated server URLs
	Name      string // client name, shown in the server's monitoring
	CredsFile string
	Token     string
	User      string
	Password  string
	CAFile    string
	CertFile  string
	KeyFile   string
	// InboxPrefix replaces _INBOX for the replies this connection receives, so that NATS
	// permissions can give each user its own inboxes ("" keeps _INBOX).
	InboxPrefix string
}

// NATSOptions returns the nats.go options for o; extra ones (handlers, timeouts) come after.
func (o Options) NATSOptions(extra ...nats.Option) []nats.Option {
	opts := []nats.Option{nats.Name(o.Name), nats.MaxReconnects(-1)}
	switch {
	case o.CredsFile != "":
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	case o.Token != "":
		opts = append(opts, nats.Token(o.Token))
	case o.User != "":
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.CAFile != "" {
		opts = append(opts, nats.RootCAs(o.CAFile))
	}
	if o.CertFile != "" {
		opts = append(opts, nats.ClientCert(o.CertFile, o.KeyFile))
	}
	if o.InboxPrefix != "" && o.InboxPrefix != nats.InboxPrefix[:len(nats.InboxPrefix)-1] {
		opts = append(opts, nats.CustomInboxPrefix(o.InboxPrefix))
	}
	return append(opts, extra...)
}

// Connect connects with o and extra options.
func Connect(o Options, extra ...nats.Option) (*nats.Conn, error) {
	nc, err := nats.Connect(o.URL, o.NATSOptions(extra...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", RedactURLs(o.URL), err)
	}
	return nc, nil
}

// RedactURLs hides the user information of each comma-separated URL; a part that does not parse
// is replaced whole, since it may hold anything.
func RedactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if u, err := url.Parse(p); err != nil {
			p = "[unparsable URL]"
		} else if u.User != nil {
			u.User = url.User("redacted")
			p = u.String()
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}
