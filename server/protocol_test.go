package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/internal/testutil"
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

func newFixture(t *testing.T) *fixture {
	f := &fixture{srv: testutil.StartServer(t, nil)}
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

func (f *fixture) lastSeq(t *testing.T) uint64 {
	n, err := f.srv.Store().LastSeq(f.conv)
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
	f := newFixture(t)
	ctx := testutil.Ctx(t)
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
			ws.WriteJSON(map[string]any{"op": "subscribe", "conversation": f.conv, "after": start})
			ready <- struct{}{}
			for {
				ws.SetReadDeadline(time.Now().Add(60 * time.Second))
				var fr struct {
					Op     string
					Record *conversation.Record
				}
				if err := ws.ReadJSON(&fr); err != nil {
					t.Errorf("subscriber %d: %v", i, err)
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
					t.Error(err)
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
