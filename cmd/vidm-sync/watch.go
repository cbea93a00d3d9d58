package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
)

const watchUsage = `Usage: vidm-sync watch [flags]

Follows the worker's result events (vidm.directory.sync.started, .completed, .failed, and the
vidm.identity.synctoken.expiring warnings) and prints one line per event: time, type, tenant,
directory, status, run id, number of triggers, connector (and failover attempts), delegation,
error; with --json
the whole event (attributes and data) as one JSON object per line. It runs until Ctrl-C, or until
--count events have been printed (counted after the filters; started events count too).
`

type watchOptions struct {
	conn           connFlags
	from, dir, typ string
	jsonOut        bool
	count          int
}

func watchFlags() (*flag.FlagSet, *watchOptions) {
	fs := newFlagSet("watch")
	o := &watchOptions{}
	o.conn.register(fs)
	fs.StringVar(&o.from, "from", "new", "where to start: `all` (every stored result) or new (from now)")
	fs.StringVar(&o.dir, "directory", "", "only events of this vIDM directory `name`")
	fs.StringVar(&o.typ, "type", "", "only events of this `type`: started, completed, failed or warning")
	fs.BoolVar(&o.jsonOut, "json", false, "print each event as one JSON object per line")
	fs.IntVar(&o.count, "count", 0, "stop after printing `N` events (0: run until interrupted)")
	return fs, o
}

func runWatch(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, o := watchFlags()
	if done, err := parse(fs, args, watchUsage, stdout); done || err != nil {
		return err
	}
	if err := o.conn.resolve(fs, setFlags(fs), getenv); err != nil {
		return err
	}
	if o.from != "all" && o.from != "new" {
		return usageErrorf("--from %q: want all or new", o.from)
	}
	if o.count < 0 {
		return usageErrorf("--count must not be negative")
	}
	wantType := ""
	switch o.typ {
	case "":
	case "started", contract.TypeStarted:
		wantType = contract.TypeStarted
	case "completed", contract.TypeCompleted:
		wantType = contract.TypeCompleted
	case "failed", contract.TypeFailed:
		wantType = contract.TypeFailed
	case "warning", contract.TypeSyncClientTokenExpiring:
		wantType = contract.TypeSyncClientTokenExpiring
	default:
		return usageErrorf("--type %q: want started, completed, failed or warning", o.typ)
	}

	nc, js, err := o.conn.connect(stderr)
	if err != nil {
		return err
	}
	defer nc.Close()
	f, err := follow(ctx, js, o.conn.resultStream, o.from == "all")
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting
		}
		return fmt.Errorf("result %w (see --result-stream)", err)
	}
	defer f.stop()

	printed := 0
	for o.count == 0 || printed < o.count {
		select {
		case <-ctx.Done():
			return nil // Ctrl-C is how watch ends
		case m, ok := <-f.C:
			if !ok {
				if err := feedEnded(ctx, f); err != nil && ctx.Err() == nil {
					return err
				}
				return nil
			}
			e, data, err := decodeResult(m)
			if err != nil {
				fmt.Fprintf(stderr, "warning: skipping result message: %v\n", err)
				continue
			}
			if wantType != "" && e.Type() != wantType {
				continue
			}
			if o.dir != "" && !strings.EqualFold(o.dir, data.DirectoryName) && e.Type() != contract.TypeSyncClientTokenExpiring {
				continue
			}
			if o.jsonOut {
				b, err := json.Marshal(e)
				if err != nil {
					return fmt.Errorf("printing event %s: %w", e.ID(), err)
				}
				_, err = fmt.Fprintf(stdout, "%s\n", b)
				if err != nil {
					return err
				}
			} else if _, err := fmt.Fprintln(stdout, formatLine(e, data)); err != nil {
				return err
			}
			printed++
		}
	}
	return nil
}

// formatLine is the readable form of a result event:
//
//	2025-11-23T14:52:07Z completed directory="Corp AD" status=COMPLETED run=… triggers=2
//	2025-11-23T14:52:07Z failed directory="EMEA AD" status=FAILED run=… triggers=1 error=VIDM_SYNC_FAILED: …
//	2025-11-23T14:52:07Z completed directory="Corp AD" status=COMPLETED run=… triggers=1480 page=2/7 run_triggers=10000
func formatLine(e event.Event, d contract.Data) string {
	if e.Type() == contract.TypeSyncClientTokenExpiring {
		return warningLine(e)
	}
	var b strings.Builder
	b.WriteString(e.Time().UTC().Format(time.RFC3339))
	b.WriteString(" ")
	b.WriteString(strings.TrimPrefix(e.Type(), "vidm.directory.sync."))
	fmt.Fprintf(&b, " tenant=%s directory=%q", d.Tenant, d.DirectoryName)
	status := d.Status
	if e.Type() == contract.TypeStarted {
		status = "RUNNING"
	}
	if status != "" {
		fmt.Fprintf(&b, " status=%s", status)
	}
	fmt.Fprintf(&b, " run=%s", d.RunID)
	if e.Type() != contract.TypeStarted {
		fmt.Fprintf(&b, " triggers=%d", len(d.Triggers))
	}
	if d.Pages > 1 {
		// One line per page of a large run: the page's own triggers, and the run's total.
		fmt.Fprintf(&b, " page=%d/%d run_triggers=%d", d.Page, d.Pages, d.TriggerCount)
	}
	if len(d.Attempts) > 0 {
		steps := make([]string, len(d.Attempts))
		for i, a := range d.Attempts {
			steps[i] = a.Connector + ":" + a.Status
		}
		fmt.Fprintf(&b, " attempts=%s", strings.Join(steps, ">"))
	} else if d.Connector != "" {
		fmt.Fprintf(&b, " connector=%s", d.Connector)
	}
	if dl := d.Delegation; dl != nil {
		fmt.Fprintf(&b, " delegated=%s provider=%q", dl.Kind, dl.Provider)
		if dl.TokenExpiresAt != nil {
			fmt.Fprintf(&b, " token_expires=%s", dl.TokenExpiresAt.UTC().Format(time.RFC3339))
		}
	}
	if d.Error != nil {
		fmt.Fprintf(&b, " error=%s: %s", d.Error.Code, d.Error.Message)
	}
	return b.String()
}

// warningLine is the readable form of a sync-client token warning:
//
//	2026-11-23T10:00:00Z warning tenant=vcf provider="Okta" token_expires=2026-11-26T00:00:00Z: the SCIM …
func warningLine(e event.Event) string {
	var w contract.TokenWarningData
	if err := json.Unmarshal(e.Data(), &w); err != nil {
		return fmt.Sprintf("%s warning (unreadable: %v)", e.Time().UTC().Format(time.RFC3339), err)
	}
	return fmt.Sprintf("%s warning tenant=%s provider=%q token_expires=%s: %s", e.Time().UTC().Format(time.RFC3339),
		w.Tenant, w.Provider, w.ExpiresAt.UTC().Format(time.RFC3339), w.Message)
}

// feedEnded is the error that closed a feed (nil if the context ended it).
func feedEnded(ctx context.Context, f *feed) error {
	select {
	case err := <-f.Err:
		return err
	default:
		return ctx.Err()
	}
}

// decodeResult reads a result event and its data (started events fill the first fields only).
func decodeResult(m jetstream.Msg) (event.Event, contract.Data, error) {
	e, err := cenats.Decode(m.Headers(), m.Data())
	if err != nil {
		return event.Event{}, contract.Data{}, fmt.Errorf("subject %s: %w", m.Subject(), err)
	}
	var data contract.Data
	if err := json.Unmarshal(e.Data(), &data); err != nil {
		return event.Event{}, contract.Data{}, fmt.Errorf("event %s: data: %w", e.ID(), err)
	}
	return e, data, nil
}
