package tui

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// TestResponseCardDescribesBinaryBody: a gate.response whose body is not
// UTF-8 (body_encoding base64) shows "binary body, N bytes" with N the
// bytes it holds, expanded or not, never its base64; a text response is
// drawn as before.
func TestResponseCardDescribesBinaryBody(t *testing.T) {
	ps := newPeople(t)
	l := newLog(t, ps, "0b7c2e4a-1f3d-4c5b-9a8e-0000000000b1")
	l.create("bin")
	l.enable(1, nil)
	const rid = "0c0c0c0c-5b6e-4f70-8a91-0000000000b1"
	l.request(ps.alice, rid, "httpbin.headers", nil, time.Hour)
	l.gateway(conversation.KindGateExecuted, gate.ExecutedPayload{Header: l.header(), RequestID: rid, Status: 200, DurationMS: 4,
		Approvers: []string{ps.alice.KeyID()}, Decision: l.decision(rid)})
	raw := append([]byte{0xff, 0xfe}, []byte("h\x00i\x00 \x00t\x00h\x00e\x00r\x00e\x00")...)
	p := gate.ResponsePayload{Header: l.header(), RequestID: rid, Status: 200, ContentType: "text/plain; charset=utf-16"}
	p.SetBody(raw, 64<<10)
	if !p.Binary() {
		t.Fatal("SetBody kept a UTF-16 body as text")
	}
	l.gateway(conversation.KindGateResponse, p)
	seq := uint64(len(l.recs))
	b64 := base64.StdEncoding.EncodeToString(raw)
	for _, expand := range []bool{false, true} {
		m := newModel(t, &fakeBackend{}, ps, ps.bob, l)
		selectSeq(t, m, seq)
		if expand {
			press(m, "enter")
		}
		scr := screen(m)
		if !strings.Contains(scr, "RESPONSE "+rid[:8]) || !strings.Contains(scr, "200 text/plain; charset=utf-16 · 18 bytes") ||
			!strings.Contains(scr, "binary body, 18 bytes (base64 in the record), not shown") {
			t.Errorf("expanded %v: the card does not describe the binary body:\n%s", expand, scr)
		}
		if strings.Contains(scr, b64[:12]) {
			t.Errorf("expanded %v: the card draws the base64:\n%s", expand, scr)
		}
	}
}
