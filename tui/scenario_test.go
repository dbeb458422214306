package tui

import (
	"testing"
	"time"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// Request ids of the scenario.
const (
	convOps = "0b7c2e4a-1f3d-4c5b-9a8e-000000000001"
	convDev = "0b7c2e4a-1f3d-4c5b-9a8e-000000000002"
	r1      = "3f2a9c1d-5b6e-4f70-8a91-000000000001" // httpbin.headers, executed
	r2      = "7c1e0b42-5b6e-4f70-8a91-000000000002" // httpbin.echo, rejected
	r3      = "a41d9e03-5b6e-4f70-8a91-000000000003" // leet.translate, expired
	r4      = "c9b2f104-5b6e-4f70-8a91-000000000004" // httpbin.headers, failed
	r5      = "d0e3a205-5b6e-4f70-8a91-000000000005" // dogs.breed, cancelled
	r6      = "e5f6a706-5b6e-4f70-8a91-000000000006" // hn.get-item, pending for bob
	prop1   = "f1a2b3c4-5b6e-4f70-8a91-000000000007"
)

// scenario is a conversation that holds every kind of card, and the seq
// of the first record of each.
func scenario(t testing.TB, ps *people) (*logBuilder, map[string]uint64) {
	l := newLog(t, ps, convOps)
	at := map[string]uint64{}
	mark := func(name string) { at[name] = uint64(len(l.recs)) }
	l.create("ops")
	mark("create")
	l.chat(ps.alice, "I'd like to check what our httpbin integration sends.")
	mark("chat")
	l.enable(2, []gate.Rule{{Service: "httpbin", Endpoint: "/post", Method: "POST", RequiredApprovals: 3}})
	at["gate_enable"] = at["chat"] + 1
	mark("gate_enabled")
	l.gateway(conversation.KindGateSecretStored, gate.SecretStoredPayload{Header: l.header(), SecretID: "5ec2e7a1-0000-4000-8000-000000000001",
		Service: "httpbin", HeaderName: "Authorization", HeaderTemplate: "Bearer {value}",
		ExpiresAt: gate.OptTime(conversation.FormatTime(t0.Add(720 * time.Hour))), ProvisionedBy: ps.alice.KeyID()})
	mark("secret_stored")

	req1 := l.request(ps.alice, r1, "httpbin.headers", nil, time.Hour)
	mark("request_executed")
	l.vote(ps.bob, req1, true, "")
	mark("approve")
	l.gateway(conversation.KindGateExecuted, gate.ExecutedPayload{Header: l.header(), RequestID: r1, Status: 200, DurationMS: 12,
		Approvers: []string{ps.alice.KeyID(), ps.bob.KeyID()}, Decision: l.decision(r1)})
	mark("executed")
	body := `{"headers":{"Accept-Encoding":["gzip"],"Authorization":["[redacted]"],"Host":["127.0.0.1:9000"],"User-Agent":["Go-http-client/1.1"],"X-Forwarded-For":["127.0.0.1"]}}`
	l.gateway(conversation.KindGateResponse, gate.ResponsePayload{Header: l.header(), RequestID: r1, Status: 200,
		ContentType: "application/json", Body: body, BodyDigest: conversation.Digest([]byte(body)), Redactions: 1})
	mark("response")

	req2 := l.request(ps.alice, r2, "httpbin.echo", map[string]string{"data": "drop-tables"}, time.Hour)
	mark("request_rejected")
	l.vote(ps.bob, req2, false, "not today")
	mark("reject")
	l.gateway(conversation.KindGateRejected, gate.ClosedPayload{Header: l.header(), RequestID: r2, Reason: gate.ReasonRejected, Decision: l.decision(r2)})
	mark("rejected")

	// r3 expires at the time of the gate.expired after it (records come
	// 7 s apart): the gateway closes a request once its time is up.
	l.request(ps.carol, r3, "leet.translate", map[string]string{"text": "two keys"}, l.at.Add(14*time.Second).Sub(t0))
	l.gateway(conversation.KindGateExpired, gate.ClosedPayload{Header: l.header(), RequestID: r3, Reason: gate.ReasonExpired, Decision: l.decision(r3)})
	mark("expired")

	l.add(ps.alice, conversation.KindGateSecretRevoke, gate.RevokePayload{Header: l.header(), Service: "httpbin"})
	mark("secret_revoke")
	l.gateway(conversation.KindGateSecretRevoked, gate.RevokedPayload{Header: l.header(), SecretIDs: []string{"5ec2e7a1-0000-4000-8000-000000000001"}, By: ps.alice.KeyID()})
	mark("secret_revoked")
	req4 := l.request(ps.bob, r4, "httpbin.headers", nil, time.Hour)
	l.vote(ps.carol, req4, true, "")
	l.gateway(conversation.KindGateFailed, gate.ClosedPayload{Header: l.header(), RequestID: r4, Reason: gate.ReasonNoSecret, Decision: l.decision(r4)})
	mark("failed")

	l.request(ps.alice, r5, "dogs.breed", map[string]string{"breed": "hound"}, time.Hour)
	l.add(ps.alice, conversation.KindGateCancel, gate.CancelPayload{Header: l.header(), RequestID: r5})
	mark("cancel")
	l.gateway(conversation.KindGateCancelled, gate.ClosedPayload{Header: l.header(), RequestID: r5, Reason: gate.ReasonCancelled, Decision: l.decision(r5)})
	mark("cancelled")

	prop := l.add(ps.alice, conversation.KindMemberPropose, gate.ProposePayload{Header: l.header(), ProposalID: prop1,
		Add: []conversation.Member{{Key: ps.dave.KeyID(), Name: "dave"}}})
	mark("propose")
	pm, _ := conversation.Verify(prop.Envelope)
	for _, who := range []*conversation.Identity{ps.bob, ps.carol} {
		l.add(who, conversation.KindMemberApprove, gate.MemberApprovePayload{Header: l.header(), ProposalID: prop1, ProposalDigest: pm.PayloadDigest()})
		if who == ps.bob {
			mark("member_approve")
		}
	}
	all := []string{ps.alice.KeyID(), ps.bob.KeyID(), ps.carol.KeyID(), ps.dave.KeyID()}
	l.gateway(conversation.KindMemberChanged, gate.ChangedPayload{Header: l.header(), ProposalID: prop1, Signers: all,
		Members:           []conversation.Member{{Key: ps.alice.KeyID(), Name: "alice"}, {Key: ps.bob.KeyID(), Name: "bob"}, {Key: ps.carol.KeyID(), Name: "carol"}, {Key: ps.dave.KeyID(), Name: "dave"}},
		RequiredApprovals: 2, Rules: gate.Normalize([]gate.Rule{{Service: "httpbin", Endpoint: "/post", Method: "POST", RequiredApprovals: 3}})})
	mark("member_changed")

	l.request(ps.carol, r6, "hn.get-item", map[string]string{"id": "8863"}, time.Hour)
	mark("request_pending")
	l.chat(ps.carol, "bob, can you approve the hn call?")
	mark("last")
	return l, at
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"

// forgedLog is a second conversation holding records that fail
// verification: a request whose signature is not its author's, an
// approval from an impostor, and a gateway record signed by a member.
func forgedLog(t testing.TB, ps *people) *logBuilder {
	l := newLog(t, ps, convDev)
	l.create("dev")
	l.enable(2, nil)
	req := l.request(ps.alice, "0a0a0a0a-5b6e-4f70-8a91-00000000000a", "httpbin.headers", nil, time.Hour)
	m, _ := conversation.Verify(req.Envelope)
	l.forged(ps.bob, ps.dave, conversation.KindGateApprove, gate.VotePayload{Header: l.header(), RequestID: "0a0a0a0a-5b6e-4f70-8a91-00000000000a", RequestDigest: m.PayloadDigest()})
	l.add(ps.alice, conversation.KindChatMessage, conversation.ChatPayload{Header: conversation.Header{Conversation: convDev, CreatedAt: conversation.FormatTime(t0)}, Text: "this one is fine"})
	return l
}

// Request ids of extraLog.
const (
	convLab = "0b7c2e4a-1f3d-4c5b-9a8e-000000000003"
	r7      = "b7c8d9e0-5b6e-4f70-8a91-000000000007" // httpbin.headers, executing
	r8      = "b8c9d0e1-5b6e-4f70-8a91-000000000008" // from a program, pending
	r9      = "b9d0e1f2-5b6e-4f70-8a91-000000000009" // a long body, pending
)

// extraLog is a conversation with the cards scenario lacks: a member added
// and removed, a request executing (M reached, no outcome yet), one a
// program submitted through the gateway, and one with a body long enough
// to fold. It returns the seq of each.
func extraLog(t testing.TB, ps *people) (*logBuilder, map[string]uint64) {
	l := newLog(t, ps, convLab)
	at := map[string]uint64{}
	mark := func(name string) { at[name] = uint64(len(l.recs)) }
	l.create("lab")
	l.add(ps.alice, conversation.KindMemberAdd, conversation.MemberPayload{Header: l.header(), Key: ps.dave.KeyID(), Name: "dave"})
	mark("member_add")
	l.add(ps.alice, conversation.KindMemberRemove, conversation.MemberPayload{Header: l.header(), Key: ps.dave.KeyID()})
	mark("member_remove")
	l.enable(2, nil)
	req := l.request(ps.alice, r7, "httpbin.headers", nil, time.Hour)
	mark("request_executing")
	l.vote(ps.bob, req, true, "")
	l.add(ps.gw, conversation.KindGateRequest, gate.RequestPayload{Header: l.header(), RequestID: r8, Template: "httpbin.headers",
		Service: "httpbin", Method: "GET", URL: "http://127.0.0.1:9000/httpbin/headers",
		ExpiresAt: conversation.FormatTime(t0.Add(30 * time.Minute)), Program: "nightly-report"})
	mark("request_program")
	body := `{"order":{"id":"A-1042","lines":[{"sku":"K-1","qty":2},{"sku":"K-2","qty":1}],"ship_to":{"city":"Lyon","zip":"69001"},"note":"leave at the door"}}`
	l.add(ps.carol, conversation.KindGateRequest, gate.RequestPayload{Header: l.header(), RequestID: r9, Service: "httpbin",
		Method: "POST", URL: "http://127.0.0.1:9000/httpbin/post", Headers: map[string]string{"Content-Type": "application/json"},
		Body: []byte(body), ExpiresAt: conversation.FormatTime(t0.Add(time.Hour))})
	mark("request_body")
	return l, at
}
