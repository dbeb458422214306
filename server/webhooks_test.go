package server_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/config"
	"github.com/twokey/twokey/internal/testutil"
)

// receiver is a webhook receiver on loopback: it keeps what it was sent
// and answers 503 on /down, 200 elsewhere.
type receiver struct {
	*httptest.Server
	mu  sync.Mutex
	got []received
}

type received struct {
	path   string
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{req.URL.Path, req.Header.Clone(), body})
		r.mu.Unlock()
		if req.URL.Path == "/down" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(r.Close)
	return r
}

// last returns the last notification of type typ, waiting up to 10 s.
func (r *receiver) last(t *testing.T, typ string) received {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		r.mu.Lock()
		for i := len(r.got) - 1; i >= 0; i-- {
			var ev struct{ Type string }
			if json.Unmarshal(r.got[i].body, &ev) == nil && ev.Type == typ {
				r.mu.Unlock()
				return r.got[i]
			}
		}
		r.mu.Unlock()
	}
	t.Fatalf("the receiver got no %s", typ)
	return received{}
}

// signedBy reports which of secrets signed got, as Standard Webhooks
// says, computed here rather than by notify: v1,base64(HMAC-SHA256(key,
// id.timestamp.body)) for each space-separated signature.
func signedBy(t *testing.T, got received, secrets ...string) []bool {
	t.Helper()
	id, ts := got.header.Get("webhook-id"), got.header.Get("webhook-timestamp")
	if id == "" || ts == "" {
		t.Fatalf("no webhook-id or webhook-timestamp: %v", got.header)
	}
	sigs := strings.Fields(got.header.Get("webhook-signature"))
	out := make([]bool, len(secrets))
	for i, s := range secrets {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
		if err != nil || !strings.HasPrefix(s, "whsec_") {
			t.Fatalf("secret %q is not whsec_ and base64", s)
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id + "." + ts + "."))
		m.Write(got.body)
		want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
		for _, sig := range sigs {
			out[i] = out[i] || hmac.Equal([]byte(sig), []byte(want))
		}
	}
	return out
}

// TestWebhookTargetsThroughTheAPI drives the management API's webhook
// endpoints of a real server, its notifier and a real receiver: the
// secret made at create signs what the receiver gets (checked here, not
// by notify) and is answered only then; a request made in the
// conversation reaches the receiver and its deliveries; test answers the
// receiver's status, 200 or 503; a rotation signs with both secrets for
// the grace; a twokey.yaml target is read-only but for its secret; bodies
// are strict; and no secret is ever in another answer or the server's log.
func TestWebhookTargetsThroughTheAPI(t *testing.T) {
	recv := newReceiver(t)
	g := newGate(t, 1, 1, withMgmt(), func(o *testutil.Options) {
		o.Notifications = []config.Notification{{Name: "from-yaml", URL: recv.URL + "/yaml", Conversations: []string{"nosuch"}}}
	})
	var secrets []string
	noSecret := func(what string, body []byte) {
		t.Helper()
		if strings.Contains(string(body), "whsec_") {
			t.Errorf("%s holds a secret: %s", what, body)
		}
	}

	r := g.mgmt(t, "POST", "/v0/management/webhooks", api.WebhookCreate{Name: "ops-hook", URL: recv.URL + "/ok",
		Conversations: []string{"ops"}, Events: []string{"request.created", "request.executed"}})
	var made api.WebhookSecret
	if r.json(t, &made); r.status != 201 || !strings.HasPrefix(made.Secret, "whsec_") || made.Name != "ops-hook" ||
		made.Format != api.WebhookJSON || made.Source != "api" {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	secrets = append(secrets, made.Secret)
	if r := g.mgmt(t, "POST", "/v0/management/webhooks", map[string]any{"name": "x", "url": recv.URL, "secret": "whsec_AAAA"}); r.status != 400 || r.code() != "bad_payload" {
		t.Fatalf("a create with an unknown field (secret): %d %s", r.status, r.body)
	}
	if r := g.mgmt(t, "POST", "/v0/management/webhooks", api.WebhookCreate{Name: "ops-hook", URL: recv.URL}); r.status < 400 {
		t.Fatalf("a second target of one name: %d %s", r.status, r.body)
	}

	r = g.mgmt(t, "GET", "/v0/management/webhooks", nil)
	var list api.WebhookList
	if r.json(t, &list); r.status != 200 || len(list.Webhooks) != 2 || list.Webhooks[0].Name != "from-yaml" || list.Webhooks[0].Source != "config" ||
		list.Webhooks[1].Name != "ops-hook" {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	noSecret("the list", r.body)
	if r := g.mgmt(t, "GET", "/v0/management/webhooks/ops-hook", nil); r.status != 200 {
		t.Fatalf("get: %d %s", r.status, r.body)
	} else {
		noSecret("GET", r.body)
	}
	if r := g.mgmt(t, "GET", "/v0/management/webhooks/nope", nil); r.status != 404 || r.code() != "not_found" {
		t.Fatalf("get of no target: %d %s", r.status, r.body)
	}

	// A request in ops reaches the receiver, signed with the secret shown.
	id := g.submit(t, 0, "/get", time.Hour)
	got := recv.last(t, "request.created")
	if got.path != "/ok" || !signedBy(t, got, made.Secret)[0] {
		t.Fatalf("request.created at %s, signature %q: not made with the secret shown", got.path, got.header.Get("webhook-signature"))
	}
	if !strings.Contains(string(got.body), id) {
		t.Errorf("request.created does not name request %s: %s", id, got.body)
	}

	// test: sent now, answered with the receiver's status.
	r = g.mgmt(t, "POST", "/v0/management/webhooks/ops-hook/test", nil)
	var d api.WebhookDelivery
	if r.json(t, &d); r.status != 200 || d.State != api.DeliveryDelivered || d.LastStatus != 200 || d.Attempts != 1 || d.Event != "webhook.test" {
		t.Fatalf("test: %d %s", r.status, r.body)
	}
	if got := recv.last(t, "webhook.test"); got.header.Get("webhook-id") != d.ID || !signedBy(t, got, made.Secret)[0] {
		t.Fatalf("webhook.test: id %q (answered %q), not signed with the secret shown", got.header.Get("webhook-id"), d.ID)
	}

	// Deliveries, newest first: the test, then the request.
	r = g.mgmt(t, "GET", "/v0/management/webhooks/ops-hook/deliveries", nil)
	var ds api.WebhookDeliveries
	if r.json(t, &ds); r.status != 200 || len(ds.Deliveries) < 2 || ds.Deliveries[0].Event != "webhook.test" {
		t.Fatalf("deliveries: %d %s", r.status, r.body)
	}
	noSecret("deliveries", r.body)
	found := false
	for _, x := range ds.Deliveries {
		found = found || (x.Event == "request.created" && x.Request == id)
	}
	if !found {
		t.Errorf("no request.created of %s in the deliveries: %s", id, r.body)
	}
	for _, q := range []string{"?state=lost", "?limit=0", "?limit=1001"} {
		if r := g.mgmt(t, "GET", "/v0/management/webhooks/ops-hook/deliveries"+q, nil); r.status != 400 {
			t.Errorf("deliveries%s: %d %s", q, r.status, r.body)
		}
	}

	// A receiver that fails: the test is answered 200, dead with its 503.
	down := recv.URL + "/down"
	if r := g.mgmt(t, "PATCH", "/v0/management/webhooks/ops-hook", api.WebhookUpdate{URL: &down}); r.status != 200 {
		t.Fatalf("update: %d %s", r.status, r.body)
	} else {
		noSecret("an update that rotates nothing", r.body)
	}
	r = g.mgmt(t, "POST", "/v0/management/webhooks/ops-hook/test", nil)
	if r.json(t, &d); r.status != 200 || d.State != api.DeliveryDead || d.LastStatus != 503 {
		t.Fatalf("test of a receiver that fails: %d %s", r.status, r.body)
	}
	r = g.mgmt(t, "GET", "/v0/management/webhooks/ops-hook/deliveries?state=dead&limit=1", nil)
	if r.json(t, &ds); len(ds.Deliveries) != 1 || ds.Deliveries[0].ID != d.ID || ds.Deliveries[0].LastStatus != 503 {
		t.Fatalf("dead deliveries: %s", r.body)
	}
	ok := recv.URL + "/ok"
	if r := g.mgmt(t, "PATCH", "/v0/management/webhooks/ops-hook", map[string]any{"url": ok, "colour": "red"}); r.status != 400 {
		t.Fatalf("an update with an unknown field: %d %s", r.status, r.body)
	}
	g.mgmt(t, "PATCH", "/v0/management/webhooks/ops-hook", api.WebhookUpdate{URL: &ok})

	// Rotate: a new secret, once; both sign during the grace.
	r = g.mgmt(t, "PATCH", "/v0/management/webhooks/ops-hook", api.WebhookUpdate{RotateSecret: true, Grace: "1h"})
	var rot api.WebhookSecret
	if r.json(t, &rot); r.status != 200 || !strings.HasPrefix(rot.Secret, "whsec_") || rot.Secret == made.Secret || rot.PreviousSecretUntil.IsZero() {
		t.Fatalf("rotate: %d %s", r.status, r.body)
	}
	secrets = append(secrets, rot.Secret)
	g.mgmt(t, "POST", "/v0/management/webhooks/ops-hook/test", nil)
	if by := signedBy(t, recv.last(t, "webhook.test"), made.Secret, rot.Secret); !by[0] || !by[1] {
		t.Fatalf("during the grace: signed by the old secret %v, the new %v", by[0], by[1])
	}
	r = g.mgmt(t, "PATCH", "/v0/management/webhooks/ops-hook", api.WebhookUpdate{RotateSecret: true, Grace: "0"})
	var rot2 api.WebhookSecret
	r.json(t, &rot2)
	secrets = append(secrets, rot2.Secret)
	g.mgmt(t, "POST", "/v0/management/webhooks/ops-hook/test", nil)
	if by := signedBy(t, recv.last(t, "webhook.test"), rot.Secret, rot2.Secret); by[0] || !by[1] {
		t.Fatalf("grace 0: signed by the previous secret %v, the new %v", by[0], by[1])
	}

	// A twokey.yaml target: its secret rotates here, nothing else.
	if r := g.mgmt(t, "PATCH", "/v0/management/webhooks/from-yaml", api.WebhookUpdate{URL: &ok}); r.status != 403 {
		t.Fatalf("update of a yaml target: %d %s", r.status, r.body)
	}
	if r := g.mgmt(t, "DELETE", "/v0/management/webhooks/from-yaml", nil); r.status != 403 {
		t.Fatalf("delete of a yaml target: %d %s", r.status, r.body)
	}
	r = g.mgmt(t, "PATCH", "/v0/management/webhooks/from-yaml", api.WebhookUpdate{RotateSecret: true})
	var yrot api.WebhookSecret
	if r.json(t, &yrot); r.status != 200 || !strings.HasPrefix(yrot.Secret, "whsec_") {
		t.Fatalf("rotate a yaml target: %d %s", r.status, r.body)
	}
	secrets = append(secrets, yrot.Secret)

	// Delete: gone, with its deliveries.
	if r := g.mgmt(t, "DELETE", "/v0/management/webhooks/ops-hook", nil); r.status != 200 || string(r.body) != "{\"deleted\":\"ops-hook\"}\n" {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	for _, p := range []string{"", "/deliveries"} {
		if r := g.mgmt(t, "GET", "/v0/management/webhooks/ops-hook"+p, nil); r.status != 404 {
			t.Fatalf("GET%s after delete: %d %s", p, r.status, r.body)
		}
	}
	if r := g.mgmt(t, "DELETE", "/v0/management/webhooks/ops-hook", nil); r.status != 404 {
		t.Fatalf("delete twice: %d %s", r.status, r.body)
	}

	logs := g.srv.Logs()
	for _, s := range secrets {
		if strings.Contains(logs, s) || strings.Contains(logs, strings.TrimPrefix(s, "whsec_")) {
			t.Errorf("the server's log holds secret %s", s)
		}
	}
	if !strings.Contains(logs, "webhook target created") {
		t.Errorf("the log lacks the creation:\n%s", logs)
	}
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "webhook target") && strings.Contains(l, recv.URL) {
			t.Errorf("a management line names the target's URL: %s", l)
		}
	}
}

// TestWebhookEndpointsNeedTheKey: the webhook endpoints are management
// endpoints: off without a management key, 401 without the header.
func TestWebhookEndpointsNeedTheKey(t *testing.T) {
	off := testutil.StartServer(t, nil)
	if r := call(t, "GET", off.URL()+"/v0/management/webhooks", nil, nil); r.status != 404 {
		t.Fatalf("management off: %d %s", r.status, r.body)
	}
	on := testutil.StartServer(t, nil, withMgmt())
	for _, p := range []string{"GET /v0/management/webhooks", "POST /v0/management/webhooks", "POST /v0/management/webhooks/a/test",
		"GET /v0/management/webhooks/a/deliveries", "PATCH /v0/management/webhooks/a", "DELETE /v0/management/webhooks/a"} {
		method, path, _ := strings.Cut(p, " ")
		if r := call(t, method, on.URL()+path, nil, nil); r.status != 401 {
			t.Errorf("%s without the key: %d %s", p, r.status, r.body)
		}
	}
}
