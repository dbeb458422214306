package tui

import (
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// Ids of coolLog.
const (
	convFin = "0b7c2e4a-1f3d-4c5b-9a8e-000000000004"
	rc1     = "c1c1c1c1-5b6e-4f70-8a91-00000000000c" // httpbin.headers, in its cool-off
)

// coolRule is coolLog's rule (PROTOCOL 9): 2 approvals, one of finance and
// one of security, a reason, a 15 minute cool-off that 1 veto stops.
var coolRule = gate.Rule{Service: "httpbin", Endpoint: gate.Any, Method: gate.Any, RequiredApprovals: 2,
	Require: []gate.Require{{Group: "finance", Approvals: 1}, {Group: "security", Approvals: 1}}, ReasonRequired: true, DelaySeconds: 900}

// coolLog is a conversation whose gate has groups (finance: alice and
// carol; security: bob) and coolRule for httpbin. alice asks for
// httpbin.headers with a reason, bob approves with one: the requirement is
// met, and the gateway starts the cool-off. It returns the seq of each
// record named, and the time the call is due.
func coolLog(t testing.TB, ps *people) (*logBuilder, map[string]uint64, time.Time) {
	l := newLog(t, ps, convFin)
	at := map[string]uint64{}
	mark := func(name string) { at[name] = uint64(len(l.recs)) }
	l.create("fin")
	groups := map[string][]string{"finance": {ps.alice.KeyID(), ps.carol.KeyID()}, "security": {ps.bob.KeyID()}}
	rules := []gate.Rule{coolRule}
	l.add(ps.alice, conversation.KindGateEnable, gate.EnablePayload{Header: l.header(), RequiredApprovals: 2, Rules: rules, Groups: groups})
	l.add(ps.gw, conversation.KindGateEnabled, gate.EnabledPayload{Header: l.header(),
		Signers: []string{ps.alice.KeyID(), ps.bob.KeyID(), ps.carol.KeyID()}, RequiredApprovals: 2, Rules: gate.Normalize(rules), BoxKey: "box", Groups: groups})
	mark("gate_enabled")
	cfg := testCatalog(t)
	var tpl = cfg.Templates[0]
	for _, x := range cfg.Templates {
		if x.Name == "httpbin.headers" {
			tpl = x
		}
	}
	res, err := tpl.Resolve(findService(cfg, "httpbin").BaseURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := l.add(ps.alice, conversation.KindGateRequest, gate.RequestPayload{Header: l.header(), RequestID: rc1, Template: tpl.Name, Service: "httpbin",
		Method: res.Method, URL: res.URL, ExpiresAt: conversation.FormatTime(t0.Add(time.Hour)), Reason: "quarterly audit \x1b[2J of the keys"})
	mark("request")
	l.vote(ps.bob, req, true, "looks right")
	mark("approve")
	due := l.at.Add(7*time.Second + 900*time.Second)
	l.gateway(conversation.KindGateApproved, gate.ApprovedPayload{Header: l.header(), RequestID: rc1,
		Approvers: []string{ps.alice.KeyID(), ps.bob.KeyID()}, ExecutableAt: conversation.FormatTime(due),
		Assignment: map[string]string{ps.alice.KeyID(): "finance", ps.bob.KeyID(): "security"}, Decision: l.decision(rc1)})
	mark("approved")
	return l, at, due
}

// wide draws m on a screen wide enough that a card's lines do not wrap
// (the tests below look for whole lines).
func wide(m *Model) *Model {
	m.Update(tea.WindowSizeMsg{Width: 180, Height: 40})
	m.View()
	return m
}

func TestCoolOffCountdownMovesWithTheClock(t *testing.T) {
	ps := newPeople(t)
	l, at, due := coolLog(t, ps)
	m := wide(newModel(t, &fakeBackend{}, ps, ps.carol, l))
	if due.Sub(t0) != 5*time.Minute+42*time.Second {
		t.Fatalf("the cool-off ends at %s", due) // the text below assumes it
	}
	selectSeq(t, m, at["request"])
	s := screen(m)
	mustContain(t, s, "reason: quarterly audit \ufffd[2J of the keys",
		"policy: 2 approvals, including 1 of finance and 1 of security; reason required; 15 min cool-off, 1 veto",
		"bob approved: looks right", "slots: alice for finance, bob for security",
		"APPROVED · executes in 5:42 (at 13:35:42 UTC) unless vetoed — 0 of 1 vetoes",
		"you: not voted · v vetoes (with a reason)")
	if strings.Contains(m.View().Content, "\x1b[2J") {
		t.Error("the reason's escape sequence reaches the terminal")
	}

	// The clock moves and the TUI ticks: the countdown follows.
	setNow(m, t0.Add(10*time.Second))
	m.Update(tickMsg(t0.Add(10 * time.Second)))
	s = screen(m)
	mustContain(t, s, "executes in 5:32 (at 13:35:42 UTC)")
	if strings.Contains(s, "executes in 5:42") {
		t.Errorf("the countdown did not move:\n%s", s)
	}
	setNow(m, due.Add(time.Second))
	m.Update(tickMsg(due.Add(time.Second)))
	mustContain(t, screen(m), "APPROVED · the cool-off ended at 13:35:42 UTC: the gateway executes it now")

	// The gate.approved record is a card of its own.
	setNow(m, t0)
	selectSeq(t, m, at["approved"])
	mustContain(t, screen(m), "APPROVED c1c1c1c1", "APPROVED — cool-off until 13:35:42 UTC", "approved by alice, bob",
		"slots: alice for finance, bob for security", "1 veto stops it; its submitter may cancel it · now 0 of 1 vetoes")
}

func TestCountdown(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0:00", 0: "0:00", 9*time.Second + 900*time.Millisecond: "0:09", 14*time.Minute + 59*time.Second: "14:59",
		time.Hour + 2*time.Minute + 3*time.Second: "1:02:03", 50 * time.Hour: "2d 02:00:00",
	} {
		if got := countdown(d); got != want {
			t.Errorf("countdown(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestVetoSendsARejectionWithItsReason(t *testing.T) {
	ps := newPeople(t)
	l, at, _ := coolLog(t, ps)
	fb := &fakeBackend{}
	m := newModel(t, fb, ps, ps.carol, l)
	selectSeq(t, m, at["request"])

	// An approval changes nothing now: a sends none.
	if press(m, "a") != nil || len(fb.Calls()) != 0 {
		t.Fatalf("a in the cool-off sent %v", fb.Calls())
	}
	mustContain(t, m.status, "already approved and in its cool-off", "v vetoes it")

	// v asks for the reason, then signs a gate.reject of the request on screen.
	if press(m, "v") != nil || len(fb.Calls()) != 0 {
		t.Fatalf("v sent something before its reason: %v", fb.Calls())
	}
	mustContain(t, screen(m), "reason to veto c1c1c1c1: ")
	mustContain(t, m.status, "enter vetoes (a reason is optional) · esc cancels")
	typeText(m, "wrong account")
	run(t, m, press(m, "enter"))
	calls := fb.Calls()
	if len(calls) != 1 || calls[0].method != "VoteDigest" {
		t.Fatalf("calls %v", calls)
	}
	a := calls[0].args
	if a[0] != convFin || a[1] != rc1 || a[2] != payloadDigest(t, l.recs[at["request"]-1]) || a[3] != false || a[4] != "wrong account" {
		t.Errorf("VoteDigest%v", a)
	}
	mustContain(t, m.status, "vetoed c1c1c1c1: GET http://127.0.0.1:9000/httpbin/headers")

	// r in the cool-off is a veto too; esc drops it.
	m2 := newModel(t, &fakeBackend{}, ps, ps.carol, l)
	selectSeq(t, m2, at["request"])
	press(m2, "r")
	mustContain(t, screen(m2), "reason to veto c1c1c1c1: ")
	press(m2, "esc")
	if m2.asked != nil || m2.focus != paneLog {
		t.Error("esc left the prompt open")
	}
	mustContain(t, m2.status, "nothing sent")

	// /veto does the same from the input line; /reject refuses to be one.
	fb3 := &fakeBackend{}
	m3 := newModel(t, fb3, ps, ps.carol, l)
	press(m3, "/")
	typeText(m3, "reject c1c1")
	press(m3, "enter")
	mustContain(t, m3.status, "/veto c1c1c1c1 vetoes it")
	press(m3, "/")
	typeText(m3, "veto c1c1 not this quarter")
	run(t, m3, press(m3, "enter"))
	if c := fb3.Calls(); len(c) != 1 || c[0].args[3] != false || c[0].args[4] != "not this quarter" {
		t.Errorf("calls %v", c)
	}
}

func TestVetoOnAPendingRequestSaysWhy(t *testing.T) {
	ps := newPeople(t)
	l, at := scenario(t, ps)
	fb := &fakeBackend{}
	m := newModel(t, fb, ps, ps.bob, l)
	selectSeq(t, m, at["request_pending"])
	if press(m, "v") != nil || len(fb.Calls()) != 0 || m.asked != nil {
		t.Fatalf("v on a pending request: calls %v", fb.Calls())
	}
	mustContain(t, m.status, "not in a cool-off: there is nothing to veto (r rejects it)")
}

// vetoedLog is coolLog with carol's veto and the gateway's rejection.
func vetoedLog(t testing.TB, ps *people) (*logBuilder, map[string]uint64) {
	l, at, _ := coolLog(t, ps)
	l.vote(ps.carol, l.recs[at["request"]-1], false, "wrong account")
	at["veto"] = uint64(len(l.recs))
	l.gateway(conversation.KindGateRejected, gate.ClosedPayload{Header: l.header(), RequestID: rc1, Reason: gate.ReasonVetoed, Decision: l.decision(rc1)})
	at["vetoed"] = uint64(len(l.recs))
	return l, at
}

// executedLog is coolLog run to its call, once the cool-off is over.
func executedLog(t testing.TB, ps *people) (*logBuilder, map[string]uint64) {
	l, at, due := coolLog(t, ps)
	l.at = due
	l.gateway(conversation.KindGateExecuted, gate.ExecutedPayload{Header: l.header(), RequestID: rc1, Status: 200, DurationMS: 9,
		Approvers: []string{ps.alice.KeyID(), ps.bob.KeyID()}, Assignment: map[string]string{ps.alice.KeyID(): "finance", ps.bob.KeyID(): "security"}, Decision: l.decision(rc1)})
	at["executed"] = uint64(len(l.recs))
	return l, at
}

func TestVetoedAndExecutedCards(t *testing.T) {
	ps := newPeople(t)
	l, at := vetoedLog(t, ps)
	m := newModel(t, &fakeBackend{}, ps, ps.bob, l)
	for _, it := range m.conv().items {
		if it.refused != "" {
			t.Fatalf("#%d not believed: %s", it.rec.Seq, it.refused)
		}
	}
	selectSeq(t, m, at["veto"])
	mustContain(t, screen(m), "VETO c1c1c1c1", "vetoes it during its cool-off: 1 of 1 vetoes", "reason: wrong account")
	selectSeq(t, m, at["vetoed"])
	mustContain(t, screen(m), "VETOED c1c1c1c1", "vetoed during its cool-off: it was never sent (vetoed)", "vetoed by carol")
	selectSeq(t, m, at["request"])
	mustContain(t, screen(m), "vetoed by carol", "carol vetoed: wrong account", "VETOED · vetoed during its cool-off")

	x, xat := executedLog(t, ps)
	m = newModel(t, &fakeBackend{}, ps, ps.bob, x)
	selectSeq(t, m, xat["executed"])
	mustContain(t, screen(m), "EXECUTED c1c1c1c1", "approved by alice, bob", "slots: alice for finance, bob for security")
}

func TestGroupsAndPoliciesShown(t *testing.T) {
	ps := newPeople(t)
	l, at, _ := coolLog(t, ps)
	m := wide(newModel(t, &fakeBackend{}, ps, ps.bob, l))
	selectSeq(t, m, at["gate_enabled"])
	mustContain(t, screen(m), "rule httpbin * * needs 2 approvals, including 1 of finance and 1 of security; reason required; 15 min cool-off, 1 veto",
		"group finance: alice, carol", "group security: bob")

	press(m, "/")
	typeText(m, "members")
	press(m, "enter")
	s := screen(m)
	mustContain(t, s, "group finance: alice, carol", "group security: bob",
		"rule httpbin * * needs 2 approvals, including 1 of finance and 1 of security; reason required; 15 min cool-off, 1 veto")
	if !strings.Contains(s, "signer, finance") || !strings.Contains(s, "signer, security, you") {
		t.Errorf("the members' groups are not tagged:\n%s", s)
	}
}

func TestRequestAsksForTheReasonItsRuleRequires(t *testing.T) {
	ps := newPeople(t)
	l, _, _ := coolLog(t, ps)
	fb := &fakeBackend{}
	m := newModel(t, fb, ps, ps.bob, l)
	press(m, "/")
	typeText(m, "request httpbin.headers")
	mustContain(t, screen(m), "2 approvals, including 1 of finance and 1 of security; reason required", "enter asks for the reason (required)")
	if cmd := press(m, "enter"); cmd != nil || len(fb.Calls()) != 0 {
		t.Fatalf("enter submitted without the reason the rule requires: %v", fb.Calls())
	}
	mustContain(t, screen(m), "reason for the request (required): ")
	// An empty reason is refused, and the prompt stays.
	if press(m, "enter") != nil || m.asked == nil {
		t.Fatal("an empty required reason was taken")
	}
	mustContain(t, m.status, "the rule requires a reason")
	typeText(m, "rotate the audit key")
	run(t, m, press(m, "enter"))
	calls := fb.Calls()
	if len(calls) != 1 || calls[0].method != "Submit" {
		t.Fatalf("calls %v", calls)
	}
	if p := calls[0].args[1].(gate.RequestPayload); p.Reason != "rotate the audit key" || p.Service != "httpbin" {
		t.Errorf("submitted %+v", p)
	}

	// A reason after -- goes with the request: no prompt.
	fb2 := &fakeBackend{}
	m2 := newModel(t, fb2, ps, ps.bob, l)
	press(m2, "/")
	typeText(m2, "request httpbin.headers -- the customer asked")
	mustContain(t, screen(m2), "reason: the customer asked · enter submits")
	run(t, m2, press(m2, "enter"))
	if c := fb2.Calls(); len(c) != 1 || c[0].args[1].(gate.RequestPayload).Reason != "the customer asked" {
		t.Errorf("calls %v", c)
	}
}

func TestApproveWithAReason(t *testing.T) {
	ps := newPeople(t)
	l, at := scenario(t, ps)
	fb := &fakeBackend{}
	m := newModel(t, fb, ps, ps.bob, l)
	selectSeq(t, m, at["request_pending"])
	press(m, "A")
	mustContain(t, screen(m), "reason to approve e5f6a706: ")
	typeText(m, "checked the id")
	run(t, m, press(m, "enter"))
	if c := fb.Calls(); len(c) != 1 || c[0].args[3] != true || c[0].args[4] != "checked the id" {
		t.Errorf("calls %v", c)
	}
}

// TestGoldenPolicyCards draws the cards of PROTOCOL 9: a request in its
// cool-off, the gate.approved, a veto and the vetoed request, an execution
// with its slots, and the members overlay with groups.
func TestGoldenPolicyCards(t *testing.T) {
	ps := newPeople(t)
	l, at, _ := coolLog(t, ps)
	v, vat := vetoedLog(t, ps)
	x, xat := executedLog(t, ps)
	for _, tc := range []struct {
		name string
		log  *logBuilder
		seq  uint64
	}{
		{"request_approved", l, at["request"]},
		{"gate_approved", l, at["approved"]},
		{"veto", v, vat["veto"]},
		{"vetoed", v, vat["vetoed"]},
		{"executed_slots", x, xat["executed"]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newModel(t, &fakeBackend{}, ps, ps.carol, tc.log)
			selectSeq(t, m, tc.seq)
			golden(t, "card_"+tc.name, screen(m))
		})
	}
	t.Run("members_groups", func(t *testing.T) {
		m := newModel(t, &fakeBackend{}, ps, ps.carol, l)
		m.Update(tea.KeyPressMsg{Code: '/', Text: "/"})
		typeText(m, "members")
		press(m, "enter")
		golden(t, "screen_members_groups", screen(m))
	})
}

func TestSubmitterMayCancelInTheCoolOff(t *testing.T) {
	ps := newPeople(t)
	l, at, _ := coolLog(t, ps)
	fb := &fakeBackend{}
	m := wide(newModel(t, fb, ps, ps.alice, l))
	selectSeq(t, m, at["request"])
	mustContain(t, screen(m), "you: approved · v vetoes (with a reason) · c cancels")
	run(t, m, press(m, "c"))
	if c := fb.Calls(); len(c) != 1 || c[0].method != "Cancel" || c[0].args[1] != rc1 {
		t.Errorf("calls %v", c)
	}
}
