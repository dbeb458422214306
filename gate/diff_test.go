package gate_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// TestDiffProposal: what a proposal changes, before → after, and how it
// reads: signers in and out, the default M, rules added, removed and given
// another M, the label of the record that applies it.
func TestDiffProposal(t *testing.T) {
	alice, bob, carol, dave := "AAAAAAAAaaaa", "BBBBBBBBbbbb", "CCCCCCCCcccc", "DDDDDDDDdddd"
	names := map[string]string{alice: "alice", bob: "bob", carol: "carol"}
	name := func(k string) string {
		if n := names[k]; n != "" {
			return n
		}
		return conversation.ShortKey(k)
	}
	post := gate.Rule{Service: "httpbin", Endpoint: "*", Method: "POST", RequiredApprovals: 2}
	get := gate.Rule{Service: "httpbin", Endpoint: "/get", Method: "GET", RequiredApprovals: 1}
	before := gate.Config{Enabled: true, Signers: []string{alice, bob, carol}, RequiredApprovals: 2, Rules: []gate.Rule{post, get}}
	rules := func(rs ...gate.Rule) *[]gate.Rule { return &rs }
	with := func(r gate.Rule, m int) gate.Rule { r.RequiredApprovals = m; return r }
	hn := gate.Rule{Service: "hackernews", Endpoint: "*", Method: "*", RequiredApprovals: 1}
	for _, tc := range []struct {
		name  string
		p     gate.ProposePayload
		label string
		lines []string
	}{
		{"a rule added", gate.ProposePayload{Rules: rules(post, get, hn)}, "RULES CHANGED",
			[]string{"+ rule hackernews * * needs 1"}},
		{"a rule removed", gate.ProposePayload{Rules: rules(post)}, "RULES CHANGED",
			[]string{"- rule httpbin GET /get needs 1"}},
		{"a rule's M changed, its method spelled otherwise", gate.ProposePayload{Rules: rules(with(gate.Rule{Service: "httpbin", Method: "post"}, 3), get)}, "RULES CHANGED",
			[]string{"~ rule httpbin POST * needs 2 → 3"}},
		{"every rule dropped", gate.ProposePayload{Rules: rules()}, "RULES CHANGED",
			[]string{"- rule httpbin POST * needs 2", "- rule httpbin GET /get needs 1"}},
		{"a signer in", gate.ProposePayload{Add: []conversation.Member{{Key: dave, Name: "dave"}}}, "MEMBERS CHANGED",
			[]string{"+ signer dave (DDDDDDDD)", "default M 2 of 3 → 2 of 4 signers"}},
		{"a signer out", gate.ProposePayload{Remove: []string{carol}}, "MEMBERS CHANGED",
			[]string{"- signer carol (CCCCCCCC)", "default M 2 of 3 → 2 of 2 signers"}},
		{"the threshold", gate.ProposePayload{RequiredApprovals: 3}, "THRESHOLD CHANGED",
			[]string{"default M 2 of 3 → 3 of 3 signers"}},
		{"everything at once", gate.ProposePayload{Add: []conversation.Member{{Key: dave}}, Remove: []string{carol}, RequiredApprovals: 3, Rules: rules(with(post, 3))},
			"MEMBERS, THRESHOLD AND RULES CHANGED",
			[]string{"+ signer DDDDDDDD", "- signer carol (CCCCCCCC)", "default M 2 of 3 → 3 of 3 signers",
				"- rule httpbin GET /get needs 1", "~ rule httpbin POST * needs 2 → 3"}},
		{"the same rules again", gate.ProposePayload{Rules: rules(get, post)}, "NOTHING CHANGED",
			[]string{"no change to signers, M, rules or groups"}},
		{"M as it is", gate.ProposePayload{RequiredApprovals: 2}, "NOTHING CHANGED",
			[]string{"no change to signers, M, rules or groups"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := gate.DiffProposal(before, tc.p)
			if got := d.Label(); got != tc.label {
				t.Errorf("label %q, want %q", got, tc.label)
			}
			if got := d.Lines(name); !slices.Equal(got, tc.lines) {
				t.Errorf("lines\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.lines, "\n"))
			}
			if d.Empty() != (tc.label == "NOTHING CHANGED") {
				t.Errorf("Empty %v for %s", d.Empty(), tc.label)
			}
		})
	}
	// The proposal's before is left as it was.
	if len(before.Signers) != 3 || len(before.Rules) != 2 || before.RequiredApprovals != 2 {
		t.Fatalf("DiffProposal changed its before: %+v", before)
	}
	// What is the words of a sentence.
	if w := gate.DiffProposal(before, gate.ProposePayload{Remove: []string{carol}, Rules: rules(post)}).What(); w != "members and rules" {
		t.Errorf("What %q", w)
	}
	d := gate.DiffProposal(before, gate.ProposePayload{Rules: rules(with(post, 3), hn)})
	if len(d.RulesAdded) != 1 || len(d.RulesRemoved) != 1 || len(d.RulesChanged) != 1 || d.RulesChanged[0].Before.RequiredApprovals != 2 ||
		d.RulesChanged[0].After.RequiredApprovals != 3 || d.Members() || d.Threshold() {
		t.Errorf("diff %+v", d)
	}
}

// TestFoldDiff: the fold gives each member.* record the diff of its
// proposal against the gate it was made in, and the member.changed that
// applies it the same diff, though the gate has changed after it.
func TestFoldDiff(t *testing.T) {
	l := newFoldLog(t)
	alice, bob, carol := l.key("alice"), l.key("bob"), l.key("carol")
	f := gate.NewFold(l.gateway)
	seq := uint64(0)
	apply := func(name, kind string, payload any) gate.Step {
		t.Helper()
		seq++
		l.at = l.at.Add(time.Second)
		st, err := f.Apply(l.msg(name, kind, payload), seq, l.at)
		if err != nil {
			t.Fatalf("%s %s: %v", name, kind, err)
		}
		return st
	}
	old := gate.Rule{Service: "svc", Endpoint: "*", Method: "POST", RequiredApprovals: 2}
	apply("alice", conversation.KindConversationCreate, conversation.CreatePayload{Header: l.h(), Name: "ops",
		Members: []conversation.Member{{Key: bob, Name: "bob"}, {Key: carol, Name: "carol"}}})
	apply("alice", conversation.KindGateEnable, gate.EnablePayload{Header: l.h(), RequiredApprovals: 2, Rules: []gate.Rule{old}})
	apply("gateway", conversation.KindGateEnabled, gate.EnabledPayload{Header: l.h(), Signers: []string{alice, bob, carol},
		RequiredApprovals: 2, Rules: []gate.Rule{old}})
	added := gate.Rule{Service: "svc", Endpoint: "*", Method: "*", RequiredApprovals: 3}
	prop := gate.ProposePayload{Header: l.h(), ProposalID: "p1", Rules: &[]gate.Rule{added}}
	want := []string{"+ rule svc * * needs 3", "- rule svc POST * needs 2"}
	check := func(what string, st gate.Step) {
		t.Helper()
		if st.Diff == nil || st.Diff.Label() != "RULES CHANGED" || !slices.Equal(st.Diff.Lines(conversation.ShortKey), want) {
			t.Fatalf("%s: diff %+v", what, st.Diff)
		}
	}
	check("member.propose", apply("alice", conversation.KindMemberPropose, prop))
	check("member.approve", apply("bob", conversation.KindMemberApprove, gate.MemberApprovePayload{Header: l.h(), ProposalID: "p1", ProposalDigest: digestOf(t, prop)}))
	apply("carol", conversation.KindMemberApprove, gate.MemberApprovePayload{Header: l.h(), ProposalID: "p1", ProposalDigest: digestOf(t, prop)})
	check("member.changed", apply("gateway", conversation.KindMemberChanged, gate.ChangedPayload{Header: l.h(), ProposalID: "p1",
		Signers: []string{alice, bob, carol}, Members: f.Members, RequiredApprovals: 2, Rules: []gate.Rule{added}}))
	if !gate.RulesEqual(f.Gate.Rules, []gate.Rule{added}) {
		t.Fatalf("rules after the change: %v", f.Gate.Rules)
	}
}
