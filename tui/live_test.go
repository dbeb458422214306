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
