package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/config"
)

// fakeHooks is a webhookAdmin in memory, for the HTTP layer alone: the
// notifier's own tests and the server tests through the real one
// (webhooks_test.go) hold the rest. Test posts to the target's URL.
type fakeHooks struct {
	mu      sync.Mutex
	targets map[string]api.Webhook
	n       int
	asked   []string // state and limit of each Deliveries call
}

func (f *fakeHooks) Targets() []api.Webhook {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []api.Webhook
	for _, h := range f.targets {
		out = append(out, h)
	}
	// The real notifier lists targets by name; so does the fake, or the
	// test would depend on map order.
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (f *fakeHooks) Target(name string) (api.Webhook, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.targets[name]
	if !ok {
		return h, twokey.Errorf(twokey.ENotFound, "no webhook target %q", name)
	}
	return h, nil
}

func (f *fakeHooks) secret() string {
	f.n++
	return "whsec_fake" + strconv.Itoa(f.n) + "c2VjcmV0c2VjcmV0c2VjcmV0"
}

func (f *fakeHooks) Create(in api.WebhookCreate) (api.WebhookSecret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.targets[in.Name]; ok {
		return api.WebhookSecret{}, twokey.Errorf(twokey.EDuplicateRequest, "a webhook target %q exists", in.Name)
	}
	h := api.Webhook{Name: in.Name, URL: in.URL, Format: in.Format, Conversations: in.Conversations, Events: in.Events, Detail: in.Detail, Source: "api"}
	if h.Format == "" {
		h.Format = api.WebhookJSON
	}
	if h.Detail == "" {
		h.Detail = api.DetailSummary
	}
	f.targets[in.Name] = h
	return api.WebhookSecret{Webhook: h, Secret: f.secret()}, nil
}

func (f *fakeHooks) Update(name string, in api.WebhookUpdate) (api.WebhookSecret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.targets[name]
	if !ok {
		return api.WebhookSecret{}, twokey.Errorf(twokey.ENotFound, "no webhook target %q", name)
	}
	if in.URL != nil {
		h.URL = *in.URL
	}
	if in.Events != nil {
		h.Events = *in.Events
	}
	f.targets[name] = h
	out := api.WebhookSecret{Webhook: h}
	if in.RotateSecret {
		out.Secret = f.secret()
	}
	return out, nil
}

func (f *fakeHooks) Delete(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.targets[name]; !ok {
		return twokey.Errorf(twokey.ENotFound, "no webhook target %q", name)
	}
	delete(f.targets, name)
	return nil
}

func (f *fakeHooks) Test(ctx context.Context, name string) (api.WebhookDelivery, error) {
	h, err := f.Target(name)
	if err != nil {
		return api.WebhookDelivery{}, err
	}
	d := api.WebhookDelivery{ID: "msg_test", Target: name, Event: "webhook.test", State: api.DeliveryDead, Attempts: 1, CreatedAt: time.Now()}
	req, _ := http.NewRequestWithContext(ctx, "POST", h.URL, strings.NewReader(`{"type":"webhook.test"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.LastError = err.Error()
		return d, nil
	}
	resp.Body.Close()
	d.LastStatus, d.DoneAt = resp.StatusCode, time.Now()
	if resp.StatusCode/100 == 2 {
		d.State = api.DeliveryDelivered
	}
	return d, nil
}

func (f *fakeHooks) Deliveries(name, state string, limit int) ([]api.WebhookDelivery, error) {
	if _, err := f.Target(name); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, state+"/"+strconv.Itoa(limit))
	return nil, nil
}

// syncBuf is a log buffer safe for the server's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestWebhookEndpointsHTTP drives every webhook endpoint of a real server
// over HTTP with a fake notifier: the routes, strict bodies, the statuses
// (201 on create, 404 while no notifier runs), the query's checks, and
// that a secret is in the create and rotate answers only, never in
// another answer or the log.
func TestWebhookEndpointsHTTP(t *testing.T) {
	const key = "mgmt-key-for-webhook-tests"
	c := config.Default()
	c.Addr, c.DataDir, c.Management.Key = "127.0.0.1:0", filepath.Join(t.TempDir(), "data"), key
	var logs syncBuf
	d, err := Start(c, Deps{Out: io.Discard, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	do := func(method, path string, body any) (int, []byte) {
		t.Helper()
		var rd io.Reader
		switch b := body.(type) {
		case nil:
		case string:
			rd = strings.NewReader(b)
		default:
			j, _ := json.Marshal(b)
			rd = bytes.NewReader(j)
		}
		req, _ := http.NewRequest(method, d.URL()+path, rd)
		req.Header.Set("X-Management-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, data
	}

	// No notifier: every route answers 404, and says why.
	d.op.hooks = nil
	for _, r := range [][2]string{{"GET", ""}, {"POST", ""}, {"GET", "/a"}, {"PATCH", "/a"}, {"DELETE", "/a"}, {"POST", "/a/test"}, {"GET", "/a/deliveries"}} {
		status, body := do(r[0], "/v0/management/webhooks"+r[1], nil)
		if status != 404 || !strings.Contains(string(body), "webhook notifications are not running on this server") {
			t.Errorf("%s %s without a notifier: %d %s", r[0], r[1], status, body)
		}
	}

	fake := &fakeHooks{targets: map[string]api.Webhook{}}
	d.op.hooks = fake
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			w.WriteHeader(503)
		}
	}))
	defer recv.Close()

	if status, body := do("GET", "/v0/management/webhooks", nil); status != 200 || string(body) != "{\"webhooks\":[]}\n" {
		t.Fatalf("empty list: %d %s", status, body)
	}
	if status, body := do("POST", "/v0/management/webhooks", `{"name":"a","url":"x","colour":"red"}`); status != 400 || !strings.Contains(string(body), `unknown field \"colour\"`) {
		t.Fatalf("unknown field: %d %s", status, body)
	}
	status, body := do("POST", "/v0/management/webhooks", api.WebhookCreate{Name: "a", URL: recv.URL + "/ok", Conversations: []string{"*"}})
	var made api.WebhookSecret
	if err := json.Unmarshal(body, &made); status != 201 || err != nil || made.Secret == "" || made.Name != "a" {
		t.Fatalf("create: %d %s", status, body)
	}
	if status, body := do("POST", "/v0/management/webhooks", api.WebhookCreate{Name: "a", URL: recv.URL}); status != 409 {
		t.Fatalf("create twice: %d %s", status, body)
	}
	status, body = do("GET", "/v0/management/webhooks", nil)
	var list api.WebhookList
	if err := json.Unmarshal(body, &list); status != 200 || err != nil || len(list.Webhooks) != 1 || strings.Contains(string(body), "secret\"") {
		t.Fatalf("list: %d %s", status, body)
	}
	if status, body := do("GET", "/v0/management/webhooks/a", nil); status != 200 || strings.Contains(string(body), made.Secret) {
		t.Fatalf("get: %d %s", status, body)
	}
	if status, body := do("GET", "/v0/management/webhooks/nope", nil); status != 404 || !strings.Contains(string(body), `no webhook target \"nope\"`) {
		t.Fatalf("get unknown: %d %s", status, body)
	}

	// Update: strict too; a change that is no rotation answers no secret.
	if status, body := do("PATCH", "/v0/management/webhooks/a", `{"rotate":true}`); status != 400 {
		t.Fatalf("update with an unknown field: %d %s", status, body)
	}
	if status, body := do("PATCH", "/v0/management/webhooks/a", `{"grace":"1h"}`); status != 400 || !strings.Contains(string(body), "rotate_secret") {
		t.Fatalf("grace without a rotation: %d %s", status, body)
	}
	status, body = do("PATCH", "/v0/management/webhooks/a", `{"events":["request.created"]}`)
	if status != 200 || strings.Contains(string(body), `"secret"`) || !strings.Contains(string(body), `"events":["request.created"]`) {
		t.Fatalf("update: %d %s", status, body)
	}
	status, body = do("PATCH", "/v0/management/webhooks/a", api.WebhookUpdate{RotateSecret: true, Grace: "1h"})
	var rotated api.WebhookSecret
	if err := json.Unmarshal(body, &rotated); status != 200 || err != nil || rotated.Secret == "" || rotated.Secret == made.Secret {
		t.Fatalf("rotate: %d %s", status, body)
	}

	// Test: 200 with the delivery, whatever the receiver answered.
	status, body = do("POST", "/v0/management/webhooks/a/test", nil)
	var del api.WebhookDelivery
	if err := json.Unmarshal(body, &del); status != 200 || err != nil || del.State != api.DeliveryDelivered || del.LastStatus != 200 {
		t.Fatalf("test: %d %s", status, body)
	}
	do("PATCH", "/v0/management/webhooks/a", api.WebhookUpdate{URL: ptr(recv.URL + "/down")})
	status, body = do("POST", "/v0/management/webhooks/a/test", nil)
	if err := json.Unmarshal(body, &del); status != 200 || err != nil || del.State != api.DeliveryDead || del.LastStatus != 503 {
		t.Fatalf("test of a receiver that fails: %d %s", status, body)
	}

	// Deliveries: state and limit checked here, passed on as given.
	for q, want := range map[string]int{"": 200, "?state=dead&limit=5": 200, "?state=lost": 400, "?limit=0": 400, "?limit=1001": 400, "?limit=x": 400} {
		if status, body := do("GET", "/v0/management/webhooks/a/deliveries"+q, nil); status != want {
			t.Errorf("deliveries%s: %d %s, want %d", q, status, body, want)
		} else if status == 200 && string(body) != "{\"deliveries\":[]}\n" {
			t.Errorf("deliveries%s: %s", q, body)
		}
	}
	if got := strings.Join(fake.asked, " "); got != "/50 dead/5" {
		t.Errorf("the notifier was asked %q, want the default limit 50 then dead/5", got)
	}

	if status, body := do("DELETE", "/v0/management/webhooks/a", nil); status != 200 || string(body) != "{\"deleted\":\"a\"}\n" {
		t.Fatalf("delete: %d %s", status, body)
	}
	if status, _ := do("DELETE", "/v0/management/webhooks/a", nil); status != 404 {
		t.Fatalf("delete twice: %d", status)
	}

	l := logs.String()
	for _, s := range []string{made.Secret, rotated.Secret, recv.URL} {
		if strings.Contains(l, s) {
			t.Errorf("the log holds %q:\n%s", s, l)
		}
	}
	for _, s := range []string{"webhook target created", "webhook target changed", "webhook target tested", "webhook target deleted"} {
		if !strings.Contains(l, s) {
			t.Errorf("the log lacks %q", s)
		}
	}
}

func ptr[T any](v T) *T { return &v }
