package tui

import (
	"strings"
	"testing"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// TestRuleChangeCards: a rule change reads as the rules it adds, removes
// and gives another M, on the proposal's card, in the members overlay
// while it is open, and on the card of the record that applies it, which
// is named for what it changed (issue 18: not "set 2 rules", not "MEMBERS
// CHANGED").
func TestRuleChangeCards(t *testing.T) {
	ps := newPeople(t)
	l := newLog(t, ps, convOps)
	l.create("ops")
	post := gate.Rule{Service: "httpbin", Endpoint: "/post", Method: "POST", RequiredApprovals: 3}
	get := gate.Rule{Service: "httpbin", Endpoint: "*", Method: "GET", RequiredApprovals: 2}
	l.enable(2, []gate.Rule{post, get})
	lowered := post
	lowered.RequiredApprovals = 2
	rules := []gate.Rule{lowered, {Service: "hackernews", Endpoint: "*", Method: "*", RequiredApprovals: 1}}
	p := gate.ProposePayload{Header: l.header(), ProposalID: prop1, Rules: &rules}
	prop := l.add(ps.alice, conversation.KindMemberPropose, p)
	diff := []string{"+ rule hackernews * * needs 1", "- rule httpbin GET * needs 2", "~ rule httpbin POST /post needs 3 → 2"}

	// Open: the card and the members overlay say what it changes.
	m := newModel(t, &fakeBackend{}, ps, ps.bob, l)
	selectSeq(t, m, prop.Seq)
	card := screen(m)
	mustContain(t, card, append([]string{"PROPOSAL f1a2b3c4 · to change rules", "approvals 1/3: alice"}, diff...)...)
	if strings.Contains(card, "set 2 rules") {
		t.Errorf("the card counts the rules:\n%s", card)
	}
	press(m, "/")
	typeText(m, "members")
	press(m, "enter")
	mustContain(t, screen(m), append([]string{"open proposal f1a2b3c4 to change rules: approvals 1/3"}, diff...)...)

	// Applied: the record that applies it is named for what it changed.
	for _, who := range []*conversation.Identity{ps.bob, ps.carol} {
		l.add(who, conversation.KindMemberApprove, gate.MemberApprovePayload{Header: l.header(), ProposalID: prop1, ProposalDigest: payloadDigest(t, prop)})
	}
	changed := l.add(ps.gw, conversation.KindMemberChanged, gate.ChangedPayload{Header: l.header(), ProposalID: prop1,
		Signers:           []string{ps.alice.KeyID(), ps.bob.KeyID(), ps.carol.KeyID()},
		Members:           []conversation.Member{{Key: ps.alice.KeyID(), Name: "alice"}, {Key: ps.bob.KeyID(), Name: "bob"}, {Key: ps.carol.KeyID(), Name: "carol"}},
		RequiredApprovals: 2, Rules: gate.Normalize(rules)})
	m = newModel(t, &fakeBackend{}, ps, ps.bob, l)
	for _, it := range m.conv().items {
		if it.refused != "" {
			t.Fatalf("#%d %s: refused %q", it.rec.Seq, it.rec.Kind, it.refused)
		}
	}
	selectSeq(t, m, changed.Seq)
	card = screen(m)
	mustContain(t, card, append([]string{"RULES CHANGED", "now signers alice, bob, carol · 2 of 3 must approve", "pending requests are cancelled"}, diff...)...)
	if strings.Contains(card, "MEMBERS CHANGED") {
		t.Errorf("a rule change is labelled a members change:\n%s", card)
	}
	selectSeq(t, m, prop.Seq)
	mustContain(t, screen(m), append([]string{"PROPOSAL f1a2b3c4 · to change rules", "applied"}, diff...)...)
}
