package results

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/identity/backend"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/dirsync"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/safetext"
)

// warningKind is the last subject token of warnings: <prefix>.warning, inside the results stream.
const warningKind = "warning"

// Bounds of the warning's strings, those of synctoken-expiring.data.schema.json: the values come
// from the identity system and are cleaned to fit rather than making the event invalid.
const (
	maxProviderIDLen = 256
	maxProviderLen   = 256
	maxSourceLen     = 128
	maxDomainLen     = 253
	maxDomains       = 64
)

// TokenWarning is one sync-client token to warn about.
type TokenWarning struct {
	Tenant     string                  // the configured tenant whose identity broker reported the token
	Token      backend.SyncClientToken // whose token and when it expires; never the token itself
	WarnBefore time.Duration           // how long before expiry the worker warns
	Now        time.Time               // when the check ran: the event time, and the day of its id
}

// TokenExpiring publishes a warning that a sync-client token expires within w.WarnBefore (or has
// expired) to <prefix>.warning. Its event id names the tenant, provider, expiry and UTC day, so the
// same warning published again that day (by this replica after a restart, or by another replica)
// is dropped by the results stream within its duplicate window, and consumers can de-duplicate on
// the id beyond it; a new expiry (the token was renewed) is a new warning.
func (p *Publisher) TokenExpiring(ctx context.Context, w TokenWarning) error {
	e, err := p.tokenWarningEvent(w)
	if err != nil {
		return err
	}
	ctx, span := p.startSpan(ctx)
	if span.IsRecording() {
		// A consumer of the warning continues the trace under its publish.
		e.SetExtension("traceparent", dirsync.Traceparent(span.SpanContext()))
	}
	msg, err := cenats.EncodeBinary(p.prefix+"."+warningKind, e)
	if err != nil {
		endSpan(span, err)
		return fmt.Errorf("encode %s: %w", contract.TypeSyncClientTokenExpiring, err)
	}
	if span.IsRecording() {
		span.SetName("publish " + msg.Subject)
		span.SetAttributes(dirsync.AttrTenant.String(w.Tenant), semconv.MessagingSystemKey.String("nats"), semconv.MessagingOperationTypeSend,
			semconv.MessagingDestinationName(msg.Subject), semconv.CloudEventsEventID(e.ID()), semconv.CloudEventsEventType(e.Type()))
	}
	_, err = p.js.PublishMsg(ctx, msg)
	endSpan(span, err)
	if err != nil {
		return fmt.Errorf("publish %s for tenant %s provider %s: %w", contract.TypeSyncClientTokenExpiring, w.Tenant, e.Subject(), err)
	}
	return nil
}

func (p *Publisher) tokenWarningEvent(w TokenWarning) (event.Event, error) {
	data, err := warningData(w)
	if err != nil {
		return event.Event{}, err
	}
	e := event.New()
	e.SetID(TokenWarningID(w.Tenant, data.ProviderID, w.Token.ExpiresAt, w.Now))
	e.SetSource(p.source)
	e.SetType(contract.TypeSyncClientTokenExpiring)
	e.SetSubject(data.Provider)
	e.SetTime(w.Now.UTC())
	if err := e.SetData(event.ApplicationJSON, data); err != nil {
		return event.Event{}, fmt.Errorf("encode %s: %w", contract.TypeSyncClientTokenExpiring, err)
	}
	return e, nil
}

// TokenWarningID is the event id of the warning about a token of tenant's provider expiring at
// expiresAt, published at now: "synctoken:<tenant>/<provider id>@<expiry, RFC 3339>/<UTC day>".
func TokenWarningID(tenant, providerID string, expiresAt, now time.Time) string {
	return "synctoken:" + tenant + "/" + providerID + "@" + expiresAt.UTC().Format(time.RFC3339) + "/" + now.UTC().Format(time.DateOnly)
}

// warningData builds the data of a token warning. The provider's strings are cleaned to the
// schema's bounds; a token without a provider id or a warning without a tenant or time is an error.
func warningData(w TokenWarning) (contract.TokenWarningData, error) {
	t := w.Token
	switch {
	case w.Tenant == "":
		return contract.TokenWarningData{}, errors.New("token warning: no tenant")
	case t.ProviderID == "":
		return contract.TokenWarningData{}, fmt.Errorf("token warning for tenant %s: the token has no provider id", w.Tenant)
	case t.ExpiresAt.IsZero() || w.Now.IsZero():
		return contract.TokenWarningData{}, fmt.Errorf("token warning for tenant %s: no expiry or no check time", w.Tenant)
	}
	d := contract.TokenWarningData{
		Tenant:            w.Tenant,
		ProviderID:        safetext.Clean(t.ProviderID, maxProviderIDLen),
		Provider:          safetext.Clean(t.ProviderName, maxProviderLen),
		Source:            safetext.Clean(t.Source, maxSourceLen),
		ExpiresAt:         t.ExpiresAt.UTC(),
		ExpiresInSeconds:  int64(t.ExpiresAt.Sub(w.Now) / time.Second),
		WarnBeforeSeconds: int64(max(w.WarnBefore, 0) / time.Second),
	}
	if d.Provider == "" {
		d.Provider = d.ProviderID
	}
	for _, dom := range t.Domains {
		if len(d.Domains) == maxDomains {
			break
		}
		if dom = safetext.Clean(dom, maxDomainLen); dom != "" {
			d.Domains = append(d.Domains, dom)
		}
	}
	d.Message = tokenMessage(d, t.ExpiresAt.Sub(w.Now))
	return d, nil
}

// tokenMessage says what happens and what to do, in one sentence for people.
func tokenMessage(d contract.TokenWarningData, left time.Duration) string {
	at := d.ExpiresAt.Format(time.RFC3339)
	if left <= 0 {
		return fmt.Sprintf("the SCIM sync-client token of %s (tenant %s) expired %s, %s ago: users and groups no longer arrive; "+
			"generate a new one in SDDC Manager and configure it in the IdP", d.Provider, d.Tenant, at, span(-left))
	}
	return fmt.Sprintf("the SCIM sync-client token of %s (tenant %s) expires %s, in %s: "+
		"generate a new one in SDDC Manager and configure it in the IdP, or users and groups stop arriving", d.Provider, d.Tenant, at, span(left))
}

// span says a duration the way people count down to a deadline: whole days, else whole hours,
// else whole minutes, rounded down.
func span(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	switch {
	case d >= 24*time.Hour:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour:
		return unit(int64(d/time.Hour), "hour")
	case d >= time.Minute:
		return unit(int64(d/time.Minute), "minute")
	default:
		return "less than a minute"
	}
}
