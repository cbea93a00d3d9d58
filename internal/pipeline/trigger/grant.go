package trigger

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// HeaderSafeguardsGrant carries the admin API's permission for one sync request to ignore vIDM's
// safeguards on a tenant that does not let publishers ask for it (allowIgnoreSafeguards).
const HeaderSafeguardsGrant = "Dirsync-Safeguards-Grant"

// GrantMaxAge bounds how long after signing a grant is honoured: a copy of the message replayed
// later (after the trigger stream's duplicate window) gains nothing.
const GrantMaxAge = 10 * time.Minute

// Grants signs and checks safeguard grants with a key derived from the admin token, which every
// replica has and no publisher does. A grant names one event, its tenant and its directory.
type Grants struct {
	key []byte
	now func() time.Time
}

// NewGrants returns Grants keyed by secret, or nil when secret is empty (nobody can grant).
func NewGrants(secret string, now func() time.Time) *Grants {
	if secret == "" {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("vidm-sync-worker safeguards grant v1"))
	return &Grants{key: m.Sum(nil), now: now}
}

// Sign returns the header value granting event id (of tenant, naming directory) the right to
// ignore safeguards.
func (g *Grants) Sign(id, tenant, directory string) string {
	at := strconv.FormatInt(g.now().Unix(), 10)
	return at + "." + hex.EncodeToString(g.mac(at, id, tenant, directory))
}

// Valid reports whether value is a grant for this event that is not older than GrantMaxAge.
// A nil Grants validates nothing.
func (g *Grants) Valid(value, id, tenant, directory string) bool {
	if g == nil {
		return false
	}
	at, sum, ok := strings.Cut(value, ".")
	if !ok {
		return false
	}
	sec, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return false
	}
	if age := g.now().Sub(time.Unix(sec, 0)); age > GrantMaxAge || age < -time.Minute {
		return false
	}
	got, err := hex.DecodeString(sum)
	return err == nil && hmac.Equal(got, g.mac(at, id, tenant, directory))
}

func (g *Grants) mac(at, id, tenant, directory string) []byte {
	m := hmac.New(sha256.New, g.key)
	for _, s := range []string{at, id, tenant, directory} {
		m.Write([]byte(strconv.Itoa(len(s)) + ":" + s + "\n"))
	}
	return m.Sum(nil)
}
