package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/crypto/nacl/box"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/clock"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/engine"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
	"github.com/twokey/twokey/server"
	"github.com/twokey/twokey/store"
	"github.com/twokey/twokey/vault"
)

// post sends raw bytes as an envelope and returns status and error code.
func post(t *testing.T, url string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var eb struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal(data, &eb)
	return resp.StatusCode, eb.Error.Code
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixture is a server with a conversation of alice (admin) and bob.
type fixture struct {
	srv         *testutil.Server
	alice, bob  *conversation.Identity
	eve         *conversation.Identity
	ca, cb, ce  *client.Client
	conv        string
	messagesURL string
}

func newFixture(t *testing.T, opts ...testutil.Option) *fixture {
	f := &fixture{srv: testutil.StartServer(t, nil, opts...)}
	f.alice, f.bob, f.eve = testutil.Identity(t, "alice"), testutil.Identity(t, "bob"), testutil.Identity(t, "eve")
	f.ca = testutil.Client(f.srv.URL(), f.alice, nil)
	f.cb = testutil.Client(f.srv.URL(), f.bob, nil)
	f.ce = testutil.Client(f.srv.URL(), f.eve, nil)
	rec, err := f.ca.CreateConversation(testutil.Ctx(t), "ops", []conversation.Member{{Key: f.bob.KeyID(), Name: "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	var p conversation.CreatePayload
	_ = json.Unmarshal(rec.Body, &p)
	f.conv = p.Conversation
	f.messagesURL = f.srv.URL() + "/v1/conversations/" + f.conv + "/messages"
	return f
}

func (f *fixture) chat(t *testing.T, id *conversation.Identity, text string) conversation.Envelope {
	env, err := conversation.SignJSON(id, conversation.KindChatMessage, conversation.ChatPayload{
		Header: conversation.Header{Conversation: f.conv, CreatedAt: conversation.FormatTime(time.Now())}, Text: text})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func (f *fixture) lastSeq(t *testing.T) uint64 { return lastSeqOf(t, f.srv, f.conv) }

// lastSeqOf reads conv's last seq from the server's store.
func lastSeqOf(t *testing.T, srv *testutil.Server, conv string) uint64 {
	t.Helper()
	n, err := srv.Store().LastSeq(conv)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBadInputIsRefusedAndLosesNothing(t *testing.T) {
	f := newFixture(t)
	good := f.chat(t, f.alice, "hello")
	payload, _ := base64.StdEncoding.DecodeString(good.Payload)

	tamperedPayload := good
	tamperedPayload.Payload = base64.StdEncoding.EncodeToString(bytes.Replace(payload, []byte("hello"), []byte("hellO"), 1))

	tamperedType := good
	tamperedType.PayloadType = conversation.PayloadType(conversation.KindMemberAdd)

	otherKey := good
	otherKey.Signatures = []conversation.Signature{{KeyID: f.bob.KeyID(), Sig: good.Signatures[0].Sig}}

	padded := good
	padded.Signatures = []conversation.Signature{{KeyID: f.alice.KeyID() + "=", Sig: good.Signatures[0].Sig}}

	// A key whose id has '-' or '_' has a different spelling in the
	// standard alphabet: the same 32 bytes, another name.
	dashed := f.alice
	for !strings.ContainsAny(dashed.KeyID(), "-_") {
		dashed = testutil.Identity(t, "dashed")
	}
	std := f.chat(t, dashed, "hello")
	stdID := base64.StdEncoding.EncodeToString(dashed.Public())
	std.Signatures = []conversation.Signature{{KeyID: strings.TrimRight(stdID, "="), Sig: std.Signatures[0].Sig}}

	gw, err := f.ca.Gateway(testutil.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	addByBob, _ := conversation.SignJSON(f.bob, conversation.KindMemberAdd, conversation.MemberPayload{
		Header: conversation.Header{Conversation: f.conv, CreatedAt: conversation.FormatTime(time.Now()), Gateway: gw.SigningKey}, Key: f.eve.KeyID(), Name: "eve"})

	big := f.chat(t, f.alice, strings.Repeat("x", twokey.MaxEnvelopeBytes))

	cases := []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"signature by another key", mustJSON(t, otherKey), 400, twokey.EBadSignature},
		{"payload changed after signing", mustJSON(t, tamperedPayload), 400, twokey.EBadSignature},
		{"payloadType changed after signing", mustJSON(t, tamperedType), 400, twokey.EBadSignature},
		{"key id with padding", mustJSON(t, padded), 400, twokey.EBadEnvelope},
		{"key id in the standard alphabet", mustJSON(t, std), 400, twokey.EBadEnvelope},
		{"non-member posting", mustJSON(t, f.chat(t, f.eve, "let me in")), 403, twokey.ENotMember},
		{"non-admin adding a member", mustJSON(t, addByBob), 403, twokey.ENotAdmin},
		{"envelope over 64 KiB", mustJSON(t, big), 413, twokey.ETooLarge},
		{"not JSON", []byte(`{"payloadType":`), 400, twokey.EBadEnvelope},
		{"JSON array", []byte(`[]`), 400, twokey.EBadEnvelope},
		{"payload not base64", []byte(`{"payloadType":"application/vnd.twokey.chat.message+json","payload":"%%%","signatures":[{"keyid":"` + f.alice.KeyID() + `","sig":"AAAA"}]}`), 400, twokey.EBadEnvelope},
		{"sig not base64", []byte(`{"payloadType":"application/vnd.twokey.chat.message+json","payload":"` + good.Payload + `","signatures":[{"keyid":"` + f.alice.KeyID() + `","sig":"!!"}]}`), 400, twokey.EBadEnvelope},
		{"no signatures", []byte(`{"payloadType":"application/vnd.twokey.chat.message+json","payload":"` + good.Payload + `","signatures":[]}`), 400, twokey.EBadEnvelope},
		{"unknown payloadType", []byte(`{"payloadType":"text/plain","payload":"` + good.Payload + `","signatures":[{"keyid":"` + f.alice.KeyID() + `","sig":"` + good.Signatures[0].Sig + `"}]}`), 400, twokey.EBadEnvelope},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := f.lastSeq(t)
			status, code := post(t, f.messagesURL, tc.body)
			if status != tc.status || code != tc.code {
				t.Fatalf("got %d %s, want %d %s", status, code, tc.status, tc.code)
			}
			if after := f.lastSeq(t); after != before {
				t.Fatalf("log changed from %d to %d records", before, after)
			}
		})
	}
	// Malformed payload JSON, signed properly, at every level.
	for name, payload := range map[string]string{
		"payload not JSON":        `not json`,
		"payload is an array":     `[1,2]`,
		"duplicate key":           `{"conversation":"` + f.conv + `","created_at":"2026-01-01T00:00:00Z","text":"a","text":"b"}`,
		"case-shifted field":      `{"conversation":"` + f.conv + `","created_at":"2026-01-01T00:00:00Z","TEXT":"a"}`,
		"missing created_at":      `{"conversation":"` + f.conv + `","text":"a"}`,
		"text of the wrong type":  `{"conversation":"` + f.conv + `","created_at":"2026-01-01T00:00:00Z","text":5}`,
		"created_at in 10 min":    `{"conversation":"` + f.conv + `","created_at":"` + conversation.FormatTime(time.Now().Add(10*time.Minute)) + `","text":"a"}`,
		"nested beyond the limit": `{"conversation":"` + f.conv + `","created_at":"2026-01-01T00:00:00Z","text":"a","x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`,
		"wrong conversation":      `{"conversation":"00000000-0000-0000-0000-000000000000","created_at":"2026-01-01T00:00:00Z","text":"a"}`,
	} {
		t.Run(name, func(t *testing.T) {
			before := f.lastSeq(t)
			env := conversation.Sign(f.alice, conversation.KindChatMessage, []byte(payload))
			status, code := post(t, f.messagesURL, mustJSON(t, env))
			if status != 400 || code != twokey.EBadPayload {
				t.Fatalf("got %d %s, want 400 bad_payload", status, code)
			}
			if after := f.lastSeq(t); after != before {
				t.Fatalf("log changed")
			}
		})
	}
	// The good message still goes through after all of that.
	if status, code := post(t, f.messagesURL, mustJSON(t, good)); status != 201 {
		t.Fatalf("good message refused: %d %s", status, code)
	}
}

func sessionBody(t *testing.T, id *conversation.Identity, nonce []byte, created time.Time) []byte {
	env, err := conversation.SignJSON(id, conversation.KindSessionOpen, map[string]string{
		"created_at": conversation.FormatTime(created), "nonce": base64.StdEncoding.EncodeToString(nonce)})
	if err != nil {
		t.Fatal(err)
	}
	return mustJSON(t, env)
}

func TestSessions(t *testing.T) {
	f := newFixture(t)
	url := f.srv.URL() + "/v1/sessions"
	nonce := make([]byte, 16)
	rand.Read(nonce)
	body := sessionBody(t, f.alice, nonce, time.Now())
	if status, code := post(t, url, body); status != 201 {
		t.Fatalf("first session: %d %s", status, code)
	}
	if status, code := post(t, url, body); status != 401 || code != twokey.EUnauthorized {
		t.Fatalf("replayed nonce: %d %s, want 401 unauthorized", status, code)
	}
	rand.Read(nonce)
	if status, code := post(t, url, sessionBody(t, f.alice, nonce, time.Now().Add(-10*time.Minute))); status != 401 || code != twokey.EUnauthorized {
		t.Fatalf("10-minute-old session: %d %s, want 401", status, code)
	}
	if status, code := post(t, url, sessionBody(t, f.alice, []byte("short"), time.Now())); status != 400 || code != twokey.EBadPayload {
		t.Fatalf("short nonce: %d %s", status, code)
	}
	// A bad or missing token.
	for _, tok := range []string{"", "tk.garbage", "tk." + strings.Repeat("A", 60) + ".x"} {
		req, _ := http.NewRequest("GET", f.srv.URL()+"/v1/conversations", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("token %q: status %d, want 401", tok, resp.StatusCode)
		}
	}
}

func TestTokenForOneConversationCannotReadAnother(t *testing.T) {
	f := newFixture(t)
	ctx := testutil.Ctx(t)
	// eve founds her own conversation; alice is not in it.
	rec, err := f.ce.CreateConversation(ctx, "eve-only", nil)
	if err != nil {
		t.Fatal(err)
	}
	var p conversation.CreatePayload
	_ = json.Unmarshal(rec.Body, &p)
	_, err = f.ca.Records(ctx, p.Conversation, 0, 10)
	if twokey.ErrorCode(err) != twokey.ENotMember {
		t.Fatalf("alice read eve's conversation: %v", err)
	}
	if _, err := f.ca.Gate(ctx, p.Conversation); twokey.ErrorCode(err) != twokey.ENotMember {
		t.Fatalf("alice read eve's gate: %v", err)
	}
	list, err := f.ca.Conversations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.ID == p.Conversation {
			t.Fatal("eve's conversation is listed for alice")
		}
	}
	// And over the WebSocket.
	ws, err := f.ca.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteJSON(map[string]any{"op": "subscribe", "conversation": p.Conversation, "after": 0})
	var frame map[string]any
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := ws.ReadJSON(&frame); err != nil {
		t.Fatal(err)
	}
	if frame["op"] != "error" || frame["error"].(map[string]any)["code"] != twokey.ENotMember {
		t.Fatalf("subscribe to a foreign conversation answered %v", frame)
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	f := newFixture(t)
	ctx := testutil.Ctx(t)
	for i := 0; i < 20; i++ {
		if _, err := f.ca.Say(ctx, f.conv, fmt.Sprint("message ", i)); err != nil {
			t.Fatal(err)
		}
	}
	before, err := f.ca.Records(ctx, f.conv, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	gw1, _ := f.ca.Gateway(ctx)
	srv := f.srv.Restart(t)
	c := testutil.Client(srv.URL(), f.alice, nil)
	after, err := c.Records(ctx, f.conv, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) || len(after) != 21 {
		t.Fatalf("records: %d before restart, %d after", len(before), len(after))
	}
	for i := range before {
		if before[i].Chain != after[i].Chain || before[i].Seq != after[i].Seq {
			t.Fatalf("record %d changed across restart", i+1)
		}
	}
	gw2, _ := c.Gateway(ctx)
	if gw1.SigningKey != gw2.SigningKey || gw1.BoxKey != gw2.BoxKey {
		t.Fatal("gateway keys changed across restart")
	}
	// New messages continue the chain.
	rec, err := c.Say(ctx, f.conv, "after restart")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Seq != 22 {
		t.Fatalf("seq after restart = %d, want 22", rec.Seq)
	}
	// A reader with after=N gets exactly the records after N.
	recs, err := c.Records(ctx, f.conv, 10, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 12 || recs[0].Seq != 11 || recs[len(recs)-1].Seq != 22 {
		t.Fatalf("after=10 gave %d records from %d", len(recs), recs[0].Seq)
	}
	var seen []uint64
	fctx, cancel := testutilCtx(t, 10*time.Second)
	defer cancel()
	err = c.Follow(fctx, f.conv, 15, client.FollowOptions{}, func(r conversation.Record) error {
		seen = append(seen, r.Seq)
		if r.Seq == 22 {
			return errDone
		}
		return nil
	})
	if err != errDone {
		t.Fatal(err)
	}
	if fmt.Sprint(seen) != "[16 17 18 19 20 21 22]" {
		t.Fatalf("websocket after=15 delivered %v", seen)
	}
}

var errDone = fmt.Errorf("done")

func TestFanOut50Subscribers1000Messages(t *testing.T) {
	// 25 sockets on each of two tokens: over the default cap of 8 a token.
	f := newFixture(t, func(o *testutil.Options) { o.Limits.WebSocketsPerToken, o.Limits.WebSocketsPerMember = 25, 25 })
	// 1,000 durable posts can take a while on a loaded CI machine under the
	// race detector: the budget is generous, and a failed post ends the
	// subscribers at once rather than leaving them waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const subs, msgs = 50, 1000
	start := f.lastSeq(t)
	last := start + msgs
	var wg sync.WaitGroup
	results := make([][]uint64, subs)
	ready := make(chan struct{}, subs)
	for i := 0; i < subs; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := f.cb
			if i%2 == 0 {
				c = f.ca
			}
			ws, err := c.Dial(ctx)
			if err != nil {
				t.Error(err)
				ready <- struct{}{}
				return
			}
			defer ws.Close()
			stop := context.AfterFunc(ctx, func() { ws.Close() })
			defer stop()
			ws.WriteJSON(map[string]any{"op": "subscribe", "conversation": f.conv, "after": start})
			ready <- struct{}{}
			for {
				ws.SetReadDeadline(time.Now().Add(2 * time.Minute))
				var fr struct {
					Op     string
					Record *conversation.Record
				}
				if err := ws.ReadJSON(&fr); err != nil {
					if ctx.Err() == nil {
						t.Errorf("subscriber %d after %d records: %v", i, len(results[i]), err)
					}
					return
				}
				if fr.Op == "record" {
					results[i] = append(results[i], fr.Record.Seq)
					if fr.Record.Seq == last {
						return
					}
				}
			}
		}(i)
	}
	for i := 0; i < subs; i++ {
		<-ready
	}
	// Post over HTTP from two writers and over the WebSocket.
	var pw sync.WaitGroup
	for w := 0; w < 4; w++ {
		pw.Add(1)
		go func(w int) {
			defer pw.Done()
			for i := w; i < msgs; i += 4 {
				c := f.ca
				if i%2 == 1 {
					c = f.cb
				}
				if _, err := c.Say(ctx, f.conv, fmt.Sprint("m", i)); err != nil {
					t.Errorf("post %d: %v", i, err)
					cancel()
					return
				}
			}
		}(w)
	}
	pw.Wait()
	t.Logf("posted %d messages, last seq %d", msgs, f.lastSeq(t))
	wg.Wait()
	for i, got := range results {
		if len(got) != msgs {
			t.Fatalf("subscriber %d got %d records, want %d", i, len(got), msgs)
		}
		for j, s := range got {
			if s != start+uint64(j)+1 {
				t.Fatalf("subscriber %d: record %d has seq %d, want %d (out of order, missed or twice)", i, j, s, start+uint64(j)+1)
			}
		}
	}
}

func TestWebSocketPostAckAndError(t *testing.T) {
	f := newFixture(t)
	ctx := testutil.Ctx(t)
	ws, err := f.ca.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	env := f.chat(t, f.alice, "over the socket")
	ws.WriteJSON(map[string]any{"op": "post", "ref": "r1", "envelope": env})
	bad := f.chat(t, f.eve, "not a member")
	ws.WriteJSON(map[string]any{"op": "post", "ref": "r2", "envelope": bad})
	got := map[string]map[string]any{}
	for len(got) < 2 {
		var fr map[string]any
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if err := ws.ReadJSON(&fr); err != nil {
			t.Fatal(err)
		}
		got[fmt.Sprint(fr["ref"])] = fr
	}
	if got["r1"]["op"] != "ack" || got["r1"]["seq"].(float64) != 2 {
		t.Fatalf("post answered %v", got["r1"])
	}
	if got["r2"]["op"] != "error" || got["r2"]["error"].(map[string]any)["code"] != twokey.ENotMember {
		t.Fatalf("bad post answered %v", got["r2"])
	}
}

func TestShutdownSendsCloseFrame(t *testing.T) {
	f := newFixture(t)
	ctx := testutil.Ctx(t)
	ws, err := f.ca.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteJSON(map[string]any{"op": "subscribe", "conversation": f.conv, "after": 0})
	var fr map[string]any
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := ws.ReadJSON(&fr); err != nil {
		t.Fatal(err)
	}
	f.srv.Stop(t)
	for {
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Fatalf("connection ended with %v, want a going-away close frame", err)
		}
		return
	}
}

func testutilCtx(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func TestLimitsAreRefusedClearly(t *testing.T) {
	f := newFixture(t)
	ctx := testutil.Ctx(t)
	// Text over its limit (the envelope itself fits in 64 KiB).
	_, err := f.ca.Say(ctx, f.conv, strings.Repeat("x", twokey.MaxTextBytes+1))
	if twokey.ErrorCode(err) != twokey.ETooLarge || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("long text: %v", err)
	}
	// Members over the limit.
	var ms []conversation.Member
	for i := 0; i < twokey.MaxMembers; i++ {
		ms = append(ms, conversation.Member{Key: testutil.Identity(t, "m").KeyID(), Name: fmt.Sprint("m", i)})
	}
	if _, err := f.ca.CreateConversation(ctx, "crowd", ms); twokey.ErrorCode(err) != twokey.ETooLarge {
		t.Fatalf("%d members: %v", len(ms)+1, err)
	}
	// A page over the limit.
	if _, err := f.ca.Records(ctx, f.conv, 0, twokey.MaxPageRecords+1); twokey.ErrorCode(err) != twokey.ETooLarge {
		t.Fatalf("page of %d: %v", twokey.MaxPageRecords+1, err)
	}
	// A name over its limit.
	if _, err := f.ca.CreateConversation(ctx, strings.Repeat("n", twokey.MaxNameBytes+1), nil); twokey.ErrorCode(err) != twokey.ETooLarge {
		t.Fatalf("long name: %v", err)
	}
}

// readFrame reads one JSON frame, failing the test after 5 s.
func readFrame(t *testing.T, ws *websocket.Conn) map[string]any {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var fr map[string]any
	if err := ws.ReadJSON(&fr); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return fr
}

func frameCode(fr map[string]any) string {
	e, _ := fr["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func TestSessionNonceThatIsNotBase64(t *testing.T) {
	f := newFixture(t)
	for _, nonce := range []string{"not base64 at all!!!!!!!!", "AAAAAAAAAAAAAAAAAAAAAA", "AAAA-AAAA_AAAAAAAAAAAAAA", ""} {
		env, err := conversation.SignJSON(f.alice, conversation.KindSessionOpen, map[string]string{
			"created_at": conversation.FormatTime(time.Now()), "nonce": nonce})
		if err != nil {
			t.Fatal(err)
		}
		if status, code := post(t, f.srv.URL()+"/v1/sessions", mustJSON(t, env)); status != 400 || code != twokey.EBadPayload {
			t.Errorf("nonce %q: %d %s, want 400 bad_payload", nonce, status, code)
		}
	}
}

// TestSessionNoncesArePruned: a nonce is remembered for twice the session
// window after its created_at and then deleted, by the ticker on the
// server's clock and at start; a replay inside the window is refused all
// along, and one after it is stale.
func TestSessionNoncesArePruned(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	srv := testutil.StartServer(t, nil, testutil.WithClock(clk))
	alice := testutil.Identity(t, "alice")
	url := srv.URL() + "/v1/sessions"
	open := func(nonce []byte, created time.Time) (int, string) {
		return post(t, url, sessionBody(t, alice, nonce, created))
	}
	stored := func(s *testutil.Server, nonce []byte) bool {
		v, err := s.Store().Get(store.Nonces, base64.RawURLEncoding.EncodeToString(nonce))
		if err != nil {
			t.Fatal(err)
		}
		return v != nil
	}
	n1, n2 := make([]byte, 16), make([]byte, 16)
	rand.Read(n1)
	rand.Read(n2)
	if status, code := open(n1, clk.Now()); status != 201 {
		t.Fatalf("first session: %d %s", status, code)
	}
	created1 := clk.Now()
	if !stored(srv, n1) {
		t.Fatal("the nonce was not remembered")
	}
	clk.Advance(4 * time.Minute)
	if status, code := open(n2, clk.Now()); status != 201 {
		t.Fatalf("second session: %d %s", status, code)
	}
	created2 := clk.Now()
	// Inside the window the replay is refused, though the ticker has run.
	clk.Advance(twokey.SessionWindow - time.Second)
	if status, code := open(n2, created2); status != 401 || code != twokey.EUnauthorized {
		t.Fatalf("replay inside the window: %d %s, want 401", status, code)
	}
	if !stored(srv, n2) || !stored(srv, n1) {
		t.Fatal("a nonce still inside its keeping time was pruned")
	}
	// Past twice the window (and one tick) the first nonce is gone, and
	// its replay is refused as stale.
	clk.Set(created1.Add(2*twokey.SessionWindow + engine.NoncePruneEvery + time.Second))
	if stored(srv, n1) {
		t.Fatal("the ticker did not prune a nonce past its keeping time")
	}
	if !stored(srv, n2) {
		t.Fatal("the ticker pruned a nonce still inside its keeping time")
	}
	if status, code := open(n1, created1); status != 401 || code != twokey.EUnauthorized {
		t.Fatalf("replay after pruning: %d %s, want 401 (stale)", status, code)
	}
	// A restart prunes at once, before any tick.
	srv.Stop(t)
	clk.Set(created2.Add(2*twokey.SessionWindow + time.Second))
	srv = srv.Restart(t)
	if stored(srv, n2) {
		t.Fatal("a restart did not prune a nonce past its keeping time")
	}
}

// TestWebSocketBadFramesAreAnsweredAndLoseNothing: each bad frame gets an
// error frame (with its ref when it had one), the socket stays open, and
// the log does not change.
func TestWebSocketBadFramesAreAnsweredAndLoseNothing(t *testing.T) {
	f := newFixture(t)
	ctx := testutil.Ctx(t)
	ws, err := f.ca.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	before := f.lastSeq(t)
	good := f.chat(t, f.alice, "fine")
	tampered := good
	tampered.Payload = base64.StdEncoding.EncodeToString([]byte(`{"text":"changed"}`))
	cases := []struct {
		name, frame, ref, code, conv string
	}{
		{"not JSON", `{"op": "post", "ref": `, "", twokey.EBadEnvelope, ""},
		{"binary garbage", "\x00\xff\x01", "", twokey.EBadEnvelope, ""},
		{"not an object", `[1, 2, 3]`, "", twokey.EBadEnvelope, ""},
		{"wrong type", `{"op": "subscribe", "ref": "r-type", "conversation": "` + f.conv + `", "after": -1}`, "r-type", twokey.EBadEnvelope, f.conv},
		{"unknown op", `{"op": "dance", "ref": "r-op"}`, "r-op", twokey.EBadEnvelope, ""},
		{"no op", `{"ref": "r-noop"}`, "r-noop", twokey.EBadEnvelope, ""},
		{"post without envelope", `{"op": "post", "ref": "r-noenv"}`, "r-noenv", twokey.EBadEnvelope, ""},
		{"envelope not an object", `{"op": "post", "ref": "r-str", "envelope": "abc"}`, "r-str", twokey.EBadEnvelope, ""},
		{"envelope missing fields", `{"op": "post", "ref": "r-empty", "envelope": {"payloadType": "x"}}`, "r-empty", twokey.EBadEnvelope, ""},
		{"bad base64 payload", `{"op": "post", "ref": "r-b64", "envelope": {"payloadType": "` + good.PayloadType + `", "payload": "%%%", "signatures": []}}`, "r-b64", twokey.EBadEnvelope, ""},
		{"tampered envelope", string(mustJSON(t, map[string]any{"op": "post", "ref": "r-sig", "envelope": tampered})), "r-sig", twokey.EBadSignature, ""},
		{"subscribe without conversation", `{"op": "subscribe", "ref": "r-nosub"}`, "r-nosub", twokey.EBadEnvelope, ""},
		{"subscribe to a stranger's conversation", `{"op": "subscribe", "ref": "r-unknown", "conversation": "00000000-0000-4000-8000-000000000000"}`, "r-unknown", twokey.EUnknownConversation, "00000000-0000-4000-8000-000000000000"},
	}
	for _, tc := range cases {
		if err := ws.WriteMessage(websocket.TextMessage, []byte(tc.frame)); err != nil {
			t.Fatalf("%s: write: %v", tc.name, err)
		}
		fr := readFrame(t, ws)
		ref, _ := fr["ref"].(string)
		conv, _ := fr["conversation"].(string)
		if fr["op"] != "error" || frameCode(fr) != tc.code || ref != tc.ref || conv != tc.conv {
			t.Errorf("%s: answered %v; want an error frame, code %s, ref %q, conversation %q", tc.name, fr, tc.code, tc.ref, tc.conv)
		}
		if e, _ := fr["error"].(map[string]any); e == nil || e["message"] == "" {
			t.Errorf("%s: error frame without a message: %v", tc.name, fr)
		}
	}
	if got := f.lastSeq(t); got != before {
		t.Fatalf("the log moved from %d to %d", before, got)
	}
	// The socket still works.
	ws.WriteJSON(map[string]any{"op": "post", "ref": "ok", "envelope": good})
	if fr := readFrame(t, ws); fr["op"] != "ack" || fr["ref"] != "ok" || fr["seq"].(float64) != float64(before+1) {
		t.Fatalf("good post after the bad ones: %v", fr)
	}
}

// TestWebSocketErrorFramesNameTheConversation: a member removed while
// subscribed gets an error frame that says which conversation it lost.
func TestWebSocketErrorFramesNameTheConversation(t *testing.T) {
	f := newFixture(t)
	ctx := testutil.Ctx(t)
	ws, err := f.cb.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.WriteJSON(map[string]any{"op": "subscribe", "conversation": f.conv, "after": f.lastSeq(t)})
	// A ping round trip: the subscription is in place.
	ws.WriteJSON(map[string]any{"op": "ping", "ref": "p"})
	if fr := readFrame(t, ws); fr["op"] != "pong" {
		t.Fatalf("ping answered %v", fr)
	}
	if _, err := f.ca.RemoveMember(ctx, f.conv, f.bob.KeyID()); err != nil {
		t.Fatal(err)
	}
	for {
		fr := readFrame(t, ws)
		if fr["op"] == "record" {
			continue // the member.remove itself may arrive first
		}
		if fr["op"] != "error" || frameCode(fr) != twokey.ENotMember || fr["conversation"] != f.conv {
			t.Fatalf("after removal: %v; want an error frame, not_member, conversation %s", fr, f.conv)
		}
		break
	}
}

// TestWebSocketClosesWhenItsTokenExpires: at the token's expiry, on the
// server's clock, the socket gets a close frame whose code and reason say
// so; a new session reconnects.
func TestWebSocketClosesWhenItsTokenExpires(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	srv := testutil.StartServer(t, nil, testutil.WithClock(clk))
	alice := testutil.Identity(t, "alice")
	c := testutil.Client(srv.URL(), alice, clk)
	ctx := testutil.Ctx(t)
	ws, err := c.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	clk.Advance(twokey.SessionTTL - time.Second)
	ws.WriteJSON(map[string]any{"op": "ping", "ref": "still"})
	if fr := readFrame(t, ws); fr["op"] != "pong" {
		t.Fatalf("a second before expiry: %v", fr)
	}
	clk.Advance(time.Second)
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != server.CloseTokenExpired || !strings.Contains(ce.Text, "expired") {
		t.Fatalf("at expiry the socket ended with %v, want close %d with a reason", err, server.CloseTokenExpired)
	}
	if n := srv.API().WebSockets(); n != 0 {
		t.Fatalf("%d sockets still open", n)
	}
	// The client's next Dial opens a new session.
	ws2, err := c.Dial(ctx)
	if err != nil {
		t.Fatalf("reconnect with a new session: %v", err)
	}
	ws2.Close()
}

// TestSecretTTLBoundsAndAbsentExpiry: ttl_seconds over 10 years (or large
// enough to overflow a duration) is refused; a secret without a TTL has
// expires_at null in its gate.secret.stored; a fractional TTL rounds up.
func TestSecretTTLBoundsAndAbsentExpiry(t *testing.T) {
	g := newGateFake(t, 1, 1)
	ctx := testutil.Ctx(t)
	before := g.lastSeq(t)
	gw, err := g.cs[0].Gateway(ctx)
	if err != nil {
		t.Fatal(err)
	}
	boxKey, _ := base64.RawURLEncoding.DecodeString(gw.BoxKey)
	var pub [32]byte
	copy(pub[:], boxKey)
	sealed, err := box.SealAnonymous(nil, []byte(testKey), &pub, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, ttl := range []int64{twokey.MaxSecretTTLSeconds + 1, 1 << 62, -1} {
		h, _ := g.cs[0].Header(ctx, g.conv)
		_, err := g.cs[0].Post(ctx, g.conv, conversation.KindGateSecret, gate.SecretPayload{Header: h, SecretID: client.NewID(),
			Service: "httpbin", TTLSeconds: ttl, Sealed: base64.StdEncoding.EncodeToString(sealed)})
		if twokey.ErrorCode(err) != twokey.EBadPayload || !strings.Contains(err.Error(), "ttl_seconds") {
			t.Errorf("ttl_seconds %d: %v, want bad_payload naming ttl_seconds", ttl, err)
		}
	}
	if got := g.lastSeq(t); got != before {
		t.Fatalf("refused secrets moved the log from %d to %d", before, got)
	}
	for _, ttl := range []time.Duration{500 * time.Millisecond, -time.Second, 11 * 365 * 24 * time.Hour} {
		if _, err := g.cs[0].AddSecret(ctx, g.conv, "httpbin", "", "", ttl, []byte(testKey)); twokey.ErrorCode(err) != twokey.EBadPayload {
			t.Errorf("client ttl %s: %v, want bad_payload before anything is sent", ttl, err)
		}
	}
	rec, err := g.cs[0].AddSecret(ctx, g.conv, "httpbin", "", "", 0, []byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	_ = json.Unmarshal(rec.Body, &fields)
	if v, ok := fields["expires_at"]; !ok || v != nil || fields["secret_id"] == nil {
		t.Fatalf("a secret without TTL: gate.secret.stored is %s, want \"expires_at\": null (the contract lists the field)", rec.Body)
	}
	rec, err = g.cs[0].AddSecret(ctx, g.conv, "httpbin", "", "", 1900*time.Millisecond, []byte(testKey))
	if err != nil {
		t.Fatal(err)
	}
	var p gate.SecretStoredPayload
	_ = json.Unmarshal(rec.Body, &p)
	if want := conversation.FormatTime(g.clk.Now().Add(2 * time.Second)); string(p.ExpiresAt) != want {
		t.Fatalf("ttl 1.9s: expires_at %q, want %q (rounded up to 2s)", p.ExpiresAt, want)
	}
}

func (g *gateFixture) lastSeq(t *testing.T) uint64 { return lastSeqOf(t, g.srv, g.conv) }

// TestRequestsMayNotChangeTheResponseEncoding: headers that would make
// the upstream compress, re-encode or cut its answer (so an echo of the
// key could get past redaction) are refused and nothing is logged; the
// gateway itself asks for identity encoding when it injects a key.
func TestRequestsMayNotChangeTheResponseEncoding(t *testing.T) {
	g := newGate(t, 1, 1)
	ctx := testutil.Ctx(t)
	before := g.lastSeq(t)
	for _, h := range []string{"Accept-Encoding", "accept-encoding", "Accept-Charset", "Range", "If-Range", "TE"} {
		_, err := g.cs[0].Submit(ctx, g.conv, gate.RequestPayload{Service: "httpbin", Method: "GET", URL: g.baseURL + "/headers",
			Headers: map[string]string{h: "gzip"}, ExpiresAt: conversation.FormatTime(time.Now().Add(time.Hour))})
		if twokey.ErrorCode(err) != twokey.EBadPayload || !strings.Contains(err.Error(), h) {
			t.Errorf("header %s: %v, want bad_payload naming it", h, err)
		}
	}
	if got := g.lastSeq(t); got != before {
		t.Fatalf("refused requests moved the log from %d to %d", before, got)
	}
	st := g.wait(t, g.submit(t, 0, "/headers", time.Hour))
	if st.State != gate.StateExecuted {
		t.Fatalf("plain request: %s", st.State)
	}
	reqs := g.up.Requests()
	last := reqs[len(reqs)-1]
	if got := last.Header.Values("Accept-Encoding"); len(got) != 1 || got[0] != "identity" {
		t.Fatalf("the upstream was asked for Accept-Encoding %q, want [identity]", got)
	}
}

// TestRevokeByIDDeletesTheCiphertext: revoking one secret by id names it
// in gate.secret.revoked and deletes its ciphertext from the secrets
// bucket, leaving the other; revoking by service takes the rest.
func TestRevokeByIDDeletesTheCiphertext(t *testing.T) {
	g := newGate(t, 1, 1)
	ctx := testutil.Ctx(t)
	if _, err := g.cs[0].AddSecret(ctx, g.conv, "httpbin", "", "", time.Hour, []byte(testKey+"_two")); err != nil {
		t.Fatal(err)
	}
	info, err := g.cs[0].Gate(ctx, g.conv)
	if err != nil || len(info.Secrets) != 2 {
		t.Fatalf("gate: %v %v", info, err)
	}
	first, second := info.Secrets[0].SecretID, info.Secrets[1].SecretID
	bucket := func() map[string][]byte {
		out := map[string][]byte{}
		g.srv.Store().ForEach(store.Secrets, func(k string, v []byte) error {
			var s struct {
				ID         string `json:"secret_id"`
				Ciphertext []byte `json:"ciphertext"`
			}
			if err := json.Unmarshal(v, &s); err != nil {
				t.Fatal(err)
			}
			out[s.ID] = s.Ciphertext
			return nil
		})
		return out
	}
	held := bucket()
	if len(held) != 2 || len(held[first]) == 0 || len(held[second]) == 0 {
		t.Fatalf("the secrets bucket holds %d ciphertexts, want both", len(held))
	}
	revoked := func(rec conversation.Record) []string {
		if rec.Kind != conversation.KindGateSecretRevoked {
			// The POST answers the revoke itself; the gateway's record follows.
			recs, err := g.cs[0].Records(ctx, g.conv, rec.Seq, 1)
			if err != nil || len(recs) != 1 || recs[0].Kind != conversation.KindGateSecretRevoked {
				t.Fatalf("no gate.secret.revoked after #%d: %v %v", rec.Seq, recs, err)
			}
			rec = recs[0]
		}
		var p gate.RevokedPayload
		_ = json.Unmarshal(rec.Body, &p)
		if p.By != g.ids[0].KeyID() {
			t.Fatalf("revoked by %q", p.By)
		}
		return p.SecretIDs
	}
	rec, err := g.cs[0].RevokeSecret(ctx, g.conv, first, "")
	if err != nil {
		t.Fatal(err)
	}
	if ids := revoked(rec); len(ids) != 1 || ids[0] != first {
		t.Fatalf("gate.secret.revoked names %q, want [%s]", ids, first)
	}
	after := bucket()
	if _, ok := after[first]; ok || len(after) != 1 || !bytes.Equal(after[second], held[second]) {
		t.Fatalf("after revoking %s the bucket holds %v", first[:8], len(after))
	}
	if _, err := g.cs[0].RevokeSecret(ctx, g.conv, first, ""); twokey.ErrorCode(err) != twokey.EBadPayload {
		t.Fatalf("revoking it again: %v, want bad_payload", err)
	}
	rec, err = g.cs[0].RevokeSecret(ctx, g.conv, "", "httpbin")
	if err != nil {
		t.Fatal(err)
	}
	if ids := revoked(rec); len(ids) != 1 || ids[0] != second {
		t.Fatalf("revoke by service names %q, want [%s]", ids, second)
	}
	if left := bucket(); len(left) != 0 {
		t.Fatalf("%d ciphertexts left after revoking the service", len(left))
	}
}

// TestGatewayKeysAreNotInTheFileInPlaintext opens the sealed gateway keys
// with the master key (so the search below looks for the right bytes) and
// then searches the database file for them, raw, hex and base64.
func TestGatewayKeysAreNotInTheFileInPlaintext(t *testing.T) {
	f := newFixture(t)
	gwKey := f.srv.Engine().GatewayKey()
	dbPath := f.srv.DBPath()
	f.srv.Stop(t)
	master, _, err := vault.LoadMasterKey("", filepath.Join(f.srv.DataDir, "master.key"), false)
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.New(master)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(dbPath, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sealedGW, err1 := st.Get(store.Meta, "gateway_keys")
	sealedTok, err2 := st.Get(store.Meta, "token_key")
	st.Close()
	if err1 != nil || err2 != nil || sealedGW == nil || sealedTok == nil {
		t.Fatalf("sealed keys: %v %v", err1, err2)
	}
	raw, err := v.Open(sealedGW, vault.AAD("gateway_keys"))
	if err != nil {
		t.Fatal(err)
	}
	var keys struct {
		SigningSeed []byte `json:"signing_seed"`
		BoxPrivate  []byte `json:"box_private"`
	}
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatal(err)
	}
	tokenKey, err := v.Open(sealedTok, vault.AAD("token_key"))
	if err != nil {
		t.Fatal(err)
	}
	priv := ed25519.NewKeyFromSeed(keys.SigningSeed)
	if (&conversation.Identity{Private: priv}).KeyID() != gwKey {
		t.Fatal("the opened seed is not the gateway's: the search would prove nothing")
	}
	file, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	for name, secret := range map[string][]byte{"signing seed": keys.SigningSeed, "signing private key": priv,
		"box private key": keys.BoxPrivate, "token key": tokenKey, "their JSON": raw} {
		for form, needle := range map[string][]byte{
			"raw": secret, "hex": []byte(hex.EncodeToString(secret)),
			"base64": []byte(base64.StdEncoding.EncodeToString(secret)), "base64url": []byte(base64.RawURLEncoding.EncodeToString(secret)),
		} {
			if bytes.Contains(file, needle) {
				t.Errorf("the gateway's %s is in the database file (%s)", name, form)
			}
		}
	}
}
