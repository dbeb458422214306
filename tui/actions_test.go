package tui

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// twoRequests is a log where alice's request r1 waits for bob's vote and
// is the newest record; carol's r2 is returned unposted, to arrive later.
func twoRequests(t *testing.T, ps *people) (l *logBuilder, req1 conversation.Record, arrive func() conversation.Record) {
	l = newLog(t, ps, convOps)
	l.create("ops")
	l.enable(2, nil)
	req1 = l.request(ps.alice, r1, "httpbin.headers", nil, time.Hour)
	return l, req1, func() conversation.Record {
		return l.request(ps.carol, r2, "httpbin.headers", nil, time.Hour)
	}
}

// TestAKeyNeverActsOnARequestThatArrivedUnderTheCursor: bob has r1
// selected; r2 arrives just before he presses a. The cursor stays on r1
// and a approves r1, never r2.
func TestAKeyNeverActsOnARequestThatArrivedUnderTheCursor(t *testing.T) {
	ps := newPeople(t)
	l, req1, arrive := twoRequests(t, ps)
	fb := &fakeBackend{}
	m := newModel(t, fb, ps, ps.bob, l)
	c := m.conv()
	if it := c.selected(); it.rec.Seq != req1.Seq || m.shown.seq != req1.Seq {
		t.Fatalf("start: cursor on #%d, drawn #%d; want r1 (#%d)", it.rec.Seq, m.shown.seq, req1.Seq)
	}
	req2 := arrive()
	m.Update(recordMsg{convOps, req2}) // no frame drawn since
	if it := c.selected(); it.rec.Seq != req1.Seq {
		t.Fatalf("the cursor moved to #%d when r2 arrived; it must stay on r1 (#%d)", it.rec.Seq, req1.Seq)
	}
	mustContain(t, m.status, "#5 below also waits for your vote: the selection stays on #4")
	run(t, m, press(m, "a"))
	calls := fb.Calls()
	if len(calls) != 1 || calls[0].method != "VoteDigest" {
		t.Fatalf("calls %v, want one VoteDigest", calls)
	}
	if a := calls[0].args; a[1] != r1 || a[2] != payloadDigest(t, req1) || a[3] != true {
		t.Fatalf("VoteDigest%v, want an approval of r1 bound to its digest", a)
	}
	mustContain(t, screen(m), "┃ #4 REQUEST 3f2a9c1d")

	// bob's approval of r1 arrives: r1 no longer waits, so the cursor
	// follows again, to that newest record (not onto r2 above it).
	l.vote(ps.bob, req1, true, "")
	m.Update(recordMsg{convOps, l.recs[len(l.recs)-1]})
	if it := c.selected(); it.rec.Kind != conversation.KindGateApprove {
		t.Fatalf("after bob's vote the cursor is on #%d %s, want his approval", it.rec.Seq, it.rec.Kind)
	}
	m.View()
	if press(m, "a") != nil || !strings.Contains(m.status, "is an approval, not a request") {
		t.Errorf("a on the approval: status %q", m.status)
	}
	if n := len(fb.Calls()); n != 1 {
		t.Errorf("%d calls, want still 1", n)
	}
}

// TestVoteActsOnTheCardLastDrawn: with a chat selected, r2 arrives and the
// cursor follows it; a pressed before a frame shows r2 acts on the chat
// (nothing), and only after r2 was drawn selected does a approve it.
func TestVoteActsOnTheCardLastDrawn(t *testing.T) {
	ps := newPeople(t)
	l, _, arrive := twoRequests(t, ps)
	l.vote(ps.bob, l.recs[len(l.recs)-1], true, "") // bob already voted on r1
	l.chat(ps.alice, "thanks")
	fb := &fakeBackend{}
	m := newModel(t, fb, ps, ps.bob, l)
	req2 := arrive()
	m.Update(recordMsg{convOps, req2})
	if it := m.conv().selected(); it.rec.Seq != req2.Seq {
		t.Fatalf("cursor on #%d, want r2 (#%d): nothing waited for bob before", it.rec.Seq, req2.Seq)
	}
	_, cmd := m.Update(keyMsg("a")) // before any frame shows r2
	if cmd != nil || len(fb.Calls()) != 0 {
		t.Fatalf("a before r2 was drawn: cmd %v calls %v", cmd != nil, fb.Calls())
	}
	mustContain(t, m.status, "#6 is a chat message, not a request")
	m.View()
	run(t, m, press(m, "a"))
	calls := fb.Calls()
	if len(calls) != 1 || calls[0].args[1] != r2 || calls[0].args[2] != payloadDigest(t, req2) {
		t.Fatalf("after r2 was drawn, a: calls %v", calls)
	}

	// An overlay hides the log: nothing is drawn selected, a acts on nothing.
	m = newModel(t, fb, ps, ps.bob, l)
	m.Update(recordMsg{convOps, req2})
	m.overlay = "members"
	m.View()
	m.overlay = ""
	if _, cmd := m.Update(keyMsg("a")); cmd != nil || !strings.Contains(m.status, "nothing selected on screen") {
		t.Errorf("a after an overlay: status %q", m.status)
	}
}

// TestDoubleAApprovesOnce: a second a while the first vote is on its way
// says so and sends nothing; a refusal clears the mark, the vote's record
// ends it.
func TestDoubleAApprovesOnce(t *testing.T) {
	ps := newPeople(t)
	l := newLog(t, ps, convDev)
	l.create("dev")
	l.enable(3, nil)
	req := l.request(ps.alice, r1, "httpbin.headers", nil, time.Hour)
	fb := &fakeBackend{}
	m := newModel(t, fb, ps, ps.bob, l)

	first := press(m, "a")
	if first == nil {
		t.Fatalf("a sent nothing: %q", m.status)
	}
	for _, k := range []string{"a", "r"} {
		if press(m, k) != nil {
			t.Errorf("%s while the approval is on its way sent another vote", k)
		}
		mustContain(t, m.status, "your approval of request 3f2a9c1d is already being sent")
	}
	// The server refuses it: the mark clears and a may try again.
	fb.err = &twokey.Error{Code: twokey.EUnavailable, Message: "the server is shutting down"}
	run(t, m, first)
	mustContain(t, m.status, "could not approve 3f2a9c1d: the server is shutting down")
	fb.err = nil
	second := press(m, "a")
	if second == nil {
		t.Fatalf("a after a refusal: %q", m.status)
	}
	run(t, m, second) // accepted; the record is not in yet
	if press(m, "a") != nil {
		t.Error("a after the server accepted, before the record arrived, sent another vote")
	}
	l.vote(ps.bob, req, true, "")
	m.Update(recordMsg{convDev, l.recs[len(l.recs)-1]})
	selectSeq(t, m, req.Seq)
	if press(m, "a") != nil || m.status != "you already approved request 3f2a9c1d" {
		t.Errorf("a after the vote's record: %q", m.status)
	}
	if n := len(fb.Calls()); n != 2 {
		t.Errorf("%d VoteDigest calls, want 2 (one refused, one accepted)", n)
	}

	// A proposal's approval: the same.
	p := newLog(t, ps, convOps)
	p.create("ops")
	p.enable(2, nil)
	p.add(ps.alice, conversation.KindMemberPropose, gateProposeDave(p))
	fb = &fakeBackend{}
	m = newModel(t, fb, ps, ps.bob, p)
	if press(m, "a") == nil || press(m, "a") != nil {
		t.Fatal("a, a on a proposal: want one approval")
	}
	mustContain(t, m.status, "your approval of proposal f1a2b3c4 is already being sent")
}

func TestSecretPasteDropsLineBreaksAndSaysWhenTooLong(t *testing.T) {
	ps := newPeople(t)
	l, _ := scenario(t, ps)
	fb := &fakeBackend{}
	m := newModel(t, fb, ps, ps.bob, l)
	openSecret := func() {
		press(m, "/")
		typeText(m, "secret add httpbin")
		press(m, "enter")
		if m.secretFor != "httpbin" {
			t.Fatalf("not in the hidden field: %q", m.status)
		}
	}
	openSecret()
	m.Update(tea.PasteMsg{Content: "sk_live_51Hx\r\n"})
	run(t, m, press(m, "enter"))
	calls := fb.Calls()
	if len(calls) != 1 || calls[0].args[3] != "sk_live_51Hx" {
		t.Fatalf("calls %v, want the key without its line break", calls)
	}

	// A line break that reached the field some other way is trimmed too.
	openSecret()
	m.secret.SetValue("sk_live_2\n")
	run(t, m, press(m, "enter"))
	if calls := fb.Calls(); len(calls) != 2 || calls[1].args[3] != "sk_live_2" {
		t.Fatalf("calls %v", calls)
	}

	// A paste longer than the field takes: refused whole, and said so,
	// without repeating it.
	openSecret()
	big := "sk_" + strings.Repeat("x", 9000)
	m.Update(tea.PasteMsg{Content: big})
	if m.secret.Value() != "" {
		t.Errorf("part of a too long paste went in: %d bytes", len(m.secret.Value()))
	}
	if !m.statusErr || !strings.Contains(m.status, "nothing pasted: 9003 more bytes would make the key field longer than its limit of 8192 bytes") {
		t.Errorf("status %q", m.status)
	}
	if strings.Contains(screen(m), "xxxxxxxx") {
		t.Error("the paste shows on screen")
	}
	press(m, "esc")
	if len(fb.Calls()) != 2 {
		t.Errorf("calls %v", fb.Calls())
	}
}

func TestSecretKeyOnTheCommandLineIsNeverEchoed(t *testing.T) {
	ps := newPeople(t)
	l, _ := scenario(t, ps)
	for _, line := range []string{
		"/secret add httpbin sk_live_51HxQ9",
		"/secret add httpbin sk live 51HxQ9",
		"/secret add sk_live_51HxQ9",
	} {
		fb := &fakeBackend{}
		m := newModel(t, fb, ps, ps.bob, l)
		press(m, "i")
		typeText(m, line)
		run(t, m, press(m, "enter"))
		if len(fb.Calls()) != 0 || m.secretFor != "" {
			t.Errorf("%q: calls %v, hidden field for %q", line, fb.Calls(), m.secretFor)
		}
		s := screen(m)
		if strings.Contains(m.status, "51HxQ9") || strings.Contains(s, "51HxQ9") {
			t.Errorf("%q: the key is echoed:\n%s", line, s)
		}
		if !m.statusErr {
			t.Errorf("%q: not an error: %q", line, m.status)
		}
		if line != "/secret add sk_live_51HxQ9" {
			mustContain(t, m.status, "A key is never typed on the command line: /secret add SERVICE opens a hidden field for it",
				"revoke it at its provider and use a new one")
			// The whole explanation is on screen, wrapped, not cut.
			mustContain(t, strings.Join(strings.Fields(s), " "), "revoke it at its provider and use a new one")
		}
	}
}

// followBackend's Follow returns at once, with err, after noting where it
// was asked to start.
type followBackend struct {
	fakeBackend
	mu     sync.Mutex
	afters []uint64
	err    error
}

func (f *followBackend) Follow(ctx context.Context, conv string, after uint64, opt client.FollowOptions, fn func(conversation.Record) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.afters = append(f.afters, after)
	return f.err
}

func TestStreamRestartsWithBackoffUnlessRefused(t *testing.T) {
	for n, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second} {
		if got := followBackoff(n); got != want {
			t.Errorf("followBackoff(%d) = %v, want %v", n, got, want)
		}
	}
	ps := newPeople(t)
	l, _ := scenario(t, ps)
	fb := &followBackend{err: &twokey.Error{Code: twokey.EInternal, Message: "boom"}}
	m := newModel(t, fb, ps, ps.bob, l)
	c := m.conv()

	_, cmd := m.Update(followEndMsg{convOps, &twokey.Error{Code: twokey.ERateLimited, Message: "slow down"}})
	if cmd == nil {
		t.Fatal("a stream that ended with rate_limited is not restarted")
	}
	mustContain(t, screen(m), "◌ the stream ended: slow down · retrying in 1s")
	m.Update(followEndMsg{convOps, errors.New("read: connection reset")})
	mustContain(t, screen(m), "◌ the stream ended: read: connection reset · retrying in 2s")
	setNow(m, t0.Add(1500*time.Millisecond))
	mustContain(t, screen(m), "retrying in 1s") // counts down with the clock

	// The restart resumes after the last record held.
	_, cmd = m.Update(restartMsg{convOps})
	if cmd == nil || !c.retryAt.IsZero() {
		t.Fatal("restartMsg did not restart the stream")
	}
	mustContain(t, screen(m), "◌ reconnecting: restarting the stream")
	run(t, m, cmd)
	select {
	case msg := <-m.events:
		end, ok := msg.(followEndMsg)
		if !ok || end.conv != convOps {
			t.Fatalf("got %#v, want the stream's end", msg)
		}
		m.Update(end)
	case <-time.After(60 * time.Second):
		t.Fatal("the restarted stream never ran")
	}
	fb.mu.Lock()
	afters := fb.afters
	fb.mu.Unlock()
	if len(afters) != 1 || afters[0] != uint64(len(l.recs)) {
		t.Errorf("restarted after %v, want after %d", afters, len(l.recs))
	}
	if c.restarts != 3 {
		t.Errorf("restarts %d, want 3", c.restarts)
	}
	mustContain(t, screen(m), "◌ the stream ended: boom · retrying in 4s")
	// A record arriving means the stream works: the next wait is short again.
	l.chat(ps.alice, "back")
	m.Update(recordMsg{convOps, l.recs[len(l.recs)-1]})
	if c.restarts != 0 {
		t.Errorf("restarts %d after a record, want 0", c.restarts)
	}

	// Not a member: shown plainly, never retried.
	_, cmd = m.Update(followEndMsg{convOps, &twokey.Error{Code: twokey.ENotMember, Message: "you are not a member of this conversation"}})
	if cmd != nil {
		t.Error("a not_member refusal is retried")
	}
	s := screen(m)
	mustContain(t, s, "stopped: you are not a member of this conversation")
	if strings.Contains(s, "retrying") {
		t.Error("the header says it is retrying after not_member")
	}
	if _, cmd := m.Update(restartMsg{convOps}); cmd != nil {
		t.Error("a stale restart restarted a refused stream")
	}
}

func TestMoreKeys(t *testing.T) {
	ps := newPeople(t)
	l, at := scenario(t, ps)

	// down and j move to the next card in the log pane.
	m := newModel(t, &fakeBackend{}, ps, ps.bob, l)
	selectSeq(t, m, at["chat"])
	press(m, "down")
	if got := m.conv().selected().rec.Seq; got != at["chat"]+1 {
		t.Errorf("down: #%d, want #%d", got, at["chat"]+1)
	}
	press(m, "j")
	if got := m.conv().selected().rec.Seq; got != at["chat"]+2 {
		t.Errorf("j: #%d, want #%d", got, at["chat"]+2)
	}
	mustContain(t, screen(m), "┃ #4 GATE ENABLED")

	// /cancel by the submitter (carol submitted r6), and c on the card.
	for _, how := range []string{"/cancel", "c"} {
		fb := &fakeBackend{}
		m = newModel(t, fb, ps, ps.carol, l)
		selectSeq(t, m, at["request_pending"])
		if how == "c" {
			run(t, m, press(m, "c"))
		} else {
			press(m, "i")
			typeText(m, "/cancel e5f6")
			run(t, m, press(m, "enter"))
		}
		calls := fb.Calls()
		if len(calls) != 1 || calls[0].method != "Cancel" || calls[0].args[0] != convOps || calls[0].args[1] != r6 {
			t.Fatalf("%s: calls %v (status %q)", how, calls, m.status)
		}
		if m.status != "cancelled e5f6a706" {
			t.Errorf("%s: status %q", how, m.status)
		}
	}

	// /quit quits.
	m = newModel(t, &fakeBackend{}, ps, ps.bob, l)
	press(m, "i")
	typeText(m, "/quit")
	cmd := press(m, "enter")
	if cmd == nil {
		t.Fatal("/quit returned no command")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok || !m.quitting {
		t.Error("/quit does not quit")
	}
}

// gateProposeDave is alice's proposal to add dave.
func gateProposeDave(l *logBuilder) gate.ProposePayload {
	return gate.ProposePayload{Header: l.header(), ProposalID: prop1, Add: []conversation.Member{{Key: l.ps.dave.KeyID(), Name: "dave"}}}
}
