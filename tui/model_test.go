package tui

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/api"
	"github.com/twokey/twokey/client"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// recordingServer stands in for a twokey server: it answers the gateway's
// keys and records every envelope posted, and nothing else.
type recordingServer struct {
	*httptest.Server
	mu     sync.Mutex
	posted [][]byte
	others []string
}

func newRecordingServer(t *testing.T, ps *people) *recordingServer {
	rs := &recordingServer{}
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rs.mu.Lock()
		defer rs.mu.Unlock()
		switch {
		case r.Method == "GET" && r.URL.Path == "/v1/gateway":
			json.NewEncoder(w).Encode(map[string]string{"version": "test", "signing_key": ps.gw.KeyID(), "box_key": "x"})
		case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/messages"):
			rs.posted = append(rs.posted, body)
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"seq": 1000}`))
		default:
			rs.others = append(rs.others, r.Method+" "+r.URL.Path)
			http.Error(w, `{"error":{"code":"not_found","message":"not here"}}`, http.StatusNotFound)
		}
	}))
	t.Cleanup(rs.Close)
	return rs
}

// payloadDigest is the test's own computation of a request_digest: SHA-256
// of the payload bytes inside the record's envelope.
func payloadDigest(t *testing.T, rec conversation.Record) string {
	raw, err := base64.StdEncoding.DecodeString(rec.Envelope.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return conversation.Digest(raw)
}

func TestApproveSignsTheDigestOfTheRequestOnScreen(t *testing.T) {
	ps := newPeople(t)
	l, at := scenario(t, ps)
	rs := newRecordingServer(t, ps)
	m := newModel(t, client.New(rs.URL, ps.bob), ps, ps.bob, l)
	selectSeq(t, m, at["request_pending"])
	mustContain(t, screen(m), "you: not voted yet · a approve · r reject")

	msgs := run(t, m, press(m, "a"))
	if len(msgs) != 1 {
		t.Fatalf("a produced %d messages, want one outcome: %#v", len(msgs), msgs)
	}
	if d, ok := msgs[0].(doneMsg); !ok || d.err != nil {
		t.Fatalf("approve: %#v", msgs[0])
	}
	if len(rs.posted) != 1 {
		t.Fatalf("posted %d envelopes, want 1", len(rs.posted))
	}
	if len(rs.others) != 0 {
		t.Errorf("the TUI asked the server for %v; the digest must come from the log it holds", rs.others)
	}
	msg, err := conversation.Open(rs.posted[0])
	if err != nil {
		t.Fatalf("posted envelope does not verify: %v", err)
	}
	if msg.Kind != conversation.KindGateApprove || msg.Author != ps.bob.KeyID() {
		t.Fatalf("posted %s by %s, want gate.approve by bob", msg.Kind, msg.Author)
	}
	var p gate.VotePayload
	if err := json.Unmarshal(msg.Payload, &p); err != nil {
		t.Fatal(err)
	}
	want := payloadDigest(t, l.recs[at["request_pending"]-1])
	if p.RequestID != r6 || p.RequestDigest != want {
		t.Errorf("approved %s with digest %s, want %s with %s", p.RequestID, p.RequestDigest, r6, want)
	}
	if p.Conversation != convOps || p.Gateway != ps.gw.KeyID() {
		t.Errorf("payload bound to conversation %q gateway %q", p.Conversation, p.Gateway)
	}
	mustContain(t, screen(m), "approved e5f6a706: GET https://hacker-news.firebaseio.com/v0/item/8863.json")
}

func TestRejectKeySignsARejection(t *testing.T) {
	ps := newPeople(t)
	l, at := scenario(t, ps)
	fb := &fakeBackend{}
	m := newModel(t, fb, ps, ps.bob, l)
	selectSeq(t, m, at["request_pending"])
	// r asks for a reason first (optional: enter alone sends none).
	if press(m, "r") != nil || len(fb.Calls()) != 0 {
		t.Fatalf("r sent something before its reason: %v", fb.Calls())
	}
	mustContain(t, screen(m), "reason to reject e5f6a706: ")
	mustContain(t, m.status, "enter rejects (a reason is optional) · esc cancels")
	run(t, m, press(m, "enter"))
	calls := fb.Calls()
	if len(calls) != 1 || calls[0].method != "VoteDigest" {
		t.Fatalf("calls %v", calls)
	}
	a := calls[0].args
	if a[1] != r6 || a[2] != payloadDigest(t, l.recs[at["request_pending"]-1]) || a[3] != false {
		t.Errorf("VoteDigest%v", a)
	}
}

func TestAOnAResolvedRequestDoesNothingAndSaysWhy(t *testing.T) {
	ps := newPeople(t)
	l, at := scenario(t, ps)
	cases := []struct {
		seq  uint64
		want string
	}{
		{at["request_executed"], "request 3f2a9c1d is already executed (status 200): it takes no more votes"},
		{at["request_rejected"], "request 7c1e0b42 is already rejected"},
		{at["expired"] - 1, "request a41d9e03 is already expired"},
		{at["failed"] - 2, "request c9b2f104 is already failed (no_secret)"},
		{at["cancel"] - 1, "request d0e3a205 is already cancelled (cancelled_by_submitter)"},
		{at["chat"], "#2 is a chat message, not a request"},
		{at["executed"], "#8 is an execution, not a request"},
	}
	for _, tc := range cases {
		fb := &fakeBackend{}
		m := newModel(t, fb, ps, ps.bob, l)
		selectSeq(t, m, tc.seq)
		if cmd := press(m, "a"); cmd != nil {
			t.Errorf("#%d: a returned a command", tc.seq)
		}
		if len(fb.Calls()) != 0 {
			t.Errorf("#%d: backend called: %v", tc.seq, fb.Calls())
		}
		if !m.statusErr || !strings.Contains(m.status, tc.want) {
			t.Errorf("#%d: status %q, want %q", tc.seq, m.status, tc.want)
		}
		mustContain(t, screen(m), tc.want)
	}
}

func TestAOnARequestPastItsExpiryOrAlreadyVoted(t *testing.T) {
	ps := newPeople(t)
	l, at := scenario(t, ps)
	fb := &fakeBackend{}
	m := newModel(t, fb, ps, ps.bob, l)
	selectSeq(t, m, at["request_pending"])
	setNow(m, t0.Add(time.Hour))
	if press(m, "a") != nil || !strings.Contains(m.status, "request e5f6a706 expired at 14:30:00") {
		t.Errorf("past expiry: status %q", m.status)
	}

	// bob's approval arrives over the stream: it reaches M, and a second
	// a says the request is executing.
	setNow(m, t0)
	l.vote(ps.bob, l.recs[at["request_pending"]-1], true, "")
	m.Update(recordMsg{convOps, l.recs[len(l.recs)-1]})
	selectSeq(t, m, at["request_pending"])
	if press(m, "a") != nil || !strings.Contains(m.status, "request e5f6a706 is already executing") {
		t.Errorf("executing: status %q", m.status)
	}
	mustContain(t, screen(m), "approvals 2/2: carol, bob", "you: approved", "EXECUTING")
	if len(fb.Calls()) != 0 {
		t.Errorf("backend called: %v", fb.Calls())
	}

	// With M=3, bob's approval leaves it pending: a again says he voted.
	l3 := newLog(t, ps, convDev)
	l3.create("dev")
	l3.enable(3, nil)
	req := l3.request(ps.alice, r1, "httpbin.headers", nil, time.Hour)
	l3.vote(ps.bob, req, true, "")
	m = newModel(t, fb, ps, ps.bob, l3)
	selectSeq(t, m, req.Seq)
	if press(m, "a") != nil || m.status != "you already approved request 3f2a9c1d" {
		t.Errorf("voted: status %q", m.status)
	}
	if press(m, "r") != nil || m.status != "you already approved request 3f2a9c1d" {
		t.Errorf("voted, r: status %q", m.status)
	}

	// dave is not a signer of a request made before he joined.
	m = newModel(t, fb, ps, ps.dave, l)
	selectSeq(t, m, at["request_executed"])
	press(m, "a")
	if !strings.Contains(m.status, "already executed") {
		t.Errorf("dave: %q", m.status)
	}
}

func TestTamperedRecordsAreRedAndNeverApproved(t *testing.T) {
	ps := newPeople(t)
	l := forgedLog(t, ps)
	// A record whose body was edited after signing: same envelope, another URL.
	tampered := l.request(ps.alice, "0b0b0b0b-5b6e-4f70-8a91-00000000000b", "httpbin.headers", nil, time.Hour)
	tampered.Body = json.RawMessage(strings.Replace(string(tampered.Body), "127.0.0.1:9000", "evil.example", 1))
	l.recs[len(l.recs)-1] = tampered
	// A gateway record signed by a member.
	l.add(ps.alice, conversation.KindGateExecuted, gate.ExecutedPayload{Header: l.header(), RequestID: "0a0a0a0a-5b6e-4f70-8a91-00000000000a", Status: 200})
	// A request whose chain value is not the one that follows the log: the
	// records before it were changed (or it was spliced in).
	badChain := l.request(ps.alice, "0c0c0c0c-5b6e-4f70-8a91-00000000000c", "httpbin.headers", nil, time.Hour)
	badChain.Chain = conversation.Chain{1, 2, 3}.String()
	l.recs[len(l.recs)-1] = badChain
	// A request after a gap: record 10 is missing.
	gap := l.request(ps.alice, "0d0d0d0d-5b6e-4f70-8a91-00000000000d", "httpbin.headers", nil, time.Hour)
	gap.Seq++
	l.recs[len(l.recs)-1] = gap

	fb := &fakeBackend{}
	m := newModel(t, fb, ps, ps.carol, l)
	c := m.conv()
	var bad []string
	for _, it := range c.items {
		if it.err != nil {
			bad = append(bad, it.err.Error())
		}
	}
	want := []string{"record 5: signature does not verify", "record 7: body does not match", "record 8: gate.executed claims to be the gateway's",
		"record 9: chain value does not match", "record 11: expected seq 10 (a record is missing or out of order)"}
	if len(bad) != len(want) {
		t.Fatalf("failures %q, want %d", bad, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(bad[i], want[i]) {
			t.Errorf("failure %d: %q, want %q", i, bad[i], want[i])
		}
	}
	// The impostor's approval and the member's "executed" change nothing.
	r := c.request("0a0a0a0a-5b6e-4f70-8a91-00000000000a")
	if len(r.Approvals) != 1 || r.State != gate.StatePending {
		t.Errorf("request after forged records: approvals %v state %s", r.Approvals, r.State)
	}
	if c.items[5].err != nil {
		t.Errorf("the genuine chat after a forged record should verify: %v", c.items[4].err)
	}
	if c.broken == "" {
		t.Error("conversation not marked broken")
	}
	// a, r and c on each failing request: nothing signed. Each card is red,
	// on its own lines (not merely somewhere on the screen), with its reason.
	for _, tc := range []struct {
		seq        uint64
		id, reason string
	}{
		{7, "0b0b0b0b-5b6e-4f70-8a91-00000000000b", "record 7: body does not match its envelope's signed payload"},
		{9, "0c0c0c0c-5b6e-4f70-8a91-00000000000c", "record 9: chain value does not match (the log before it was changed)"},
		{11, "0d0d0d0d-5b6e-4f70-8a91-00000000000d", "record 11: expected seq 10 (a record is missing or out of order)"},
	} {
		selectSeq(t, m, tc.seq)
		if press(m, "a") != nil || !strings.Contains(m.status, fmt.Sprintf("record #%d does not verify", tc.seq)) {
			t.Errorf("a on #%d: status %q", tc.seq, m.status)
		}
		if press(m, "r") != nil || press(m, "c") != nil {
			t.Errorf("r or c on #%d sent something", tc.seq)
		}
		if _, ok := c.fold.Requests[tc.id]; ok {
			t.Errorf("#%d, which does not verify, was taken as a request", tc.seq)
		}
		m.status = ""
		raw := m.View().Content
		title := fmt.Sprintf("#%d ✗ DOES NOT VERIFY", tc.seq)
		for _, text := range []string{title, "claims to be gate.request by alice", tc.reason, "not trusted: it changes nothing here and cannot be approved"} {
			if !drawnRed(raw, text) {
				t.Errorf("#%d: %q is not drawn red:\n%s", tc.seq, text, lineWith(raw, text))
			}
		}
	}
	// The good chat is not red: the check can tell.
	if drawnRed(m.View().Content, "this one is fine") {
		t.Error("drawnRed says a genuine chat is red")
	}
	mustContain(t, screen(m), "✗ the log does not verify")
	if len(fb.Calls()) != 0 {
		t.Errorf("backend called: %v", fb.Calls())
	}
}

func TestDuplicatesAreDroppedAndReconnectingShows(t *testing.T) {
	ps := newPeople(t)
	l, _ := scenario(t, ps)
	fb := &fakeBackend{}
	m := newModel(t, fb, ps, ps.bob, l)
	n := len(m.conv().items)
	m.Update(connMsg{convOps, "reconnecting: connection lost: EOF"})
	mustContain(t, screen(m), "◌ reconnecting: connection lost: EOF")
	m.Update(connMsg{convOps, "connected"})
	// The stream resumes from its last seq; a repeat of records already held
	// (a resume that overlaps) is dropped.
	for _, r := range l.recs[n-3:] {
		m.Update(recordMsg{convOps, r})
	}
	l.chat(ps.alice, "after the drop")
	m.Update(recordMsg{convOps, l.recs[len(l.recs)-1]})
	c := m.conv()
	if len(c.items) != n+1 || c.broken != "" {
		t.Fatalf("items %d (want %d), broken %q", len(c.items), n+1, c.broken)
	}
	for i, it := range c.items {
		if it.rec.Seq != uint64(i+1) || it.err != nil {
			t.Fatalf("item %d: seq %d err %v", i, it.rec.Seq, it.err)
		}
	}
	s := screen(m)
	mustContain(t, s, "● live", "after the drop")
	if strings.Count(s, "after the drop") != 1 {
		t.Error("record shown twice")
	}
}

func TestSlashCommands(t *testing.T) {
	ps := newPeople(t)
	l, at := scenario(t, ps)
	reqDigest := payloadDigest(t, l.recs[at["request_pending"]-1])
	type want struct {
		method string
		check  func(t *testing.T, args []any)
	}
	cases := []struct {
		line   string
		want   *want
		status string
	}{
		{"/approve e5f6", &want{"VoteDigest", func(t *testing.T, a []any) {
			if a[1] != r6 || a[2] != reqDigest || a[3] != true {
				t.Errorf("args %v", a)
			}
		}}, ""},
		{"/reject e5f6a706 looks risky", &want{"VoteDigest", func(t *testing.T, a []any) {
			if a[1] != r6 || a[3] != false || a[4] != "looks risky" {
				t.Errorf("args %v", a)
			}
		}}, ""},
		{"/approve 3f2a", nil, "already executed"},
		{"/approve zz", nil, `no request id starting with "zz"`},
		{"/cancel e5f6", nil, "only its submitter may cancel"},
		{"/request hn.get-item id=1", &want{"Submit", func(t *testing.T, a []any) {
			p := a[1].(gate.RequestPayload)
			if p.URL != "https://hacker-news.firebaseio.com/v0/item/1.json" || p.Method != "GET" || p.Template != "hn.get-item" ||
				p.ExpiresAt != conversation.FormatTime(t0.Add(time.Hour)) || p.Params["id"] != "1" {
				t.Errorf("payload %+v", p)
			}
		}}, ""},
		{"/request hn.get-item", nil, `missing required parameter "id"`},
		{"/request nope", nil, `no template "nope"`},
		{"/gate enable 2", &want{"EnableGate", func(t *testing.T, a []any) {
			if a[1] != 2 {
				t.Errorf("args %v", a)
			}
		}}, ""},
		{"/gate enable x", nil, "usage: /gate enable M"},
		{"/secret revoke httpbin", &want{"RevokeSecret", func(t *testing.T, a []any) {
			if a[1] != "httpbin" {
				t.Errorf("args %v", a)
			}
		}}, ""},
		{"/propose add erin=" + ps.gw.KeyID(), &want{"Propose", func(t *testing.T, a []any) {
			p := a[1].(gate.ProposePayload)
			if len(p.Add) != 1 || p.Add[0].Name != "erin" || p.Add[0].Key != ps.gw.KeyID() {
				t.Errorf("payload %+v", p)
			}
		}}, ""},
		{"/propose remove carol", &want{"Propose", func(t *testing.T, a []any) {
			p := a[1].(gate.ProposePayload)
			if len(p.Remove) != 1 || p.Remove[0] != ps.carol.KeyID() {
				t.Errorf("payload %+v", p)
			}
		}}, ""},
		{"/propose remove nobody", nil, `no member "nobody"`},
		{"hello there", &want{"Say", func(t *testing.T, a []any) {
			if a[1] != "hello there" {
				t.Errorf("args %v", a)
			}
		}}, ""},
		{"/nope", nil, "unknown command /nope"},
	}
	for _, tc := range cases {
		t.Run(tc.line, func(t *testing.T) {
			fb := &fakeBackend{}
			m := newModel(t, fb, ps, ps.bob, l)
			press(m, "i")
			typeText(m, tc.line)
			run(t, m, press(m, "enter"))
			calls := fb.Calls()
			if tc.want == nil {
				if len(calls) != 0 {
					t.Errorf("calls %v", calls)
				}
				if !strings.Contains(m.status, tc.status) {
					t.Errorf("status %q, want %q", m.status, tc.status)
				}
				return
			}
			if len(calls) != 1 || calls[0].method != tc.want.method {
				t.Fatalf("calls %v, want one %s (status %q)", calls, tc.want.method, m.status)
			}
			if calls[0].args[0] != convOps {
				t.Errorf("posted to %v", calls[0].args[0])
			}
			tc.want.check(t, calls[0].args)
			if m.input.Value() != "" {
				t.Errorf("input not cleared: %q", m.input.Value())
			}
		})
	}
}

func TestRequestPreviewBeforeEnter(t *testing.T) {
	ps := newPeople(t)
	l, _ := scenario(t, ps)
	m := newModel(t, &fakeBackend{}, ps, ps.bob, l)
	press(m, "/")
	typeText(m, "request httpbin.echo data=hi")
	mustContain(t, screen(m),
		"> /request httpbin.echo data=hi",
		`POST http://127.0.0.1:9000/httpbin/post`,
		"service httpbin (key required) · risk write · suggested M 2",
		"rule httpbin POST /post applies: 3 of 4 signers must approve · enter submits")
	// Editing the line updates the preview.
	for range len("data=hi") {
		press(m, "backspace")
	}
	mustContain(t, screen(m), `missing required parameter "data"`)
	m.input.SetValue("/request dogs.breed breed=hound")
	mustContain(t, screen(m), "GET https://dog.ceo/api/breed/hound/images/random", "no rule applies: the default 2 of 4 signers must approve")
	m.input.SetValue("/approve e5f6")
	mustContain(t, screen(m), "approve e5f6a706: GET https://hacker-news.firebaseio.com/v0/item/8863.json · approvals 1/2 ·", "  pending")
}

func TestSecretIsTypedHiddenAndSealedByTheClient(t *testing.T) {
	ps := newPeople(t)
	l, _ := scenario(t, ps)
	fb := &fakeBackend{}
	m := newModel(t, fb, ps, ps.bob, l)
	press(m, "/")
	typeText(m, "secret add httpbin 720h")
	press(m, "enter")
	if m.secretFor != "httpbin" || m.focus != paneInput {
		t.Fatalf("not in the hidden field: %q %v", m.secretFor, m.focus)
	}
	typeText(m, "sk_test_51Hx")
	s := screen(m)
	if strings.Contains(s, "sk_test_51Hx") {
		t.Fatal("the key shows on screen")
	}
	mustContain(t, s, "key for httpbin: ••••••••••••", "hidden, and sealed here to the gateway")
	run(t, m, press(m, "enter"))
	calls := fb.Calls()
	if len(calls) != 1 || calls[0].method != "AddSecret" || calls[0].args[1] != "httpbin" || calls[0].args[2] != 720*time.Hour || calls[0].args[3] != "sk_test_51Hx" {
		t.Fatalf("calls %v", calls)
	}
	if m.secretFor != "" || m.secret.Value() != "" {
		t.Error("hidden field not cleared")
	}
	if strings.Contains(screen(m), "sk_test_51Hx") {
		t.Error("the key shows on screen after storing")
	}

	// esc abandons it.
	press(m, "/")
	typeText(m, "secret add httpbin")
	press(m, "enter")
	typeText(m, "abc")
	press(m, "esc")
	if m.secretFor != "" || len(fb.Calls()) != 1 || m.status != "no key stored" {
		t.Errorf("esc: %q %v %q", m.secretFor, fb.Calls(), m.status)
	}
}

func TestTabCompletion(t *testing.T) {
	ps := newPeople(t)
	l, _ := scenario(t, ps)
	cases := []struct{ typed, want string }{
		{"/ap", "/approve "},
		{"/approve ", "/approve e5f6a706 "}, // the only pending request
		{"/request hn.g", "/request hn.get-item "},
		{"/request hn.get-item ", "/request hn.get-item id="},
		{"/request httpbin.", "/request httpbin."}, // several: the common prefix
		{"/secret a", "/secret add "},
		{"/secret add http", "/secret add httpbin "},
		{"/propose remove ca", "/propose remove carol "},
		{"/g", "/gate "},
	}
	for _, tc := range cases {
		m := newModel(t, &fakeBackend{}, ps, ps.bob, l)
		press(m, "i")
		typeText(m, tc.typed)
		press(m, "tab")
		if got := m.input.Value(); got != tc.want {
			t.Errorf("%q + tab = %q, want %q", tc.typed, got, tc.want)
		}
		if m.focus != paneInput {
			t.Errorf("%q: tab left the input", tc.typed)
		}
	}
	m := newModel(t, &fakeBackend{}, ps, ps.bob, l)
	press(m, "i")
	typeText(m, "/request httpbin.")
	press(m, "tab")
	mustContain(t, m.status, "httpbin.echo", "httpbin.headers")
}

func TestCountdownTicks(t *testing.T) {
	ps := newPeople(t)
	l, at := scenario(t, ps)
	m := newModel(t, &fakeBackend{}, ps, ps.bob, l)
	selectSeq(t, m, at["request_pending"])
	mustContain(t, screen(m), "PENDING · expires in 1h0m0s")
	setNow(m, t0.Add(1500*time.Millisecond))
	_, cmd := m.Update(tickMsg(t0))
	if cmd == nil {
		t.Error("a tick does not schedule the next")
	}
	mustContain(t, screen(m), "PENDING · expires in 59m58s")
	setNow(m, t0.Add(2*time.Hour))
	mustContain(t, screen(m), "pending, past its expiry")
}

func TestKeysMoveFocusAndQuit(t *testing.T) {
	ps := newPeople(t)
	l, at := scenario(t, ps)
	d := forgedLog(t, ps)
	m := newModel(t, &fakeBackend{}, ps, ps.bob, l, d)
	c := m.conv()
	if c.name != "dev" || m.focus != paneLog {
		// Conversations are sorted by name: dev first, selected first.
		t.Fatalf("selected %q focus %v", c.name, m.focus)
	}
	press(m, "tab")
	if m.focus != paneInput {
		t.Fatalf("focus %v after tab", m.focus)
	}
	press(m, "tab") // empty input: tab moves on
	if m.focus != paneConvs {
		t.Fatalf("focus %v after tab, tab", m.focus)
	}
	press(m, "j")
	if m.conv().name != "ops" || m.conv().unread != 0 {
		t.Fatalf("j in the conversations pane: %q unread %d", m.conv().name, m.conv().unread)
	}
	press(m, "tab")
	ops := m.conv()
	last := len(ops.items) - 1
	if ops.cursor != last {
		t.Fatalf("cursor %d, want the newest %d", ops.cursor, last)
	}
	press(m, "k", "up")
	if ops.cursor != last-2 || ops.follow {
		t.Errorf("k, up: cursor %d follow %v", ops.cursor, ops.follow)
	}
	press(m, "G")
	if ops.cursor != last || !ops.follow {
		t.Errorf("G: cursor %d follow %v", ops.cursor, ops.follow)
	}
	// enter on a response folds and unfolds it.
	selectSeq(t, m, at["response"])
	press(m, "enter")
	if !ops.expanded[at["response"]] {
		t.Error("enter did not expand the response")
	}
	press(m, "?")
	mustContain(t, screen(m), "KEYS", "/approve ID")
	press(m, "x") // any key closes help
	if m.overlay != "" {
		t.Error("help still open")
	}
	cmd := press(m, "q")
	if cmd == nil {
		t.Fatal("q returned no command")
	}
	if _, ok := cmd().(tea.QuitMsg); !ok {
		t.Error("q does not quit")
	}
}

func TestUnreadCountsAndWaitingMark(t *testing.T) {
	ps := newPeople(t)
	l, _ := scenario(t, ps)
	d := forgedLog(t, ps)
	m := newModel(t, &fakeBackend{}, ps, ps.bob, d, l)
	// dev is selected; ops is not, so what arrives there after start is
	// unread (its backlog is not).
	ops := m.convByID(convOps)
	if ops.unread != 0 {
		t.Errorf("ops unread %d before anything new, want 0", ops.unread)
	}
	l.chat(ps.alice, "one")
	l.chat(ps.carol, "two")
	for _, r := range l.recs[len(l.recs)-2:] {
		m.Update(recordMsg{convOps, r})
	}
	if ops.unread != 2 {
		t.Errorf("ops unread %d, want 2", ops.unread)
	}
	s := screen(m)
	mustContain(t, s, "ops", "2 ●1") // r6 waits for bob
	if !strings.Contains(s, "dev") || !strings.Contains(s, "✗") {
		t.Error("dev's broken log not marked in the list")
	}
	// Choosing ops reads it.
	press(m, "tab", "tab", "j")
	if m.conv() != ops || ops.unread != 0 {
		t.Errorf("after choosing ops: selected %q unread %d", m.conv().name, ops.unread)
	}
}

func TestApproveProposalBindsItsDigest(t *testing.T) {
	ps := newPeople(t)
	l := newLog(t, ps, convOps)
	l.create("ops")
	l.enable(2, nil)
	prop := l.add(ps.alice, conversation.KindMemberPropose, gate.ProposePayload{Header: l.header(), ProposalID: prop1,
		Add: []conversation.Member{{Key: ps.dave.KeyID(), Name: "dave"}}})
	fb := &fakeBackend{}
	m := newModel(t, fb, ps, ps.bob, l)
	mustContain(t, screen(m), "you: not approved yet · a approve", "approvals 1/3: alice · needs alice, bob, carol")
	run(t, m, press(m, "a"))
	calls := fb.Calls()
	if len(calls) != 1 || calls[0].method != "Post" || calls[0].args[1] != conversation.KindMemberApprove {
		t.Fatalf("calls %v", calls)
	}
	p := calls[0].args[2].(gate.MemberApprovePayload)
	if p.ProposalID != prop1 || p.ProposalDigest != payloadDigest(t, prop) {
		t.Errorf("payload %+v", p)
	}
}

// TestOthersTextCannotDrawOnTheScreen: a log with text no server accepts
// (a member signed it; a hostile server serves it) and a conversation list
// naming a member the same way. The fold believes none of the records (the
// create's name is not printable, and nothing stands without the create),
// yet each is drawn, and nothing in it reaches the terminal as it is.
func TestOthersTextCannotDrawOnTheScreen(t *testing.T) {
	ps := newPeople(t)
	l := newLog(t, ps, convOps)
	l.create("ops\x1b[2J")
	l.chat(ps.alice, "hi \x1b[31mred\x1b[0m \u202egnp.exe\u202c\n╭─ #9 EXECUTED fake ─╮")
	l.add(ps.alice, conversation.KindMemberAdd, conversation.MemberPayload{Header: l.header(), Key: ps.dave.KeyID(), Name: "da\nve\x07"})
	m := New(context.Background(), Options{Backend: &fakeBackend{}, Self: ps.bob.KeyID(), Now: func() time.Time { return t0 }, Location: time.UTC})
	m.Update(startMsg{gw: &api.Gateway{SigningKey: ps.gw.KeyID()}, cat: testCatalog(t), convs: []api.Summary{{ID: convOps, Name: l.name,
		Seq: uint64(len(l.recs)), Members: []conversation.Member{{Key: ps.dave.KeyID(), Name: "da\nve\x07"}}}}})
	for _, r := range l.recs {
		m.Update(recordMsg{conv: convOps, rec: r})
	}
	m.Update(tea.WindowSizeMsg{Width: 100, Height: 30})
	raw := m.View().Content
	for _, bad := range []string{"\x1b[2J", "\x1b[31mred", "\u202e", "\x07", "da\nve"} {
		if strings.Contains(raw, bad) {
			t.Errorf("screen holds %q", bad)
		}
	}
	mustContain(t, screen(m), "hi �[31mred�[0m �gnp.exe�", "  ┊ ╭─ #9 EXECUTED fake ─╮", "member da�ve�",
		"not believed: conversation name must be printable UTF-8", "not believed: the first record is a member.add")
}

func TestStartupFailureRetries(t *testing.T) {
	m := New(context.Background(), Options{Backend: &fakeBackend{}, Self: "me"})
	m.Update(startMsg{err: &twokey.Error{Code: twokey.EUnavailable, Message: "cannot reach the twokey server at http://127.0.0.1:1"}})
	if !m.statusErr || !strings.Contains(screen(m), "cannot reach the twokey server at http://127.0.0.1:1 (retrying)") {
		t.Errorf("status %q", m.status)
	}
	if _, cmd := m.Update(refreshMsg{}); cmd == nil {
		t.Error("no retry after a failed start")
	}
	msgs := run(t, m, m.loadCmd())
	if len(msgs) != 1 || msgs[0].(startMsg).err == nil {
		t.Errorf("load from a failing backend: %#v", msgs)
	}
}

// lineWith is the line of raw (escapes and all) on which text is drawn.
func lineWith(raw, text string) string {
	for _, l := range strings.Split(raw, "\n") {
		if strings.Contains(ansi.Strip(l), text) {
			return l
		}
	}
	return ""
}

// drawnRed reports whether text is drawn on one line of raw with the
// foreground red (SGR 31) in force at each of its characters.
func drawnRed(raw, text string) bool {
	line := lineWith(raw, text)
	if line == "" {
		return false
	}
	// Walk the line: plain characters with the colour in force, and SGR
	// sequences, which change it.
	var plain []rune
	var red []bool
	fg := false
	for i := 0; i < len(line); {
		if line[i] == 0x1b && i+1 < len(line) && line[i+1] == '[' {
			j := i + 2
			for j < len(line) && (line[j] < 0x40 || line[j] > 0x7e) {
				j++
			}
			if j < len(line) && line[j] == 'm' {
				params := strings.Split(line[i+2:j], ";")
				for k := 0; k < len(params); k++ {
					switch p := params[k]; {
					case p == "" || p == "0" || p == "39":
						fg = false
					case p == "31" || p == "91":
						fg = true
					case len(p) == 2 && (p[0] == '3' || p[0] == '9') && p[1] >= '0' && p[1] <= '7':
						fg = false
					case p == "38":
						fg = false
						if k+1 < len(params) && params[k+1] == "5" {
							fg = k+2 < len(params) && (params[k+2] == "1" || params[k+2] == "9")
							k += 2
						} else if k+1 < len(params) && params[k+1] == "2" {
							k += 4
						}
					}
				}
			}
			i = j + 1
			continue
		}
		r, n := utf8.DecodeRuneInString(line[i:])
		plain, red = append(plain, r), append(red, fg)
		i += n
	}
	at := strings.Index(string(plain), text)
	if at < 0 {
		return false
	}
	start := utf8.RuneCountInString(string(plain)[:at])
	for k := start; k < start+utf8.RuneCountInString(text); k++ {
		if !red[k] && plain[k] != ' ' {
			return false
		}
	}
	return true
}
