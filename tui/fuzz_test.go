package tui

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// fuzzPayloads is one well-formed payload of each kind the TUI draws,
// whose strings FuzzRenderRecord replaces with the fuzzer's text.
func fuzzPayloads(l *logBuilder) map[string]any {
	ps := l.ps
	h := l.header()
	body := json.RawMessage(`{"a":"b","list":["c",{"d":"e"}]}`)
	closed := gate.ClosedPayload{Header: h, RequestID: r1, Reason: gate.ReasonExpired}
	return map[string]any{
		conversation.KindConversationCreate: conversation.CreatePayload{Header: h, Name: "n",
			Members: []conversation.Member{{Key: ps.bob.KeyID(), Name: "bob"}}},
		conversation.KindChatMessage:  conversation.ChatPayload{Header: h, Text: "t"},
		conversation.KindMemberAdd:    conversation.MemberPayload{Header: h, Key: ps.dave.KeyID(), Name: "dave"},
		conversation.KindMemberRemove: conversation.MemberPayload{Header: h, Key: ps.carol.KeyID(), Name: "carol"},
		conversation.KindGateEnable: gate.EnablePayload{Header: h, RequiredApprovals: 2,
			Rules: []gate.Rule{{Service: "httpbin", Method: "POST", Endpoint: "/post", RequiredApprovals: 3}}},
		conversation.KindGateEnabled: gate.EnabledPayload{Header: h, Signers: []string{ps.alice.KeyID()}, RequiredApprovals: 1,
			Rules: []gate.Rule{{Service: "httpbin", Method: "POST", Endpoint: "/post", RequiredApprovals: 3}}, BoxKey: "box"},
		conversation.KindGateSecretStored: gate.SecretStoredPayload{Header: h, SecretID: "s", Service: "httpbin", HeaderName: "Authorization",
			HeaderTemplate: "Bearer {value}", ExpiresAt: gate.OptTime(conversation.FormatTime(t0)), ProvisionedBy: ps.alice.KeyID()},
		conversation.KindGateSecretRevoke:  gate.RevokePayload{Header: h, Service: "httpbin", SecretID: "s"},
		conversation.KindGateSecretRevoked: gate.RevokedPayload{Header: h, SecretIDs: []string{"s"}, By: ps.alice.KeyID()},
		conversation.KindGateRequest: gate.RequestPayload{Header: h, RequestID: r2, Template: "t", Service: "httpbin", Method: "POST",
			URL: "http://127.0.0.1:9000/httpbin/post", Headers: map[string]string{"X-A": "b"}, Body: body,
			ExpiresAt: conversation.FormatTime(t0.Add(time.Hour)), Program: "p", Params: map[string]string{"k": "v"}, Reason: "why"},
		conversation.KindGateApprove: gate.VotePayload{Header: h, RequestID: r1, RequestDigest: "sha256:" + zeros, Reason: "ok"},
		conversation.KindGateApproved: gate.ApprovedPayload{Header: h, RequestID: r1, Approvers: []string{ps.alice.KeyID()},
			ExecutableAt: conversation.FormatTime(t0.Add(15 * time.Minute)), Assignment: map[string]string{ps.alice.KeyID(): "finance"}},
		conversation.KindGateReject: gate.VotePayload{Header: h, RequestID: r1, RequestDigest: "sha256:" + zeros, Reason: "r"},
		conversation.KindGateCancel: gate.CancelPayload{Header: h, RequestID: r1},
		conversation.KindGateExecuted: gate.ExecutedPayload{Header: h, RequestID: r1, Status: 200, DurationMS: 3,
			Approvers: []string{ps.alice.KeyID()}},
		conversation.KindGateResponse: gate.ResponsePayload{Header: h, RequestID: r1, Status: 200, ContentType: "application/json",
			Body: `{"a":["b","c","d","e","f","g","h","i","j","k","l"]}`, BodyDigest: "sha256:" + zeros},
		conversation.KindGateFailed:    closed,
		conversation.KindGateExpired:   closed,
		conversation.KindGateRejected:  closed,
		conversation.KindGateCancelled: closed,
		conversation.KindMemberPropose: gate.ProposePayload{Header: h, ProposalID: prop1,
			Add: []conversation.Member{{Key: ps.dave.KeyID(), Name: "dave"}}, Remove: []string{ps.carol.KeyID()}},
		conversation.KindMemberApprove: gate.MemberApprovePayload{Header: h, ProposalID: prop1, ProposalDigest: "sha256:" + zeros},
		conversation.KindMemberChanged: gate.ChangedPayload{Header: h, ProposalID: prop1, Signers: []string{ps.alice.KeyID()},
			Members: []conversation.Member{{Key: ps.alice.KeyID(), Name: "alice"}}, RequiredApprovals: 1},
	}
}

// fuzzKinds is the kinds of fuzzPayloads in a fixed order, and one kind
// the TUI does not know.
var fuzzKinds = []string{
	conversation.KindConversationCreate, conversation.KindChatMessage, conversation.KindMemberAdd, conversation.KindMemberRemove,
	conversation.KindGateEnable, conversation.KindGateEnabled, conversation.KindGateSecretStored, conversation.KindGateSecretRevoke,
	conversation.KindGateSecretRevoked, conversation.KindGateRequest, conversation.KindGateApprove, conversation.KindGateReject,
	conversation.KindGateCancel, conversation.KindGateExecuted, conversation.KindGateResponse, conversation.KindGateFailed,
	conversation.KindGateExpired, conversation.KindGateRejected, conversation.KindGateCancelled, conversation.KindMemberPropose,
	conversation.KindMemberApprove, conversation.KindMemberChanged, conversation.KindGateApproved, conversation.KindGateSecret,
}

// fill replaces every string of a JSON value with s, but the header's
// (a payload without a valid header does not verify, which another path
// of the fuzz covers), and adds s as a key of every object but the top.
func fill(v any, s string, top bool) any {
	switch x := v.(type) {
	case string:
		return s
	case []any:
		for i := range x {
			x[i] = fill(x[i], s, false)
		}
		return x
	case map[string]any:
		for k, e := range x {
			if top && (k == "conversation" || k == "created_at" || k == "gateway") {
				continue
			}
			x[k] = fill(e, s, false)
		}
		if !top {
			x[s] = s
		}
		return x
	}
	return v
}

// fuzzLog is a conversation with a gate and a pending request (r1) for
// the fuzzed record to refer to.
func fuzzLog(t testing.TB, ps *people) *logBuilder {
	l := newLog(t, ps, convOps)
	l.create("ops")
	l.enable(2, nil)
	l.request(ps.alice, r1, "httpbin.headers", nil, time.Hour)
	return l
}

// clone is a copy of l that records can be added to without changing l
// (signing the same records for each input would be most of the work).
func (l *logBuilder) clone(t testing.TB) *logBuilder {
	c := *l
	c.t, c.recs = t, slices.Clone(l.recs)
	return &c
}

// drawAll draws the log every way the TUI can: each card on its own,
// folded and expanded, and the whole screen at two sizes with the last
// card selected, and the members overlay.
func drawAll(t *testing.T, ps *people, l *logBuilder) string {
	out, _ := drawAllMasked(t, ps, l, false)
	return out
}

// drawAllMasked is drawAll, masked or not, and which records the fold
// refused. Masked, the fold's reason for each record it refused is drawn
// as one fixed text: a reason quotes what it cites (%q), so it shows an
// unsafe character escaped where a payload already clean shows U+FFFD;
// unmasked, badOutput checks the reasons as drawn.
func drawAllMasked(t *testing.T, ps *people, l *logBuilder, masked bool) (string, []bool) {
	m := newModel(t, &fakeBackend{}, ps, ps.bob, l)
	c := m.conv()
	var refused []bool
	for _, it := range c.items {
		refused = append(refused, it.refused != "")
		if masked && it.refused != "" {
			it.refused = "the fold's reason"
		}
	}
	var b strings.Builder
	for _, expanded := range []bool{false, true} {
		for i, it := range c.items {
			c.expanded[it.rec.Seq] = expanded
			b.WriteString(m.renderItem(c, i, 60))
			b.WriteByte('\n')
		}
		b.WriteString(m.View().Content)
		m.Update(windowSize(40, 12))
		b.WriteString(m.View().Content)
		m.Update(windowSize(100, 30))
	}
	m.overlay = "members"
	b.WriteString(m.View().Content)
	return b.String(), refused
}

// badOutput names the first thing in out that could act on a terminal:
// bytes that are not UTF-8, a control character, an escape sequence other
// than a colour (SGR, which is all the styles write), or a bidirectional
// override.
func badOutput(out string) string {
	if !utf8.ValidString(out) {
		return "bytes that are not UTF-8"
	}
	for i := 0; i < len(out); {
		r, n := utf8.DecodeRuneInString(out[i:])
		if r == 0x1b {
			j := i + 1
			if j >= len(out) || out[j] != '[' {
				return "an escape that is not a CSI at " + quoteAround(out, i)
			}
			j++
			for j < len(out) && (out[j] >= '0' && out[j] <= '9' || out[j] == ';' || out[j] == ':') {
				j++
			}
			if j >= len(out) || out[j] != 'm' {
				return "an escape sequence that is not a colour at " + quoteAround(out, i)
			}
			i = j + 1
			continue
		}
		switch {
		case r == '\n':
		case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
			return "control character " + quoteAround(out, i)
		case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
			return "bidirectional control " + quoteAround(out, i)
		}
		i += n
	}
	return ""
}

func quoteAround(s string, i int) string {
	lo, hi := max(0, i-20), min(len(s), i+20)
	b, _ := json.Marshal(s[lo:hi])
	return string(b)
}

// unsafeToReplacement is s with each character the TUI must never print
// replaced by U+FFFD, as the TUI shows it (line breaks and tabs, which
// have their own rules, stay).
func unsafeToReplacement(s string) string {
	return strings.Map(func(r rune) rune {
		if r != '\n' && r != '\t' && unsafeRune(r) {
			return 0xfffd
		}
		return r
	}, s) // strings.Map makes each byte that is not UTF-8 U+FFFD, as encoding/json does
}

// FuzzRenderRecord draws what other members write: the fuzzer's bytes as a
// signed record's payload (of a kind it picks), and as every string of a
// well-formed payload of that kind. Nothing may panic, and nothing that
// could act on a terminal may come from the input to the screen; for the
// strings, the screen must be exactly the one drawn when each unsafe
// character is already U+FFFD (so none passes through anywhere).
func FuzzRenderRecord(f *testing.F) {
	ps := newPeople(f)
	base := fuzzLog(f, ps)
	f.Add(uint8(1), []byte("hi \x1b[2J\x1b]0;owned\x07 \u202egnp.exe"))
	f.Add(uint8(9), []byte(`{"conversation":"c","created_at":"2026-11-22T13:00:00.000Z","request_id":"x","method":"GET","url":"\u001b[31m","body":{"k":"\u009b2J"}}`))
	f.Add(uint8(14), []byte("{\"a\":\"\\u001b[2J\"}\n\r\t\x00\x9b"))
	f.Fuzz(func(t *testing.T, k uint8, data []byte) {
		kind := fuzzKinds[int(k)%len(fuzzKinds)]
		author := ps.alice
		if conversation.GatewayKind(kind) {
			author = ps.gw
		}

		// The bytes as the payload itself: most do not verify, and the
		// card that says so must be as clean as any other.
		l := base.clone(t)
		l.raw(author, kind, data)
		if bad := badOutput(drawAll(t, ps, l)); bad != "" {
			t.Fatalf("payload %q of %s: the screen holds %s", data, kind, bad)
		}

		// The bytes as every string of a payload that verifies.
		fuzzStrings(t, base, kind, string(data))
	})
}

// fuzzStrings draws a payload of kind whose strings are all s, and checks
// the screen.
func fuzzStrings(t *testing.T, base *logBuilder, kind, s string) {
	ps := base.ps
	author := ps.alice
	if conversation.GatewayKind(kind) {
		author = ps.gw
	}
	draw := func(s string, masked bool) (string, []bool) {
		l := base.clone(t)
		tmpl, ok := fuzzPayloads(l)[kind]
		if !ok {
			tmpl = conversation.ChatPayload{Header: l.header(), Text: "t"}
		}
		raw, err := json.Marshal(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		payload, err := json.Marshal(fill(v, s, true))
		if err != nil {
			t.Fatal(err)
		}
		l.raw(author, kind, payload)
		return drawAllMasked(t, ps, l, masked)
	}
	out, _ := draw(s, false)
	if bad := badOutput(out); bad != "" {
		t.Fatalf("strings %q in %s: the screen holds %s", s, kind, bad)
	}
	clean := unsafeToReplacement(s)
	if clean == s {
		return
	}
	// The fold judges the bytes as signed: where it believes one and not
	// the other (a name with a control character is not valid, one with
	// U+FFFD may be), the screens differ in what the records mean, not in
	// what passed through.
	got, refused := draw(s, true)
	want, cleanRefused := draw(clean, true)
	if slices.Equal(refused, cleanRefused) && got != want {
		t.Fatalf("strings %q in %s: the screen differs from the one of %q, so an unsafe character passed through", s, kind, clean)
	}
}

// windowSize is a terminal resize.
func windowSize(w, h int) tea.WindowSizeMsg { return tea.WindowSizeMsg{Width: w, Height: h} }
