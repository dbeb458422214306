package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/store"
	"github.com/twokey/twokey/vault"
)

// The spec's test vector (Standard Webhooks, "Signature scheme").
const (
	specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTS     = 1614265330
	specBody   = `{"test": 2432232314}`
	specSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignSpecVector(t *testing.T) {
	sig, err := Sign(specSecret, specID, specTS, []byte(specBody))
	if err != nil || sig != specSig {
		t.Fatalf("Sign = %q, %v; want %q", sig, err, specSig)
	}
	h := http.Header{}
	h.Set(HeaderID, specID)
	h.Set(HeaderTimestamp, "1614265330")
	h.Set(HeaderSignature, "v1,bm90IGl0 "+specSig) // a rotation's two: one matches
	now := time.Unix(specTS, 0).Add(2 * time.Minute)
	if err := Verify(specSecret, h, []byte(specBody), now, 5*time.Minute); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := Verify(specSecret, h, []byte(specBody+" "), now, 5*time.Minute); err != ErrBadSignature {
		t.Fatalf("Verify of another body: %v", err)
	}
	if err := Verify(specSecret, h, []byte(specBody), now.Add(time.Hour), 5*time.Minute); err != ErrTimestamp {
		t.Fatalf("Verify an hour late: %v", err)
	}
	if err := Verify(NewSecret(), h, []byte(specBody), now, 5*time.Minute); err != ErrBadSignature {
		t.Fatalf("Verify with another secret: %v", err)
	}
	h.Del(HeaderID)
	if err := Verify(specSecret, h, []byte(specBody), now, 5*time.Minute); err != ErrNoSignature {
		t.Fatalf("Verify without id: %v", err)
	}
}

func TestEventsAreConfigs(t *testing.T) {
	if !slices.Equal(Events, config.NotificationEvents) {
		t.Fatalf("notify.Events %v != config.NotificationEvents %v", Events, config.NotificationEvents)
	}
}

// hit is one webhook a receiver got.
type hit struct {
	header http.Header
	body   []byte
}

// receiver is a loopback webhook receiver; status decides each answer.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	hits   []hit
	status atomic.Int32
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.status.Store(200)
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.hits = append(r.hits, hit{req.Header.Clone(), b})
		r.mu.Unlock()
		w.WriteHeader(int(r.status.Load()))
		w.Write([]byte("thanks"))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) got() []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hits)
}

// fixture is a notifier over a real bbolt store on a fake clock.
type fixture struct {
	t      *testing.T
	dir    string
	st     store.Store
	seal   Sealer
	clk    *clock.Fake
	n      *Notifier
	cfg    Config
	closed bool
}

func newFixture(t *testing.T, targets ...config.Notification) *fixture {
	t.Helper()
	key := bytes.Repeat([]byte{7}, 32)
	v, err := vault.New(key)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, dir: t.TempDir(), seal: v, clk: clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))}
	f.cfg = Config{Sealer: v, Clock: f.clk, PublicURL: "https://twokey.example/", Targets: targets}
	f.open()
	t.Cleanup(f.close)
	return f
}

func (f *fixture) open() {
	f.t.Helper()
	st, err := store.Open(filepath.Join(f.dir, "twokey.db"), time.Second)
	if err != nil {
		f.t.Fatal(err)
	}
	f.st = st
	f.cfg.Store = st
	n, err := New(f.cfg)
	if err != nil {
		st.Close()
		f.t.Fatal(err)
	}
	f.n, f.closed = n, false
}

func (f *fixture) close() {
	if f.closed {
		return
	}
	f.closed = true
	f.n.Close()
	f.st.Close()
}

// quiet waits until nothing is in flight or due.
func (f *fixture) quiet() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.n.Quiet(ctx); err != nil {
		f.t.Fatalf("notifier never quiet: %v", err)
	}
}

// conv is a conversation of alice, bob and carol, signers at M 2.
func conv() (*conversation.State, gate.Config) {
	st := &conversation.State{ID: "c-1", Name: "ops", Members: []conversation.Member{
		{Key: "ed25519:alice", Name: "alice"}, {Key: "ed25519:bob", Name: "bob"}, {Key: "ed25519:carol", Name: "carol"}}}
	return st, gate.Config{Enabled: true, Signers: []string{"ed25519:alice", "ed25519:bob", "ed25519:carol"}, RequiredApprovals: 2}
}

func request(id string, approvals ...string) *gate.Request {
	return &gate.Request{ID: id, Conversation: "c-1", Submitter: "ed25519:alice", Signers: []string{"ed25519:alice", "ed25519:bob", "ed25519:carol"},
		Required: 2, Approvals: approvals, Rejections: []string{}, State: gate.StatePending,
		ExpiresAt: time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC),
		Payload:   gate.RequestPayload{RequestID: id, Service: "httpbin", Method: "get", URL: "https://httpbin.example/anything/42", Params: map[string]string{"n": "42"}}}
}

func record(kind, author string, body any) conversation.Record {
	b, _ := json.Marshal(body)
	return conversation.Record{Kind: kind, Author: author, Body: b}
}

// commit runs one commit of records through the tap as the engine does:
// Puts, the store's commit with them, Committed.
func (f *fixture) commit(reqs []*gate.Request, recs ...conversation.Record) {
	f.t.Helper()
	st, g := conv()
	c := &engine.Commit{Time: f.clk.Now(), Before: st, After: st, GateBefore: g, GateAfter: g, Records: recs, Requests: reqs}
	puts := f.n.Puts(c)
	if err := f.st.Commit(&store.Write{Puts: puts}); err != nil {
		f.t.Fatal(err)
	}
	f.n.Committed(c)
}

func (f *fixture) submit(id string) {
	f.commit([]*gate.Request{request(id, "ed25519:alice")}, record(conversation.KindGateRequest, "ed25519:alice", map[string]string{"request_id": id}))
}

func (f *fixture) outbox() int {
	n := 0
	f.st.ForEach(store.Outbox, func(string, []byte) error { n++; return nil })
	return n
}

func (f *fixture) create(name, url string, events ...string) string {
	f.t.Helper()
	ws, err := f.n.Create(api.WebhookCreate{Name: name, URL: url, Events: events})
	if err != nil {
		f.t.Fatal(err)
	}
	return ws.Secret
}

func decodeEvent(t *testing.T, h hit) Event {
	t.Helper()
	var ev Event
	if err := json.Unmarshal(h.body, &ev); err != nil {
		t.Fatalf("body %s: %v", h.body, err)
	}
	return ev
}

// TestRetrySameID: a receiver's error is retried after the backoff, on
// the fake clock, with the same webhook-id and a fresh valid signature.
func TestRetrySameID(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t)
	secret := f.create("ops", rcv.URL)
	rcv.status.Store(500)
	f.submit("r-1")
	f.quiet()
	if got := len(rcv.got()); got != 1 {
		t.Fatalf("%d attempts before the backoff, want 1", got)
	}
	ds, _ := f.n.Deliveries("ops", api.DeliveryQueued, 0)
	if len(ds) != 1 || ds[0].Attempts != 1 || ds[0].LastStatus != 500 || !strings.Contains(ds[0].LastError, "answered 500: thanks") {
		t.Fatalf("queued: %+v", ds)
	}
	wait := ds[0].NextAt.Sub(f.clk.Now())
	if wait < 3750*time.Millisecond || wait > 5*time.Second {
		t.Fatalf("first retry in %s, want 5s less up to a quarter", wait)
	}
	f.clk.Advance(wait - time.Millisecond)
	f.quiet()
	if got := len(rcv.got()); got != 1 {
		t.Fatalf("retried before its time")
	}
	f.clk.Advance(time.Millisecond)
	f.quiet()
	rcv.status.Store(204)
	f.clk.Advance(time.Hour)
	f.quiet()
	hits := rcv.got()
	if len(hits) != 3 {
		t.Fatalf("%d attempts, want 3", len(hits))
	}
	for _, h := range hits {
		if h.header.Get(HeaderID) != hits[0].header.Get(HeaderID) {
			t.Fatalf("ids differ: %s, %s", h.header.Get(HeaderID), hits[0].header.Get(HeaderID))
		}
		ts := h.header.Get(HeaderTimestamp)
		if err := Verify(secret, h.header, h.body, f.clk.Now(), 2*time.Hour); err != nil {
			t.Fatalf("attempt at %s: %v", ts, err)
		}
		if ev := decodeEvent(t, h); ev.ID != h.header.Get(HeaderID) {
			t.Fatalf("body id %s, header %s", ev.ID, h.header.Get(HeaderID))
		}
	}
	if f.outbox() != 0 {
		t.Fatal("the outbox still holds a delivered notification")
	}
	ds, _ = f.n.Deliveries("ops", "", 0)
	if len(ds) != 1 || ds[0].State != api.DeliveryDelivered || ds[0].Attempts != 3 || ds[0].LastStatus != 204 {
		t.Fatalf("deliveries: %+v", ds)
	}
	if m := gather(t, f.n); m[`twokey_webhook_deliveries_total{failed,ops}`] != 2 || m[`twokey_webhook_deliveries_total{delivered,ops}`] != 1 {
		t.Fatalf("deliveries_total does not count 2 failed, 1 delivered: %v", m)
	}
}

// TestDeadLetter: a receiver that never answers 2xx is given up after 24
// hours of retries, and the notification moves to the history as dead.
func TestDeadLetter(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t)
	f.create("ops", rcv.URL)
	rcv.status.Store(503)
	start := f.clk.Now()
	f.submit("r-1")
	f.quiet()
	for i := 0; i < 30 && f.outbox() > 0; i++ {
		f.clk.Advance(time.Hour)
		f.quiet()
	}
	if f.outbox() != 0 {
		t.Fatal("still queued after 30 hours")
	}
	ds, _ := f.n.Deliveries("ops", api.DeliveryDead, 0)
	if len(ds) != 1 || ds[0].LastStatus != 503 {
		t.Fatalf("dead: %+v", ds)
	}
	if d := ds[0].DoneAt.Sub(start); d > 24*time.Hour || d < 23*time.Hour {
		t.Fatalf("given up after %s, want within the last hour of 24h", d)
	}
	if n := len(rcv.got()); n != ds[0].Attempts || n < 20 || n > 40 {
		t.Fatalf("%d attempts (recorded %d)", n, ds[0].Attempts)
	}
	if w, _ := f.n.Target("ops"); w.Dead != 1 || w.Queued != 0 {
		t.Fatalf("target: %+v", w)
	}
}

// TestOrderPerRequest: with the receiver down, then up, every event of a
// request arrives in the order it happened, though four workers run.
func TestOrderPerRequest(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t)
	f.create("ops", rcv.URL, RequestCreated, RequestApprovedBy, RequestExecuted)
	rcv.status.Store(502)
	for _, id := range []string{"a", "b", "c"} {
		f.submit(id)
	}
	for _, id := range []string{"a", "b", "c"} {
		r := request(id, "ed25519:alice", "ed25519:bob")
		r.State = gate.StateExecuting
		f.commit([]*gate.Request{r}, record(conversation.KindGateApprove, "ed25519:bob", map[string]string{"request_id": id}))
		done := r.Clone()
		done.State, done.Result = gate.StateExecuted, &gate.Result{Status: 200}
		f.commit([]*gate.Request{done}, record(conversation.KindGateExecuted, "gw", map[string]string{"request_id": id}))
	}
	f.quiet()
	if n := len(rcv.got()); n != 3 {
		t.Fatalf("%d attempts while down, want 3 (one per request: the others wait behind it)", n)
	}
	rcv.status.Store(200)
	f.clk.Advance(time.Hour)
	f.quiet()
	var seen = map[string][]string{}
	var ids = map[string]bool{}
	for _, h := range rcv.got()[3:] {
		ev := decodeEvent(t, h)
		seen[ev.Data.Request.ID] = append(seen[ev.Data.Request.ID], ev.Type)
		ids[ev.ID] = true
	}
	for _, id := range []string{"a", "b", "c"} {
		if want := []string{RequestCreated, RequestApprovedBy, RequestExecuted}; !slices.Equal(seen[id], want) {
			t.Errorf("request %s: %v, want %v", id, seen[id], want)
		}
	}
	if len(ids) != 9 || f.outbox() != 0 {
		t.Fatalf("%d distinct deliveries, %d left in the outbox", len(ids), f.outbox())
	}
}

// TestHangingReceiverDoesNotBlock: a receiver that holds every connection
// open delays neither the tap (the engine's commits) nor another target.
func TestHangingReceiverDoesNotBlock(t *testing.T) {
	f := newFixture(t)
	release := make(chan struct{})
	var holding atomic.Int32
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		holding.Add(1)
		defer holding.Add(-1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) }) // runs first: the handlers return
	fast := newReceiver(t)
	f.create("hang", hang.URL)
	f.create("fast", fast.URL)
	begin := time.Now()
	for i := range 10 {
		f.submit(string(rune('a' + i)))
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Fatalf("10 commits took %s with a hanging receiver", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(fast.got()) < 10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(fast.got()); n != 10 {
		t.Fatalf("the other target got %d of 10", n)
	}
	if h := holding.Load(); h != DefaultWorkers {
		t.Fatalf("the hanging receiver holds %d connections, want the %d workers", h, DefaultWorkers)
	}
	if w, _ := f.n.Target("hang"); w.Queued != 10 {
		t.Fatalf("hang queue %d, want 10", w.Queued)
	}
}

// TestRestartResumes: notifications committed but not sent (a crash
// right after the commit), and one that failed once, are delivered after
// a restart, with their ids; the secret survives, sealed.
func TestRestartResumes(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t)
	secret := f.create("ops", rcv.URL)
	rcv.status.Store(500)
	f.submit("r-1")
	f.quiet()
	first := rcv.got()[0].header.Get(HeaderID)
	// A crash between the commit and Committed: in the outbox only.
	st, g := conv()
	c := &engine.Commit{Time: f.clk.Now(), Before: st, After: st, GateBefore: g, GateAfter: g, Requests: []*gate.Request{request("r-2")},
		Records: []conversation.Record{record(conversation.KindGateRequest, "ed25519:alice", map[string]string{"request_id": "r-2"})}}
	if err := f.st.Commit(&store.Write{Puts: f.n.Puts(c)}); err != nil {
		t.Fatal(err)
	}
	var second string
	f.st.ForEach(store.Outbox, func(k string, v []byte) error {
		e, err := decodeEntry(k, v)
		if err != nil {
			t.Fatal(err)
		}
		if requestID(&e.Event) == "r-2" {
			second = e.Event.ID
		}
		return nil
	})
	f.close()
	rcv.status.Store(200)
	f.open()
	f.quiet() // r-2 was due: sent at once; r-1 waits for its backoff
	f.clk.Advance(time.Hour)
	f.quiet()
	got := map[string]bool{}
	for _, h := range rcv.got()[1:] {
		if err := Verify(secret, h.header, h.body, f.clk.Now(), 2*time.Hour); err != nil {
			t.Fatal(err)
		}
		got[h.header.Get(HeaderID)] = true
	}
	if len(got) != 2 || !got[first] || !got[second] {
		t.Fatalf("after the restart: %v; want %s and %s", got, first, second)
	}
	// The order counter goes on past the keys found.
	f.submit("r-3")
	f.quiet()
	ds, _ := f.n.Deliveries("ops", "", 0)
	if len(ds) != 3 || requestID(&Event{Data: Data{Request: &Request{ID: ds[0].Request}}}) != "r-3" {
		t.Fatalf("deliveries after restart: %+v", ds)
	}
}

// TestNoRedirectNoBigRead: a redirect is not followed, and a receiver's
// answer is read to 4 KiB at most: an endless one does not hold the
// attempt, and what is kept of an error is clipped.
func TestNoRedirectNoBigRead(t *testing.T) {
	f := newFixture(t)
	var stolen atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { stolen.Add(1) }))
	t.Cleanup(other.Close)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/stolen", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirect.Close)
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(endless.Close)
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		w.Write(bytes.Repeat([]byte("y"), 1<<20))
	}))
	t.Cleanup(huge.Close)
	f.create("redirect", redirect.URL)
	f.create("endless", endless.URL)
	f.create("huge", huge.URL)
	f.submit("r-1")
	f.quiet()
	if stolen.Load() != 0 {
		t.Fatal("the redirect was followed")
	}
	ds, _ := f.n.Deliveries("redirect", "", 0)
	if len(ds) != 1 || ds[0].State != api.DeliveryQueued || ds[0].LastStatus != 307 || !strings.Contains(ds[0].LastError, "redirects are not followed") {
		t.Fatalf("redirect: %+v", ds)
	}
	ds, _ = f.n.Deliveries("endless", "", 0)
	if len(ds) != 1 || ds[0].State != api.DeliveryDelivered {
		t.Fatalf("endless answer: %+v", ds)
	}
	ds, _ = f.n.Deliveries("huge", "", 0)
	if len(ds) != 1 || ds[0].LastStatus != 500 || len(ds[0].LastError) > 200 {
		t.Fatalf("huge error: %d bytes kept: %+v", len(ds[0].LastError), ds)
	}
}

// TestTargetsAPI: create, update (rotation with a grace: both secrets
// sign), test-send, delete (its queue goes too); twokey.yaml's targets
// are read-only, and a yaml target without a secret gets one, sealed.
func TestTargetsAPI(t *testing.T) {
	rcv := newReceiver(t)
	f := newFixture(t, config.Notification{Name: "yaml", URL: rcv.URL, Format: "ntfy"})
	ws, err := f.n.Create(api.WebhookCreate{Name: "ops", URL: rcv.URL, Conversations: []string{"ops"}})
	if err != nil || !strings.HasPrefix(ws.Secret, "whsec_") || ws.Format != api.WebhookJSON || ws.Detail != api.DetailSummary || ws.Source != "api" {
		t.Fatalf("create: %+v, %v", ws, err)
	}
	for _, bad := range []api.WebhookCreate{{Name: "ops", URL: rcv.URL}, {Name: "Bad!", URL: rcv.URL}, {Name: "x", URL: "ftp://x"},
		{Name: "x", URL: rcv.URL, Events: []string{"nope"}}, {Name: "yaml", URL: rcv.URL}} {
		if _, err := f.n.Create(bad); twokey.ErrorCode(err) != twokey.EBadPayload {
			t.Errorf("create %+v: %v", bad, err)
		}
	}
	if _, err := f.n.Update("yaml", api.WebhookUpdate{URL: &rcv.URL}); twokey.ErrorCode(err) != twokey.EForbidden || !strings.Contains(err.Error(), "twokey.yaml") {
		t.Fatalf("update of a yaml target: %v", err)
	}
	if err := f.n.Delete("yaml"); twokey.ErrorCode(err) != twokey.EForbidden {
		t.Fatalf("delete of a yaml target: %v", err)
	}
	if _, err := f.n.Target("nope"); twokey.ErrorCode(err) != twokey.ENotFound {
		t.Fatalf("missing target: %v", err)
	}
	yamlSecret, err := f.n.Update("yaml", api.WebhookUpdate{RotateSecret: true, Grace: "0"})
	if err != nil || yamlSecret.Secret == "" {
		t.Fatalf("rotate a yaml target's made secret: %+v %v", yamlSecret, err)
	}
	rot, err := f.n.Update("ops", api.WebhookUpdate{RotateSecret: true, Grace: "1h"})
	if err != nil || rot.Secret == "" || rot.Secret == ws.Secret || !rot.PreviousSecretUntil.Equal(f.clk.Now().Add(time.Hour)) {
		t.Fatalf("rotate: %+v %v", rot, err)
	}
	d, err := f.n.Test(context.Background(), "ops")
	if err != nil || d.State != api.DeliveryDelivered || d.Event != WebhookTest {
		t.Fatalf("test-send: %+v %v", d, err)
	}
	h := rcv.got()[0]
	if sigs := strings.Fields(h.header.Get(HeaderSignature)); len(sigs) != 2 {
		t.Fatalf("during the grace: %v", sigs)
	}
	for _, s := range []string{ws.Secret, rot.Secret} {
		if err := Verify(s, h.header, h.body, f.clk.Now(), time.Minute); err != nil {
			t.Fatalf("a secret does not verify during the grace: %v", err)
		}
	}
	// The secrets survive a restart, sealed (not in the file in clear).
	f.close()
	f.open()
	f.clk.Advance(2 * time.Hour)
	if _, err := f.n.Test(context.Background(), "yaml"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.n.Test(context.Background(), "ops"); err != nil {
		t.Fatal(err)
	}
	hits := rcv.got()
	if err := Verify(yamlSecret.Secret, hits[1].header, hits[1].body, f.clk.Now(), time.Minute); err != nil || hits[1].header.Get("Title") == "" {
		t.Fatalf("yaml target after restart: %v %v", err, hits[1].header)
	}
	if sigs := strings.Fields(hits[2].header.Get(HeaderSignature)); len(sigs) != 1 || Verify(rot.Secret, hits[2].header, hits[2].body, f.clk.Now(), time.Minute) != nil {
		t.Fatalf("after the grace: %v", sigs)
	}
	var raw []string
	f.st.ForEach(store.Webhooks, func(k string, v []byte) error { raw = append(raw, string(v)); return nil })
	for _, s := range []string{ws.Secret, rot.Secret, yamlSecret.Secret} {
		if strings.Contains(strings.Join(raw, ""), strings.TrimPrefix(s, "whsec_")) {
			t.Fatal("a secret is stored in clear")
		}
	}
	// Events for another conversation are not queued; for ops they are.
	rcv.status.Store(500)
	f.submit("r-1")
	f.quiet()
	if w, _ := f.n.Target("ops"); w.Queued != 1 {
		t.Fatalf("ops queue %d", w.Queued)
	}
	if _, err := f.n.Update("ops", api.WebhookUpdate{Conversations: &[]string{"other"}}); err != nil {
		t.Fatal(err)
	}
	f.submit("r-2")
	if w, _ := f.n.Target("ops"); w.Queued != 1 || !slices.Equal(w.Conversations, []string{"other"}) {
		t.Fatalf("after the update: %+v", w)
	}
	if err := f.n.Delete("ops"); err != nil {
		t.Fatal(err)
	}
	left := 0
	for _, b := range []string{store.Outbox, store.Deliveries} {
		f.st.ForEach(b, func(k string, _ []byte) error {
			if strings.HasPrefix(k, "ops/") {
				left++
			}
			return nil
		})
	}
	if left != 0 {
		t.Fatalf("%d keys of the deleted target left", left)
	}
	if names := f.n.Targets(); len(names) != 1 || names[0].Name != "yaml" {
		t.Fatalf("targets: %+v", names)
	}
}

// TestFormats: the slack message has a button to the deep link; the ntfy
// one Title, Priority and Click; json carries the link and, only with
// detail full, the params and URL.
func TestFormats(t *testing.T) {
	rcv := newReceiver(t)
	f := newFixture(t, config.Notification{Name: "slack", URL: rcv.URL + "/slack", Format: "slack"},
		config.Notification{Name: "ntfy", URL: rcv.URL + "/ntfy", Format: "ntfy"},
		config.Notification{Name: "full", URL: rcv.URL + "/full", Detail: "full"},
		config.Notification{Name: "summary", URL: rcv.URL + "/summary"})
	f.submit("r-1")
	f.quiet()
	link := "https://twokey.example/#/c/c-1/r/r-1"
	byPath := map[string]hit{}
	rcv.mu.Lock()
	hits := slices.Clone(rcv.hits)
	rcv.mu.Unlock()
	if len(hits) != 4 {
		t.Fatalf("%d hits", len(hits))
	}
	for _, h := range hits {
		switch {
		case h.header.Get("Title") != "":
			byPath["ntfy"] = h
		case bytes.Contains(h.body, []byte(`"blocks"`)):
			byPath["slack"] = h
		case bytes.Contains(h.body, []byte(`"params"`)):
			byPath["full"] = h
		default:
			byPath["summary"] = h
		}
	}
	var slack struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type     string `json:"type"`
			Elements []struct {
				URL string `json:"url"`
			} `json:"elements"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(byPath["slack"].body, &slack); err != nil || len(slack.Blocks) != 2 || slack.Blocks[1].Elements[0].URL != link ||
		!strings.Contains(slack.Text, "alice asks for GET on httpbin; 1 of 2 approvals; waiting on bob, carol") {
		t.Fatalf("slack: %s %v", byPath["slack"].body, err)
	}
	nh := byPath["ntfy"].header
	if nh.Get("Click") != link || nh.Get("Priority") != "4" || nh.Get("Title") != "Approval needed in ops" || !strings.Contains(string(byPath["ntfy"].body), "waiting on bob, carol") {
		t.Fatalf("ntfy: %v %s", nh, byPath["ntfy"].body)
	}
	full, sum := decodeEvent(t, byPath["full"]), decodeEvent(t, byPath["summary"])
	if full.Data.URL != "https://httpbin.example/anything/42" || full.Data.Params["n"] != "42" || full.Data.Link != link {
		t.Fatalf("full: %s", byPath["full"].body)
	}
	if sum.Data.URL != "" || sum.Data.Params != nil || bytes.Contains(byPath["summary"].body, []byte("anything/42")) {
		t.Fatalf("summary carries detail: %s", byPath["summary"].body)
	}
	r := sum.Data.Request
	if sum.Type != RequestCreated || sum.Version != 1 || sum.Data.Conversation != (Conversation{"c-1", "ops"}) || r.K != 1 || r.M != 2 ||
		!slices.Equal(r.WaitingOn, []string{"bob", "carol"}) || !slices.Equal(r.Approvals, []string{"alice"}) || r.Method != "GET" {
		t.Fatalf("summary: %s", byPath["summary"].body)
	}
}

// TestQuorumAtRisk: a membership change leaving no more signers than the
// highest M of a rule notifies; one leaving room does not.
func TestQuorumAtRisk(t *testing.T) {
	g := gate.Config{Enabled: true, Signers: []string{"a", "b", "c"}, RequiredApprovals: 1,
		Rules: []gate.Rule{{Service: "stripe", Endpoint: "*", Method: "POST", RequiredApprovals: 3}}}
	q := atRisk(g)
	if q == nil || q.HighestM != 3 || q.Rule != "stripe POST *" || q.Signers != 3 {
		t.Fatalf("3 signers, a rule of 3: %+v", q)
	}
	g.Rules[0].RequiredApprovals = 2
	if q := atRisk(g); q != nil {
		t.Fatalf("3 signers, M at most 2: %+v", q)
	}
}

// gather reads n's metrics as NAME{VALUES} -> value, labels by name (result before target).
func gather(t *testing.T, n *Notifier) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(n.Collector())
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, fam := range fams {
		for _, m := range fam.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			out[fam.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	rcv := newReceiver(t)
	f.create("ops", rcv.URL)
	rcv.status.Store(500)
	f.submit("r-1")
	f.quiet()
	f.clk.Advance(3 * time.Second) // before the first retry (3.75 s at the soonest)
	f.quiet()
	m := gather(t, f.n)
	if m["twokey_webhook_queued{ops}"] != 1 || m["twokey_webhook_oldest_queued_seconds{ops}"] != 3 || m["twokey_webhook_deliveries_total{failed,ops}"] != 1 {
		t.Fatalf("metrics: %v", m)
	}
}
