package tui

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
	"github.com/twokey/twokey/internal/testutil"
)

// dropProxy forwards TCP to a server and can cut every open connection,
// as a flaky network would.
type dropProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newDropProxy(t *testing.T, target string) *dropProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.drop() })
	return p
}

func (p *dropProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *dropProxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// pump feeds the model what its follow goroutines send until done holds.
func pump(t *testing.T, m *Model, seen func(tea.Msg), done func() bool) {
	t.Helper()
	deadline := time.After(60 * time.Second) // generous: CI is slow; waiting costs nothing when it is not
	for !done() {
		select {
		case msg := <-m.events:
			if seen != nil {
				seen(msg)
			}
			m.Update(msg)
		case <-deadline:
			t.Fatalf("timed out; screen:\n%s", screen(m))
		}
	}
}

// TestLiveStreamReconnectsAndResumes runs the model on the real client
// against a real server behind a proxy that drops the WebSocket: the TUI
// says it is reconnecting, then holds every record once, in order, verified.
func TestLiveStreamReconnectsAndResumes(t *testing.T) {
	srv := testutil.StartServer(t, nil)
	// Several waits of up to a minute share this context.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	alice, bob := testutil.Identity(t, "alice"), testutil.Identity(t, "bob")
	ca := testutil.Client(srv.URL(), alice, nil)
	rec, err := ca.CreateConversation(ctx, "ops", []conversation.Member{{Key: bob.KeyID(), Name: "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	var created conversation.CreatePayload
	if err := json.Unmarshal(rec.Body, &created); err != nil {
		t.Fatal(err)
	}
	conv := created.Conversation

	proxy := newDropProxy(t, strings.TrimPrefix(srv.URL(), "http://"))
	m := New(ctx, Options{Backend: testutil.Client(proxy.url(), bob, nil), Self: bob.KeyID()})
	_, cmd := m.Update(m.loadCmd()())
	run(t, m, cmd) // starts the follow goroutine
	if !m.loaded || m.conv() == nil {
		t.Fatalf("not loaded: %q", m.status)
	}
	c := m.conv()
	var states []string
	seen := func(msg tea.Msg) {
		if s, ok := msg.(connMsg); ok {
			states = append(states, s.state)
		}
	}
	say := func(text string) uint64 {
		r, err := ca.Say(ctx, conv, text)
		if err != nil {
			t.Fatal(err)
		}
		return r.Seq
	}
	last := say("one")
	pump(t, m, seen, func() bool { return len(c.items) > 0 && c.items[len(c.items)-1].rec.Seq == last })

	proxy.drop()
	pump(t, m, seen, func() bool { return strings.HasPrefix(c.conn, "reconnecting") })
	mustContain(t, screen(m), "◌ reconnecting")
	say("two")
	last = say("three")
	pump(t, m, seen, func() bool {
		return c.conn == "connected" && c.items[len(c.items)-1].rec.Seq == last
	})
	for i, it := range c.items {
		if it.rec.Seq != uint64(i+1) || it.err != nil {
			t.Fatalf("item %d: seq %d err %v", i, it.rec.Seq, it.err)
		}
	}
	s := screen(m)
	mustContain(t, s, "● live", "alice: one", "alice: two", "alice: three")
	if strings.Count(s, "alice: three") != 1 {
		t.Error("a record shows twice")
	}
	t.Logf("connection states: %q", states)
}

// TestLiveCoolOffAndVeto runs two TUIs on the real client against a real
// server whose gate has a group and a rule with a reason and a cool-off
// (PROTOCOL 9): bob submits from his TUI, which asks for the reason the
// rule requires; alice, of finance, approves with the CLI's client; both
// TUIs count the cool-off down; carol vetoes from hers with a reason, and
// the server rejects the request as vetoed.
func TestLiveCoolOffAndVeto(t *testing.T) {
	up := testutil.NewUpstream(t)
	srv := testutil.StartServer(t, up)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	alice, bob, carol := testutil.Identity(t, "alice"), testutil.Identity(t, "bob"), testutil.Identity(t, "carol")
	ca := testutil.Client(srv.URL(), alice, nil)
	rec, err := ca.CreateConversation(ctx, "ops", []conversation.Member{{Key: bob.KeyID(), Name: "bob"}, {Key: carol.KeyID(), Name: "carol"}})
	if err != nil {
		t.Fatal(err)
	}
	var created conversation.CreatePayload
	if err := json.Unmarshal(rec.Body, &created); err != nil {
		t.Fatal(err)
	}
	conv := created.Conversation
	h, err := ca.Header(ctx, conv)
	if err != nil {
		t.Fatal(err)
	}
	rule := gate.Rule{Service: "httpbin", Endpoint: gate.Any, Method: gate.Any, RequiredApprovals: 2,
		Require: []gate.Require{{Group: "finance", Approvals: 1}}, ReasonRequired: true, DelaySeconds: 600}
	if _, err := ca.Post(ctx, conv, conversation.KindGateEnable, gate.EnablePayload{Header: h, RequiredApprovals: 2,
		Rules: []gate.Rule{rule}, Groups: map[string][]string{"finance": {alice.KeyID()}}}); err != nil {
		t.Fatal(err)
	}

	start := func(id *conversation.Identity) *Model {
		m := New(ctx, Options{Backend: testutil.Client(srv.URL(), id, nil), Self: id.KeyID(), Location: time.UTC})
		_, cmd := m.Update(m.loadCmd()())
		run(t, m, cmd) // starts the follow goroutine
		if !m.loaded || m.conv() == nil {
			t.Fatalf("not loaded: %q", m.status)
		}
		m.Update(tea.WindowSizeMsg{Width: 200, Height: 50})
		pump(t, m, nil, func() bool { return m.conv().fold.Gate.Enabled })
		return m
	}
	mb, mc := start(bob), start(carol)
	mustContain(t, screen(mb), "group finance: alice", "needs 2 approvals, including 1 of finance; reason required; 10 min cool-off, 1 veto")

	// bob asks: the rule requires a reason, so the TUI asks for it first.
	press(mb, "/")
	typeText(mb, "request httpbin.headers")
	if press(mb, "enter") != nil {
		t.Fatal("submitted before the reason")
	}
	mustContain(t, screen(mb), "reason for the request (required): ")
	typeText(mb, "live audit of the headers")
	for _, msg := range run(t, mb, press(mb, "enter")) {
		if d, ok := msg.(doneMsg); ok && d.err != nil {
			t.Fatalf("submit: %v", d.err)
		}
	}
	var id string
	pump(t, mb, nil, func() bool {
		for k := range mb.conv().fold.Requests {
			id = k
		}
		return id != ""
	})
	if r := mb.conv().fold.Requests[id]; r.Payload.Reason != "live audit of the headers" {
		t.Fatalf("the request's reason is %q", r.Payload.Reason)
	}

	// alice (finance) approves: the requirement is met and the cool-off starts.
	if _, _, err := ca.Vote(ctx, conv, id, true, "checked"); err != nil {
		t.Fatal(err)
	}
	coolOff := func(m *Model) func() bool {
		return func() bool {
			r := m.conv().fold.Requests[id]
			return r != nil && r.State == gate.StateApproved && !r.ExecutableAt.IsZero()
		}
	}
	pump(t, mb, nil, coolOff(mb))
	pump(t, mc, nil, coolOff(mc))
	for _, m := range []*Model{mb, mc} {
		selectSeq(t, m, m.conv().fold.Requests[id].SubmittedSeq)
		mustContain(t, screen(m), "reason: live audit of the headers", "alice approved: checked", "slots: alice for finance",
			"APPROVED · executes in ", "unless vetoed — 0 of 1 vetoes")
	}
	mustContain(t, screen(mc), "you: not voted · v vetoes (with a reason)")

	// carol vetoes from her TUI.
	press(mc, "v")
	typeText(mc, "wrong account")
	for _, msg := range run(t, mc, press(mc, "enter")) {
		if d, ok := msg.(doneMsg); ok && d.err != nil {
			t.Fatalf("veto: %v", d.err)
		}
	}
	// The veto itself ends the request; the gateway's gate.rejected says why.
	pump(t, mc, nil, func() bool { r := mc.conv().fold.Requests[id]; return r.State == gate.StateRejected && r.Result != nil })
	r := mc.conv().fold.Requests[id]
	if r.Result == nil || r.Result.Reason != gate.ReasonVetoed {
		t.Fatalf("request closed with %+v", r.Result)
	}
	s := screen(mc)
	mustContain(t, s, "VETOED · vetoed during its cool-off", "carol vetoed: wrong account")
	st, err := ca.Request(ctx, conv, id)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != gate.StateRejected || len(st.Vetoes) != 1 || st.Vetoes[0] != carol.KeyID() {
		t.Errorf("the server holds the request %s with vetoes %v", st.State, st.Vetoes)
	}
	if n := up.Count("/httpbin/headers"); n != 0 {
		t.Errorf("the vetoed call reached the upstream %d times", n)
	}
	for _, m := range []*Model{mb, mc} {
		for _, it := range m.conv().items {
			if it.err != nil || it.refused != "" {
				t.Errorf("#%d %s: err %v, not believed: %s", it.rec.Seq, it.rec.Kind, it.err, it.refused)
			}
		}
	}
}
