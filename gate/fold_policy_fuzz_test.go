package gate_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// policyRule is policyFold's rule.
var policyRule = gate.Rule{Service: "svc", Endpoint: "*", Method: "*", RequiredApprovals: 2,
	Require: []gate.Require{{Group: "finance", Approvals: 1}, {Group: "security", Approvals: 1}}, DelaySeconds: 600}

// policyFold is a gated conversation under a policy (PROTOCOL 9): alice
// is finance, bob security; a rule on svc needs 2 approvals, one of each,
// then a 600 s cool-off with 1 veto. carol submitted r1 at l.at and alice
// and bob approved it, so the next record the fold accepts for r1 is the
// gateway's gate.approved.
func policyFold(t *testing.T) (*foldLog, *gate.Fold) {
	l := newFoldLog(t)
	fold := gate.NewFold(l.gateway)
	en := gate.EnablePayload{Header: l.h(), RequiredApprovals: 1,
		Groups: map[string][]string{"finance": {l.key("alice")}, "security": {l.key("bob")}},
		Rules:  []gate.Rule{policyRule}}
	signers := []string{l.key("alice"), l.key("bob"), l.key("carol")}
	cfg, err := gate.Enable(en, signers)
	if err != nil {
		t.Fatal(err)
	}
	req := gate.RequestPayload{Header: l.h(), RequestID: "r1", Service: "svc", Method: "POST", URL: "https://svc.example/v1/pay",
		ExpiresAt: conversation.FormatTime(l.at.Add(time.Hour))}
	steps := []struct {
		by, kind string
		p        any
	}{
		{"alice", conversation.KindConversationCreate, conversation.CreatePayload{Header: l.h(), Name: "pay",
			Members: []conversation.Member{{Key: l.key("bob")}, {Key: l.key("carol")}}}},
		{"alice", conversation.KindGateEnable, en},
		{"gateway", conversation.KindGateEnabled, gate.EnabledPayload{Header: l.h(), Signers: cfg.Signers,
			RequiredApprovals: cfg.RequiredApprovals, Rules: cfg.Rules, Groups: cfg.Groups}},
		{"carol", conversation.KindGateRequest, req},
	}
	for i, s := range steps {
		if _, err := fold.Apply(l.msg(s.by, s.kind, s.p), uint64(i+1), l.at); err != nil {
			t.Fatalf("%s: %v", s.kind, err)
		}
	}
	digest := fold.Requests["r1"].Digest
	for i, by := range []string{"alice", "bob"} {
		if _, err := fold.Apply(l.msg(by, conversation.KindGateApprove, gate.VotePayload{Header: l.h(), RequestID: "r1", RequestDigest: digest}),
			uint64(len(steps)+i+1), l.at); err != nil {
			t.Fatalf("%s approves: %v", by, err)
		}
	}
	if r := fold.Requests["r1"]; r.State != gate.StateApproved || r.ApprovedSeq != 0 {
		t.Fatalf("after both approvals r1 is %s (approved at %d), want approved and waiting for gate.approved", r.State, r.ApprovedSeq)
	}
	return l, fold
}

// FuzzFoldPolicy feeds a request that has just met a cool-off rule's
// requirement an arbitrary record of the kinds that touch it, by any
// signer or the gateway, at any time in the next 20 minutes; then, when
// that record was an accepted gate.approved, the gateway's execution at
// another time. Apply never panics; a refused record leaves the fold as
// it was; the fold accepts a gate.approved only with the approvers,
// assignment and executable_at (received + 600 s) the policy makes, never
// an execution before gate.approved, and an execution after it only from
// executable_at on.
func FuzzFoldPolicy(f *testing.F) {
	kinds := []string{conversation.KindGateApproved, conversation.KindGateExecuted, conversation.KindGateFailed,
		conversation.KindGateApprove, conversation.KindGateReject, conversation.KindGateCancel,
		conversation.KindGateRejected, conversation.KindGateCancelled, conversation.KindGateExpired, conversation.KindMemberPropose}
	const gw = 4 // by: alice, bob, carol, dave (no member), gateway
	rule, err := json.Marshal(policyRule)
	if err != nil {
		f.Fatal(err)
	}
	decision := `"required_approvals":2,"endpoint":"","rule":` + string(rule)
	f.Add(uint8(0), uint8(gw), uint16(0), uint16(600), []byte(`{"request_id":"r1","approvers":["ALICE","BOB"],"executable_at":"EXEC","assignment":{"ALICE":"finance","BOB":"security"},`+decision+`}`))
	f.Add(uint8(0), uint8(gw), uint16(5), uint16(599), []byte(`{"request_id":"r1","approvers":["ALICE","BOB"],"executable_at":"EXEC","assignment":{"ALICE":"finance","BOB":"security"},`+decision+`}`))
	f.Add(uint8(0), uint8(gw), uint16(5), uint16(0), []byte(`{"request_id":"r1","approvers":["ALICE","BOB"],"executable_at":"EXEC","assignment":{"ALICE":"security","BOB":"finance"},`+decision+`}`))
	f.Add(uint8(0), uint8(gw), uint16(0), uint16(0), []byte(`{"request_id":"r1","approvers":["ALICE","CAROL"],"executable_at":"EXEC",`+decision+`}`))
	f.Add(uint8(1), uint8(gw), uint16(700), uint16(0), []byte(`{"request_id":"r1","status":200,"approvers":["ALICE","BOB"],"assignment":{"ALICE":"finance","BOB":"security"},`+decision+`}`))
	f.Add(uint8(4), uint8(2), uint16(10), uint16(0), []byte(`{"request_id":"r1","request_digest":"DIGEST","reason":"stop"}`))
	f.Add(uint8(5), uint8(2), uint16(10), uint16(0), []byte(`{"request_id":"r1"}`))
	f.Add(uint8(6), uint8(gw), uint16(10), uint16(0), []byte(`{"request_id":"r1","reason":"vetoed",`+decision+`}`))
	f.Fuzz(func(t *testing.T, kind, author uint8, after, execAfter uint16, payload []byte) {
		l, fold := policyFold(t)
		at := l.at.Add(time.Duration(after%1200) * time.Second)
		// Placeholders a seed uses for what the fuzzer cannot know.
		for name, v := range map[string]string{"ALICE": l.key("alice"), "BOB": l.key("bob"), "CAROL": l.key("carol"),
			"EXEC": conversation.FormatTime(at.Add(600 * time.Second)), "DIGEST": fold.Requests["r1"].Digest} {
			payload = bytes.ReplaceAll(payload, []byte(`"`+name+`"`), []byte(`"`+v+`"`))
		}
		var p map[string]any
		if json.Unmarshal(payload, &p) != nil || p == nil {
			return
		}
		p["conversation"], p["created_at"], p["gateway"] = l.conv, conversation.FormatTime(at), l.gateway
		raw, err := json.Marshal(p)
		if err != nil {
			return
		}
		by := []string{"alice", "bob", "carol", "dave", "gateway"}[int(author)%5]
		k := kinds[int(kind)%len(kinds)]
		m, err := conversation.Verify(conversation.Sign(l.id[by], k, raw))
		if err != nil {
			return
		}
		before, err := json.Marshal(fold)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fold.Apply(m, 7, at); err != nil {
			if now, _ := json.Marshal(fold); !bytes.Equal(before, now) {
				t.Fatalf("a refused %s (%v) changed the fold", k, err)
			}
			return
		}
		r := fold.Requests["r1"]
		switch k {
		case conversation.KindGateExecuted, conversation.KindGateFailed:
			t.Fatalf("the fold accepted a %s of r1 before its gate.approved", k)
		case conversation.KindGateApproved:
		default:
			return
		}
		// An accepted gate.approved: what the policy makes, and no other.
		want := map[string]string{l.key("alice"): "finance", l.key("bob"): "security"}
		if r.State != gate.StateApproved || r.ApprovedSeq != 7 || !r.ExecutableAt.Equal(at.Add(600*time.Second)) ||
			!maps.Equal(r.Assignment, want) || len(r.Approvers) != 2 || !slices.Contains(r.Approvers, l.key("alice")) || !slices.Contains(r.Approvers, l.key("bob")) {
			t.Fatalf("accepted gate.approved leaves r1 %s at %d, executable %s, approvers %v, assignment %v",
				r.State, r.ApprovedSeq, r.ExecutableAt, r.Approvers, r.Assignment)
		}
		// Then the execution: accepted from executable_at on, never before.
		execAt := at.Add(time.Duration(execAfter%1200) * time.Second)
		ex := gate.ExecutedPayload{Header: conversation.Header{Conversation: l.conv, CreatedAt: conversation.FormatTime(execAt), Gateway: l.gateway},
			RequestID: "r1", Status: 200, Approvers: slices.Clone(r.Approvers), Assignment: maps.Clone(r.Assignment), Decision: gate.DecisionOf(r)}
		_, err = fold.Apply(l.msg("gateway", conversation.KindGateExecuted, ex), 8, execAt)
		if early := execAt.Before(r.ExecutableAt); early != (err != nil) {
			t.Fatalf("execution %s after gate.approved (executable %s): %v", execAt.Sub(at), r.ExecutableAt, err)
		}
	})
}
