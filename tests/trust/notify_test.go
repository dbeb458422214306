package trust_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
	"github.com/twokey/twokey/notify"
)

// hookSecret is the webhook target's signing secret in these tests (the
// Standard Webhooks spec's example secret).
const hookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// hookHit is one delivery attempt a hookReceiver saw.
type hookHit struct {
	id, typ, request string
	valid            bool
	raw              string // headers and body, for the secret grep
}

// hookReceiver is a webhook receiver on loopback whose answer the test
// sets: hang (hold the attempt until released), fail (503) or accept.
type hookReceiver struct {
	*httptest.Server
	mu      sync.Mutex
	hits    []hookHit
	mode    string // "hang", "fail" or "ok"
	release chan struct{}
	arrived chan struct{} // one value per attempt
}

func newHookReceiver(t *testing.T, mode string) *hookReceiver {
	h := &hookReceiver{mode: mode, release: make(chan struct{}), arrived: make(chan struct{}, 1000)}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var ev notify.Event
		_ = json.Unmarshal(body, &ev)
		hit := hookHit{id: r.Header.Get(notify.HeaderID), typ: ev.Type,
			valid: notify.Verify(hookSecret, r.Header, body, time.Now(), 5*time.Minute) == nil}
		if ev.Data.Request != nil {
			hit.request = ev.Data.Request.ID
		}
		var raw strings.Builder
		_ = r.Header.Write(&raw)
		raw.Write(body)
		hit.raw = raw.String()
		h.mu.Lock()
		h.hits = append(h.hits, hit)
		mode := h.mode
		h.mu.Unlock()
		h.arrived <- struct{}{}
		switch mode {
		case "hang":
			select {
			case <-h.release:
			case <-r.Context().Done():
			}
			w.WriteHeader(http.StatusServiceUnavailable)
		case "fail":
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(func() {
		close(h.release)
		h.Close()
	})
	return h
}

func (h *hookReceiver) setMode(m string) {
	h.mu.Lock()
	h.mode = m
	h.mu.Unlock()
}

func (h *hookReceiver) seen() []hookHit {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookHit(nil), h.hits...)
}

// hookConfig writes a twokey.yaml with one json target at url covering
// every conversation and every event, and returns --config's argument.
func hookConfig(t *testing.T, dir, url string) []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "twokey.yaml")
	yaml := "public_url: https://twokey.example.com\nnotifications:\n" +
		"  - name: trust-hook\n    url: " + url + "/hook\n    format: json\n    conversations: [\"*\"]\n" +
		"    events: [request.created, request.approved_by, request.executed, request.failed, request.rejected, request.expired, request.cancelled]\n" +
		"    secret: " + hookSecret + "\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--config", path}
}

// TestNotificationSurvivesKill9: a notification committed with its record
// and in flight to a receiver that hangs is not lost when the server is
// killed (kill -9): after the restart it is delivered, signed, with the
// webhook-id of the first attempt, and the request's later events follow
// it in order. No payload carries the API key, a header value or a body.
func TestNotificationSurvivesKill9(t *testing.T) {
	t.Parallel()
	up := testutil.NewUpstream(t)
	rcv := newHookReceiver(t, "hang")
	dir := t.TempDir()
	cfg := hookConfig(t, dir, rcv.URL)
	p := startProc(t, dir, up, cfg...)
	alice, bob := testutil.Identity(t, "alice"), testutil.Identity(t, "bob")
	ca, cb := client.New(p.url, alice), client.New(p.url, bob)
	ctx := testutil.Ctx(t)
	conv := mustConv(t, ca, "hooks", []conversation.Member{{Name: "bob", Key: bob.KeyID()}})
	if _, err := ca.EnableGate(ctx, conv, 2, nil); err != nil {
		t.Fatal(err)
	}
	const apiKey = "sk_trust_hook_9d2f61c0"
	if _, err := ca.AddSecret(ctx, conv, "httpbin", "", "", 0, []byte(apiKey)); err != nil {
		t.Fatal(err)
	}
	rid := client.NewID()
	if _, err := ca.Submit(ctx, conv, gate.RequestPayload{RequestID: rid, Template: "httpbin.headers", Service: "httpbin", Method: "GET",
		URL: up.URL + "/httpbin/headers", Headers: map[string]string{"X-Trace": "trace-value-77"},
		ExpiresAt: conversation.FormatTime(time.Now().Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-rcv.arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the receiver never got the request.created notification")
	}
	first := rcv.seen()[0]
	if first.typ != "request.created" || first.request != rid || !first.valid || first.id == "" {
		t.Fatalf("first attempt: %+v, want a validly signed request.created for %s", first, rid)
	}

	// Killed while the attempt is in flight: the event was committed but
	// never acknowledged by the receiver.
	p.kill()
	rcv.setMode("ok")
	p = startProc(t, dir, up, cfg...)
	ca, cb = client.New(p.url, alice), client.New(p.url, bob)
	if _, _, err := cb.Vote(ctx, conv, rid, true, ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		hits := rcv.seen()
		var types []string
		var createdIDs []string
		for _, h := range hits[1:] {
			types = append(types, h.typ)
			if h.typ == "request.created" {
				createdIDs = append(createdIDs, h.id)
			}
		}
		if strings.Contains(strings.Join(types, " "), "request.executed") {
			if len(createdIDs) == 0 || createdIDs[0] != first.id {
				t.Fatalf("after the restart request.created came with ids %v, want the first attempt's %s", createdIDs, first.id)
			}
			// Per request, in order: created before approved_by before executed.
			order := map[string]int{}
			for i, ty := range types {
				if _, ok := order[ty]; !ok {
					order[ty] = i
				}
			}
			if !(order["request.created"] < order["request.approved_by"] && order["request.approved_by"] < order["request.executed"]) {
				t.Fatalf("deliveries after the restart out of order: %v", types)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart the receiver got %v, never request.executed", types)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, h := range rcv.seen() {
		if !h.valid {
			t.Errorf("delivery %s (%s) has no valid signature", h.id, h.typ)
		}
		for _, secret := range []string{apiKey, "trace-value-77", "X-Trace"} {
			if strings.Contains(h.raw, secret) {
				t.Errorf("delivery %s (%s) carries %q:\n%s", h.id, h.typ, secret, h.raw)
			}
		}
		if h.typ == "request.created" && !strings.Contains(h.raw, "https://twokey.example.com/#/c/"+conv+"/r/"+rid) {
			t.Errorf("request.created has no deep link to the request:\n%s", h.raw)
		}
	}
	if strings.Contains(p.errs.String(), apiKey) || strings.Contains(p.errs.String(), hookSecret) {
		t.Error("the server's log carries the API key or the webhook secret")
	}
}
