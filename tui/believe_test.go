package tui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// TestHonestLogsAreBelieved: every record of the logs the goldens draw is
// one the fold believes, so no card of theirs says otherwise.
func TestHonestLogsAreBelieved(t *testing.T) {
	ps := newPeople(t)
	l, _ := scenario(t, ps)
	x, _ := extraLog(t, ps)
	m := newModel(t, &fakeBackend{}, ps, ps.bob, l, x)
	for _, c := range m.convs {
		for _, it := range c.items {
			if it.err != nil || it.refused != "" {
				t.Errorf("%s #%d %s: err %v, refused %q", c.name, it.rec.Seq, it.rec.Kind, it.err, it.refused)
			}
		}
	}
	if s := screen(m); strings.Contains(s, "not believed") {
		t.Errorf("an honest log's screen says not believed:\n%s", s)
	}
}

// TestRefusedRecordsAreDrawnNotBelievedAndChangeNothing: records that
// verify (signed, chained) but that the rules do not allow (an approval by
// someone who is no member, one bound to another digest, a second
// gate.request with an id already used) are drawn as their kind is, with
// a red "not believed" line; they change neither the request's approvals
// nor its state, and a, r and c on them sign nothing.
func TestRefusedRecordsAreDrawnNotBelievedAndChangeNothing(t *testing.T) {
	ps := newPeople(t)
	l := newLog(t, ps, convOps)
	l.create("ops")
	l.enable(2, nil)
	req := l.request(ps.alice, r1, "httpbin.headers", nil, time.Hour)
	l.vote(ps.dave, req, true, "") // dave is no member
	byDave := uint64(len(l.recs))
	l.add(ps.bob, conversation.KindGateApprove, gate.VotePayload{Header: l.header(), RequestID: r1, RequestDigest: "sha256:" + zeros})
	wrongDigest := uint64(len(l.recs))
	dup := l.request(ps.carol, r1, "hn.get-item", map[string]string{"id": "1"}, time.Hour)

	fb := &fakeBackend{}
	m := newModel(t, fb, ps, ps.bob, l)
	c := m.conv()
	r := c.request(r1)
	if r == nil || len(r.Approvals) != 1 || r.Approvals[0] != ps.alice.KeyID() || r.State != gate.StatePending || r.SubmittedSeq != req.Seq {
		t.Fatalf("request after the refused records: %+v", r)
	}
	for _, tc := range []struct {
		seq    uint64
		title  string
		reason string
	}{
		{byDave, fmt.Sprintf("#%d APPROVE 3f2a9c1d", byDave), "is not a member at this point"},
		{wrongDigest, fmt.Sprintf("#%d APPROVE 3f2a9c1d", wrongDigest), "its request_digest is not the digest of request " + r1},
		{dup.Seq, fmt.Sprintf("#%d REQUEST 3f2a9c1d · hn.get-item", dup.Seq), fmt.Sprintf("request id %s was already submitted at record %d", r1, req.Seq)},
	} {
		it := c.itemAt(tc.seq)
		if it.err != nil || !strings.Contains(it.refused, tc.reason) {
			t.Errorf("#%d: err %v, refused %q, want %q", tc.seq, it.err, it.refused, tc.reason)
		}
		selectSeq(t, m, tc.seq)
		raw := m.View().Content
		s := ansi.Strip(raw)
		mustContain(t, s, tc.title, "not believed: ")
		if !drawnRed(raw, "not believed:") {
			t.Errorf("#%d: the not believed line is not red:\n%s", tc.seq, lineWith(raw, "not believed:"))
		}
		if strings.Contains(s, "approvals now") {
			t.Errorf("#%d: a refused approval counts:\n%s", tc.seq, s)
		}
		for _, k := range []string{"a", "r", "c"} {
			m.status = ""
			if press(m, k) != nil {
				t.Errorf("#%d: %s sent something", tc.seq, k)
			}
		}
	}
	// The second request's card shows the call it signs, and none of the
	// first one's votes, state or countdown.
	selectSeq(t, m, dup.Seq)
	s := ansi.Strip(m.renderItem(c, len(c.items)-1, 80))
	mustContain(t, s, "GET https://hacker-news.firebaseio.com/v0/item/1.json")
	for _, not := range []string{"approvals 1/2", "PENDING", "you: not voted yet"} {
		if strings.Contains(s, not) {
			t.Errorf("the refused request's card shows %q:\n%s", not, s)
		}
	}
	if press(m, "a") != nil || !strings.Contains(m.status, fmt.Sprintf("record #%d is not believed", dup.Seq)) {
		t.Errorf("a on the refused request: status %q", m.status)
	}
	if len(fb.Calls()) != 0 {
		t.Fatalf("calls %v", fb.Calls())
	}

	// The first request still waits for bob, and his real approval counts.
	selectSeq(t, m, req.Seq)
	mustContain(t, screen(m), "approvals 1/2: alice", "you: not voted yet · a approve · r reject")
	if run(t, m, press(m, "a")); len(fb.Calls()) != 1 || fb.Calls()[0].args[2] != payloadDigest(t, req) {
		t.Fatalf("a on the request: calls %v", fb.Calls())
	}
	l.vote(ps.bob, req, true, "")
	m.Update(recordMsg{convOps, l.recs[len(l.recs)-1]})
	if it := c.items[len(c.items)-1]; it.refused != "" || it.note != "2/2" {
		t.Errorf("bob's approval: refused %q note %q", it.refused, it.note)
	}
	if r := c.request(r1); len(r.Approvals) != 2 || r.State != gate.StateExecuting {
		t.Errorf("after bob's approval: approvals %v state %s", r.Approvals, r.State)
	}
}

// TestProposalVoidedByAnotherChange: the fold keeps open proposals only;
// one still open when another is applied is void, drawn so, and a on it
// signs nothing.
func TestProposalVoidedByAnotherChange(t *testing.T) {
	ps := newPeople(t)
	l := newLog(t, ps, convOps)
	l.create("ops")
	l.enable(2, nil)
	add := l.add(ps.alice, conversation.KindMemberPropose, gateProposeDave(l))
	const prop2 = "f1a2b3c4-5b6e-4f70-8a91-000000000008"
	other := l.add(ps.alice, conversation.KindMemberPropose, gate.ProposePayload{Header: l.header(), ProposalID: prop2, RequiredApprovals: 3})
	for _, who := range []*conversation.Identity{ps.bob, ps.carol} {
		l.add(who, conversation.KindMemberApprove, gate.MemberApprovePayload{Header: l.header(), ProposalID: prop1, ProposalDigest: payloadDigest(t, add)})
	}
	l.gateway(conversation.KindMemberChanged, gate.ChangedPayload{Header: l.header(), ProposalID: prop1,
		Signers: []string{ps.alice.KeyID(), ps.bob.KeyID(), ps.carol.KeyID(), ps.dave.KeyID()},
		Members: []conversation.Member{{Key: ps.alice.KeyID(), Name: "alice"}, {Key: ps.bob.KeyID(), Name: "bob"},
			{Key: ps.carol.KeyID(), Name: "carol"}, {Key: ps.dave.KeyID(), Name: "dave"}},
		RequiredApprovals: 2, Rules: gate.Normalize(nil)})
	fb := &fakeBackend{}
	m := newModel(t, fb, ps, ps.bob, l)
	c := m.conv()
	for _, it := range c.items {
		if it.refused != "" {
			t.Fatalf("#%d %s: refused %q", it.rec.Seq, it.rec.Kind, it.refused)
		}
	}
	selectSeq(t, m, add.Seq)
	mustContain(t, screen(m), "approvals 3/3: alice, bob, carol", "applied")
	selectSeq(t, m, other.Seq)
	// The void proposal is still drawn against the gate it was made in
	// (2 of 3), not the one the other change left (2 of 4).
	mustContain(t, screen(m), "PROPOSAL f1a2b3c4 · to change threshold", "default M 2 of 3 → 3 of 3 signers", "approvals 1/3: alice", "void: another membership change was applied first")
	if m.votable(c, c.selected()) || press(m, "a") != nil || !strings.Contains(m.status, "proposal f1a2b3c4 is void") {
		t.Errorf("a on the void proposal: status %q", m.status)
	}
	if len(fb.Calls()) != 0 {
		t.Errorf("calls %v", fb.Calls())
	}
}
