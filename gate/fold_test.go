package gate_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// foldLog signs records for a fold test: fixed keys, one conversation.
type foldLog struct {
	t       *testing.T
	id      map[string]*conversation.Identity
	conv    string
	gateway string
	at      time.Time
	seq     uint64
}

func newFoldLog(t *testing.T) *foldLog {
	l := &foldLog{t: t, id: map[string]*conversation.Identity{}, conv: "0c6a2e1e-0000-4000-8000-000000000001",
		at: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
	for i, name := range []string{"alice", "bob", "carol", "dave", "gateway"} {
		l.id[name] = &conversation.Identity{Name: name, Private: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(i + 1)}, 32))}
	}
	l.gateway = l.key("gateway")
	return l
}

func (l *foldLog) key(name string) string { return l.id[name].KeyID() }

func (l *foldLog) h() conversation.Header {
	return conversation.Header{Conversation: l.conv, CreatedAt: conversation.FormatTime(l.at), Gateway: l.gateway}
}

// msg signs payload as name's kind.
func (l *foldLog) msg(name, kind string, payload any) *conversation.Message {
	raw, err := json.Marshal(payload)
	if err != nil {
		l.t.Fatal(err)
	}
	m, err := conversation.Verify(conversation.Sign(l.id[name], kind, raw))
	if err != nil {
		l.t.Fatal(err)
	}
	return m
}

func digestOf(t *testing.T, p any) string {
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return conversation.Digest(raw)
}

// TestFoldEveryKind runs a log holding every kind through the fold, with
// records the rules refuse between them: each refused record names the
// rule it breaks and changes nothing, and after each accepted one the
// fold says what the gateway decided.
func TestFoldEveryKind(t *testing.T) {
	l := newFoldLog(t)
	alice, bob, carol, dave := l.key("alice"), l.key("bob"), l.key("carol"), l.key("dave")
	rule := gate.Rule{Service: "svc", Endpoint: "/admin", Method: "*", RequiredApprovals: 3}
	req := func(id, path string) gate.RequestPayload {
		return gate.RequestPayload{Header: l.h(), RequestID: id, Service: "svc", Method: "POST", URL: "https://svc.example" + path,
			ExpiresAt: conversation.FormatTime(l.at.Add(time.Hour))}
	}
	r1, r2, r3, r4 := req("r1", "/v1/x"), req("r2", "/admin"), req("r3", "/v1/y"), req("r4", "/v1/z")
	prop := gate.ProposePayload{Header: l.h(), ProposalID: "p1", Remove: []string{dave}}
	decision := func(m int, rule *gate.Rule, path string) gate.Decision {
		return gate.Decision{RequiredApprovals: m, Rule: rule, Endpoint: path}
	}
	body := `{"ok":true}`
	type step struct {
		name, by, kind string
		payload        any
		refused        string // the Violation check, or "" for accepted
		then           func(t *testing.T, f *gate.Fold)
	}
	steps := []step{
		{"first record must found", "alice", conversation.KindChatMessage, conversation.ChatPayload{Header: l.h(), Text: "hi"}, gate.ViolationState, nil},
		{"create", "alice", conversation.KindConversationCreate, conversation.CreatePayload{Header: l.h(), Name: "ops",
			Members: []conversation.Member{{Key: bob, Name: "bob"}, {Key: carol, Name: "carol"}}}, "", func(t *testing.T, f *gate.Fold) {
			if f.Name != "ops" || f.Admin != alice || len(f.Members) != 3 || f.Members[0].Key != alice {
				t.Fatalf("after create: %+v", f)
			}
		}},
		{"second create", "alice", conversation.KindConversationCreate, conversation.CreatePayload{Header: l.h(), Name: "again"}, gate.ViolationState, nil},
		{"chat", "bob", conversation.KindChatMessage, conversation.ChatPayload{Header: l.h(), Text: "hi"}, "", nil},
		{"chat by a stranger", "dave", conversation.KindChatMessage, conversation.ChatPayload{Header: l.h(), Text: "hi"}, gate.ViolationAuthority, nil},
		{"member.add by a non-admin", "bob", conversation.KindMemberAdd, conversation.MemberPayload{Header: l.h(), Key: dave}, gate.ViolationAuthority, nil},
		{"member.add", "alice", conversation.KindMemberAdd, conversation.MemberPayload{Header: l.h(), Key: dave, Name: "dave"}, "", func(t *testing.T, f *gate.Fold) {
			if !f.IsMember(dave) || f.Members[len(f.Members)-1] != (conversation.Member{Key: dave, Name: "dave"}) {
				t.Fatal("dave was not added")
			}
		}},
		{"member.remove", "alice", conversation.KindMemberRemove, conversation.MemberPayload{Header: l.h(), Key: dave}, "", func(t *testing.T, f *gate.Fold) {
			if f.IsMember(dave) {
				t.Fatal("dave was not removed")
			}
		}},
		{"member.add again", "alice", conversation.KindMemberAdd, conversation.MemberPayload{Header: l.h(), Key: dave, Name: "dave"}, "", nil},
		{"a request before the gate", "alice", conversation.KindGateRequest, r1, gate.ViolationState, nil},
		{"gate.enabled without gate.enable", "gateway", conversation.KindGateEnabled, gate.EnabledPayload{Header: l.h()}, gate.ViolationState, nil},
		{"gate.enable", "alice", conversation.KindGateEnable, gate.EnablePayload{Header: l.h(), RequiredApprovals: 2, Rules: []gate.Rule{rule}}, "", func(t *testing.T, f *gate.Fold) {
			if f.Gate.Enabled || len(f.Pending()) != 1 {
				t.Fatalf("gate.enable alone turned the gate on, or owes %v", f.Pending())
			}
		}},
		{"anything but gate.enabled next", "bob", conversation.KindChatMessage, conversation.ChatPayload{Header: l.h(), Text: "x"}, gate.ViolationState, nil},
		{"gate.enabled with another M", "gateway", conversation.KindGateEnabled, gate.EnabledPayload{Header: l.h(),
			Signers: []string{alice, bob, carol, dave}, RequiredApprovals: 1, Rules: []gate.Rule{rule}}, gate.ViolationState, nil},
		{"gate.enabled", "gateway", conversation.KindGateEnabled, gate.EnabledPayload{Header: l.h(),
			Signers: []string{alice, bob, carol, dave}, RequiredApprovals: 2, Rules: []gate.Rule{rule}}, "", func(t *testing.T, f *gate.Fold) {
			if !f.Gate.Enabled || f.Gate.RequiredApprovals != 2 || len(f.Gate.Signers) != 4 {
				t.Fatalf("gate: %+v", f.Gate)
			}
		}},
		{"member.add with the gate on", "alice", conversation.KindMemberAdd, conversation.MemberPayload{Header: l.h(), Key: l.key("gateway")}, gate.ViolationState, nil},
		{"gate.secret is never logged", "alice", conversation.KindGateSecret, gate.SecretPayload{Header: l.h(), SecretID: "s1", Service: "svc"}, gate.ViolationState, nil},
		{"gate.secret.stored", "gateway", conversation.KindGateSecretStored, gate.SecretStoredPayload{Header: l.h(), SecretID: "s1", Service: "svc",
			HeaderName: "Authorization", HeaderTemplate: "Bearer {value}", ProvisionedBy: bob}, "", func(t *testing.T, f *gate.Fold) {
			if s := f.Secrets["s1"]; s == nil || s.Service != "svc" || s.ProvisionedBy != bob {
				t.Fatalf("secret: %+v", s)
			}
		}},
		{"the same secret id twice", "gateway", conversation.KindGateSecretStored, gate.SecretStoredPayload{Header: l.h(), SecretID: "s1", Service: "svc", ProvisionedBy: bob}, gate.ViolationOnce, nil},
		{"gate.secret.revoke", "carol", conversation.KindGateSecretRevoke, gate.RevokePayload{Header: l.h(), Service: "svc"}, "", nil},
		{"gate.secret.revoked naming another secret", "gateway", conversation.KindGateSecretRevoked, gate.RevokedPayload{Header: l.h(), SecretIDs: []string{"s2"}, By: carol}, gate.ViolationState, nil},
		{"gate.secret.revoked", "gateway", conversation.KindGateSecretRevoked, gate.RevokedPayload{Header: l.h(), SecretIDs: []string{"s1"}, By: carol}, "", func(t *testing.T, f *gate.Fold) {
			if len(f.Secrets) != 0 {
				t.Fatal("the secret is still stored")
			}
		}},
		{"a revoked secret id again", "gateway", conversation.KindGateSecretStored, gate.SecretStoredPayload{Header: l.h(), SecretID: "s1", Service: "svc", ProvisionedBy: bob}, gate.ViolationOnce, nil},
		{"gate.request", "alice", conversation.KindGateRequest, r1, "", func(t *testing.T, f *gate.Fold) {
			r := f.Requests["r1"]
			if r == nil || r.Required != 2 || r.Rule != nil || r.Endpoint != "/v1/x" || !slices.Equal(r.Approvals, []string{alice}) || r.State != gate.StatePending {
				t.Fatalf("r1: %+v", r)
			}
		}},
		{"the same request id", "bob", conversation.KindGateRequest, r1, gate.ViolationOnce, nil},
		{"a request under the admin rule", "bob", conversation.KindGateRequest, r2, "", func(t *testing.T, f *gate.Fold) {
			if r := f.Requests["r2"]; r.Required != 3 || r.Rule == nil || !r.Rule.Equal(rule) {
				t.Fatalf("r2: M %d rule %v", r.Required, r.Rule)
			}
		}},
		{"an approval of another version", "bob", conversation.KindGateApprove, gate.VotePayload{Header: l.h(), RequestID: "r1", RequestDigest: digestOf(t, r2)}, gate.ViolationState, nil},
		{"the submitter approving again", "alice", conversation.KindGateApprove, gate.VotePayload{Header: l.h(), RequestID: "r1", RequestDigest: digestOf(t, r1)}, gate.ViolationThreshold, nil},
		{"executed before M", "gateway", conversation.KindGateExecuted, gate.ExecutedPayload{Header: l.h(), RequestID: "r1", Status: 200,
			Approvers: []string{alice}, Decision: decision(2, nil, "/v1/x")}, gate.ViolationThreshold, nil},
		{"gate.approve reaching M", "bob", conversation.KindGateApprove, gate.VotePayload{Header: l.h(), RequestID: "r1", RequestDigest: digestOf(t, r1)}, "", func(t *testing.T, f *gate.Fold) {
			if r := f.Requests["r1"]; r.State != gate.StateExecuting || r.Count() != 2 {
				t.Fatalf("r1: %s with %d", r.State, r.Count())
			}
		}},
		{"a vote after M", "carol", conversation.KindGateApprove, gate.VotePayload{Header: l.h(), RequestID: "r1", RequestDigest: digestOf(t, r1)}, gate.ViolationState, nil},
		{"executed signing a lower M", "gateway", conversation.KindGateExecuted, gate.ExecutedPayload{Header: l.h(), RequestID: "r1", Status: 200,
			Approvers: []string{alice, bob}, Decision: decision(1, nil, "/v1/x")}, gate.ViolationDecision, nil},
		{"executed listing an approver who did not approve", "gateway", conversation.KindGateExecuted, gate.ExecutedPayload{Header: l.h(), RequestID: "r1", Status: 200,
			Approvers: []string{alice, carol}, Decision: decision(2, nil, "/v1/x")}, gate.ViolationThreshold, nil},
		{"gate.executed", "gateway", conversation.KindGateExecuted, gate.ExecutedPayload{Header: l.h(), RequestID: "r1", Status: 200, DurationMS: 4,
			Approvers: []string{alice, bob}, Decision: decision(2, nil, "/v1/x")}, "", func(t *testing.T, f *gate.Fold) {
			if r := f.Requests["r1"]; r.State != gate.StateExecuted || r.Result.Status != 200 || r.Result.DurationMS != 4 {
				t.Fatalf("r1: %+v %+v", r, r.Result)
			}
		}},
		{"a response under another body's digest", "gateway", conversation.KindGateResponse, gate.ResponsePayload{Header: l.h(), RequestID: "r1", Status: 200,
			Body: body, BodyDigest: conversation.Digest([]byte("other"))}, gate.ViolationState, nil},
		{"gate.response", "gateway", conversation.KindGateResponse, gate.ResponsePayload{Header: l.h(), RequestID: "r1", Status: 200,
			Body: body, BodyDigest: conversation.Digest([]byte(body))}, "", nil},
		{"a second response", "gateway", conversation.KindGateResponse, gate.ResponsePayload{Header: l.h(), RequestID: "r1", Status: 200,
			Body: body, BodyDigest: conversation.Digest([]byte(body))}, gate.ViolationOnce, nil},
		{"failed after executed", "gateway", conversation.KindGateFailed, gate.ClosedPayload{Header: l.h(), RequestID: "r1", Reason: gate.ReasonInterrupted,
			Decision: decision(2, nil, "/v1/x")}, gate.ViolationOnce, nil},
		{"gate.reject", "carol", conversation.KindGateReject, gate.VotePayload{Header: l.h(), RequestID: "r2", RequestDigest: digestOf(t, r2)}, "", nil},
		{"gate.rejected while M is reachable", "gateway", conversation.KindGateRejected, gate.ClosedPayload{Header: l.h(), RequestID: "r2", Reason: gate.ReasonRejected,
			Decision: decision(3, &rule, "/admin")}, gate.ViolationState, nil},
		{"the rejection that puts M out of reach", "dave", conversation.KindGateReject, gate.VotePayload{Header: l.h(), RequestID: "r2", RequestDigest: digestOf(t, r2)}, "", func(t *testing.T, f *gate.Fold) {
			if r := f.Requests["r2"]; r.State != gate.StateRejected || len(f.Pending()) != 1 {
				t.Fatalf("r2 %s, owed %v", r.State, f.Pending())
			}
		}},
		{"gate.rejected", "gateway", conversation.KindGateRejected, gate.ClosedPayload{Header: l.h(), RequestID: "r2", Reason: gate.ReasonRejected,
			Decision: decision(3, &rule, "/admin")}, "", nil},
		{"gate.request r3", "carol", conversation.KindGateRequest, r3, "", nil},
		{"a cancel by another signer", "bob", conversation.KindGateCancel, gate.CancelPayload{Header: l.h(), RequestID: "r3"}, gate.ViolationAuthority, nil},
		{"gate.cancel", "carol", conversation.KindGateCancel, gate.CancelPayload{Header: l.h(), RequestID: "r3"}, "", nil},
		{"gate.cancelled", "gateway", conversation.KindGateCancelled, gate.ClosedPayload{Header: l.h(), RequestID: "r3", Reason: gate.ReasonCancelled,
			Decision: decision(2, nil, "/v1/y")}, "", func(t *testing.T, f *gate.Fold) {
			if r := f.Requests["r3"]; r.State != gate.StateCancelled || r.Result.Reason != gate.ReasonCancelled {
				t.Fatalf("r3: %+v", r)
			}
		}},
		{"gate.request r4", "dave", conversation.KindGateRequest, r4, "", nil},
		{"expired before its time", "gateway", conversation.KindGateExpired, gate.ClosedPayload{Header: l.h(), RequestID: "r4", Reason: gate.ReasonExpired,
			Decision: decision(2, nil, "/v1/z")}, gate.ViolationState, nil},
		{"member.propose", "alice", conversation.KindMemberPropose, prop, "", func(t *testing.T, f *gate.Fold) {
			p := f.Proposals["p1"]
			if p == nil || !slices.Equal(p.Needed, []string{alice, bob, carol}) || !slices.Equal(p.Approvals, []string{alice}) {
				t.Fatalf("p1: %+v", p)
			}
		}},
		{"member.changed before every approval", "gateway", conversation.KindMemberChanged, gate.ChangedPayload{Header: l.h(), ProposalID: "p1"}, gate.ViolationThreshold, nil},
		{"an approval by the member being removed", "dave", conversation.KindMemberApprove, gate.MemberApprovePayload{Header: l.h(), ProposalID: "p1", ProposalDigest: digestOf(t, prop)}, gate.ViolationAuthority, nil},
		{"member.approve", "bob", conversation.KindMemberApprove, gate.MemberApprovePayload{Header: l.h(), ProposalID: "p1", ProposalDigest: digestOf(t, prop)}, "", nil},
		{"member.approve completing it", "carol", conversation.KindMemberApprove, gate.MemberApprovePayload{Header: l.h(), ProposalID: "p1", ProposalDigest: digestOf(t, prop)}, "", nil},
		{"member.changed stating other signers", "gateway", conversation.KindMemberChanged, gate.ChangedPayload{Header: l.h(), ProposalID: "p1",
			Signers: []string{alice, bob, carol, dave}}, gate.ViolationState, nil},
		{"member.changed", "gateway", conversation.KindMemberChanged, gate.ChangedPayload{Header: l.h(), ProposalID: "p1", Signers: []string{alice, bob, carol},
			Members: []conversation.Member{{Key: alice}, {Key: bob, Name: "bob"}, {Key: carol, Name: "carol"}}, RequiredApprovals: 2, Rules: []gate.Rule{rule}}, "", func(t *testing.T, f *gate.Fold) {
			if f.IsMember(dave) || len(f.Gate.Signers) != 3 || len(f.Proposals) != 0 || !slices.Equal(f.Pending(), []string{"gate.cancelled r4"}) {
				t.Fatalf("after the change: signers %v, proposals %d, owed %v", f.Gate.Signers, len(f.Proposals), f.Pending())
			}
		}},
		{"gate.cancelled for the membership change", "gateway", conversation.KindGateCancelled, gate.ClosedPayload{Header: l.h(), RequestID: "r4", Reason: gate.ReasonMembershipChanged,
			Decision: decision(2, nil, "/v1/z")}, "", nil},
		{"a session.open is never a record", "alice", conversation.KindSessionOpen, conversation.ChatPayload{Header: l.h()}, gate.ViolationState, nil},
		{"a gateway kind the gateway never writes", "gateway", conversation.KindGateExpired, gate.ClosedPayload{Header: l.h(), RequestID: "nope"}, gate.ViolationState, nil},
		{"gate.request r5 for the expiry", "alice", conversation.KindGateRequest, req("r5", "/v1/q"), "", nil},
		{"gate.failed of a pending request", "gateway", conversation.KindGateFailed, gate.ClosedPayload{Header: l.h(), RequestID: "r5", Reason: gate.ReasonInterrupted,
			Decision: decision(2, nil, "/v1/q")}, gate.ViolationThreshold, nil},
	}
	f := gate.NewFold(l.gateway)
	f.Resolve = func(p *gate.RequestPayload) (gate.Target, string, error) {
		path, ok := bytes.CutPrefix([]byte(p.URL), []byte("https://svc.example"))
		if !ok {
			return gate.Target{}, "", fmt.Errorf("not on svc")
		}
		return gate.Target{Service: p.Service, Path: string(path), Method: p.Method}, "", nil
	}
	kinds := map[string]bool{}
	for _, s := range steps {
		l.at = l.at.Add(time.Second)
		l.seq++
		before, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Apply(l.msg(s.by, s.kind, s.payload), l.seq, l.at)
		if s.refused != "" {
			var v *gate.Violation
			if !errors.As(err, &v) || v.Check != s.refused {
				t.Fatalf("%s: got %v, want a %s violation", s.name, err, s.refused)
			}
			if after, _ := json.Marshal(f); !bytes.Equal(before, after) || len(before) < 100 {
				t.Fatalf("%s: a refused record changed the fold", s.name)
			}
			l.seq--
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		kinds[s.kind] = true
		if s.then != nil {
			s.then(t, f)
		}
	}
	// The expiry, at its time.
	l.at = l.at.Add(time.Hour)
	l.seq++
	if _, err := f.Apply(l.msg("gateway", conversation.KindGateExpired, gate.ClosedPayload{Header: l.h(), RequestID: "r5", Reason: gate.ReasonExpired,
		Decision: gate.Decision{RequiredApprovals: 2, Endpoint: "/v1/q"}}), l.seq, l.at); err != nil {
		t.Fatal(err)
	}
	kinds[conversation.KindGateExpired] = true
	if r := f.Requests["r5"]; r.State != gate.StateExpired {
		t.Fatalf("r5 is %s", r.State)
	}
	for _, k := range []string{conversation.KindConversationCreate, conversation.KindChatMessage, conversation.KindMemberAdd, conversation.KindMemberRemove,
		conversation.KindGateEnable, conversation.KindGateEnabled, conversation.KindGateSecretStored, conversation.KindGateSecretRevoke,
		conversation.KindGateSecretRevoked, conversation.KindGateRequest, conversation.KindGateApprove, conversation.KindGateReject,
		conversation.KindGateCancel, conversation.KindGateExecuted, conversation.KindGateResponse, conversation.KindGateExpired,
		conversation.KindGateRejected, conversation.KindGateCancelled, conversation.KindMemberPropose, conversation.KindMemberApprove,
		conversation.KindMemberChanged} {
		if !kinds[k] {
			t.Errorf("no accepted %s in the table", k)
		}
	}
}

// FuzzFoldApply feeds a gated conversation's fold arbitrary payloads of
// every kind, signed by a member or the gateway: Apply never panics, and a
// record it refuses leaves the fold exactly as it was.
func FuzzFoldApply(f *testing.F) {
	kinds := []string{conversation.KindChatMessage, conversation.KindMemberAdd, conversation.KindMemberRemove, conversation.KindGateEnable,
		conversation.KindGateEnabled, conversation.KindGateSecretStored, conversation.KindGateSecretRevoke, conversation.KindGateSecretRevoked,
		conversation.KindGateRequest, conversation.KindGateApprove, conversation.KindGateReject, conversation.KindGateCancel,
		conversation.KindGateExecuted, conversation.KindGateResponse, conversation.KindGateFailed, conversation.KindGateExpired,
		conversation.KindGateRejected, conversation.KindGateCancelled, conversation.KindMemberPropose, conversation.KindMemberApprove,
		conversation.KindMemberChanged, conversation.KindSessionOpen}
	f.Add(uint8(8), false, []byte(`{"request_id":"r2","service":"svc","method":"GET","url":"https://svc.example/a","expires_at":"2026-12-07T11:00:00Z"}`))
	f.Add(uint8(9), false, []byte(`{"request_id":"r1","request_digest":"sha256:00"}`))
	f.Add(uint8(12), true, []byte(`{"request_id":"r1","status":200,"approvers":["x"],"required_approvals":1,"endpoint":"/v1/x"}`))
	f.Add(uint8(18), false, []byte(`{"proposal_id":"p","remove":["x"],"rules":[{"service":"*","endpoint":"*","method":"*","required_approvals":1}]}`))
	f.Add(uint8(20), true, []byte(`{"proposal_id":"p","signers":null}`))
	f.Add(uint8(4), true, []byte(`{"signers":[],"rules":null}`))
	f.Fuzz(func(t *testing.T, kind uint8, byGateway bool, payload []byte) {
		l := newFoldLog(t)
		fold := gate.NewFold(l.gateway)
		steps := []struct {
			by, kind string
			p        any
		}{
			{"alice", conversation.KindConversationCreate, conversation.CreatePayload{Header: l.h(), Name: "ops", Members: []conversation.Member{{Key: l.key("bob")}}}},
			{"alice", conversation.KindGateEnable, gate.EnablePayload{Header: l.h(), RequiredApprovals: 2}},
			{"gateway", conversation.KindGateEnabled, gate.EnabledPayload{Header: l.h(), Signers: []string{l.key("alice"), l.key("bob")}, RequiredApprovals: 2, Rules: []gate.Rule{}}},
			{"alice", conversation.KindGateRequest, gate.RequestPayload{Header: l.h(), RequestID: "r1", Service: "svc", Method: "POST", URL: "https://svc.example/v1/x",
				ExpiresAt: conversation.FormatTime(l.at.Add(time.Hour))}},
		}
		for i, s := range steps {
			if _, err := fold.Apply(l.msg(s.by, s.kind, s.p), uint64(i+1), l.at); err != nil {
				t.Fatal(err)
			}
		}
		var p map[string]any
		if json.Unmarshal(payload, &p) != nil || p == nil {
			return
		}
		// Bind the payload to the conversation, as the audit checks first.
		p["conversation"], p["created_at"], p["gateway"] = l.conv, conversation.FormatTime(l.at), l.gateway
		by := "bob"
		if byGateway {
			by = "gateway"
		}
		before, err := json.Marshal(fold)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(p)
		if err != nil {
			return
		}
		m, err := conversation.Verify(conversation.Sign(l.id[by], kinds[int(kind)%len(kinds)], raw))
		if err != nil {
			return // not strict JSON: refused before any fold
		}
		if _, err = fold.Apply(m, 5, l.at.Add(time.Second)); err != nil {
			if after, _ := json.Marshal(fold); !bytes.Equal(before, after) {
				t.Fatalf("a refused record (%v) changed the fold", err)
			}
		}
	})
}
