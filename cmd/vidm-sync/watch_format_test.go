package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
)

func TestFormatLineSaysWhatHappened(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	expires := at.Add(72 * time.Hour)
	ev := func(typ string, data any) event.Event {
		e := event.New()
		e.SetID("e1")
		e.SetType(typ)
		e.SetSource("urn:test")
		e.SetTime(at)
		if err := e.SetData(event.ApplicationJSON, data); err != nil {
			t.Fatal(err)
		}
		return e
	}
	failover := contract.Data{Tenant: "corp", DirectoryName: "Corp AD", RunID: "r1", Status: "COMPLETED", Triggers: []contract.Trigger{{ID: "t1"}},
		Connector: "c2", Attempts: []contract.Attempt{{Connector: "c1", Status: "FAILED"}, {Connector: "c2", Status: "COMPLETED"}}}
	delegated := contract.Data{Tenant: "vcf", DirectoryName: "OktaDirectory", RunID: "r2", Status: "DELEGATED",
		Delegation: &contract.Delegation{Kind: "SCIM", Provider: "Okta", TokenExpiresAt: &expires}}
	page := contract.Data{Tenant: "default", DirectoryName: "Corp AD", RunID: "r3", Status: "COMPLETED",
		Triggers: []contract.Trigger{{ID: "t1"}, {ID: "t2"}}, Page: 2, Pages: 7, TriggerCount: 10000}
	warning := contract.TokenWarningData{Tenant: "vcf", Provider: "Okta", ExpiresAt: expires, Message: "renew it"}
	tests := []struct {
		name string
		e    event.Event
		want string
	}{
		{"failover", ev(contract.TypeCompleted, failover),
			`2026-11-23T10:00:00Z completed tenant=corp directory="Corp AD" status=COMPLETED run=r1 triggers=1 attempts=c1:FAILED>c2:COMPLETED`},
		{"delegated", ev(contract.TypeCompleted, delegated),
			`2026-11-23T10:00:00Z completed tenant=vcf directory="OktaDirectory" status=DELEGATED run=r2 triggers=0 delegated=SCIM provider="Okta" token_expires=2026-11-26T10:00:00Z`},
		{"page of a large run", ev(contract.TypeCompleted, page),
			`2026-11-23T10:00:00Z completed tenant=default directory="Corp AD" status=COMPLETED run=r3 triggers=2 page=2/7 run_triggers=10000`},
		{"warning", ev(contract.TypeSyncClientTokenExpiring, warning),
			`2026-11-23T10:00:00Z warning tenant=vcf provider="Okta" token_expires=2026-11-26T10:00:00Z: renew it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d contract.Data
			if err := json.Unmarshal(tt.e.Data(), &d); err != nil {
				t.Fatal(err)
			}
			if got := formatLine(tt.e, d); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			if strings.Contains(formatLine(tt.e, d), "\n") {
				t.Fatal("not one line")
			}
		})
	}
}
