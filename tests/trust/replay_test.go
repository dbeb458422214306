package trust_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/crypto/nacl/box"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/audit"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

// Freshness and replay (PROTOCOL 2): a captured envelope is worth nothing
// once the server has accepted it. Each case is a reproduction of the
// outside attack run: the envelopes are captured as a network observer
// would have them and posted again with no credentials.

func init() { attackSets = append(attackSets, replayAttacks) }

func replayAttacks() []attack {
	const rule = "PROTOCOL 2 (freshness and replay): an envelope is accepted only while its created_at is within 5 minutes, and once; proposal_id and secret_id once per server"
	return []attack{
		{"replay: an applied membership change posted again", rule,
			"engine/replay.go once, claimID; engine/gatekinds.go propose", func(t *testing.T) {
				fx := newFakeFixture(t, 3, 2)
				// M 2 -> 1, then back to 2. The first change's envelopes
				// are captured.
				captured := fx.proposeSigned(t, 0, gate.ProposePayload{RequiredApprovals: 1}, 1, 2)
				if m := fx.gateM(t); m != 1 {
					t.Fatalf("M after the first change: %d", m)
				}
				fx.clk.Advance(time.Minute)
				fx.proposeSigned(t, 0, gate.ProposePayload{RequiredApprovals: 2}, 1, 2)
				expectReplayed(t, fx, captured)
				if m := fx.gateM(t); m != 2 {
					t.Fatalf("the replay brought M back to %d", m)
				}
				// Past the window the same envelopes are stale.
				fx.clk.Advance(6 * time.Minute)
				for _, env := range captured {
					expectCode(t, fx, env, 400, twokey.EBadPayload)
				}
				// alice alone cannot execute: her request waits for a second.
				id, _ := fx.submit(t, 0, "/get")
				if st := fx.state(t, id); st != gate.StatePending {
					t.Fatalf("alice's request with M=2 is %s", st)
				}
			}},
		{"replay: an old removal after the member was re-added", rule,
			"engine/replay.go once, claimID", func(t *testing.T) {
				fx := newFakeFixture(t, 3, 2)
				carol := fx.ids[2]
				captured := fx.proposeSigned(t, 0, gate.ProposePayload{Remove: []string{carol.KeyID()}}, 1)
				fx.clk.Advance(time.Minute)
				fx.proposeSigned(t, 0, gate.ProposePayload{Add: []conversation.Member{{Key: carol.KeyID(), Name: "carol"}}}, 1)
				if !fx.isSigner(t, carol.KeyID()) {
					t.Fatal("carol was not re-added")
				}
				expectReplayed(t, fx, captured)
				if !fx.isSigner(t, carol.KeyID()) {
					t.Fatal("the replayed removal removed carol again")
				}
			}},
		{"replay: a revoked secret posted again", rule,
			"engine/replay.go claimID (secret ids once per server); engine/gatekinds.go secret", func(t *testing.T) {
				fx := newFakeFixture(t, 2, 2)
				ctx := testutil.Ctx(t)
				const oldKey = "sk_live_old_revoked_9f8e7d"
				env := fx.secretEnvelope(t, 0, "httpbin", oldKey)
				if status, code := rawPost(t, fx.messagesURL(), env); status != 201 {
					t.Fatalf("storing the secret: %d %s", status, code)
				}
				if _, err := fx.cs[0].RevokeSecret(ctx, fx.conv, "", "httpbin"); err != nil {
					t.Fatal(err)
				}
				fx.clk.Advance(3 * time.Minute) // still inside the window
				if status, code := rawPost(t, fx.messagesURL(), env); status != 409 || code != twokey.EReplayed {
					t.Fatalf("the revoked secret re-posted: %d %s, want 409 replayed", status, code)
				}
				g, err := fx.cs[0].Gate(ctx, fx.conv)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range g.Secrets {
					if s.Live {
						t.Fatalf("a secret is live after the replay: %+v", s)
					}
				}
				// The next approved call has no key to send, and sends nothing.
				id, d := fx.submit(t, 0, "/headers")
				if err := fx.post(t, fx.approval(t, 1, id, d)); err != nil {
					t.Fatal(err)
				}
				st, err := fx.cs[0].WaitRequest(ctx, fx.conv, id)
				if err != nil {
					t.Fatal(err)
				}
				if st.State != gate.StateFailed {
					t.Fatalf("the call after the replay is %s, want failed (no_secret)", st.State)
				}
				for _, r := range fx.up.Requests() {
					if strings.Contains(r.Header.Get("Authorization"), oldKey) {
						t.Fatal("the revoked key reached the upstream")
					}
				}
			}},
		{"replay: a chat message posted again", rule, "engine/replay.go once", func(t *testing.T) {
			fx := newFakeFixture(t, 2, 2)
			env := fx.chatBy(t, fx.ids[1], "pay the invoice")
			if status, code := rawPost(t, fx.messagesURL(), env); status != 201 {
				t.Fatalf("first post: %d %s", status, code)
			}
			for range 4 {
				expectCode(t, fx, env, 409, twokey.EReplayed)
			}
			// Another signer's byte-identical payload is that signer's own
			// word, not a replay.
			twin := fx.chatBy(t, fx.ids[0], "pay the invoice")
			if status, code := rawPost(t, fx.messagesURL(), twin); status != 201 {
				t.Fatalf("the same text by another member: %d %s", status, code)
			}
		}},
		{"replay: an envelope posted again over the WebSocket", rule, "engine/replay.go once (server/ws.go posts through engine.PostMessage)", func(t *testing.T) {
			fx := newFakeFixture(t, 2, 2)
			env := fx.chatBy(t, fx.ids[1], "over the socket")
			tok, err := fx.cs[1].Token(testutil.Ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(fx.srv.URL(), "http")+"/v1/ws", http.Header{"Authorization": {"Bearer " + tok}})
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			for i, want := range []string{"ack", "error"} {
				if err := ws.WriteJSON(map[string]any{"op": "post", "ref": "r", "envelope": env}); err != nil {
					t.Fatal(err)
				}
				_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
				var f struct {
					Op    string `json:"op"`
					Error struct{ Code string }
				}
				if err := ws.ReadJSON(&f); err != nil {
					t.Fatal(err)
				}
				if f.Op != want || (want == "error" && f.Error.Code != twokey.EReplayed) {
					t.Fatalf("post %d over the WebSocket: %+v, want %s", i+1, f, want)
				}
			}
		}},
		{"replay: a proposal or secret id used again in another conversation", rule,
			"engine/replay.go claimID (the ids bucket)", func(t *testing.T) {
				fx := newFakeFixture(t, 2, 2)
				ctx := testutil.Ctx(t)
				members := []conversation.Member{{Key: fx.ids[1].KeyID(), Name: "bob"}}
				other := mustConv(t, fx.cs[0], "ops-2", members)
				if _, err := fx.cs[0].EnableGate(ctx, other, 2, nil); err != nil {
					t.Fatal(err)
				}
				pid := client.NewID()
				fx.proposeSigned(t, 0, gate.ProposePayload{Header: conversation.Header{}, ProposalID: pid, RequiredApprovals: 1}, 1)
				second := *fx
				second.conv = other
				p := gate.ProposePayload{Header: second.header(), ProposalID: pid, RequiredApprovals: 1}
				env, _ := conversation.SignJSON(fx.ids[0], conversation.KindMemberPropose, p)
				expectCode(t, &second, env, 409, twokey.EReplayed)
				sid := client.NewID()
				if status, code := rawPost(t, fx.messagesURL(), fx.secretEnvelopeID(t, 0, "httpbin", "sk_a", sid)); status != 201 {
					t.Fatalf("first secret: %d %s", status, code)
				}
				expectCode(t, &second, second.secretEnvelopeID(t, 0, "httpbin", "sk_b", sid), 409, twokey.EReplayed)
			}},
		{"replay: a conversation.create posted again", rule, "engine/replay.go unseen (engine/post.go Create)", func(t *testing.T) {
			fx := newFakeFixture(t, 1, 1)
			env, _ := conversation.SignJSON(fx.ids[0], conversation.KindConversationCreate, conversation.CreatePayload{
				Header: conversation.Header{Conversation: client.NewID(), CreatedAt: conversation.FormatTime(fx.now())}, Name: "again"})
			for i, want := range []int{201, 409} {
				status, code := rawPost(t, fx.srv.URL()+"/v1/conversations", env)
				if status != want || (want == 409 && code != twokey.EReplayed) {
					t.Fatalf("post %d of one conversation.create: %d %s, want %d", i+1, status, code, want)
				}
			}
		}},
		{"replay: a stale or future envelope", rule, "engine/replay.go checkFresh", func(t *testing.T) {
			fx := newFakeFixture(t, 2, 2)
			const edge = 5 * time.Minute
			for _, c := range []struct {
				skew time.Duration
				ok   bool
			}{{-edge, true}, {edge, true}, {-edge - time.Millisecond, false}, {edge + time.Millisecond, false}} {
				env, err := conversation.SignJSON(fx.ids[1], conversation.KindChatMessage, conversation.ChatPayload{
					Header: conversation.Header{Conversation: fx.conv, CreatedAt: conversation.FormatTime(fx.now().Add(c.skew))}, Text: "when? " + c.skew.String()})
				if err != nil {
					t.Fatal(err)
				}
				if !c.ok {
					expectCode(t, fx, env, 400, twokey.EBadPayload)
				} else if status, code := rawPost(t, fx.messagesURL(), env); status != 201 {
					t.Fatalf("created_at %s from the server's time, at the window's edge: %d %s", c.skew, status, code)
				}
			}
		}},
		{"replay: after a restart", rule, "engine/replay.go once (the seen bucket, written in the record's commit)", func(t *testing.T) {
			fx := newFakeFixture(t, 2, 2)
			env := fx.chatBy(t, fx.ids[1], "before the restart")
			if status, code := rawPost(t, fx.messagesURL(), env); status != 201 {
				t.Fatalf("first post: %d %s", status, code)
			}
			fx.srv = fx.srv.Restart(t)
			expectCode(t, fx, env, 409, twokey.EReplayed)
		}},
		{"replay: approving a proposal a membership change voided", "PROTOCOL 5 (membership): every other open proposal closes when a change applies; its approvals are request_closed",
			"engine/gatekinds.go applyProposal, approveProposal", func(t *testing.T) {
				fx := newFakeFixture(t, 3, 2)
				ctx := testutil.Ctx(t)
				rec, err := fx.cs[0].Propose(ctx, fx.conv, gate.ProposePayload{RequiredApprovals: 3})
				if err != nil {
					t.Fatal(err)
				}
				var voided gate.ProposePayload
				_ = json.Unmarshal(rec.Body, &voided)
				// bob approves it too: carol's vote would be the last it needs.
				if _, err := fx.cs[1].ApproveProposal(ctx, fx.conv, voided.ProposalID); err != nil {
					t.Fatal(err)
				}
				fx.proposeSigned(t, 1, gate.ProposePayload{RequiredApprovals: 1}, 0, 2)
				late, _ := conversation.SignJSON(fx.ids[2], conversation.KindMemberApprove, gate.MemberApprovePayload{
					Header: fx.header(), ProposalID: voided.ProposalID, ProposalDigest: conversation.Digest(mustPayload(t, rec.Envelope))})
				expectCode(t, fx, late, 409, twokey.ERequestClosed)
				if m := fx.gateM(t); m != 1 {
					t.Fatalf("M is %d after the voided proposal was approved", m)
				}
			}},
		{"replay: session.open refusals name their cause", "PROTOCOL 2 and 7: a created_at ahead is bad_payload, a bad signature bad_signature, a stale or replayed session.open unauthorized",
			"engine/engine.go OpenSession", func(t *testing.T) {
				fx := newFakeFixture(t, 1, 1)
				open := func(at time.Time, mangle bool) (int, string) {
					env, _ := conversation.SignJSON(fx.ids[0], conversation.KindSessionOpen, map[string]string{
						"created_at": conversation.FormatTime(at), "nonce": base64.StdEncoding.EncodeToString([]byte(client.NewID()))})
					if mangle {
						sig, _ := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
						sig[5] ^= 1
						env = withSig(env, env.Signatures[0].KeyID, sig)
					}
					body, _ := json.Marshal(env)
					resp, err := http.Post(fx.srv.URL()+"/v1/sessions", "application/json", bytes.NewReader(body))
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					var eb struct{ Error struct{ Code string } }
					_ = json.NewDecoder(resp.Body).Decode(&eb)
					return resp.StatusCode, eb.Error.Code
				}
				now := fx.now()
				for _, c := range []struct {
					name   string
					at     time.Time
					mangle bool
					status int
					code   string
				}{
					{"ahead", now.Add(6 * time.Minute), false, 400, twokey.EBadPayload},
					{"bad signature", now, true, 400, twokey.EBadSignature},
					{"stale", now.Add(-6 * time.Minute), false, 401, twokey.EUnauthorized},
					{"fresh", now, false, 201, ""},
				} {
					if status, code := open(c.at, c.mangle); status != c.status || code != c.code {
						t.Errorf("%s session.open: %d %q, want %d %q", c.name, status, code, c.status, c.code)
					}
				}
			}},
		{"replay: an honest log verifies after refused replays", "PROTOCOL 2: a payload, proposal_id or secret_id appears once in an honest log, created_at within the window of received_at",
			"audit/verify.go record (CheckOnce, CheckRecord)", func(t *testing.T) {
				// The forged logs are audit.TestReplayCatchesWhatTheGatewayMustNeverDo's
				// (a chat message replayed, an applied membership change
				// replayed, a proposal id used again after it applied, a revoked
				// secret stored again, an envelope received long after it was
				// signed). Here: an honest server's log, after every replay
				// above was tried on it and refused, verifies.
				fx := newFakeFixture(t, 3, 2)
				captured := fx.proposeSigned(t, 0, gate.ProposePayload{RequiredApprovals: 1}, 1, 2)
				chat := fx.chatBy(t, fx.ids[1], "once")
				if status, code := rawPost(t, fx.messagesURL(), chat); status != 201 {
					t.Fatalf("chat: %d %s", status, code)
				}
				expectReplayed(t, fx, append(captured, chat))
				x, err := audit.Fetch(testutil.Ctx(t), fx.cs[0], fx.conv)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := audit.Verify(x, audit.Options{Gateway: fx.gw}); err != nil {
					t.Fatalf("the honest log fails its audit: %v", err)
				}
			}},
	}
}

// expectReplayed posts each captured envelope again: a proposal or a chat
// message is replayed (409); a vote may be answered as what it is, a vote
// on a proposal no longer open (409 request_closed), as PROTOCOL 2 allows.
func expectReplayed(t *testing.T, fx *fixture, envs []conversation.Envelope) {
	t.Helper()
	for _, env := range envs {
		want := twokey.EReplayed
		if env.PayloadType == conversation.PayloadType(conversation.KindMemberApprove) {
			want = twokey.ERequestClosed
		}
		expectCode(t, fx, env, 409, want)
	}
}

func (fx *fixture) messagesURL() string {
	return fx.srv.URL() + "/v1/conversations/" + fx.conv + "/messages"
}

// proposeSigned signs a membership proposal by signer `by` and the
// approvals of the others, posts them, and returns the envelopes as an
// observer of the traffic would have captured them.
func (fx *fixture) proposeSigned(t *testing.T, by int, p gate.ProposePayload, approvers ...int) []conversation.Envelope {
	t.Helper()
	p.Header = fx.header()
	if p.ProposalID == "" {
		p.ProposalID = client.NewID()
	}
	prop, err := conversation.SignJSON(fx.ids[by], conversation.KindMemberPropose, p)
	if err != nil {
		t.Fatal(err)
	}
	raw := mustPayload(t, prop)
	out := []conversation.Envelope{prop}
	for _, i := range approvers {
		env, err := conversation.SignJSON(fx.ids[i], conversation.KindMemberApprove, gate.MemberApprovePayload{
			Header: fx.header(), ProposalID: p.ProposalID, ProposalDigest: conversation.Digest(raw)})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, env)
	}
	for _, env := range out {
		if status, code := rawPost(t, fx.messagesURL(), env); status != 201 {
			t.Fatalf("posting the proposal: %d %s", status, code)
		}
	}
	return out
}

func (fx *fixture) gateM(t *testing.T) int {
	t.Helper()
	g, err := fx.cs[0].Gate(testutil.Ctx(t), fx.conv)
	if err != nil {
		t.Fatal(err)
	}
	return g.RequiredApprovals
}

func (fx *fixture) isSigner(t *testing.T, key string) bool {
	t.Helper()
	g, err := fx.cs[0].Gate(testutil.Ctx(t), fx.conv)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(g.Signers, key)
}

// secretEnvelope seals value to the gateway's box key as signer i would.
func (fx *fixture) secretEnvelope(t *testing.T, i int, service, value string) conversation.Envelope {
	return fx.secretEnvelopeID(t, i, service, value, client.NewID())
}

func (fx *fixture) secretEnvelopeID(t *testing.T, i int, service, value, id string) conversation.Envelope {
	t.Helper()
	g, err := fx.cs[i].Gateway(testutil.Ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(g.BoxKey)
	var pub [32]byte
	copy(pub[:], raw)
	sealed, err := box.SealAnonymous(nil, []byte(value), &pub, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	env, err := conversation.SignJSON(fx.ids[i], conversation.KindGateSecret, gate.SecretPayload{Header: fx.header(), SecretID: id,
		Service: service, Sealed: base64.StdEncoding.EncodeToString(sealed)})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func mustPayload(t *testing.T, env conversation.Envelope) []byte {
	t.Helper()
	raw, err := payloadOf(env)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
