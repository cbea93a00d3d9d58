package trigger_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/contract"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/natsio/cenats"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/pipeline/trigger"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
)

// Through a real JetStream stream: both modes arrive as the same Trigger, and a re-published
// binary message is de-duplicated by its Nats-Msg-Id.
func TestJetStreamEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js := natstest.JetStream(t)
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "TEST", Subjects: []string{"test.>"}})
	if err != nil {
		t.Fatal(err)
	}

	at := time.Date(2025, 11, 23, 14, 52, 7, 0, time.UTC)
	binaryTrigger := trigger.Trigger{ID: "bin-1", Source: "/e2e", Type: "ad.group.created", Time: at, Traceparent: traceparent,
		Tenant: "default", Directory: "Corp AD", Domain: "corp.example.com", Group: "proj-alpha-admins"}
	structuredTrigger := trigger.Trigger{ID: "str-1", Source: "/e2e", Type: contract.TypeSyncRequested, Time: at,
		Directory: "Corp AD – Zürich", Reason: "e2e"}
	want := map[string]trigger.Trigger{binaryTrigger.ID: binaryTrigger, structuredTrigger.ID: structuredTrigger}

	be, err := trigger.NewEvent(binaryTrigger)
	if err != nil {
		t.Fatal(err)
	}
	binMsg, err := cenats.EncodeBinary("test.trigger.corp", be)
	if err != nil {
		t.Fatal(err)
	}
	se, err := trigger.NewEvent(structuredTrigger)
	if err != nil {
		t.Fatal(err)
	}
	strMsg, err := cenats.EncodeStructured("test.trigger.corp", se)
	if err != nil {
		t.Fatal(err)
	}

	for i, m := range []*nats.Msg{binMsg, strMsg, binMsg} {
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if wantDup := i == 2; ack.Duplicate != wantDup {
			t.Errorf("publish %d: duplicate = %v, want %v", i, ack.Duplicate, wantDup)
		}
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("stream holds %d messages, want 2 (the re-publish de-duplicated)", info.State.Msgs)
	}

	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "e2e", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	d := newDecoder(t)
	got := 0
	for msg := range batch.Messages() {
		got++
		tr, err := d.Decode(msg.Headers(), msg.Data())
		if err != nil {
			t.Fatalf("decode %s: %v", msg.Headers().Get(nats.MsgIdHdr), err)
		}
		if tr != want[tr.ID] {
			t.Errorf("got  %+v\nwant %+v", tr, want[tr.ID])
		}
		delete(want, tr.ID)
		if err := msg.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Error(); err != nil {
		t.Fatal(err)
	}
	if got != 2 || len(want) != 0 {
		t.Errorf("received %d messages; not received: %v", got, want)
	}
}
