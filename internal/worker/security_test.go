package worker_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/control"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/ops/doctor"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natsdev"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/natstest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/poll"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/vidmsim"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/testkit/workertest"
	"github.com/vidm-sync-worker/vidm-sync-worker/internal/worker"
)

// TestLeastPrivilegeTLSDeployment runs the worker against a server started from the shipped
// deploy/nats/nats-server.conf, with TLS and a password from a file: the worker's user suffices
// for the whole job, the pipeline's user can publish triggers but not forge results, and no
// password reaches the logs.
func TestLeastPrivilegeTLSDeployment(t *testing.T) {
	const workerPass, pipelinePass, readerPass = "w0rker-Pass-91", "p1peline-Pass-22", "r3ader-Pass-53"
	t.Setenv("WORKER_PASSWORD", workerPass)
	t.Setenv("PIPELINE_PASSWORD", pipelinePass)
	t.Setenv("READER_PASSWORD", readerPass)
	dir := t.TempDir()
	cert, certPEM, err := vidmsim.SelfSignedCert("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "nats-ca.pem")
	passFile := filepath.Join(dir, "nats-password")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(passFile, []byte(workerPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The shipped tls {} block reads the server's certificate and key from these files.
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NATS_TLS_CERT", certFile)
	t.Setenv("NATS_TLS_KEY", keyFile)
	ns := natstest.Server(t, natsdev.Options{StoreDir: filepath.Join(dir, "js"), ConfigFile: "../../deploy/nats/nats-server.conf"})
	connect := func(user, pass string, opts ...nats.Option) (*nats.Conn, error) {
		return nats.Connect(ns.URL(), append([]nats.Option{nats.UserInfo(user, pass), nats.RootCAs(caFile), nats.MaxReconnects(0)}, opts...)...)
	}
	if nc, err := nats.Connect(ns.URL(), nats.UserInfo("pipeline", pipelinePass), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("a client that does not trust the server's CA connected")
	}
	if nc, err := connect("pipeline", "wrong"); err == nil {
		nc.Close()
		t.Fatal("a wrong password was accepted")
	}
	// Each user with its own inbox prefix, as deploy/nats/nats-server.conf gives it; the async
	// errors (permission violations) are kept to be checked.
	violations := make(chan string, 64)
	onErr := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case violations <- err.Error():
		default:
		}
	})
	pipeline, err := connect("pipeline", pipelinePass, nats.CustomInboxPrefix("_INBOX_pipeline"), onErr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pipeline.Close)
	sc := simConfig(100 * time.Millisecond)
	kit := workertest.Start(t, workertest.Options{Sim: &sc, NATSURL: ns.URL(), Env: map[string]string{
		"NATS_USER": "vidm-sync-worker", "NATS_PASSWORD_FILE": passFile, "NATS_CA_FILE": caFile, "LOG_LEVEL": "debug",
		"ADMIN_TOKEN": adminToken, "ADMIN_READ_TOKEN": readToken, "INGRESS_ENABLED": "true", "INGRESS_TOKEN": "ingress-Tk5-of-at-least-32-characters",
		"NATS_INBOX_PREFIX": "_INBOX_vidm_sync_worker",
	}, Conn: []nats.Option{nats.UserInfo("project-mapper", readerPass), nats.RootCAs(caFile), nats.MaxReconnects(0),
		nats.CustomInboxPrefix("_INBOX_project_mapper"), onErr}})
	pjs, _ := jetstream.New(pipeline)
	rjs := kit.JS

	h := &harness{Stack: kit, t: t}
	ingressLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := h.RunWorker("secured", worker.WithIngressListener(ingressLn))

	// The pipeline user publishes triggers once the worker has created the stream.
	var id string
	poll.Until(t, 15*time.Second, "the pipeline user to publish a trigger", func() bool {
		e, msg := h.triggerMsg(group("corp.example.com", "secured"))
		if _, err := pjs.PublishMsg(context.Background(), msg); err != nil {
			return false
		}
		id = e
		return true
	})
	h.waitReported(20*time.Second, id)

	// vidm-sync-worker check, as the worker's user, finds every permission the worker needs, and
	// as the pipeline's (which may not even ask for its own) says it could not check them.
	rep := doctor.Run(context.Background(), kit.Cfg, doctor.Options{Timeout: 5 * time.Second})
	if c := natsCheck(t, rep, "permissions"); c.Status != doctor.OK || !rep.OK {
		t.Errorf("check as the worker's user: %+v (report OK %t)", c, rep.OK)
	}
	asPipeline := kit.Cfg
	asPipeline.NATSUser, asPipeline.NATSPassword, asPipeline.NATSInboxPrefix = "pipeline", pipelinePass, "_INBOX_pipeline"
	if c := natsCheck(t, doctor.Run(context.Background(), asPipeline, doctor.Options{Timeout: 2 * time.Second}), "permissions"); c.Status != doctor.Skip {
		t.Errorf("check as the pipeline's user: %+v, want not checked", c)
	}

	// The admin API and the ingress work with the worker user's permissions alone.
	base := w.AdminURL + "/api/v1"
	corp := base + "/directories/default/" + corpID
	callJSON(t, "GET", base+"/directories", readToken, nil, http.StatusOK, nil)
	callJSON(t, "GET", base+"/dead-letters", readToken, nil, http.StatusOK, nil)
	callJSON(t, "GET", corp+"/runs", readToken, nil, http.StatusOK, nil)
	callJSON(t, "POST", corp+"/pause", adminToken, nil, http.StatusOK, nil)
	callJSON(t, "POST", corp+"/resume", adminToken, nil, http.StatusOK, nil)
	callJSON(t, "POST", base+"/dead-letters/redrive", adminToken, nil, http.StatusOK, nil)
	var req control.SyncRequest
	callJSON(t, "POST", corp+"/sync?queue=true", adminToken, nil, http.StatusAccepted, &req)
	h.waitReported(20*time.Second, req.EventID)
	ireq, err := http.NewRequestWithContext(context.Background(), "POST", "http://"+ingressLn.Addr().String()+"/events?wait=20s",
		strings.NewReader(`{"specversion":"1.0","id":"sec-1","source":"urn:test","type":"ad.group.created","data":{"domain":"corp.example.com","group":{"name":"g"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	ireq.Header.Set("Authorization", "Bearer ingress-Tk5-of-at-least-32-characters")
	ireq.Header.Set("Content-Type", "application/cloudevents+json")
	iresp, err := http.DefaultClient.Do(ireq)
	if err != nil {
		t.Fatal(err)
	}
	iresp.Body.Close()
	if iresp.StatusCode != http.StatusOK {
		t.Fatalf("ingress as the worker user: %d", iresp.StatusCode)
	}

	// The pipeline user cannot forge a result or write the worker's state.
	for _, subj := range []string{"dirsync.result.completed", "$KV.DIRSYNC_PENDING.default.x.y"} {
		pctx, pcancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := pjs.Publish(pctx, subj, []byte(`{}`))
		pcancel()
		if err == nil {
			t.Errorf("pipeline user published to %s", subj)
		}
	}
	attackTheDeployment(t, ns.URL(), caFile, workerPass, pjs, rjs, pipeline, violations)
	w.Stop() // fails the test if the worker returns an error
	for _, s := range []string{workerPass, pipelinePass, readerPass} {
		if strings.Contains(h.Logs.String(), s) {
			t.Fatalf("a NATS password appeared in the worker's logs")
		}
	}
}

// attackTheDeployment tries, as the publishers' and the readers' users, what the shipped
// permissions are there to stop, and checks that the operator's durable still works for its
// reader and that the account's JetStream limits apply.
func attackTheDeployment(t *testing.T, url, caFile, workerPass string, pjs, rjs jetstream.JetStream, pipeline *nats.Conn, violations <-chan string) {
	t.Helper()
	ctx := context.Background()
	// The operator creates the project-mapping service's durable (here as the worker's user).
	wnc, err := nats.Connect(url, nats.UserInfo("vidm-sync-worker", workerPass), nats.RootCAs(caFile),
		nats.CustomInboxPrefix("_INBOX_vidm_sync_worker"), nats.MaxReconnects(0))
	if err != nil {
		t.Fatal(err)
	}
	defer wnc.Close()
	wjs, _ := jetstream.New(wnc)
	durable := jetstream.ConsumerConfig{Durable: "project-mapper", FilterSubject: "dirsync.result.>", AckPolicy: jetstream.AckExplicitPolicy}
	if _, err := wjs.CreateConsumer(ctx, "DIRSYNC_RESULTS", durable); err != nil {
		t.Fatalf("creating the downstream durable: %v", err)
	}
	attempt := func(what string, f func(context.Context) error) {
		t.Helper()
		// A refused request has no answer: it ends at this timeout.
		actx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := f(actx); err == nil {
			t.Errorf("%s: allowed", what)
		}
	}
	for name, js := range map[string]jetstream.JetStream{"pipeline": pjs, "project-mapper": rjs} {
		emptied := durable
		emptied.FilterSubject = "nothing.at.all"
		attempt(name+" re-filters the downstream durable", func(c context.Context) error {
			_, err := js.UpdateConsumer(c, "DIRSYNC_RESULTS", emptied)
			return err
		})
		attempt(name+" deletes the downstream durable", func(c context.Context) error {
			return js.DeleteConsumer(c, "DIRSYNC_RESULTS", "project-mapper")
		})
		attempt(name+" reads the dead letters", func(c context.Context) error {
			_, err := js.OrderedConsumer(c, "DIRSYNC_DEAD", jetstream.OrderedConsumerConfig{})
			return err
		})
	}
	attempt("pipeline pulls from the downstream durable", func(c context.Context) error {
		cons, err := pjs.Consumer(c, "DIRSYNC_RESULTS", "project-mapper")
		if err != nil {
			return nil // not even its info: refused too
		}
		_, err = cons.Next(jetstream.FetchMaxWait(500 * time.Millisecond))
		return err
	})
	if info, err := wjs.Consumer(ctx, "DIRSYNC_RESULTS", "project-mapper"); err != nil || info.CachedInfo().Config.FilterSubject != "dirsync.result.>" {
		t.Fatalf("the downstream durable after the attacks: %v", err)
	}
	// Its reader still pulls and acknowledges through it.
	cons, err := rjs.Consumer(ctx, "DIRSYNC_RESULTS", "project-mapper")
	if err != nil {
		t.Fatalf("the reader binds its durable: %v", err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for m := range batch.Messages() {
		got++
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatalf("the reader acknowledges: %v", err)
		}
	}
	if got != 1 {
		t.Fatalf("the reader fetched %d results through its durable (%v)", got, batch.Error())
	}

	// Nobody reads another user's replies: the pipeline cannot subscribe to the default inbox
	// prefix or to the worker's.
	for _, subj := range []string{"_INBOX.>", "_INBOX_vidm_sync_worker.>", "_INBOX_project_mapper.>"} {
		if _, err := pipeline.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		_ = pipeline.Flush()
		deadline := time.Now().Add(5 * time.Second)
		for refused := false; !refused; {
			select {
			case v := <-violations:
				refused = strings.Contains(v, "ermissions") && strings.Contains(v, subj)
			case <-time.After(time.Until(deadline)):
				t.Fatalf("the pipeline user subscribed to %s", subj)
			}
		}
	}

	// The account's JetStream limits apply to every user.
	ai, err := pjs.AccountInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ai.Limits.MaxStore != 10e9 || ai.Limits.MaxMemory != 64e6 || ai.Limits.MaxStreams != 16 || ai.Limits.MaxConsumers != 512 {
		t.Fatalf("account limits %+v", ai.Limits)
	}
}

func natsCheck(t *testing.T, rep doctor.Report, name string) doctor.Check {
	t.Helper()
	for _, c := range rep.NATS.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no NATS check %q in %+v", name, rep.NATS.Checks)
	return doctor.Check{}
}
