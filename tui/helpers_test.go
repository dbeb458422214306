package tui

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/catalog"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// t0 is the fixed "now" of model tests and goldens.
var t0 = time.Date(2026, 11, 22, 13, 30, 0, 0, time.UTC)

// people are deterministic identities (fixed seeds), so goldens that show
// keys stay put.
type people struct {
	alice, bob, carol, dave, gw *conversation.Identity
}

func seeded(t testing.TB, name string, seed byte) *conversation.Identity {
	t.Helper()
	return &conversation.Identity{Name: name, Private: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))}
}

func newPeople(t testing.TB) *people {
	return &people{alice: seeded(t, "alice", 1), bob: seeded(t, "bob", 2), carol: seeded(t, "carol", 3),
		dave: seeded(t, "dave", 4), gw: seeded(t, "gateway", 9)}
}

// logBuilder makes a conversation's records as a server would: signed,
// numbered and chained.
type logBuilder struct {
	t     testing.TB
	ps    *people
	conv  string
	name  string
	recs  []conversation.Record
	chain conversation.Chain
	at    time.Time
}

func newLog(t testing.TB, ps *people, conv string) *logBuilder {
	return &logBuilder{t: t, ps: ps, conv: conv, at: t0.Add(-10 * time.Minute)}
}

func (l *logBuilder) header() conversation.Header {
	return conversation.Header{Conversation: l.conv, CreatedAt: conversation.FormatTime(l.at), Gateway: l.ps.gw.KeyID()}
}

// add signs payload as kind by id and appends the record.
func (l *logBuilder) add(id *conversation.Identity, kind string, payload any) conversation.Record {
	l.t.Helper()
	env, err := conversation.SignJSON(id, kind, payload)
	if err != nil {
		l.t.Fatal(err)
	}
	return l.addEnvelope(env)
}

func (l *logBuilder) addEnvelope(env conversation.Envelope) conversation.Record {
	l.t.Helper()
	m, err := conversation.Verify(env)
	if err != nil {
		l.t.Fatal(err)
	}
	l.at = l.at.Add(7 * time.Second)
	rec := conversation.NewRecord(uint64(len(l.recs)+1), conversation.FormatTime(l.at), m, l.chain)
	l.chain, _ = conversation.ParseChain(rec.Chain)
	l.recs = append(l.recs, rec)
	return rec
}

// forged appends a record whose signature is not its author's (made by
// another key under the author's key id); its chain is consistent, so
// only the signature fails.
func (l *logBuilder) forged(claimed, signer *conversation.Identity, kind string, payload any) conversation.Record {
	l.t.Helper()
	env, err := conversation.SignJSON(signer, kind, payload)
	if err != nil {
		l.t.Fatal(err)
	}
	env.Signatures[0].KeyID = claimed.KeyID()
	pae, err := conversation.PAEOf(env)
	if err != nil {
		l.t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		l.t.Fatal(err)
	}
	l.at = l.at.Add(7 * time.Second)
	next := l.chain.Next(pae)
	rec := conversation.Record{Seq: uint64(len(l.recs) + 1), ReceivedAt: conversation.FormatTime(l.at), Kind: kind,
		Author: claimed.KeyID(), Envelope: env, Body: raw, Chain: next.String()}
	l.chain = next
	l.recs = append(l.recs, rec)
	return rec
}

// raw appends a record of payload bytes exactly as given, signed by id
// and chained, whether or not they are a payload that verifies.
func (l *logBuilder) raw(id *conversation.Identity, kind string, payload []byte) conversation.Record {
	env := conversation.Sign(id, kind, payload)
	l.at = l.at.Add(7 * time.Second)
	next := l.chain.Next(conversation.PAE(env.PayloadType, payload))
	rec := conversation.Record{Seq: uint64(len(l.recs) + 1), ReceivedAt: conversation.FormatTime(l.at), Kind: kind,
		Author: id.KeyID(), Envelope: env, Body: append(json.RawMessage(nil), payload...), Chain: next.String()}
	l.chain = next
	l.recs = append(l.recs, rec)
	return rec
}

func (l *logBuilder) create(name string) {
	ps := l.ps
	l.name = name
	l.add(ps.alice, conversation.KindConversationCreate, conversation.CreatePayload{
		Header: conversation.Header{Conversation: l.conv, CreatedAt: conversation.FormatTime(l.at)}, Name: name,
		Members: []conversation.Member{{Key: ps.alice.KeyID(), Name: "alice"}, {Key: ps.bob.KeyID(), Name: "bob"}, {Key: ps.carol.KeyID(), Name: "carol"}}})
}

func (l *logBuilder) chat(id *conversation.Identity, text string) {
	l.add(id, conversation.KindChatMessage, conversation.ChatPayload{
		Header: conversation.Header{Conversation: l.conv, CreatedAt: conversation.FormatTime(l.at)}, Text: text})
}

func (l *logBuilder) enable(m int, rules []gate.Rule) {
	ps := l.ps
	l.add(ps.alice, conversation.KindGateEnable, gate.EnablePayload{Header: l.header(), RequiredApprovals: m, Rules: rules})
	l.add(ps.gw, conversation.KindGateEnabled, gate.EnabledPayload{Header: l.header(),
		Signers: []string{ps.alice.KeyID(), ps.bob.KeyID(), ps.carol.KeyID()}, RequiredApprovals: m, Rules: gate.Normalize(rules), BoxKey: "box"})
}

// request submits a request from a template of the test catalog.
func (l *logBuilder) request(by *conversation.Identity, id, template string, args map[string]string, ttl time.Duration) conversation.Record {
	l.t.Helper()
	cat := testCatalog(l.t)
	for _, t := range cat.Templates {
		if t.Name != template {
			continue
		}
		svc := findService(cat, t.Service)
		res, err := t.Resolve(svc.BaseURL, args)
		if err != nil {
			l.t.Fatal(err)
		}
		p := gate.RequestPayload{Header: l.header(), RequestID: id, Template: t.Name, Service: t.Service, Method: res.Method,
			URL: res.URL, Headers: res.Headers, Body: res.Body, ExpiresAt: conversation.FormatTime(t0.Add(ttl))}
		if len(args) > 0 {
			p.Params = args
		}
		return l.add(by, conversation.KindGateRequest, p)
	}
	l.t.Fatalf("no template %s", template)
	return conversation.Record{}
}

func (l *logBuilder) vote(by *conversation.Identity, req conversation.Record, approve bool, reason string) {
	m, err := conversation.Verify(req.Envelope)
	if err != nil {
		l.t.Fatal(err)
	}
	var p gate.RequestPayload
	_ = json.Unmarshal(m.Payload, &p)
	kind := conversation.KindGateApprove
	if !approve {
		kind = conversation.KindGateReject
	}
	l.add(by, kind, gate.VotePayload{Header: l.header(), RequestID: p.RequestID, RequestDigest: m.PayloadDigest(), Reason: reason})
}

func (l *logBuilder) gateway(kind string, payload any) { l.add(l.ps.gw, kind, payload) }

// decision is what the gateway signs of request id when it closes it (M,
// rule, endpoint, pattern), as the fold of the log so far gives it with
// the test catalog: what a gateway writes, so the log stays one the fold
// believes.
func (l *logBuilder) decision(id string) gate.Decision {
	l.t.Helper()
	f := gate.NewFold(l.ps.gw.KeyID())
	f.Resolve = testCatalog(l.t).Target
	for _, rec := range l.recs {
		m, err := conversation.Verify(rec.Envelope)
		if err != nil {
			continue
		}
		at, _ := conversation.ParseTime(rec.ReceivedAt)
		_, _ = f.Apply(m, rec.Seq, at) // a record the fold refuses changes nothing
	}
	r := f.Requests[id]
	if r == nil {
		l.t.Fatalf("no request %s in the log", id)
	}
	return gate.DecisionOf(r)
}

var catOnce struct {
	sync.Mutex
	cat *api.Catalog
}

// testCatalog is the starter catalog with httpbin and fun on a fixed
// loopback address, so resolved URLs are stable.
func testCatalog(t testing.TB) *api.Catalog {
	catOnce.Lock()
	defer catOnce.Unlock()
	if catOnce.cat != nil {
		return catOnce.cat
	}
	c, err := catalog.Starter()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.OverrideBaseURL("httpbin", "http://127.0.0.1:9000/httpbin"); err != nil {
		t.Fatal(err)
	}
	if err := c.OverrideBaseURL("fun", "http://127.0.0.1:9000"); err != nil {
		t.Fatal(err)
	}
	catOnce.cat = &api.Catalog{Services: c.Services(), Templates: c.Templates()}
	return catOnce.cat
}

// call is one Backend call a fake saw.
type call struct {
	method string
	args   []any
}

// fakeBackend records calls; reads answer from fields.
type fakeBackend struct {
	mu    sync.Mutex
	calls []call
	err   error
}

func (f *fakeBackend) record(method string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{method, args})
	return f.err
}

func (f *fakeBackend) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

var errNotInFake = errors.New("not in the fake")

func (f *fakeBackend) Gateway(context.Context) (*api.Gateway, error)        { return nil, errNotInFake }
func (f *fakeBackend) Catalog(context.Context) (*api.Catalog, error)        { return nil, errNotInFake }
func (f *fakeBackend) Conversations(context.Context) ([]api.Summary, error) { return nil, errNotInFake }
func (f *fakeBackend) Follow(ctx context.Context, conv string, after uint64, opt client.FollowOptions, fn func(conversation.Record) error) error {
	return errNotInFake
}
func (f *fakeBackend) Say(_ context.Context, conv, text string) (conversation.Record, error) {
	return conversation.Record{}, f.record("Say", conv, text)
}
func (f *fakeBackend) Submit(_ context.Context, conv string, p gate.RequestPayload) (conversation.Record, error) {
	return conversation.Record{}, f.record("Submit", conv, p)
}
func (f *fakeBackend) VoteDigest(_ context.Context, conv, id, digest string, approve bool, reason string) (conversation.Record, error) {
	return conversation.Record{}, f.record("VoteDigest", conv, id, digest, approve, reason)
}
func (f *fakeBackend) Cancel(_ context.Context, conv, id string) (conversation.Record, error) {
	return conversation.Record{}, f.record("Cancel", conv, id)
}
func (f *fakeBackend) EnableGate(_ context.Context, conv string, m int, rules []gate.Rule) (conversation.Record, error) {
	return conversation.Record{}, f.record("EnableGate", conv, m)
}
func (f *fakeBackend) AddSecret(_ context.Context, conv, service, header, template string, ttl time.Duration, value []byte) (conversation.Record, error) {
	return conversation.Record{}, f.record("AddSecret", conv, service, ttl, string(value))
}
func (f *fakeBackend) RevokeSecret(_ context.Context, conv, secretID, service string) (conversation.Record, error) {
	return conversation.Record{}, f.record("RevokeSecret", conv, service)
}
func (f *fakeBackend) Propose(_ context.Context, conv string, p gate.ProposePayload) (conversation.Record, error) {
	return conversation.Record{}, f.record("Propose", conv, p)
}
func (f *fakeBackend) Header(_ context.Context, conv string) (conversation.Header, error) {
	return conversation.Header{Conversation: conv}, nil
}
func (f *fakeBackend) Post(_ context.Context, conv, kind string, payload any) (conversation.Record, error) {
	return conversation.Record{}, f.record("Post", conv, kind, payload)
}

// newModel returns a model of self at the fixed time and size, loaded
// with the conversations whose records are given.
func newModel(t testing.TB, b Backend, ps *people, self *conversation.Identity, logs ...*logBuilder) *Model {
	t.Helper()
	now := t0
	m := New(context.Background(), Options{Backend: b, Self: self.KeyID(), Now: func() time.Time { return now }, Location: time.UTC})
	var sums []api.Summary
	for _, l := range logs {
		// The log as it stands at start: its records are the backlog, which
		// is not unread and which the cursor replays to the newest.
		sums = append(sums, api.Summary{ID: l.conv, Name: l.name, Seq: uint64(len(l.recs))})
	}
	m.Update(startMsg{gw: &api.Gateway{SigningKey: ps.gw.KeyID()}, cat: testCatalog(t), convs: sums})
	for _, l := range logs {
		for _, r := range l.recs {
			m.Update(recordMsg{conv: l.conv, rec: r})
		}
	}
	m.Update(tea.WindowSizeMsg{Width: 100, Height: 30})
	m.View() // bubbletea draws a frame after every message
	return m
}

// setNow moves the model's clock.
func setNow(m *Model, t time.Time) { m.now = func() time.Time { return t } }

// press sends key presses to the model, each followed by a frame drawn,
// as bubbletea does (View after every Update).
func press(m *Model, keys ...string) tea.Cmd {
	var cmds []tea.Cmd
	for _, k := range keys {
		_, cmd := m.Update(keyMsg(k))
		m.View()
		cmds = append(cmds, cmd)
	}
	return tea.Batch(cmds...)
}

// typeText types text into the focused field, one key per character.
func typeText(m *Model, text string) {
	for _, r := range text {
		if r == ' ' {
			m.Update(tea.KeyPressMsg{Code: tea.KeySpace, Text: " "})
			continue
		}
		m.Update(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
}

func keyMsg(k string) tea.KeyPressMsg {
	switch k {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	}
	r := []rune(k)
	if len(r) != 1 {
		panic("unknown key " + k)
	}
	return tea.KeyPressMsg{Code: r[0], Text: k}
}

// run executes a command and the batches it holds, and feeds what they
// answer back to the model; it returns the messages.
func run(t testing.TB, m *Model, cmd tea.Cmd) []tea.Msg {
	t.Helper()
	if cmd == nil {
		return nil
	}
	msg := cmd()
	if b, ok := msg.(tea.BatchMsg); ok {
		var out []tea.Msg
		for _, c := range b {
			out = append(out, run(t, m, c)...)
		}
		return out
	}
	if msg == nil {
		return nil
	}
	m.Update(msg)
	return []tea.Msg{msg}
}

// screen is the rendered screen without colours.
func screen(m *Model) string { return ansi.Strip(m.View().Content) }

// selectSeq moves the log's cursor to the record with seq, and draws a
// frame (a and r act on the card last drawn selected).
func selectSeq(t testing.TB, m *Model, seq uint64) {
	t.Helper()
	c := m.conv()
	for i, it := range c.items {
		if it.rec.Seq == seq {
			c.cursor, c.follow, c.scroll = i, i == len(c.items)-1, 0
			m.View()
			return
		}
	}
	t.Fatalf("no record %d", seq)
}

func mustContain(t testing.TB, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("missing %q in:\n%s", sub, s)
		}
	}
}
