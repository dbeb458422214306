package gate

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/twokey/twokey/conversation"
)

// TestSetBody: text stays text (cut at a character boundary, without
// body_encoding, so logs and clients before it see no change); anything
// else is the base64 of its first bytes; the digest is always of all of
// it; and BodyBytes, after a JSON round trip, gives the bytes back.
func TestSetBody(t *testing.T) {
	const limit = 8
	tests := []struct {
		name, in string
		enc      string
		want     string
		trunc    bool
	}{
		{"empty", "", "", "", false},
		{"text", "héllo", "", "héllo", false},
		{"NUL bytes are text", "a\x00b", "", "a\x00b", false},
		{"text at the limit", "12345678", "", "12345678", false},
		{"text cut at a character", "1234567€", "", "1234567", true},
		{"text cut before a 4-byte character", "123456𝄞", "", "123456", true},
		{"Latin-1", "caf\xe9", "base64", "caf\xe9", false},
		{"UTF-16 with a BOM", "\xff\xfeh\x00i\x00", "base64", "\xff\xfeh\x00i\x00", false},
		{"binary cut at the limit", "\xff123456789", "base64", "\xff1234567", true},
		{"text that turns invalid after the limit", "123456789\xff", "base64", "12345678", true},
		{"a multibyte character cut at the end", "ab\xe2\x82", "base64", "ab\xe2\x82", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p ResponsePayload
			p.SetBody([]byte(tt.in), limit)
			if p.BodyEncoding != tt.enc || p.Truncated != tt.trunc || p.BodyDigest != conversation.Digest([]byte(tt.in)) {
				t.Fatalf("SetBody(%q) = encoding %q, truncated %v; want %q, %v", tt.in, p.BodyEncoding, p.Truncated, tt.enc, tt.trunc)
			}
			raw, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			if tt.enc == "" && strings.Contains(string(raw), "body_encoding") {
				t.Errorf("a text body names its encoding: %s", raw)
			}
			var back ResponsePayload
			if err := json.Unmarshal(raw, &back); err != nil {
				t.Fatal(err)
			}
			got, err := back.BodyBytes()
			if err != nil || !bytes.Equal(got, []byte(tt.want)) {
				t.Errorf("BodyBytes = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestBodyBytesRefuses(t *testing.T) {
	for _, p := range []ResponsePayload{
		{Body: "aGk", BodyEncoding: BodyBase64},
		{Body: "aG\nk=", BodyEncoding: BodyBase64},
		{Body: "-_8=", BodyEncoding: BodyBase64},
		{Body: "hi", BodyEncoding: "utf-16"},
		{Body: "hi", BodyEncoding: "UTF-8"},
	} {
		if b, err := p.BodyBytes(); err == nil {
			t.Errorf("%q (%s) read as %q", p.Body, p.BodyEncoding, b)
		}
	}
	p := ResponsePayload{Body: "hi", BodyEncoding: BodyUTF8}
	if b, err := p.BodyBytes(); err != nil || string(b) != "hi" {
		t.Errorf("utf-8: %q, %v", b, err)
	}
}
