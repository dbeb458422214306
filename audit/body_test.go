package audit_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/twokey/twokey"
	"github.com/twokey/twokey/audit"
	"github.com/twokey/twokey/conversation"
	"github.com/twokey/twokey/gate"
)

// respond appends the gate.executed and gate.response an honest gateway
// writes for request id when the upstream answered body: the response is
// made by gate's own SetBody, as the engine makes it.
func (b *builder) respond(id string, body []byte) gate.ResponsePayload {
	b.t.Helper()
	b.add(-1, conversation.KindGateExecuted, b.decided(id, map[string]any{"request_id": id, "status": 200, "duration_ms": 1, "approvers": []string{b.key(0)}}))
	p := gate.ResponsePayload{RequestID: id, Status: 200, ContentType: "application/octet-stream", Headers: map[string]string{}}
	p.SetBody(body, twokey.MaxResponseBody)
	b.add(-1, conversation.KindGateResponse, fieldsOf(b.t, p))
	return p
}

// fieldsOf is p as the map builder.add takes (its header left out: add
// writes it).
func fieldsOf(t *testing.T, p gate.ResponsePayload) map[string]any {
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "conversation")
	delete(m, "created_at")
	delete(m, "gateway")
	return m
}

// upstreamBodies are bytes an upstream may answer: random bytes (so
// invalid UTF-8), NUL bytes, UTF-16 with a byte order mark, Latin-1, text
// with a multibyte character across the 64 KiB boundary, text that turns
// invalid after it, and random UTF-8 text, of random lengths around 0 and
// around the boundary.
func upstreamBodies(rng *rand.Rand, n int) [][]byte {
	limit := twokey.MaxResponseBody
	randBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	randText := func(n int) []byte {
		var b []byte
		for len(b) < n {
			b = append(b, string(rune(rng.IntN(0x10ffff)))...) // surrogates become U+FFFD
		}
		return b
	}
	utf16Text := func(s []byte, big bool) []byte {
		out := []byte{0xff, 0xfe}
		if big {
			out = []byte{0xfe, 0xff}
		}
		for _, u := range utf16.Encode([]rune(string(s))) {
			if big {
				out = append(out, byte(u>>8), byte(u))
			} else {
				out = append(out, byte(u), byte(u>>8))
			}
		}
		return out
	}
	length := func() int {
		if rng.IntN(4) == 0 {
			return limit - 8 + rng.IntN(16) // around the boundary
		}
		return rng.IntN(600)
	}
	fixed := [][]byte{
		{}, {0}, {0xff}, {0xff, 0xfe}, []byte("caf\xe9"), []byte("a\x00b\x00\x00"),
		[]byte(strings.Repeat("a", limit-1) + "€"), []byte(strings.Repeat("a", limit-2) + "𝄞"), []byte(strings.Repeat("a", limit) + "é"),
		append(bytes.Repeat([]byte("b"), limit+5), 0xff), append([]byte(strings.Repeat("é", limit/2)), 0xc3),
		bytes.Repeat([]byte{0xe2, 0x82}, limit), utf16Text([]byte("hello, world"), false), utf16Text([]byte("héllo"), true),
	}
	out := fixed
	for len(out) < n {
		switch rng.IntN(5) {
		case 0:
			out = append(out, randBytes(length()))
		case 1:
			out = append(out, randText(length()))
		case 2:
			out = append(out, utf16Text(randText(length()/4), rng.IntN(2) == 0))
		case 3:
			b := randText(length())
			for range 3 {
				if len(b) > 0 {
					b[rng.IntN(len(b))] = 0
				}
			}
			out = append(out, b)
		default:
			b := randText(length())
			if len(b) > 0 {
				b = b[:rng.IntN(len(b))] // a multibyte character cut anywhere
			}
			out = append(out, b)
		}
	}
	return out
}

// TestAnyUpstreamBodyVerifies is the property of PROTOCOL 5: whatever
// bytes an upstream answers, the gate.response an honest gateway writes
// verifies (one log of many executions, audited with Verify), gives back
// the body's first 64 KiB (text cut at a character boundary), and is text
// exactly when the body is UTF-8.
func TestAnyUpstreamBodyVerifies(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 3))
	bodies := upstreamBodies(rng, 300)
	b := newBuilder(t, 1)
	b.gated(1, nil)
	limit := twokey.MaxResponseBody
	for i, body := range bodies {
		id := fmt.Sprintf("55555555-5555-4555-8555-%012d", i)
		b.request(0, id, "/b", time.Hour)
		p := b.respond(id, body)
		got, err := p.BodyBytes()
		if err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		if p.BodyDigest != conversation.Digest(body) || p.Truncated != (len(body) > limit) {
			t.Fatalf("body %d (%d bytes): digest or truncated wrong", i, len(body))
		}
		if !bytes.HasPrefix(body, got) || len(got) > limit || p.Truncated && len(got) < limit-3 || !p.Truncated && len(got) != len(body) {
			t.Fatalf("body %d (%d bytes): %d bytes given back", i, len(body), len(got))
		}
		if text := utf8.Valid(body); text == p.Binary() || text && p.BodyEncoding != "" {
			t.Fatalf("body %d: UTF-8 %v, body_encoding %q", i, text, p.BodyEncoding)
		}
		if p.Binary() && len(got) != min(len(body), limit) {
			t.Fatalf("body %d: base64 of %d bytes", i, len(got))
		}
	}
	rep, err := audit.Verify(b.export(), audit.Options{Gateway: b.gw.KeyID()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Executed != len(bodies) {
		t.Fatalf("executed %d, want %d", rep.Executed, len(bodies))
	}
}

// TestResponseBodyLiesFail: a gateway that signs a base64 body under the
// digest of its text, names an encoding there is none of, or writes base64
// that is not standard padded base64 fails the audit at that response.
func TestResponseBodyLiesFail(t *testing.T) {
	raw := []byte("\xff\xfeh\x00i") // 5 bytes: base64 with a padding =
	b64 := base64.StdEncoding.EncodeToString(raw)
	cases := []struct {
		name   string
		fields map[string]any
		check  audit.Check
	}{
		{"a base64 body under the digest of its text", map[string]any{"body": b64, "body_encoding": "base64", "body_digest": conversation.Digest([]byte(b64))}, audit.CheckState},
		{"a base64 body under the digest of other bytes", map[string]any{"body": b64, "body_encoding": "base64", "body_digest": conversation.Digest(raw[1:])}, audit.CheckState},
		{"an unknown body_encoding", map[string]any{"body": b64, "body_encoding": "utf-16", "body_digest": conversation.Digest(raw)}, audit.CheckFormat},
		{"unpadded base64", map[string]any{"body": strings.TrimRight(b64, "="), "body_encoding": "base64", "body_digest": conversation.Digest(raw)}, audit.CheckFormat},
		{"URL-safe base64", map[string]any{"body": base64.URLEncoding.EncodeToString([]byte{0xfb, 0xff}), "body_encoding": "base64", "body_digest": conversation.Digest([]byte{0xfb, 0xff})}, audit.CheckFormat},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuilder(t, 1)
			b.gated(1, nil)
			b.request(0, r1, "/b", time.Hour)
			b.add(-1, conversation.KindGateExecuted, b.decided(r1, map[string]any{"request_id": r1, "status": 200, "approvers": []string{b.key(0)}}))
			fields := map[string]any{"request_id": r1, "status": 200, "headers": map[string]string{}, "truncated": false, "redactions": 0}
			for k, v := range tc.fields {
				fields[k] = v
			}
			b.add(-1, conversation.KindGateResponse, fields)
			_, err := audit.Verify(b.export(), audit.Options{})
			f, ok := err.(*audit.Failure)
			if !ok {
				t.Fatalf("verified (err %v)", err)
			}
			if f.Check != tc.check || f.Seq != uint64(len(b.recs)) {
				t.Fatalf("failed at record %d (%s check), want record %d (%s check): %v", f.Seq, f.Check, len(b.recs), tc.check, f)
			}
		})
	}
	// The honest form of the same body verifies.
	b := newBuilder(t, 1)
	b.gated(1, nil)
	b.request(0, r1, "/b", time.Hour)
	if p := b.respond(r1, raw); p.Body != b64 || !p.Binary() {
		t.Fatalf("SetBody: %+v", p)
	}
	if _, err := audit.Verify(b.export(), audit.Options{}); err != nil {
		t.Fatal(err)
	}
}
