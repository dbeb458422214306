package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// TestResponseCardsDescribeBinaryBodies: a gate.response whose body is not
// UTF-8 (body_encoding base64) is shown as "binary body, N bytes", with N
// the bytes it holds, and never as its base64 (in 'twokey log' and
// 'twokey request show --body'); a text body is shown as before.
func TestResponseCardsDescribeBinaryBodies(t *testing.T) {
	const gw = "Bzphy3LpJnKBntvgZayj4MkowNvxpcoYtcqhDDt0mHo"
	raw := append([]byte{0xff, 0xfe}, []byte("h\x00i\x00 \x00t\x00h\x00e\x00r\x00e\x00")...)
	var bin, text gate.ResponsePayload
	bin.SetBody(raw, 64<<10)
	text.SetBody([]byte(`{"ok":true}`), 64<<10)
	if !bin.Binary() || text.Binary() {
		t.Fatal("SetBody did not choose the encodings")
	}
	b64 := base64.StdEncoding.EncodeToString(raw)
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		p    gate.ResponsePayload
		want []string
	}{
		{"binary", bin, []string{"(18 bytes shown)", "binary body, 18 bytes (base64 in the record), not shown"}},
		{"text", text, []string{"(11 bytes shown)", `"ok": true`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.RequestID, tc.p.Status, tc.p.ContentType = "3533d5c2-262b-43b5-815f-dd726b01ab22", 200, "application/octet-stream"
			body, err := json.Marshal(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			newLogView(gw, nil, nil, func() time.Time { return now }).render(&out, conversation.Record{Seq: 8, ReceivedAt: now.Format(time.RFC3339Nano),
				Kind: conversation.KindGateResponse, Author: gw, Body: body})
			shown := responseBody(&tc.p, 0)
			for _, w := range tc.want {
				if !strings.Contains(out.String()+"\n"+shown, w) {
					t.Errorf("no %q in:\n%s\n%s", w, out.String(), shown)
				}
			}
			if strings.Contains(out.String(), b64) || strings.Contains(shown, b64) || strings.ContainsRune(out.String(), 0) {
				t.Errorf("the body's base64 or raw bytes are printed:\n%s\n%s", out.String(), shown)
			}
		})
	}
}
