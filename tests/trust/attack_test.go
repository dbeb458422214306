package trust_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/audit"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

// attack is one entry of the attack suite: what is tried, the rule that
// stops it (a section of PROTOCOL.md or docs/protocol.md), the code that
// enforces it, and the test body that proves it end to end against a real
// server. docs/security.md is generated from the same facts by hand and
// TestSecurityDocIndexesEveryAttack keeps the two in step.
type attack struct {
	name string
	rule string
	code string
	run  func(t *testing.T)
}

// expectCode posts env to fx's conversation and wants the refusal code.
func expectCode(t *testing.T, fx *fixture, env conversation.Envelope, status int, code string) {
	t.Helper()
	url := fx.srv.URL() + "/v1/conversations/" + fx.conv + "/messages"
	before, _ := fx.srv.Store().LastSeq(fx.conv)
	gotStatus, gotCode := rawPost(t, url, env)
	if gotStatus != status || gotCode != code {
		t.Fatalf("got %d %s, want %d %s", gotStatus, gotCode, status, code)
	}
	if after, _ := fx.srv.Store().LastSeq(fx.conv); after != before {
		t.Fatalf("a refused envelope changed the log (%d -> %d)", before, after)
	}
}

// chatBy signs a chat message by id in fx's conversation.
func (fx *fixture) chatBy(t *testing.T, id *conversation.Identity, text string) conversation.Envelope {
	t.Helper()
	env, err := conversation.SignJSON(id, conversation.KindChatMessage, conversation.ChatPayload{
		Header: conversation.Header{Conversation: fx.conv, CreatedAt: conversation.FormatTime(fx.now())}, Text: text})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// propose changes membership or rules with every needed approval.
func (fx *fixture) propose(t *testing.T, by int, p gate.ProposePayload, approvers ...int) {
	t.Helper()
	ctx := testutil.Ctx(t)
	rec, err := fx.cs[by].Propose(ctx, fx.conv, p)
	if err != nil {
		t.Fatal(err)
	}
	var pp gate.ProposePayload
	_ = json.Unmarshal(rec.Body, &pp)
	for _, i := range approvers {
		if _, err := fx.cs[i].ApproveProposal(ctx, fx.conv, pp.ProposalID); err != nil {
			t.Fatal(err)
		}
	}
}

// relabel returns env with its key id spelled differently.
func relabel(env conversation.Envelope, keyID string) conversation.Envelope {
	env.Signatures = []conversation.Signature{{KeyID: keyID, Sig: env.Signatures[0].Sig}}
	return env
}

// withSig returns env with raw signature bytes sig.
func withSig(env conversation.Envelope, keyID string, sig []byte) conversation.Envelope {
	env.Signatures = []conversation.Signature{{KeyID: keyID, Sig: base64.StdEncoding.EncodeToString(sig)}}
	return env
}

var ed25519L, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

// nonCanonicalS returns sig with S replaced by S + L: the same scalar mod L,
// a second encoding of one signature, which strict verifiers refuse.
func nonCanonicalS(sig []byte) []byte {
	le := func(b []byte) *big.Int {
		r := make([]byte, len(b))
		for i := range b {
			r[len(b)-1-i] = b[i]
		}
		return new(big.Int).SetBytes(r)
	}
	s := new(big.Int).Add(le(sig[32:]), ed25519L)
	be := s.FillBytes(make([]byte, 32))
	out := append([]byte(nil), sig[:32]...)
	for i := 31; i >= 0; i-- {
		out = append(out, be[i])
	}
	return out
}

// spareBitsSpelling returns key id k with its last character's unused low
// bits set: non-strict base64 decoders read the same 32 bytes.
func spareBitsSpelling(k string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, k[len(k)-1])
	return k[:len(k)-1] + string(alphabet[i^1])
}

func attacks() []attack {
	return []attack{
		{"threshold inflation: one key approves twice", "PROTOCOL 2 and 5: approvals count per distinct signer key",
			"gate/request.go Request.Check (already_voted); engine/gatekinds.go vote", func(t *testing.T) {
				fx := newFixture(t, 3, 3)
				id, d := fx.submit(t, 0, "/get")
				if err := fx.post(t, fx.approval(t, 1, id, d)); err != nil {
					t.Fatal(err)
				}
				expectCode(t, fx, fx.approval(t, 1, id, d), 409, twokey.EAlreadyVoted)
				if st, _ := fx.cs[0].Request(testutil.Ctx(t), fx.conv, id); len(st.Approvals) != 2 || st.State != gate.StatePending {
					t.Fatalf("approvals %v, state %s", st.Approvals, st.State)
				}
			}},
		{"threshold inflation: two spellings of one key", "PROTOCOL 2: a key id must be the canonical encoding; another spelling is bad_envelope",
			"conversation/keys.go ParseKeyID", func(t *testing.T) {
				fx := newFixture(t, 3, 3)
				id, d := fx.submit(t, 0, "/get")
				if err := fx.post(t, fx.approval(t, 1, id, d)); err != nil {
					t.Fatal(err)
				}
				k := fx.ids[1].KeyID()
				for name, spelling := range map[string]string{
					"padded":          k + "=",
					"std alphabet":    strings.TrimRight(base64.StdEncoding.EncodeToString(fx.ids[1].Public()), "="),
					"spare bits set":  spareBitsSpelling(k),
					"upper-cased hex": strings.ToUpper(fmt.Sprintf("%x", []byte(fx.ids[1].Public()))),
				} {
					if spelling == k {
						continue // std alphabet may coincide for keys without - or _
					}
					t.Run(name, func(t *testing.T) {
						expectCode(t, fx, relabel(fx.approval(t, 1, id, d), spelling), 400, twokey.EBadEnvelope)
					})
				}
				// Nor can a member list carry one key under two spellings.
				_, err := fx.cs[0].CreateConversation(testutil.Ctx(t), "twice", []conversation.Member{{Key: k, Name: "b"}, {Key: k + "=", Name: "b2"}})
				if twokey.ErrorCode(err) != twokey.EBadPayload {
					t.Fatalf("member listed under two spellings: %v", err)
				}
				if fx.state(t, id) != gate.StatePending {
					t.Fatal("a second spelling counted")
				}
			}},
		{"threshold inflation: a removed member's approval", "PROTOCOL 5 (membership): removal needs the other signers, and pending requests die with the change",
			"engine/post.go PostMessage (not_member); engine/gatekinds.go applyProposal", func(t *testing.T) {
				fx := newFixture(t, 3, 2)
				id, d := fx.submit(t, 0, "/get")
				early := fx.approval(t, 2, id, d) // signed while still a signer, held back
				fx.propose(t, 0, gate.ProposePayload{Remove: []string{fx.ids[2].KeyID()}}, 1)
				if s := fx.state(t, id); s != gate.StateCancelled {
					t.Fatalf("the pending request survived the change: %s", s)
				}
				expectCode(t, fx, early, 403, twokey.ENotMember)
				id2, d2 := fx.submit(t, 0, "/get")
				expectCode(t, fx, fx.approval(t, 2, id2, d2), 403, twokey.ENotMember)
				if n := len(fx.up.Requests()); n != 0 {
					t.Fatalf("the upstream got %d calls", n)
				}
			}},
		{"self-approval counted twice", "PROTOCOL 5: a request counts as its submitter's approval, once",
			"gate/request.go Request.Check (already_voted)", func(t *testing.T) {
				fx := newFixture(t, 2, 2)
				id, d := fx.submit(t, 0, "/get")
				expectCode(t, fx, fx.approval(t, 0, id, d), 409, twokey.EAlreadyVoted)
				if fx.state(t, id) != gate.StatePending || len(fx.up.Requests()) != 0 {
					t.Fatal("the submitter's second approval counted")
				}
			}},
		{"bait-and-switch: an approval reused for a changed request", "PROTOCOL 4: request_digest binds an approval to the exact payload bytes",
			"gate/request.go Request.Check (digest_mismatch); conversation/envelope.go Verify", func(t *testing.T) {
				fx := newFixture(t, 2, 2)
				ctx := testutil.Ctx(t)
				id, d := fx.submit(t, 0, "/get?amount=1")
				good := fx.approval(t, 1, id, d)
				// The submitter withdraws and re-asks for a changed call; the
				// old approval's digest does not fit the new request...
				if _, err := fx.cs[0].Cancel(ctx, fx.conv, id); err != nil {
					t.Fatal(err)
				}
				id2, _ := fx.submit(t, 0, "/get?amount=9")
				swapped, _ := conversation.SignJSON(fx.ids[1], conversation.KindGateApprove, gate.VotePayload{Header: fx.header(), RequestID: id2, RequestDigest: d})
				expectCode(t, fx, swapped, 409, twokey.EDigestMismatch)
				// ...and editing the approval's request_id breaks its signature.
				p, _ := payloadOf(good)
				edited := good
				edited.Payload = base64.StdEncoding.EncodeToString(bytes.Replace(p, []byte(id), []byte(id2), 1))
				expectCode(t, fx, edited, 400, twokey.EBadSignature)
				// Reusing it where it was given: the request is closed.
				expectCode(t, fx, good, 409, twokey.ERequestClosed)
				if len(fx.up.Requests()) != 0 {
					t.Fatal("a switched request executed")
				}
			}},
		{"cross-conversation replay of an approval", "PROTOCOL 2: conversation in every payload binds a signature to one conversation",
			"engine/post.go PostMessage (payload conversation check)", func(t *testing.T) {
				fx := newFixture(t, 2, 2)
				id, d := fx.submit(t, 0, "/get")
				env := fx.approval(t, 1, id, d)
				other := mustConv(t, fx.cs[0], "other", []conversation.Member{{Key: fx.ids[1].KeyID(), Name: "b"}})
				if _, err := fx.cs[0].EnableGate(testutil.Ctx(t), other, 2, nil); err != nil {
					t.Fatal(err)
				}
				before, _ := fx.srv.Store().LastSeq(other)
				if status, code := rawPost(t, fx.srv.URL()+"/v1/conversations/"+other+"/messages", env); status != 400 || code != twokey.EBadPayload {
					t.Fatalf("replayed into another conversation: %d %s, want 400 %s", status, code, twokey.EBadPayload)
				}
				if after, _ := fx.srv.Store().LastSeq(other); after != before {
					t.Fatalf("the replay changed the other log (%d -> %d)", before, after)
				}
				if fx.state(t, id) != gate.StatePending {
					t.Fatal("the replay counted")
				}
			}},
		{"cross-gateway replay of an approval", "PROTOCOL 2: gateway in every gate.* and member.* payload binds a signature to one gateway",
			"engine/post.go checkCommon (gateway check)", func(t *testing.T) {
				fx := newFixture(t, 2, 2)
				ctx := testutil.Ctx(t)
				id, d := fx.submit(t, 0, "/get")
				approval := fx.approval(t, 1, id, d)
				// Another server; the conversation.create replays there as is
				// (it names no gateway), the members enable a gate there...
				other := testutil.StartServer(t, fx.up)
				recs, err := fx.cs[0].Records(ctx, fx.conv, 0, 1)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := json.Marshal(recs[0].Envelope)
				resp, err := http.Post(other.URL()+"/v1/conversations", "application/json", bytes.NewReader(body))
				if err != nil || resp.StatusCode != 201 {
					t.Fatalf("replaying the create: %v %v", resp, err)
				}
				resp.Body.Close()
				ob := testutil.Client(other.URL(), fx.ids[0], nil)
				if _, err := ob.EnableGate(ctx, fx.conv, 2, nil); err != nil {
					t.Fatal(err)
				}
				// ...but nothing signed for the first gateway counts there.
				reqRecs, _ := fx.cs[0].Records(ctx, fx.conv, 0, 100)
				for _, r := range reqRecs {
					if r.Kind == conversation.KindGateRequest {
						if _, err := ob.PostEnvelope(ctx, fx.conv, r.Envelope); twokey.ErrorCode(err) != twokey.EBadPayload {
							t.Fatalf("request replayed to another gateway: %v", err)
						}
					}
				}
				if _, err := ob.PostEnvelope(ctx, fx.conv, approval); twokey.ErrorCode(err) != twokey.EBadPayload {
					t.Fatalf("approval replayed to another gateway: %v", err)
				}
			}},
		{"duplicate request id after restart", "PROTOCOL 5: a request_id ever seen on this server is duplicate_request, whatever the conversation",
			"engine/gatekinds.go submit (reservation and store lookup)", func(t *testing.T) {
				fx := newFixture(t, 2, 2)
				ctx := testutil.Ctx(t)
				p := fx.request("/get")
				env, _ := conversation.SignJSON(fx.ids[0], conversation.KindGateRequest, p)
				if err := fx.post(t, env); err != nil {
					t.Fatal(err)
				}
				srv := fx.srv.Restart(t)
				c := testutil.Client(srv.URL(), fx.ids[1], nil)
				p.Header = fx.header()
				again, _ := conversation.SignJSON(fx.ids[1], conversation.KindGateRequest, p)
				if _, err := c.PostEnvelope(ctx, fx.conv, again); twokey.ErrorCode(err) != twokey.EDuplicateRequest {
					t.Fatalf("same id after restart: %v", err)
				}
				solo := mustConv(t, c, "solo", nil)
				if _, err := c.EnableGate(ctx, solo, 1, nil); err != nil {
					t.Fatal(err)
				}
				p.Conversation = solo
				there, _ := conversation.SignJSON(fx.ids[1], conversation.KindGateRequest, p)
				if _, err := c.PostEnvelope(ctx, solo, there); twokey.ErrorCode(err) != twokey.EDuplicateRequest {
					t.Fatalf("same id in another conversation: %v", err)
				}
			}},
		{"expired request approved at the boundary", "PROTOCOL 5 (expire): at expires_at a request takes no more approvals",
			"gate/request.go Request.Check (request_expired); engine/expiry.go", func(t *testing.T) {
				fx := newFakeFixture(t, 3, 3)
				id, d := fx.submit(t, 0, "/get")
				st, _ := fx.cs[0].Request(testutil.Ctx(t), fx.conv, id)
				exp, _ := time.Parse(time.RFC3339Nano, st.ExpiresAt)
				fx.clk.Set(exp.Add(-time.Millisecond))
				if err := fx.post(t, fx.approval(t, 1, id, d)); err != nil {
					t.Fatalf("a millisecond before: %v", err)
				}
				fx.clk.Set(exp)
				expectCode(t, fx, fx.approval(t, 2, id, d), 410, twokey.ERequestExpired)
				if fx.state(t, id) != gate.StateExpired || len(fx.up.Requests()) != 0 {
					t.Fatal("the request did not expire at expires_at")
				}
			}},
		{"concurrent final votes", "STYLE 7 and PROTOCOL 5: votes resolve once; the request executes exactly once",
			"engine/post.go PostMessage (the conversation's lock held through the commit); gate/request.go Vote", func(t *testing.T) {
				fx := newFixture(t, 8, 2)
				id, d := fx.submit(t, 0, "/anything/race")
				envs := make([]conversation.Envelope, 8)
				for i := 1; i < 8; i++ {
					envs[i] = fx.approval(t, i, id, d)
				}
				var wg sync.WaitGroup
				errs := make([]error, 8)
				start := make(chan struct{})
				for i := 1; i < 8; i++ {
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						<-start
						_, errs[i] = fx.cs[i].PostEnvelope(testutil.Ctx(t), fx.conv, envs[i])
					}(i)
				}
				close(start)
				wg.Wait()
				ok := 0
				for _, err := range errs[1:] {
					switch twokey.ErrorCode(err) {
					case "":
						ok++
					case twokey.ERequestClosed:
					default:
						t.Fatalf("unexpected: %v", err)
					}
				}
				if ok != 1 || fx.wait(t, id) != gate.StateExecuted || fx.up.Count("/httpbin/anything/race") != 1 {
					t.Fatalf("%d final votes accepted, upstream got %d calls", ok, fx.up.Count("/httpbin/anything/race"))
				}
			}},
		{"vote after resolution", "docs/protocol.md D: request_closed for a closed request, request_expired for an expired one",
			"gate/request.go Request.Check; engine/gatekinds.go findRequest", func(t *testing.T) {
				fx := newFixture(t, 3, 2)
				ctx := testutil.Ctx(t)
				done, d1 := fx.submit(t, 0, "/get")
				if err := fx.post(t, fx.approval(t, 1, done, d1)); err != nil {
					t.Fatal(err)
				}
				fx.wait(t, done)
				expectCode(t, fx, fx.approval(t, 2, done, d1), 409, twokey.ERequestClosed)
				gone, d2 := fx.submit(t, 0, "/get")
				if _, err := fx.cs[0].Cancel(ctx, fx.conv, gone); err != nil {
					t.Fatal(err)
				}
				expectCode(t, fx, fx.approval(t, 1, gone, d2), 409, twokey.ERequestClosed)
				if n := fx.up.Count("/httpbin/get"); n != 1 {
					t.Fatalf("the upstream got %d calls, want 1", n)
				}
			}},
		{"impossible M", "PROTOCOL 6: M lies between 1 and the number of signers, for the default, every rule, and after every change",
			"gate/config.go Enable, Propose; gate/rules.go ValidateRules", func(t *testing.T) {
				fx := newFixture(t, 3, 2)
				ctx := testutil.Ctx(t)
				for _, m := range []int{0, -1, 4, 1 << 30} {
					c := mustConv(t, fx.cs[0], fmt.Sprintf("m%d", m), []conversation.Member{{Key: fx.ids[1].KeyID()}, {Key: fx.ids[2].KeyID()}})
					if _, err := fx.cs[0].EnableGate(ctx, c, m, nil); twokey.ErrorCode(err) != twokey.EBadPayload {
						t.Fatalf("gate.enable M=%d: %v", m, err)
					}
					if _, err := fx.cs[0].EnableGate(ctx, c, 2, []gate.Rule{{Service: "httpbin", RequiredApprovals: m}}); twokey.ErrorCode(err) != twokey.EBadPayload {
						t.Fatalf("a rule with M=%d: %v", m, err)
					}
				}
				if _, err := fx.cs[0].Propose(ctx, fx.conv, gate.ProposePayload{RequiredApprovals: 4}); twokey.ErrorCode(err) != twokey.EBadPayload {
					t.Fatalf("proposal M=4 of 3: %v", err)
				}
				// Removing two of three would leave M=2 with one signer.
				if _, err := fx.cs[0].Propose(ctx, fx.conv, gate.ProposePayload{Remove: []string{fx.ids[1].KeyID(), fx.ids[2].KeyID()}}); twokey.ErrorCode(err) != twokey.EBadPayload {
					t.Fatalf("removal leaving M above the signers: %v", err)
				}
			}},
		{"a rule set that would shadow a stricter rule", "PROTOCOL 6 and docs/protocol.md D: most specific wins, no two rules on one triple, a pattern/path tie goes to the stricter; rules change only with every signer",
			"gate/rules.go ValidateRules, Select; gate/config.go Propose (needs every signer); gate/shadow.go Shadows (explains, in the CLI, the TUI and the audit)", func(t *testing.T) {
				fx := newFixture(t, 3, 1)
				ctx := testutil.Ctx(t)
				strict := gate.Rule{Service: "httpbin", Endpoint: "/anything/{x}", Method: "GET", RequiredApprovals: 3}
				// The same triple twice, spelled differently, is refused.
				dup := []gate.Rule{strict, {Service: "httpbin", Endpoint: "/anything/{x}", Method: "get", RequiredApprovals: 1}}
				if _, err := fx.cs[0].Propose(ctx, fx.conv, gate.ProposePayload{Rules: &dup}); twokey.ErrorCode(err) != twokey.EBadPayload {
					t.Fatalf("duplicate triple: %v", err)
				}
				// A weaker rule spelled as the concrete path ties with the
				// pattern's: the stricter wins, whether or not the request
				// names the template whose pattern the strict rule names.
				tie := []gate.Rule{strict, {Service: "httpbin", Endpoint: "/anything/1", Method: "GET", RequiredApprovals: 1}}
				for _, pattern := range []string{"/anything/{x}", ""} {
					if m, r := gate.Threshold(2, tie, gate.Target{Service: "httpbin", Path: "/anything/1", Pattern: pattern, Method: "GET"}); m != 3 {
						t.Fatalf("the tie went to the weaker rule (pattern %q): %v", pattern, r)
					}
				}
				// A more specific weaker rule over a broad strict one is the
				// protocol's "most specific wins": one signer cannot install
				// it alone (rules change only with every signer)...
				shadow := []gate.Rule{{Service: "*", Endpoint: "*", Method: "GET", RequiredApprovals: 3}, {Service: "httpbin", Endpoint: "/get", Method: "*", RequiredApprovals: 1}}
				fx.propose(t, 0, gate.ProposePayload{Rules: &shadow}, 1)
				if gi, _ := fx.cs[0].Gate(ctx, fx.conv); len(gi.Rules) != 0 {
					t.Fatalf("two of three signers changed the rules: %v", gi.Rules)
				}
				// ...and once all agree, every request names the rule that
				// set its M, and the audit explains the shadowing.
				fx.propose(t, 0, gate.ProposePayload{Rules: &shadow}, 1, 2)
				id, _ := fx.submit(t, 0, "/get")
				st, _ := fx.cs[0].Request(ctx, fx.conv, id)
				if st.RequiredApprovals != 1 || st.Rule == nil || st.Rule.Service != "httpbin" {
					t.Fatalf("request M=%d rule=%v", st.RequiredApprovals, st.Rule)
				}
				if s := auditShadows(shadow); len(s) != 1 || !strings.Contains(s[0], "stricter") {
					t.Fatalf("shadowing not explained: %q", s)
				}
			}},
		{"a request-spamming signer", "docs/protocol.md C: at most 100 pending requests per submitter per conversation",
			"engine/gatekinds.go submit (rate_limited)", func(t *testing.T) {
				fx := newFixture(t, 2, 2)
				url := fx.srv.URL() + "/v1/conversations/" + fx.conv + "/messages"
				var first string
				for i := 0; i < twokey.MaxPendingPerSigner; i++ {
					id, _ := fx.submit(t, 0, "/get")
					if i == 0 {
						first = id
					}
				}
				env, _ := conversation.SignJSON(fx.ids[0], conversation.KindGateRequest, fx.request("/get"))
				body, _ := json.Marshal(env)
				resp, err := http.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				var eb struct {
					Error struct{ Code, Message string }
				}
				json.NewDecoder(resp.Body).Decode(&eb)
				resp.Body.Close()
				if resp.StatusCode != 429 || eb.Error.Code != twokey.ERateLimited || !strings.Contains(eb.Error.Message, "pending") {
					t.Fatalf("101st pending request: %d %+v", resp.StatusCode, eb.Error)
				}
				fx.submit(t, 1, "/get") // another signer is not affected
				if _, err := fx.cs[0].Cancel(testutil.Ctx(t), fx.conv, first); err != nil {
					t.Fatal(err)
				}
				fx.submit(t, 0, "/get") // a settled request frees a slot
			}},
		{"oversize bodies", "docs/protocol.md C: an envelope is at most 64 KiB (too_large); a WebSocket frame at most 64 KiB + 4 KiB",
			"server/http.go readBody (MaxBytesReader); server/ws.go SetReadLimit", func(t *testing.T) {
				fx := newFixture(t, 1, 1)
				url := fx.srv.URL() + "/v1/conversations/" + fx.conv + "/messages"
				start := time.Now()
				resp, err := http.Post(url, "application/json", bytes.NewReader(make([]byte, 10<<20)))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 413 || time.Since(start) > 5*time.Second {
					t.Fatalf("10 MiB body: %d after %s", resp.StatusCode, time.Since(start))
				}
				tok, _ := fx.cs[0].Token(testutil.Ctx(t))
				ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(fx.srv.URL(), "http")+"/v1/ws", http.Header{"Authorization": {"Bearer " + tok}})
				if err != nil {
					t.Fatal(err)
				}
				defer ws.Close()
				ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte(" "), 200<<10))
				ws.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, _, err = ws.ReadMessage()
				if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
					t.Fatalf("oversize frame: %v, want close 1009", err)
				}
				if _, err := fx.cs[0].Say(testutil.Ctx(t), fx.conv, "still fine"); err != nil {
					t.Fatal(err)
				}
			}},
		{"deeply nested JSON", "docs/protocol.md A and C: JSON nests at most 64 levels",
			"conversation/strictjson.go CheckJSON; encoding/json's own depth limit for the envelope", func(t *testing.T) {
				fx := newFixture(t, 1, 1)
				deep := strings.Repeat("[", 65) + strings.Repeat("]", 65)
				p := fx.request("/post")
				p.Method, p.Body = "POST", json.RawMessage(deep)
				env, _ := conversation.SignJSON(fx.ids[0], conversation.KindGateRequest, p)
				expectCode(t, fx, env, 400, twokey.EBadPayload)
				// An envelope nesting 30,000 levels in a field it ignores.
				raw := []byte(`{"payloadType":"x","payload":"","signatures":[],"x":` + strings.Repeat("[", 30000) + strings.Repeat("]", 30000) + `}`)
				resp, err := http.Post(fx.srv.URL()+"/v1/conversations/"+fx.conv+"/messages", "application/json", bytes.NewReader(raw))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 400 {
					t.Fatalf("deep envelope: %d", resp.StatusCode)
				}
				if len(fx.up.Requests()) != 0 {
					t.Fatal("a nested body reached the upstream")
				}
			}},
		{"malformed signatures", "PROTOCOL 2: exactly one Ed25519 signature over PAE by a canonical, usable key (Wycheproof-style cases)",
			"conversation/envelope.go Verify; conversation/point.go usableKey; crypto/ed25519 (S < L)", func(t *testing.T) {
				fx := newFixture(t, 1, 1)
				good := fx.chatBy(t, fx.ids[0], "hello")
				sig, _ := base64.StdEncoding.DecodeString(good.Signatures[0].Sig)
				k := fx.ids[0].KeyID()
				identity := make([]byte, 32)
				identity[0] = 1 // the neutral point: R = it, S = 0 verifies everywhere
				forged := append(append([]byte(nil), identity...), make([]byte, 32)...)
				cases := []struct {
					name   string
					env    conversation.Envelope
					status int
					code   string
				}{
					{"63-byte signature", withSig(good, k, sig[:63]), 400, twokey.EBadSignature},
					{"65-byte signature", withSig(good, k, append(append([]byte(nil), sig...), 0)), 400, twokey.EBadSignature},
					{"empty signature", withSig(good, k, nil), 400, twokey.EBadSignature},
					{"all-zero signature", withSig(good, k, make([]byte, 64)), 400, twokey.EBadSignature},
					{"non-canonical S (S + L)", withSig(good, k, nonCanonicalS(sig)), 400, twokey.EBadSignature},
					{"R and S swapped", withSig(good, k, append(append([]byte(nil), sig[32:]...), sig[:32]...)), 400, twokey.EBadSignature},
					{"small-order key (identity point) with R=identity, S=0", withSig(good, conversation.KeyID(identity), forged), 400, twokey.EBadEnvelope},
					{"all-zero key with all-zero signature", withSig(good, conversation.KeyID(make([]byte, 32)), make([]byte, 64)), 400, twokey.EBadEnvelope},
					{"two signatures", func() conversation.Envelope {
						e := good
						e.Signatures = append(e.Signatures, e.Signatures[0])
						return e
					}(), 400, twokey.EBadEnvelope},
					{"signature by another key", withSig(good, testutil.Identity(t, "x").KeyID(), sig), 400, twokey.EBadSignature},
				}
				// The neutral-point forgery really does fool a bare verifier:
				// only the key check stands between it and acceptance.
				pae, _ := conversation.PAEOf(good)
				if !ed25519.Verify(ed25519.PublicKey(identity), pae, forged) {
					t.Log("note: crypto/ed25519 refused the neutral-point forgery itself")
				}
				for _, tc := range cases {
					t.Run(tc.name, func(t *testing.T) { expectCode(t, fx, tc.env, tc.status, tc.code) })
				}
				if err := fx.post(t, good); err != nil {
					t.Fatalf("the genuine envelope after all that: %v", err)
				}
			}},
		{"a member forging a gateway record", "PROTOCOL 3 and docs/protocol.md A: gateway kinds are written only by the gateway",
			"engine/post.go checkCommon (forbidden); conversation/record.go ChainVerifier; audit.Verify", func(t *testing.T) {
				fx := newFixture(t, 2, 2)
				id, _ := fx.submit(t, 0, "/get")
				env, _ := conversation.SignJSON(fx.ids[0], conversation.KindGateExecuted, gate.ExecutedPayload{Header: fx.header(), RequestID: id, Status: 200,
					Approvers: []string{fx.ids[0].KeyID(), fx.ids[1].KeyID()}})
				expectCode(t, fx, env, 403, twokey.EForbidden)
			}},
		{"an outsider approving or reading", "PROTOCOL 5 and 7: only signers vote; only members read",
			"engine/post.go PostMessage (not_member); engine/query.go member", func(t *testing.T) {
				fx := newFixture(t, 2, 2)
				id, d := fx.submit(t, 0, "/get")
				eve := testutil.Identity(t, "eve")
				env, _ := conversation.SignJSON(eve, conversation.KindGateApprove, gate.VotePayload{Header: fx.header(), RequestID: id, RequestDigest: d})
				expectCode(t, fx, env, 403, twokey.ENotMember)
				ce := testutil.Client(fx.srv.URL(), eve, nil)
				if _, err := ce.Records(testutil.Ctx(t), fx.conv, 0, 10); twokey.ErrorCode(err) != twokey.ENotMember {
					t.Fatalf("outsider read: %v", err)
				}
				// A signature claiming a member's key id without its key.
				expectCode(t, fx, relabel(env, fx.ids[1].KeyID()), 400, twokey.EBadSignature)
			}},
		{"a non-member asking for a checkpoint", "PROTOCOL 7: only members read a conversation; the checkpoint (this implementation's) is a read",
			"engine/checkpoint.go Checkpoint (engine/query.go member: not_member); server/http.go auth (unauthorized)", func(t *testing.T) {
				fx := newFixture(t, 2, 2)
				ctx := testutil.Ctx(t)
				eve := testutil.Client(fx.srv.URL(), testutil.Identity(t, "eve"), nil)
				if cp, err := eve.Checkpoint(ctx, fx.conv); twokey.ErrorCode(err) != twokey.ENotMember || cp != nil {
					t.Fatalf("a non-member's checkpoint: %v %v, want not_member", cp, err)
				}
				resp, err := http.Get(fx.srv.URL() + "/v1/conversations/" + fx.conv + "/checkpoint")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 401 {
					t.Fatalf("a checkpoint without a token: %d, want 401", resp.StatusCode)
				}
				// A member gets one, signed by the gateway, that the log matches.
				cp, err := fx.cs[1].Checkpoint(ctx, fx.conv)
				if err != nil {
					t.Fatal(err)
				}
				x, err := audit.Fetch(ctx, fx.cs[1], fx.conv)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := audit.Verify(x, audit.Options{Gateway: fx.gw, Checkpoints: []audit.Checkpoint{{Seq: cp.Seq, Chain: cp.Chain, Envelope: cp.Envelope}}}); err != nil {
					t.Fatalf("a member's checkpoint: %v", err)
				}
			}},
		{"a key sent to another host", "PROTOCOL 5 (submit): the URL stays below the service's base URL; the secret's header cannot be set; redirects are not followed",
			"catalog/endpoint.go Service.EndpointOf (host_mismatch); engine/gatekinds.go submit; engine/engine.go CheckRedirect", func(t *testing.T) {
				fx := newFixture(t, 1, 1)
				host := strings.TrimPrefix(fx.up.URL, "http://")
				for _, u := range []string{"http://" + host + "@127.0.0.2:1/httpbin/get", "http://127.0.0.1:1/httpbin/get",
					"http://" + host + "/httpbin/../admin", "http://" + host + "/httpbin%2fx", "http://" + host + "/httpbinx/get"} {
					p := fx.request("/get")
					p.URL = u
					env, _ := conversation.SignJSON(fx.ids[0], conversation.KindGateRequest, p)
					expectCode(t, fx, env, 400, twokey.EHostMismatch)
				}
				p := fx.request("/headers")
				p.Headers = map[string]string{"authorization": "Bearer mine"}
				env, _ := conversation.SignJSON(fx.ids[0], conversation.KindGateRequest, p)
				expectCode(t, fx, env, 400, twokey.EBadPayload)
				if len(fx.up.Requests()) != 0 {
					t.Fatal("the upstream got a call")
				}
				id, _ := fx.submit(t, 0, "/redirect-away")
				if fx.wait(t, id) != gate.StateExecuted || len(fx.up.Requests()) != 1 {
					t.Fatal("the redirect was followed")
				}
			}},
		{"a replayed session", "PROTOCOL 7 and docs/protocol.md B: a session.open nonce is accepted once, within 5 minutes",
			"engine/engine.go OpenSession", func(t *testing.T) {
				fx := newFixture(t, 1, 1)
				env, _ := conversation.SignJSON(fx.ids[0], conversation.KindSessionOpen, map[string]string{
					"created_at": conversation.FormatTime(time.Now()), "nonce": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 16))})
				body, _ := json.Marshal(env)
				for i, want := range []int{201, 401} {
					resp, err := http.Post(fx.srv.URL()+"/v1/sessions", "application/json", bytes.NewReader(body))
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != want {
						t.Fatalf("session attempt %d: %d, want %d", i+1, resp.StatusCode, want)
					}
				}
			}},
		{"a secret leaking", "PROTOCOL 8: the key is never in the log, the database, a response or a log line",
			"vault (AES-256-GCM at rest, Inject at the last moment, Redact); engine/execute.go", func(t *testing.T) {
				t.Skip("proved by TestSecretNeverLeaks, which runs the whole flow with the CLI")
			}},
		{"the server rewriting history", "PROTOCOL 3: the hash chain; this implementation's gateway-signed checkpoint",
			"audit/verify.go Verify (chain, checkpoints, anchors)", func(t *testing.T) {
				t.Skip("proved by audit.TestTamperedExportsFail and by TestCrashRounds, which checks every earlier checkpoint after each restart")
			}},
	}
}

// attackSets are the further sets of attacks other files of this package
// add (each file's init appends its own), so a theme's cases live beside
// their helpers; allAttacks is the whole suite.
var attackSets []func() []attack

func allAttacks() []attack {
	all := attacks()
	for _, set := range attackSets {
		all = append(all, set()...)
	}
	return all
}

// TestAttacks runs the attack suite: one case per attack.
func TestAttacks(t *testing.T) {
	for _, a := range allAttacks() {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			a.run(t)
		})
	}
}

// TestSecurityDocIndexesEveryAttack keeps docs/security.md in step with the
// suite: every attack is listed there by name.
func TestSecurityDocIndexesEveryAttack(t *testing.T) {
	doc, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range allAttacks() {
		if !bytes.Contains(doc, []byte(a.name)) {
			t.Errorf("docs/security.md does not list the attack %q", a.name)
		}
	}
}

// The client package is used by helpers in other files; keep the import
// honest here too.
var _ = client.NewID

// auditShadows is the audit's explanation of a rule set's shadowing.
func auditShadows(rules []gate.Rule) []string {
	var out []string
	for _, s := range gate.Shadows(rules) {
		out = append(out, s.String())
	}
	return out
}
