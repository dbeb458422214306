package audit_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey/audit"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// A forged gateway (one whose key the test holds) can write any log; these
// tests check that the replay catches every decision the real gateway
// would never make, the lies a dishonest or broken gateway could sign.

const convID = "0b5e8a3c-1c2d-4e5f-8a9b-0c1d2e3f4a5b"

type builder struct {
	t     *testing.T
	gw    *conversation.Identity
	ids   []*conversation.Identity
	now   time.Time
	recs  []conversation.Record
	chain conversation.Chain
	m     int         // the default M set by gated
	rules []gate.Rule // the rules set by gated
	paths map[string]string
	// patterns holds the template pattern of requests that name one
	// (svc.item: /item/{id}), which the gateway signs with the decision.
	patterns map[string]string
}

func newBuilder(t *testing.T, n int) *builder {
	b := &builder{t: t, now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), paths: map[string]string{}, patterns: map[string]string{}}
	var err error
	if b.gw, err = conversation.NewIdentity("gateway"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		id, _ := conversation.NewIdentity(string(rune('a' + i)))
		b.ids = append(b.ids, id)
	}
	return b
}

func (b *builder) key(i int) string { return b.ids[i].KeyID() }

// add signs fields (plus the header) as who (-1: the gateway) and appends.
func (b *builder) add(who int, kind string, fields map[string]any) []byte {
	b.t.Helper()
	b.now = b.now.Add(time.Second)
	p := map[string]any{"conversation": convID, "created_at": conversation.FormatTime(b.now)}
	id := b.gw
	if who >= 0 {
		id = b.ids[who]
	}
	if conversation.NeedsGateway(kind) || who < 0 {
		p["gateway"] = b.gw.KeyID()
	}
	for k, v := range fields {
		p[k] = v
	}
	raw, err := json.Marshal(p)
	if err != nil {
		b.t.Fatal(err)
	}
	m := &conversation.Message{Envelope: conversation.Sign(id, kind, raw), Kind: kind, Author: id.KeyID(), Payload: raw}
	r := conversation.NewRecord(uint64(len(b.recs)+1), conversation.FormatTime(b.now), m, b.chain)
	b.chain, _ = conversation.ParseChain(r.Chain)
	b.recs = append(b.recs, r)
	return raw
}

// gated starts a conversation of every identity with the gateway on at m.
func (b *builder) gated(m int, rules []gate.Rule) {
	members := []conversation.Member{}
	for i := 1; i < len(b.ids); i++ {
		members = append(members, conversation.Member{Key: b.key(i), Name: b.ids[i].Name})
	}
	b.add(0, conversation.KindConversationCreate, map[string]any{"name": "ops", "members": members})
	en := map[string]any{"required_approvals": m}
	if rules != nil {
		en["rules"] = rules
	}
	b.add(0, conversation.KindGateEnable, en)
	signers := []string{}
	for i := range b.ids {
		signers = append(signers, b.key(i))
	}
	if rules == nil {
		rules = []gate.Rule{}
	}
	b.m, b.rules = m, gate.Normalize(rules)
	b.add(-1, conversation.KindGateEnabled, map[string]any{"signers": signers, "required_approvals": m, "rules": gate.Normalize(rules), "box_key": "x"})
}

const base = "https://api.example.com/v1"

// request submits a GET of path as who and returns its id and digest.
func (b *builder) request(who int, id, path string, ttl time.Duration) (string, string) {
	b.paths[id] = path
	raw := b.add(who, conversation.KindGateRequest, map[string]any{"request_id": id, "service": "svc", "method": "GET",
		"url": base + path, "expires_at": conversation.FormatTime(b.now.Add(ttl))})
	return id, conversation.Digest(raw)
}

func (b *builder) approve(who int, id, digest string) {
	b.add(who, conversation.KindGateApprove, map[string]any{"request_id": id, "request_digest": digest})
}

// decided adds to fields the decision facts an honest gateway signs for
// request id (a GET of svc at the path it was submitted with): M and the
// rule by the rules gated set, and the endpoint.
func (b *builder) decided(id string, fields map[string]any) map[string]any {
	path, ok := b.paths[id]
	if !ok {
		b.t.Fatalf("decided: request %s was not submitted with b.request", id)
	}
	m, rule := gate.Threshold(b.m, b.rules, gate.Target{Service: "svc", Path: path, Pattern: b.patterns[id], Method: "GET"})
	fields["required_approvals"], fields["rule"], fields["endpoint"] = m, rule, path
	if p := b.patterns[id]; p != "" {
		fields["pattern"] = p
	}
	return fields
}

func (b *builder) executed(id string, approvers ...int) {
	keys := []string{}
	for _, a := range approvers {
		keys = append(keys, b.key(a))
	}
	b.add(-1, conversation.KindGateExecuted, b.decided(id, map[string]any{"request_id": id, "status": 200, "duration_ms": 3, "approvers": keys}))
	body := `{"ok":true}`
	b.add(-1, conversation.KindGateResponse, map[string]any{"request_id": id, "status": 200, "content_type": "application/json",
		"headers": map[string]string{}, "body": body, "truncated": false, "body_digest": conversation.Digest([]byte(body)), "redactions": 0})
}

// lowerMTo1 applies proposal id (M to 1) with every signer's approval.
func (b *builder) lowerMTo1(id string) {
	raw := b.add(0, conversation.KindMemberPropose, map[string]any{"proposal_id": id, "required_approvals": 1})
	b.add(1, conversation.KindMemberApprove, map[string]any{"proposal_id": id, "proposal_digest": conversation.Digest(raw)})
	b.add(2, conversation.KindMemberApprove, map[string]any{"proposal_id": id, "proposal_digest": conversation.Digest(raw)})
	b.add(-1, conversation.KindMemberChanged, map[string]any{"proposal_id": id, "signers": []string{b.key(0), b.key(1), b.key(2)},
		"members": []conversation.Member{{Key: b.key(0)}, {Key: b.key(1), Name: "b"}, {Key: b.key(2), Name: "c"}}, "required_approvals": 1, "rules": []gate.Rule{}})
}

// again appends record i's envelope once more, as a server that accepted
// a replayed envelope would.
func (b *builder) again(i int) {
	b.t.Helper()
	b.now = b.now.Add(time.Second)
	m, err := conversation.Verify(b.recs[i].Envelope)
	if err != nil {
		b.t.Fatal(err)
	}
	r := conversation.NewRecord(uint64(len(b.recs)+1), conversation.FormatTime(b.now), m, b.chain)
	b.chain, _ = conversation.ParseChain(r.Chain)
	b.recs = append(b.recs, r)
}

func (b *builder) export() *audit.Export {
	last := b.recs[len(b.recs)-1]
	env, _ := conversation.SignJSON(b.gw, conversation.KindCheckpoint, map[string]any{
		"conversation": convID, "created_at": last.ReceivedAt, "gateway": b.gw.KeyID(), "seq": last.Seq, "chain": last.Chain})
	x := audit.NewExport(convID, b.gw.KeyID(), "", nil, nil, audit.Checkpoint{Seq: last.Seq, Chain: last.Chain, Envelope: env}, b.recs, b.now)
	x.Services = []audit.Service{{Name: "svc", BaseURL: base}}
	x.Templates = []audit.Template{{Name: "svc.item", Service: "svc", Method: "GET", Endpoint: "/item/{id}"}}
	return x
}

const (
	r1 = "11111111-1111-4111-8111-111111111111"
	r2 = "22222222-2222-4222-8222-222222222222"
)

func TestReplayCatchesWhatTheGatewayMustNeverDo(t *testing.T) {
	cases := []struct {
		name  string
		build func(b *builder) // the last record it adds is the one that must fail
		check audit.Check
	}{
		{"executed below M", func(b *builder) {
			b.gated(2, nil)
			b.request(0, r1, "/a", time.Hour)
			b.add(-1, conversation.KindGateExecuted, b.decided(r1, map[string]any{"request_id": r1, "status": 200, "approvers": []string{b.key(0)}}))
		}, audit.CheckThreshold},
		{"executed twice", func(b *builder) {
			b.gated(1, nil)
			b.request(0, r1, "/a", time.Hour)
			b.executed(r1, 0)
			b.add(-1, conversation.KindGateExecuted, b.decided(r1, map[string]any{"request_id": r1, "status": 200, "approvers": []string{b.key(0)}}))
		}, audit.CheckOnce},
		{"failed after it executed", func(b *builder) {
			b.gated(1, nil)
			b.request(0, r1, "/a", time.Hour)
			b.executed(r1, 0)
			b.add(-1, conversation.KindGateFailed, b.decided(r1, map[string]any{"request_id": r1, "reason": "interrupted"}))
		}, audit.CheckOnce},
		{"the same request id submitted twice", func(b *builder) {
			b.gated(2, nil)
			b.request(0, r1, "/a", time.Hour)
			b.request(1, r1, "/b", time.Hour)
		}, audit.CheckOnce},
		{"an approver listed who never approved", func(b *builder) {
			b.gated(2, nil)
			b.request(0, r1, "/a", time.Hour)
			_, d := b.request(1, r2, "/b", time.Hour)
			b.approve(2, r2, d)
			b.add(-1, conversation.KindGateExecuted, b.decided(r2, map[string]any{"request_id": r2, "status": 200, "approvers": []string{b.key(1), b.key(0)}}))
		}, audit.CheckThreshold},
		{"the same approver listed twice", func(b *builder) {
			b.gated(2, nil)
			_, d := b.request(0, r1, "/a", time.Hour)
			b.approve(1, r1, d)
			b.add(-1, conversation.KindGateExecuted, b.decided(r1, map[string]any{"request_id": r1, "status": 200, "approvers": []string{b.key(0), b.key(0)}}))
		}, audit.CheckThreshold},
		{"an approver under a second spelling of a key", func(b *builder) {
			b.gated(2, nil)
			_, d := b.request(0, r1, "/a", time.Hour)
			b.approve(1, r1, d)
			b.add(-1, conversation.KindGateExecuted, b.decided(r1, map[string]any{"request_id": r1, "status": 200, "approvers": []string{b.key(0), b.key(1) + "="}}))
		}, audit.CheckThreshold},
		{"a signer approving twice", func(b *builder) {
			b.gated(3, nil)
			_, d := b.request(0, r1, "/a", time.Hour)
			b.approve(1, r1, d)
			b.approve(1, r1, d)
		}, audit.CheckThreshold},
		{"the submitter approving its own request", func(b *builder) {
			b.gated(2, nil)
			_, d := b.request(0, r1, "/a", time.Hour)
			b.approve(0, r1, d)
		}, audit.CheckThreshold},
		{"an approval of another version of the request", func(b *builder) {
			b.gated(2, nil)
			b.request(0, r1, "/a", time.Hour)
			b.approve(1, r1, conversation.Digest([]byte("another version")))
		}, audit.CheckState},
		{"an approval after expiry", func(b *builder) {
			b.gated(2, nil)
			_, d := b.request(0, r1, "/a", 1500*time.Millisecond)
			b.approve(1, r1, d)
		}, audit.CheckState},
		{"a vote after resolution", func(b *builder) {
			b.gated(1, nil)
			_, d := b.request(0, r1, "/a", time.Hour)
			b.executed(r1, 0)
			b.approve(1, r1, d)
		}, audit.CheckState},
		{"expired before its time", func(b *builder) {
			b.gated(2, nil)
			b.request(0, r1, "/a", time.Hour)
			b.add(-1, conversation.KindGateExpired, map[string]any{"request_id": r1, "reason": "expired"})
		}, audit.CheckState},
		{"a rule's stricter M ignored", func(b *builder) {
			b.gated(1, []gate.Rule{{Service: "svc", Endpoint: "/item/{id}", Method: "GET", RequiredApprovals: 2}})
			b.paths[r1], b.patterns[r1] = "/item/7", "/item/{id}"
			b.add(0, conversation.KindGateRequest, map[string]any{"request_id": r1, "template": "svc.item", "service": "svc", "method": "GET",
				"url": base + "/item/7", "expires_at": conversation.FormatTime(b.now.Add(time.Hour))})
			b.add(-1, conversation.KindGateExecuted, b.decided(r1, map[string]any{"request_id": r1, "status": 200, "approvers": []string{b.key(0)}}))
		}, audit.CheckThreshold},
		{"a signed M below the rule's", func(b *builder) {
			b.gated(1, []gate.Rule{{Service: "svc", Endpoint: "/item/{id}", Method: "GET", RequiredApprovals: 2}})
			b.request(0, r1, "/item/7", time.Hour)
			b.add(-1, conversation.KindGateExecuted, map[string]any{"request_id": r1, "status": 200, "approvers": []string{b.key(0)},
				"required_approvals": 1, "rule": nil, "endpoint": "/item/7"})
		}, audit.CheckDecision},
		{"the right M signed under the wrong rule", func(b *builder) {
			// The pattern rule's 2 holds (default 1), but the gateway signs
			// M 2 as the default's.
			b.gated(1, []gate.Rule{{Service: "svc", Endpoint: "/item/{id}", Method: "GET", RequiredApprovals: 2}})
			_, d := b.request(0, r1, "/item/7", time.Hour)
			b.approve(1, r1, d)
			b.add(-1, conversation.KindGateExecuted, map[string]any{"request_id": r1, "status": 200, "approvers": []string{b.key(0), b.key(1)},
				"required_approvals": 2, "rule": nil, "endpoint": "/item/7"})
		}, audit.CheckDecision},
		{"a signed endpoint split at another base URL", func(b *builder) {
			// https://api.example.com/v1/item/7 read as /v1/item/7 below
			// https://api.example.com, which no rule names: M 1.
			b.gated(1, []gate.Rule{{Service: "svc", Endpoint: "/item/{id}", Method: "GET", RequiredApprovals: 2}})
			b.request(0, r1, "/item/7", time.Hour)
			b.add(-1, conversation.KindGateExecuted, map[string]any{"request_id": r1, "status": 200, "approvers": []string{b.key(0)},
				"required_approvals": 1, "rule": nil, "endpoint": "/v1/item/7"})
		}, audit.CheckDecision},
		{"a signed endpoint that is not the end of the URL", func(b *builder) {
			b.gated(1, []gate.Rule{{Service: "svc", Endpoint: "/item/{id}", Method: "GET", RequiredApprovals: 2}})
			b.request(0, r1, "/item/7", time.Hour)
			b.add(-1, conversation.KindGateExecuted, map[string]any{"request_id": r1, "status": 200, "approvers": []string{b.key(0)},
				"required_approvals": 1, "rule": nil, "endpoint": "/tem/7"})
		}, audit.CheckDecision},
		{"an execution that signs no decision", func(b *builder) {
			b.gated(1, nil)
			b.request(0, r1, "/a", time.Hour)
			b.add(-1, conversation.KindGateExecuted, map[string]any{"request_id": r1, "status": 200, "approvers": []string{b.key(0)}})
		}, audit.CheckDecision},
		{"a rejection signed under a higher M", func(b *builder) {
			b.gated(2, nil)
			_, d := b.request(0, r1, "/a", time.Hour)
			b.add(1, conversation.KindGateReject, map[string]any{"request_id": r1, "request_digest": d})
			b.add(-1, conversation.KindGateRejected, map[string]any{"request_id": r1, "reason": "rejected",
				"required_approvals": 3, "rule": nil, "endpoint": "/a"})
		}, audit.CheckDecision},
		{"a removed member's approval", func(b *builder) {
			b.gated(2, nil)
			raw := b.add(0, conversation.KindMemberPropose, map[string]any{"proposal_id": r2, "remove": []string{b.key(2)}})
			b.add(1, conversation.KindMemberApprove, map[string]any{"proposal_id": r2, "proposal_digest": conversation.Digest(raw)})
			b.add(-1, conversation.KindMemberChanged, map[string]any{"proposal_id": r2, "signers": []string{b.key(0), b.key(1)},
				"members": []conversation.Member{{Key: b.key(0)}, {Key: b.key(1), Name: "b"}}, "required_approvals": 2, "rules": []gate.Rule{}})
			_, d := b.request(0, r1, "/a", time.Hour)
			b.approve(2, r1, d)
		}, audit.CheckAuthority},
		{"a membership change without every signer", func(b *builder) {
			b.gated(2, nil)
			b.add(0, conversation.KindMemberPropose, map[string]any{"proposal_id": r2, "required_approvals": 1})
			b.add(-1, conversation.KindMemberChanged, map[string]any{"proposal_id": r2, "signers": []string{b.key(0), b.key(1), b.key(2)},
				"members": []conversation.Member{{Key: b.key(0)}, {Key: b.key(1), Name: "b"}, {Key: b.key(2), Name: "c"}}, "required_approvals": 1, "rules": []gate.Rule{}})
		}, audit.CheckThreshold},
		{"a chat message replayed", func(b *builder) {
			b.gated(2, nil)
			b.add(1, conversation.KindChatMessage, map[string]any{"text": "hi"})
			b.again(len(b.recs) - 1)
		}, audit.CheckOnce},
		{"an applied membership change replayed", func(b *builder) {
			b.gated(2, nil)
			b.lowerMTo1(r2)
			b.again(len(b.recs) - 4)
		}, audit.CheckOnce},
		{"a proposal id used again after it applied", func(b *builder) {
			b.gated(2, nil)
			b.lowerMTo1(r2)
			b.add(1, conversation.KindMemberPropose, map[string]any{"proposal_id": r2, "required_approvals": 3})
		}, audit.CheckOnce},
		{"a revoked secret stored again", func(b *builder) {
			b.gated(2, nil)
			stored := map[string]any{"secret_id": r2, "service": "svc", "header_name": "Authorization", "header_template": "Bearer {value}",
				"expires_at": nil, "provisioned_by": b.key(1)}
			b.add(-1, conversation.KindGateSecretStored, stored)
			b.add(0, conversation.KindGateSecretRevoke, map[string]any{"secret_id": r2})
			b.add(-1, conversation.KindGateSecretRevoked, map[string]any{"secret_ids": []string{r2}, "by": b.key(0)})
			b.add(-1, conversation.KindGateSecretStored, stored)
		}, audit.CheckOnce},
		{"an envelope received long after it was signed", func(b *builder) {
			b.gated(2, nil)
			b.add(1, conversation.KindChatMessage, map[string]any{"text": "late", "created_at": conversation.FormatTime(b.now.Add(-6 * time.Minute))})
		}, audit.CheckRecord},
		{"a pending request left alive by a membership change", func(b *builder) {
			b.gated(2, nil)
			b.request(0, r1, "/a", time.Hour)
			raw := b.add(0, conversation.KindMemberPropose, map[string]any{"proposal_id": r2, "required_approvals": 3})
			b.add(1, conversation.KindMemberApprove, map[string]any{"proposal_id": r2, "proposal_digest": conversation.Digest(raw)})
			b.add(2, conversation.KindMemberApprove, map[string]any{"proposal_id": r2, "proposal_digest": conversation.Digest(raw)})
			b.add(-1, conversation.KindMemberChanged, map[string]any{"proposal_id": r2, "signers": []string{b.key(0), b.key(1), b.key(2)},
				"members": []conversation.Member{{Key: b.key(0)}, {Key: b.key(1), Name: "b"}, {Key: b.key(2), Name: "c"}}, "required_approvals": 3, "rules": []gate.Rule{}})
			b.add(1, conversation.KindChatMessage, map[string]any{"text": "hi"})
		}, audit.CheckState},
		{"a response whose digest is not its body's", func(b *builder) {
			b.gated(1, nil)
			b.request(0, r1, "/a", time.Hour)
			b.add(-1, conversation.KindGateExecuted, b.decided(r1, map[string]any{"request_id": r1, "status": 200, "approvers": []string{b.key(0)}}))
			b.add(-1, conversation.KindGateResponse, map[string]any{"request_id": r1, "status": 200, "body": "hi", "truncated": false,
				"body_digest": conversation.Digest([]byte("bye"))})
		}, audit.CheckState},
		{"a request outside its service's base URL", func(b *builder) {
			b.gated(1, nil)
			b.add(0, conversation.KindGateRequest, map[string]any{"request_id": r1, "service": "svc", "method": "GET",
				"url": "https://evil.example/v1/a", "expires_at": conversation.FormatTime(b.now.Add(time.Hour))})
		}, audit.CheckFormat},
		{"a member's payload bound to another gateway", func(b *builder) {
			b.gated(2, nil)
			b.add(0, conversation.KindGateRequest, map[string]any{"request_id": r1, "service": "svc", "method": "GET", "gateway": b.key(1),
				"url": base + "/a", "expires_at": conversation.FormatTime(b.now.Add(time.Hour))})
		}, audit.CheckBinding},
		{"a payload of another conversation", func(b *builder) {
			b.gated(2, nil)
			b.add(1, conversation.KindChatMessage, map[string]any{"text": "hi", "conversation": r2})
		}, audit.CheckBinding},
		{"a gateway record signed by a member", func(b *builder) {
			b.gated(1, nil)
			b.request(0, r1, "/a", time.Hour)
			b.add(0, conversation.KindGateExecuted, map[string]any{"request_id": r1, "status": 200, "approvers": []string{b.key(0)}})
		}, audit.CheckGateway},
		{"a member's kind signed by the gateway", func(b *builder) {
			b.gated(2, nil)
			b.add(-1, conversation.KindChatMessage, map[string]any{"text": "I am everyone"})
		}, audit.CheckGateway},
		{"a rejection that left M reachable", func(b *builder) {
			b.gated(2, nil)
			b.request(0, r1, "/a", time.Hour)
			b.add(-1, conversation.KindGateRejected, map[string]any{"request_id": r1, "reason": "rejected"})
		}, audit.CheckState},
		{"the log ends before a follow-up of the same commit", func(b *builder) {
			b.gated(1, nil)
			b.request(0, r1, "/a", time.Hour)
			b.add(-1, conversation.KindGateExecuted, b.decided(r1, map[string]any{"request_id": r1, "status": 200, "approvers": []string{b.key(0)}}))
		}, audit.CheckState},
		{"a non-admin enabling the gateway", func(b *builder) {
			b.add(0, conversation.KindConversationCreate, map[string]any{"name": "ops", "members": []conversation.Member{{Key: b.key(1)}}})
			b.add(1, conversation.KindGateEnable, map[string]any{"required_approvals": 1})
		}, audit.CheckAuthority},
		{"a 101st pending request of one signer", func(b *builder) {
			b.gated(2, nil)
			for i := 0; i <= 100; i++ {
				id := "33333333-3333-4333-8333-" + padInt(i)
				b.request(0, id, "/a", time.Hour)
			}
		}, audit.CheckState},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(t, 3)
			tc.build(b)
			_, err := audit.Verify(b.export(), audit.Options{})
			f, ok := err.(*audit.Failure)
			if !ok {
				t.Fatalf("verified (err %v)", err)
			}
			want := uint64(len(b.recs))
			if f.Check != tc.check || f.Seq != want {
				t.Fatalf("failed at record %d (%s check), want record %d (%s check): %v", f.Seq, f.Check, want, tc.check, f)
			}
		})
	}
}

func padInt(i int) string {
	s := "000000000000"
	d := []byte(s)
	for p := len(d) - 1; i > 0; p-- {
		d[p] = byte('0' + i%10)
		i /= 10
	}
	return string(d)
}

// The honest counterparts of the cases above verify.
func TestReplayAcceptsHonestLogs(t *testing.T) {
	b := newBuilder(t, 3)
	b.gated(2, []gate.Rule{{Service: "svc", Endpoint: "/item/{id}", Method: "GET", RequiredApprovals: 3}})
	_, d := b.request(0, r1, "/a", time.Hour)
	b.approve(2, r1, d)
	b.executed(r1, 0, 2)
	b.paths[r2], b.patterns[r2] = "/item/7", "/item/{id}"
	raw := b.add(1, conversation.KindGateRequest, map[string]any{"request_id": r2, "template": "svc.item", "service": "svc", "method": "GET",
		"url": base + "/item/7", "expires_at": conversation.FormatTime(b.now.Add(time.Hour))})
	b.approve(0, r2, conversation.Digest(raw))
	b.approve(2, r2, conversation.Digest(raw))
	b.add(-1, conversation.KindGateFailed, b.decided(r2, map[string]any{"request_id": r2, "reason": "interrupted"}))
	// A program's request, written by the gateway, needs M signers.
	b.paths["44444444-4444-4444-8444-444444444444"] = "/p"
	raw = b.add(-1, conversation.KindGateRequest, map[string]any{"request_id": "44444444-4444-4444-8444-444444444444", "service": "svc",
		"method": "GET", "url": base + "/p", "expires_at": conversation.FormatTime(b.now.Add(time.Hour)), "program": "ci"})
	b.approve(1, "44444444-4444-4444-8444-444444444444", conversation.Digest(raw))
	b.approve(2, "44444444-4444-4444-8444-444444444444", conversation.Digest(raw))
	b.executed("44444444-4444-4444-8444-444444444444", 1, 2)
	rep, err := audit.Verify(b.export(), audit.Options{Gateway: b.gw.KeyID()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Executed != 2 || rep.Failed != 1 || rep.Interrupted != 1 {
		t.Fatalf("%+v", rep)
	}
}

// TestCatalogFactsCannotLowerM is the review's case: a gateway executes a
// request with one approval although a rule on its template's pattern asks
// for two, and the export's unsigned catalog is edited to make that look
// right. Whatever the gateway signs, the audit fails, but for one lie
// that is consistent through and through (a base URL that is a prefix of
// the real one, in the export and in the signed endpoint alike): that one
// verifies, because nothing the auditor holds says where the base URL
// ends, but the gateway has signed the false endpoint and the summary
// prints it with its M and rule.
func TestCatalogFactsCannotLowerM(t *testing.T) {
	rule := []gate.Rule{{Service: "svc", Endpoint: "/item/{id}", Method: "GET", RequiredApprovals: 2}}
	edits := map[string]func(x *audit.Export){
		"none":            func(x *audit.Export) {},
		"pattern renamed": func(x *audit.Export) { x.Templates[0].Endpoint = "/item/{x}" },
		"base URL shortened": func(x *audit.Export) {
			x.Services[0].BaseURL = "https://api.example.com"
			x.Templates[0].Endpoint = "/v1/item/{id}"
		},
	}
	lies := map[string]map[string]any{
		"honest facts": {"required_approvals": 2, "rule": gate.Normalize(rule)[0], "endpoint": "/item/7", "pattern": "/item/{id}"},
		"M lowered":    {"required_approvals": 1, "rule": nil, "endpoint": "/item/7", "pattern": "/item/{id}"},
		"URL re-split": {"required_approvals": 1, "rule": nil, "endpoint": "/v1/item/7", "pattern": "/v1/item/{id}"},
	}
	for en, edit := range edits {
		for ln, facts := range lies {
			t.Run(en+", "+ln, func(t *testing.T) {
				b := newBuilder(t, 3)
				b.gated(1, rule)
				b.add(0, conversation.KindGateRequest, map[string]any{"request_id": r1, "template": "svc.item", "service": "svc", "method": "GET",
					"url": base + "/item/7", "expires_at": conversation.FormatTime(b.now.Add(time.Hour))})
				fields := map[string]any{"request_id": r1, "status": 200, "approvers": []string{b.key(0)}}
				for k, v := range facts {
					fields[k] = v
				}
				b.add(-1, conversation.KindGateExecuted, fields)
				body := `{"ok":true}`
				b.add(-1, conversation.KindGateResponse, map[string]any{"request_id": r1, "status": 200, "content_type": "application/json",
					"headers": map[string]string{}, "body": body, "truncated": false, "body_digest": conversation.Digest([]byte(body)), "redactions": 0})
				x := b.export()
				edit(x)
				rep, err := audit.Verify(x, audit.Options{Gateway: b.gw.KeyID()})
				if en == "base URL shortened" && ln == "URL re-split" {
					if err != nil {
						t.Fatalf("the consistent lie: %v", err)
					}
					if s := rep.Summary(); !strings.Contains(s, "request "+r1+" GET svc /v1/item/7: M 1 by default, 1 approval, executed") {
						t.Fatalf("the summary does not show the signed endpoint and M:\n%s", s)
					}
					return
				}
				f, ok := err.(*audit.Failure)
				if !ok {
					t.Fatalf("a below-M execution verified:\n%s", rep.Summary())
				}
				if f.Seq != 5 || (f.Check != audit.CheckDecision && f.Check != audit.CheckThreshold) {
					t.Fatalf("failed at %d (%s), want the gate.executed, record 5: %v", f.Seq, f.Check, f)
				}
				t.Log(f)
			})
		}
	}
}

// TestEditedReceivedAtFails: received_at is the server's and unsigned. A
// late approval made to look timely by moving its received_at back past
// the previous record, or more than the 5 minutes of clock skew the server
// allows before its signed created_at, fails the audit.
func TestEditedReceivedAtFails(t *testing.T) {
	build := func(t *testing.T, late time.Duration) (*audit.Export, int) {
		b := newBuilder(t, 3)
		b.gated(2, nil)
		_, d := b.request(0, r1, "/a", 10*time.Second)
		b.add(1, conversation.KindChatMessage, map[string]any{"text": "soon"})
		b.now = b.now.Add(late)
		b.approve(2, r1, d)
		i := len(b.recs) - 1
		b.executed(r1, 0, 2)
		return b.export(), i
	}
	// As the late approval really was: refused as after expiry.
	x, i := build(t, 6*time.Minute)
	_, err := audit.Verify(x, audit.Options{})
	if f, ok := err.(*audit.Failure); !ok || f.Check != audit.CheckState || f.Seq != uint64(i+1) {
		t.Fatalf("the honest late approval: %v", err)
	}
	for name, tc := range map[string]struct {
		late time.Duration
		to   func(x *audit.Export, i int) string
	}{
		"moved to before the previous record":             {time.Minute, func(x *audit.Export, i int) string { return x.Records[i-2].ReceivedAt }},
		"moved more than 5 minutes before its created_at": {6 * time.Minute, func(x *audit.Export, i int) string { return x.Records[i-1].ReceivedAt }},
	} {
		t.Run(name, func(t *testing.T) {
			x, i := build(t, tc.late)
			x.Records[i].ReceivedAt = tc.to(x, i)
			_, err := audit.Verify(x, audit.Options{})
			f, ok := err.(*audit.Failure)
			if !ok || f.Check != audit.CheckRecord || f.Seq != uint64(i+1) || !strings.Contains(f.Reason, "received_at") {
				t.Fatalf("an edited received_at: %v, want a record failure at %d", err, i+1)
			}
		})
	}
}
